/**
 * The round engine: decentralized averaging of Global-LiGO with no server (Fed-Grow, arXiv 2406.13450,
 * step 3). Each round a peer trains its copy of Global-LiGO, announces the update, collects the round's
 * updates from its peers until every participant it knows of has reported (and the quorum is met) or
 * the deadline passes (adaptive: deadline.ts), then aggregates them in a canonical order, so peers that
 * hold the same set hold bit-identical Global-LiGO. Late updates for past rounds are counted and dropped; updates for later
 * rounds are kept for their round. A peer that starts late, or falls behind, adopts the last completed
 * round that enough of its peers vouch for (catch-up). When to close or catch up is round-state.ts's
 * pure decide(); the engine decides again whenever an update arrives or fails, a sender is banned or a
 * peer is seen ahead, and at the time decide() names, instead of polling. With whom a round averages is
 * everyone it knows of (all-to-all), or with group averaging only this round's group (protocol/groups.ts):
 * it then fetches, waits for and averages its group's updates alone, and tells its update to its group
 * directly, announcing it on the topic only in its presence rounds (protocol/groups.ts, presenceRound).
 * A round that knows of fewer participants than its quorum asks its partners whom they have heard from
 * (view completion: view.ts).
 *
 * Hostile peers (protocol/README.md, threat model): nothing a peer sends can make this engine throw;
 * invalid updates and state answers ban their sender, out-of-bounds values are rejected, a poisoned
 * aggregate is rolled back, and peers that fall silent stop holding rounds up.
 */
import { checkAnnouncement, checkAnnouncementContent } from '../../protocol/messages.js'
import { LIMITS } from '../../protocol/constants.js'
import { ProtocolError } from '../../protocol/errors.js'
import { checkValueBounds, decodePayload, encodePayload, globalDigest, l2Distance, updateHash } from '../../protocol/payload.js'
import { TrainingDivergedError } from '../errors.js'
import type { Announce, AnnounceContentContext, State, View, ViewEntry } from '../../protocol/messages.js'
import type { TensorSpec } from '../../protocol/payload.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { Contribution } from './aggregate.js'
import { ROBUST_RULES, sharedFloat32 } from './strategy.js'
import type { Strategy } from './strategy.js'
import { trafficSince } from './transport.js'
import type { ByteCounts, DropReason, Traffic, UpdateTransport } from './transport.js'
import { LagWindow } from './deadline.js'
import { coordinateMedian } from './aggregate.js'
import { decide, partnerClosed, peersAhead } from './round-state.js'
import type { CloseReason, RoundEnding } from './round-state.js'
import { REANNOUNCE_MS, ReannounceSchedule } from './reannounce.js'
import { presenceInterval, presenceRound, roundGroup } from '../../protocol/groups.js'
import { PeerViews } from './view.js'
import type { RoundGroup } from '../../protocol/groups.js'

/** Reasons to drop an update that an honest peer can cause (timing, the network, our limits): no ban. */
export const NOT_HELD_AGAINST: ReadonlySet<DropReason> = new Set<DropReason>(['late', 'unreachable', 'stale-round', 'over-capacity', 'rate-limited'])

export interface LocalUpdate {
  tensors: TensorMap
  sampleCount: number
  /** Mean training loss of the round's local steps. */
  loss: number
}

// A type, not an interface, so that a round event (node/events.ts) reads as a plain record of fields.
export type RoundResult = {
  round: number
  /** Contributions aggregated, own included (0 when the round was adopted from a peer). */
  peersHeard: number
  /** Participants the round waited for when it closed, own included: known announcers and connected members. */
  peersExpected: number
  /** The round closed without us and we adopted a peer's result (catch-up). */
  caughtUp: boolean
  /** Why the round stopped waiting (round-state.ts): everyone it waited for reported, a deadline, or a catch-up. */
  closedBy: RoundEnding
  /** Updates for rounds already closed, received so far (counted once per sender and round, then dropped). */
  lateUpdates: number
  globalDigest: string
  /** Bytes on the wire during this round (all protocols). */
  bytesSent: number
  bytesReceived: number
  /** The same bytes by protocol family (node/p2p/traffic.ts): where they went. */
  bytesByProtocol: Record<string, ByteCounts>
  /**
   * How far our own update lies from the Global-LiGO the round ended on (the mean of the peers we averaged
   * with: everyone, or our group), relative to that Global-LiGO's norm: how much this round moved us.
   */
  consensusDistance: number
  /** Updates of ours served to peers during this round, each a whole payload (all-to-all: one per peer). */
  payloadsServed: number
  /** Announcements we published on the topic during this round, first ones and re-announcements alike. */
  announcementsSent: number
  /**
   * Announcements we told one peer directly during this round (one per peer told): re-announcements for
   * partners that have not fetched our update, and with group averaging our first announcement outside
   * presence rounds.
   */
  announcementsTold: number
  trainLoss: number
  /** How long after the round's first update the round would stop waiting for more (adaptive: deadline.ts). */
  waitMs: number
  seconds: number
}

/**
 * What the engine's defences did, for the log: each names the defence and why it acted.
 * - `state-rejected`: a state answer broke a rule (its sender is banned, like a bad update's).
 * - `state-unvouched`: peers are ahead, but no state had enough distinct peers agreeing on it.
 * - `pending-ignored`: a state answer listed pending updates; they are unsigned, so never acted on.
 * - `rollback`: an aggregate out of bounds was not adopted, or training from the current Global-LiGO
 *   diverged and the peer went back to the last one it trained from.
 * - `forgotten`: a participant silent for LIMITS.silentRoundsForgotten rounds is no longer waited for.
 * - `state-dropped`: with group averaging, a checked state too far from our Global-LiGO to average into a
 *   catch-up (the update distance bound); not held against its sender, as we may be the one that drifted.
 * - `fetch-given-up`: fetching a sender's update of a round failed LIMITS.maxFetchAttempts times; the
 *   round no longer waits for it, and its re-announcements for that round fetch nothing.
 */
export type DefenceEvent =
  | { event: 'state-rejected', from: string, reason: DropReason, detail: string }
  | { event: 'state-unvouched', round: number, globalDigest: string, vouchers: string[], required: number, detail: string }
  | { event: 'pending-ignored', from: string, entries: number }
  | { event: 'rollback', round: number, reason: 'aggregate-out-of-bounds' | 'training-diverged', globalDigest: string, detail: string }
  | { event: 'forgotten', peer: string, lastRound: number, round: number }
  | { event: 'fetch-given-up', from: string, round: number, attempts: number }
  | { event: 'state-dropped', from: string, round: number, detail: string }

export interface EngineComponents {
  transport: UpdateTransport
  strategy: Strategy
  /**
   * Trains Global-LiGO from `global` on local data for one round; must not keep `global`. It runs off this
   * thread (node/compute/), so the engine keeps serving peers meanwhile.
   */
  trainRound: (global: TensorMap, round: number) => Promise<LocalUpdate>
  /** Called when a round completes, with the new Global-LiGO. */
  onRound: (result: RoundResult, global: TensorMap) => Promise<void> | void
  /**
   * Called for every update this peer drops, with the reason. Reasons in NOT_HELD_AGAINST (late, the
   * fetch failed on the network, our capacity) are not held against the sender; every other reason bans it.
   */
  onReject?: (from: string, reason: DropReason, detail: string) => void
  /** Called with every contribution as it is accepted (used by audits and tests). */
  onContribution?: (round: number, contribution: Contribution, payload: Uint8Array) => void
  /** Called whenever a defence against a hostile or broken peer acts (DefenceEvent). */
  onDefence?: (event: DefenceEvent) => void
  /** Something failed that the engine works around (e.g. a re-announcement); absent: process warnings. */
  onWarning?: (message: string) => void
}

