/** Training a ViT from scratch: how a participant gets its small model, and the from-scratch baseline. */
import * as tf from '../tf.js'
import { crossEntropy, forward, initParams } from '../model/vit.js'
import { VariableSet } from './variables.js'
import { evaluate, train } from './trainer.js'
import type { Dataset } from '../data/dataset.js'
import type { VitConfig } from '../model/config.js'
import type { NamedTensors } from '../model/vit.js'
import type { Predict, TrainOptions, TrainReport } from './trainer.js'

export function predictWith (config: VitConfig, params: NamedTensors): Predict {
  return (images) => forward(config, params, images)
}

/**
 * Trains a model's own weights from `params` (copied) for `options.steps`: a grown target fine-tuned
 * (the method's optional last phase), fedavg's rounds, a small model. Returns new tensors the caller owns.
 */
export function finetune (config: VitConfig, params: NamedTensors, data: Dataset, options: TrainOptions): { params: NamedTensors, report: TrainReport } {
  const vars = new VariableSet(params)
  try {
    const report = train(vars, (images, labels) => crossEntropy(forward(config, vars.tensors, images), labels), data, options)
    return { params: vars.snapshot(), report }
  } finally {
    vars.dispose()
  }
}

/** Trains fresh parameters (seeded by options.seed) on `data`; the returned params belong to the caller. */
export function pretrain (config: VitConfig, data: Dataset, options: TrainOptions): { params: NamedTensors, report: TrainReport } {
  const init = initParams(config, options.seed)
  try {
    return finetune(config, init, data, options)
  } finally {
    tf.dispose(Object.values(init))
  }
}

/** When to stop: score `validation` every `everySteps` steps; stop once `patience` scores in a row have not beaten the best. */
export interface EarlyStopping {
  validation: Dataset
  everySteps: number
  patience: number
}

export interface FlatReport {
  /** The parameters at the best validation score (the caller owns them). */
  params: NamedTensors
  best: { step: number, accuracy: number }
  /** Validation accuracy at every check, in step order. */
  history: Array<{ step: number, accuracy: number }>
}

/**
 * Trains a model's own weights from `start` (copied) until its validation accuracy stops rising, or
 * `options.steps` at most, and keeps the best parameters seen: how a participant's small model is
 * trained "until its curve flattens" rather than for a fixed number of epochs.
 */
export function trainUntilFlat (config: VitConfig, start: NamedTensors, data: Dataset, options: TrainOptions, stopping: EarlyStopping): FlatReport {
  const vars = new VariableSet(start)
  const history: FlatReport['history'] = []
  let best: { step: number, accuracy: number, params: NamedTensors } | undefined
  try {
    train(vars, (images, labels) => crossEntropy(forward(config, vars.tensors, images), labels), data, {
      ...options,
      checkpoint: {
        every: stopping.everySteps,
        run: (step, params) => {
          const accuracy = evaluate(predictWith(config, params), stopping.validation).accuracy
          history.push({ step, accuracy })
          if (best === undefined || accuracy > best.accuracy) {
            if (best !== undefined) tf.dispose(Object.values(best.params))
            best = { step, accuracy, params: vars.snapshot() }
          }
          return step - best.step >= stopping.patience * stopping.everySteps ? 'stop' : undefined
        }
      }
    })
  } catch (err) {
    if (best !== undefined) tf.dispose(Object.values(best.params))
    throw err
  } finally {
    vars.dispose()
  }
  if (best === undefined) throw new Error('trainUntilFlat: no validation check ran (steps must be >= 1)')
  return { params: best.params, best: { step: best.step, accuracy: best.accuracy }, history }
}

/**
 * A model's weights trained from `start` (copied; fresh weights seeded by `options.seed` when absent)
 * for `options.steps`, or until flat with `stopping` (then `options.steps` is the most it takes): how a
 * small model is pre-trained or a checkpoint fine-tuned. The caller owns the params.
 */
export function trainSmallModel (config: VitConfig, start: NamedTensors | undefined, data: Dataset, options: TrainOptions, stopping?: EarlyStopping): { params: NamedTensors, steps: number, finalLoss?: number, validationAccuracy?: number } {
  const init = start ?? initParams(config, options.seed)
  try {
    if (stopping !== undefined) {
      const flat = trainUntilFlat(config, init, data, options, stopping)
      return { params: flat.params, steps: flat.best.step, validationAccuracy: flat.best.accuracy }
    }
    const { params, report } = finetune(config, init, data, options)
    return { params, steps: report.steps, finalLoss: report.finalLoss }
  } finally {
    // A given start belongs to the caller.
    if (start === undefined) tf.dispose(Object.values(init))
  }
}
