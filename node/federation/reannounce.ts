/**
 * When a waiting peer announces its update again. Gossipsub only forwards along meshes that exist when a
 * message arrives, so an announcement made while peers are still joining can miss them (receivers drop
 * repeats by round and sender). But every announcement floods the whole topic, so a peer
 * that re-announced every REANNOUNCE_MS through a long wait (partners still training) sent more bytes in
 * announcements than in payloads: at 32 peers, 3.1 MB of a peer's 4.0 MB per round. Partners that are
 * still training hold the first announcement already (updates for later rounds are kept); repeats are for
 * the peers that missed it, which a few doublings still reach. A partner never heard of before resets the
 * interval, so a peer that joins mid-round learns of the update within REANNOUNCE_MS. A repeat is told to
 * the partners that lack the update, not published; it goes on the topic only while the round may need
 * peers that do not know of us yet (engine.ts, runRound).
 */

/** The first interval between announcements of one update. */
export const REANNOUNCE_MS = 2_000
/** The longest interval: a peer that missed every announcement so far hears one within this. */
export const REANNOUNCE_MAX_MS = 16_000

export class ReannounceSchedule {
  private intervalMs = REANNOUNCE_MS
  private readonly known: Set<string>

  /** `lastAt`: when the update was last announced (ms since the epoch), to `partners`. */
  constructor (private lastAt: number, partners: Iterable<string>) {
    this.known = new Set(partners)
  }

  /** When the next announcement is due, given whom the round now averages with. */
  dueAt (partners: Iterable<string>): number {
    for (const peer of partners) {
      if (this.known.has(peer)) continue
      this.known.add(peer)
      this.intervalMs = REANNOUNCE_MS
    }
    return this.lastAt + this.intervalMs
  }

  /** Records an announcement at `at`; the next waits twice as long, up to REANNOUNCE_MAX_MS. */
  announced (at: number): void {
    this.lastAt = at
    this.intervalMs = Math.min(2 * this.intervalMs, REANNOUNCE_MAX_MS)
  }
}
