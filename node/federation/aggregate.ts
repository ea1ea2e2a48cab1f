/**
 * Aggregation maths over named float32 tensors: pure functions, no tfjs, so that every peer computes
 * bit-identical results from the same contributions on any backend or machine. Each contribution's
 * weight is its sample count (FedAvg, McMahan et al., arXiv 1602.05629).
 */
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
 * Sample-weighted mean: sum over contributions i, in canonical order, of (n_i / N) * x_i in float64
 * (weight first, then the product: the exact formula matters for bit-identical results), rounded once
 * to float32.
 * Every contribution must have the same names and shapes (validated before it gets here).
 */
export function weightedMean (contributions: Contribution[]): TensorMap {
  if (contributions.length === 0) throw new Error('weightedMean needs at least one contribution')
  const ordered = canonicalOrder(contributions)
  const total = ordered.reduce((s, c) => s + c.sampleCount, 0)
  const out: TensorMap = {}
  for (const [name, first] of Object.entries(ordered[0].tensors)) {
    const acc = new Float64Array(first.data.length)
    for (const c of ordered) {
      const w = c.sampleCount / total
      const data = c.tensors[name].data
      for (let i = 0; i < acc.length; i++) acc[i] += w * data[i]
    }
    out[name] = { shape: [...first.shape], data: Float32Array.from(acc) }
  }
  return out
}
