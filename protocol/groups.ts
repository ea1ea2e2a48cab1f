/**
 * Group averaging (after Moshpit All-Reduce, Ryabinin et al., NeurIPS 2021): each round a peer averages
 * with a small group instead of the whole federation, so its traffic per round does not grow with the
 * federation. Groups are a pure function of the federation, the round and the participants a peer knows
 * of, so peers that know of the same participants form the same groups with no extra messages, and the
 * groups change every round, which mixes the average across the federation.
 */
import { sha256Hex } from './canonical.js'
import { LIMITS } from './constants.js'

/** Averaging schemes a manifest may choose (`aggregation.averaging`). */
export const AVERAGING_SCHEMES = ['all-to-all', 'group'] as const
export type AveragingScheme = typeof AVERAGING_SCHEMES[number]

/** A round's group as one peer sees it. */
export interface RoundGroup {
  /** The peers it averages with this round, itself included. */
  members: ReadonlySet<string>
  /** How many groups the participants it knows of form this round (1: everyone averages together). */
  groupCount: number
}

// `/2`: the rule that cuts the order into groups changed (blocks, not `i mod G`); the suffix names it.
const groupingInput = (federationId: string, round: number, peer: string): string => `fedgrow/group/2 ${federationId} ${round} ${peer}`

/**
 * Keys already hashed: a peer asks for its group on every announcement and every wake of a waiting round,
 * which with hundreds of participants (a simulation holds them all in one process) is hashing them all
 * each time. Emptied when full, so it stays bounded.
 */
const knownKeys = new Map<string, string>()
const KNOWN_KEYS_LIMIT = 65_536

/** The key that orders participants in `round`: a hash, so no peer can choose its place in the order. */
function groupingKey (federationId: string, round: number, peer: string): string {
  const input = groupingInput(federationId, round, peer)
  let key = knownKeys.get(input)
  if (key === undefined) {
    if (knownKeys.size >= KNOWN_KEYS_LIMIT) knownKeys.clear()
    key = sha256Hex(input)
    knownKeys.set(input, key)
  }
  return key
}

/**
 * The group of `self` in `round` among `participants` (self included or not): the participants are sorted
 * by groupingKey, there are G = max(1, floor(n / groupSize)) groups of n participants, and the i-th in
 * that order (from 0) is in group floor(i * G / n): contiguous blocks of floor(n / G) or ceil(n / G), so
 * groups hold min(n, groupSize) to 2 * groupSize - 1 peers. Blocks, not `i mod G`, because peers' views
 * of the participants differ a little: one participant more or less (with G unchanged) moves at most one
 * peer across each of the G - 1 block boundaries, where `i mod G` moved nearly everyone after it.
 */
export function roundGroup (federationId: string, round: number, self: string, participants: Iterable<string>, groupSize: number): RoundGroup {
  const everyone = [...new Set([...participants, self])]
  const keyed = everyone.map(peer => ({ peer, key: groupingKey(federationId, round, peer) })).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  const groupCount = Math.max(1, Math.floor(everyone.length / groupSize))
  const groupOf = (i: number): number => Math.floor(i * groupCount / keyed.length)
  const ownGroup = groupOf(keyed.findIndex(k => k.peer === self))
  return { members: new Set(keyed.filter((_, i) => groupOf(i) === ownGroup).map(k => k.peer)), groupCount }
}

/**
 * With group averaging, rounds between a participant's announcements on the topic, among
 * `participantCount` participants known: about LIMITS.presenceAnnouncersPerRound of them announce there
 * each round. A participant is forgotten only after this many rounds more of silence than
 * LIMITS.silentRoundsForgotten, as the others may hear of it no oftener.
 */
export function presenceInterval (participantCount: number): number {
  return Math.max(1, Math.ceil(participantCount / LIMITS.presenceAnnouncersPerRound))
}

/**
 * Whether `peer` announces its update for `round` on the topic (its presence round) rather than telling
 * its group alone: once every presenceInterval(participantCount) rounds, at a phase set by the hash of its
 * id, so that presence rounds spread evenly over the rounds instead of every peer's falling on the same one.
 */
export function presenceRound (federationId: string, round: number, peer: string, participantCount: number): boolean {
  const interval = presenceInterval(participantCount)
  const phase = Number.parseInt(sha256Hex(`fedgrow/presence/1 ${federationId} ${peer}`).slice(0, 8), 16) % interval
  return (round + phase) % interval === 0
}
