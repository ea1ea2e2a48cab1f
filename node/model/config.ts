/**
 * The shape of a Vision Transformer, and the checks that keep it buildable.
 * Defaults are the bundled digits (28x28 grey, 10 classes) with the small-model shape of the tiny preset.
 */
import { invalidField } from '../errors.js'
import { MODEL_LIMITS } from '../../protocol/constants.js'

export interface VitConfig {
  /** Square input side in pixels. */
  imageSize: number
  /** Colour channels of the input (1 for grey digits). */
  channels: number
  /** Square patch side in pixels; must divide imageSize. */
  patchSize: number
  /** Output classes of the linear head. */
  numClasses: number
  /** Residual-stream width D. */
  dim: number
  /** Number of transformer blocks L. */
  layers: number
  /** Attention heads; must divide dim. */
  heads: number
  /** FFN hidden width = mlpRatio * dim (the authors use 1); mlpRatio * dim must be a whole number. */
  mlpRatio: number
}

export const DEFAULT_VIT_CONFIG: Readonly<VitConfig> = {
  imageSize: 28,
  channels: 1,
  patchSize: 7,
  numClasses: 10,
  dim: 32,
  layers: 2,
  heads: 4,
  mlpRatio: 2
}

function positiveInt (field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw invalidField(field, value, `must be a whole number from 1 to ${max}`)
  }
  return value
}

/** Checks every field and returns a complete config; throws InvalidConfigError naming the first bad field. */
export function validateVitConfig (input: Partial<VitConfig>): VitConfig {
  const c = { ...DEFAULT_VIT_CONFIG, ...input }
  positiveInt('imageSize', c.imageSize, MODEL_LIMITS.maxImageSize)
  positiveInt('channels', c.channels, MODEL_LIMITS.maxChannels)
  positiveInt('patchSize', c.patchSize, c.imageSize)
  positiveInt('numClasses', c.numClasses, MODEL_LIMITS.maxClasses)
  positiveInt('dim', c.dim, MODEL_LIMITS.maxDim)
  positiveInt('layers', c.layers, MODEL_LIMITS.maxLayers)
  positiveInt('heads', c.heads, MODEL_LIMITS.maxHeads)
  if (c.imageSize % c.patchSize !== 0) throw invalidField('patchSize', c.patchSize, `must divide imageSize ${c.imageSize}`)
  if (c.dim % c.heads !== 0) throw invalidField('heads', c.heads, `must divide dim ${c.dim}`)
  if (typeof c.mlpRatio !== 'number' || !(c.mlpRatio > 0) || c.mlpRatio > MODEL_LIMITS.maxMlpRatio) {
    throw invalidField('mlpRatio', c.mlpRatio, `must be a number in (0, ${MODEL_LIMITS.maxMlpRatio}]`)
  }
  if (!Number.isInteger(c.mlpRatio * c.dim)) throw invalidField('mlpRatio', c.mlpRatio, `mlpRatio * dim (${c.dim}) must be a whole number`)
  return {
    imageSize: c.imageSize,
    channels: c.channels,
    patchSize: c.patchSize,
    numClasses: c.numClasses,
    dim: c.dim,
    layers: c.layers,
    heads: c.heads,
    mlpRatio: c.mlpRatio
  }
}

export const numPatches = (c: VitConfig): number => (c.imageSize / c.patchSize) ** 2
/** Tokens per image: one per patch plus the cls token. */
export const numTokens = (c: VitConfig): number => numPatches(c) + 1
export const patchDim = (c: VitConfig): number => c.patchSize * c.patchSize * c.channels
export const hiddenDim = (c: VitConfig): number => c.mlpRatio * c.dim
export const pixelsPerImage = (c: VitConfig): number => c.imageSize * c.imageSize * c.channels
