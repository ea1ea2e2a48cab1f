/**
 * One participant's private side of Fed-Grow: its small model, data, Local-LiGO and intermediate model,
 * none of which leave it; and the local training of Global-LiGO each round. Only the TensorMap that
 * trainRound returns (a Global-LiGO) is ever handed to the network.
 */
import * as tf from '../tf.js'
import { VariableSet } from '../train/variables.js'
import { evaluate } from '../train/trainer.js'
import { predictWith } from '../train/pretrain.js'
import { globalShape, growIntermediate, initialGlobalLigo, materialise, trainOperator } from '../ligo/index.js'
import { ligoParamShapes } from '../ligo/operator.js'
import { validateVitConfig } from '../model/config.js'
import { fromTensorMap, toTensorMap } from '../storage/files.js'
import { InvalidConfigError } from '../errors.js'
import type { Manifest } from '../../protocol/manifest.js'
import type { TensorSpec } from '../../protocol/messages.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { TrainTest } from '../data/dataset.js'
import type { VitConfig } from '../model/config.js'
import type { NamedTensors } from '../model/vit.js'
import type { DualLigoPlan } from '../ligo/index.js'
import type { Evaluation } from '../train/trainer.js'
import type { ProgressSink } from '../train/progress.js'
import type { LocalUpdate } from './engine.js'

/** The Dual-LiGO plan a manifest implies for a participant whose small model has `small`'s shape. */
export function planFor (manifest: Manifest, small: VitConfig): DualLigoPlan {
  const t = manifest.task
  for (const [field, value] of [['imageSize', t.imageSize], ['channels', t.channels], ['numClasses', t.numClasses], ['patchSize', t.patchSize], ['heads', t.heads]] as const) {
    if (small[field] !== value) throw new InvalidConfigError(`the small model has ${field} ${small[field]}, the federation's task needs ${value}`)
  }
  const shape = { imageSize: t.imageSize, channels: t.channels, numClasses: t.numClasses, patchSize: t.patchSize, heads: t.heads }
  return {
    small,
    intermediate: validateVitConfig({ ...shape, ...manifest.intermediate }),
    target: validateVitConfig({ ...shape, ...manifest.target })
  }
}

/** Global-LiGO's tensor names and shapes in canonical order: what every update must look like. */
export function globalLigoSpec (plan: DualLigoPlan): TensorSpec[] {
  const shapes = ligoParamShapes(globalShape(plan))
  return Object.keys(shapes).sort().map(name => ({ name, shape: shapes[name] }))
}

/** The initial Global-LiGO, identical on every peer (from the manifest's seed). */
export function initialGlobal (manifest: Manifest, plan: DualLigoPlan): TensorMap {
  const tensors = initialGlobalLigo(plan, manifest.ligo.init, manifest.ligo.seed)
  const map = toTensorMap(tensors)
  tf.dispose(Object.values(tensors))
  return map
}

export interface ParticipantInit {
  manifest: Manifest
  plan: DualLigoPlan
  /** The participant's small model; the Participant takes ownership. */
  small: NamedTensors
  data: TrainTest
  /** Seeds this participant's Local-LiGO and batch order. */
  seed: string
  onProgress?: ProgressSink
}

export class Participant {
  private intermediate: NamedTensors | undefined

  constructor (private readonly init: ParticipantInit) {}

  get sampleCount (): number {
    return this.init.data.train.count
  }

  /** Phases 1-2: train Local-LiGO on local data, then materialise and freeze the intermediate model. */
  prepare (): Evaluation {
    const { manifest, plan, small, data } = this.init
    const { intermediate, localLigo } = growIntermediate(plan, small, manifest.ligo.init, data.train, {
      steps: manifest.schedule.localLigoSteps,
      batchSize: manifest.schedule.batchSize,
      learningRate: manifest.schedule.learningRate,
      weightDecay: manifest.schedule.weightDecay,
      seed: `${this.init.seed}:local`,
      phase: 'local-ligo',
      onProgress: this.init.onProgress
    })
    tf.dispose(Object.values(localLigo))
    this.intermediate = intermediate
    return evaluate(predictWith(plan.intermediate, intermediate), data.test)
  }

  /** Uses a previously materialised intermediate model (a restart) instead of prepare(); takes ownership. */
  adoptIntermediate (config: VitConfig, params: NamedTensors): void {
    if (JSON.stringify(config) !== JSON.stringify(this.init.plan.intermediate)) {
      tf.dispose(Object.values(params))
      throw new InvalidConfigError(`saved intermediate model is ${config.dim}x${config.layers}, the federation needs ${this.init.plan.intermediate.dim}x${this.init.plan.intermediate.layers}; delete it from the state dir`)
    }
    this.intermediate = params
  }

  /** The frozen intermediate model (a view: do not dispose). */
  intermediateParams (): NamedTensors {
    return this.requireIntermediate()
  }

  private requireIntermediate (): NamedTensors {
    if (this.intermediate === undefined) throw new Error('Participant.prepare() must run before rounds')
    return this.intermediate
  }

  /** Phase 3, one round: train Global-LiGO from `global` for the manifest's local steps. */
  trainRound (global: TensorMap, round: number): LocalUpdate {
    const { manifest, plan, data } = this.init
    const start = fromTensorMap(global)
    const op = new VariableSet(start)
    tf.dispose(Object.values(start))
    try {
      const report = trainOperator(globalShape(plan), op, this.requireIntermediate(), data.train, {
        steps: manifest.schedule.localSteps,
        batchSize: manifest.schedule.batchSize,
        learningRate: manifest.schedule.learningRate,
        weightDecay: manifest.schedule.weightDecay,
        schedule: 'constant',
        seed: `${this.init.seed}:round:${round}`,
        phase: `round ${round}`,
        onProgress: this.init.onProgress
      })
      const trained = op.snapshot()
      const tensors = toTensorMap(trained)
      tf.dispose(Object.values(trained))
      return { tensors, sampleCount: data.train.count, loss: report.finalLoss }
    } finally {
      op.dispose()
    }
  }

  /** Phase 4: this participant's target model from a Global-LiGO. The caller owns the tensors. */
  target (global: TensorMap): NamedTensors {
    const op = fromTensorMap(global)
    const grown = materialise(globalShape(this.init.plan), op, this.requireIntermediate())
    tf.dispose(Object.values(op))
    return grown
  }

  /** Accuracy and loss of the target grown by `global`, on this participant's own test split. */
  evaluate (global: TensorMap): Evaluation {
    const target = this.target(global)
    const result = evaluate(predictWith(this.init.plan.target, target), this.init.data.test)
    tf.dispose(Object.values(target))
    return result
  }

  dispose (): void {
    tf.dispose([...Object.values(this.init.small), ...Object.values(this.intermediate ?? {})])
  }
}
