import { loadModel } from '../../node/model/model-file.js'
import { toTensorMap } from '../../node/storage/files.js'
import { exportModel, EXPORT_FORMATS } from '../../node/export/index.js'
import * as tf from '../../node/tf.js'
import { choiceFlag, stringFlag } from '../args.js'
import type { Command } from '../args.js'

export const exportCommand: Command = {
  name: 'export',
  summary: 'Write a model (e.g. a grown target.fgm) as ONNX, or as safetensors with a JSON config.',
  details: [
    'onnx: DIR/model.onnx, ONNX IR 8, opset 17, standard operators only: input "images" [batch, pixels]',
    'float32 in [0, 1] (row-major, channels last), or for a text model "input_ids" [batch, seqLen] int64',
    '(the tokenizer\'s ids), output "logits" [batch, classes]. ONNX Runtime runs it.',
    'safetensors: DIR/model.safetensors (F32, the .fgm parameter names) and DIR/config.json (shapes, layout',
    'and the exact operations, so other code can run the weights; for a text model, the tokenizer\'s exact',
    'rule, seed, vocabulary size, length and pad id, so other code can make the inputs from raw text).'
  ].join('\n'),
  flags: {
    model: { type: 'string', value: 'FILE', help: 'a .fgm model file' },
    to: { type: 'string', value: 'DIR', help: 'folder to write into (created if missing)' },
    format: { type: 'string', value: 'NAME', help: `what to write: ${EXPORT_FORMATS.join(' or ')}`, default: 'onnx' }
  },
  async run (flags) {
    const path = stringFlag(flags, 'model')
    const { config, params, info } = loadModel(path)
    const tensors = toTensorMap(params)
    tf.dispose(Object.values(params))
    const files = exportModel(config, tensors, stringFlag(flags, 'to'), choiceFlag(flags, 'format', EXPORT_FORMATS), { source: path, ...info })
    process.stdout.write(files.map(f => `wrote ${f}\n`).join(''))
  }
}
