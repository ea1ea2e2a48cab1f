/**
 * `fedgrow simulate`: a federation of N real libp2p peers on 127.0.0.1, each with its own data shard
 * (label-Dirichlet, seeded) and its own heterogeneous small model (pre-trained on its shard, cached),
 * run once per method and scored on each peer's own test split.
 *
 * The peers run in this one process: each has its own libp2p node and TCP listener, and they share the
 * tfjs engine. A separate process per peer costs about 400 MB (tfjs and libp2p each load once per process),
 * which would cap one machine near 50 peers; training is single-threaded on wasm either way.
 */
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { inSharedMemory, isTextData, loadData, partition } from '../data/index.js'
import { configFor } from '../model/config.js'
import { validateTokenizer } from '../model/tokenizer.js'
import { countClassifierParams, countParams, flopsPerTrainStep } from '../model/vit.js'
import { countLigoParams, globalShape } from '../ligo/index.js'
import type { DualLigoPlan } from '../ligo/index.js'
import { manifestTask, planFor } from '../federation/participant.js'
import { PeerCrashed, runPeer } from '../peer.js'
import { defaultWorkerCount, startComputePool } from '../compute/pool.js'
import { consensusDistances } from '../federation/aggregate.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { ComputePool } from '../compute/pool.js'
import type { ModelData, WorkerMemory } from '../compute/messages.js'
import type { BackendChoice } from '../backend.js'
import type { ByteCounts } from '../federation/transport.js'
import type { RoundEnding } from '../federation/round-state.js'
import { PUBLIC_FRACTION, prepareSmallModels, splitPublic } from './small-models.js'
import type { SmallModelReport, SmallModelSource } from './small-models.js'
import { FaultInjector, RESTART_DELAY_MS, checkFaults, hasFaults } from './faults.js'
import type { FaultOptions, FaultReport } from './faults.js'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Attack } from '../federation/attacks.js'
import { Rng } from '../random.js'
import { sha256Hex } from '../../protocol/canonical.js'
import { hasFinetuneBudget, validateManifest } from '../../protocol/manifest.js'
import { MANIFEST_VERSION } from '../../protocol/constants.js'
import type { Manifest } from '../../protocol/manifest.js'
import type { TrainTest } from '../data/dataset.js'
import type { ModelConfig, TaskShape } from '../model/config.js'
import type { TokenizerConfig } from '../model/tokenizer.js'
import type { Logger } from '../log.js'
import type { EventOf, PeerEvent, TaggedPeerEvent } from '../events.js'
import type { Preset } from './presets.js'
import type { ProgressSink } from '../train/progress.js'

export const METHOD_NAMES = ['fedgrow', 'fedavg', 'independent', 'local', 'authors-code'] as const
export type MethodName = typeof METHOD_NAMES[number]
/** What `fedgrow simulate` runs when --methods is not given. */
export const DEFAULT_METHODS: MethodName[] = ['fedgrow', 'fedavg', 'independent', 'local']
/** Methods that share more than the growth operator: baselines, marked as such in every table. */
export const SHARES_MODEL: ReadonlySet<MethodName> = new Set(['fedavg', 'authors-code'])

/** Methods whose peers share nothing: each is a federation of one. */
const ALONE: ReadonlySet<MethodName> = new Set(['independent', 'local'])
/** Methods that train the target's own weights from scratch (the rest grow it with Dual-LiGO). */
const FROM_SCRATCH: ReadonlySet<MethodName> = new Set(['fedavg', 'local'])

