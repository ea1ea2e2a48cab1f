import { loadModel, saveModel } from '../../node/model/model-file.js'
import { countParams } from '../../node/model/vit.js'
import { countLigoParams, growAndTrain, grownConfig, LIGO_INITS } from '../../node/ligo/index.js'
import { checkModelReads, finetune, predictWith } from '../../node/train/pretrain.js'
import { evaluate } from '../../node/train/trainer.js'
import { isTextConfig } from '../../node/model/config.js'
import * as tf from '../../node/tf.js'
import { choiceFlag, numberFlag, optionalString, stringFlag } from '../args.js'
import { finetuneStepsFor } from '../../node/federation/learner.js'
import { DATA_FLAGS, FORMAT_FLAG, TRAIN_FLAGS, finetuneBudgetFlags, percent, printResult, readData, readFinetuneBudget, readFormat, readTrainOptions } from './shared.js'
import type { ModelConfig } from '../../node/model/config.js'
import type { NamedTensors } from '../../node/model/vit.js'
import type { GrowthResult } from '../../node/ligo/index.js'
import type { Command, Flags } from '../args.js'
import type { FinetuneBudget } from '../../protocol/manifest.js'

function sizeFlags (flags: Flags, prefix: 'to' | 'via', from: ModelConfig): ModelConfig {
  const ratio = optionalString(flags, `${prefix}-mlp-ratio`)
  return grownConfig(from, {
    dim: numberFlag(flags, `${prefix}-dim`, 1, 8192, true),
    layers: numberFlag(flags, `${prefix}-layers`, 1, 128, true),
    ...(ratio !== undefined ? { mlpRatio: numberFlag(flags, `${prefix}-mlp-ratio`, 0.01, 16) } : {})
  })
}

const describe = (c: ModelConfig): string => `${c.dim}x${c.layers} (mlp ratio ${c.mlpRatio})`

const describeBudget = (budget: FinetuneBudget, steps: number, rows: number): string =>
  budget.finetuneEpochs !== undefined ? `${budget.finetuneEpochs} epochs of ${rows.toLocaleString('en-US')} rows (${steps} steps)` : `${steps} steps`

