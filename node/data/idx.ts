/**
 * The IDX file format (LeCun's MNIST container): two zero bytes, a type byte (0x08 = unsigned byte),
 * the number of dimensions, then each dimension as a big-endian uint32, then the values. Files may be
 * gzipped. Images are idx3 [count, rows, cols] or idx4 [count, rows, cols, channels]; labels idx1 [count].
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { DataError } from '../errors.js'
import { checkDataset } from './dataset.js'
import type { ImageDataset } from './dataset.js'

const IDX_UBYTE = 0x08
const GZIP_MAGIC = 0x1f8b

export interface IdxArray {
  dims: number[]
  data: Uint8Array
}

/** Parses IDX bytes (gunzipped or not) into dimensions and unsigned-byte values. */
export function parseIdx (bytes: Uint8Array, where: string): IdxArray {
  if (bytes.length >= 2 && ((bytes[0] << 8) | bytes[1]) === GZIP_MAGIC) {
    try {
      bytes = gunzipSync(bytes)
    } catch (err) {
      throw new DataError(`${where}: looks gzipped but does not decompress (${(err as Error).message}); re-download the file`)
    }
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataError(`${where}: not an IDX file (the first two bytes must be 0x00 0x00)`)
  }
  if (bytes[2] !== IDX_UBYTE) {
    throw new DataError(`${where}: IDX value type 0x${bytes[2].toString(16)} is not supported; only unsigned bytes (0x08) are`)
  }
  const ndims = bytes[3]
  const headerBytes = 4 + 4 * ndims
  if (ndims < 1 || bytes.length < headerBytes) throw new DataError(`${where}: IDX header is truncated (${bytes.length} bytes for ${ndims} dimensions)`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i, false))
  const expected = dims.reduce((a, b) => a * b, 1)
  const actual = bytes.length - headerBytes
  if (actual !== expected) {
    throw new DataError(`${where}: header says ${dims.join('x')} = ${expected} values but the file holds ${actual}; the file is truncated or corrupt`)
  }
  return { dims, data: bytes.subarray(headerBytes) }
}

function findFile (dir: string, stems: string[]): string | undefined {
  for (const stem of stems) {
    for (const name of [stem, `${stem}.gz`]) {
      if (existsSync(join(dir, name))) return join(dir, name)
    }
  }
  return undefined
}

/** Loads one images/labels pair into an ImageDataset with `numClasses` fixed by the caller or the labels. */
export function loadIdxPair (imagesPath: string, labelsPath: string, numClasses?: number): ImageDataset {
  const images = parseIdx(readFileSync(imagesPath), imagesPath)
  const labels = parseIdx(readFileSync(labelsPath), labelsPath)
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new DataError(`${imagesPath}: images must be idx3 [count, rows, cols] or idx4 [count, rows, cols, channels], got ${images.dims.length} dimensions`)
  }
  const [count, rows, cols, channels = 1] = images.dims
  if (rows !== cols) throw new DataError(`${imagesPath}: images are ${rows}x${cols}; fedgrow needs square images`)
  if (labels.dims.length !== 1) throw new DataError(`${labelsPath}: labels must be idx1 [count], got ${labels.dims.length} dimensions`)
  if (labels.dims[0] !== count) throw new DataError(`${labelsPath} holds ${labels.dims[0]} labels but ${imagesPath} holds ${count} images`)
  const pixels = new Float32Array(images.data.length)
  for (let i = 0; i < pixels.length; i++) pixels[i] = images.data[i] / 255
  const maxLabel = labels.data.reduce((m, l) => Math.max(m, l), 0)
  return checkDataset({
    source: `idx:${imagesPath}`,
    imageSize: rows,
    channels,
    numClasses: numClasses ?? Math.max(2, maxLabel + 1),
    images: pixels,
    labels: Uint8Array.from(labels.data),
    count
  })
}

const TRAIN_IMAGES = ['train-images-idx3-ubyte', 'train-images.idx3-ubyte', 'train-images-idx4-ubyte']
const TRAIN_LABELS = ['train-labels-idx1-ubyte', 'train-labels.idx1-ubyte']
const TEST_IMAGES = ['t10k-images-idx3-ubyte', 't10k-images.idx3-ubyte', 'test-images-idx3-ubyte', 't10k-images-idx4-ubyte', 'test-images-idx4-ubyte']
const TEST_LABELS = ['t10k-labels-idx1-ubyte', 't10k-labels.idx1-ubyte', 'test-labels-idx1-ubyte']

/**
 * Reads an MNIST-layout folder: train-images-idx3-ubyte and train-labels-idx1-ubyte (each optionally .gz),
 * plus t10k-* (or test-*) files when present. Returns null for the test part when the folder has none.
 */
export function loadIdxDir (dir: string): { train: ImageDataset, test: ImageDataset | null } {
  if (!existsSync(dir)) throw new DataError(`idx:${dir}: no such folder`)
  const trainImages = findFile(dir, TRAIN_IMAGES)
  const trainLabels = findFile(dir, TRAIN_LABELS)
  if (trainImages === undefined || trainLabels === undefined) {
    throw new DataError(`idx:${dir}: needs ${TRAIN_IMAGES[0]} and ${TRAIN_LABELS[0]} (optionally .gz); found ${trainImages ?? 'no images'}, ${trainLabels ?? 'no labels'}`)
  }
  const testImages = findFile(dir, TEST_IMAGES)
  const testLabels = findFile(dir, TEST_LABELS)
  if ((testImages === undefined) !== (testLabels === undefined)) {
    throw new DataError(`idx:${dir}: has ${testImages ?? testLabels} but not its partner; supply both t10k images and labels, or neither`)
  }
  const train = loadIdxPair(trainImages, trainLabels)
  if (testImages === undefined || testLabels === undefined) return { train, test: null }
  const test = loadIdxPair(testImages, testLabels)
  if (test.imageSize !== train.imageSize || test.channels !== train.channels) {
    throw new DataError(`idx:${dir}: test images are ${test.imageSize}x${test.imageSize}x${test.channels}, train images ${train.imageSize}x${train.imageSize}x${train.channels}`)
  }
  const numClasses = Math.max(train.numClasses, test.numClasses)
  return { train: { ...train, numClasses }, test: { ...test, numClasses } }
}

/** Encodes an unsigned-byte IDX file; used by tests and to hand data to other tools. */
export function encodeIdx (dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length)
  const view = new DataView(out.buffer)
  out[2] = IDX_UBYTE
  out[3] = dims.length
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false))
  out.set(data, 4 + 4 * dims.length)
  return out
}
