/** Training a ViT from scratch: how a participant gets its small model, and the from-scratch baseline. */
import * as tf from '../tf.js'
import { crossEntropy, forward, initParams } from '../model/vit.js'
import { VariableSet } from './variables.js'
import { train } from './trainer.js'
import type { Dataset } from '../data/dataset.js'
import type { VitConfig } from '../model/config.js'
import type { NamedTensors } from '../model/vit.js'
import type { Predict, TrainOptions, TrainReport } from './trainer.js'

export function predictWith (config: VitConfig, params: NamedTensors): Predict {
  return (images) => forward(config, params, images)
}

/** Trains fresh parameters (seeded by options.seed) on `data`; the returned params belong to the caller. */
export function pretrain (config: VitConfig, data: Dataset, options: TrainOptions): { params: NamedTensors, report: TrainReport } {
  const init = initParams(config, options.seed)
  const vars = new VariableSet(init)
  tf.dispose(Object.values(init))
  try {
    const report = train(vars, (images, labels) => crossEntropy(forward(config, vars.tensors, images), labels), data, options)
    return { params: vars.snapshot(), report }
  } finally {
    vars.dispose()
  }
}
