/**
 * The Strategy seam (after Flower's server/strategy/strategy.py): how a round's contributions become
 * the next Global-LiGO. Rules are swappable through the manifest's aggregation.rule; the maths lives in
 * aggregate.ts as pure functions.
 */
import { centeredClip, coordinateMedian, trimmedMean, weightedMean } from './aggregate.js'
import type { Contribution } from './aggregate.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { Manifest } from '../../protocol/manifest.js'

export interface Strategy {
  readonly name: string
  /**
   * The next Global-LiGO from this round's accepted contributions and this peer's current one, or null
   * to keep the current one.
   */
  aggregate: (contributions: Contribution[], current: TensorMap) => TensorMap | null
}

/** The rules chosen to resist hostile peers (all but the mean): group catch-up then takes a median too. */
export const ROBUST_RULES: ReadonlySet<string> = new Set(['median', 'trimmed-mean', 'centered-clip'])

export const DEFAULT_TRIM = 0.2
export const DEFAULT_CLIP_TAU = 1
export const DEFAULT_CLIP_ITERATIONS = 1

/** Wraps a rule so that an empty round keeps the current Global-LiGO. */
const rule = (name: string, fn: (contributions: Contribution[], current: TensorMap) => TensorMap): Strategy => ({
  name,
  aggregate: (contributions, current) => contributions.length === 0 ? null : fn(contributions, current)
})

/** FedAvg over the operator: the sample-weighted mean. */
export const fedAvg = rule('mean', (c) => weightedMean(c))

export function strategyFor (aggregation: Manifest['aggregation']): Strategy {
  switch (aggregation.rule) {
    case 'mean':
      return fedAvg
    case 'median':
      return rule('median', (c) => coordinateMedian(c))
    case 'trimmed-mean':
      return rule('trimmed-mean', (c) => trimmedMean(c, aggregation.trim ?? DEFAULT_TRIM))
    case 'centered-clip':
      return rule('centered-clip', (c, current) => centeredClip(c, current, aggregation.clipTau ?? DEFAULT_CLIP_TAU, aggregation.clipIterations ?? DEFAULT_CLIP_ITERATIONS))
    default: {
      const unreachable: never = aggregation.rule
      throw new Error(`unknown aggregation rule ${String(unreachable)}`)
    }
  }
}
