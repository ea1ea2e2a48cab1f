/**
 * The model-sharing baseline (FedAvg, McMahan et al., arXiv 1602.05629): every peer trains the target
 * model from scratch and shares all its weights each round. What Fed-Grow is measured against.
 */
import * as tf from '../tf.js'
import { initParams, paramShapes } from '../model/vit.js'
import { finetune } from '../train/pretrain.js'
import { evaluate } from '../train/trainer.js'
import { predictWith } from '../train/pretrain.js'
import { fromTensorMap, toTensorMap } from '../storage/files.js'
import type { Manifest } from '../../protocol/manifest.js'
import type { TensorSpec } from '../../protocol/payload.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { TrainTest } from '../data/dataset.js'
import type { ModelConfig } from '../model/config.js'
import type { Evaluation } from '../train/trainer.js'
import type { ProgressSink } from '../train/progress.js'
import type { LocalUpdate } from './engine.js'
import { finetuneLocally, roundTraining } from './learner.js'
import type { FinalModel, Learner } from './learner.js'

export interface FedAvgInit {
  manifest: Manifest
  target: ModelConfig
  data: TrainTest
  seed: string
  onProgress?: ProgressSink
}

export class FedAvgLearner implements Learner {
  readonly spec: TensorSpec[]

  constructor (private readonly init: FedAvgInit) {
    const shapes = paramShapes(init.target)
    this.spec = Object.keys(shapes).sort().map(name => ({ name, shape: shapes[name] }))
  }

  get sampleCount (): number {
    return this.init.data.train.count
  }

  initial (): TensorMap {
    const params = initParams(this.init.target, `fedavg:${this.init.manifest.ligo.seed}`)
    const map = toTensorMap(params)
    tf.dispose(Object.values(params))
    return map
  }

  prepare (): void {}

  trainRound (global: TensorMap, round: number): LocalUpdate {
    const { manifest, target, data } = this.init
    const start = fromTensorMap(global)
    const { params, report } = finetune(target, start, data.train, roundTraining(manifest, this.init.seed, round, this.init.onProgress))
    const tensors = toTensorMap(params)
    tf.dispose([...Object.values(start), ...Object.values(params)])
    return { tensors, sampleCount: data.train.count, loss: report.finalLoss }
  }

  evaluate (global: TensorMap): Evaluation {
    const params = fromTensorMap(global)
    const result = evaluate(predictWith(this.init.target, params), this.init.data.test)
    tf.dispose(Object.values(params))
    return result
  }

  finalModel (global: TensorMap): FinalModel {
    return finetuneLocally(this.init.manifest, this.init.target, fromTensorMap(global), this.init.data, this.init.seed, this.init.onProgress)
  }

  dispose (): void {}
}
