import assert from 'node:assert/strict'
import * as tf from '../node/tf.js'
import { validateVitConfig } from '../node/model/config.js'
import { crossEntropy, forward, initParams } from '../node/model/vit.js'
import { VariableSet } from '../node/train/variables.js'
import { AdamW } from '../node/train/adamw.js'
import { evaluate, learningRateAt, train } from '../node/train/trainer.js'
import { pretrain, predictWith, trainUntilFlat } from '../node/train/pretrain.js'
import { toyDataset, useBackend } from './helpers.js'

const config = validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 4, dim: 16, layers: 1, heads: 2, mlpRatio: 1 })

describe('training', () => {
  before(async () => { await useBackend('wasm') })

  it('does not grow the tensor count across steps', () => {
    const init = initParams(config, 0)
    const vars = new VariableSet(init)
    tf.dispose(Object.values(init))
    const data = toyDataset(64, 1)
    const lossOf = (x: tf.Tensor2D, y: tf.Tensor1D): tf.Scalar => crossEntropy(forward(config, vars.tensors, x), y)
    train(vars, lossOf, data, { steps: 2, batchSize: 16, seed: 0 })
    const before = tf.memory().numTensors
    train(vars, lossOf, data, { steps: 5, batchSize: 16, seed: 1 })
    assert.equal(tf.memory().numTensors, before)
    vars.dispose()
  })

  it('learns a learnable task, and the same seed gives the same result', () => {
    const data = toyDataset(256, 2)
    const runs = [0, 1].map(() => {
      const { params, report } = pretrain(config, data, { steps: 60, batchSize: 32, seed: 3, learningRate: 3e-3 })
      const result = evaluate(predictWith(config, params), toyDataset(64, 9))
      tf.dispose(Object.values(params))
      return { report, result }
    })
    assert.ok(runs[0].report.finalLoss < runs[0].report.losses[0] / 2, `loss ${runs[0].report.losses[0]} -> ${runs[0].report.finalLoss}`)
    assert.ok(runs[0].result.accuracy > 0.9, `accuracy ${runs[0].result.accuracy}`)
    assert.deepEqual(runs[0].report.losses, runs[1].report.losses)
  })

  it('trains until validation accuracy stops rising, and keeps the best parameters', () => {
    const data = toyDataset(256, 2)
    const validation = toyDataset(64, 9)
    const init = initParams(config, 3)
    const before = tf.memory().numTensors
    const flat = trainUntilFlat(config, init, data, { steps: 400, batchSize: 32, seed: 3, learningRate: 3e-3, schedule: 'constant' }, { validation, everySteps: 8, patience: 3 })
    const checks = flat.history.map(h => h.accuracy)
    assert.ok(flat.history.length < 400 / 8, `stopped early: ${flat.history.length} checks`)
    assert.equal(flat.best.accuracy, Math.max(...checks))
    assert.ok(checks.slice(-3).every(a => a <= flat.best.accuracy), 'the last checks did not beat the best')
    assert.equal(flat.history.at(-1)!.step - flat.best.step, 3 * 8, 'it stopped patience checks after the best')
    assert.equal(evaluate(predictWith(config, flat.params), validation).accuracy, flat.best.accuracy, 'the returned parameters are the best ones')
    tf.dispose(Object.values(flat.params))
    assert.equal(tf.memory().numTensors, before, 'snapshots of earlier bests are freed')
    tf.dispose(Object.values(init))
  })

  it('stops with a clear error when the loss diverges', () => {
    const init = initParams(config, 0)
    const vars = new VariableSet(init)
    tf.dispose(Object.values(init))
    assert.throws(() => train(vars, (x, y) => tf.mul(crossEntropy(forward(config, vars.tensors, x), y), NaN), toyDataset(16, 1), { steps: 3, batchSize: 8, seed: 0 }), { name: 'TrainingDivergedError', message: /loss became NaN at step 1/ })
    vars.dispose()
  })

  it('pulls a weight toward its anchor by learning rate x rate a step, outside Adam, with no gradient', () => {
    const start = tf.tensor1d([1, -2])
    const vars = new VariableSet({ w: start })
    start.dispose()
    const toward = { w: tf.tensor1d([0, 0]) }
    const optimizer = new AdamW(vars, { learningRate: 0.1, weightDecay: 0, anchor: { toward, rate: 2 } })
    const noGradient = { w: tf.zeros([2]) }
    optimizer.apply(noGradient)
    // Each step keeps 1 - 0.1 x 2 = 0.8 of the distance; Adam's step is 0 without a gradient.
    const [a, b] = vars.tensors.w.dataSync()
    assert.ok(Math.abs(a - 0.8) < 1e-6 && Math.abs(b + 1.6) < 1e-6, `${a}, ${b}`)
    optimizer.dispose()
    vars.dispose()
    tf.dispose([toward.w, noGradient.w])
  })

  it('warms the learning rate up, then decays it by cosine to a tenth', () => {
    assert.equal(learningRateAt('cosine', 1, 1, 100), 0.2)
    assert.equal(learningRateAt('cosine', 1, 5, 100), 1)
    assert.ok(Math.abs(learningRateAt('cosine', 1, 100, 100) - 0.1) < 1e-12)
    assert.equal(learningRateAt('constant', 0.5, 77, 100), 0.5)
  })

  it('evaluates accuracy and loss exactly on a known predictor', () => {
    const data = toyDataset(8, 4)
    // A predictor that always says class 0: right on the 2 of 8 rows labelled 0, uniform loss ln(4) nowhere.
    const result = evaluate((x) => tf.tidy(() => tf.concat([tf.ones([x.shape[0], 1]), tf.zeros([x.shape[0], 3])], 1)) as tf.Tensor2D, data, 3)
    assert.equal(result.accuracy, 0.25)
    const pRight = Math.E / (Math.E + 3)
    const expected = -(2 * Math.log(pRight) + 6 * Math.log((1 - pRight) / 3)) / 8
    assert.ok(Math.abs(result.loss - expected) < 1e-5, `${result.loss} vs ${expected}`)
  })
})
