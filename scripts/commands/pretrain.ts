import { validateVitConfig, DEFAULT_VIT_CONFIG } from '../../node/model/config.js'
import { countParams } from '../../node/model/vit.js'
import { saveModel } from '../../node/model/model-file.js'
import { pretrain, predictWith } from '../../node/train/pretrain.js'
import { evaluate } from '../../node/train/trainer.js'
import * as tf from '../../node/tf.js'
import { numberFlag, stringFlag } from '../args.js'
import { DATA_FLAGS, FORMAT_FLAG, TRAIN_FLAGS, percent, printResult, readData, readFormat, readTrainOptions } from './shared.js'
import type { Command } from '../args.js'

export const pretrainCommand: Command = {
  name: 'pretrain',
  summary: 'Train a small Vision Transformer from scratch on local data, report its test accuracy, and save it.',
  details: 'The saved .fgm file is what a participant brings to a federation (fedgrow grow, fedgrow node).',
  flags: {
    dim: { type: 'string', value: 'D', help: 'residual width', default: String(DEFAULT_VIT_CONFIG.dim) },
    layers: { type: 'string', value: 'L', help: 'transformer blocks', default: String(DEFAULT_VIT_CONFIG.layers) },
    heads: { type: 'string', value: 'H', help: 'attention heads (must divide --dim)', default: String(DEFAULT_VIT_CONFIG.heads) },
    'mlp-ratio': { type: 'string', value: 'R', help: 'FFN width as a multiple of --dim', default: String(DEFAULT_VIT_CONFIG.mlpRatio) },
    'patch-size': { type: 'string', value: 'P', help: 'square patch side in pixels (must divide the image side)', default: String(DEFAULT_VIT_CONFIG.patchSize) },
    epochs: { type: 'string', value: 'E', help: 'passes over the training data', default: '10' },
    steps: { type: 'string', value: 'N', help: 'optimiser steps (overrides --epochs)' },
    ...TRAIN_FLAGS,
    ...DATA_FLAGS,
    out: { type: 'string', value: 'FILE', help: 'where to save the model (.fgm, a safetensors file)' },
    ...FORMAT_FLAG
  },
  async run (flags) {
    const format = readFormat(flags)
    const out = stringFlag(flags, 'out')
    const data = readData(flags)
    const config = validateVitConfig({
      imageSize: data.train.imageSize,
      channels: data.train.channels,
      numClasses: data.train.numClasses,
      patchSize: numberFlag(flags, 'patch-size', 1, 1024, true),
      dim: numberFlag(flags, 'dim', 1, 8192, true),
      layers: numberFlag(flags, 'layers', 1, 128, true),
      heads: numberFlag(flags, 'heads', 1, 256, true),
      mlpRatio: numberFlag(flags, 'mlp-ratio', 0.01, 16)
    })
    const options = readTrainOptions(flags, data.train.count, 'pretrain')
    const started = Date.now()
    const { params, report } = pretrain(config, data.train, options)
    const trainSeconds = (Date.now() - started) / 1000
    const test = evaluate(predictWith(config, params), data.test)
    saveModel(out, config, params, { producedBy: 'fedgrow pretrain', data: flags.data, shard: flags.shard, partition: flags.partition, seed: flags.seed, steps: report.steps, testAccuracy: test.accuracy })
    tf.dispose(Object.values(params))
    printResult(format, { out, config, params: countParams(config), steps: report.steps, trainLoss: report.finalLoss, accuracy: test.accuracy, loss: test.loss, testCount: test.count, trainSeconds }, [
      `model      ${config.dim} wide, ${config.layers} layers, ${config.heads} heads, mlp ratio ${config.mlpRatio}: ${countParams(config).toLocaleString('en-US')} parameters`,
      `trained    ${report.steps} steps on ${data.train.count} examples in ${trainSeconds.toFixed(1)} s (final loss ${report.finalLoss.toFixed(4)})`,
      `test       accuracy ${percent(test.accuracy)}, loss ${test.loss.toFixed(4)} on ${test.count} held-out examples`,
      `saved      ${out}`
    ])
  }
}
