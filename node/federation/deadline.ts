/**
 * Adaptive round deadlines. A fixed timeout is either too short for a slow federation or, when a peer
 * hangs, a long stall every round. Instead a round waits, from the first update of the round (ours or a
 * peer's), for twice the 90th percentile of how far behind their round's first update recent updates
 * arrived: long enough for the usual spread of a federation's peers (a tail statistic: a median plus
 * spread cut off the slowest honest peer every round when most peers finish together), short enough
 * that a peer that hangs costs a few seconds, not the manifest's timeout. Never less than a floor that
 * lets a lost announcement be re-sent, never more than roundTimeoutMs; until enough lags are seen, the
 * manifest's timeout applies. Closing still needs the quorum.
 */
export const ADAPTIVE_DEADLINE = {
  /** Lags observed before the adaptive wait replaces the manifest's timeout. */
  minSamples: 4,
  /** Most recent lags kept. */
  window: 64,
  /** Which lag the wait scales: the 90th percentile of the window. */
  quantile: 0.9,
  /** The wait is this multiple of that lag. */
  factor: 2,
  /** Shortest adaptive wait: one re-announcement interval (engine.ts, 2 s) plus a margin for the fetch. */
  floorMs: 3_000
} as const

function quantile (xs: number[], q: number): number {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

/** How long a round waits after its first update, given recent lags (ms) of updates behind their round's first. */
export function adaptiveWaitMs (lagsMs: number[], timeoutMs: number): number {
  if (lagsMs.length < ADAPTIVE_DEADLINE.minSamples) return timeoutMs
  const wait = Math.ceil(ADAPTIVE_DEADLINE.factor * quantile(lagsMs, ADAPTIVE_DEADLINE.quantile))
  return Math.min(timeoutMs, Math.max(ADAPTIVE_DEADLINE.floorMs, wait))
}

/** Recent arrival lags: how long after its round's first update each update (ours included) arrived. */
export class LagWindow {
  private readonly lagsMs: number[] = []

  record (lagMs: number): void {
    this.lagsMs.push(Math.max(0, lagMs))
    if (this.lagsMs.length > ADAPTIVE_DEADLINE.window) this.lagsMs.shift()
  }

  waitMs (timeoutMs: number): number {
    return adaptiveWaitMs(this.lagsMs, timeoutMs)
  }
}
