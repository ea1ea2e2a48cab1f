import { loadModel } from '../../node/model/model-file.js'
import { readImages } from '../../node/data/images.js'
import { readTextInput } from '../../node/data/text.js'
import { isTextConfig } from '../../node/model/config.js'
import { tokenize } from '../../node/model/tokenizer.js'
import { forward } from '../../node/model/vit.js'
import { InvalidArgumentError } from '../../node/errors.js'
import * as tf from '../../node/tf.js'
import { choiceFlag, numberFlag, stringFlag } from '../args.js'
import { FORMAT_FLAG, percent, printResult, readFormat } from './shared.js'
import type { Command } from '../args.js'

export const predictCommand: Command = {
  name: 'predict',
  summary: 'Classify images or texts with a model: `fedgrow predict --model digits.fgm digit.png` or `--model spam.fgm message.eml`.',
  details: [
    'An image model takes PNG files (any size: resized to the model\'s, grey or colour) or IDX image files',
    '(idx3/idx4, gzipped or not; every image in them). Digits should be light on dark, as in MNIST; a PNG',
    'that is mostly light is inverted (--invert auto).',
    '',
    'A text model takes text files, or - for standard input: .eml files are read as e-mails (Subject and',
    'body, as --data spam reads them; --email reads every input so), anything else as the whole text.',
    '',
    'Prints the top classes of each input with their probabilities.'
  ].join('\n'),
  positionals: 'INPUT...',
  flags: {
    model: { type: 'string', value: 'FILE', help: 'a .fgm model file' },
    top: { type: 'string', value: 'K', help: 'classes to print per input (at most the model\'s classes)', default: '3' },
    invert: { type: 'string', value: 'WHEN', help: 'images: swap light and dark: auto (PNGs that are mostly light), yes or no', default: 'auto' },
    email: { type: 'boolean', help: 'texts: read every input as an e-mail (Subject and body), not only .eml files' },
    ...FORMAT_FLAG
  },
  async run (flags, positionals) {
    if (positionals.length === 0) throw new InvalidArgumentError('give at least one file to classify (PNG or IDX for an image model; a text file, .eml, or - for stdin, for a text model)')
    const format = readFormat(flags)
    const { config, params } = loadModel(stringFlag(flags, 'model'))
    try {
      const top = Math.min(numberFlag(flags, 'top', 1, 1e6, true), config.numClasses)
      // One row per input: [inputs, width], pixels or token ids as the model reads them.
      const inputs = isTextConfig(config)
        ? positionals.map(path => readTextInput(path, flags.email === true)).map(t => ({ name: t.name, row: tokenize(config.tokenizer, t.text) }))
        : readImages(positionals, config, choiceFlag(flags, 'invert', ['auto', 'yes', 'no'] as const)).map(i => ({ name: i.name, row: i.pixels }))
      const classNames = isTextConfig(config) ? config.classNames : undefined
      const width = inputs[0].row.length
      const probabilities = tf.tidy(() => {
        const batch = isTextConfig(config)
          ? tf.tensor2d(Int32Array.from(inputs.flatMap(i => [...i.row])), [inputs.length, width], 'int32')
          : tf.tensor2d(Float32Array.from(inputs.flatMap(i => [...i.row])), [inputs.length, width])
        return tf.softmax(forward(config, params, batch)).arraySync() as number[][]
      })
      const predictions = inputs.map((input, i) => ({
        input: input.name,
        top: probabilities[i]
          .map((p, label) => classNames === undefined ? { label, probability: p } : { label, name: classNames[label], probability: p })
          .sort((a, b) => b.probability - a.probability).slice(0, top)
      }))
      printResult(format, predictions, predictions.map(p => `${p.input}: ${p.top.map(t => `${'name' in t ? t.name : t.label} (${percent(t.probability)})`).join(', ')}`))
    } finally {
      tf.dispose(Object.values(params))
    }
  }
}