export interface SimulationOptions {
  peers: number
  rounds: number
  preset: Preset
  alpha: number
  methods: MethodName[]
  seed: number
  /** Where state, caches and results go. */
  outDir: string
  /** How peers combine updates. @default 'mean' */
  aggregation?: Manifest['aggregation']['rule']
  /** Group averaging with groups of at least this many peers (protocol/groups.ts); absent: all-to-all. */
  groupSize?: number
  /** Which phase-4 check each peer keeps (the manifest's schedule.finetuneSelect). @default 'last' */
  finetuneSelect?: Manifest['schedule']['finetuneSelect']
  /** How hard phase 4 pulls the weights back toward the grown ones (the manifest's schedule.finetunePull). @default 0 */
  finetunePull?: number
  /** finetunePull is per training row (the manifest's schedule.finetunePullPerRow). @default false */
  finetunePullPerRow?: boolean
  /** Dual-LiGO methods (fedgrow, independent) keep each peer's classifier private (the manifest's ligo.privateHead). @default false */
  privateHead?: boolean
  /** Share of peers that are hostile (the highest-numbered ones), and what they do. @default 0 */
  byzantine?: number
  attack?: Attack
  /** Crashes, lost announcements and partitions (faults.ts). */
  faults?: FaultOptions
  data?: string
  /** Per-round summaries and milestones (stderr in the CLI). */
  log: Logger
  /** Every event of every peer, tagged with its method and peer index (dashboards, reports). */
  onPeerEvent?: (event: TaggedPeerEvent) => void
  /** Progress of long phases: pre-training, Local-LiGO, local rounds. */
  onProgress?: ProgressSink
  /** Compute workers the peers' training is spread over (peer i on worker i mod N). @default defaultWorkerCount(peers) */
  workers?: number
  /** @default FEDGROW_BACKEND, else auto */
  backend?: BackendChoice
  /** Where the peers' small models start: a public checkpoint per shape, or random weights. @default DEFAULT_SMALL_MODEL_SOURCE */
  smallModels?: SmallModelSource
  /** Share of the training rows that no peer holds, on which the public checkpoints train. @default PUBLIC_FRACTION */
  publicFraction?: number
}

export const DEFAULT_SMALL_MODEL_SOURCE: SmallModelSource = 'checkpoint'

/** Where the run's memory went: the process's peak, and each worker's largest footprint seen at a round's end. */
export interface ComputeReport {
  workers: number
  backend: string
  peakRssBytes: number
  /** Peak RSS above the process's RSS before the workers started, divided by the peers. */
  rssPerPeerBytes: number
  perWorker: Array<Pick<WorkerMemory, 'heapBytes' | 'backendBytes'>>
  /** How long the main thread (every peer's libp2p node and round engine) was blocked: the longest stall and the 99th percentile, in ms. */
  mainThreadDelayMs: { max: number, p99: number }
}

export interface MethodResult {
  name: MethodName
  accuracy: { mean: number, std: number, min: number, perPeer: number[] }
  targetParams: number
  trainableParamsPerPeer: number
  sharedParamsPerRound: number
  bytesSentPerPeerPerRound: number
  /** Whole Global-LiGO payloads a peer served a round, on average (all-to-all: peers - 1). */
  payloadsSentPerPeerPerRound: number
  /** Announcements a peer published on the topic a round, on average: its first, and re-announcements. */
  announcementsPerPeerPerRound: number
  /** Re-announcements a peer told one partner directly a round, on average (one per partner told). */
  announcementsToldPerPeerPerRound: number
  bytesReceivedPerPeerPerRound: number
  /**
   * The same bytes by protocol family (node/p2p/traffic.ts: payload, state, gossipsub, identify, ping,
   * connection framing, ...), the most sent first: a family's mean over every peer's rounds.
   */
  bytesByProtocolPerPeerPerRound: Record<string, ByteCounts>
  wallSeconds: number
  /** Each peer's final Global-LiGO digest (the target's, for fedavg), in peer order: equal within a federation that agrees. */
  finalDigests: string[]
  /** Per round: accuracy over the honest peers, and what a peer had spent by then (bytes on the wire, training FLOPs). */
  curve: CurvePoint[]
  /** Only when faults were injected: what happened, and how many different Global-LiGOs peers ended on. */
  faults?: FaultReport & { distinctFinalDigests: number }
}

export interface CurvePoint {
  round: number
  accuracy: { mean: number, std: number, min: number }
  /** Mean over peers of the bytes each had sent up to the end of this round. */
  bytesSentPerPeer: number
  /** Mean over peers of the Global-LiGO payloads (fedavg: targets) each served in this round alone. */
  payloadsServedPerPeer: number
  /** Mean over peers of the bytes each sent in this round alone, by protocol family (node/p2p/traffic.ts). */
  bytesSentByProtocolPerPeer: Record<string, number>
  /**
   * Training FLOPs a peer had spent by the end of this round: forward and backward of the model it
   * trains (Local-LiGO's intermediate model first, for Dual-LiGO methods), per step. It leaves out the
   * growth operator's own products, evaluation, and the small model's pre-training (a participant
   * brings its small model).
   */
  trainFlopsPerPeer: number
  /**
   * How far apart the honest peers' Global-LiGOs (fedavg: targets) are at the end of the round: each
   * one's distance from their mean, relative to the mean (consensusDistances). 0 when all agree; peers
   * that share nothing stay apart.
   */
  spread: { mean: number, max: number }
  /**
   * How full the honest peers' rounds were: updates averaged over participants waited for (peersHeard /
   * peersExpected), mean over the peers that aggregated (not caught up); and how many peers' rounds
   * closed for each reason (round-state.ts; 'caught-up': adopted from peers).
   */
  fill: { heardOfExpected: number, closedBy: Partial<Record<RoundEnding, number>> }
}

