/**
 * Per-peer token buckets: each peer may spend a burst of `burst` tokens, refilled at `refillPerSecond`.
 * Bounded memory: peers idle long enough to be full again are forgotten.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number, at: number }>()

  constructor (private readonly burst: number, private readonly refillPerSecond: number, private readonly now: () => number = Date.now) {}

  /** Takes one token from `peer`'s bucket; false when it has none left. */
  allow (peer: string): boolean {
    const t = this.now()
    const bucket = this.buckets.get(peer) ?? { tokens: this.burst, at: t }
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((t - bucket.at) / 1000) * this.refillPerSecond)
    bucket.at = t
    this.buckets.set(peer, bucket)
    if (this.buckets.size > 4096) this.forgetFull(t)
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  private forgetFull (t: number): void {
    const fullAfterMs = (this.burst / this.refillPerSecond) * 1000
    for (const [peer, b] of this.buckets) if (t - b.at >= fullAfterMs) this.buckets.delete(peer)
  }
}
