/**
 * One participant's private side of Fed-Grow: its small model, data, Local-LiGO and intermediate model,
 * none of which leave it; and the local training of Global-LiGO each round. Only the TensorMap that
 * trainRound returns (a Global-LiGO) is ever handed to the network.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import * as tf from '../tf.js'
import { loadModel, saveModel } from '../model/model-file.js'
import { VariableSet } from '../train/variables.js'
import { predictWith } from '../train/pretrain.js'
import { globalShape, growIntermediate, initialGlobalLigo, localLigoInitSeed, materialise } from '../ligo/index.js'
import { ligoParamShapes } from '../ligo/operator.js'
import { configFor, isTextConfig, taskDifference } from '../model/config.js'
import { fromTensorMap, toTensorMap } from '../storage/files.js'
import { CLASSIFIER_PARAMS, crossEntropy, forward, initParams, paramShapes } from '../model/vit.js'
import { loadHeadBefore, saveHead } from './private-head.js'
import { grow } from '../ligo/grow.js'
import { evaluate, train } from '../train/trainer.js'
import { InvalidConfigError, ModelFileError } from '../errors.js'
import type { Manifest } from '../../protocol/manifest.js'
import type { TensorSpec } from '../../protocol/payload.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { TrainTest } from '../data/dataset.js'
import type { ModelConfig, TaskShape } from '../model/config.js'
import type { NamedTensors } from '../model/vit.js'
import type { DualLigoPlan } from '../ligo/index.js'
import type { Evaluation } from '../train/trainer.js'
import type { ProgressSink } from '../train/progress.js'
import type { LocalUpdate } from './engine.js'
import { finetuneLocally, roundTraining, scheduledTraining } from './learner.js'
import type { FinalModel, Learner } from './learner.js'
import type { Logger } from '../log.js'
import type { PeerEvent } from '../events.js'

/**
 * The task shape a manifest's task fixes. A text manifest names the classes by count only (labels are
 * class numbers on the wire of training); their names, which only people read, come from the small model.
 */
function manifestTaskShape (task: Manifest['task'], small: ModelConfig): TaskShape {
  if (task.kind === 'image-classification') return { imageSize: task.imageSize, channels: task.channels, patchSize: task.patchSize, numClasses: task.numClasses }
  const classNames = isTextConfig(small) && small.classNames.length === task.numClasses
    ? small.classNames
    : Array.from({ length: task.numClasses }, (_, i) => String(i))
  return { tokenizer: { ...task.tokenizer }, classNames, numClasses: task.numClasses }
}

/** A manifest's task for models of `task`'s shape with `heads` heads: what planFor reads back. */
export function manifestTask (task: TaskShape, data: string, partition: string, heads: number): Manifest['task'] {
  if ('tokenizer' in task) return { kind: 'text-classification', data, partition, numClasses: task.numClasses, heads, tokenizer: { ...task.tokenizer } }
  return { kind: 'image-classification', data, partition, imageSize: task.imageSize, channels: task.channels, numClasses: task.numClasses, patchSize: task.patchSize, heads }
}

/** The Dual-LiGO plan a manifest implies for a participant whose small model has `small`'s shape. */
export function planFor (manifest: Manifest, small: ModelConfig): DualLigoPlan {
  const task = manifestTaskShape(manifest.task, small)
  const heads = manifest.task.heads
  const difference = taskDifference(small, configFor(task, { dim: small.dim, layers: small.layers, mlpRatio: small.mlpRatio, heads }), 'the small model', 'the federation\'s task')
  if (difference !== undefined) throw new InvalidConfigError(`${difference}; bring a small model trained for the federation's task (its manifest's task)`)
  if (small.heads !== heads) throw new InvalidConfigError(`the small model has heads ${small.heads}, the federation's task needs ${heads}`)
  return {
    small,
    intermediate: configFor(task, { heads, ...manifest.intermediate }),
    target: configFor(task, { heads, ...manifest.target })
  }
}

