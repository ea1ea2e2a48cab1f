/**
 * Model files (.fgm): a safetensors file (protocol/safetensors.ts) whose tensors are the ViT's named
 * parameters (node/model/vit.ts) and whose __metadata__ holds
 *   format: "fedgrow-model", version: "1", config: the model's config as JSON (config.ts: a VitConfig,
 *   or a TextConfig, which alone has a "tokenizer"; files without one are image models), info: free-form JSON
 *   (what produced the file, e.g. its test accuracy), sha256: checksum of the data section.
 * Any safetensors reader can load the weights; fedgrow checks the config and every shape before it
 * builds a single tensor, so a bad file never yields a half-loaded model.
 */
import { ModelFileError, InvalidConfigError } from '../errors.js'
import { readTensorFile, fromTensorMap, writeTensorFile } from '../storage/files.js'
import { validateModelConfig } from './config.js'
import { describeModel, paramShapes } from './vit.js'
import type { ModelConfig, TextConfig, VitConfig } from './config.js'
import type { NamedTensors } from './vit.js'
import type { TensorMap } from '../../protocol/safetensors.js'

export const MODEL_FORMAT = 'fedgrow-model'
export const MODEL_FORMAT_VERSION = '1'

export type ModelInfo = Record<string, unknown>

export interface LoadedModel {
  config: ModelConfig
  /** Owned by the caller: dispose when done. */
  params: NamedTensors
  info: ModelInfo
}

/** A model file's contents as plain arrays (no tfjs): what crosses to a compute worker. */
export interface ModelFileData {
  config: ModelConfig
  params: TensorMap
  info: ModelInfo
}

export function saveModel (path: string, config: ModelConfig, params: NamedTensors, info: ModelInfo = {}): void {
  const ordered: NamedTensors = {}
  for (const name of Object.keys(paramShapes(config))) ordered[name] = params[name]
  writeTensorFile(path, ordered, {
    format: MODEL_FORMAT,
    version: MODEL_FORMAT_VERSION,
    config: JSON.stringify(config),
    info: JSON.stringify(info)
  })
}

function parseJson (path: string, key: string, text: string | undefined): unknown {
  if (text === undefined) throw new ModelFileError(`${path}: metadata has no "${key}"; not a fedgrow model file`)
  try {
    return JSON.parse(text)
  } catch {
    throw new ModelFileError(`${path}: metadata "${key}" is not valid JSON`)
  }
}

/** Reads and checks a model file: its config, every tensor's shape, and the data's checksum. */
export function readModelFile (path: string): ModelFileData {
  const { tensors, metadata } = readTensorFile(path)
  if (metadata.format !== MODEL_FORMAT) throw new ModelFileError(`${path}: format is ${JSON.stringify(metadata.format)}, expected "${MODEL_FORMAT}"; is this a fedgrow model file?`)
  if (metadata.version !== MODEL_FORMAT_VERSION) throw new ModelFileError(`${path}: format version ${metadata.version} is not supported (this fedgrow reads version ${MODEL_FORMAT_VERSION}); upgrade fedgrow`)
  let config: ModelConfig
  try {
    const json = parseJson(path, 'config', metadata.config)
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ModelFileError(`${path}: metadata "config" is not a JSON object`)
    config = validateModelConfig(json as Partial<VitConfig> | Partial<TextConfig>)
  } catch (err) {
    if (err instanceof InvalidConfigError) throw new ModelFileError(`${path}: bad config: ${err.message}`)
    throw err
  }
  const shapes = paramShapes(config)
  for (const [name, shape] of Object.entries(shapes)) {
    const t = tensors[name]
    if (t === undefined) throw new ModelFileError(`${path}: tensor ${name} is missing for ${describeModel(config)}`)
    if (t.shape.join() !== shape.join()) throw new ModelFileError(`${path}: tensor ${name} has shape [${t.shape}], its config needs [${shape}]`)
  }
  const extra = Object.keys(tensors).find(name => !(name in shapes))
  if (extra !== undefined) throw new ModelFileError(`${path}: tensor ${extra} does not belong to ${describeModel(config)}`)
  return { config, params: tensors, info: parseJson(path, 'info', metadata.info) as ModelInfo }
}

/** readModelFile, as tensors the caller owns. */
export function loadModel (path: string): LoadedModel {
  const { config, params, info } = readModelFile(path)
  return { config, params: fromTensorMap(params), info }
}