export interface EngineInit {
  federationId: string
  /** Global-LiGO tensor names and shapes, in canonical order. */
  expected: TensorSpec[]
  rounds: number
  /**
   * The manifest's last round (at least `rounds`, which may stop earlier): no honest peer announces or
   * holds a later one, so one that does is banned. @default rounds
   */
  scheduleRounds?: number
  roundTimeoutMs: number
  quorum: number
  /** Group averaging's smallest group (the manifest's aggregation.groupSize); absent: all-to-all. */
  groupSize?: number
  /** Global-LiGO to start from, and the last completed round it belongs to (0 = initial). */
  initial: TensorMap
  completedRound: number
}

/** The engine's running totals at one moment: what a round's report takes the difference of. */
interface RoundCounters {
  bytes: Traffic
  payloadsServed: number
  announcementsSent: number
  announcementsTold: number
}

/** What a catch-up adopts: a round and its Global-LiGO. */
type AdoptableState = Pick<CheckedState, 'round' | 'tensors' | 'payload'>

/** A peer's answer of its round and digest, without its Global-LiGO, that passed the header checks. */
interface StateClaim {
  from: string
  round: number
  digest: string
}

/** A state fetched whole from one of the peers that claimed it, that passed every check. */
interface CheckedState extends StateClaim {
  tensors: TensorMap
  payload: Uint8Array
}

interface Pending {
  announce: Announce
  from: string
  contribution?: Contribution
  /** Whether its payload is being fetched or was: only partners' are (group averaging). */
  fetching?: boolean
  /** When the contribution arrived (ms since the epoch). */
  arrivedAt?: number
  /** Our own update's bytes, served to peers that fetch it. */
  payload?: Uint8Array
  /**
   * Peers whose fetch of our own update completed (its stream closed), not peers that asked: one whose
   * transfer broke off is told again, and finish() does not stop the host under a transfer.
   */
  fetchedBy?: Set<string>
  /** Peers our own update was told to (sent: a tell that fails goes to the topic, which reaches them too). */
  toldTo?: Set<string>
}

/** The Global-LiGO a peer holds, trains from and serves, with its encoding and its digest, which every state answer names. */
interface HeldGlobal {
  tensors: TensorMap
  payload: Uint8Array
  digest: string
}

function heldGlobal (tensors: TensorMap, payload = encodePayload(tensors)): HeldGlobal {
  return { tensors, payload, digest: globalDigest(tensors) }
}

/** `items` by `key`, each list in the order the items came. */
function groupBy<T> (items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item])
  return groups
}

export class RoundEngine {
  private held: HeldGlobal
  private completed: number
  private collecting: number
  /** Announcements and accepted contributions by round, then by sender. */
  private readonly pool = new Map<number, Map<string, Pending>>()
  /**
   * Everyone we have heard of, with the last round it announced (or, for a topic subscriber not heard
   * yet, the round we first saw it): waited for until it has been silent for LIMITS.silentRoundsForgotten.
   */
  private readonly lastHeard = new Map<string, number>()
  /**
   * Participants we have not heard from ourselves but peers' view answers vouch for (view.ts): waited for
   * and grouped with like those in lastHeard, and forgotten the same way, but never named in our own view
   * answers, so that peers naming each other cannot keep a departed participant alive.
   */
  private readonly views = new PeerViews()
  /** Silent participants already reported as forgotten (reported again only after they speak again). */
  private readonly forgotten = new Set<string>()
  /** The Global-LiGO this peer last trained from without diverging: where a poisoned one rolls back to. */
  private lastTrained: HeldGlobal | undefined
  /** Peers whose update we rejected, by round: not waited for in that round. */
  private readonly failed = new Map<number, Set<string>>()
  /** Peers that sent invalid updates: their messages are dropped from now on, so nobody waits for them. */
  private readonly banned = new Set<string>()
  private stopped = false
  /** Network failures fetching each (round, sender)'s payload so far. */
  private readonly fetchFailures = new Map<string, { attempts: number, lastAt: number }>()
  /** When we last re-announced our update of the round we last completed (reannounceCompleted). */
  private lastCompletedReannounce = 0
  /** (sender, round) of late updates already counted, so re-announcements count once. */
  private readonly lateSeen = new Set<string>()
  private lateUpdates = 0
  private readonly lags = new LagWindow()
  /** Rounds this engine has closed itself (not adopted). */
  private roundsRun = 0
  /** The first round this engine trained for: others may not know of it yet, so it announces on the topic. */
  private firstRound: number | undefined
  /**
   * With group averaging, peers that told us their update for a round directly, by round: they count us
   * in their group, so we count them in ours (partners()) and each side fetches the other's update.
   */
  private readonly toldBy = new Map<number, Set<string>>()
  /** Rounds whose update went to the topic because a tell failed: once a round (announceTo). */
  private readonly fellBackIn = new Set<number>()
  /** The addresses each peer last announced: where a tell reaches a peer we are not connected to. */
  private readonly addressesOf = new Map<string, string[]>()
  /** Peers seen announcing rounds beyond the ones we hold updates for, with that round. */
  private readonly farAhead = new Map<string, number>()
  /** Peers whose claim to be ahead a catch-up disproved, with when we may believe them again (disproveClaims). */
  private readonly disprovedUntil = new Map<string, number>()
  /** Ends the current wait of the round being collected (or of finish()) early; see nudge(). */
  private wakeWaiter: (() => void) | undefined
  /** Payload answers sent so far; each round reports its share. */
  private payloadsServed = 0
  private announcementsSent = 0
  private announcementsTold = 0
  /**
   * The counters when the last round was reported. Each round reports what happened since then, so that
   * traffic between a round's close and the next round's start (a slower partner fetching our payload
   * while we evaluate) is counted in the next round rather than in none.
   */
  private reportedUpTo: RoundCounters | undefined

  constructor (private readonly components: EngineComponents, private readonly init: EngineInit) {
    this.held = heldGlobal(init.initial)
    this.completed = init.completedRound
    this.collecting = init.completedRound + 1
  }

  private get global (): TensorMap {
    return this.held.tensors
  }

  private get globalPayload (): Uint8Array {
    return this.held.payload
  }

  get completedRound (): number {
    return this.completed
  }

  get currentGlobal (): TensorMap {
    return this.global
  }

  get payloadBytes (): number {
    return this.globalPayload.length
  }

  /** Joins the topic and serves payloads and state. */
  async join (): Promise<void> {
    await this.components.transport.join({
      payload: (req) => {
        const own = this.ownUpdate(req.round)
        if (own?.announce.payloadHash !== req.payloadHash || own.payload === undefined) return null
        this.payloadsServed++
        return own.payload
      },
      served: (req, from) => {
        const own = this.ownUpdate(req.round)
        if (own?.announce.payloadHash !== req.payloadHash) return
        own.fetchedBy?.add(from)
        this.nudge()
      },
      state: () => ({ header: this.stateHeader(), payload: this.globalPayload }),
      view: () => this.ownView()
    }, (from, announce, told) => { this.receive(from, announce, told) }, (from, announce) => this.screen(from, announce))
  }

