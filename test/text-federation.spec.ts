/**
 * Federation on text (issue 15, phase 2): a text manifest names the tokenizer every peer uses, its plan
 * grows text models, and a participant runs Dual-LiGO on tokenized texts. Tiny shapes, in-process.
 */
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tf from '../node/tf.js'
import { federationId, validateManifest } from '../protocol/manifest.js'
import { isTextConfig, validateTextConfig, validateVitConfig } from '../node/model/config.js'
import { initParams } from '../node/model/vit.js'
import { textDataset } from '../node/data/text.js'
import { splitTrainTest } from '../node/data/index.js'
import { Participant, planFor } from '../node/federation/participant.js'
import { simulationManifest, smallConfigs, taskShapeOf } from '../node/simulation/index.js'
import { PRESETS } from '../node/simulation/presets.js'
import { tinyManifest } from './fixtures.js'
import { useBackend } from './helpers.js'
import type { Manifest } from '../protocol/manifest.js'

const tokenizer = { kind: 'hashed-words', vocabSize: 32, seqLen: 6, seed: 3 } as const

function textManifest (): Manifest {
  const { task: _image, ...rest } = tinyManifest()
  return validateManifest({ ...rest, task: { kind: 'text-classification', data: 'toy-text', partition: 'iid', numClasses: 2, heads: 2, tokenizer } })
}

const small = validateTextConfig({ tokenizer, classNames: ['ham', 'spam'], numClasses: 2, dim: 8, layers: 1, heads: 2, mlpRatio: 1 })

/** 48 short texts whose label is whether they mention money. */
function toyTexts (): ReturnType<typeof textDataset> {
  const rows = Array.from({ length: 48 }, (_, i) => i % 2 === 0
    ? { text: `win cash prize ${i} now free money`, label: 'spam', where: `toy:${i}` }
    : { text: `meeting notes ${i} for the team`, label: 'ham', where: `toy:${i}` })
  return textDataset('toy-text', rows, tokenizer, { classNames: ['ham', 'spam'], labels: Uint8Array.from(rows, r => r.label === 'spam' ? 1 : 0) })
}

describe('federation on text', () => {
  before(async () => { await useBackend('wasm') })

  it('validates a text manifest field by field, and leaves image manifests as they were', () => {
    const m = textManifest()
    assert.deepEqual(m.task, { kind: 'text-classification', data: 'toy-text', partition: 'iid', numClasses: 2, heads: 2, tokenizer })
    assert.match(federationId(m), /^[0-9a-f]{64}$/)
    assert.notEqual(federationId(m), federationId(validateManifest({ ...m, task: { ...m.task, tokenizer: { ...tokenizer, seed: 4 } } })))
    const bad = (task: unknown): unknown => ({ ...m, task })
    assert.throws(() => validateManifest(bad({ ...m.task, imageSize: 28 })), { name: 'InvalidManifestError', message: /task.imageSize .*is not a known field/ })
    assert.throws(() => validateManifest(bad({ ...m.task, tokenizer: { ...tokenizer, vocabSize: 2 } })), { name: 'InvalidManifestError', message: /task.tokenizer.vocabSize = 2: must be a whole number from 3/ })
    assert.throws(() => validateManifest(bad({ ...m.task, tokenizer: { ...tokenizer, kind: 'bytes' } })), { name: 'InvalidManifestError', message: /task.tokenizer.kind = "bytes": must be one of hashed-words/ })
    const image = tinyManifest()
    assert.deepEqual(validateManifest(image).task, image.task)
  })

  it('plans Dual-LiGO for a text model, and refuses a model of another task', () => {
    const plan = planFor(textManifest(), small)
    assert.ok(isTextConfig(plan.intermediate) && isTextConfig(plan.target))
    assert.deepEqual([plan.intermediate.tokenizer, plan.target.tokenizer], [tokenizer, tokenizer])
    assert.deepEqual([plan.target.dim, plan.target.layers, plan.target.classNames], [16, 3, ['ham', 'spam']])
    const otherSeed = validateTextConfig({ ...small, tokenizer: { ...tokenizer, seed: 9 } })
    assert.throws(() => planFor(textManifest(), otherSeed), { name: 'InvalidConfigError', message: /the small model tokenizes with .*"seed":9.*, the federation's task with .*"seed":3/ })
    assert.throws(() => planFor(textManifest(), validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 2, dim: 8, layers: 1, heads: 2, mlpRatio: 1 })), { name: 'InvalidConfigError', message: /the small model is an image model, the federation's task a text model/ })
  })

  it('simulations derive text manifests and small models from the data, and a participant grows and trains on texts', () => {
    const data = splitTrainTest(toyTexts(), 0.25, 0)
    const task = taskShapeOf(data)
    const [config] = smallConfigs(PRESETS.text, 1, 0, task)
    assert.ok(isTextConfig(config))
    assert.deepEqual(config.tokenizer, tokenizer)
    const simulated = simulationManifest({ peers: 2, rounds: 1, preset: PRESETS.text, alpha: 100, methods: ['fedgrow'], seed: 0, outDir: mkdtempSync(join(tmpdir(), 'fedgrow-text-fed-')), data: 'toy-text', log: () => {} }, 'fedgrow', task)
    assert.equal(simulated.task.kind, 'text-classification')
    assert.deepEqual(planFor(simulated, config).small, config)

    const manifest = textManifest()
    const tensorsBefore = tf.memory().numTensors
    const participant = new Participant({ manifest, plan: planFor(manifest, small), small: initParams(small, 1), data, seed: 'peer-0' })
    try {
      participant.trainIntermediate()
      const start = participant.initial()
      const update = participant.trainRound(start, 1)
      assert.ok(Number.isFinite(update.loss))
      assert.ok(update.tensors.E.data.some((v, i) => v !== start.E.data[i]), 'round 1 must train Global-LiGO')
      const evaluation = participant.evaluate(update.tensors)
      assert.equal(evaluation.count, data.test.count)
    } finally {
      participant.dispose()
    }
    assert.equal(tf.memory().numTensors, tensorsBefore, 'a participant leaves no tensors behind')
  })
})
