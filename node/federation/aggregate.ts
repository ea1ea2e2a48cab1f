/**
 * Aggregation maths over named float32 tensors: pure functions, no tfjs, so that every peer computes
 * bit-identical results from the same contributions on any backend or machine. Each contribution's
 * weight is its sample count (FedAvg, McMahan et al., arXiv 1602.05629).
 */
import { LIMITS } from '../../protocol/constants.js'
import type { TensorMap } from '../../protocol/safetensors.js'

export interface Contribution {
  /** Who sent it (peer id string); sets the canonical order. */
  from: string
  sampleCount: number
  tensors: TensorMap
}

/** Contributions sorted by sender, the order every peer sums in. */
export function canonicalOrder (contributions: Contribution[]): Contribution[] {
  return [...contributions].sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0))
}

/**
 * Each contribution's weight in the mean: its sample count, clipped to LIMITS.maxWeightOverMedian times
 * the lower median of the counts (the floor((n-1)/2)-th smallest). Claimed counts cannot be checked;
 * while honest peers are a majority of the round, the lower median is one of theirs.
 */
export function clippedWeights (contributions: Contribution[]): number[] {
  const counts = contributions.map(c => c.sampleCount)
  const lowerMedian = [...counts].sort((a, b) => a - b)[Math.floor((counts.length - 1) / 2)]
  return counts.map(n => Math.min(n, LIMITS.maxWeightOverMedian * lowerMedian))
}

/**
 * Sample-weighted mean: sum over contributions i, in canonical order, of (w_i / W) * x_i in float64
 * (weight first, then the product: the exact formula matters for bit-identical results), rounded once
 * to float32, with w_i the clipped sample count (clippedWeights) and W their sum.
 * Every contribution must have the same names and shapes (validated before it gets here).
 */
export function weightedMean (contributions: Contribution[]): TensorMap {
  if (contributions.length === 0) throw new Error('weightedMean needs at least one contribution')
  const ordered = canonicalOrder(contributions)
  const weights = clippedWeights(ordered)
  const total = weights.reduce((s, w) => s + w, 0)
  const out: TensorMap = {}
  for (const [name, first] of Object.entries(ordered[0].tensors)) {
    const acc = new Float64Array(first.data.length)
    for (const [k, c] of ordered.entries()) {
      const w = weights[k] / total
      const data = c.tensors[name].data
      for (let i = 0; i < acc.length; i++) acc[i] += w * data[i]
    }
    out[name] = { shape: [...first.shape], data: new Float32Array(acc) }
  }
  return out
}

/** Whether `a` sorts before `b` in TypedArray.prototype.sort's order of finite numbers: ascending, -0 before +0. */
const sortsBefore = (a: number, b: number): boolean => a < b || (a === 0 && b === 0 && Object.is(a, -0) && !Object.is(b, -0))

/**
 * Sorts `column` in place, in TypedArray.prototype.sort's order, so results stay bit-identical with
 * peers that sort with it. A column holds one value per contribution: for the few a group holds,
 * insertion sort is several times faster than a call to sort per coordinate.
 */
function sortColumn (column: Float64Array): void {
  if (column.length > INSERTION_SORT_MAX) {
    column.sort()
    return
  }
  for (let i = 1; i < column.length; i++) {
    const x = column[i]
    let j = i
    for (; j > 0 && sortsBefore(x, column[j - 1]); j--) column[j] = column[j - 1]
    column[j] = x
  }
}

/** Longest column sortColumn sorts by insertion (measured faster than sort() up to a few dozen values). */
const INSERTION_SORT_MAX = 32

/** Per coordinate, the values of every contribution, sorted ascending (the robust rules' shared step). */
function sortedColumns (contributions: Contribution[], name: string, apply: (sorted: Float64Array) => number): { shape: number[], data: Float32Array } {
  const first = contributions[0].tensors[name]
  const out = new Float32Array(first.data.length)
  const column = new Float64Array(contributions.length)
  const values = contributions.map(c => c.tensors[name].data)
  for (let i = 0; i < out.length; i++) {
    for (let c = 0; c < values.length; c++) column[c] = values[c][i]
    sortColumn(column)
    out[i] = apply(column)
  }
  return { shape: [...first.shape], data: out }
}