export type { SmallModelReport, SmallModelSource }

export interface SimulationResult {
  /** Each peer's small model, pre-trained on its own rows until flat: what growth starts from. */
  smallModels: SmallModelReport[]
  config: { peers: number, rounds: number, preset: string, alpha: number, seed: number, smallModels?: SmallModelSource, publicFraction?: number, aggregation?: string, groupSize?: number, finetuneSelect?: string, finetunePull?: number, finetunePullPerRow?: boolean, privateHead?: boolean, byzantine?: number, attack?: string, faults?: FaultOptions }
  methods: MethodResult[]
  compute: ComputeReport
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length

export type { TaskShape }

/**
 * The task shape of a data set. Images: patches of a quarter of the image side (7 on 28x28 digits), or
 * the nearest divisor below. Texts: the tokenizer they were read with, and their class names.
 */
export function taskShapeOf (data: TrainTest): TaskShape {
  const { numClasses } = data.train
  if (isTextData(data.train)) return { tokenizer: data.train.tokenizer, classNames: data.train.classNames, numClasses }
  const { imageSize, channels } = data.train
  let patchSize = Math.max(1, Math.floor(imageSize / 4))
  while (imageSize % patchSize !== 0) patchSize--
  return { imageSize, channels, numClasses, patchSize }
}

/** How a simulation tokenizes text data: the preset's vocabulary and length, seed 0. */
export const simulationTokenizer = (preset: Preset): TokenizerConfig => validateTokenizer({ ...preset.tokenizer, seed: 0 })

/** Phase 4's pull as the manifest and the result's config write it: nothing without a pull, the per-row flag only when set. */
function pullFields (options: SimulationOptions): Pick<Manifest['schedule'], 'finetunePull' | 'finetunePullPerRow'> {
  if ((options.finetunePull ?? 0) <= 0) return {}
  return { finetunePull: options.finetunePull, ...(options.finetunePullPerRow === true ? { finetunePullPerRow: true } : {}) }
}

/** Each peer's small-model shape, drawn from the preset with the seed. */
export function smallConfigs (preset: Preset, peers: number, seed: number, task: TaskShape): ModelConfig[] {
  const rng = new Rng(`small-shapes:${seed}`)
  return Array.from({ length: peers }, () => configFor(task, {
    dim: preset.smallDims[rng.int(preset.smallDims.length)],
    layers: preset.smallLayers[rng.int(preset.smallLayers.length)],
    heads: preset.heads,
    mlpRatio: preset.mlpRatio
  }))
}

export function simulationManifest (options: SimulationOptions, method: MethodName, task: TaskShape): Manifest {
  const { preset } = options
  const manifestMethod = FROM_SCRATCH.has(method) ? 'fedavg' : method === 'authors-code' ? 'authors-code' : 'fedgrow'
  return validateManifest({
    version: MANIFEST_VERSION,
    method: manifestMethod,
    // Peers that share nothing never learn each other's addresses: each is a federation of one.
    name: `simulate-${preset.name}-${method}-${options.seed}`,
    task: manifestTask(task, options.data ?? 'mnist', `dirichlet:${options.alpha}`, preset.heads),
    intermediate: { ...preset.intermediate, mlpRatio: preset.mlpRatio },
    target: { ...preset.target, mlpRatio: preset.mlpRatio },
    ligo: { init: 'ligo', seed: options.seed, ...(options.privateHead === true && manifestMethod === 'fedgrow' ? { privateHead: true } : {}) },
    schedule: {
      rounds: options.rounds,
      localSteps: preset.localSteps,
      // Peers that grow a shared checkpoint keep one intermediate model per shape: Local-LiGO is not trained.
      localLigoSteps: (options.smallModels ?? DEFAULT_SMALL_MODEL_SOURCE) === 'checkpoint' ? 0 : preset.localLigoSteps,
      ...preset.finetune,
      ...(options.finetuneSelect !== undefined ? { finetuneSelect: options.finetuneSelect } : {}),
      ...(hasFinetuneBudget(preset.finetune) ? pullFields(options) : {}),
      learningRate: preset.learningRate,
      batchSize: preset.batchSize,
      weightDecay: 0.05,
      // With faults, a round that lacks peers stalls at most this long before adaptive deadlines kick in.
      roundTimeoutMs: hasFaults(options.faults ?? {}) ? 30_000 : 120_000,
      // Every peer waits for all others, unless faults are injected: then half (a partition's side) will do.
      quorum: ALONE.has(method) ? 1 : hasFaults(options.faults ?? {}) ? Math.max(1, Math.floor(options.peers / 2)) : options.peers
    },
    aggregation: { rule: options.aggregation ?? 'mean', ...(options.groupSize !== undefined ? { averaging: 'group', groupSize: options.groupSize } : {}) }
  })
}

const HOSTILE_LINGER_MS = 3_000

/** How many of the peers are hostile (the last ones). */
export const hostileCount = (options: SimulationOptions): number => Math.round((options.byzantine ?? 0) * options.peers)

async function runMethod (options: SimulationOptions, pool: ComputePool, memory: MemorySampler, method: MethodName, shards: TrainTest[], smallModels: ModelData[]): Promise<MethodResult> {
  const manifest = simulationManifest(options, method, taskShapeOf(shards[0]))
  const started = Date.now()
  const roundEvents = new Map<number, PeerRound[]>()
  // Accuracy, curves and agreement are the honest peers' (all of them when peers share nothing, where nobody attacks).
  const honestCount = ALONE.has(method) ? options.peers : options.peers - hostileCount(options)
  /** Each honest peer's Global-LiGO at the end of rounds not summarised yet, by round, then peer index. */
  const globals = new Map<number, Map<number, TensorMap>>()
  const spreads = new Map<number, CurvePoint['spread']>()
  /** Each peer's latest round, and the rounds summarised so far. */
  const latest = new Array<number>(options.peers).fill(0)
  let summarised = 0
  const peerLogger = (index: number): Logger<PeerEvent> => (e) => {
    options.onPeerEvent?.({ ...e, method, peerIndex: index })
    if (e.event !== 'round') return
    roundEvents.set(e.round, [...(roundEvents.get(e.round) ?? []), { ...e, peerIndex: index }])
    latest[index] = Math.max(latest[index], e.round)
    // A round is summarised once every peer is past it (one that crashed or caught up may skip it).
    while (summarised < Math.min(...latest)) {
      const round = ++summarised
      const events = roundEvents.get(round) ?? []
      const distances = consensusDistances([...(globals.get(round) ?? new Map<number, TensorMap>())].sort(([a], [b]) => a - b).map(([, g]) => g))
      globals.delete(round)
      spreads.set(round, { mean: distances.length === 0 ? 0 : mean(distances), max: Math.max(0, ...distances) })
      memory.sample()
      if (events.length > 0) options.log({ event: 'simulation-round', method, round, of: options.rounds, peers: events.length, meanAccuracy: mean(events.map(r => r.accuracy)), meanBytesSent: Math.round(mean(events.map(r => r.bytesSent))), seconds: (Date.now() - started) / 1000, spread: spreads.get(round)!.mean })
    }
  }
  const faults = new FaultInjector(ALONE.has(method) ? {} : options.faults ?? {}, options.peers, options.rounds, `${options.seed}:${method}`, options.log)
  // Identities derive from the seed: a peer's key seeds its Local-LiGO and batch order, so a run is
  // reproducible, and peer i is the same participant (same private training) under every method.
  const keys = await Promise.all(Array.from({ length: options.peers }, async (_, i) => await generateKeyPairFromSeed('Ed25519', Buffer.from(sha256Hex(`simulate-peer:${options.seed}:${i}`), 'hex'))))
  const indexOf = new Map(keys.map((k, i) => [peerIdFromPrivateKey(k).toString(), i]))
  /** Runs peer `index` to the end, restarting it on the same port and state after each injected crash. */
  const start = async (index: number, bootstrap: string[], onListening?: (addr: string) => void): Promise<Awaited<ReturnType<typeof runPeer>>> => {
    const stateDir = join(options.outDir, method, `peer${index}`)
    rmSync(stateDir, { recursive: true, force: true })
    mkdirSync(stateDir, { recursive: true })
    const log = peerLogger(index)
    const hostile = index >= options.peers - hostileCount(options) && !ALONE.has(method)
    let listen = '/ip4/127.0.0.1/tcp/0'
    const small = smallModels[index]
    for (;;) {
      try {
        return await runPeer({
          manifest,
          small,
          data: shards[index],
          privateKey: keys[index],
          compute: { pool, worker: index },
          // A hostile peer's update may be banned, so nobody will fetch it: it need not wait long to serve it.
          ...(hostile ? { attack: { kind: options.attack ?? 'signflip', seed: String(index) }, lingerMs: HOSTILE_LINGER_MS } : {}),
          listen: [listen],
          bootstrap,
          stateDir,
          localNetwork: true,
          crash: faults.crashSignal(index),
          denyPeer: (remote) => faults.denies(index, indexOf.get(remote)),
          dropAnnouncement: () => faults.drops(),
          onRoundGlobal: (round, global) => {
            if (index >= honestCount) return
            if (!globals.has(round)) globals.set(round, new Map())
            globals.get(round)!.set(index, global)
          },
          ...(options.onProgress !== undefined ? { onProgress: (e) => { options.onProgress?.({ ...e, phase: `peer ${index} ${e.phase}` }) } } : {}),
          log: (e) => {
            if (e.event === 'listening') {
              const addr = e.multiaddrs[0]
              // A restarted peer listens where it did before, as a real node with a configured port would.
              listen = addr.replace(/\/p2p\/.*$/, '')
              onListening?.(addr)
            }
            if (e.event === 'round') faults.onRound(index, e.round, e.peersHeard)
            log(e)
          }
        })
      } catch (err) {
        if (!(err instanceof PeerCrashed)) throw err
        await new Promise(resolve => setTimeout(resolve, RESTART_DELAY_MS))
        faults.restarted(index)
      }
    }
  }
  const results: Array<Promise<Awaited<ReturnType<typeof runPeer>>>> = []
  if (ALONE.has(method)) {
    for (let i = 0; i < options.peers; i++) results.push(start(i, []))
  } else {
    const first = Promise.withResolvers<string>()
    results.push(start(0, [], first.resolve))
    const addr = await Promise.race([first.promise, results[0].then(() => { throw new Error('peer 0 stopped before it listened') })])
    for (let i = 1; i < options.peers; i++) results.push(start(i, [addr]))
  }
  const done = await Promise.all(results)
  const wallSeconds = (Date.now() - started) / 1000
  const honest = done.slice(0, honestCount)
  const perPeer = honest.map(d => d.accuracy)
  const allRounds = [...roundEvents.values()].flat()
  const plan = planFor(manifest, smallModels[0].config)
  // Global-LiGO, and for authors-code the intermediate model beside it.
  const sharedParams = countLigoParams(globalShape(plan)) + (method === 'authors-code' ? countParams(plan.intermediate) : 0)
  const targetParams = countParams(plan.target)
  return {
    name: method,
    accuracy: { ...accuracyStats(perPeer), perPeer },
    targetParams,
    trainableParamsPerPeer: FROM_SCRATCH.has(method) ? targetParams : sharedParams + (manifest.ligo.privateHead === true ? countClassifierParams(plan.target) : 0),
    sharedParamsPerRound: ALONE.has(method) ? 0 : FROM_SCRATCH.has(method) ? targetParams : sharedParams,
    bytesSentPerPeerPerRound: allRounds.length === 0 ? 0 : mean(allRounds.map(r => r.bytesSent)),
    payloadsSentPerPeerPerRound: allRounds.length === 0 ? 0 : mean(allRounds.map(r => r.payloadsServed)),
    announcementsPerPeerPerRound: allRounds.length === 0 ? 0 : mean(allRounds.map(r => r.announcementsSent)),
    announcementsToldPerPeerPerRound: allRounds.length === 0 ? 0 : mean(allRounds.map(r => r.announcementsTold)),
    bytesReceivedPerPeerPerRound: allRounds.length === 0 ? 0 : mean(allRounds.map(r => r.bytesReceived)),
    bytesByProtocolPerPeerPerRound: meanByProtocol(allRounds),
    wallSeconds,
    finalDigests: done.map(d => d.globalDigest),
    curve: curveOf(manifest, plan, method, roundEvents, spreads, honestCount),
    ...(hasFaults(options.faults ?? {}) && method !== 'independent' ? { faults: { ...faults.report, distinctFinalDigests: new Set(done.map(d => d.globalDigest)).size } } : {})
  }
}

/** Each family's bytes averaged over `rounds` (a round that used no stream of a family counts 0), the most sent first. */
function meanByProtocol (rounds: PeerRound[]): Record<string, ByteCounts> {
  const sums = new Map<string, ByteCounts>()
  for (const r of rounds) {
    for (const [family, bytes] of Object.entries(r.bytesByProtocol)) {
      const sum = sums.get(family) ?? { sent: 0, received: 0 }
      sums.set(family, { sent: sum.sent + bytes.sent, received: sum.received + bytes.received })
    }
  }
  return Object.fromEntries([...sums].sort(([, a], [, b]) => b.sent - a.sent).map(([family, sum]) => [family, { sent: sum.sent / rounds.length, received: sum.received / rounds.length }]))
}

/** Each family's bytes sent, averaged over `rounds`, the most sent first. */
const sentByProtocol = (rounds: PeerRound[]): Record<string, number> => Object.fromEntries(Object.entries(meanByProtocol(rounds)).map(([family, bytes]) => [family, bytes.sent]))

function accuracyStats (accuracies: number[]): CurvePoint['accuracy'] {
  const avg = mean(accuracies)
  return { mean: avg, std: Math.sqrt(mean(accuracies.map(a => (a - avg) ** 2))), min: Math.min(...accuracies) }
}

/** One peer's round event, with the peer's index. */
type PeerRound = EventOf<'round'> & { peerIndex: number }

/** The per-round curve of one method from its peers' round events (peers from `honestCount` on are hostile). */
function curveOf (manifest: Manifest, plan: DualLigoPlan, method: MethodName, roundEvents: Map<number, PeerRound[]>, spreads: Map<number, CurvePoint['spread']>, honestCount: number): CurvePoint[] {
  const { schedule } = manifest
  const prepareFlops = FROM_SCRATCH.has(method) ? 0 : schedule.localLigoSteps * flopsPerTrainStep(plan.intermediate, schedule.batchSize)
  const roundFlops = schedule.localSteps * flopsPerTrainStep(plan.target, schedule.batchSize)
  const sentSoFar = new Map<number, number>()
  const points: CurvePoint[] = []
  for (const round of [...roundEvents.keys()].sort((a, b) => a - b)) {
    // In peer order, as the final accuracies are, so the same values sum to the same mean.
    const events = roundEvents.get(round)!.filter(e => e.peerIndex < honestCount).sort((a, b) => a.peerIndex - b.peerIndex)
    if (events.length === 0) continue
    for (const e of events) sentSoFar.set(e.peerIndex, (sentSoFar.get(e.peerIndex) ?? 0) + e.bytesSent)
    points.push({ round, accuracy: accuracyStats(events.map(e => e.accuracy)), bytesSentPerPeer: mean([...sentSoFar.values()]), payloadsServedPerPeer: mean(events.map(e => e.payloadsServed)), bytesSentByProtocolPerPeer: sentByProtocol(events), trainFlopsPerPeer: prepareFlops + round * roundFlops, spread: spreads.get(round) ?? { mean: 0, max: 0 }, fill: roundFill(events) })
  }
  return points
}

function roundFill (events: PeerRound[]): CurvePoint['fill'] {
  const aggregated = events.filter(e => !e.caughtUp)
  const closedBy: CurvePoint['fill']['closedBy'] = {}
  for (const e of events) closedBy[e.closedBy] = (closedBy[e.closedBy] ?? 0) + 1
  return { heardOfExpected: aggregated.length === 0 ? 0 : mean(aggregated.map(e => e.peersHeard / e.peersExpected)), closedBy }
}

/** Samples each worker's memory now and then (never two samples at once), keeping the largest seen. */
class MemorySampler {
  readonly perWorker: ComputeReport['perWorker']
  private inFlight = false

