/**
 * Writes a grown model in formats other tools load: ONNX (onnx.ts), or safetensors plus a JSON config
 * that says how to run the weights.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { encodeSafetensors } from '../../protocol/safetensors.js'
import { writeFileAtomic } from '../storage/files.js'
import { paramShapes } from '../model/vit.js'
import { modelToOnnx } from './onnx.js'
import { inputWidth, isTextConfig } from '../model/config.js'
import { describeTokenizer } from '../model/tokenizer.js'
import type { ModelConfig } from '../model/config.js'
import type { TensorMap } from '../../protocol/safetensors.js'

export const EXPORT_FORMATS = ['onnx', 'safetensors'] as const
export type ExportFormat = typeof EXPORT_FORMATS[number]

/** What the model reads: the input tensor, and for text the tokenizer that makes it, exactly. */
function inputDescription (config: ModelConfig): Record<string, unknown> {
  if (!isTextConfig(config)) return { input: `float32 [batch, ${inputWidth(config)}]: pixels in [0, 1], row-major, channels last` }
  return {
    input: `int64 [batch, ${config.tokenizer.seqLen}] ("input_ids" in ONNX): token ids in [0, ${config.tokenizer.vocabSize}) from the tokenizer below; row i of embed.w is id i's embedding`,
    tokenizer: describeTokenizer(config.tokenizer),
    classNames: config.classNames
  }
}

/** How to run the exported weights, for people and tools that do not read fedgrow's code. */
function architecture (config: ModelConfig): Record<string, unknown> {
  const text = isTextConfig(config)
  return {
    architecture: text ? 'fedgrow-text' : 'fedgrow-vit',
    config,
    ...inputDescription(config),
    output: `float32 [batch, ${config.numClasses}]: logits`,
    layout: `dense weights are [in, out] (y = x @ w + b); pre-norm blocks; cls token first, then ${text ? 'the token ids\' rows of embed.w in order (padding included, attended to like any token)' : 'patches in row-major order'}; classifier on the final LayerNorm of the cls token`,
    layerNormEpsilon: 1e-6,
    activation: 'gelu, sigmoid form: x * sigmoid(1.702 x)',
    parameters: paramShapes(config)
  }
}

/** Writes `format` files into `dir`; returns their paths. */
export function exportModel (config: ModelConfig, params: TensorMap, dir: string, format: ExportFormat, info: Record<string, unknown> = {}): string[] {
  mkdirSync(dir, { recursive: true })
  const metadata = { producedBy: 'fedgrow export', info: JSON.stringify(info) }
  if (format === 'onnx') {
    const path = join(dir, 'model.onnx')
    writeFileAtomic(path, modelToOnnx(config, params, metadata))
    return [path]
  }
  const ordered: TensorMap = {}
  for (const name of Object.keys(paramShapes(config))) ordered[name] = params[name]
  const weights = join(dir, 'model.safetensors')
  const configPath = join(dir, 'config.json')
  writeFileAtomic(weights, encodeSafetensors(ordered, { ...metadata, format: isTextConfig(config) ? 'fedgrow-text' : 'fedgrow-vit', config: JSON.stringify(config) }))
  writeFileSync(configPath, JSON.stringify({ ...architecture(config), info }, null, 2) + '\n')
  return [weights, configPath]
}
