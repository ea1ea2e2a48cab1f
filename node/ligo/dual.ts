/**
 * Dual-LiGO (Fed-Grow, Shen et al., arXiv 2406.13450): target_i = Global(Local_i(small_i)).
 * Local-LiGO_i grows participant i's own small model to the intermediate shape every participant shares;
 * it never leaves the participant. Global-LiGO grows the intermediate model to the target; it is the only
 * thing a participant shares. The phases here run on one participant's machine, with no network.
 */
import * as tf from '../tf.js'
import { validateModelConfig } from '../model/config.js'
import { countParams, crossEntropy, forward } from '../model/vit.js'
import { VariableSet } from '../train/variables.js'
import { train } from '../train/trainer.js'
import { countLigoParams, initLigo } from './operator.js'
import { grow } from './grow.js'
import type { Dataset } from '../data/dataset.js'
import type { ModelConfig } from '../model/config.js'
import type { NamedTensors } from '../model/vit.js'
import type { TrainOptions, TrainReport } from '../train/trainer.js'
import type { GrowthShape, LigoInit } from './operator.js'

export interface GrowthSize {
  dim: number
  layers: number
  /** @default the source's mlp ratio */
  mlpRatio?: number
}

/** The config of a model grown from `from` to `size`: same task shape (images or tokenizer, classes) and heads. */
export function grownConfig<C extends ModelConfig> (from: C, size: GrowthSize): C {
  return validateModelConfig({ ...from, dim: size.dim, layers: size.layers, mlpRatio: size.mlpRatio ?? from.mlpRatio }) as C
}

/**
 * Trains the operator `op` in place so that the grown model's loss on `data` falls, with `source` frozen
 * (it is an input to grow(), never a variable). The operator's variables are all that change.
 */
export function trainOperator (shape: GrowthShape, op: VariableSet, source: NamedTensors, data: Dataset, options: TrainOptions): TrainReport {
  return train(op, (images, labels) => crossEntropy(forward(shape.to, grow(shape, op.tensors, source), images), labels), data, options)
}

/** The grown model as plain tensors the caller owns: what "materialise and freeze" means. */
export function materialise (shape: GrowthShape, op: NamedTensors, source: NamedTensors): NamedTensors {
  return tf.tidy('materialise', () => grow(shape, op, source))
}

export interface DualLigoPlan {
  small: ModelConfig
  intermediate: ModelConfig
  target: ModelConfig
}

export const localShape = (plan: DualLigoPlan): GrowthShape => ({ from: plan.small, to: plan.intermediate })
export const globalShape = (plan: DualLigoPlan): GrowthShape => ({ from: plan.intermediate, to: plan.target })

export interface ParamCounts {
  small: number
  intermediate: number
  target: number
  localLigo: number
  globalLigo: number
}

/** What a participant holds, trains and shares, in parameters. */
export function dualLigoParamCounts (plan: DualLigoPlan): ParamCounts {
  return {
    small: countParams(plan.small),
    intermediate: countParams(plan.intermediate),
    target: countParams(plan.target),
    localLigo: countLigoParams(localShape(plan)),
    globalLigo: countLigoParams(globalShape(plan))
  }
}

/**
 * The initial Global-LiGO, identical on every participant: derived only from the federation's seed and
 * the shared shapes. The caller owns the tensors.
 */
export function initialGlobalLigo (plan: DualLigoPlan, init: LigoInit, federationSeed: number | string): NamedTensors {
  return initLigo(globalShape(plan), init, `global:${federationSeed}`)
}

/**
 * The seed of Local-LiGO's initial operator: the federation's and the small model's shape, so that
 * participants whose small models share a shape (and a public checkpoint) start growing them alike,
 * and their intermediate models stay near one basis. Training (batch order) is still the participant's own.
 */
export const localLigoInitSeed = (federationSeed: number | string, small: ModelConfig): string => `local:${federationSeed}:${small.dim}x${small.layers}x${small.mlpRatio}`

/** Phase 1 and 2 of a participant: train Local-LiGO on its data, then materialise its frozen intermediate model. */
export function growIntermediate (plan: DualLigoPlan, small: NamedTensors, init: LigoInit, initSeed: number | string, data: Dataset, options: TrainOptions): { intermediate: NamedTensors, localLigo: NamedTensors, report: TrainReport } {
  const start = initLigo(localShape(plan), init, initSeed)
  const op = new VariableSet(start)
  tf.dispose(Object.values(start))
  try {
    const report = trainOperator(localShape(plan), op, small, data, options)
    const localLigo = op.snapshot()
    return { intermediate: materialise(localShape(plan), op.tensors, small), localLigo, report }
  } finally {
    op.dispose()
  }
}
