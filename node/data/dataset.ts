/**
 * In-memory labelled data sets and the seeded ways of cutting them: a train/test split, a subset by
 * index, and one participant's shard. A row is an image (float32 in [0, 1], row-major, channels last)
 * or a text already tokenized (int32 ids, node/model/tokenizer.ts); everything here but the row's
 * width and type is the same for both, so splits, shards and batches work one way.
 */
import * as tf from '../tf.js'
import { DataError } from '../errors.js'
import { Rng } from '../random.js'
import type { TokenizerConfig } from '../model/tokenizer.js'

interface LabelledRows {
  /** Where it came from, for logs: "mnist", "idx:/path", "spam", "text:/path". */
  readonly source: string
  readonly numClasses: number
  /** [count], values in [0, numClasses). */
  readonly labels: Uint8Array
  readonly count: number
}

export interface ImageDataset extends LabelledRows {
  readonly imageSize: number
  readonly channels: number
  /** [count, imageSize*imageSize*channels] flattened. */
  readonly images: Float32Array
}

export interface TextDataset extends LabelledRows {
  /** How the texts became `tokens`; a model must use the same to read them. */
  readonly tokenizer: TokenizerConfig
  /** What each label means, in index order ("ham", "spam"); numClasses of them. */
  readonly classNames: string[]
  /** [count, tokenizer.seqLen] flattened token ids. */
  readonly tokens: Int32Array
}

export type Dataset = ImageDataset | TextDataset

export interface TrainTest<D extends Dataset = Dataset> {
  train: D
  test: D
}

export const isTextData = (ds: Dataset): ds is TextDataset => 'tokens' in ds

export const pixelsOf = (ds: Pick<ImageDataset, 'imageSize' | 'channels'>): number => ds.imageSize * ds.imageSize * ds.channels

/** Values in one row: pixels of an image, token ids of a text. */
export const rowWidth = (ds: Dataset): number => isTextData(ds) ? ds.tokenizer.seqLen : pixelsOf(ds)

/** Rows `indices` of a flattened [rows, width] array, in that order. */
function pickRows<A extends Float32Array | Int32Array> (values: A, width: number, indices: ArrayLike<number>, make: (length: number) => A): A {
  const out = make(indices.length * width)
  for (let i = 0; i < indices.length; i++) out.set(values.subarray(indices[i] * width, (indices[i] + 1) * width), i * width)
  return out
}

/** A new dataset holding the given rows of `ds`, in that order. */
export function subset<D extends Dataset> (ds: D, indices: ArrayLike<number>): D {
  const labels = Uint8Array.from({ length: indices.length }, (_, i) => ds.labels[indices[i]])
  const width = rowWidth(ds)
  const rows = isTextData(ds)
    ? { tokens: pickRows(ds.tokens, width, indices, n => new Int32Array(n)) }
    : { images: pickRows(ds.images, width, indices, n => new Float32Array(n)) }
  return { ...ds, ...rows, labels, count: indices.length }
}

/** `values` in shared memory: itself when it is there already, else a copy. */
function shared<A extends Float32Array | Int32Array | Uint8Array> (values: A): A {
  if (values.buffer instanceof SharedArrayBuffer) return values
  const out = new (values.constructor as new (buffer: SharedArrayBuffer) => A)(new SharedArrayBuffer(values.byteLength))
  out.set(values)
  return out
}

/**
 * The same rows in shared memory, which a compute worker is handed by reference: a structured clone of a
 * participant's data (0.1-0.2 s for the bundled digits on this project's 2-core machine) would hold the
 * network thread, and each worker would keep its own copy. Loaders call it once, before the peer goes on
 * the network; the compute pool calls it again as a guarantee, which then copies nothing. Rows are never
 * written after loading, so sharing them is safe; batches (`subset`) stay in private memory for tfjs.
 */
export function inSharedMemory<D extends Dataset> (data: TrainTest<D>): TrainTest<D> {
  const share = (ds: D): D => ({ ...ds, labels: shared(ds.labels), ...(isTextData(ds) ? { tokens: shared(ds.tokens) } : { images: shared(ds.images) }) })
  return { train: share(data.train), test: share(data.test) }
}

/** Seeded split of one labelled set into train and test; `testFraction` of the rows go to test. */
export function splitTrainTest<D extends Dataset> (ds: D, testFraction: number, seed: number | string): TrainTest<D> {
  const order = new Rng(`split:${seed}`).shuffle(Int32Array.from({ length: ds.count }, (_, i) => i)) as Int32Array
  const testCount = Math.round(ds.count * testFraction)
  return { train: subset(ds, order.subarray(testCount)), test: subset(ds, order.subarray(0, testCount)) }
}

/** Counts per class, [numClasses]. */
export function classCounts (ds: Dataset): number[] {
  const counts = new Array<number>(ds.numClasses).fill(0)
  for (const l of ds.labels) counts[l]++
  return counts
}

/** Makes sure a dataset's arrays agree with its declared sizes; loaders call this before returning. */
export function checkDataset<D extends Dataset> (ds: D): D {
  if (isTextData(ds)) {
    if (ds.tokens.length !== ds.count * ds.tokenizer.seqLen) throw new DataError(`${ds.source}: ${ds.tokens.length} token ids for ${ds.count} texts of ${ds.tokenizer.seqLen} tokens`)
    const outOfRange = ds.tokens.findIndex(id => id < 0 || id >= ds.tokenizer.vocabSize)
    if (outOfRange >= 0) throw new DataError(`${ds.source}: token id ${ds.tokens[outOfRange]} in text ${Math.floor(outOfRange / ds.tokenizer.seqLen)} is outside [0, ${ds.tokenizer.vocabSize})`)
    if (ds.classNames.length !== ds.numClasses) throw new DataError(`${ds.source}: ${ds.classNames.length} class names for ${ds.numClasses} classes`)
  } else if (ds.images.length !== ds.count * pixelsOf(ds)) {
    throw new DataError(`${ds.source}: ${ds.images.length} pixel values for ${ds.count} images of ${ds.imageSize}x${ds.imageSize}x${ds.channels}`)
  }
  if (ds.labels.length !== ds.count) throw new DataError(`${ds.source}: ${ds.labels.length} labels for ${ds.count} images`)
  for (let i = 0; i < ds.count; i++) {
    if (ds.labels[i] >= ds.numClasses) throw new DataError(`${ds.source}: label ${ds.labels[i]} at row ${i} is not below numClasses ${ds.numClasses}`)
  }
  return ds
}

/**
 * One batch as tensors the caller owns: inputs [rows, width] (float32 pixels, or int32 token ids) and
 * int32 labels [rows].
 */
export function batchTensors (ds: Dataset, indices: ArrayLike<number>): { inputs: tf.Tensor2D, labels: tf.Tensor1D } {
  const rows = subset(ds, indices)
  const shape: [number, number] = [rows.count, rowWidth(ds)]
  const inputs = isTextData(rows) ? tf.tensor2d(rows.tokens, shape, 'int32') : tf.tensor2d(rows.images, shape)
  return { inputs, labels: tf.tensor1d(Int32Array.from(rows.labels), 'int32') }
}
