import { loadModel } from '../../node/model/model-file.js'
import { isTextConfig } from '../../node/model/config.js'
import { checkModelReads, predictWith } from '../../node/train/pretrain.js'
import { evaluate } from '../../node/train/trainer.js'
import * as tf from '../../node/tf.js'
import { stringFlag } from '../args.js'
import { DATA_FLAGS, FORMAT_FLAG, percent, printResult, readData, readFormat } from './shared.js'
import type { Command } from '../args.js'

export const evalCommand: Command = {
  name: 'eval',
  summary: 'Report a saved model\'s accuracy and loss on the test split of a data set.',
  details: 'Use the same --data, --shard, --partition and --seed as training to score the same held-out examples. Texts are tokenized as the model file says.',
  flags: {
    model: { type: 'string', value: 'FILE', help: 'a .fgm model file' },
    ...DATA_FLAGS,
    ...FORMAT_FLAG
  },
  async run (flags) {
    const format = readFormat(flags)
    const path = stringFlag(flags, 'model')
    const { config, params } = loadModel(path)
    try {
      const { test } = readData(flags, isTextConfig(config) ? config.tokenizer : undefined)
      checkModelReads(config, test, path, false)
      const result = evaluate(predictWith(config, params), test)
      printResult(format, { model: path, accuracy: result.accuracy, loss: result.loss, count: result.count }, [
        `${path}: accuracy ${percent(result.accuracy)}, loss ${result.loss.toFixed(4)} on ${result.count} test examples of ${test.source}`
      ])
    } finally {
      tf.dispose(Object.values(params))
    }
  }
}