/** Global-LiGO's tensor names and shapes in canonical order: what every update must look like. */
export function globalLigoSpec (plan: DualLigoPlan): TensorSpec[] {
  const shapes = ligoParamShapes(globalShape(plan))
  return Object.keys(shapes).sort().map(name => ({ name, shape: shapes[name] }))
}

/** In an authors-code update, the intermediate model's parameters are named with this prefix. */
export const INTERMEDIATE_PREFIX = 'intermediate/'

/** What a method's updates hold: Global-LiGO, and for authors-code the intermediate model too. */
export function sharedSpec (manifest: Manifest, plan: DualLigoPlan): TensorSpec[] {
  if (manifest.method !== 'authors-code') return globalLigoSpec(plan)
  const shapes = paramShapes(plan.intermediate)
  const intermediate = Object.keys(shapes).map(name => ({ name: INTERMEDIATE_PREFIX + name, shape: shapes[name] }))
  return [...globalLigoSpec(plan), ...intermediate].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

/** Splits tensors into those named with `prefix` (the prefix removed) and the rest. */
function splitPrefixed (tensors: NamedTensors, prefix: string): { rest: NamedTensors, prefixed: NamedTensors } {
  const rest: NamedTensors = {}
  const prefixed: NamedTensors = {}
  for (const [name, t] of Object.entries(tensors)) {
    if (name.startsWith(prefix)) prefixed[name.slice(prefix.length)] = t
    else rest[name] = t
  }
  return { rest, prefixed }
}

/** Splits a shared TensorMap into Global-LiGO and (authors-code) the intermediate model. */
function splitShared (shared: NamedTensors): { op: NamedTensors, intermediate: NamedTensors } {
  const { rest, prefixed } = splitPrefixed(shared, INTERMEDIATE_PREFIX)
  return { op: rest, intermediate: prefixed }
}

/** Under `ligo.privateHead`, a round trains the private classifier under this prefix beside Global-LiGO. */
const PRIVATE_HEAD_PREFIX = 'private/'
const classifierOf = (model: NamedTensors): NamedTensors => Object.fromEntries(CLASSIFIER_PARAMS.map(name => [name, model[name]]))
/** Copies the caller owns. */
const copies = (tensors: NamedTensors): NamedTensors => tf.tidy(() => Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name, t.clone()])))

const withPrefix = (prefix: string, tensors: NamedTensors): NamedTensors => Object.fromEntries(Object.entries(tensors).map(([name, t]) => [prefix + name, t]))

/**
 * The initial Global-LiGO, identical on every peer (from the manifest's seed). For authors-code, with a
 * seeded intermediate model beside it, which no peer trains from: round 1 starts from each peer's own.
 */
export function initialGlobal (manifest: Manifest, plan: DualLigoPlan): TensorMap {
  const op = initialGlobalLigo(plan, manifest.ligo.init, manifest.ligo.seed)
  const intermediate = manifest.method === 'authors-code' ? withPrefix(INTERMEDIATE_PREFIX, initParams(plan.intermediate, `intermediate:${manifest.ligo.seed}`)) : {}
  const map = toTensorMap({ ...op, ...intermediate })
  tf.dispose([...Object.values(op), ...Object.values(intermediate)])
  return map
}

export interface ParticipantInit {
  manifest: Manifest
  plan: DualLigoPlan
  /** The participant's small model; the Participant takes ownership. */
  small: NamedTensors
  data: TrainTest
  /** Seeds this participant's batch orders (Local-LiGO's start comes from the manifest and its small model's shape). */
  seed: string
  onProgress?: ProgressSink
}

/** Where a participant keeps its frozen intermediate model, so a restart skips Local-LiGO training. */
export const INTERMEDIATE_FILE = 'intermediate.fgm'

export class Participant implements Learner {
  private intermediate: NamedTensors | undefined
  /** `ligo.privateHead`: the newest head this participant trained, and its round. */
  private head: { round: number, params: NamedTensors } | undefined
  /** Where prepare() keeps this participant's state (absent: none is kept, as in tests that adopt a model). */
  private stateDir: string | undefined
  readonly spec: TensorSpec[]

