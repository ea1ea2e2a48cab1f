/**
 * In-memory labelled image sets and the seeded ways of cutting them: a train/test split, a subset by
 * index, and one participant's shard. Images are float32 in [0, 1], row-major, channels last.
 */
import * as tf from '../tf.js'
import { DataError } from '../errors.js'
import { Rng } from '../random.js'

export interface Dataset {
  /** Where it came from, for logs: "mnist", "idx:/path". */
  readonly source: string
  readonly imageSize: number
  readonly channels: number
  readonly numClasses: number
  /** [count, imageSize*imageSize*channels] flattened. */
  readonly images: Float32Array
  /** [count], values in [0, numClasses). */
  readonly labels: Uint8Array
  readonly count: number
}

export interface TrainTest {
  train: Dataset
  test: Dataset
}

export const pixelsOf = (ds: Pick<Dataset, 'imageSize' | 'channels'>): number => ds.imageSize * ds.imageSize * ds.channels

/** A new dataset holding the given rows of `ds`, in that order. */
export function subset (ds: Dataset, indices: ArrayLike<number>): Dataset {
  const px = pixelsOf(ds)
  const images = new Float32Array(indices.length * px)
  const labels = new Uint8Array(indices.length)
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i]
    images.set(ds.images.subarray(j * px, (j + 1) * px), i * px)
    labels[i] = ds.labels[j]
  }
  return { ...ds, images, labels, count: indices.length }
}

/** Seeded split of one labelled set into train and test; `testFraction` of the rows go to test. */
export function splitTrainTest (ds: Dataset, testFraction: number, seed: number | string): TrainTest {
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
export function checkDataset (ds: Dataset): Dataset {
  if (ds.images.length !== ds.count * pixelsOf(ds)) {
    throw new DataError(`${ds.source}: ${ds.images.length} pixel values for ${ds.count} images of ${ds.imageSize}x${ds.imageSize}x${ds.channels}`)
  }
  if (ds.labels.length !== ds.count) throw new DataError(`${ds.source}: ${ds.labels.length} labels for ${ds.count} images`)
  for (let i = 0; i < ds.count; i++) {
    if (ds.labels[i] >= ds.numClasses) throw new DataError(`${ds.source}: label ${ds.labels[i]} at row ${i} is not below numClasses ${ds.numClasses}`)
  }
  return ds
}

/** One batch as tensors the caller owns: images [rows, pixels] and int32 labels [rows]. */
export function batchTensors (ds: Dataset, indices: ArrayLike<number>): { images: tf.Tensor2D, labels: tf.Tensor1D } {
  const rows = subset(ds, indices)
  return { images: tf.tensor2d(rows.images, [rows.count, pixelsOf(ds)]), labels: tf.tensor1d(Int32Array.from(rows.labels), 'int32') }
}
