/**
 * A pool of compute workers (worker.ts) and the main-thread handles of the Learners they hold. A peer's
 * heavy work runs there, so the thread with libp2p, the round engine, the dashboard and metrics never
 * waits on tfjs. A `fedgrow node` has a pool of one; `fedgrow simulate` shares one pool among its peers.
 *
 * A worker that dies (out of memory, a crash) fails every job it held or is given later with a
 * ComputeWorkerError that says which worker and why: a peer exits with it, it never hangs.
 */
import '../polyfill.js'
import { Worker } from 'node:worker_threads'
import { availableParallelism, freemem } from 'node:os'
import { ComputeWorkerError, DataError, TrainingDivergedError, InvalidArgumentError, InvalidConfigError, ModelFileError, BackendUnavailableError, NetworkError } from '../errors.js'
import { InvalidManifestError, ProtocolError } from '../../protocol/errors.js'
import { parseBackendChoice } from '../backend.js'
import { inSharedMemory } from '../data/dataset.js'
import type { RejectionReason } from '../../protocol/errors.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { TensorSpec } from '../../protocol/payload.js'
import type { ActiveBackend, BackendChoice } from '../backend.js'
import type { ModelInfo } from '../model/model-file.js'
import type { Evaluation } from '../train/trainer.js'
import type { ProgressSink } from '../train/progress.js'
import type { LocalUpdate } from '../federation/engine.js'
import type { RemoteAggregate } from '../federation/strategy.js'
import type { Logger } from '../log.js'
import type { PeerEvent } from '../events.js'
import type { FinalScore, LearnerCall, LearnerCalls, LearnerInfo, LearnerSpec, PretrainJob, PretrainResult, SerializedError, WorkerInit, WorkerMemory, WorkerMessage, WorkerRequest } from './messages.js'

/**
 * Memory one worker takes before any model (measured: tfjs, its wasm module and the worker's own V8 heap,
 * about 100 MB), plus room for a few small models and their training; used to cap the default pool size.
 */
export const WORKER_MEMORY_BYTES = 400 * 1024 * 1024

/** The default pool size for `jobs` concurrent jobs: one worker per core, as many as free memory allows. */
export function defaultWorkerCount (jobs: number): number {
  const byMemory = Math.floor(freemem() / 2 / WORKER_MEMORY_BYTES)
  return Math.max(1, Math.min(availableParallelism(), byMemory, jobs))
}

/** Where progress and log events of a job go. */
export interface ComputeHooks {
  onProgress?: ProgressSink
  log?: Logger<PeerEvent>
}

/** One peer's Learner, held by a compute worker; every call runs there. */
export interface PeerCompute {
  /** Names and shapes of what is shared each round, in canonical order. */
  readonly spec: TensorSpec[]
  /** Training examples behind each update (its aggregation weight). */
  readonly sampleCount: number
  /** Which worker of the pool holds it. */
  readonly worker: number
  /** What every peer starts from: identical on all peers, derived from the manifest alone. */
  initial: () => Promise<TensorMap>
  /** Local work before the first round (Local-LiGO); resumes from `stateDir` when it can. */
  prepare: (stateDir: string) => Promise<void>
  trainRound: (global: TensorMap, round: number) => Promise<LocalUpdate>
  /** Accuracy and loss of the model `global` gives this peer, on its own test split. */
  evaluate: (global: TensorMap) => Promise<Evaluation>
  /** Saves the model this peer ends with (grown from `global`, fine-tuned if the manifest asks) and returns its test score; `score` is evaluate(global)'s when known. */
  saveFinal: (global: TensorMap, path: string, info: ModelInfo, score?: Evaluation) => Promise<FinalScore>
  /** Frees the worker-side Learner. */
  close: () => Promise<void>
}

