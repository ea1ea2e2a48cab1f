/** Training a model (ViT or text) from scratch: how a participant gets its small model, and the from-scratch baseline. */
import * as tf from '../tf.js'
import { DataError } from '../errors.js'
import { isTextConfig } from '../model/config.js'
import { sameTokenizer } from '../model/tokenizer.js'
import { isTextData } from '../data/dataset.js'
import { crossEntropy, forward, initParams } from '../model/vit.js'
import { VariableSet } from './variables.js'
import { evaluate, train } from './trainer.js'
import type { Dataset } from '../data/dataset.js'
import type { ModelConfig } from '../model/config.js'
import type { NamedTensors } from '../model/vit.js'
import type { BatchLoss, Predict, TrainOptions, TrainReport } from './trainer.js'

/**
 * Throws DataError unless a model of `config` reads `data`'s rows and its classes mean the same: an image
 * model needs the image's side and channels, a text model the very tokenizer the texts were tokenized
 * with. The data's classes must be the model's first ones, same names in the same order
 * (`exactClasses`: all of them, as training needs).
 */
export function checkModelReads (config: ModelConfig, data: Dataset, modelName: string, exactClasses: boolean): void {
  const mismatch = (what: string): DataError => new DataError(`${modelName} ${what}; choose data and model that match, or train a new model on this data`)
  if (isTextConfig(config) !== isTextData(data)) throw mismatch(`is ${isTextConfig(config) ? 'a text' : 'an image'} model but ${data.source} holds ${isTextData(data) ? 'texts' : 'images'}`)
  if (isTextConfig(config) && isTextData(data)) {
    const [m, d] = [config.tokenizer, data.tokenizer]
    if (!sameTokenizer(m, d)) throw mismatch(`tokenizes with ${JSON.stringify(m)} but ${data.source} was tokenized with ${JSON.stringify(d)}`)
    const names = data.classNames
    if (names.length > config.classNames.length || (exactClasses && names.length !== config.classNames.length) || names.some((n, i) => config.classNames[i] !== n)) {
      throw mismatch(`has classes [${config.classNames.join(', ')}] but ${data.source} has [${names.join(', ')}]`)
    }
  } else if (!isTextConfig(config) && !isTextData(data)) {
    if (config.imageSize !== data.imageSize || config.channels !== data.channels || data.numClasses > config.numClasses || (exactClasses && data.numClasses !== config.numClasses)) {
      throw mismatch(`takes ${config.imageSize}x${config.imageSize}x${config.channels} images in ${config.numClasses} classes; ${data.source} has ${data.imageSize}x${data.imageSize}x${data.channels} in ${data.numClasses}`)
    }
  }
}

export function predictWith (config: ModelConfig, params: NamedTensors): Predict {
  return (inputs) => forward(config, params, inputs)
}

/**
 * The loss of training a model's own weights (`vars`), as every fine-tuning and pre-training uses it.
 * With a `pull` of strength lambda > 0 it adds lambda/2 x |weights - pull.toward|^2 (L2-SP, Li et al.,
 * arXiv 1802.01483): fine-tuning may fit the rows but pays for leaving the weights it started from.
 */
export function ownWeightsLoss (config: ModelConfig, vars: VariableSet, pull?: WeightPull): BatchLoss {
  const fit: BatchLoss = (inputs, labels) => crossEntropy(forward(config, vars.tensors, inputs), labels)
  if (pull === undefined || pull.strength === 0) return fit
  const weights = vars.tensors
  return (inputs, labels) => tf.add(fit(inputs, labels), tf.mul(tf.addN(Object.keys(pull.toward).map(name => tf.sum(tf.squaredDifference(weights[name], pull.toward[name])))), pull.strength / 2))
}

/** Where fine-tuning is pulled back to, and how hard (ownWeightsLoss); `toward` stays the caller's. */
export interface WeightPull {
  toward: NamedTensors
  strength: number
}

/**
 * Trains a model's own weights from `params` (copied) for `options.steps`: a grown target fine-tuned
 * (the method's optional last phase), fedavg's rounds, a small model. A `pullStrength` above 0 pulls the
 * weights back toward `params` (ownWeightsLoss). Returns new tensors the caller owns.
 */
export function finetune (config: ModelConfig, params: NamedTensors, data: Dataset, options: TrainOptions, pullStrength = 0): { params: NamedTensors, report: TrainReport } {
  const vars = new VariableSet(params)
  try {
    const report = train(vars, ownWeightsLoss(config, vars, { toward: params, strength: pullStrength }), data, options)
    return { params: vars.snapshot(), report }
  } finally {
    vars.dispose()
  }
}

/** Trains fresh parameters (seeded by options.seed) on `data`; the returned params belong to the caller. */
export function pretrain (config: ModelConfig, data: Dataset, options: TrainOptions): { params: NamedTensors, report: TrainReport } {
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
export function trainUntilFlat (config: ModelConfig, start: NamedTensors, data: Dataset, options: TrainOptions, stopping: EarlyStopping, pullStrength = 0): FlatReport {
  const vars = new VariableSet(start)
  const history: FlatReport['history'] = []
  let best: { step: number, accuracy: number, params: NamedTensors } | undefined
  try {
    train(vars, ownWeightsLoss(config, vars, { toward: start, strength: pullStrength }), data, {
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
export function trainSmallModel (config: ModelConfig, start: NamedTensors | undefined, data: Dataset, options: TrainOptions, stopping?: EarlyStopping): { params: NamedTensors, steps: number, finalLoss?: number, validationAccuracy?: number } {
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
