import { loadModel } from '../../node/model/model-file.js'
import { readImages } from '../../node/data/images.js'
import { forward } from '../../node/model/vit.js'
import { InvalidArgumentError } from '../../node/errors.js'
import * as tf from '../../node/tf.js'
import { choiceFlag, numberFlag, stringFlag } from '../args.js'
import { FORMAT_FLAG, percent, printResult, readFormat } from './shared.js'
import type { Command } from '../args.js'

export const predictCommand: Command = {
  name: 'predict',
  summary: 'Classify images with a model: `fedgrow predict --model target.fgm digit.png images.idx ...`.',
  details: [
    'Inputs are PNG files (any size: resized to the model\'s, grey or colour) or IDX image files',
    '(idx3/idx4, gzipped or not; every image in them). Digits should be light on dark, as in MNIST; a PNG',
    'that is mostly light is inverted (--invert auto). Prints the top classes of each image.'
  ].join('\n'),
  positionals: 'INPUT...',
  flags: {
    model: { type: 'string', value: 'FILE', help: 'a .fgm model file' },
    top: { type: 'string', value: 'K', help: 'classes to print per image', default: '3' },
    invert: { type: 'string', value: 'WHEN', help: 'swap light and dark: auto (PNGs that are mostly light), yes or no', default: 'auto' },
    ...FORMAT_FLAG
  },
  async run (flags, positionals) {
    if (positionals.length === 0) throw new InvalidArgumentError('give at least one PNG or IDX file to classify')
    const format = readFormat(flags)
    const { config, params } = loadModel(stringFlag(flags, 'model'))
    try {
      const top = numberFlag(flags, 'top', 1, config.numClasses, true)
      const inputs = readImages(positionals, config, choiceFlag(flags, 'invert', ['auto', 'yes', 'no'] as const))
      const pixels = inputs[0].pixels.length
      const probabilities = tf.tidy(() => {
        const batch = tf.tensor2d(Float32Array.from(inputs.flatMap(i => [...i.pixels])), [inputs.length, pixels])
        return tf.softmax(forward(config, params, batch)).arraySync() as number[][]
      })
      const predictions = inputs.map((input, i) => ({
        input: input.name,
        top: probabilities[i].map((p, label) => ({ label, probability: p })).sort((a, b) => b.probability - a.probability).slice(0, top)
      }))
      printResult(format, predictions, predictions.map(p => `${p.input}: ${p.top.map(t => `${t.label} (${percent(t.probability)})`).join(', ')}`))
    } finally {
      tf.dispose(Object.values(params))
    }
  }
}