export interface ComputePool {
  readonly size: number
  /** The backend every worker runs. */
  readonly backend: ActiveBackend
  /** Builds a peer's Learner on a worker: `worker` if given (modulo the size), else the least loaded. */
  createLearner: (spec: LearnerSpec, hooks?: ComputeHooks, worker?: number) => Promise<PeerCompute>
  /** Pre-trains and saves a model on the least busy worker. */
  pretrain: (job: PretrainJob, hooks?: ComputeHooks) => Promise<PretrainResult>
  /** A round's aggregation on the least busy worker (strategy.ts offThread). */
  aggregate: RemoteAggregate
  memory: () => Promise<WorkerMemory[]>
  /** tfjs tensors alive across the workers, as last reported. */
  tensorsAlive: () => number
  close: () => Promise<void>
}

export interface ComputePoolInit {
  /** @default 1 */
  workers?: number
  /** @default the FEDGROW_BACKEND environment variable, else auto */
  backend?: BackendChoice
  /** Caps each worker's JavaScript heap (V8 old generation), in MiB. @default Node's own limit */
  maxHeapMiB?: number
}

const ERRORS: Record<string, new (message: string) => Error> = { InvalidConfigError, InvalidArgumentError, TrainingDivergedError, DataError, ModelFileError, BackendUnavailableError, NetworkError, InvalidManifestError }

/** The error a worker threw, as the same class on this side, so exit codes and `instanceof` still work. */
function revive (e: SerializedError): Error {
  const err: Error = e.name === 'ProtocolError' ? new ProtocolError(e.reason as RejectionReason, e.message.replace(/^[a-z-]+: /, '')) : new (ERRORS[e.name] ?? Error)(e.message)
  if (ERRORS[e.name] === undefined && e.name !== 'ProtocolError') err.name = e.name
  if (e.stack !== undefined) err.stack = e.stack
  return err
}

interface Job {
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  hooks: ComputeHooks
}

class ComputeWorker {
  readonly ready: Promise<ActiveBackend>
  /** Learners this worker holds, and jobs in flight: what "least loaded" counts. */
  private heldLearners = 0
  busy = 0
  tensorsAlive = 0
  private readonly worker: Worker
  private readonly jobs = new Map<number, Job>()
  private nextId = 1
  private failure: ComputeWorkerError | undefined
  private closing = false

  get learners (): number {
    return this.heldLearners
  }

  /** Counts a learner this worker is about to hold; release() undoes it. */
  hold (): void {
    this.heldLearners++
  }

  release (): void {
    this.heldLearners--
  }

