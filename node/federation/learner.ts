/**
 * What a peer trains and shares, behind one seam: the round engine and the peer runtime see a Learner,
 * not Dual-LiGO. fedgrow's Participant shares Global-LiGO; the FedAvg baseline shares the target model.
 */
import * as tf from '../tf.js'
import { splitTrainTest, VALIDATION_FRACTION } from '../data/index.js'
import { finetune, predictWith, trainUntilFlat } from '../train/pretrain.js'
import { evaluate, stepsForEpochs } from '../train/trainer.js'
import { hasFinetuneBudget } from '../../protocol/manifest.js'
import type { Dataset, TrainTest } from '../data/dataset.js'
import type { FinetuneBudget, Manifest } from '../../protocol/manifest.js'
import type { TensorSpec } from '../../protocol/payload.js'
import type { TrainOptions } from '../train/trainer.js'
import type { ProgressSink } from '../train/progress.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { ModelConfig } from '../model/config.js'
import type { NamedTensors } from '../model/vit.js'
import type { Evaluation } from '../train/trainer.js'
import type { Logger } from '../log.js'
import type { PeerEvent } from '../events.js'
import type { LocalUpdate } from './engine.js'

export interface Learner {
  /** Names and shapes of what is shared each round, in canonical order. */
  readonly spec: TensorSpec[]
  /** Training examples behind each update (its aggregation weight). */
  readonly sampleCount: number
  /** What every peer starts from: identical on all peers, derived from the manifest alone. */
  initial: () => TensorMap
  /** Local work before the first round; resumes from `stateDir` when it can. */
  prepare: (stateDir: string, log: Logger<PeerEvent>) => void
  /** One round of local training from `global`. */
  trainRound: (global: TensorMap, round: number) => LocalUpdate
  /** Accuracy and loss of the model `global` gives this peer, on its own test split. */
  evaluate: (global: TensorMap) => Evaluation
  /**
   * The model this peer ends with (after the manifest's fine-tuning steps, if any); the caller owns the
   * params.
   */
  finalModel: (global: TensorMap) => FinalModel
  dispose: () => void
}

/** Phase 4's peak rate as a share of the round learning rate: what the design study measured (docs/method.md). */
export const FINETUNE_RATE = 0.5

export interface FinalModel {
  config: ModelConfig
  params: NamedTensors
  /** Only when fine-tuning changed the model: its score on the participant's test split (else evaluate(global) is). */
  finetunedScore?: Evaluation
  /** `best-held-out` only: the fine-tuning step whose check was kept (0: the model as grown). */
  finetuneKeptStep?: number
}

/** How often `best-held-out` scores its held-out rows during phase 4 (as the design study checked). */
export const FINETUNE_CHECK_STEPS = 20

/**
 * The method's optional last phase: the participant trains its own final model's weights on its own
 * rows for the manifest's budget (finetuneStepsFor: steps, or epochs of those rows), with warm-up and
 * cosine decay from FINETUNE_RATE times the round learning rate, pulled back toward the grown weights
 * (finetunePullStrength), and keeps the last step's weights or, with `best-held-out`, the best check's.
 * Takes ownership of `params`.
 */
export function finetuneLocally (manifest: Manifest, config: ModelConfig, params: NamedTensors, data: TrainTest, seed: string, onProgress?: ProgressSink): FinalModel {
  if (!hasFinetuneBudget(manifest.schedule)) return { config, params }
  const training = (rows: number): TrainOptions => ({ ...scheduledTraining(manifest, finetuneStepsFor(manifest.schedule, rows), `${seed}:finetune`, 'fine-tune', onProgress), learningRate: manifest.schedule.learningRate * FINETUNE_RATE })
  if (manifest.schedule.finetuneSelect === 'best-held-out') return finetuneBestHeldOut(manifest.schedule, config, params, data, training, seed)
  try {
    const tuned = finetune(config, params, data.train, training(data.train.count), finetunePullStrength(manifest.schedule, data.train.count))
    return { config, params: tuned.params, finetunedScore: evaluate(predictWith(config, tuned.params), data.test) }
  } finally {
    tf.dispose(Object.values(params))
  }
}