  /**
   * The topic validator's check, before an announcement is forwarded: false, and its sender banned, when
   * this engine would hold it against its sender whatever round it is in (checkAnnouncementContent, or a
   * replayed update). Round timing (stale, far ahead) is left to receive(): an honest peer causes it.
   */
  screen (from: string, announce: Announce): boolean {
    if (this.banned.has(from)) return false
    try {
      checkAnnouncementContent(announce, this.announceContext())
      this.checkNotReplayed(from, announce)
      return true
    } catch (err) {
      this.reject(from, err instanceof ProtocolError ? err.reason : 'malformed', (err as Error).message)
      return false
    }
  }

  private announceContext (): AnnounceContentContext & { currentRound: number } {
    return { federationId: this.init.federationId, currentRound: this.collecting, payloadBytes: this.globalPayload.length, lastRound: this.scheduleRounds }
  }

  /**
   * Throws ProtocolError('replay') when the announced update hash is one we already verified for another
   * author or round. Update hashes bind both (updateHash), so an honest peer never announces one.
   */
  private checkNotReplayed (from: string, announce: Announce): void {
    const original = this.verifiedUpdate(announce.payloadHash)
    if (original === undefined || (original.from === from && original.round === announce.round)) return
    throw new ProtocolError('replay', `update ${announce.payloadHash.slice(0, 12)}… announced for round ${announce.round} is ${original.from}'s update of round ${original.round}`)
  }

  /** The author and round of a held update whose hash we verified (own included). */
  private verifiedUpdate (hash: string): { from: string, round: number } | undefined {
    for (const [round, pool] of this.pool) {
      for (const entry of pool.values()) if (entry.contribution !== undefined && entry.announce.payloadHash === hash) return { from: entry.from, round }
    }
    return undefined
  }

  private get scheduleRounds (): number {
    return this.init.scheduleRounds ?? this.init.rounds
  }

  /**
   * Our state answer. `pending` stays empty: its entries are relayed announcements without their
   * signatures, so no receiver may act on them (protocol/README.md); peers re-announce anyway.
   */
  private stateHeader (): State {
    return { type: 'state', federationId: this.init.federationId, round: this.completed, globalDigest: this.held.digest, payloadBytes: this.globalPayload.length, pending: [] }
  }

  /**
   * Catch-up: asks `ahead` (peers seen beyond our round) and the other participants for their last
   * completed round and its digest, and adopts the one state ahead of ours, within our schedule, that
   * the most distinct peers answered with: at least LIMITS.catchUpVouchers of them, or every peer that
   * answered when fewer did, and strictly more than back any other state ahead. Only that state is
   * fetched whole, from one of the peers that claimed it. Returns the round we now hold. Never throws: an
   * answer that breaks a rule bans its sender, an unreachable peer is skipped.
   */
  async catchUp (ahead: string[]): Promise<number> {
    const asked = this.catchUpCandidates(ahead)
    const answers = await Promise.all(asked.map(async peer => await this.askClaim(peer)))
    this.disproveClaims(asked, answers)
    const answered = answers.filter(a => a !== 'unreachable')
    const claims = answered.filter((a): a is StateClaim => a !== 'rejected')
      .filter(a => a.round > this.completed && a.round <= this.init.rounds)
    const required = Math.min(LIMITS.catchUpVouchers, answered.length)
    const chosen = this.init.groupSize === undefined ? await this.vouchedState(claims, required) : await this.aggregateOfStates(claims, required)
    if (chosen === null) return this.completed
    this.held = heldGlobal(chosen.tensors, chosen.payload)
    this.completed = chosen.round
    this.collecting = chosen.round + 1
    return this.completed
  }

  /**
   * An honest announcer of round R has completed R - 1: a peer asked whose state is for an earlier round,
   * or that gave none, was not ahead (or is gone). It is not taken as ahead for LIMITS.disprovedAheadMs,
   * so that one announcement of a far round cannot make every round catch up.
   */
  private disproveClaims (asked: string[], answers: Array<StateClaim | 'rejected' | 'unreachable'>): void {
    const claims = this.claimsAhead()
    asked.forEach((peer, i) => {
      const claim = claims.get(peer)
      const answer = answers[i]
      if (claim === undefined || (typeof answer !== 'string' && answer.round >= claim - 1)) return
      this.farAhead.delete(peer)
      this.disprovedUntil.set(peer, Date.now() + LIMITS.disprovedAheadMs)
    })
  }

  /** The latest round each peer announced beyond the one we collect: how far it claims to be. */
  private claimsAhead (): Map<string, number> {
    const claims = new Map(this.farAhead)
    for (const [round, pool] of this.pool) {
      if (round <= this.collecting) continue
      for (const peer of pool.keys()) claims.set(peer, Math.max(round, claims.get(peer) ?? 0))
    }
    return claims
  }

  private isDisproved (peer: string): boolean {
    return (this.disprovedUntil.get(peer) ?? 0) > Date.now()
  }

  /** Whom one catch-up asks: peers ahead first, then everyone else we know of, at most LIMITS.catchUpMaxAsks. */
  private catchUpCandidates (ahead: string[]): string[] {
    const { transport } = this.components
    const everyone = [...ahead, ...transport.participants(), ...this.awaited(this.collecting)]
    return [...new Set(everyone)].filter(peer => peer !== transport.selfId && !this.banned.has(peer)).slice(0, LIMITS.catchUpMaxAsks)
  }

  /** One peer's round and digest, checked; 'rejected' when it broke a rule (the peer is banned), 'unreachable' when none came. */
  private async askClaim (peer: string): Promise<StateClaim | 'rejected' | 'unreachable'> {
    try {
      const header = await this.components.transport.requestStateHeader(peer)
      const claim = this.checkClaim(peer, header)
      // Reported here alone: the fetch of a claimed state checks its header again.
      if (header.pending.length > 0) this.components.onDefence?.({ event: 'pending-ignored', from: peer, entries: header.pending.length })
      return claim
    } catch (err) {
      // A malformed answer is the sender's doing; a failed dial or a well-formed refusal is not.
      if (!(err instanceof ProtocolError)) return 'unreachable'
      this.rejectState(peer, err.reason, err.message)
      return 'rejected'
    }
  }

  /** Checks a state answer's header; throws ProtocolError with the reason. */
  private checkClaim (from: string, header: State): StateClaim {
    if (header.federationId !== this.init.federationId) throw new ProtocolError('wrong-federation', `state for federation ${header.federationId.slice(0, 12)}…`)
    if (header.round > this.scheduleRounds) throw new ProtocolError('beyond-schedule', `state of round ${header.round}, after the manifest's last round ${this.scheduleRounds}`)
    return { from, round: header.round, digest: header.globalDigest }
  }

  /**
   * The state `vouchers` all claimed, fetched from the first of them that delivers it, checked as strictly
   * as an update; null if none did. One that sends another state has moved on since it answered (not
   * held against it); one whose payload breaks a rule is banned.
   */
  private async fetchClaimed (vouchers: StateClaim[]): Promise<CheckedState | null> {
    for (const claim of vouchers) {
      let answer: { header: State, payload: Uint8Array }
      try {
        answer = await this.components.transport.requestState(claim.from, this.globalPayload.length)
      } catch (err) {
        if (err instanceof ProtocolError) this.rejectState(claim.from, err.reason, err.message)
        continue // unreachable, or a well-formed refusal: the next peer that claimed it
      }
      if (answer.header.round !== claim.round || answer.header.globalDigest !== claim.digest) continue
      try {
        return this.checkState(this.checkClaim(claim.from, answer.header), answer.payload)
      } catch (err) {
        this.rejectState(claim.from, err instanceof ProtocolError ? err.reason : 'malformed', (err as Error).message)
      }
    }
    return null
  }