  constructor (private readonly pool: ComputePool, private readonly log: Logger) {
    this.perWorker = Array.from({ length: pool.size }, () => ({ heapBytes: 0, backendBytes: 0 }))
  }

  sample (): void {
    if (this.inFlight) return
    this.inFlight = true
    this.pool.memory().then((now) => {
      now.forEach((m, i) => {
        this.perWorker[i].heapBytes = Math.max(this.perWorker[i].heapBytes, m.heapBytes)
        this.perWorker[i].backendBytes = Math.max(this.perWorker[i].backendBytes, m.backendBytes)
      })
    }).catch((err: Error) => {
      // A dead worker fails its peers' own jobs, which is where the run reports it; nothing to measure here.
      this.log({ event: 'warning', message: `memory sample failed: ${err.message}` })
    }).finally(() => { this.inFlight = false })
  }
}

/** Sampling period of the main thread's event-loop delay (its histogram's resolution). */
const EVENT_LOOP_RESOLUTION_MS = 10

/** Peak resident memory of this process so far, in bytes. */
const peakRssBytes = (): number => process.resourceUsage().maxRSS * 1024

/** The public slice's share where it is not the default (in the result's config and the small models' cache key). */
const publicFractionField = (options: SimulationOptions): { publicFraction?: number } => options.publicFraction === undefined || options.publicFraction === PUBLIC_FRACTION ? {} : { publicFraction: options.publicFraction }

export async function simulate (options: SimulationOptions): Promise<SimulationResult> {
  checkFaults(options.faults ?? {}, options.rounds)
  const { publicRows, shared } = splitPublic(loadData(options.data ?? 'mnist', options.seed, simulationTokenizer(options.preset)), options.seed, options.publicFraction)
  const shards = partition(shared, options.peers, { kind: 'dirichlet', alpha: options.alpha }, options.seed).map(inSharedMemory)
  const smalls = smallConfigs(options.preset, options.peers, options.seed, taskShapeOf(shared))
  const rssBefore = process.memoryUsage().rss
  const pool = await startComputePool({ workers: options.workers ?? defaultWorkerCount(options.peers), backend: options.backend })
  const delay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS })
  delay.enable()
  options.log({ event: 'compute', workers: pool.size, backend: pool.backend.name, source: pool.backend.source })
  const memory = new MemorySampler(pool, options.log)
  const methods: MethodResult[] = []
  let smallModels: SmallModelReport[] = []
  try {
    const source = options.smallModels ?? DEFAULT_SMALL_MODEL_SOURCE
    const cacheKey = { peers: options.peers, alpha: options.alpha, seed: options.seed, data: options.data ?? 'mnist', ...publicFractionField(options) }
    const prepared = await prepareSmallModels({ pool, preset: options.preset, source, cacheKey, cacheDir: join(options.outDir, 'cache'), seed: options.seed, log: options.log, onProgress: options.onProgress }, smalls, shards, publicRows)
    smallModels = prepared.reports
    for (const method of options.methods) {
      options.log({ event: 'method', method, peers: options.peers, rounds: options.rounds })
      methods.push(await runMethod(options, pool, memory, method, shards, prepared.models))
    }
  } finally {
    delay.disable()
    await pool.close()
  }
  const config: SimulationResult['config'] = { peers: options.peers, rounds: options.rounds, preset: options.preset.name, alpha: options.alpha, seed: options.seed }
  if ((options.smallModels ?? DEFAULT_SMALL_MODEL_SOURCE) !== DEFAULT_SMALL_MODEL_SOURCE) config.smallModels = options.smallModels
  Object.assign(config, publicFractionField(options))
  if ((options.aggregation ?? 'mean') !== 'mean') config.aggregation = options.aggregation
  if (options.groupSize !== undefined) config.groupSize = options.groupSize
  if ((options.finetuneSelect ?? 'last') !== 'last') config.finetuneSelect = options.finetuneSelect
  Object.assign(config, pullFields(options))
  if (options.privateHead === true) config.privateHead = true
  if (hostileCount(options) > 0) Object.assign(config, { byzantine: options.byzantine, attack: options.attack ?? 'signflip' })
  if (hasFaults(options.faults ?? {})) config.faults = options.faults
  const peak = peakRssBytes()
  return { config, smallModels, methods, compute: { workers: pool.size, backend: pool.backend.name, peakRssBytes: peak, rssPerPeerBytes: Math.round(Math.max(0, peak - rssBefore) / options.peers), perWorker: memory.perWorker, mainThreadDelayMs: { max: delay.max / 1e6, p99: delay.percentile(99) / 1e6 } } }
}