  constructor (private readonly init: ParticipantInit) {
    this.spec = sharedSpec(init.manifest, init.plan)
  }

  get sampleCount (): number {
    return this.init.data.train.count
  }

  initial (): TensorMap {
    return initialGlobal(this.init.manifest, this.init.plan)
  }

  /** Phases 1-2, or their saved result: the frozen intermediate model. */
  prepare (stateDir: string, log: Logger<PeerEvent>): void {
    this.stateDir = stateDir
    const path = join(stateDir, INTERMEDIATE_FILE)
    if (existsSync(path)) {
      try {
        const saved = loadModel(path)
        this.adoptIntermediate(saved.config, saved.params)
        log({ event: 'local-ligo', resumed: path })
        return
      } catch (err) {
        // Local-LiGO's start and training are seeded (manifest, shape, this peer's key), so training again rebuilds the same model.
        if (!(err instanceof ModelFileError)) throw err
        log({ event: 'checkpoint-damaged', path, error: err.message, action: 'training Local-LiGO again' })
      }
    }
    const result = this.trainIntermediate()
    saveModel(path, this.init.plan.intermediate, this.requireIntermediate(), { producedBy: 'fedgrow node: Local-LiGO', testAccuracy: result.accuracy })
    log({ event: 'local-ligo', steps: this.init.manifest.schedule.localLigoSteps, intermediateAccuracy: result.accuracy })
  }

  /** Phases 1-2: train Local-LiGO on local data, then materialise and freeze the intermediate model. */
  trainIntermediate (): Evaluation {
    const { manifest, plan, small, data } = this.init
    const { intermediate, localLigo } = growIntermediate(plan, small, manifest.ligo.init, localLigoInitSeed(manifest.ligo.seed, plan.small), data.train, scheduledTraining(manifest, manifest.schedule.localLigoSteps, `${this.init.seed}:local`, 'local-ligo', this.init.onProgress))
    tf.dispose(Object.values(localLigo))
    this.intermediate = intermediate
    return evaluate(predictWith(plan.intermediate, intermediate), data.test)
  }

  /** Uses a previously materialised intermediate model (a restart) instead of prepare(); takes ownership. */
  adoptIntermediate (config: ModelConfig, params: NamedTensors): void {
    if (JSON.stringify(config) !== JSON.stringify(this.init.plan.intermediate)) {
      tf.dispose(Object.values(params))
      throw new InvalidConfigError(`saved intermediate model is ${config.dim}x${config.layers}, the federation needs ${this.init.plan.intermediate.dim}x${this.init.plan.intermediate.layers}; delete it from the state dir`)
    }
    this.intermediate = params
  }

  private requireIntermediate (): NamedTensors {
    if (this.intermediate === undefined) throw new Error('Participant.prepare() must run before rounds')
    return this.intermediate
  }

  /**
   * Phase 3, one round: train Global-LiGO from `global` for the manifest's local steps, through this
   * participant's frozen intermediate model. authors-code trains the shared intermediate model too
   * (each peer's own in round 1, as the authors' clients start from their own grown model); a private
   * head trains beside Global-LiGO and stays here.
   */
  trainRound (global: TensorMap, round: number): LocalUpdate {
    const { manifest, plan, data } = this.init
    const start = fromTensorMap(global)
    const extras = this.roundExtras(start, round)
    const vars = new VariableSet({ ...start, ...extras })
    tf.dispose([...Object.values(start), ...Object.values(extras)])
    try {
      const report = train(vars, (images, labels) => crossEntropy(forward(plan.target, this.grownFrom(vars.tensors), images), labels), data.train, roundTraining(manifest, this.init.seed, round, this.init.onProgress))
      const trained = vars.snapshot()
      const { rest: shared, prefixed: head } = splitPrefixed(trained, PRIVATE_HEAD_PREFIX)
      if (manifest.ligo.privateHead === true) this.keepHead(round, head)
      const tensors = toTensorMap(shared)
      tf.dispose(Object.values(shared))
      return { tensors, sampleCount: data.train.count, loss: report.finalLoss }
    } finally {
      vars.dispose()
    }
  }

