/** ligo.privateHead: each participant's classifier trains with Global-LiGO, stays on the participant and survives a restart. */
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tf from '../node/tf.js'
import { validateVitConfig } from '../node/model/config.js'
import { CLASSIFIER_PARAMS, initParams } from '../node/model/vit.js'
import { splitTrainTest } from '../node/data/dataset.js'
import { Participant, planFor } from '../node/federation/participant.js'
import { simulationManifest } from '../node/simulation/index.js'
import { PRESETS } from '../node/simulation/presets.js'
import { federationId, validateManifest } from '../protocol/manifest.js'
import { toyDataset, useBackend } from './helpers.js'
import { tinyManifest } from './fixtures.js'
import type { TensorMap } from '../protocol/safetensors.js'
import type { NamedTensors } from '../node/model/vit.js'

const small = validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 4, dim: 8, layers: 1, heads: 2, mlpRatio: 1 })
const data = splitTrainTest(toyDataset(96, 4), 0.25, 3)
const manifest = validateManifest({ ...tinyManifest(), ligo: { init: 'ligo', seed: 7, privateHead: true } })
const plain = validateManifest(tinyManifest())
const silent = (): void => {}

function participant (stateDir: string, m = manifest): Participant {
  const p = new Participant({ manifest: m, plan: planFor(m, small), small: initParams(small, 1), data, seed: 'peer-0' })
  p.prepare(stateDir, silent)
  return p
}

const freshDir = (): string => mkdtempSync(join(tmpdir(), 'fedgrow-head-'))
const values = (map: TensorMap): number[][] => Object.keys(map).sort().map(name => Array.from(map[name].data))
const classifier = (model: NamedTensors): number[][] => CLASSIFIER_PARAMS.map(name => Array.from(model[name].dataSync()))

describe('a private head (ligo.privateHead)', () => {
  before(async () => { await useBackend('wasm') })

  it('is written only when true and only for fedgrow, so other manifests keep their id', () => {
    const off = validateManifest({ ...tinyManifest(), ligo: { init: 'ligo', seed: 7, privateHead: false } })
    assert.equal(federationId(off), federationId(plain))
    assert.notEqual(federationId(manifest), federationId(plain))
    assert.throws(() => validateManifest({ ...tinyManifest(), method: 'fedavg', ligo: { init: 'ligo', seed: 7, privateHead: true } }), { name: 'InvalidManifestError', message: /ligo\.privateHead.*only the fedgrow method grows \(this manifest's method is fedavg\); remove it/ })
    assert.throws(() => validateManifest({ ...tinyManifest(), ligo: { init: 'ligo', seed: 7, privateHead: 'yes' } }), { message: /ligo\.privateHead.*must be true or false/ })
  })

  it('simulations give it to the Dual-LiGO methods that ask, and to no model-sharing baseline', () => {
    const options = { peers: 2, rounds: 1, preset: PRESETS.tiny, alpha: 100, methods: [], seed: 0, outDir: '', log: () => {}, privateHead: true }
    const task = { imageSize: 8, channels: 1, numClasses: 4, patchSize: 4 }
    const heads = (['fedgrow', 'independent', 'fedavg', 'local', 'authors-code'] as const).map(m => simulationManifest(options, m, task).ligo.privateHead)
    assert.deepEqual(heads, [true, true, undefined, undefined, undefined])
    assert.equal(simulationManifest({ ...options, privateHead: false }, 'fedgrow', task).ligo.privateHead, undefined)
  })

  it('trains beside Global-LiGO and never enters the update', () => {
    const dir = freshDir()
    const p = participant(dir)
    const global = p.initial()
    const grownBefore = p.target(global)
    const before = tf.memory().numTensors
    const update = p.trainRound(global, 1)
    assert.deepEqual(Object.keys(update.tensors).sort(), p.spec.map(s => s.name), 'the update is Global-LiGO, nothing else')
    assert.equal(tf.memory().numTensors, before + CLASSIFIER_PARAMS.length, 'a round keeps only the new head')
    assert.deepEqual(readdirSync(dir).filter(f => f.startsWith('private-head-')), ['private-head-1.safetensors'])
    const withHead = p.target(update.tensors)
    assert.notDeepEqual(classifier(withHead), classifier(grownBefore), 'the head trained')
    const other = participant(freshDir(), plain)
    const grownPlainly = other.target(update.tensors)
    assert.deepEqual(Object.keys(withHead).sort(), Object.keys(grownPlainly).sort())
    assert.deepEqual(Array.from(withHead['lnf.g'].dataSync()), Array.from(grownPlainly['lnf.g'].dataSync()), 'the rest is grown from Global-LiGO')
    assert.notDeepEqual(classifier(withHead), classifier(grownPlainly), 'the head is the participant\'s, not the grown one')
    tf.dispose([...Object.values(withHead), ...Object.values(grownBefore), ...Object.values(grownPlainly)])
    other.dispose()
    p.dispose()
  })

  it('a restarted participant trains a round exactly as one that never stopped, and keeps two heads on disk', () => {
    const steady = participant(freshDir())
    const globals: TensorMap[] = [steady.initial()]
    for (let round = 1; round <= 3; round++) globals.push(steady.trainRound(globals[round - 1], round).tensors)

    const dir = freshDir()
    const first = participant(dir)
    first.trainRound(globals[0], 1)
    first.trainRound(globals[1], 2)
    first.trainRound(globals[2], 3) // trained, then a crash before round 3 closed
    first.dispose()
    assert.deepEqual(readdirSync(dir).filter(f => f.startsWith('private-head-')).sort(), ['private-head-2.safetensors', 'private-head-3.safetensors'])

    const restarted = participant(dir)
    assert.deepEqual(values(restarted.trainRound(globals[2], 3).tensors), values(globals[3]), 'round 3 again starts from round 2\'s head')
    const a = steady.target(globals[3])
    const b = restarted.target(globals[3])
    assert.deepEqual(classifier(b), classifier(a))
    tf.dispose([...Object.values(a), ...Object.values(b)])
    steady.dispose()
    restarted.dispose()
  })
})