  /** Checks a claimed state's Global-LiGO; throws ProtocolError with the reason. */
  private checkState (claim: StateClaim, payload: Uint8Array): CheckedState {
    const tensors = decodePayload(payload, this.init.expected)
    if (globalDigest(tensors) !== claim.digest) throw new ProtocolError('hash-mismatch', `state of round ${claim.round} does not match its digest`)
    // Only the absolute bound: a peer that joins late has no current Global-LiGO to measure a state against.
    checkValueBounds(tensors)
    return { ...claim, tensors, payload }
  }

  private rejectState (from: string, reason: DropReason, detail: string): void {
    this.components.onDefence?.({ event: 'state-rejected', from, reason, detail })
    this.ban(from, reason)
  }

  private unvouched (claims: StateClaim[], required: number, detail: string): null {
    this.components.onDefence?.({ event: 'state-unvouched', round: claims[0].round, globalDigest: claims[0].digest, vouchers: claims.map(a => a.from), required, detail })
    return null
  }

  /**
   * The state to adopt among claims of rounds ahead: the (round, digest) the most peers claimed, if they
   * are at least `required` and no other has as many, fetched from one of them. When every one of them
   * was banned for what it sent, the claims of the others are ranked again.
   */
  private async vouchedState (claims: StateClaim[], required: number): Promise<AdoptableState | null> {
    const ranked = [...groupBy(claims, a => `${a.round}:${a.digest}`).values()].sort((x, y) => y.length - x.length)
    if (ranked.length === 0) return null
    const [best, runnerUp] = ranked
    if (runnerUp !== undefined && runnerUp.length === best.length) return this.unvouched(best, required, `as many peers answered with another state ahead (${runnerUp[0].round})`)
    if (best.length < required) return this.unvouched(best, required, `${best.length} of the ${required} distinct peers needed`)
    const state = await this.fetchClaimed(best)
    if (state !== null) return state
    const left = claims.filter(a => !this.banned.has(a.from))
    return left.length < claims.length ? await this.vouchedState(left, required) : this.unvouched(best, required, 'none of the peers that claimed it delivered it')
  }

  /**
   * Group averaging's catch-up: peers of different groups hold different Global-LiGOs of one round, so no
   * digest need have two vouchers. It adopts instead the aggregate of the states of the round most peers
   * claimed (the latest, on a tie), if at least `required` did: one more group average, over the peers
   * asked. Each distinct state is fetched once and counts once per peer that claimed it, whatever its
   * peers' data. No digest vouches for a state, so one hostile state must be bounded otherwise: states too
   * far from ours are dropped (nearbyStates), and a manifest with a robust rule gets the coordinate-wise
   * median (its own rule may need a reference that a peer behind does not hold: centered clipping from a
   * stale Global-LiGO barely moves).
   */
  private async aggregateOfStates (claims: StateClaim[], required: number): Promise<AdoptableState | null> {
    const best = [...groupBy(claims, a => String(a.round)).values()].sort((x, y) => y.length - x.length || y[0].round - x[0].round)[0]
    if (best === undefined) return null
    if (best.length < required) return this.unvouched(best, required, `${best.length} of the ${required} distinct peers needed`)
    const byDigest = groupBy(best, a => a.digest)
    const fetched = (await Promise.all([...byDigest.values()].map(async vouchers => await this.fetchClaimed(vouchers)))).filter((a): a is CheckedState => a !== null)
    const vouchers = (digest: string): StateClaim[] => (byDigest.get(digest) ?? []).filter(a => !this.banned.has(a.from))
    const states = this.nearbyStates(fetched).flatMap(a => vouchers(a.digest).map(({ from }) => ({ from, sampleCount: 1, tensors: a.tensors })))
    if (states.length < required) return this.unvouched(best, required, `${states.length} of the ${required} distinct peers needed delivered a state near ours`)
    const tensors = ROBUST_RULES.has(this.components.strategy.name) ? coordinateMedian(states) : await this.components.strategy.aggregate(states, this.global)
    return tensors === null ? null : { round: best[0].round, tensors, payload: encodePayload(tensors) }
  }

  /**
   * The states within an update's distance of our Global-LiGO (checkValueBounds), once we hold one of
   * our own: a few rounds move a Global-LiGO far less than that bound allows. A peer that has completed
   * no round holds only the initial Global-LiGO and keeps every state: it has nothing to compare with.
   */
  private nearbyStates (answers: CheckedState[]): CheckedState[] {
    if (this.completed === 0) return answers
    return answers.filter(a => {
      try {
        checkValueBounds(a.tensors, this.global)
        return true
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err
        this.components.onDefence?.({ event: 'state-dropped', from: a.from, round: a.round, detail: err.message })
        return false
      }
    })
  }

  private reject (from: string, reason: DropReason, detail: string): void {
    this.components.onReject?.(from, reason, detail)
    if (!NOT_HELD_AGAINST.has(reason)) this.ban(from, reason)
  }

  /** From now on its messages are dropped and no round waits for it. */
  private ban (from: string, reason: DropReason): void {
    this.banned.add(from)
    this.components.transport.penalise(from, reason)
    this.nudge()
  }

  /**
   * Participants a round waits for: everyone heard of (announcers, topic subscribers) who is not banned
   * and has spoken within LIMITS.silentRoundsForgotten rounds of `round`; with group averaging, within
   * that many more as presenceInterval, as a participant outside our groups announces no oftener.
   */
  private awaited (round: number): Set<string> {
    const { transport } = this.components
    for (const peer of transport.participants()) if (!this.lastHeard.has(peer)) this.lastHeard.set(peer, round)
    const silentRounds = this.silentRounds
    const out = new Set<string>()
    for (const [peer, heard] of [...this.lastHeard, ...this.views.current(round, silentRounds)]) {
      if (peer !== transport.selfId && !this.banned.has(peer) && round - heard <= silentRounds) out.add(peer)
    }
    return out
  }

  /**
   * Rounds a participant may stay silent before rounds stop waiting for it: LIMITS.silentRoundsForgotten,
   * and with group averaging that many more as presenceInterval, as a participant outside our groups
   * announces no oftener.
   */
  private get silentRounds (): number {
    return LIMITS.silentRoundsForgotten + (this.init.groupSize === undefined ? 0 : presenceInterval(this.participantsKnown) - 1)
  }

  /** Our view answer: the participants we heard from ourselves within silentRounds, the most lately heard first (the exchange keeps the first LIMITS.maxViewEntries). */
  private ownView (): ViewEntry[] {
    const self = this.components.transport.selfId
    const silentRounds = this.silentRounds
    return [...this.lastHeard]
      .filter(([peer, heard]) => peer !== self && !this.banned.has(peer) && this.collecting - heard <= silentRounds)
      .sort((a, b) => b[1] - a[1])
      .map(([peer, round]) => ({ peer, round }))
  }

  /**
   * View completion: a round that knows of fewer participants than the quorum asks partners whose update
   * arrived (so alive and reachable) whom they have heard from, up to LIMITS.viewAsksPerRound a round.
   */
  private completeView (round: number, contributed: Iterable<string>): void {
    const self = this.components.transport.selfId
    for (const peer of this.views.toAsk([...contributed].filter(peer => peer !== self))) void this.askView(round, peer)
  }