/** Phase 4's steps for a participant fine-tuning on `rows` training rows: finetuneSteps, or finetuneEpochs of those rows. */
export function finetuneStepsFor (schedule: FinetuneBudget & Pick<Manifest['schedule'], 'batchSize'>, rows: number): number {
  return schedule.finetuneEpochs !== undefined && schedule.finetuneEpochs > 0
    ? stepsForEpochs(rows, schedule.finetuneEpochs, schedule.batchSize)
    : schedule.finetuneSteps ?? 0
}

/** Phase 4's lambda for a participant fine-tuning on `rows` training rows: finetunePull, per row when finetunePullPerRow. */
export function finetunePullStrength (schedule: Pick<Manifest['schedule'], 'finetunePull' | 'finetunePullPerRow'>, rows: number): number {
  const pull = schedule.finetunePull ?? 0
  return schedule.finetunePullPerRow === true ? pull / Math.max(1, rows) : pull
}

/** A score at one check of fine-tuning (step 0: before it). */
export interface FinetuneCheck {
  step: number
  accuracy: number
}

/** The check to keep: the best held-out accuracy, the earliest on ties (so step 0 unless a check beats it). */
export function keptCheck (checks: readonly FinetuneCheck[]): FinetuneCheck {
  if (checks.length === 0) throw new Error('keptCheck: no checks')
  return checks.reduce((best, c) => c.accuracy > best.accuracy ? c : best)
}

/**
 * `best-held-out`: fine-tunes on the heldOutSplit's training rows (`training` for that many rows), scores
 * its held-out rows before training and every FINETUNE_CHECK_STEPS, and keeps the best check.
 * Takes ownership of `params`.
 */
function finetuneBestHeldOut (schedule: Manifest['schedule'], config: ModelConfig, params: NamedTensors, data: TrainTest, training: (rows: number) => TrainOptions, seed: string): FinalModel {
  let flat: ReturnType<typeof trainUntilFlat>
  let kept: FinetuneCheck
  try {
    const split = heldOutSplit(data.train, seed)
    const grown = { step: 0, accuracy: evaluate(predictWith(config, params), split.test).accuracy }
    // No early stop: every check of the whole run competes (patience without end).
    flat = trainUntilFlat(config, params, split.train, training(split.train.count), { validation: split.test, everySteps: FINETUNE_CHECK_STEPS, patience: Infinity }, finetunePullStrength(schedule, split.train.count))
    kept = keptCheck([grown, flat.best])
  } catch (err) {
    tf.dispose(Object.values(params))
    throw err
  }
  if (kept.step === 0) {
    tf.dispose(Object.values(flat.params))
    return { config, params, finetuneKeptStep: 0 }
  }
  tf.dispose(Object.values(params))
  return { config, params: flat.params, finetunedScore: evaluate(predictWith(config, flat.params), data.test), finetuneKeptStep: kept.step }
}

/** `best-held-out`'s split of a participant's training rows: VALIDATION_FRACTION held out (`test`), seeded by its seed. */
export function heldOutSplit<D extends Dataset> (train: D, seed: string): TrainTest<D> {
  return splitTrainTest(train, VALIDATION_FRACTION, `finetune-validation:${seed}`)
}

/** The manifest's settings for `steps` of local training in a phase (a round, or Local-LiGO). */
export function scheduledTraining (manifest: Manifest, steps: number, seed: string, phase: string, onProgress?: ProgressSink): TrainOptions {
  const { batchSize, learningRate, weightDecay } = manifest.schedule
  return { steps, batchSize, learningRate, weightDecay, seed, phase, onProgress }
}

/** One round's training: the manifest's local steps at a constant rate, seeded by peer and round. */
export function roundTraining (manifest: Manifest, peerSeed: string, round: number, onProgress?: ProgressSink): TrainOptions {
  return { ...scheduledTraining(manifest, manifest.schedule.localSteps, `${peerSeed}:round:${round}`, `round ${round}`, onProgress), schedule: 'constant' }
}
