/**
 * The training loop and evaluation, independent of what is trained: a VariableSet, a loss over a batch,
 * a data set. Pretraining, Local-LiGO, Global-LiGO and fine-tuning all run through here.
 * Memory: one step is one tf.tidy (forward, gradients, update); each batch is disposed after its step.
 */
import * as tf from '../tf.js'
import { InvalidArgumentError, TrainingDivergedError } from '../errors.js'
import { Rng } from '../random.js'
import { batchTensors } from '../data/dataset.js'
import { crossEntropy } from '../model/vit.js'
import { AdamW } from './adamw.js'
import { silentProgress } from './progress.js'
import type { Dataset } from '../data/dataset.js'
import type { NamedTensors } from '../model/vit.js'
import type { AdamWOptions } from './adamw.js'
import type { ProgressSink } from './progress.js'
import type { VariableSet } from './variables.js'

/**
 * Loss of one batch: inputs [batch, width] (pixels, or token ids; batchTensors), labels [batch] -> scalar.
 * Runs inside the step's tidy.
 */
export type BatchLoss = (inputs: tf.Tensor2D, labels: tf.Tensor1D) => tf.Scalar
/** Logits [batch, classes] for inputs [batch, width]. */
export type Predict = (inputs: tf.Tensor2D) => tf.Tensor2D

export interface TrainOptions extends AdamWOptions {
  /** Optimiser steps to take; the data is cycled (reshuffled each pass) as often as needed. */
  steps: number
  /** @default 64 (the authors' batch) */
  batchSize?: number
  /** Seeds the batch order. */
  seed: number | string
  /** Linear warm-up then cosine decay to 10% of the rate, or a constant rate. @default 'cosine' */
  schedule?: 'cosine' | 'constant'
  /** Label for progress reports. */
  phase?: string
  onProgress?: ProgressSink
  /**
   * Called after every `every` steps (and after the last) with the step and a view of the live parameters
   * (do not dispose), e.g. to evaluate; returning 'stop' ends training there (early stopping).
   */
  checkpoint?: { every: number, run: (step: number, params: NamedTensors) => void | 'stop' }
}

export interface TrainReport {
  steps: number
  /** Mean loss over the last 10% of steps (at least one). */
  finalLoss: number
  /** Loss per step, in order. */
  losses: number[]
}

export const DEFAULT_BATCH_SIZE = 64
const PROGRESS_EVERY_STEPS = 10

/** Share of the steps spent warming the learning rate up from zero. */
const WARMUP_FRACTION = 0.05
const FINAL_RATE_FRACTION = 0.1

/** The learning rate at `step` (1-based) of `total` under `schedule`. */
export function learningRateAt (schedule: 'cosine' | 'constant', peak: number, step: number, total: number): number {
  if (schedule === 'constant') return peak
  const warmup = Math.max(1, Math.round(total * WARMUP_FRACTION))
  if (step <= warmup) return peak * step / warmup
  const progress = (step - warmup) / Math.max(1, total - warmup)
  return peak * (FINAL_RATE_FRACTION + (1 - FINAL_RATE_FRACTION) * 0.5 * (1 + Math.cos(Math.PI * progress)))
}

/** Steps in `epochs` passes over `count` rows with `batchSize` (the last short batch dropped). */
export function stepsForEpochs (count: number, epochs: number, batchSize = DEFAULT_BATCH_SIZE): number {
  return Math.max(1, Math.floor(count / batchSize)) * epochs
}

/** Yields row indices batch by batch: a seeded shuffle per pass, the last short batch of a pass dropped. */
function * batchOrder (count: number, batchSize: number, rng: Rng): Generator<Int32Array> {
  const size = Math.min(batchSize, count)
  for (;;) {
    const order = rng.shuffle(Int32Array.from({ length: count }, (_, i) => i)) as Int32Array
    for (let start = 0; start + size <= count; start += size) yield order.subarray(start, start + size)
  }
}

/** Trains `params` in place to lower `lossOf` on `data`. */
export function train (params: VariableSet, lossOf: BatchLoss, data: Dataset, options: TrainOptions): TrainReport {
  if (!Number.isInteger(options.steps) || options.steps < 0) throw new InvalidArgumentError(`steps ${options.steps} must be a whole number >= 0`)
  if (data.count === 0) throw new InvalidArgumentError(`cannot train on ${data.source}: it has no rows`)
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE
  const report = options.onProgress ?? silentProgress
  const phase = options.phase ?? 'train'
  const optimizer = new AdamW(params, options)
  const batches = batchOrder(data.count, batchSize, new Rng(`batches:${options.seed}`))
  const losses: number[] = []
  try {
    for (let step = 1; step <= options.steps; step++) {
      const { inputs, labels } = batchTensors(data, batches.next().value as Int32Array)
      const loss = tf.tidy('train-step', () => {
        const { loss, grads } = params.lossAndGrads(() => lossOf(inputs, labels))
        optimizer.apply(grads, learningRateAt(options.schedule ?? 'cosine', optimizer.learningRate, step, options.steps))
        return loss.dataSync()[0]
      })
      inputs.dispose()
      labels.dispose()
      if (!Number.isFinite(loss)) throw new TrainingDivergedError(`${phase}: loss became ${loss} at step ${step}; lower the learning rate (now ${optimizer.learningRate})`)
      losses.push(loss)
      if (step % PROGRESS_EVERY_STEPS === 0 || step === options.steps) {
        const recent = losses.slice(-PROGRESS_EVERY_STEPS)
        report({ phase, done: step, total: options.steps, loss: recent.reduce((a, b) => a + b, 0) / recent.length })
      }
      if (options.checkpoint !== undefined && (step % options.checkpoint.every === 0 || step === options.steps) && options.checkpoint.run(step, params.tensors) === 'stop') break
    }
  } finally {
    optimizer.dispose()
  }
  const tail = losses.slice(-Math.max(1, Math.round(losses.length / 10)))
  return { steps: losses.length, finalLoss: tail.length > 0 ? tail.reduce((a, b) => a + b, 0) / tail.length : NaN, losses }
}

export interface Evaluation {
  /** Fraction of rows classified correctly, in [0, 1]. */
  accuracy: number
  /** Mean cross-entropy. */
  loss: number
  count: number
}

export const EVAL_BATCH_SIZE = 256

/** Accuracy and mean loss of `predict` over every row of `data`. */
export function evaluate (predict: Predict, data: Dataset, batchSize = EVAL_BATCH_SIZE): Evaluation {
  let correct = 0
  let lossSum = 0
  for (let start = 0; start < data.count; start += batchSize) {
    const rows = Int32Array.from({ length: Math.min(batchSize, data.count - start) }, (_, i) => start + i)
    const { inputs, labels } = batchTensors(data, rows)
    const [hits, loss] = tf.tidy('evaluate', () => {
      const logits = predict(inputs)
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'int32')).dataSync()[0]
      return [hits, crossEntropy(logits, labels).dataSync()[0] * rows.length]
    })
    inputs.dispose()
    labels.dispose()
    correct += hits
    lossSum += loss
  }
  return { accuracy: data.count > 0 ? correct / data.count : NaN, loss: data.count > 0 ? lossSum / data.count : NaN, count: data.count }
}