  /**
   * Asks `peer` for its view and counts the participants that LIMITS.viewVouchers of this round's answers
   * name. Never throws: an answer that breaks a rule bans its sender; a peer that is unreachable, or runs a
   * fedgrow without view completion, is simply not counted.
   */
  private async askView (round: number, peer: string): Promise<void> {
    let view: View
    try {
      view = await this.components.transport.requestView(peer)
    } catch (err) {
      if (err instanceof ProtocolError) this.reject(peer, err.reason, `view answer from ${peer}: ${err.message}`)
      return
    }
    if (this.stopped || this.collecting !== round || this.banned.has(peer)) return
    this.views.record(peer, view.participants, round, other => other === this.components.transport.selfId || this.banned.has(other))
    this.nudge()
  }

  /** Everyone `round` knows of: the participants it waits for, those that announced it, and self. */
  private roundMembers (round: number, awaited = this.awaited(round)): Set<string> {
    return new Set([...awaited, ...this.roundPool(round).keys(), this.components.transport.selfId])
  }

  /**
   * With whom `round` averages: everyone it knows of (all-to-all), or this round's group among them and
   * the peers that told us their update for it (they count us in their group: views differ a little).
   */
  private partners (round: number, members?: Set<string>): RoundGroup {
    const everyone = members ?? this.roundMembers(round)
    if (this.init.groupSize === undefined) return { members: everyone, groupCount: 1 }
    const group = roundGroup(this.init.federationId, round, this.components.transport.selfId, everyone, this.init.groupSize)
    const told = [...this.toldBy.get(round) ?? []].filter(peer => !this.banned.has(peer))
    return told.length === 0 ? group : { members: new Set([...group.members, ...told]), groupCount: group.groupCount }
  }

  /** Notes that `from` announced `round`: it takes part, and is waited for again if it had been forgotten. */
  private heardFrom (from: string, round: number): void {
    this.lastHeard.set(from, Math.max(round, this.lastHeard.get(from) ?? 0))
    this.forgotten.delete(from)
  }

  /** Reports, once per silence, each participant that `awaited(round)` has stopped waiting for. */
  private reportForgotten (round: number, awaited: Set<string>): void {
    for (const [peer, heard] of this.lastHeard) {
      if (awaited.has(peer) || this.banned.has(peer) || this.forgotten.has(peer) || peer === this.components.transport.selfId) continue
      this.forgotten.add(peer)
      this.components.onDefence?.({ event: 'forgotten', peer, lastRound: heard, round })
    }
  }

  /**
   * Handles an announcement: checks it, holds it for its round and, from a partner of that round, fetches
   * its payload. One `told` to us alone makes its author a partner of its round (partners()).
   */
  private receive (from: string, announce: Announce, told = false): void {
    if (from === this.components.transport.selfId) return
    try {
      checkAnnouncement(announce, this.announceContext())
      this.checkNotReplayed(from, announce)
    } catch (err) {
      if (err instanceof ProtocolError && err.reason === 'implausible-round' && Number.isInteger(announce.round)) {
        // Too far ahead to hold its update, but a reason to catch up from it (we may have fallen behind),
        // unless a catch-up lately found it was not.
        if (this.isDisproved(from)) return
        this.farAhead.set(from, announce.round)
        this.nudge()
        return
      }
      if (err instanceof ProtocolError && err.reason === 'stale-round') {
        // Too late to average, but its sender takes part. A peer that closed the round early (the front of a
        // shared training queue) would otherwise learn of it only from a later topic announcement, which
        // group averaging mostly replaces with tells to the group.
        this.heardFrom(from, announce.round)
        if (told) this.noteTold(from, announce.round)
        if (announce.round === this.completed) this.reannounceCompleted(from)
        const key = `${from}:${announce.round}`
        if (!this.lateSeen.has(key)) {
          this.lateSeen.add(key)
          this.lateUpdates++
          this.reject(from, 'late', err.message)
        }
      } else {
        this.reject(from, err instanceof ProtocolError ? err.reason : 'malformed', (err as Error).message)
      }
      return
    }
    if (told && this.noteTold(from, announce.round)) this.answerTell(from, announce.round)
    this.addressesOf.set(from, announce.addresses)
    const round = this.roundPool(announce.round)
    if (round.has(from)) {
      // Told by a peer we heard of on the topic: it may just have become a partner whose update to fetch.
      if (told) this.nudge()
      return
    }
    const attemptsKey = `${announce.round}:${from}`
    // Each re-announcement would cost a fresh fetch: after LIMITS.maxFetchAttempts failures, none, and
    // none within LIMITS.fetchRetryAfterMs of a failure (a flapping link would use the attempts up).
    const failures = this.fetchFailures.get(attemptsKey)
    if (failures !== undefined && (failures.attempts >= LIMITS.maxFetchAttempts || Date.now() - failures.lastAt < LIMITS.fetchRetryAfterMs)) return
    if (round.size >= LIMITS.maxPeersPerRound) {
      this.reject(from, 'over-capacity', `round ${announce.round} already holds ${round.size} updates`)
      return
    }
    this.heardFrom(from, announce.round)
    const entry: Pending = { announce, from }
    round.set(from, entry)
    if (this.partners(announce.round).members.has(from)) this.fetchUpdate(entry)
    this.nudge()
  }

  /**
   * Records that `from` told us its update for `round` directly (group averaging: it is a partner then);
   * true the first time, when its tell is answered: answering every tell would make two peers that have
   * not fetched each other's update yet tell each other back and forth until they had.
   */
  private noteTold (from: string, round: number): boolean {
    if (this.init.groupSize === undefined || round < this.completed) return false
    let told = this.toldBy.get(round)
    if (told === undefined) {
      told = new Set()
      this.toldBy.set(round, told)
    }
    if (told.has(from)) return false
    told.add(from)
    return true
  }

  /**
   * A peer that first told us its update for `round` counts us in its group and waits for ours: it is
   * told ours at once, unless it has fetched it, we told it already (partners that tell each other at
   * the same moment would each answer the other's tell), or we have none for that round yet
   * (announceFirst will tell it, as a partner). Later, it is a partner like any other: told again while
   * it has not fetched.
   */
  private answerTell (from: string, round: number): void {
    const own = this.ownUpdate(round)
    if (this.init.groupSize === undefined || own === undefined || own.fetchedBy?.has(from) === true || own.toldTo?.has(from) === true) return
    this.announceTo(own.announce, [from], false).catch((err: Error) => { this.warn(`telling round ${round}'s update to ${from} failed: ${err.message}`) })
  }

  /** Publishes one of our announcements on the topic, counted for the round events. */
  private async publish (announce: Announce): Promise<void> {
    this.announcementsSent++
    await this.components.transport.announce(announce)
  }

  /**
   * Our first announcement of a round's update: on the topic, where every participant hears it; with
   * group averaging, told to our partners alone, except in the first round we train for (peers may not
   * know of us yet) and in our presence rounds, when the topic is how peers outside our group learn that
   * we take part (protocol/groups.ts). Returns whether it went on the topic.
   */
  private async announceFirst (announce: Announce): Promise<boolean> {
    const self = this.components.transport.selfId
    const { round } = announce
    // First, as it brings the topic's subscribers into what we know of.
    const partners = [...this.partners(round).members].filter(peer => peer !== self)
    const onTopic = this.init.groupSize === undefined || round === this.firstRound || presenceRound(this.init.federationId, round, self, this.participantsKnown)
    if (onTopic) {
      await this.publish(announce)
      return true
    }
    await this.announceTo(announce, partners, false)
    return false
  }

