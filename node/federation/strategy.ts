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
   * to keep the current one; computed here, or elsewhere (offThread) while this thread waits.
   */
  aggregate: (contributions: Contribution[], current: TensorMap) => TensorMap | null | Promise<TensorMap | null>
}

/** Runs an aggregation rule away from the network thread: a compute worker (node/compute). */
export type RemoteAggregate = (aggregation: Manifest['aggregation'], contributions: Contribution[], current: TensorMap) => Promise<TensorMap | null>

/**
 * Values (contributions x values per update) from which a round's aggregation leaves the network thread.
 * Below it the slowest rule costs that thread under about 35 ms (median, 17 ns a value, measured with
 * `npm run bench -- network-thread`), less than a trip through a worker's queue may wait: the tiny and
 * small presets' groups and rounds of 16 stay here, the paper preset's (2 million values an update) go.
 */
export const OFF_THREAD_MIN_VALUES = 2_000_000

/**
 * Float32 arrays in shared memory: updates decoded into it reach a compute worker by reference. A
 * structured clone of 7 of the paper preset's updates would hold the network thread about as long as
 * their median does.
 */
export const sharedFloat32 = (length: number): Float32Array => new Float32Array(new SharedArrayBuffer(length * 4))

/**
 * The manifest's rule, run by `remote` when a round is large (`minValues` or more values in all), here
 * otherwise: the same pure functions either way, so the result is bit-identical. Only centered clipping
 * reads the current Global-LiGO; the other rules are not sent a copy of it.
 */
export function offThread (aggregation: Manifest['aggregation'], remote: RemoteAggregate, minValues = OFF_THREAD_MIN_VALUES): Strategy {
  const here = strategyFor(aggregation)
  const values = (contributions: Contribution[]): number => contributions.reduce((sum, c) => sum + Object.values(c.tensors).reduce((n, t) => n + t.data.length, 0), 0)
  return {
    name: here.name,
    aggregate: async (contributions, current) => contributions.length === 0 || values(contributions) < minValues
      ? await here.aggregate(contributions, current)
      : await remote(aggregation, contributions, aggregation.rule === 'centered-clip' ? current : {})
  }
}

/** The rules chosen to resist hostile peers (all but the mean): group catch-up then takes a median too. */
export const ROBUST_RULES: ReadonlySet<string> = new Set(['median', 'trimmed-mean', 'centered-clip'])

export const DEFAULT_TRIM = 0.2
export const DEFAULT_CLIP_TAU = 1
export const DEFAULT_CLIP_ITERATIONS = 1

/** A strategy computed in this thread, synchronously. */
interface LocalStrategy extends Strategy {
  aggregate: (contributions: Contribution[], current: TensorMap) => TensorMap | null
}

/** Wraps a rule so that an empty round keeps the current Global-LiGO. */
const rule = (name: string, fn: (contributions: Contribution[], current: TensorMap) => TensorMap): LocalStrategy => ({
  name,
  aggregate: (contributions, current) => contributions.length === 0 ? null : fn(contributions, current)
})

/** FedAvg over the operator: the sample-weighted mean. */
export const fedAvg = rule('mean', (c) => weightedMean(c))

export function strategyFor (aggregation: Manifest['aggregation']): LocalStrategy {
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
