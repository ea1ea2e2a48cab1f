import { validateVitConfig, DEFAULT_VIT_CONFIG } from '../../node/model/config.js'
import { countParams } from '../../node/model/vit.js'
import { loadModel, saveModel } from '../../node/model/model-file.js'
import { predictWith, trainSmallModel } from '../../node/train/pretrain.js'
import { evaluate, stepsForEpochs } from '../../node/train/trainer.js'
import { splitTrainTest } from '../../node/data/index.js'
import { InvalidConfigError } from '../../node/errors.js'
import type { Dataset } from '../../node/data/index.js'
import type { VitConfig } from '../../node/model/config.js'
import type { NamedTensors } from '../../node/model/vit.js'
import type { Flags } from '../args.js'
import * as tf from '../../node/tf.js'
import { numberFlag, optionalString, stringFlag } from '../args.js'
import { DATA_FLAGS, FORMAT_FLAG, TRAIN_FLAGS, percent, printResult, readData, readFormat, readSeed, readTrainOptions } from './shared.js'
import type { Command } from '../args.js'

export const pretrainCommand: Command = {
  name: 'pretrain',
  summary: 'Train a small Vision Transformer on local data (from scratch, or from a public checkpoint), report its test accuracy, and save it.',
  details: [
    'The saved .fgm file is what a participant brings to a federation (fedgrow grow, fedgrow node).',
    '',
    '--from CHECKPOINT fine-tunes a published model of the same shape instead of starting from random',
    'weights: participants whose small models start from one public checkpoint grow models that agree',
    'with each other, which is what makes sharing Global-LiGO pay (docs/method.md). --patience N trains',
    'until the accuracy on 15% of the training rows has not risen for N epochs (at most --epochs) and',
    'keeps the best weights.'
  ].join('\n'),
  flags: {
    dim: { type: 'string', value: 'D', help: 'residual width', default: String(DEFAULT_VIT_CONFIG.dim) },
    layers: { type: 'string', value: 'L', help: 'transformer blocks', default: String(DEFAULT_VIT_CONFIG.layers) },
    heads: { type: 'string', value: 'H', help: 'attention heads (must divide --dim)', default: String(DEFAULT_VIT_CONFIG.heads) },
    'mlp-ratio': { type: 'string', value: 'R', help: 'FFN width as a multiple of --dim', default: String(DEFAULT_VIT_CONFIG.mlpRatio) },
    'patch-size': { type: 'string', value: 'P', help: 'square patch side in pixels (must divide the image side)', default: String(DEFAULT_VIT_CONFIG.patchSize) },
    epochs: { type: 'string', value: 'E', help: 'passes over the training data', default: '10' },
    steps: { type: 'string', value: 'N', help: 'optimiser steps (overrides --epochs)' },
    from: { type: 'string', value: 'FILE', help: 'start from this model file (e.g. a public checkpoint); its shape replaces --dim, --layers, --heads, --mlp-ratio and --patch-size' },
    patience: { type: 'string', value: 'N', help: 'stop once validation accuracy (on 15% of the training rows) has not risen for N epochs, keeping the best weights' },
    ...TRAIN_FLAGS,
    ...DATA_FLAGS,
    out: { type: 'string', value: 'FILE', help: 'where to save the model (.fgm, a safetensors file)' },
    ...FORMAT_FLAG
  },
  async run (flags) {
    const format = readFormat(flags)
    const out = stringFlag(flags, 'out')
    const data = readData(flags)
    const from = optionalString(flags, 'from')
    const start = from === undefined ? undefined : loadModel(from)
    const config = start?.config ?? validateVitConfig({
      imageSize: data.train.imageSize,
      channels: data.train.channels,
      numClasses: data.train.numClasses,
      patchSize: numberFlag(flags, 'patch-size', 1, 1024, true),
      dim: numberFlag(flags, 'dim', 1, 8192, true),
      layers: numberFlag(flags, 'layers', 1, 128, true),
      heads: numberFlag(flags, 'heads', 1, 256, true),
      mlpRatio: numberFlag(flags, 'mlp-ratio', 0.01, 16)
    })
    if (config.imageSize !== data.train.imageSize || config.channels !== data.train.channels || config.numClasses !== data.train.numClasses) {
      if (start !== undefined) tf.dispose(Object.values(start.params))
      throw new InvalidConfigError(`${from ?? 'the model'} takes ${config.imageSize}x${config.imageSize}x${config.channels} images and ${config.numClasses} classes; --data ${String(flags.data)} has ${data.train.imageSize}x${data.train.imageSize}x${data.train.channels} and ${data.train.numClasses}`)
    }
    const started = Date.now()
    const trained = trainLocally(config, start?.params, data.train, flags)
    if (start !== undefined) tf.dispose(Object.values(start.params))
    const { params, steps, finalLoss } = trained
    const trainSeconds = (Date.now() - started) / 1000
    const test = evaluate(predictWith(config, params), data.test)
    saveModel(out, config, params, { producedBy: 'fedgrow pretrain', from: from ?? null, data: flags.data, shard: flags.shard, partition: flags.partition, seed: flags.seed, steps, testAccuracy: test.accuracy })
    tf.dispose(Object.values(params))
    printResult(format, { out, config, from: from ?? null, params: countParams(config), steps, trainLoss: finalLoss, accuracy: test.accuracy, loss: test.loss, testCount: test.count, trainSeconds }, [
      `model      ${config.dim} wide, ${config.layers} layers, ${config.heads} heads, mlp ratio ${config.mlpRatio}: ${countParams(config).toLocaleString('en-US')} parameters`,
      `trained    ${steps} steps${from !== undefined ? ` from ${from}` : ''} on ${data.train.count} examples in ${trainSeconds.toFixed(1)} s (final loss ${finalLoss.toFixed(4)})`,
      `test       accuracy ${percent(test.accuracy)}, loss ${test.loss.toFixed(4)} on ${test.count} held-out examples`,
      `saved      ${out}`
    ])
  }
}

/** Patience's validation rows: the same share a simulation's peers hold out. */
const VALIDATION_FRACTION = 0.15

/** Trains `start` (or fresh weights) for --steps/--epochs, or until flat with --patience; the caller owns the params. */
function trainLocally (config: VitConfig, start: NamedTensors | undefined, rows: Dataset, flags: Flags): { params: NamedTensors, steps: number, finalLoss: number } {
  if (optionalString(flags, 'patience') === undefined) {
    const trained = trainSmallModel(config, start, rows, readTrainOptions(flags, rows.count, 'pretrain'))
    return { params: trained.params, steps: trained.steps, finalLoss: trained.finalLoss ?? NaN }
  }
  const split = splitTrainTest(rows, VALIDATION_FRACTION, `pretrain-validation:${readSeed(flags)}`)
  const options = readTrainOptions(flags, split.train.count, 'pretrain')
  const epoch = stepsForEpochs(split.train.count, 1, options.batchSize)
  const flat = trainSmallModel(config, start, split.train, { ...options, schedule: 'constant' }, { validation: split.test, everySteps: epoch, patience: numberFlag(flags, 'patience', 1, 1e6, true) })
  return { params: flat.params, steps: flat.steps, finalLoss: evaluate(predictWith(config, flat.params), split.train).loss }
}
