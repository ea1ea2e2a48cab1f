/**
 * View completion: whom a peer counts as a participant on its peers' word. A round must know of the
 * quorum's worth of participants before it closes (round-state.ts); with group averaging a peer hears of
 * those outside its group only from their presence announcements, one round in ceil(n / 8), so a round
 * short of its quorum asks its partners whom they have heard from. Their answers are hearsay: a
 * participant counts only once several peers name it, and never for longer than they can vouch.
 */
import { LIMITS } from '../../protocol/constants.js'
import type { ViewEntry } from '../../protocol/messages.js'

/** One peer's answer: the participants it heard from itself, each with the last round it did. */
export type ViewAnswer = ReadonlyMap<string, number>

/**
 * The participants that at least `vouchers` of `answers` name, each with the `vouchers`-th latest round
 * they name it with: so fewer than `vouchers` peers can neither add a name nor keep one alive by naming a
 * late round.
 */
export function vouchedParticipants (answers: Iterable<ViewAnswer>, vouchers: number): Map<string, number> {
  const rounds = new Map<string, number[]>()
  for (const answer of answers) {
    for (const [peer, round] of answer) rounds.set(peer, [...rounds.get(peer) ?? [], round])
  }
  const vouched = new Map<string, number>()
  for (const [peer, named] of rounds) {
    if (named.length >= vouchers) vouched.set(peer, named.sort((a, b) => b - a)[vouchers - 1])
  }
  return vouched
}

/**
 * What one peer's rounds learn from their peers' views: whom to ask (each peer once a round, at most
 * LIMITS.viewAsksPerRound), and the participants LIMITS.viewVouchers answers of one round name, kept with
 * the round they vouch for until they are as silent as a forgotten participant.
 */
export class PeerViews {
  private readonly vouched = new Map<string, number>()
  private readonly answers = new Map<string, ViewAnswer>()
  private readonly asked = new Set<string>()

  /** A new round: its answers start afresh; what earlier rounds were vouched for stays until forgotten. */
  newRound (): void {
    this.answers.clear()
    this.asked.clear()
  }

  /** Of `candidates`, those to ask now, each noted as asked: none asked before this round, within the round's budget. */
  toAsk (candidates: Iterable<string>): string[] {
    const chosen: string[] = []
    for (const peer of candidates) {
      if (this.asked.size >= LIMITS.viewAsksPerRound) break
      if (this.asked.has(peer)) continue
      this.asked.add(peer)
      chosen.push(peer)
    }
    return chosen
  }

  /**
   * Records `from`'s answer in `round` (a round after it counts as `round`: nobody is heard from ahead of
   * time) and what the round's answers now vouch for. `ignored` peers (self, banned) neither vouch nor count.
   */
  record (from: string, participants: readonly ViewEntry[], round: number, ignored: (peer: string) => boolean): void {
    this.answers.set(from, new Map(participants.map(entry => [entry.peer, Math.min(entry.round, round)])))
    const answers = [...this.answers].filter(([peer]) => !ignored(peer)).map(([, answer]) => answer)
    for (const [participant, heard] of vouchedParticipants(answers, LIMITS.viewVouchers)) {
      if (!ignored(participant) && heard > (this.vouched.get(participant) ?? -1)) this.vouched.set(participant, heard)
    }
  }

  /** The participants vouched for within `silentRounds` of `round`, with their round; older ones are forgotten. */
  current (round: number, silentRounds: number): ReadonlyMap<string, number> {
    for (const [peer, heard] of this.vouched) if (round - heard > silentRounds) this.vouched.delete(peer)
    return this.vouched
  }

  /** Everyone vouched for and not yet forgotten. */
  names (): Iterable<string> {
    return this.vouched.keys()
  }
}
