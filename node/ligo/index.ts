/** LiGO and Dual-LiGO: the growth operator, its initialisations, grow(), and the local training phases. */
export { checkGrowthShape, countLigoParams, growFlops, initLigo, ligoParamShapes, DEFAULT_LIGO_NOISE, LIGO_INITS } from './operator.js'
export type { GrowthShape, LigoInit } from './operator.js'
export { grow } from './grow.js'
export { dualLigoParamCounts, globalShape, growIntermediate, grownConfig, initialGlobalLigo, localLigoInitSeed, localShape, materialise, trainOperator } from './dual.js'
export type { DualLigoPlan, GrowthSize, ParamCounts } from './dual.js'

import * as tf from '../tf.js'
import { VariableSet } from '../train/variables.js'
import { evaluate } from '../train/trainer.js'
import { predictWith } from '../train/pretrain.js'
import { initLigo } from './operator.js'
import { materialise, trainOperator } from './dual.js'
import type { Dataset } from '../data/dataset.js'
import type { NamedTensors } from '../model/vit.js'
import type { Evaluation, TrainOptions, TrainReport } from '../train/trainer.js'
import type { GrowthShape, LigoInit } from './operator.js'

export interface GrowthResult {
  /** The grown model after operator training; owned by the caller. */
  grown: NamedTensors
  /** The trained operator; owned by the caller. */
  operator: NamedTensors
  /** Test scores of the model grown by the initial, untrained operator, and by the trained one. */
  before: Evaluation
  after: Evaluation
  report: TrainReport
}

/** One LiGO from `shape.from` to `shape.to`: initialise, score, train on `train`, materialise, score on `test`. */
export function growAndTrain (shape: GrowthShape, source: NamedTensors, init: LigoInit, operatorSeed: string, data: { train: Dataset, test: Dataset }, options: TrainOptions): GrowthResult {
  const start = initLigo(shape, init, operatorSeed)
  const op = new VariableSet(start)
  tf.dispose(Object.values(start))
  try {
    const scoreGrown = (): Evaluation => {
      const grown = materialise(shape, op.tensors, source)
      const result = evaluate(predictWith(shape.to, grown), data.test)
      tf.dispose(Object.values(grown))
      return result
    }
    const before = scoreGrown()
    const report = trainOperator(shape, op, source, data.train, options)
    const grown = materialise(shape, op.tensors, source)
    const after = evaluate(predictWith(shape.to, grown), data.test)
    return { grown, operator: op.snapshot(), before, after, report }
  } finally {
    op.dispose()
  }
}
