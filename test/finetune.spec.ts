/** Phase 4: a participant fine-tunes its own grown model, keeping the last step or the best held-out check. */
import assert from 'node:assert/strict'
import * as tf from '../node/tf.js'
import { validateVitConfig } from '../node/model/config.js'
import { initParams } from '../node/model/vit.js'
import { splitTrainTest } from '../node/data/dataset.js'
import { evaluate, stepsForEpochs } from '../node/train/trainer.js'
import { finetune, predictWith } from '../node/train/pretrain.js'
import { finetuneLocally, finetunePullStrength, finetuneStepsFor, heldOutSplit, keptCheck } from '../node/federation/learner.js'
import { simulationManifest } from '../node/simulation/index.js'
import { PRESETS } from '../node/simulation/presets.js'
import { validateManifest } from '../protocol/manifest.js'
import { toyDataset, useBackend } from './helpers.js'
import { tinyManifest } from './fixtures.js'
import type { Manifest } from '../protocol/manifest.js'
import type { NamedTensors } from '../node/model/vit.js'

const config = validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 4, dim: 16, layers: 1, heads: 2, mlpRatio: 1 })
const data = splitTrainTest(toyDataset(160, 4), 0.25, 4)
const SEED = 'peer-0'

const copy = (params: NamedTensors): NamedTensors => tf.tidy(() => Object.fromEntries(Object.entries(params).map(([name, t]) => [name, tf.clone(t)])))
const values = (params: NamedTensors): number[][] => Object.values(params).map(t => Array.from(t.dataSync()))
const heldOutAccuracy = (params: NamedTensors): number => evaluate(predictWith(config, params), heldOutSplit(data.train, SEED).test).accuracy
const manifest = (schedule: Partial<Manifest['schedule']>): Manifest => validateManifest(tinyManifest({ finetuneSteps: 40, ...schedule }))

