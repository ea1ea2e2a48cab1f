/**
 * LiGO's headline, measured here: grow a pre-trained small ViT to the target with a learned operator
 * (both inits), then train the grown model; against training the same target from scratch with the same
 * optimiser, schedule and data. Reports the steps and FLOPs each needs to reach the from-scratch model's
 * final test accuracy. The small model's own pre-training is not counted (it is what participants bring).
 */
import * as tf from '../../node/tf.js'
import { initBackend } from '../../node/backend.js'
import { loadData } from '../../node/data/index.js'
import { validateVitConfig } from '../../node/model/config.js'
import { countParams, flopsPerTrainStep, initParams } from '../../node/model/vit.js'
import { countLigoParams, growAndTrain, growFlops, grownConfig, LIGO_INITS } from '../../node/ligo/index.js'
import { finetune, pretrain, predictWith } from '../../node/train/pretrain.js'
import { evaluate, stepsForEpochs } from '../../node/train/trainer.js'
import { consoleProgress } from '../../node/train/progress.js'
import { markdownTable, writeSection } from './report.js'
import type { NamedTensors } from '../../node/model/vit.js'
import type { TrainOptions } from '../../node/train/trainer.js'

const SMALL = validateVitConfig({ dim: 32, layers: 2, heads: 4, mlpRatio: 2 })
const TARGET = grownConfig(SMALL, { dim: 64, layers: 4 })
const SMALL_EPOCHS = 5
const TARGET_EPOCHS = 10
const OPERATOR_STEPS = 100 // as in LiGO's code
const EVAL_EVERY = 50
const BATCH = 64
const DEFAULT_LEARNING_RATE = 2e-3

type Curve = Array<{ step: number, accuracy: number }>

interface Run {
  name: string
  curve: Curve
  operatorSteps: number
  operatorStepFlops: number
  /** Test accuracy of the grown model right after operator training. */
  grownAccuracy?: number
}

