import { validateTextConfig, validateVitConfig, DEFAULT_VIT_CONFIG, isTextConfig } from '../../node/model/config.js'
import { DEFAULT_TOKENIZER, validateTokenizer } from '../../node/model/tokenizer.js'
import { countParams } from '../../node/model/vit.js'
import { loadModel, saveModel } from '../../node/model/model-file.js'
import { checkModelReads, predictWith, trainSmallModel } from '../../node/train/pretrain.js'
import { evaluate, stepsForEpochs } from '../../node/train/trainer.js'
import { isTextData, splitTrainTest, VALIDATION_FRACTION } from '../../node/data/index.js'
import { InvalidArgumentError } from '../../node/errors.js'
import type { Dataset } from '../../node/data/index.js'
import type { ModelConfig } from '../../node/model/config.js'
import type { TokenizerConfig } from '../../node/model/tokenizer.js'
import type { NamedTensors } from '../../node/model/vit.js'
import type { Flags } from '../args.js'
import * as tf from '../../node/tf.js'
import { numberFlag, optionalString, stringFlag } from '../args.js'
import { DATA_FLAGS, FORMAT_FLAG, TRAIN_FLAGS, percent, printResult, readData, readFormat, readSeed, readTrainOptions } from './shared.js'
import type { Command } from '../args.js'

export const pretrainCommand: Command = {
  name: 'pretrain',
  summary: 'Train a small transformer on local images or texts (from scratch, or from a public checkpoint), report its test accuracy, and save it.',
  details: [
    'The saved .fgm file is what a participant brings to a federation (fedgrow grow, fedgrow node).',
    '',
    'Images (--data mnist, idx:DIR) make a Vision Transformer cut into --patch-size patches. Texts (--data',
    'spam, text:FILE) make a text transformer over hashed words: --vocab-size buckets, the first --seq-len',
    'words of each text, hashed with --tokenizer-seed (docs/text.md); the file records the tokenizer.',
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
    'patch-size': { type: 'string', value: 'P', help: `images: square patch side in pixels, must divide the image side (default: ${DEFAULT_VIT_CONFIG.patchSize})` },
    'vocab-size': { type: 'string', value: 'V', help: `texts: hash buckets, the embedding table's rows (default: ${DEFAULT_TOKENIZER.vocabSize})` },
    'seq-len': { type: 'string', value: 'S', help: `texts: words read per text; longer ones are cut, shorter padded (default: ${DEFAULT_TOKENIZER.seqLen})` },
    'tokenizer-seed': { type: 'string', value: 'K', help: `texts: seeds the word hash (default: ${DEFAULT_TOKENIZER.seed})` },
    epochs: { type: 'string', value: 'E', help: 'passes over the training data', default: '10' },
    steps: { type: 'string', value: 'N', help: 'optimiser steps (overrides --epochs)' },
    from: { type: 'string', value: 'FILE', help: 'start from this model file (e.g. a public checkpoint); its shape and tokenizer replace --dim, --layers, --heads, --mlp-ratio, --patch-size, --vocab-size, --seq-len and --tokenizer-seed' },
    patience: { type: 'string', value: 'N', help: 'stop once validation accuracy (on 15% of the training rows) has not risen for N epochs, keeping the best weights' },
    ...TRAIN_FLAGS,
    ...DATA_FLAGS,
    out: { type: 'string', value: 'FILE', help: 'where to save the model (.fgm, a safetensors file)' },
    ...FORMAT_FLAG
  },
  async run (flags) {
    const format = readFormat(flags)
    const out = stringFlag(flags, 'out')
    const from = optionalString(flags, 'from')
    const start = from === undefined ? undefined : loadModel(from)
    let config: ModelConfig
    let data: ReturnType<typeof readData>
    try {
      data = readData(flags, start !== undefined && isTextConfig(start.config) ? start.config.tokenizer : readTokenizer(flags))
      config = start?.config ?? configFor(data.train, flags)
      checkModelReads(config, data.train, from ?? 'the model', true)
    } catch (err) {
      if (start !== undefined) tf.dispose(Object.values(start.params))
      throw err
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
      `model      ${isTextConfig(config) ? `text, ${config.tokenizer.vocabSize} hashed words x ${config.tokenizer.seqLen} tokens, ` : ''}${config.dim} wide, ${config.layers} layers, ${config.heads} heads, mlp ratio ${config.mlpRatio}: ${countParams(config).toLocaleString('en-US')} parameters`,
      `trained    ${steps} steps${from !== undefined ? ` from ${from}` : ''} on ${data.train.count} examples in ${trainSeconds.toFixed(1)} s (final loss ${finalLoss.toFixed(4)})`,
      `test       accuracy ${percent(test.accuracy)}, loss ${test.loss.toFixed(4)} on ${test.count} held-out examples`,
      `saved      ${out}`
    ])
  }
}

/** The tokenizer that --vocab-size, --seq-len and --tokenizer-seed ask for, defaults filled in. */
function readTokenizer (flags: Flags): TokenizerConfig {
  const given = (name: string, max: number): number | undefined => optionalString(flags, name) === undefined ? undefined : numberFlag(flags, name, 0, max, true)
  const spec: Partial<TokenizerConfig> = {}
  const vocabSize = given('vocab-size', 2 ** 32)
  const seqLen = given('seq-len', 2 ** 32)
  const seed = given('tokenizer-seed', 2 ** 32 - 1)
  if (vocabSize !== undefined) spec.vocabSize = vocabSize
  if (seqLen !== undefined) spec.seqLen = seqLen
  if (seed !== undefined) spec.seed = seed
  return validateTokenizer(spec)
}

/** A fresh model's config for `rows` from the shape flags, refusing flags that are for the other kind of data. */
function configFor (rows: Dataset, flags: Flags): ModelConfig {
  const wrongKind = (isTextData(rows) ? ['patch-size'] : ['vocab-size', 'seq-len', 'tokenizer-seed']).find(name => optionalString(flags, name) !== undefined)
  if (wrongKind !== undefined) throw new InvalidArgumentError(`--${wrongKind} is for ${isTextData(rows) ? 'images' : 'texts'}, and --data ${String(flags.data)} holds ${isTextData(rows) ? 'texts' : 'images'}; leave it out`)
  const body = {
    numClasses: rows.numClasses,
    dim: numberFlag(flags, 'dim', 1, 8192, true),
    layers: numberFlag(flags, 'layers', 1, 128, true),
    heads: numberFlag(flags, 'heads', 1, 256, true),
    mlpRatio: numberFlag(flags, 'mlp-ratio', 0.01, 16)
  }
  if (isTextData(rows)) return validateTextConfig({ ...body, tokenizer: rows.tokenizer, classNames: rows.classNames })
  const patchSize = optionalString(flags, 'patch-size') === undefined ? DEFAULT_VIT_CONFIG.patchSize : numberFlag(flags, 'patch-size', 1, 1024, true)
  return validateVitConfig({ ...body, imageSize: rows.imageSize, channels: rows.channels, patchSize })
}

/** Trains `start` (or fresh weights) for --steps/--epochs, or until flat with --patience; the caller owns the params. */
function trainLocally (config: ModelConfig, start: NamedTensors | undefined, rows: Dataset, flags: Flags): { params: NamedTensors, steps: number, finalLoss: number } {
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
