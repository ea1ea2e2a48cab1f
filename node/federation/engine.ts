/**
 * The round engine: decentralized averaging of Global-LiGO with no server (Fed-Grow, arXiv 2406.13450,
 * step 3). Each round a peer trains its copy of Global-LiGO, announces the update, collects the round's
 * updates from its peers until every participant it knows of has reported (and the quorum is met) or
 * the deadline passes (adaptive: deadline.ts), then aggregates them in a canonical order, so peers that
 * hold the same set hold bit-identical Global-LiGO. Late updates for past rounds are counted and dropped; updates for later
 * rounds are kept for their round. A peer that starts late asks a peer for its last completed round.
 */
import { checkAnnouncement } from '../../protocol/messages.js'
import { LIMITS } from '../../protocol/constants.js'
import { ProtocolError } from '../../protocol/errors.js'
import { decodePayload, encodePayload, globalDigest, sha256Hex } from '../../protocol/payload.js'
import type { Announce, State, TensorSpec } from '../../protocol/messages.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { Contribution } from './aggregate.js'
import type { Strategy } from './strategy.js'
import type { DropReason, UpdateTransport } from './transport.js'
import { LagWindow } from './deadline.js'

/** How often a waiting round re-checks who has reported. */
const POLL_MS = 50
/**
 * How long a round waits after first seeing peers announce the next round before it adopts their result
 * (its own fetches may just be finishing), and then how often it asks again.
 */
const CATCH_UP_GRACE_MS = 2_000
/**
 * How often a waiting round re-announces its own update. Gossipsub only forwards along meshes that
 * exist when a message arrives, so an announcement made while peers are still joining can miss them;
 * receivers drop repeats by (round, sender).
 */
export const REANNOUNCE_MS = 2_000

/** Reasons to drop an update that an honest peer can cause (timing, the network, our limits): no ban. */
const NOT_HELD_AGAINST = new Set<DropReason>(['late', 'unreachable', 'stale-round', 'over-capacity', 'rate-limited'])

export interface LocalUpdate {
  tensors: TensorMap
  sampleCount: number
  /** Mean training loss of the round's local steps. */
  loss: number
}

export interface RoundResult {
  round: number
  /** Contributions aggregated, own included (0 when the round was adopted from a peer). */
  peersHeard: number
  /** Participants the round waited for when it closed, own included: known announcers and connected members. */
  peersExpected: number
  /** The round closed without us and we adopted a peer's result (catch-up). */
  caughtUp: boolean
  /** Updates for rounds already closed, received so far (counted once per sender and round, then dropped). */
  lateUpdates: number
  globalDigest: string
  /** Bytes on the wire during this round (all protocols). */
  bytesSent: number
  bytesReceived: number
  trainLoss: number
  /** How long after the round's first update the round would stop waiting for more (adaptive: deadline.ts). */
  waitMs: number
  seconds: number
}

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
}

export interface EngineInit {
  federationId: string
  /** Global-LiGO tensor names and shapes, in canonical order. */
  expected: TensorSpec[]
  rounds: number
  roundTimeoutMs: number
  quorum: number
  /** Global-LiGO to start from, and the last completed round it belongs to (0 = initial). */
  initial: TensorMap
  completedRound: number
}

interface Pending {
  announce: Announce
  from: string
  contribution?: Contribution
  /** When the contribution arrived (ms since the epoch). */
  arrivedAt?: number
  /** Our own update's bytes, served to peers that fetch it. */
  payload?: Uint8Array
  /** Peers that fetched our own update. */
  fetchedBy?: Set<string>
}

