import { loadModel } from '../../node/model/model-file.js'
import { predictWith } from '../../node/train/pretrain.js'
import { evaluate } from '../../node/train/trainer.js'
import { DataError } from '../../node/errors.js'
import * as tf from '../../node/tf.js'
import { stringFlag } from '../args.js'
import { DATA_FLAGS, FORMAT_FLAG, percent, printResult, readData, readFormat } from './shared.js'
import type { Command } from '../args.js'

export const evalCommand: Command = {
  name: 'eval',
  summary: 'Report a saved model\'s accuracy and loss on the test split of a data set.',
  details: 'Use the same --data, --shard, --partition and --seed as training to score the same held-out examples.',
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
      const { test } = readData(flags)
      if (test.imageSize !== config.imageSize || test.channels !== config.channels || test.numClasses > config.numClasses) {
        throw new DataError(`${path} takes ${config.imageSize}x${config.imageSize}x${config.channels} images in ${config.numClasses} classes; ${test.source} has ${test.imageSize}x${test.imageSize}x${test.channels} in ${test.numClasses}`)
      }
      const result = evaluate(predictWith(config, params), test)
      printResult(format, { model: path, accuracy: result.accuracy, loss: result.loss, count: result.count }, [
        `${path}: accuracy ${percent(result.accuracy)}, loss ${result.loss.toFixed(4)} on ${result.count} test examples of ${test.source}`
      ])
    } finally {
      tf.dispose(Object.values(params))
    }
  }
}
