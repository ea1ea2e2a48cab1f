/**
 * A whole participant: libp2p host, federation transport, round engine and the private Dual-LiGO side,
 * with its state directory. `runPeer` is what `fedgrow node` runs.
 *
 * State directory: identity key (if given there), intermediate.fgm (fedgrow: the frozen intermediate
 * model, so a restart skips Local-LiGO training), checkpoints/ (Global-LiGO after each of the last
 * completed rounds: node/storage/checkpoints.ts) and target.fgm (the final model, written at the end).
 */
import { join } from 'node:path'
import { federationId, isMember } from '../protocol/manifest.js'
import { sha256Hex } from '../protocol/canonical.js'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { InvalidConfigError } from './errors.js'
import { updatesTopic } from '../protocol/constants.js'
import { startHost } from './p2p/host.js'
import type { StartedHost } from './p2p/host.js'
import { federationTransport } from './p2p/federation-transport.js'
import { startDiscovery } from './p2p/discovery.js'
import { serveManifests } from './p2p/manifest-exchange.js'
import type { Discovery } from './p2p/discovery.js'
import type { LimitedRequest } from './p2p/exchange.js'
import { RoundEngine } from './federation/engine.js'
import type { RoundResult } from './federation/engine.js'
import { offThread } from './federation/strategy.js'
import { planFor } from './federation/participant.js'
import { startComputePool } from './compute/pool.js'
import type { ComputePool, PeerCompute } from './compute/pool.js'
import type { ModelData } from './compute/messages.js'
import { CheckpointStore } from './storage/checkpoints.js'
import { encodePayload, globalDigest } from '../protocol/payload.js'
import type { Manifest } from '../protocol/manifest.js'
import type { PrivateKey } from '@libp2p/interface'
import type { BackendChoice } from './backend.js'
import type { TrainTest } from './data/dataset.js'
import type { Logger } from './log.js'
import type { PeerEvent } from './events.js'
import { repeatsCounted, teeLogger } from './log.js'
import { FedgrowMetrics } from './metrics.js'
import type { Registry } from 'prom-client'
import type { ProgressSink } from './train/progress.js'
import type { Evaluation } from './train/trainer.js'
import type { Contribution } from './federation/aggregate.js'
import type { TensorMap } from '../protocol/safetensors.js'
import type { Attack } from './federation/attacks.js'

/** How long a finished peer at most keeps serving its last update to peers that have not fetched it. */
export const DEFAULT_LINGER_MS = 30_000
/** How long a peer with a bootstrap list waits for its first connection before starting alone. */
const FIRST_CONNECTION_WAIT_MS = 10_000
/** How often a `peers` event reports the number of connections (dashboards, --verbose). */
const PEERS_SAMPLE_MS = 5_000

/** What runPeer rejects with after a simulated crash (PeerInit.crash). */
export class PeerCrashed extends Error {
  override readonly name = 'PeerCrashed'
}

/** Checks the key against the manifest's access rules; throws InvalidConfigError saying what to do. */
function checkPreSharedKey (manifest: Manifest, key: Uint8Array | undefined): void {
  const expected = manifest.access?.preSharedKey
  if (expected === undefined && key !== undefined) throw new InvalidConfigError('a pre-shared key was given, but this federation\'s manifest has no access.preSharedKey; drop --psk')
  if (expected === undefined) return
  if (key === undefined) throw new InvalidConfigError('this federation is private: its manifest requires a pre-shared key; pass the swarm key file its organiser gave you with --psk FILE')
  if (sha256Hex(key) !== expected) throw new InvalidConfigError(`the pre-shared key's SHA-256 is ${sha256Hex(key).slice(0, 16)}…, the manifest expects ${expected.slice(0, 16)}…; ask the federation's organiser for the right key file`)
}