  /** Participants ever heard of or vouched for, self included: what presence rounds and the forgetting window scale with. */
  private get participantsKnown (): number {
    return new Set([...this.lastHeard.keys(), ...this.views.names()]).size + 1
  }

  /**
   * Announces our update to `unfetched`, partners that have not fetched it: told to each directly, so
   * that one partner's missing fetch costs one small stream rather than a flood of the topic; on the
   * topic when the round needs peers that may not know of us (`toTopic`), or has no partner to tell. A
   * partner that cannot be told (unreachable, or a peer without the announce protocol) is reached through
   * the topic instead: the round's first failed tell publishes once, which reaches every peer. (Once per
   * call, it was 264 of a 64-peer group run's 524 announcements on the topic: on 2 loaded cores, tells
   * timed out, and every later one to a peer that had stopped was refused.) Tells are not awaited, so a
   * slow partner never holds up the round's decisions.
   */
  private async announceTo (announce: Announce, unfetched: string[], toTopic: boolean): Promise<void> {
    if (toTopic || unfetched.length === 0) {
      await this.publish(announce)
      return
    }
    const viaTopic = (): void => {
      if (this.fellBackIn.has(announce.round) || this.stopped) return
      this.fellBackIn.add(announce.round)
      this.publish(announce).catch((err: Error) => { this.warn(`announcing round ${announce.round} on the topic failed: ${err.message}`) })
    }
    const toldTo = this.ownUpdate(announce.round)?.toldTo
    for (const peer of unfetched) {
      toldTo?.add(peer)
      this.announcementsTold++
      this.components.transport.tell(peer, announce, this.addressesOf.get(peer) ?? []).catch(viaTopic)
    }
  }

  /**
   * At the close of a round whose update we first published on the topic: partners that announced the
   * round but have not fetched our update are waiting for it, most likely because that announcement
   * missed them (a peer that publishes before the mesh has formed reaches nobody). They are told it now,
   * instead of at the next re-announcement, which the close cancels: they would have waited for their
   * own re-announcement to reach us, 2 s or more (reannounceCompleted), as in round 1 of the test
   * suite's 3-peer simulations. A round first told to the group directly needs none: a partner that has
   * not fetched yet holds the tell (its fetch is queued), or the failed tell went to the topic (announceTo).
   */
  private tellWaitingPartners (own: Pending, partners: ReadonlySet<string>): void {
    const { round } = own.announce
    const waiting = [...this.roundPool(round).keys()].filter(peer => peer !== own.from && partners.has(peer) && !this.banned.has(peer) && own.fetchedBy?.has(peer) !== true)
    if (waiting.length === 0) return
    this.announceTo(own.announce, waiting, false).catch((err: Error) => { this.warn(`telling round ${round}'s update to partners still waiting for it failed: ${err.message}`) })
  }

  /** Fetches and validates an announced update once; a network failure lets its next re-announcement retry. */
  private fetchUpdate (entry: Pending): void {
    const { announce, from } = entry
    entry.fetching = true
    const request = { type: 'fetch' as const, federationId: this.init.federationId, round: announce.round, payloadHash: announce.payloadHash }
    this.components.transport.fetch(from, request, announce.addresses, announce.payloadBytes).then(
      (payload) => { this.acceptFetched(entry, payload) },
      (err: Error) => { this.fetchFailed(entry, err) })
  }

  /**
   * Holds a fetched payload to the announcement and the manifest. Only what the sender sent can fail it:
   * an error of this peer's own (in onContribution, e.g. an audit's disk write) is a warning, never a
   * network failure or a reason to ban the sender.
   */
  private acceptFetched (entry: Pending, payload: Uint8Array): void {
    const { announce, from } = entry
    let contribution: Contribution
    try {
      if (updateHash(this.init.federationId, announce.round, from, payload) !== announce.payloadHash) throw new ProtocolError('hash-mismatch', `payload, with its announcer and round ${announce.round}, does not hash to the announced value`)
      // In shared memory, so that a worker aggregating the round reads it in place (strategy.ts offThread).
      // An update is never adopted as it is: tfjs, which may not take shared memory, sees only aggregates.
      const tensors = decodePayload(payload, this.init.expected, sharedFloat32)
      checkValueBounds(tensors, this.global)
      contribution = { from, sampleCount: announce.sampleCount, tensors }
    } catch (err) {
      // An error other than a ProtocolError is a bug of ours on the sender's bytes: not held against the
      // sender (retried like a network failure), but said aloud.
      if (!(err instanceof ProtocolError)) this.warn(`checking round ${announce.round}'s update from ${from} failed unexpectedly: ${(err as Error).stack ?? String(err)}`)
      this.fetchFailed(entry, err as Error)
      return
    }
    entry.contribution = contribution
    entry.arrivedAt = Date.now()
    try {
      this.components.onContribution?.(announce.round, contribution, payload)
    } catch (err) {
      this.warn(`handling round ${announce.round}'s update from ${from} failed here (the update is kept): ${(err as Error).message}`)
    }
    this.nudge()
  }

  /** A ProtocolError is the sender's fault (its reason); anything else is treated as a network failure. */
  private fetchFailed (entry: Pending, err: Error): void {
    const { announce, from } = entry
    const reason: DropReason = err instanceof ProtocolError ? err.reason : 'unreachable'
    this.roundPool(announce.round).delete(from)
    // A fetch that failed on the network (a relayed link replaced mid-stream, a timeout) is tried again on
    // the sender's first re-announcement LIMITS.fetchRetryAfterMs or more later, so the round keeps
    // waiting for it; only after LIMITS.maxFetchAttempts, or for an invalid payload, does the round stop
    // waiting for that sender.
    const attemptsKey = `${announce.round}:${from}`
    const attempts = (this.fetchFailures.get(attemptsKey)?.attempts ?? 0) + 1
    this.fetchFailures.set(attemptsKey, { attempts, lastAt: Date.now() })
    if (reason !== 'unreachable' || attempts >= LIMITS.maxFetchAttempts) this.failed.set(announce.round, new Set([...(this.failed.get(announce.round) ?? []), from]))
    this.reject(from, reason, `fetching round ${announce.round} from ${from} (attempt ${attempts}): ${err.message ?? String(err)}`)
    if (reason === 'unreachable' && attempts === LIMITS.maxFetchAttempts) this.components.onDefence?.({ event: 'fetch-given-up', from, round: announce.round, attempts })
    this.nudge()
  }

  private warn (message: string): void {
    if (this.components.onWarning !== undefined) this.components.onWarning(message)
    else process.emitWarning(message)
  }

  /** Something a waiting round decides on changed (an arrival, a failure, a ban, a peer ahead): decide again now. */
  private nudge (): void {
    this.wakeWaiter?.()
  }

  /**
   * Waits until `at` (ms since the epoch), a nudge() or stop(), whichever comes first, and at most
   * REANNOUNCE_MS: the wait picks up who subscribed to the topic meanwhile (a new partner is told soon).
   */
  private async sleepUntil (at: number): Promise<void> {
    await new Promise<void>(resolve => {
      const wake = (): void => {
        clearTimeout(timer)
        this.wakeWaiter = undefined
        resolve()
      }
      const timer = setTimeout(wake, Math.min(REANNOUNCE_MS, Math.max(0, at - Date.now())))
      this.wakeWaiter = wake
    })
  }