  constructor (readonly index: number, backend: BackendChoice, maxHeapMiB?: number) {
    const init: WorkerInit = { backend, index }
    this.worker = new Worker(new URL('./worker-entry.js', import.meta.url), { workerData: init, ...(maxHeapMiB !== undefined ? { resourceLimits: { maxOldGenerationSizeMb: maxHeapMiB } } : {}) })
    const started = Promise.withResolvers<ActiveBackend>()
    this.ready = started.promise
    this.worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'ready') started.resolve(message.backend)
      else if (message.type === 'failure' && message.id === 0) started.reject(revive(message.error))
      else this.receive(message)
    })
    this.worker.on('error', (err: Error & { code?: string }) => {
      const why = err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'ran out of memory (lower --workers, or use smaller models)' : `failed: ${err.message}`
      this.fail(new ComputeWorkerError(`compute worker ${index} ${why}`))
      started.reject(this.failure)
    })
    this.worker.on('exit', (code) => {
      this.fail(new ComputeWorkerError(this.closing ? `compute worker ${index} was closed` : `compute worker ${index} exited unexpectedly with code ${code}`))
      started.reject(this.failure)
    })
  }

  private fail (err: ComputeWorkerError): void {
    this.failure ??= err
    for (const job of this.jobs.values()) job.reject(this.failure)
    this.jobs.clear()
  }

  private receive (message: Exclude<WorkerMessage, { type: 'ready' }>): void {
    const job = this.jobs.get(message.id)
    if (job === undefined) return
    switch (message.type) {
      case 'progress':
        job.hooks.onProgress?.(message.event)
        return
      case 'log':
        job.hooks.log?.(message.event)
        return
      case 'result':
      case 'failure':
        this.jobs.delete(message.id)
        this.busy--
        this.tensorsAlive = message.tensorsAlive
        if (message.type === 'result') job.resolve(message.value)
        else job.reject(revive(message.error))
        return
      default: {
        const unreachable: never = message
        throw new Error(`unknown worker message ${JSON.stringify(unreachable)}`)
      }
    }
  }

  async request<T>(request: DistributiveOmit<WorkerRequest, 'id'>, hooks: ComputeHooks = {}): Promise<T> {
    if (this.failure !== undefined) throw this.failure
    const id = this.nextId++
    const done = Promise.withResolvers<unknown>()
    this.jobs.set(id, { resolve: done.resolve, reject: done.reject, hooks })
    this.busy++
    this.worker.postMessage({ ...request, id })
    return await done.promise as T
  }

  async close (): Promise<void> {
    this.closing = true
    await this.worker.terminate()
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

let nextLearnerId = 1

function peerCompute (worker: ComputeWorker, id: number, info: LearnerInfo, hooks: ComputeHooks): PeerCompute {
  const call = async <K extends LearnerCall>(name: K, ...args: LearnerCalls[K]['args']): Promise<LearnerCalls[K]['result']> =>
    await worker.request({ op: 'call', learner: id, call: name, args }, hooks)
  let closed = false
  return {
    spec: info.spec,
    sampleCount: info.sampleCount,
    worker: worker.index,
    initial: async () => await call('initial'),
    prepare: async (stateDir) => { await call('prepare', stateDir) },
    trainRound: async (global, round) => await call('trainRound', global, round),
    evaluate: async (global) => await call('evaluate', global),
    saveFinal: async (global, path, info, score) => await call('saveFinal', global, path, info, score),
    close: async () => {
      if (closed) return
      closed = true
      worker.release()
      await worker.request({ op: 'dispose-learner', learner: id }).catch((err: Error) => {
        // A dead worker has freed everything it held already.
        if (!(err instanceof ComputeWorkerError)) throw err
      })
    }
  }
}

/** Starts `workers` compute workers and waits until each has loaded its backend. */
export async function startComputePool (init: ComputePoolInit = {}): Promise<ComputePool> {
  const size = init.workers ?? 1
  if (!Number.isInteger(size) || size < 1) throw new InvalidArgumentError(`a compute pool needs a whole number of workers >= 1, got ${size}`)
  const choice = init.backend ?? parseBackendChoice(undefined)
  const workers = Array.from({ length: size }, (_, i) => new ComputeWorker(i, choice, init.maxHeapMiB))
  let backends: ActiveBackend[]
  try {
    backends = await Promise.all(workers.map(async w => await w.ready))
  } catch (err) {
    await Promise.all(workers.map(async w => { await w.close() }))
    throw err
  }
  const leastLoaded = (key: 'learners' | 'busy'): ComputeWorker => workers.reduce((best, w) => w[key] < best[key] ? w : best)
  return {
    size,
    backend: backends[0],
    async createLearner (spec, hooks = {}, index) {
      const worker = index === undefined ? leastLoaded('learners') : workers[index % size]
      worker.hold()
      const id = nextLearnerId++
      try {
        const info = await worker.request<LearnerInfo>({ op: 'create-learner', learner: id, spec: { ...spec, data: inSharedMemory(spec.data) } }, hooks)
        return peerCompute(worker, id, info, hooks)
      } catch (err) {
        worker.release()
        throw err
      }
    },
    pretrain: async (job, hooks) => await leastLoaded('busy').request({ op: 'pretrain', job: { ...job, data: inSharedMemory(job.data) } }, hooks),
    aggregate: async (aggregation, contributions, current) => await leastLoaded('busy').request({ op: 'aggregate', aggregation, contributions, current }),
    memory: async () => await Promise.all(workers.map(async w => await w.request<WorkerMemory>({ op: 'memory' }))),
    tensorsAlive: () => workers.reduce((sum, w) => sum + w.tensorsAlive, 0),
    close: async () => { await Promise.all(workers.map(async w => { await w.close() })) }
  }
}