export interface PeerInit {
  manifest: Manifest
  /** The participant's small pre-trained model (model-file.ts readModelFile gives one from a file). */
  small: ModelData
  data: TrainTest
  privateKey: PrivateKey
  listen: string[]
  announce?: string[]
  bootstrap: string[]
  stateDir: string
  /** Stop after this round instead of the manifest's last. */
  rounds?: number
  log: Logger<PeerEvent>
  onProgress?: ProgressSink
  /** Many peers on one IP (a local simulation). */
  localNetwork?: boolean
  /** Longest wait after the last round for peers to fetch our final update. @default DEFAULT_LINGER_MS */
  lingerMs?: number
  signal?: AbortSignal
  /**
   * Compute workers to run this peer's tfjs work on (a simulation shares one pool among its peers), and
   * which of them to use. @default a pool of one worker of its own, on `backend`
   */
  compute?: { pool: ComputePool, worker?: number }
  /** The tfjs backend of the peer's own compute worker (ignored with `compute`). @default FEDGROW_BACKEND, else auto */
  backend?: BackendChoice
  /** Simulations only: the peer trains honestly, then corrupts every update it shares. */
  attack?: { kind: Attack, seed: string }
  /** The private-network key (swarm.key bytes) when the manifest requires one (access.preSharedKey). */
  preSharedKey?: Uint8Array
  /** Fault injection: aborting it crashes the peer (connections dropped, nothing more saved); runPeer rejects with PeerCrashed. */
  crash?: AbortSignal
  /** Fault injection: peers to refuse connections with while it returns true (a partition). */
  denyPeer?: (peerId: string) => boolean
  /** Fault injection: drops an incoming announcement when it returns true. */
  dropAnnouncement?: () => boolean
  /**
   * Join a network's DHT: provide this federation's rendezvous key, find its peers there, and serve the
   * manifest to peers that know only the federation id.
   */
  network?: { dhtProtocol: string, addresses: 'public' | 'any' }
  /** Prometheus registry to fill with libp2p's and fedgrow's metrics (served by `--metrics`). */
  metricsRegistry?: Registry
  /** Sees every chunk sent on every protocol (wire audits). */
  wireTap?: (protocol: string, bytes: Uint8Array) => void
  /** Sees every accepted contribution, own included (audits, tests). */
  onContribution?: (round: number, contribution: Contribution, payload: Uint8Array) => void
  /** Sees the Global-LiGO each completed round ended on, before its `round` event (simulations measure agreement). */
  onRoundGlobal?: (round: number, global: TensorMap) => void
}

export interface PeerResult {
  peerId: string
  completedRound: number
  globalDigest: string
  accuracy: number
  targetPath: string
}

/**
 * Relayed links are degraded (a relay's bandwidth, limits): each is logged, and so is its replacement by
 * a direct link (DCUtR hole punching).
 */
function logRelayedLinks (host: StartedHost, log: Logger<PeerEvent>): void {
  const relayed = new Set<string>()
  host.libp2p.addEventListener('connection:open', (evt) => {
    const peer = evt.detail.remotePeer.toString()
    if (evt.detail.limits !== undefined) {
      relayed.add(peer)
      log({ event: 'relayed-link', peer, address: evt.detail.remoteAddr.toString(), note: 'degraded: payloads wait briefly for a direct link' })
    } else if (relayed.delete(peer)) {
      log({ event: 'direct-link', peer, address: evt.detail.remoteAddr.toString(), note: 'upgraded from a relayed link (hole punch)' })
    }
  })
}

/**
 * Says when a round closed with nobody else's update (once per stretch of such rounds), and what to check:
 * a peer that trains alone while believing it federates is the failure users cannot see.
 */
function aloneWarner (host: StartedHost, federation: string, log: Logger<PeerEvent>): (result: RoundResult) => void {
  let warned = false
  return (result) => {
    if (result.caughtUp || result.peersHeard > 1) {
      warned = false
      return
    }
    if (warned) return
    warned = true
    const connected = host.libp2p.getPeers().length
    const check = connected === 0
      ? 'it is connected to no peer: check that --bootstrap names a running peer\'s full address (with /p2p/PEER-ID) and that its port is reachable'
      : `it is connected to ${connected} peer(s), none of which sent an update for federation ${federation.slice(0, 12)}…: check that every peer runs the same manifest (same federation id), or wait for peers still preparing (Local-LiGO)`
    log({ event: 'alone', round: result.round, connected, detail: `round ${result.round} closed with only this peer's update; ${check}` })
  }
}