  /**
   * A peer still announcing the round we last completed may have missed our update for it: gossipsub
   * forwards only along meshes that exist when a message arrives, and we stopped re-announcing when we
   * closed the round. Announcing it again (at most every REANNOUNCE_MS) lets that peer close the round on
   * the same updates we did, instead of waiting for its deadline and ending on another Global-LiGO.
   * Only for a partner that has not fetched it: otherwise every peer that closed the round would flood
   * the topic each time one straggler re-announces.
   */
  private reannounceCompleted (straggler: string): void {
    const own = this.ownUpdate(this.completed)
    if (own === undefined || Date.now() - this.lastCompletedReannounce < REANNOUNCE_MS) return
    if (own.fetchedBy?.has(straggler) === true) return
    if (this.init.groupSize !== undefined && !this.partners(this.completed).members.has(straggler)) return
    this.lastCompletedReannounce = Date.now()
    this.announceTo(own.announce, [straggler], false).catch((err: Error) => {
      this.warn(`re-announcing round ${own.announce.round} for peers still in it failed: ${err.message}`)
    })
  }

  /** Our own update of `round`, while the pool holds that round. */
  private ownUpdate (round: number): Pending | undefined {
    return this.pool.get(round)?.get(this.components.transport.selfId)
  }

  private roundPool (round: number): Map<string, Pending> {
    let pool = this.pool.get(round)
    if (pool === undefined) {
      pool = new Map()
      this.pool.set(round, pool)
    }
    return pool
  }

  /** Runs rounds until the manifest's last round (or stop()). */
  async run (): Promise<void> {
    while (!this.stopped && this.completed < this.init.rounds) await this.runRound(this.completed + 1)
  }

  stop (): void {
    this.stopped = true
    this.nudge()
  }

  /**
   * After the last round: keeps re-announcing our final update until every peer we know of has fetched
   * it, or `maxMs` passes. A peer that closed its round early (it had everyone's update) must not leave
   * a peer that missed its announcement waiting for the deadline.
   */
  async finish (maxMs: number): Promise<void> {
    const { transport } = this.components
    const own = this.ownUpdate(this.completed)
    if (own === undefined) return
    const until = Date.now() + maxMs
    const reannounce = new ReannounceSchedule(0, this.partners(this.completed).members)
    while (!this.stopped && Date.now() < until) {
      const partners = this.partners(this.completed).members
      const unfetched = [...partners].filter(p => p !== transport.selfId && own.fetchedBy?.has(p) !== true)
      if (unfetched.length === 0) return
      if (Date.now() >= reannounce.dueAt(partners)) {
        reannounce.announced(Date.now())
        await this.announceTo(own.announce, unfetched, false)
      }
      await this.sleepUntil(Math.min(until, reannounce.dueAt(partners)))
    }
  }

  private async counters (): Promise<RoundCounters> {
    return { bytes: await this.components.transport.bytes(), payloadsServed: this.payloadsServed, announcementsSent: this.announcementsSent, announcementsTold: this.announcementsTold }
  }

  /** A round's share of the counters, from `before` to now; the next round counts from here. */
  private async countedSince (before: RoundCounters): Promise<Pick<RoundResult, 'bytesSent' | 'bytesReceived' | 'bytesByProtocol' | 'payloadsServed' | 'announcementsSent' | 'announcementsTold'>> {
    const now = await this.counters()
    this.reportedUpTo = now
    const traffic = trafficSince(before.bytes, now.bytes)
    return {
      bytesSent: traffic.sent,
      bytesReceived: traffic.received,
      bytesByProtocol: traffic.byProtocol,
      payloadsServed: now.payloadsServed - before.payloadsServed,
      announcementsSent: now.announcementsSent - before.announcementsSent,
      announcementsTold: now.announcementsTold - before.announcementsTold
    }
  }

  /**
   * Whether `round` may need peers that do not know of us, so that a re-announcement goes on the topic.
   * All-to-all: it has heard from fewer than its quorum, and either knows of fewer than that or is the
   * first round we train for (a peer new to the network may not be in others' meshes yet). Group
   * averaging: the same two cases, but only while nobody has fetched our update, the sign that no peer
   * heard of it. Counting whom we have heard from does not fit groups: with a quorum of every peer (as in
   * simulations) a first round hears fewer until the slowest peer has trained, and its re-announcements
   * were 934 of a 64-peer run's 1,071 announcements on the topic; counting whom we know of, 6.3
   * announcements a peer a round still went there, for peers that had heard of us but not yet trained.
   */
  private needsStrangers (round: number, members: Set<string>, heardFrom: number, own: Pending): boolean {
    const { quorum } = this.init
    if (this.init.groupSize === undefined) return heardFrom < quorum && (members.size < quorum || round === this.firstRound)
    return (members.size < quorum || round === this.firstRound) && (own.fetchedBy?.size ?? 0) === 0
  }