/** First step at which the curve reaches `accuracy`, or null. */
const stepsToReach = (curve: Curve, accuracy: number): number | null => curve.find(p => p.accuracy >= accuracy)?.step ?? null
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`

/** `--lr RATE` sets the peak learning rate of every run (operator and target training alike). */
function learningRateArg (args: string[]): number {
  const i = args.indexOf('--lr')
  if (i < 0) return DEFAULT_LEARNING_RATE
  const rate = Number(args[i + 1])
  if (!(rate > 0 && rate < 1)) throw new Error(`--lr ${args[i + 1]}: must be a number in (0, 1)`)
  return rate
}

export async function ligoBench (command: string, args: string[]): Promise<void> {
  const LEARNING_RATE = learningRateArg(args)
  await initBackend('wasm')
  const data = loadData('mnist', 0)
  const base: TrainOptions = { steps: 0, batchSize: BATCH, learningRate: LEARNING_RATE, seed: 0, onProgress: consoleProgress() }
  const targetSteps = stepsForEpochs(data.train.count, TARGET_EPOCHS, BATCH)
  const accuracyOf = (params: NamedTensors): number => evaluate(predictWith(TARGET, params), data.test).accuracy

  /** Trains the target's own weights from `start` for targetSteps, scoring every EVAL_EVERY steps. */
  const trainTarget = (label: string, start: NamedTensors): Curve => {
    const curve: Curve = [{ step: 0, accuracy: accuracyOf(start) }]
    const { params } = finetune(TARGET, start, data.train, {
      ...base,
      steps: targetSteps,
      phase: label,
      checkpoint: { every: EVAL_EVERY, run: (step, live) => { curve.push({ step, accuracy: accuracyOf(live) }) } }
    })
    tf.dispose(Object.values(params))
    return curve
  }

  const small = pretrain(SMALL, data.train, { ...base, steps: stepsForEpochs(data.train.count, SMALL_EPOCHS, BATCH), phase: 'small model' })
  const smallAccuracy = evaluate(predictWith(SMALL, small.params), data.test).accuracy
  const scratchStepFlops = flopsPerTrainStep(TARGET, BATCH)

  const fresh = initParams(TARGET, 0)
  const runs: Run[] = [{ name: 'from scratch', curve: trainTarget('scratch', fresh), operatorSteps: 0, operatorStepFlops: 0 }]
  tf.dispose(Object.values(fresh))
  for (const init of LIGO_INITS) {
    const shape = { from: SMALL, to: TARGET }
    const grown = growAndTrain(shape, small.params, init, `bench:${init}`, data, { ...base, steps: OPERATOR_STEPS, phase: `ligo (${init} init) operator` })
    runs.push({
      name: `LiGO, ${init} init`,
      curve: trainTarget(`ligo (${init} init) grown model`, grown.grown),
      operatorSteps: OPERATOR_STEPS,
      operatorStepFlops: scratchStepFlops + 3 * growFlops(shape),
      grownAccuracy: grown.after.accuracy
    })
    tf.dispose([...Object.values(grown.grown), ...Object.values(grown.operator)])
  }
  tf.dispose(Object.values(small.params))

  const scratch = runs[0].curve
  const goal = scratch[scratch.length - 1].accuracy
  const scratchFlops = stepsToReach(scratch, goal)! * scratchStepFlops
  const rows = runs.map(r => {
    const reached = stepsToReach(r.curve, goal)
    const flops = reached === null ? null : r.operatorSteps * r.operatorStepFlops + reached * scratchStepFlops
    return [
      r.name,
      r.grownAccuracy === undefined ? '-' : pct(r.grownAccuracy),
      pct(r.curve[r.curve.length - 1].accuracy),
      reached === null ? 'not reached' : r.operatorSteps > 0 ? `${r.operatorSteps + reached} (${r.operatorSteps} operator + ${reached})` : String(reached),
      flops === null ? '-' : `${(flops / 1e12).toFixed(2)} TFLOP`,
      flops === null ? '-' : `${(100 * (1 - flops / scratchFlops)).toFixed(0)}%`
    ]
  })
  const curveRows = runs[0].curve.map((p, i) => [p.step, ...runs.map(r => r.curve[i] === undefined ? '-' : pct(r.curve[i].accuracy))])
  const section = LEARNING_RATE === DEFAULT_LEARNING_RATE ? 'ligo' : `ligo-lr-${LEARNING_RATE}`
  writeSection(section, `LiGO growth vs training from scratch (peak learning rate ${LEARNING_RATE})`, command, [
    `Small model: dim ${SMALL.dim}, ${SMALL.layers} layers (${countParams(SMALL).toLocaleString('en-US')} params), pre-trained ${SMALL_EPOCHS} epochs: test accuracy ${pct(smallAccuracy)}.`,
    `Target: dim ${TARGET.dim}, ${TARGET.layers} layers (${countParams(TARGET).toLocaleString('en-US')} params). LiGO operator: ${countLigoParams({ from: SMALL, to: TARGET }).toLocaleString('en-US')} params, trained ${OPERATOR_STEPS} steps.`,
    `Each target is then trained ${targetSteps} steps (${TARGET_EPOCHS} epochs of the bundled digits, batch ${BATCH}, AdamW lr ${LEARNING_RATE}, warm-up + cosine), scored every ${EVAL_EVERY} steps on 2,000 held-out digits.`,
    `Goal: the from-scratch model's final accuracy, ${pct(goal)}. An operator step is counted as a target training step plus 3x grow()'s FLOPs.`,
    '',
    markdownTable(['method', 'grown model after operator training', 'final accuracy', 'steps to goal', 'FLOPs to goal', 'FLOPs saved vs scratch'], rows),
    '',
    'Test accuracy by training step of the target model (after the operator steps):',
    '',
    markdownTable(['step', ...runs.map(r => r.name)], curveRows)
  ].join('\n'))
}