describe('phase 4 (fine-tuning the grown model)', () => {
  before(async () => { await useBackend('wasm') })

  it('a pull keeps the fine-tuned weights nearer the grown ones, the stronger the nearer', () => {
    const grown = finetune(config, initParams(config, 1), data.train, { steps: 60, batchSize: 16, seed: 1, learningRate: 1e-2 }).params
    const before = tf.memory().numTensors
    const distance = (params: NamedTensors): number => Object.keys(grown).reduce((sum, name) => sum + tf.tidy(() => tf.sum(tf.squaredDifference(params[name], grown[name])).dataSync()[0]), 0)
    const distances = [0, 1, 100].map(pull => {
      const tuned = finetuneLocally(manifest({ learningRate: 0.008, finetunePull: pull }), config, copy(grown), data, SEED)
      const d = distance(tuned.params)
      tf.dispose(Object.values(tuned.params))
      return d
    })
    assert.ok(distances[0] > distances[1] && distances[1] > distances[2] && distances[2] > 0, `squared distances from the grown weights: ${distances.join(', ')}`)
    assert.equal(tf.memory().numTensors, before, 'fine-tuning leaves no tensors behind')
    tf.dispose(Object.values(grown))
  })

  it('a pull per row is the plain pull divided by the participant\'s training rows', () => {
    assert.equal(finetunePullStrength({ finetunePull: 10 }, 345), 10)
    assert.equal(finetunePullStrength({ finetunePull: 1000, finetunePullPerRow: true }, 500), 2)
    assert.equal(finetunePullStrength({}, 500), 0)
    const grown = finetune(config, initParams(config, 1), data.train, { steps: 20, batchSize: 16, seed: 1, learningRate: 1e-2 }).params
    const [plain, perRow] = [{ finetunePull: 3 }, { finetunePull: 3 * data.train.count, finetunePullPerRow: true as const }].map(pull => {
      const tuned = finetuneLocally(manifest({ learningRate: 0.008, ...pull }), config, copy(grown), data, SEED)
      const out = values(tuned.params)
      tf.dispose(Object.values(tuned.params))
      return out
    })
    assert.deepEqual(perRow, plain, 'lambda 3 written per row trains exactly as lambda 3')
    tf.dispose(Object.values(grown))
  })

  it('a budget in epochs is that many passes over the participant\'s training rows, at its batch size', () => {
    assert.equal(finetuneStepsFor({ finetuneSteps: 200, batchSize: 64 }, 345), 200)
    assert.equal(finetuneStepsFor({ finetuneEpochs: 12, batchSize: 64 }, 345), 60, '5 whole batches of 64 in 345 rows, 12 times')
    assert.equal(finetuneStepsFor({ finetuneEpochs: 12, batchSize: 64 }, 2000), 372)
    assert.equal(finetuneStepsFor({ batchSize: 64 }, 2000), 0)
    const grown = finetune(config, initParams(config, 1), data.train, { steps: 20, batchSize: 16, seed: 1, learningRate: 1e-2 }).params
    const batchSize = 16
    const heldOutRows = heldOutSplit(data.train, SEED).train.count
    const run = (budget: Partial<Manifest['schedule']>): { weights: number[][], steps: number } => {
      let steps = 0
      const tuned = finetuneLocally(validateManifest(tinyManifest({ learningRate: 0.008, batchSize, ...budget })), config, copy(grown), data, SEED, e => { steps = e.total })
      const weights = values(tuned.params)
      tf.dispose(Object.values(tuned.params))
      return { weights, steps }
    }
    const inEpochs = run({ finetuneEpochs: 3 })
    assert.equal(inEpochs.steps, stepsForEpochs(data.train.count, 3, batchSize))
    assert.deepEqual(inEpochs.weights, run({ finetuneSteps: inEpochs.steps }).weights, '3 epochs train exactly as their steps')
    assert.notDeepEqual(inEpochs.weights, values(grown))
    assert.notEqual(stepsForEpochs(heldOutRows, 3, batchSize), inEpochs.steps)
    assert.equal(run({ finetuneEpochs: 3, finetuneSelect: 'best-held-out' }).steps, stepsForEpochs(heldOutRows, 3, batchSize), 'best-held-out counts the rows it fine-tunes on, not those it holds out')
    tf.dispose(Object.values(grown))
  })

  it('keeps the best check, the earliest on ties, and the start unless a check beats it', () => {
    assert.equal(keptCheck([{ step: 0, accuracy: 0.5 }, { step: 20, accuracy: 0.7 }, { step: 40, accuracy: 0.7 }, { step: 60, accuracy: 0.6 }]).step, 20)
    assert.equal(keptCheck([{ step: 0, accuracy: 0.5 }, { step: 20, accuracy: 0.5 }, { step: 40, accuracy: 0.4 }]).step, 0)
    assert.equal(keptCheck([{ step: 0, accuracy: 0.2 }, { step: 20, accuracy: 0.3 }, { step: 33, accuracy: 0.9 }]).step, 33)
  })

  it('best-held-out keeps the unchanged model when fine-tuning destroys it, where last does not', () => {
    const grown = finetune(config, initParams(config, 1), data.train, { steps: 60, batchSize: 16, seed: 1, learningRate: 1e-2 }).params
    const before = tf.memory().numTensors
    // At the manifest's highest rate (1, so 0.5 in phase 4) fine-tuning wrecks a model that was right.
    const destroy = { learningRate: 1, weightDecay: 0 }
    const last = finetuneLocally(manifest(destroy), config, copy(grown), data, SEED)
    const best = finetuneLocally(manifest({ ...destroy, finetuneSelect: 'best-held-out' }), config, copy(grown), data, SEED)
    assert.equal(best.finetuneKeptStep, 0)
    assert.equal(best.finetunedScore, undefined, 'the model is unchanged: the caller scores it as grown')
    assert.deepEqual(values(best.params), values(grown))
    assert.notDeepEqual(values(last.params), values(grown))
    assert.ok(heldOutAccuracy(last.params) < heldOutAccuracy(grown), `last: ${heldOutAccuracy(last.params)} against ${heldOutAccuracy(grown)} as grown`)
    tf.dispose([...Object.values(last.params), ...Object.values(best.params)])
    assert.equal(tf.memory().numTensors, before, 'fine-tuning leaves no tensors behind')
    tf.dispose(Object.values(grown))
  })

  it('best-held-out keeps a fine-tuned check that beats the unchanged model on the held-out rows', () => {
    const start = initParams(config, 2)
    const before = tf.memory().numTensors
    const best = finetuneLocally(manifest({ learningRate: 0.008, finetuneSteps: 80, finetuneSelect: 'best-held-out' }), config, copy(start), data, SEED)
    assert.ok(best.finetuneKeptStep !== undefined && best.finetuneKeptStep > 0, `kept step ${best.finetuneKeptStep}`)
    assert.ok(heldOutAccuracy(best.params) > heldOutAccuracy(start), `held out: ${heldOutAccuracy(best.params)} against ${heldOutAccuracy(start)} unchanged`)
    assert.deepEqual(best.finetunedScore, evaluate(predictWith(config, best.params), data.test), 'scored on the test split')
    tf.dispose(Object.values(best.params))
    assert.equal(tf.memory().numTensors, before, 'fine-tuning leaves no tensors behind')
    tf.dispose(Object.values(start))
  })

  it('simulations write the rule into the manifest they build', () => {
    const options = { peers: 2, rounds: 1, preset: PRESETS.tiny, alpha: 100, methods: [], seed: 0, outDir: '', log: () => {} }
    const task = { imageSize: 8, channels: 1, numClasses: 4, patchSize: 4 }
    assert.equal(simulationManifest({ ...options, finetuneSelect: 'best-held-out' }, 'fedgrow', task).schedule.finetuneSelect, 'best-held-out')
    assert.deepEqual(simulationManifest({ ...options, finetuneSelect: 'last' }, 'fedgrow', task), simulationManifest(options, 'fedgrow', task))
    const inEpochs = simulationManifest({ ...options, preset: { ...PRESETS.tiny, finetune: { finetuneEpochs: 12 } }, finetunePull: 10 }, 'fedgrow', task).schedule
    assert.deepEqual([inEpochs.finetuneEpochs, inEpochs.finetuneSteps, inEpochs.finetunePull], [12, undefined, 10], 'a preset\'s budget in epochs, and a pull on it')
  })
})