  private async runRound (round: number): Promise<void> {
    const { transport } = this.components
    const started = Date.now()
    const before = this.reportedUpTo ?? await this.counters()
    this.collecting = round
    // Keep the last completed round, whose payloads slower peers may still be fetching.
    for (const old of [...this.pool.keys()].filter(r => r < round - 1)) this.pool.delete(old)
    for (const old of [...this.toldBy.keys()].filter(r => r < round - 1)) this.toldBy.delete(old)
    for (const old of [...this.fellBackIn].filter(r => r < round - 1)) this.fellBackIn.delete(old)
    for (const old of [...this.failed.keys()].filter(r => r < round)) this.failed.delete(old)
    for (const key of [...this.fetchFailures.keys()].filter(k => Number(k.split(':')[0]) < round)) this.fetchFailures.delete(key)
    this.views.newRound()
    this.firstRound ??= round
    const update = await this.trainFromCurrent(round)
    if (this.stopped) return
    const payload = encodePayload(update.tensors)
    const announce: Announce = {
      type: 'announce',
      federationId: this.init.federationId,
      round,
      sampleCount: update.sampleCount,
      payloadHash: updateHash(this.init.federationId, round, transport.selfId, payload),
      payloadBytes: payload.length,
      addresses: transport.addresses().slice(0, 16)
    }
    const own = { from: transport.selfId, sampleCount: update.sampleCount, tensors: update.tensors }
    const ownEntry: Pending = { announce, from: transport.selfId, contribution: own, payload, fetchedBy: new Set(), toldTo: new Set() }
    this.roundPool(round).set(transport.selfId, ownEntry)
    this.components.onContribution?.(round, own, payload)
    const publishedFirst = await this.announceFirst(announce)
    const ready = Date.now()
    ownEntry.arrivedAt = ready
    // The last round decides the model every peer keeps: it waits for every known peer, up to the timeout.
    const waitMs = round === this.init.rounds ? this.init.roundTimeoutMs : this.lags.waitMs(this.init.roundTimeoutMs)
    const hardDeadline = ready + this.init.roundTimeoutMs
    /** When the round's first update arrived, ours or a peer's: the adaptive deadline counts from there. */
    const firstSeen = (): number => Math.min(...[...this.roundPool(round).values()].map(p => p.arrivedAt ?? Infinity))
    const reannounce = new ReannounceSchedule(Date.now(), this.partners(round).members)
    let aheadSince: number | undefined
    let lastCatchUp = 0
    let group: RoundGroup = { members: new Set([transport.selfId]), groupCount: 1 }
    let closedBy: CloseReason = 'all-reported'
    while (!this.stopped) {
      const pool = this.roundPool(round)
      const failed = this.failed.get(round) ?? new Set()
      // Waited for: everyone we know of who has spoken lately. One that died or sits across a partition
      // holds the round up only until the adaptive deadline, and after LIMITS.silentRoundsForgotten rounds
      // not at all; when it comes back (announces), it is waited for again.
      const awaited = this.awaited(round)
      this.reportForgotten(round, awaited)
      const members = this.roundMembers(round, awaited)
      group = this.partners(round, members)
      // The group may grow as peers appear: fetch the updates of partners first heard as outsiders.
      for (const entry of pool.values()) if (entry.fetching !== true && entry.contribution === undefined && group.members.has(entry.from)) this.fetchUpdate(entry)
      const partners = group.members
      // Re-announce while a partner has not fetched our update (told to it alone), and on the topic only
      // while the round needs peers that may not know of us (needsStrangers). A round waiting for known
      // peers still training does not: they hold the first announcement (or, as partners, are told), and
      // every announcement on the topic floods it: at 16 peers such waits cost 1.3 announcements a peer a
      // round, all of them on the topic. A banned partner, or one whose update failed, is not waited for
      // and need not fetch ours.
      const unfetched = [...partners].filter(peer => peer !== transport.selfId && !failed.has(peer) && !this.banned.has(peer) && ownEntry.fetchedBy?.has(peer) !== true)
      const needsStrangers = this.needsStrangers(round, members, new Set([...pool.keys(), ...failed]).size, ownEntry)
      const wantsReannounce = unfetched.length > 0 || needsStrangers
      if (wantsReannounce && Date.now() >= reannounce.dueAt(partners)) {
        reannounce.announced(Date.now())
        await this.announceTo(announce, unfetched, needsStrangers)
      }
      // Peers already announcing the next round have closed this one without us: a catch-up takes their result.
      for (const [peer, at] of this.farAhead) if (at <= round) this.farAhead.delete(peer)
      const later = { next: [...this.pool.get(round + 1)?.keys() ?? []], afterNext: [...this.pool.get(round + 2)?.keys() ?? []], farther: [...this.farAhead.keys()] }
      const ignored = (peer: string): boolean => peer === transport.selfId || this.banned.has(peer) || this.isDisproved(peer)
      const ahead = peersAhead(later, partners, ignored)
      if (ahead.length > 0) aheadSince ??= Date.now()
      const contributed = new Set([...pool.values()].filter(p => p.contribution !== undefined && partners.has(p.from)).map(p => p.from))
      if (members.size < this.init.quorum) this.completeView(round, contributed)
      const decision = decide({
        expected: partners,
        contributed,
        // A sender banned for this round's update has left `partners` (banned peers are not awaited), but it
        // did report: it still counts toward the quorum, as round-state.ts says.
        excluded: new Set([...failed, ...[...partners].filter(peer => this.banned.has(peer))]),
        // All-to-all: none (everyone known is a partner).
        knownElsewhere: new Set([...members].filter(peer => !partners.has(peer) && !this.banned.has(peer))),
        quorum: this.init.quorum,
        partnerClosed: this.init.groupSize !== undefined && partnerClosed(later, partners, ignored),
        firstSeenAt: firstSeen(),
        waitMs,
        hardDeadlineAt: hardDeadline,
        ahead,
        aheadSince,
        lastCatchUpAt: lastCatchUp
      }, Date.now())
      if (decision.action === 'close') {
        closedBy = decision.because
        break
      }
      if (decision.action === 'catch-up') {
        lastCatchUp = Date.now()
        if (await this.catchUp([...decision.from]) >= round) {
          // The adopted round may be later than the one we waited in; report the round we now hold.
          await this.components.onRound({ round: this.completed, peersHeard: 0, peersExpected: group.members.size, caughtUp: true, closedBy: 'caught-up', lateUpdates: this.lateUpdates, globalDigest: this.held.digest, ...await this.countedSince(before), consensusDistance: this.distanceFromGlobal(update.tensors), trainLoss: update.loss, waitMs, seconds: (Date.now() - started) / 1000 }, this.global)
          return
        }
        // Every peer that seemed ahead was not: nothing is left to catch up to (a peer that crashed or was
        // banned leaves aheadSince set, as others may have closed the round too).
        if (decision.from.length > 0 && decision.from.every(peer => this.isDisproved(peer))) aheadSince = undefined
        continue
      }
      // Not woken for a re-announcement nobody needs: its due time would lie in the past and spin this loop.
      await this.sleepUntil(Math.min(decision.until, wantsReannounce ? reannounce.dueAt(partners) : Infinity))
    }
    if (this.stopped) return
    if (publishedFirst) this.tellWaitingPartners(ownEntry, group.members)
    const closed = [...this.roundPool(round).values()]
    // The first round a peer runs spreads updates by everyone's start-up (loading, Local-LiGO), not by
    // how fast rounds go: it would stretch the deadline of every round after it.
    if (this.roundsRun > 0) {
      const first = firstSeen()
      for (const p of closed) if (p.arrivedAt !== undefined) this.lags.record(p.arrivedAt - first)
    }
    this.roundsRun++
    const contributions = closed.flatMap(p => p.contribution === undefined || !group.members.has(p.from) ? [] : [p.contribution])
    // Nothing of this round changes while a worker aggregates: a late update is not among `contributions`,
    // and state answers name the last completed round with the Global-LiGO it held.
    const next = await this.components.strategy.aggregate(contributions, this.global)
    if (next !== null) this.adoptAggregate(round, next)
    this.completed = round
    this.collecting = round + 1
    const counted = await this.countedSince(before)
    await this.components.onRound({
      round,
      peersHeard: contributions.length,
      peersExpected: group.members.size,
      caughtUp: false,
      closedBy,
      lateUpdates: this.lateUpdates,
      globalDigest: this.held.digest,
      ...counted,
      consensusDistance: this.distanceFromGlobal(update.tensors),
      trainLoss: update.loss,
      waitMs,
      seconds: (Date.now() - started) / 1000
    }, this.global)
  }

  /**
   * Trains from the current Global-LiGO. If that diverges (a non-finite loss) and it is not the one we
   * last trained from, it came from peers (an aggregate or a catch-up): roll back to the last one that
   * trained and train again. A second divergence, from a Global-LiGO that trained before, is the
   * settings' fault and ends the run with the trainer's advice.
   */
  private async trainFromCurrent (round: number): Promise<LocalUpdate> {
    const from = this.held
    try {
      const update = await this.components.trainRound(from.tensors, round)
      this.lastTrained = from
      return update
    } catch (err) {
      const previous = this.lastTrained
      if (!(err instanceof TrainingDivergedError) || previous === undefined || previous.tensors === from.tensors) throw err
      this.held = previous
      this.components.onDefence?.({ event: 'rollback', round, reason: 'training-diverged', globalDigest: previous.digest, detail: `training from Global-LiGO ${from.digest.slice(0, 12)}… diverged (${err.message}); back to the last one this peer trained from` })
      return await this.components.trainRound(this.global, round)
    }
  }

  /** The L2 distance of `tensors` from the current Global-LiGO over that Global-LiGO's norm. */
  private distanceFromGlobal (tensors: TensorMap): number {
    return l2Distance(tensors, this.global) / Math.max(l2Distance(this.global), Number.MIN_VALUE)
  }

  /** Adopts a round's aggregate, unless its values are out of bounds: then the current Global-LiGO stays. */
  private adoptAggregate (round: number, next: TensorMap): void {
    try {
      checkValueBounds(next)
    } catch (err) {
      this.components.onDefence?.({ event: 'rollback', round, reason: 'aggregate-out-of-bounds', globalDigest: this.held.digest, detail: `${(err as Error).message}; keeping the previous Global-LiGO` })
      return
    }
    this.held = heldGlobal(next)
  }
}
