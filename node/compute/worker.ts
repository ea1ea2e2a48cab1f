/**
 * A compute worker: one worker thread with its own tfjs engine and backend, holding the Learners of the
 * peers assigned to it and running their heavy work (pre-training, Local-LiGO, each round's training,
 * evaluation, growing and saving the final model, and large rounds' aggregation). The thread that
 * spawned it keeps libp2p and the round engine, and so keeps answering its peers while this one computes.
 *
 * Requests are handled one at a time, in arrival order, each to completion: a worker shared by several
 * peers serialises their jobs, and each job's result depends only on its inputs (seeded), never on
 * which worker ran it or when.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { getHeapStatistics } from 'node:v8'
import * as tf from '../tf.js'
import { initBackend } from '../backend.js'
import { saveModel } from '../model/model-file.js'
import { predictWith, trainSmallModel } from '../train/pretrain.js'
import type { NamedTensors } from '../model/vit.js'
import { evaluate } from '../train/trainer.js'
import { fromTensorMap } from '../storage/files.js'
import { Participant, planFor } from '../federation/participant.js'
import { FedAvgLearner } from '../federation/fedavg-learner.js'
import { hostileLearner } from '../federation/attacks.js'
import { strategyFor } from '../federation/strategy.js'
import { ProtocolError } from '../../protocol/errors.js'
import type { Learner } from '../federation/learner.js'
import type { ProgressEvent } from '../train/progress.js'
import type { LearnerCalls, LearnerInfo, LearnerSpec, PretrainJob, PretrainResult, SerializedError, WorkerInit, WorkerMemory, WorkerMessage, WorkerRequest } from './messages.js'

if (parentPort === null) throw new Error('node/compute/worker.ts runs as a worker thread (node/compute/pool.ts starts it)')
const port = parentPort
const init = workerData as WorkerInit

const learners = new Map<number, Learner>()
/** The request being handled: progress and log messages are tagged with it. */
let current = 0

const post = (message: WorkerMessage, transfer: ArrayBuffer[] = []): void => { port.postMessage(message, transfer) }

const onProgress = (event: ProgressEvent): void => { post({ type: 'progress', id: current, event }) }

function buildLearner (spec: LearnerSpec): Learner {
  const { manifest, data, seed } = spec
  const plan = planFor(manifest, spec.small.config)
  let learner: Learner
  switch (manifest.method) {
    case 'fedgrow':
    case 'authors-code':
      learner = new Participant({ manifest, plan, small: fromTensorMap(spec.small.params), data, seed, onProgress })
      break
    case 'fedavg':
      learner = new FedAvgLearner({ manifest, target: plan.target, data, seed, onProgress })
      break
    default: {
      const unreachable: never = manifest.method
      throw new Error(`unknown method ${String(unreachable)}`)
    }
  }
  return spec.attack === undefined ? learner : hostileLearner(learner, spec.attack.kind, spec.attack.seed)
}

function learner (id: number): Learner {
  const found = learners.get(id)
  if (found === undefined) throw new Error(`compute worker ${init.index} holds no learner ${id}`)
  return found
}

type Handlers = { [K in keyof LearnerCalls]: (l: Learner, ...args: LearnerCalls[K]['args']) => LearnerCalls[K]['result'] }
const CALLS: Handlers = {
  initial: (l) => l.initial(),
  prepare: (l, stateDir) => { l.prepare(stateDir, (event) => { post({ type: 'log', id: current, event }) }) },
  trainRound: (l, global, round) => l.trainRound(global, round),
  evaluate: (l, global) => l.evaluate(global),
  saveFinal: (l, global, path, info, known) => {
    const model = l.finalModel(global)
    try {
      const kept = model.finetuneKeptStep !== undefined ? { finetuneKeptStep: model.finetuneKeptStep } : {}
      const score = { ...(model.finetunedScore ?? known ?? l.evaluate(global)), ...kept }
      saveModel(path, model.config, model.params, { ...info, finetuned: model.finetunedScore !== undefined, ...kept, testAccuracy: score.accuracy })
      return score
    } finally {
      tf.dispose(Object.values(model.params))
    }
  }
}

