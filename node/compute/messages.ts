/**
 * What the network thread and a compute worker say to each other (structured-clone data only: tensors
 * cross as TensorMaps of Float32Arrays). Every request carries an id; the worker answers each with one
 * `result` or `failure`, and may send `progress` and `log` messages tagged with that id meanwhile.
 */
import type { Manifest } from '../../protocol/manifest.js'
import type { TensorSpec } from '../../protocol/payload.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { ActiveBackend, BackendChoice } from '../backend.js'
import type { TrainTest } from '../data/dataset.js'
import type { ModelConfig } from '../model/config.js'
import type { ModelInfo } from '../model/model-file.js'
import type { Attack } from '../federation/attacks.js'
import type { PeerEvent } from '../events.js'
import type { ProgressEvent } from '../train/progress.js'
import type { Evaluation, TrainOptions } from '../train/trainer.js'
import type { EarlyStopping } from '../train/pretrain.js'
import type { LocalUpdate } from '../federation/engine.js'
import type { Contribution } from '../federation/aggregate.js'

/** A model as plain data: its config and named parameters. */
export interface ModelData {
  config: ModelConfig
  params: TensorMap
}

/** Everything a worker needs to build one peer's Learner (what the manifest's method calls for). */
export interface LearnerSpec {
  manifest: Manifest
  /** The peer's small pre-trained model (unused by the fedavg baseline, which trains from scratch). */
  small: ModelData
  data: TrainTest
  /** Seeds this peer's Local-LiGO and batch order (its public key in a real node). */
  seed: string
  /** Simulations only: train honestly, then corrupt every shared update (node/federation/attacks.ts). */
  attack?: { kind: Attack, seed: string }
}

/** Pre-train a model on `data.train`, score it on `data.test`, save it to `path` (simulations' small models). */
export interface PretrainJob {
  config: ModelConfig
  /** Parameters to start from (fine-tuning a checkpoint); absent: fresh ones seeded by `options.seed`. */
  start?: TensorMap
  data: TrainTest
  /** `options.steps` is the most it may take when `stopping` is set. */
  options: Omit<TrainOptions, 'onProgress' | 'checkpoint'>
  /** Train until the accuracy on its validation rows stops rising, keeping the best parameters. */
  stopping?: EarlyStopping
  path: string
  info: ModelInfo
}

export interface PretrainResult {
  /** On `data.test`. */
  accuracy: number
  /** Steps behind the saved parameters (the best validation score's, with `stopping`). */
  steps: number
  validationAccuracy?: number
}

/** The calls a main-thread handle makes on its worker-side Learner, with their arguments and results. */
export interface LearnerCalls {
  initial: { args: [], result: TensorMap }
  prepare: { args: [stateDir: string], result: void }
  trainRound: { args: [global: TensorMap, round: number], result: LocalUpdate }
  evaluate: { args: [global: TensorMap], result: Evaluation }
  /**
   * Grows (or takes) the final model from `global`, fine-tunes it if the manifest asks, saves it as a
   * model file with its test score, and returns that score. `score` is evaluate(global)'s, when known:
   * it is reused unless fine-tuning changed the model.
   */
  saveFinal: { args: [global: TensorMap, path: string, info: ModelInfo, score: Evaluation | undefined], result: FinalScore }
}

/** The final model's test score, and with `best-held-out` fine-tuning the step it kept (0: none, the model as grown). */
export type FinalScore = Evaluation & { finetuneKeptStep?: number }
export type LearnerCall = keyof LearnerCalls

export interface WorkerInit {
  backend: BackendChoice
  /** Index of this worker in its pool, for messages. */
  index: number
}

export type WorkerRequest =
  | { id: number, op: 'create-learner', learner: number, spec: LearnerSpec }
  | { id: number, op: 'call', learner: number, call: LearnerCall, args: unknown[] }
  | { id: number, op: 'dispose-learner', learner: number }
  | { id: number, op: 'pretrain', job: PretrainJob }
  /** A round's aggregation (strategy.ts offThread): contributions in shared memory arrive without a copy. */
  | { id: number, op: 'aggregate', aggregation: Manifest['aggregation'], contributions: Contribution[], current: TensorMap }
  | { id: number, op: 'memory' }

/** A created learner's constants, known without a call. */
export interface LearnerInfo {
  spec: TensorSpec[]
  sampleCount: number
}

export interface WorkerMemory {
  /** This worker's JavaScript heap in use. */
  heapBytes: number
  /** The compute backend's own memory (the wasm module's linear memory), when it has one. */
  backendBytes: number
  tensorsAlive: number
}

export interface SerializedError {
  name: string
  message: string
  stack?: string
  /** ProtocolError's rejection reason. */
  reason?: string
}

export type WorkerMessage =
  | { type: 'ready', backend: ActiveBackend }
  | { type: 'result', id: number, value: unknown, tensorsAlive: number }
  | { type: 'failure', id: number, error: SerializedError, tensorsAlive: number }
  | { type: 'progress', id: number, event: ProgressEvent }
  | { type: 'log', id: number, event: PeerEvent }
