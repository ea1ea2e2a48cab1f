/**
 * The Strategy seam (after Flower's server/strategy/strategy.py): how a round's contributions become
 * the next Global-LiGO. Rules are swappable through the manifest's aggregation.rule.
 */
import { weightedMean } from './aggregate.js'
import type { Contribution } from './aggregate.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { Manifest } from '../../protocol/manifest.js'

export interface Strategy {
  readonly name: string
  /** The next Global-LiGO from this round's accepted contributions, or null to keep the current one. */
  aggregate: (contributions: Contribution[]) => TensorMap | null
}

/** FedAvg over the operator: the sample-weighted mean. */
export const fedAvg: Strategy = {
  name: 'mean',
  aggregate: (contributions) => contributions.length === 0 ? null : weightedMean(contributions)
}

export function strategyFor (rule: Manifest['aggregation']['rule']): Strategy {
  switch (rule) {
    case 'mean':
      return fedAvg
    default: {
      const unreachable: never = rule
      throw new Error(`unknown aggregation rule ${String(unreachable)}`)
    }
  }
}
