/**
 * Writes a grown model in formats other tools load: ONNX (onnx.ts), or safetensors plus a JSON config
 * that says how to run the weights.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { encodeSafetensors } from '../../protocol/safetensors.js'
import { writeFileAtomic } from '../storage/files.js'
import { paramShapes } from '../model/vit.js'
import { vitToOnnx } from './onnx.js'
import type { VitConfig } from '../model/config.js'
import type { TensorMap } from '../../protocol/safetensors.js'

export const EXPORT_FORMATS = ['onnx', 'safetensors'] as const
export type ExportFormat = typeof EXPORT_FORMATS[number]

/** How to run the exported weights, for people and tools that do not read fedgrow's code. */
function architecture (config: VitConfig): Record<string, unknown> {
  return {
    architecture: 'fedgrow-vit',
    config,
    input: `float32 [batch, ${config.imageSize * config.imageSize * config.channels}]: pixels in [0, 1], row-major, channels last`,
    output: `float32 [batch, ${config.numClasses}]: logits`,
    layout: 'dense weights are [in, out] (y = x @ w + b); pre-norm blocks; cls token first, then patches in row-major order; classifier on the final LayerNorm of the cls token',
    layerNormEpsilon: 1e-6,
    activation: 'gelu, sigmoid form: x * sigmoid(1.702 x)',
    parameters: paramShapes(config)
  }
}

/** Writes `format` files into `dir`; returns their paths. */
export function exportModel (config: VitConfig, params: TensorMap, dir: string, format: ExportFormat, info: Record<string, unknown> = {}): string[] {
  mkdirSync(dir, { recursive: true })
  const metadata = { producedBy: 'fedgrow export', info: JSON.stringify(info) }
  if (format === 'onnx') {
    const path = join(dir, 'model.onnx')
    writeFileAtomic(path, vitToOnnx(config, params, metadata))
    return [path]
  }
  const ordered: TensorMap = {}
  for (const name of Object.keys(paramShapes(config))) ordered[name] = params[name]
  const weights = join(dir, 'model.safetensors')
  const configPath = join(dir, 'config.json')
  writeFileAtomic(weights, encodeSafetensors(ordered, { ...metadata, format: 'fedgrow-vit', config: JSON.stringify(config) }))
  writeFileSync(configPath, JSON.stringify({ ...architecture(config), info }, null, 2) + '\n')
  return [weights, configPath]
}