export class RoundEngine {
  private global: TensorMap
  private globalPayload: Uint8Array
  private completed: number
  private collecting: number
  /** Announcements and accepted contributions by round, then by sender. */
  private readonly pool = new Map<number, Map<string, Pending>>()
  /** Everyone we have heard announce: expected in later rounds too. */
  private readonly knownParticipants = new Set<string>()
  /** Peers whose update we rejected, by round: not waited for in that round. */
  private readonly failed = new Map<number, Set<string>>()
  /** Peers that sent invalid updates: their messages are dropped from now on, so nobody waits for them. */
  private readonly banned = new Set<string>()
  private stopped = false
  /** (sender, round) of late updates already counted, so re-announcements count once. */
  private readonly lateSeen = new Set<string>()
  private lateUpdates = 0
  private readonly lags = new LagWindow()
  /** Rounds this engine has closed itself (not adopted). */
  private roundsRun = 0
  /** Peers seen announcing rounds beyond the ones we hold updates for, with that round. */
  private readonly farAhead = new Map<string, number>()

  constructor (private readonly components: EngineComponents, private readonly init: EngineInit) {
    this.global = init.initial
    this.globalPayload = encodePayload(init.initial)
    this.completed = init.completedRound
    this.collecting = init.completedRound + 1
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
      payload: (req, from) => {
        const own = this.pool.get(req.round)?.get(this.components.transport.selfId)
        if (own?.announce.payloadHash !== req.payloadHash || own.payload === undefined) return null
        own.fetchedBy?.add(from)
        return own.payload
      },
      state: () => ({ header: this.stateHeader(), payload: this.globalPayload })
    }, (from, announce) => { this.receive(from, announce) })
  }

  private stateHeader (): State {
    const pending = [...this.pool.entries()].filter(([round]) => round > this.completed).flatMap(([, peers]) => [...peers.values()].map(p => ({ from: p.from, announce: p.announce })))
    return { type: 'state', federationId: this.init.federationId, round: this.completed, globalDigest: globalDigest(this.global), payloadBytes: this.globalPayload.length, pending }
  }

  /**
   * Adopts a peer's state when it is ahead of ours: its last completed round and Global-LiGO, and the
   * updates it holds for later rounds (fetched from their announcers). Returns the round adopted.
   */
  async catchUp (peers: string[]): Promise<number> {
    for (const peer of peers) {
      let answer
      try {
        answer = await this.components.transport.requestState(peer, this.globalPayload.length)
      } catch {
        continue
      }
      if (answer.header.round <= this.completed) continue
      const tensors = decodePayload(answer.payload, this.init.expected)
      if (globalDigest(tensors) !== answer.header.globalDigest) throw new ProtocolError('hash-mismatch', `state from ${peer} does not match its digest`)
      this.global = tensors
      this.globalPayload = answer.payload
      this.completed = answer.header.round
      this.collecting = this.completed + 1
      for (const p of answer.header.pending) this.receive(p.from, p.announce)
      return this.completed
    }
    return this.completed
  }

  private reject (from: string, reason: DropReason, detail: string): void {
    this.components.onReject?.(from, reason, detail)
    if (!NOT_HELD_AGAINST.has(reason)) {
      this.banned.add(from)
      this.components.transport.penalise(from, reason)
    }
  }

  /** Handles an announcement: checks it, then fetches and validates its payload once. */
  private receive (from: string, announce: Announce): void {
    if (from === this.components.transport.selfId) return
    try {
      checkAnnouncement(announce, { federationId: this.init.federationId, currentRound: this.collecting, expected: this.init.expected, payloadBytes: this.globalPayload.length })
    } catch (err) {
      if (err instanceof ProtocolError && err.reason === 'implausible-round' && Number.isInteger(announce.round)) {
        // Too far ahead to hold its update, but a reason to catch up from it (we may have fallen behind).
        this.farAhead.set(from, announce.round)
        return
      }
      if (err instanceof ProtocolError && err.reason === 'stale-round') {
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
    const round = this.roundPool(announce.round)
    if (round.has(from)) return
    if (round.size >= LIMITS.maxPeersPerRound) {
      this.reject(from, 'over-capacity', `round ${announce.round} already holds ${round.size} updates`)
      return
    }
    this.knownParticipants.add(from)
    const entry: Pending = { announce, from }
    round.set(from, entry)
    const request = { type: 'fetch' as const, federationId: this.init.federationId, round: announce.round, payloadHash: announce.payloadHash }
    this.components.transport.fetch(from, request, announce.addresses, announce.payloadBytes).then((payload) => {
      if (sha256Hex(payload) !== announce.payloadHash) throw new ProtocolError('hash-mismatch', 'payload does not hash to the announced value')
      const contribution = { from, sampleCount: announce.sampleCount, tensors: decodePayload(payload, this.init.expected) }
      entry.contribution = contribution
      entry.arrivedAt = Date.now()
      this.components.onContribution?.(announce.round, contribution, payload)
    }).catch((err: Error) => {
      round.delete(from)
      this.failed.set(announce.round, new Set([...(this.failed.get(announce.round) ?? []), from]))
      this.reject(from, err instanceof ProtocolError ? err.reason : 'unreachable', `fetching round ${announce.round} from ${from}: ${err.message ?? String(err)}`)
    })
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
  }

  /**
   * After the last round: keeps re-announcing our final update until every peer we know of has fetched
   * it, or `maxMs` passes. A peer that closed its round early (it had everyone's update) must not leave
   * a peer that missed its announcement waiting for the deadline.
   */
  async finish (maxMs: number): Promise<void> {
    const { transport } = this.components
    const own = this.pool.get(this.completed)?.get(transport.selfId)
    if (own === undefined) return
    const until = Date.now() + maxMs
    let lastAnnounce = 0
    while (!this.stopped && Date.now() < until) {
      const others = new Set([...this.knownParticipants, ...transport.participants()].filter(p => p !== transport.selfId && !this.banned.has(p)))
      if ([...others].every(p => own.fetchedBy?.has(p) === true)) return
      if (Date.now() - lastAnnounce >= REANNOUNCE_MS) {
        lastAnnounce = Date.now()
        await transport.announce(own.announce)
      }
      await new Promise(resolve => setTimeout(resolve, POLL_MS))
    }
  }

  private async runRound (round: number): Promise<void> {
    const { transport } = this.components
    const started = Date.now()
    const bytesBefore = await transport.bytes()
    this.collecting = round
    // Keep the last completed round, whose payloads slower peers may still be fetching.
    for (const old of [...this.pool.keys()].filter(r => r < round - 1)) this.pool.delete(old)
    for (const old of [...this.failed.keys()].filter(r => r < round)) this.failed.delete(old)
    const update = await this.components.trainRound(this.global, round)
    if (this.stopped) return
    const payload = encodePayload(update.tensors)
    const announce: Announce = {
      type: 'announce',
      federationId: this.init.federationId,
      round,
      sampleCount: update.sampleCount,
      payloadHash: sha256Hex(payload),
      payloadBytes: payload.length,
      dtype: 'float32',
      tensors: this.init.expected,
      addresses: transport.addresses().slice(0, 16)
    }
    const own = { from: transport.selfId, sampleCount: update.sampleCount, tensors: update.tensors }
    const ownEntry: Pending = { announce, from: transport.selfId, contribution: own, payload, fetchedBy: new Set() }
    this.roundPool(round).set(transport.selfId, ownEntry)
    this.components.onContribution?.(round, own, payload)
    await transport.announce(announce)
    const ready = Date.now()
    ownEntry.arrivedAt = ready
    // The last round decides the model every peer keeps: it waits for every known peer, up to the timeout.
    const waitMs = round === this.init.rounds ? this.init.roundTimeoutMs : this.lags.waitMs(this.init.roundTimeoutMs)
    const hardDeadline = ready + this.init.roundTimeoutMs
    /** When the round's first update arrived, ours or a peer's: the adaptive deadline counts from there. */
    const firstSeen = (): number => Math.min(...[...this.roundPool(round).values()].map(p => p.arrivedAt ?? Infinity))
    let lastAnnounce = Date.now()
    let aheadSince: number | undefined
    let lastCatchUp = 0
    let expected = 1
    while (!this.stopped) {
      if (Date.now() - lastAnnounce >= REANNOUNCE_MS) {
        lastAnnounce = Date.now()
        await transport.announce(announce)
      }
      const pool = this.roundPool(round)
      const arrived = [...pool.values()].filter(p => p.contribution !== undefined)
      const failed = this.failed.get(round) ?? new Set()
      // Waited for: everyone we know of. One that died or sits across a partition holds the round up only
      // until the adaptive deadline; when it comes back, it catches up.
      const everyone = new Set([...this.knownParticipants, ...transport.participants(), ...pool.keys(), transport.selfId])
      expected = everyone.size
      const excluded = [...everyone].filter(peer => failed.has(peer) || this.banned.has(peer))
      const allIn = [...everyone].every(peer => excluded.includes(peer) || pool.get(peer)?.contribution !== undefined)
      // A peer whose update was rejected did report, invalidly: it counts towards the quorum, not the mean.
      const quorate = arrived.length + excluded.length >= this.init.quorum
      const now = Date.now()
      if ((allIn && quorate) || (now >= firstSeen() + waitMs && quorate) || (now >= hardDeadline && arrived.length >= 1)) break
      // Peers already announcing the next round have closed this one without us: take their result.
      for (const [peer, at] of this.farAhead) if (at <= round) this.farAhead.delete(peer)
      const ahead = [...new Set([...this.farAhead.keys(), ...(this.pool.get(round + 1)?.keys() ?? [])])].filter(peer => peer !== transport.selfId)
      if (ahead.length > 0) aheadSince ??= Date.now()
      if (aheadSince !== undefined && Date.now() - aheadSince >= CATCH_UP_GRACE_MS && Date.now() - lastCatchUp >= CATCH_UP_GRACE_MS) {
        lastCatchUp = Date.now()
        if (await this.catchUp(ahead) >= round) {
          const bytesAfter = await transport.bytes()
          // The adopted round may be later than the one we waited in; report the round we now hold.
          await this.components.onRound({ round: this.completed, peersHeard: 0, peersExpected: expected, caughtUp: true, lateUpdates: this.lateUpdates, globalDigest: globalDigest(this.global), bytesSent: bytesAfter.sent - bytesBefore.sent, bytesReceived: bytesAfter.received - bytesBefore.received, trainLoss: update.loss, waitMs, seconds: (Date.now() - started) / 1000 }, this.global)
          return
        }
      }
      await new Promise(resolve => setTimeout(resolve, POLL_MS))
    }
    if (this.stopped) return
    const closed = [...this.roundPool(round).values()]
    // The first round a peer runs spreads updates by everyone's start-up (loading, Local-LiGO), not by
    // how fast rounds go: it would stretch the deadline of every round after it.
    if (this.roundsRun > 0) {
      const first = firstSeen()
      for (const p of closed) if (p.arrivedAt !== undefined) this.lags.record(p.arrivedAt - first)
    }
    this.roundsRun++
    const contributions = closed.flatMap(p => p.contribution === undefined ? [] : [p.contribution])
    const next = this.components.strategy.aggregate(contributions, this.global)
    if (next !== null) {
      this.global = next
      this.globalPayload = encodePayload(next)
    }
    this.completed = round
    this.collecting = round + 1
    const bytesAfter = await transport.bytes()
    await this.components.onRound({
      round,
      peersHeard: contributions.length,
      peersExpected: expected,
      caughtUp: false,
      lateUpdates: this.lateUpdates,
      globalDigest: globalDigest(this.global),
      bytesSent: bytesAfter.sent - bytesBefore.sent,
      bytesReceived: bytesAfter.received - bytesBefore.received,
      trainLoss: update.loss,
      waitMs,
      seconds: (Date.now() - started) / 1000
    }, this.global)
  }
}
