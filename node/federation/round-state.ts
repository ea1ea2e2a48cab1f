/**
 * When a peer stops collecting a round, as a pure function of what it knows at that moment: the round
 * engine gathers the view (who it waits for, who reported, who is ahead) and acts on the decision. A
 * scheme that averages with fewer peers changes whom a round waits for, not this rule.
 */

/**
 * How long a round waits after first seeing peers announce a later round before it adopts their result
 * (its own fetches may just be finishing), and then how often it asks again.
 */
export const CATCH_UP_GRACE_MS = 2_000

/** What a peer knows of the round it collects. Times are ms since the epoch. */
export interface RoundView {
  /** Participants the round waits for, own id included. */
  expected: ReadonlySet<string>
  /** Senders whose update arrived and passed every check, own included. */
  contributed: ReadonlySet<string>
  /**
   * Expected participants that reported invalidly (rejected, banned) or whose update could not be
   * fetched: they count toward the quorum, not the mean, and are not waited for.
   */
  excluded: ReadonlySet<string>
  /**
   * Participants outside `expected` that the round knows of (heard from lately, or announcing it): with
   * group averaging, the other groups. They count toward the quorum, which says how many participants a
   * round must know of (so that a peer that knows few peers yet does not close on a group it computed
   * from them), not how many it averages with: a round that had to hear every other group's update
   * would wait on the whole federation, the cost groups are there to avoid.
   */
  knownElsewhere: ReadonlySet<string>
  quorum: number
  /**
   * Group averaging: a partner announces the next round, and nobody is further ahead. That partner closed
   * this round knowing of the quorum, which is there so that a peer that knows few participants does not
   * close on a group computed from them; so once every partner we wait for has reported, the round closes
   * whether we know of the quorum or not, instead of discarding our update for a catch-up. (At 64
   * simulated peers, 56 of 79 catch-ups held every partner's update and lacked only the quorum.)
   * All-to-all never sets it: peers ahead closed on more participants than we know of, and a catch-up
   * adopts their common result.
   */
  partnerClosed: boolean
  /** When the round's first update arrived, ours or a peer's. */
  firstSeenAt: number
  /** How long after `firstSeenAt` the round stops waiting for more (adaptive: deadline.ts). */
  waitMs: number
  /** When the round closes with whatever arrived, quorum or not, if anything did. */
  hardDeadlineAt: number
  /** Peers, not banned, announcing a later round now: they closed this one without us. */
  ahead: readonly string[]
  /**
   * When a peer was first seen ahead during this round. It stays set when `ahead` empties (that peer
   * crashed or was banned): others may have closed the round too, and a catch-up asks everyone.
   */
  aheadSince?: number
  /** When this round last asked peers for their state (0: never). */
  lastCatchUpAt: number
}

/** Why a round closes: everyone expected reported (and the quorum was met), the adaptive deadline, or the hard one. */
export const CLOSE_REASONS = ['all-reported', 'deadline', 'hard-deadline'] as const
export type CloseReason = typeof CLOSE_REASONS[number]

/** How a round can end: closed for one of CLOSE_REASONS, or adopted whole from peers ahead of us (a catch-up). */
export const ROUND_ENDINGS = [...CLOSE_REASONS, 'caught-up'] as const
export type RoundEnding = typeof ROUND_ENDINGS[number]

export type RoundDecision =
  | { action: 'close', because: CloseReason }
  | { action: 'catch-up', from: readonly string[] }
  /** Nothing to do until `until` (ms; Infinity: never by time alone) or until the view changes. */
  | { action: 'wait', until: number }

export function decide (view: RoundView, now: number): RoundDecision {
  const allReported = [...view.expected].every(peer => view.excluded.has(peer) || view.contributed.has(peer))
  // A peer whose update was rejected did report, invalidly: it counts towards the quorum.
  const quorate = view.contributed.size + view.excluded.size + view.knownElsewhere.size >= view.quorum
  if (allReported && (quorate || view.partnerClosed)) return { action: 'close', because: 'all-reported' }
  if (quorate && now >= view.firstSeenAt + view.waitMs) return { action: 'close', because: 'deadline' }
  if (now >= view.hardDeadlineAt && view.contributed.size >= 1) return { action: 'close', because: 'hard-deadline' }
  const catchUpAt = view.aheadSince !== undefined ? Math.max(view.aheadSince, view.lastCatchUpAt) + CATCH_UP_GRACE_MS : Infinity
  if (now >= catchUpAt) return { action: 'catch-up', from: view.ahead }
  const deadlineAt = quorate ? view.firstSeenAt + view.waitMs : Infinity
  const hardDeadlineAt = view.contributed.size >= 1 ? view.hardDeadlineAt : Infinity
  return { action: 'wait', until: Math.min(deadlineAt, hardDeadlineAt, catchUpAt) }
}

/** Peers seen announcing rounds after the one being collected, by how far after: lists, as more than one rule reads them. */
export interface LaterAnnouncers {
  /** Announced the next round (held for it). */
  next: readonly string[]
  /** Announced the round after next (held for it: LIMITS.maxRoundsAhead is 2). */
  afterNext: readonly string[]
  /** Announced a round too far ahead to hold. */
  farther: readonly string[]
}

/**
 * Whether a partner has closed the round being collected in step with us (group averaging): one announces
 * the next round, and nobody the round after it or later (then we fell behind, and catch up).
 */
export function partnerClosed (later: LaterAnnouncers, partners: ReadonlySet<string>, ignored: (peer: string) => boolean): boolean {
  const counts = (peer: string): boolean => !ignored(peer)
  return later.next.some(peer => partners.has(peer) && counts(peer)) && ![...later.afterNext, ...later.farther].some(counts)
}

/**
 * Who has closed the round being collected without us. With groups, a peer in the next round closed
 * ours only if it is a partner (other groups close on their own time); one two rounds ahead or more
 * has closed it whatever its group, so we fell behind. `ignored` (self, banned) is never ahead.
 */
export function peersAhead (later: LaterAnnouncers, partners: ReadonlySet<string>, ignored: (peer: string) => boolean): string[] {
  const next = later.next.filter(peer => partners.has(peer))
  return [...new Set([...next, ...later.afterNext, ...later.farther])].filter(peer => !ignored(peer))
}
