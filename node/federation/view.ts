/**
 * View completion: whom a peer counts as a participant on its peers' word. A round must know of the
 * quorum's worth of participants before it closes (round-state.ts); with group averaging a peer hears of
 * those outside its group only from their presence announcements, one round in ceil(n / 8), so a round
 * short of its quorum asks its partners whom they have heard from. Their answers are hearsay: a
 * participant counts only once several peers name it, and never for longer than they can vouch.
 */

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