/** The job's weights (fresh, or its start) trained for its steps or until flat; the caller owns the params. */
function pretrained (job: PretrainJob): { params: NamedTensors, steps: number, validationAccuracy?: number } {
  const start = job.start === undefined ? undefined : fromTensorMap(job.start)
  try {
    const { params, steps, validationAccuracy } = trainSmallModel(job.config, start, job.data.train, { ...job.options, onProgress }, job.stopping)
    return { params, steps, ...(validationAccuracy !== undefined ? { validationAccuracy } : {}) }
  } finally {
    if (start !== undefined) tf.dispose(Object.values(start))
  }
}

function runPretrain (job: PretrainJob): PretrainResult {
  const { params, ...trained } = pretrained(job)
  try {
    const result = { accuracy: evaluate(predictWith(job.config, params), job.data.test).accuracy, ...trained }
    saveModel(job.path, job.config, params, { ...job.info, testAccuracy: result.accuracy, steps: result.steps, ...(result.validationAccuracy !== undefined ? { validationAccuracy: result.validationAccuracy } : {}) })
    return result
  } finally {
    tf.dispose(Object.values(params))
  }
}

function memory (): WorkerMemory {
  const wasm = (tf.backend() as { wasm?: { HEAPU8?: Uint8Array } }).wasm
  return { heapBytes: getHeapStatistics().used_heap_size, backendBytes: wasm?.HEAPU8?.byteLength ?? 0, tensorsAlive: tf.memory().numTensors }
}

function handle (request: WorkerRequest): unknown {
  switch (request.op) {
    case 'create-learner': {
      const built = buildLearner(request.spec)
      learners.set(request.learner, built)
      const info: LearnerInfo = { spec: built.spec, sampleCount: built.sampleCount }
      return info
    }
    case 'call': {
      const fn = CALLS[request.call] as (l: Learner, ...args: unknown[]) => unknown
      return fn(learner(request.learner), ...request.args)
    }
    case 'dispose-learner':
      learners.get(request.learner)?.dispose()
      learners.delete(request.learner)
      return undefined
    case 'pretrain':
      return runPretrain(request.job)
    case 'aggregate':
      return strategyFor(request.aggregation).aggregate(request.contributions, request.current)
    case 'memory':
      return memory()
    default: {
      const unreachable: never = request
      throw new Error(`unknown request ${JSON.stringify(unreachable)}`)
    }
  }
}

/** The buffers of the typed arrays in a result, so they move to the main thread instead of being copied. */
function ownedBuffers (value: unknown, depth = 0, out: ArrayBuffer[] = []): ArrayBuffer[] {
  if (ArrayBuffer.isView(value)) {
    if (value.byteOffset === 0 && value.byteLength === value.buffer.byteLength && value.buffer instanceof ArrayBuffer && !out.includes(value.buffer)) out.push(value.buffer)
  } else if (typeof value === 'object' && value !== null && depth < 4) {
    for (const v of Object.values(value)) ownedBuffers(v, depth + 1, out)
  }
  return out
}

function serialize (err: unknown): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) }
  return { name: err.name, message: err.message, stack: err.stack, ...(err instanceof ProtocolError ? { reason: err.reason } : {}) }
}

port.on('message', (request: WorkerRequest) => {
  current = request.id
  try {
    const value = handle(request)
    post({ type: 'result', id: request.id, value, tensorsAlive: tf.memory().numTensors }, ownedBuffers(value))
  } catch (err) {
    post({ type: 'failure', id: request.id, error: serialize(err), tensorsAlive: tf.memory().numTensors })
  }
})

try {
  post({ type: 'ready', backend: await initBackend(init.backend) })
} catch (err) {
  post({ type: 'failure', id: 0, error: serialize(err), tensorsAlive: 0 })
}