  /**
   * What a round trains beside the shared tensors (the caller owns them): the peer's own intermediate
   * model in authors-code's round 1, the private head under `ligo.privateHead`.
   */
  private roundExtras (start: NamedTensors, round: number): NamedTensors {
    const { manifest } = this.init
    if (manifest.method === 'authors-code') return round === 1 ? withPrefix(INTERMEDIATE_PREFIX, copies(this.requireIntermediate())) : {}
    if (manifest.ligo.privateHead !== true) return {}
    return withPrefix(PRIVATE_HEAD_PREFIX, this.headBefore(round, start))
  }

  /** The target that a round's trainable tensors (shared, and the private extras) grow. */
  private grownFrom (tensors: NamedTensors): NamedTensors {
    const G = globalShape(this.init.plan)
    if (this.init.manifest.method === 'authors-code') {
      const { op, intermediate } = splitShared(tensors)
      return grow(G, op, intermediate)
    }
    const { rest: op, prefixed: head } = splitPrefixed(tensors, PRIVATE_HEAD_PREFIX)
    return { ...grow(G, op, this.requireIntermediate()), ...head }
  }

  /**
   * The private head round `round` starts from (the caller owns it): the newest trained before it, here
   * or in the state dir (a restart), else the head that Global-LiGO `op` grows.
   */
  private headBefore (round: number, op: NamedTensors): NamedTensors {
    if (this.head !== undefined && this.head.round < round) return copies(this.head.params)
    const saved = this.stateDir === undefined ? undefined : loadHeadBefore(this.stateDir, round)
    if (saved !== undefined) return saved.params
    return tf.tidy(() => classifierOf(grow(globalShape(this.init.plan), op, this.requireIntermediate())))
  }

  /** Keeps the head trained in `round` (takes ownership), in memory and in the state dir. */
  private keepHead (round: number, params: NamedTensors): void {
    if (this.stateDir !== undefined) saveHead(this.stateDir, round, params)
    if (this.head !== undefined) tf.dispose(Object.values(this.head.params))
    this.head = { round, params }
  }

  /** The newest private head (a restart finds it in the state dir), or undefined before any round trained one. */
  private currentHead (): NamedTensors | undefined {
    if (this.head === undefined && this.stateDir !== undefined) this.head = loadHeadBefore(this.stateDir, Infinity)
    return this.head?.params
  }

  /** Phase 4: this participant's target model from a Global-LiGO (and, authors-code, the shared intermediate model). The caller owns the tensors. */
  target (global: TensorMap): NamedTensors {
    const shared = fromTensorMap(global)
    const { op, intermediate } = splitShared(shared)
    const grown = materialise(globalShape(this.init.plan), op, this.init.manifest.method === 'authors-code' ? intermediate : this.requireIntermediate())
    tf.dispose(Object.values(shared))
    const head = this.init.manifest.ligo.privateHead === true ? this.currentHead() : undefined
    if (head === undefined) return grown
    tf.dispose(Object.values(classifierOf(grown)))
    return { ...grown, ...copies(head) }
  }

  /** Phase 4: the grown target, then (if the manifest asks) fine-tuned on this participant's own rows. */
  finalModel (global: TensorMap): FinalModel {
    return finetuneLocally(this.init.manifest, this.init.plan.target, this.target(global), this.init.data, this.init.seed, this.init.onProgress)
  }

  /** Accuracy and loss of the target grown by `global`, on this participant's own test split. */
  evaluate (global: TensorMap): Evaluation {
    const target = this.target(global)
    const result = evaluate(predictWith(this.init.plan.target, target), this.init.data.test)
    tf.dispose(Object.values(target))
    return result
  }

  dispose (): void {
    tf.dispose([...Object.values(this.init.small), ...Object.values(this.intermediate ?? {}), ...Object.values(this.head?.params ?? {})])
  }
}