export async function runPeer (init: PeerInit): Promise<PeerResult> {
  const { manifest } = init
  const fedId = federationId(manifest)
  const lastRound = Math.min(init.rounds ?? manifest.schedule.rounds, manifest.schedule.rounds)
  checkPreSharedKey(manifest, init.preSharedKey)
  const member = (peer: string): boolean => isMember(manifest, peer)
  const peerId = peerIdFromPrivateKey(init.privateKey).toString()
  if (!member(peerId)) throw new InvalidConfigError(`peer ${peerId} is not on this federation's allowlist; ask its organiser to add it (the federation id changes) or use an allowed identity`)
  // Checked here, before anything starts, so a small model that does not fit the federation fails at once.
  planFor(manifest, init.small.config)
  const pool = init.compute?.pool ?? await startComputePool({ backend: init.backend })
  let learner: PeerCompute | undefined
  const denyPeer = (peer: string): boolean => !member(peer) || init.denyPeer?.(peer) === true
  let host: StartedHost
  try {
    host = await startHost({ privateKey: init.privateKey, listen: init.listen, announce: init.announce, bootstrap: init.bootstrap, ipColocationPenalty: init.localNetwork !== true, scoredTopics: [updatesTopic(fedId)], wireTap: init.wireTap, preSharedKey: init.preSharedKey, denyPeer, registry: init.metricsRegistry, ...(init.network !== undefined ? { dht: { protocol: init.network.dhtProtocol, addresses: init.network.addresses }, nat: { relayServer: false, reachableViaRelay: true } } : {}) })
  } catch (err) {
    if (init.compute === undefined) await pool.close()
    throw err
  }
  const metrics = init.metricsRegistry === undefined ? undefined : new FedgrowMetrics(init.metricsRegistry, { peers: () => host.libp2p.getPeers().length, tensorsAlive: () => pool.tensorsAlive() })
  // Metrics count every rejection; the log only a few of each sender's repeated ones (log flooding).
  const written = repeatsCounted(init.log)
  const log: Logger<PeerEvent> = metrics === undefined ? written : teeLogger((e) => { metrics.observe(e) }, written)
  const onLimited = (from: string, request: LimitedRequest): void => { log({ event: 'request-limited', from, request }) }
  logRelayedLinks(host, log)
  const warnIfAlone = aloneWarner(host, fedId, log)
  const peersSample = setInterval(() => { log({ event: 'peers', connected: host.libp2p.getPeers().length }) }, PEERS_SAMPLE_MS)
  let engine: RoundEngine | undefined
  let discovery: Discovery | undefined
  const onAbort = (): void => { engine?.stop() }
  const onCrash = (): void => {
    engine?.stop()
    host.stop().catch(() => {})
  }
  init.signal?.addEventListener('abort', onAbort)
  init.crash?.addEventListener('abort', onCrash)
  try {
    log({ event: 'listening', peerId, multiaddrs: host.libp2p.getMultiaddrs().map(a => a.toString()), federation: fedId, method: manifest.method })
    if (init.network !== undefined) {
      await serveManifests(host.libp2p, new Map([[fedId, manifest]]), onLimited)
      discovery = startDiscovery(host.libp2p, fedId, log)
    }
    const compute = await pool.createLearner({ manifest, small: init.small, data: init.data, seed: init.privateKey.publicKey.toString(), attack: init.attack }, { onProgress: init.onProgress, log }, init.compute?.worker)
    learner = compute
    await compute.prepare(init.stateDir)
    const checkpoints = new CheckpointStore(init.stateDir, fedId)
    const { checkpoint: saved, damaged } = checkpoints.latest()
    for (const bad of damaged) log({ event: 'checkpoint-damaged', path: bad.path, error: bad.error })
    if (saved !== null) log({ event: 'resumed', round: saved.round, path: saved.path })
    const startGlobal = saved?.global ?? await compute.initial()
    /** The last round's score, by the digest of the Global-LiGO it scored: the final model usually is that one. */
    let lastScore: { digest: string, score: Evaluation } | undefined
    engine = new RoundEngine({
      transport: federationTransport({ host, federationId: fedId, maxPayloadBytes: encodePayload(startGlobal).length, isMember: member, dropAnnouncement: init.dropAnnouncement, onLimited, onReject: (from, reason) => { log({ event: 'rejected', from, reason, detail: 'topic validator' }) } }),
      strategy: offThread(manifest.aggregation, pool.aggregate),
      trainRound: async (global, round) => await compute.trainRound(global, round),
      onRound: async (result, global) => {
        if (init.crash?.aborted === true) return
        checkpoints.save(result.round, global)
        init.onRoundGlobal?.(result.round, global)
        const score = await compute.evaluate(global)
        lastScore = { digest: result.globalDigest, score }
        log({ event: 'round', ...result, accuracy: score.accuracy, loss: score.loss })
        warnIfAlone(result)
      },
      onReject: (from, reason, detail) => { log({ event: 'rejected', from, reason, detail }) },
      onDefence: (event) => { log(event) },
      onWarning: (message) => { log({ event: 'warning', message }) },
      onContribution: (round, contribution, payload) => {
        if (contribution.from !== peerId) log({ event: 'update-accepted', round, from: contribution.from, sampleCount: contribution.sampleCount })
        init.onContribution?.(round, contribution, payload)
      }
    }, {
      federationId: fedId,
      expected: compute.spec,
      rounds: lastRound,
      scheduleRounds: manifest.schedule.rounds,
      roundTimeoutMs: manifest.schedule.roundTimeoutMs,
      quorum: manifest.schedule.quorum,
      ...(manifest.aggregation.averaging === 'group' ? { groupSize: manifest.aggregation.groupSize } : {}),
      initial: startGlobal,
      completedRound: saved?.round ?? 0
    })
    await engine.join()
    log({ event: 'joined', federation: fedId, completedRound: engine.completedRound })
    if (init.bootstrap.length > 0) {
      const until = Date.now() + FIRST_CONNECTION_WAIT_MS
      while (host.libp2p.getPeers().length === 0 && Date.now() < until && init.signal?.aborted !== true) await new Promise(resolve => setTimeout(resolve, 100))
    }
    const before = engine.completedRound
    const adopted = await engine.catchUp(host.libp2p.getPeers().map(p => p.toString()))
    if (adopted > before) log({ event: 'caught-up', round: adopted, globalDigest: globalDigest(engine.currentGlobal) })
    await engine.run()
    if (init.crash?.aborted === true) throw new PeerCrashed(`peer ${peerId} crashed (fault injection) after round ${engine.completedRound}`)
    const final = engine.currentGlobal
    const targetPath = join(init.stateDir, 'target.fgm')
    const score = await compute.saveFinal(final, targetPath, { producedBy: `fedgrow node (${manifest.method})`, federation: fedId, round: engine.completedRound }, lastScore?.digest === globalDigest(final) ? lastScore.score : undefined)
    if (init.signal?.aborted !== true) await engine.finish(init.lingerMs ?? DEFAULT_LINGER_MS)
    const result = { peerId, completedRound: engine.completedRound, globalDigest: globalDigest(final), accuracy: score.accuracy, targetPath }
    log({ event: 'done', ...result, ...(score.finetuneKeptStep !== undefined ? { finetuneKeptStep: score.finetuneKeptStep } : {}) })
    return result
  } catch (err) {
    // Whatever a crash interrupted (a dial, a stream, the host itself) fails; the crash is the cause.
    if (init.crash?.aborted === true && !(err instanceof PeerCrashed)) throw new PeerCrashed(`peer ${peerId} crashed (fault injection): ${(err as Error).message}`)
    throw err
  } finally {
    discovery?.stop()
    clearInterval(peersSample)
    init.signal?.removeEventListener('abort', onAbort)
    init.crash?.removeEventListener('abort', onCrash)
    await learner?.close()
    if (init.compute === undefined) await pool.close()
    await host.stop()
  }
}
