/**
 * Images to classify, from files: PNG (any size, grey, grey+alpha, RGB or RGBA) or IDX image files
 * (idx3 [count, rows, cols] or idx4 [..., channels], gzipped or not). Each image becomes the model's
 * input: resized (bilinear) to imageSize x imageSize, grey or RGB as the model wants, values in [0, 1].
 * MNIST digits are light on dark; a PNG that is mostly light (a dark digit on white paper) is inverted
 * unless told otherwise.
 */
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { PNG } from 'pngjs'
import { DataError } from '../errors.js'
import { parseIdx } from './idx.js'

export type Invert = 'auto' | 'yes' | 'no'

export interface InputImage {
  /** File name, and the index within an IDX file. */
  name: string
  /** [imageSize * imageSize * channels], row-major, channels last, in [0, 1]. */
  pixels: Float32Array
}

interface Raster { width: number, height: number, channels: number, data: Float32Array }

/** Bilinear resampling of an interleaved raster to size x size. */
function resize (r: Raster, size: number): Raster {
  if (r.width === size && r.height === size) return r
  const out = new Float32Array(size * size * r.channels)
  for (let y = 0; y < size; y++) {
    const sy = Math.min(r.height - 1, Math.max(0, ((y + 0.5) * r.height) / size - 0.5))
    const y0 = Math.floor(sy); const y1 = Math.min(r.height - 1, y0 + 1); const fy = sy - y0
    for (let x = 0; x < size; x++) {
      const sx = Math.min(r.width - 1, Math.max(0, ((x + 0.5) * r.width) / size - 0.5))
      const x0 = Math.floor(sx); const x1 = Math.min(r.width - 1, x0 + 1); const fx = sx - x0
      for (let c = 0; c < r.channels; c++) {
        const at = (yy: number, xx: number): number => r.data[(yy * r.width + xx) * r.channels + c]
        const top = at(y0, x0) * (1 - fx) + at(y0, x1) * fx
        const bottom = at(y1, x0) * (1 - fx) + at(y1, x1) * fx
        out[(y * size + x) * r.channels + c] = top * (1 - fy) + bottom * fy
      }
    }
  }
  return { width: size, height: size, channels: r.channels, data: out }
}

/** Converts to the model's channel count: grey is the mean of RGB; RGB repeats grey. */
function toChannels (r: Raster, channels: number, where: string): Raster {
  if (r.channels === channels) return r
  const n = r.width * r.height
  const out = new Float32Array(n * channels)
  if (channels === 1 && r.channels === 3) for (let i = 0; i < n; i++) out[i] = (r.data[3 * i] + r.data[3 * i + 1] + r.data[3 * i + 2]) / 3
  else if (channels === 3 && r.channels === 1) for (let i = 0; i < n; i++) out.fill(r.data[i], 3 * i, 3 * i + 3)
  else throw new DataError(`${where}: has ${r.channels} channels; the model takes ${channels}`)
  return { ...r, channels, data: out }
}

function decodePng (bytes: Uint8Array, where: string): Raster {
  let png
  try {
    png = PNG.sync.read(Buffer.from(bytes))
  } catch (err) {
    throw new DataError(`${where}: not a readable PNG (${(err as Error).message})`)
  }
  // pngjs always yields RGBA; composite onto black so transparent backgrounds read as dark, like MNIST.
  const n = png.width * png.height
  const rgb = new Float32Array(n * 3)
  for (let i = 0; i < n; i++) {
    const alpha = png.data[4 * i + 3] / 255
    for (let c = 0; c < 3; c++) rgb[3 * i + c] = (png.data[4 * i + c] / 255) * alpha
  }
  return { width: png.width, height: png.height, channels: 3, data: rgb }
}

const isPng = (bytes: Uint8Array): boolean => bytes.length > 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47

/** Reads every image in `paths` as model input. */
export function readImages (paths: string[], model: { imageSize: number, channels: number }, invert: Invert = 'auto'): InputImage[] {
  const out: InputImage[] = []
  for (const path of paths) {
    let bytes: Uint8Array
    try {
      bytes = readFileSync(path)
    } catch (err) {
      throw new DataError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    const rasters: Array<{ name: string, raster: Raster, fromPng: boolean }> = []
    if (isPng(bytes)) {
      rasters.push({ name: basename(path), raster: decodePng(bytes, path), fromPng: true })
    } else {
      const idx = parseIdx(bytes, path)
      if (idx.dims.length !== 3 && idx.dims.length !== 4) throw new DataError(`${path}: IDX with ${idx.dims.length} dimensions is not an image file (expected [count, rows, cols] or [count, rows, cols, channels])`)
      const [count, height, width, channels = 1] = idx.dims
      const size = height * width * channels
      for (let i = 0; i < count; i++) {
        const data = Float32Array.from(idx.data.subarray(i * size, (i + 1) * size), v => v / 255)
        rasters.push({ name: `${basename(path)}[${i}]`, raster: { width, height, channels, data }, fromPng: false })
      }
    }
    for (const { name, raster, fromPng } of rasters) {
      const image = resize(toChannels(raster, model.channels, path), model.imageSize).data
      const mean = image.reduce((a, b) => a + b, 0) / image.length
      if (invert === 'yes' || (invert === 'auto' && fromPng && mean > 0.5)) for (let i = 0; i < image.length; i++) image[i] = 1 - image[i]
      out.push({ name, pixels: image })
    }
  }
  return out
}