/**
 * Coordinate-wise median (Yin et al., "Byzantine-Robust Distributed Learning", ICML 2018,
 * arXiv 1803.01498). Unweighted: a Byzantine peer could otherwise claim a huge sample count.
 */
export function coordinateMedian (contributions: Contribution[]): TensorMap {
  if (contributions.length === 0) throw new Error('coordinateMedian needs at least one contribution')
  const out: TensorMap = {}
  for (const name of Object.keys(contributions[0].tensors)) {
    out[name] = sortedColumns(contributions, name, (s) => s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2)
  }
  return out
}

/**
 * Coordinate-wise trimmed mean (Yin et al. 2018): per coordinate, drop the floor(trim * n) largest and
 * smallest values and average the rest, unweighted.
 */
export function trimmedMean (contributions: Contribution[], trim: number): TensorMap {
  if (contributions.length === 0) throw new Error('trimmedMean needs at least one contribution')
  const cut = Math.min(Math.floor(trim * contributions.length), Math.floor((contributions.length - 1) / 2))
  const out: TensorMap = {}
  for (const name of Object.keys(contributions[0].tensors)) {
    out[name] = sortedColumns(contributions, name, (s) => {
      let sum = 0
      for (let k = cut; k < s.length - cut; k++) sum += s[k]
      return sum / (s.length - 2 * cut)
    })
  }
  return out
}

/**
 * Centered clipping (Karimireddy, He and Jaggi, "Learning from History for Byzantine Robust
 * Optimization", ICML 2021, arXiv 2012.10333), the rule ClippedGossip (He, Karimireddy and Jaggi,
 * arXiv 2202.01545) applies between gossip neighbours. Starting from `reference` (this peer's current
 * Global-LiGO), `iterations` times: v <- v + mean_i clip(x_i - v, tau), where clip(z, tau) scales z
 * down to norm tau (the norm over all tensors together). Summed in canonical order.
 */
export function centeredClip (contributions: Contribution[], reference: TensorMap, tau: number, iterations: number): TensorMap {
  if (contributions.length === 0) throw new Error('centeredClip needs at least one contribution')
  const ordered = canonicalOrder(contributions)
  const names = Object.keys(reference)
  const v: Record<string, Float64Array> = Object.fromEntries(names.map(n => [n, Float64Array.from(reference[n].data)]))
  for (let it = 0; it < iterations; it++) {
    const step: Record<string, Float64Array> = Object.fromEntries(names.map(n => [n, new Float64Array(v[n].length)]))
    for (const c of ordered) {
      let squared = 0
      for (const n of names) {
        const x = c.tensors[n].data
        const at = v[n]
        for (let i = 0; i < x.length; i++) squared += (x[i] - at[i]) ** 2
      }
      const norm = Math.sqrt(squared)
      const scale = norm > tau ? tau / norm : 1
      for (const n of names) {
        const x = c.tensors[n].data
        const at = v[n]
        const into = step[n]
        for (let i = 0; i < x.length; i++) into[i] += scale * (x[i] - at[i]) / ordered.length
      }
    }
    for (const n of names) {
      const at = v[n]
      const by = step[n]
      for (let i = 0; i < at.length; i++) at[i] += by[i]
    }
  }
  return Object.fromEntries(names.map(n => [n, { shape: [...reference[n].shape], data: new Float32Array(v[n]) }]))
}

/**
 * How far apart peers' Global-LiGOs are: each one's L2 distance from their unweighted mean, relative to
 * the mean's norm (0 when all agree). Decentralized averaging that does not reach every peer each round
 * shows here as a spread that should shrink from round to round.
 */
export function consensusDistances (models: TensorMap[]): number[] {
  if (models.length === 0) return []
  const names = Object.keys(models[0])
  let meanNormSq = 0
  const distanceSq = new Array<number>(models.length).fill(0)
  for (const name of names) {
    const values = models.map(m => m[name].data)
    for (let j = 0; j < values[0].length; j++) {
      let mean = 0
      for (const data of values) mean += data[j]
      mean /= values.length
      meanNormSq += mean * mean
      for (let i = 0; i < values.length; i++) distanceSq[i] += (values[i][j] - mean) ** 2
    }
  }
  return distanceSq.map(d => Math.sqrt(d) / Math.max(Math.sqrt(meanNormSq), Number.MIN_VALUE))
}