export const growCommand: Command = {
  name: 'grow',
  summary: 'Grow a small model into a larger one with a learned LiGO operator, on one machine (no network).',
  details: [
    'The small model stays frozen; only the operator (E, B, w) is trained, on the local data. With --via-dim and',
    '--via-layers it runs Dual-LiGO as one federation participant would: a Local-LiGO to the intermediate shape,',
    'then a Global-LiGO to the target, each for --steps. Prints test accuracy before and after training.',
    'A text model grows its token table too and keeps its tokenizer; --data must hold texts (spam, text:FILE).'
  ].join('\n'),
  flags: {
    from: { type: 'string', value: 'FILE', help: 'the small .fgm model to grow' },
    'to-dim': { type: 'string', value: 'D', help: 'target width (a multiple of the head count)' },
    'to-layers': { type: 'string', value: 'L', help: 'target depth' },
    'to-mlp-ratio': { type: 'string', value: 'R', help: 'target FFN ratio (default: the source\'s)' },
    'via-dim': { type: 'string', value: 'D', help: 'Dual-LiGO: intermediate width (with --via-layers)' },
    'via-layers': { type: 'string', value: 'L', help: 'Dual-LiGO: intermediate depth' },
    'via-mlp-ratio': { type: 'string', value: 'R', help: 'Dual-LiGO: intermediate FFN ratio' },
    init: { type: 'string', value: 'INIT', help: `operator initialisation: ${LIGO_INITS.join(' or ')} (see README)`, default: 'ligo' },
    steps: { type: 'string', value: 'N', help: 'operator training steps (per operator)', default: '100' },
    ...finetuneBudgetFlags('Here it is one participant\'s phase 4, on the --data training rows. Default: none.'),
    ...TRAIN_FLAGS,
    ...DATA_FLAGS,
    out: { type: 'string', value: 'FILE', help: 'where to save the grown model (.fgm)' },
    ...FORMAT_FLAG
  },
  async run (flags) {
    const format = readFormat(flags)
    const out = stringFlag(flags, 'out')
    const init = choiceFlag(flags, 'init', LIGO_INITS)
    const fromPath = stringFlag(flags, 'from')
    const budget = readFinetuneBudget(flags, {})
    const small = loadModel(fromPath)
    const owned: NamedTensors[] = [small.params]
    try {
      // Texts are read with the small model's tokenizer, which every grown model keeps.
      const data = readData(flags, isTextConfig(small.config) ? small.config.tokenizer : undefined)
      checkModelReads(small.config, data.train, fromPath, false)
      const options = readTrainOptions(flags, data.train.count, 'grow')
      const sourceAccuracy = evaluate(predictWith(small.config, small.params), data.test).accuracy
      const dual = optionalString(flags, 'via-dim') !== undefined || optionalString(flags, 'via-layers') !== undefined
      const chain = dual ? [small.config, sizeFlags(flags, 'via', small.config)] : [small.config]
      chain.push(sizeFlags(flags, 'to', chain[chain.length - 1]))
      const stages: Array<{ name: string, from: ModelConfig, to: ModelConfig, operatorParams: number, result: GrowthResult }> = []
      let source = small.params
      for (let s = 1; s < chain.length; s++) {
        const shape = { from: chain[s - 1], to: chain[s] }
        const name = !dual ? 'ligo' : s === 1 ? 'local-ligo' : 'global-ligo'
        const result = growAndTrain(shape, source, init, `${name}:${options.seed}`, data, { ...options, phase: `grow: ${name}` })
        owned.push(result.grown, result.operator)
        stages.push({ name, from: shape.from, to: shape.to, operatorParams: countLigoParams(shape), result })
        source = result.grown
      }
      const target = chain[chain.length - 1]
      let final = source
      let finetuned: number | undefined
      const finetuneSteps = finetuneStepsFor({ ...budget, batchSize: options.batchSize }, data.train.count)
      if (finetuneSteps > 0) {
        final = finetune(target, source, data.train, { ...options, steps: finetuneSteps, phase: 'grow: finetune' }).params
        owned.push(final)
        finetuned = evaluate(predictWith(target, final), data.test).accuracy
      }
      const last = stages[stages.length - 1].result
      const labelWidth = Math.max('finetune'.length, ...stages.map(s => s.name.length))
      const label = (name: string): string => name.padEnd(labelWidth)
      saveModel(out, target, final, { producedBy: 'fedgrow grow', from: fromPath, init, stages: stages.map(s => s.name), steps: options.steps, ...budget, testAccuracy: finetuned ?? last.after.accuracy })
      printResult(format, {
        out,
        init,
        sourceAccuracy,
        stages: stages.map(s => ({ name: s.name, from: s.from, to: s.to, operatorParams: s.operatorParams, steps: s.result.report.steps, accuracyBefore: s.result.before.accuracy, accuracyAfter: s.result.after.accuracy })),
        targetParams: countParams(target),
        accuracyBefore: stages[0].result.before.accuracy,
        accuracyAfter: last.after.accuracy,
        ...(finetuned !== undefined ? { finetuneSteps, accuracyFinetuned: finetuned } : {})
      }, [
        `${label('source')} ${describe(small.config)}: ${countParams(small.config).toLocaleString('en-US')} params, test accuracy ${percent(sourceAccuracy)}`,
        ...stages.map(s => `${label(s.name)} ${describe(s.from)} -> ${describe(s.to)}: operator ${s.operatorParams.toLocaleString('en-US')} params; accuracy ${percent(s.result.before.accuracy)} grown untrained, ${percent(s.result.after.accuracy)} after ${s.result.report.steps} steps`),
        ...(finetuned !== undefined ? [`${label('finetune')} ${describeBudget(budget, finetuneSteps, data.train.count)} of the grown model's weights: accuracy ${percent(finetuned)}`] : []),
        `${label('target')} ${describe(target)}: ${countParams(target).toLocaleString('en-US')} params, saved to ${out}`
      ])
    } finally {
      for (const tensors of owned) tf.dispose(Object.values(tensors))
    }
  }
}
