/**
 * The shape of a transformer, and the checks that keep it buildable. Two kinds share everything but the
 * stem that turns an input into tokens: a Vision Transformer (VitConfig: image patches) and a text
 * transformer (TextConfig: hashed-word token ids, its tokenizer part of the config). A config with a
 * `tokenizer` is a text model; one without is an image model, so configs and model files written before
 * text existed read unchanged.
 * Defaults are the bundled digits (28x28 grey, 10 classes) with the small-model shape of the tiny preset.
 */
import { invalidField } from '../errors.js'
import { MODEL_LIMITS } from '../../protocol/constants.js'
import { sameTokenizer, validateTokenizer } from './tokenizer.js'
import type { TokenizerConfig } from './tokenizer.js'

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

/** The fields every transformer has, whatever its input: the body and the head. */
export type BodyConfig = Pick<VitConfig, 'numClasses' | 'dim' | 'layers' | 'heads' | 'mlpRatio'>

/** A text transformer: token embedding table [vocabSize, dim] in place of the patch stem. */
export interface TextConfig extends BodyConfig {
  /** How text becomes ids; its vocabSize and seqLen are the table's rows and the positions less cls. */
  tokenizer: TokenizerConfig
  /** What each class index means ("ham", "spam"), in index order; numClasses of them. */
  classNames: string[]
}

export type ModelConfig = VitConfig | TextConfig

export const isTextConfig = (c: ModelConfig): c is TextConfig => 'tokenizer' in c

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

/** Checks the fields every transformer has (defaults filled in) and returns them. */
function validateBody (input: Partial<BodyConfig>): BodyConfig {
  const c = { ...DEFAULT_VIT_CONFIG, ...input }
  positiveInt('numClasses', c.numClasses, MODEL_LIMITS.maxClasses)
  positiveInt('dim', c.dim, MODEL_LIMITS.maxDim)
  positiveInt('layers', c.layers, MODEL_LIMITS.maxLayers)
  positiveInt('heads', c.heads, MODEL_LIMITS.maxHeads)
  if (c.dim % c.heads !== 0) throw invalidField('heads', c.heads, `must divide dim ${c.dim}`)
  if (typeof c.mlpRatio !== 'number' || !(c.mlpRatio > 0) || c.mlpRatio > MODEL_LIMITS.maxMlpRatio) {
    throw invalidField('mlpRatio', c.mlpRatio, `must be a number in (0, ${MODEL_LIMITS.maxMlpRatio}]`)
  }
  if (!Number.isInteger(c.mlpRatio * c.dim)) throw invalidField('mlpRatio', c.mlpRatio, `mlpRatio * dim (${c.dim}) must be a whole number`)
  return { numClasses: c.numClasses, dim: c.dim, layers: c.layers, heads: c.heads, mlpRatio: c.mlpRatio }
}

/** Checks every field and returns a complete image config; throws InvalidConfigError naming the first bad field. */
export function validateVitConfig (input: Partial<VitConfig>): VitConfig {
  const c = { ...DEFAULT_VIT_CONFIG, ...input }
  positiveInt('imageSize', c.imageSize, MODEL_LIMITS.maxImageSize)
  positiveInt('channels', c.channels, MODEL_LIMITS.maxChannels)
  positiveInt('patchSize', c.patchSize, c.imageSize)
  if (c.imageSize % c.patchSize !== 0) throw invalidField('patchSize', c.patchSize, `must divide imageSize ${c.imageSize}`)
  const body = validateBody(c)
  // Field order as before text existed: model files hold this object's JSON.
  return { imageSize: c.imageSize, channels: c.channels, patchSize: c.patchSize, ...body }
}

/** Checks every field of a text config; `classNames` defaults to "0", "1", ... */
export function validateTextConfig (input: Partial<TextConfig>): TextConfig {
  const body = validateBody(input)
  const tokenizer = validateTokenizer(input.tokenizer ?? {})
  const classNames = input.classNames ?? Array.from({ length: body.numClasses }, (_, i) => String(i))
  if (!Array.isArray(classNames) || classNames.length !== body.numClasses || !classNames.every(n => typeof n === 'string' && n !== '')) {
    throw invalidField('classNames', classNames, `must be ${body.numClasses} non-empty strings, one per class`)
  }
  if (new Set(classNames).size !== classNames.length) throw invalidField('classNames', classNames, 'must not repeat a name')
  return { tokenizer, classNames: [...classNames], ...body }
}

/** validateTextConfig when `input` has a tokenizer, else validateVitConfig. */
export function validateModelConfig (input: Partial<VitConfig> | Partial<TextConfig>): ModelConfig {
  return 'tokenizer' in input ? validateTextConfig(input) : validateVitConfig(input as Partial<VitConfig>)
}

/**
 * What the data fixes about every model of a task, whatever its size: the input (image side, channels
 * and patch side; or the tokenizer) and the classes. A model's config is its task shape plus a body.
 */
export type TaskShape = Pick<VitConfig, 'imageSize' | 'channels' | 'patchSize' | 'numClasses'> | Pick<TextConfig, 'tokenizer' | 'classNames' | 'numClasses'>

/** The checked config of a model of `task` with the given body. */
export function configFor (task: TaskShape, body: Omit<BodyConfig, 'numClasses'>): ModelConfig {
  return validateModelConfig({ ...task, ...body })
}

/**
 * How `b` reads other inputs or predicts other classes than `a` (one sentence naming the first
 * difference, `a` called `nameA`, `b` `nameB`), or undefined when they share a task shape.
 */
export function taskDifference (a: ModelConfig, b: ModelConfig, nameA: string, nameB: string): string | undefined {
  const kind = (c: ModelConfig): string => isTextConfig(c) ? 'a text model' : 'an image model'
  if (isTextConfig(a) !== isTextConfig(b)) return `${nameA} is ${kind(a)}, ${nameB} ${kind(b)}`
  if (a.numClasses !== b.numClasses) return `${nameA} has ${a.numClasses} classes, ${nameB} ${b.numClasses}`
  if (isTextConfig(a) && isTextConfig(b)) {
    if (!sameTokenizer(a.tokenizer, b.tokenizer)) return `${nameA} tokenizes with ${JSON.stringify(a.tokenizer)}, ${nameB} with ${JSON.stringify(b.tokenizer)}`
    if (a.classNames.join('\n') !== b.classNames.join('\n')) return `${nameA} has classes [${a.classNames.join(', ')}], ${nameB} [${b.classNames.join(', ')}]`
    return undefined
  }
  for (const field of ['imageSize', 'channels', 'patchSize'] as const) {
    if ((a as VitConfig)[field] !== (b as VitConfig)[field]) return `${nameA} has ${field} ${(a as VitConfig)[field]}, ${nameB} ${(b as VitConfig)[field]}`
  }
  return undefined
}

export const numPatches = (c: VitConfig): number => (c.imageSize / c.patchSize) ** 2
/** Tokens per input: the stem's (one per patch, or the tokenizer's seqLen) plus the cls token. */
export const numTokens = (c: ModelConfig): number => (isTextConfig(c) ? c.tokenizer.seqLen : numPatches(c)) + 1
/** Values in one input row: pixels of an image, token ids of a text. */
export const inputWidth = (c: ModelConfig): number => isTextConfig(c) ? c.tokenizer.seqLen : pixelsPerImage(c)
export const patchDim = (c: VitConfig): number => c.patchSize * c.patchSize * c.channels
export const hiddenDim = (c: BodyConfig): number => c.mlpRatio * c.dim
export const pixelsPerImage = (c: VitConfig): number => c.imageSize * c.imageSize * c.channels
