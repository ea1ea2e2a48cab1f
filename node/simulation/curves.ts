/**
 * Whether a method's accuracy curve has flattened: methods are compared once their curves are flat,
 * or the table says which one was still moving (a method that starts from random weights, like
 * fedavg, climbs for many rounds after a grown one has levelled off).
 */
import type { CurvePoint } from './index.js'

/** Rounds over which a curve's change is judged. */
export const TREND_WINDOW_ROUNDS = 5
/** A curve within this much (accuracy, 1 point) over the window counts as flat. */
export const FLAT_TOLERANCE = 0.01

export interface CurveTrend {
  /** Mean accuracy at the last round minus that `TREND_WINDOW_ROUNDS` earlier (or at the first round). */
  change: number
  trend: 'flat' | 'rising' | 'falling'
  /** The first round whose mean accuracy is within FLAT_TOLERANCE of the curve's best. */
  plateauRound: number
}

export function curveTrend (curve: Array<Pick<CurvePoint, 'round' | 'accuracy'>>): CurveTrend {
  if (curve.length === 0) throw new Error('curveTrend: the curve has no rounds')
  const last = curve[curve.length - 1]
  const start = curve[Math.max(0, curve.length - 1 - TREND_WINDOW_ROUNDS)]
  const change = last.accuracy.mean - start.accuracy.mean
  const best = Math.max(...curve.map(p => p.accuracy.mean))
  return {
    change,
    trend: Math.abs(change) < FLAT_TOLERANCE ? 'flat' : change > 0 ? 'rising' : 'falling',
    plateauRound: curve.find(p => p.accuracy.mean >= best - FLAT_TOLERANCE)!.round
  }
}
