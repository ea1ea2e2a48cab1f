import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli, toyDataset } from './helpers.js'
import { encodeIdx } from '../node/data/idx.js'
import { simulate } from '../node/simulation/index.js'
import { PUBLIC_FRACTION, splitPublic } from '../node/simulation/small-models.js'
import type { SimulationResult } from '../node/simulation/index.js'
import type { Preset } from '../node/simulation/presets.js'

describe('fedgrow simulate', function () {
  this.timeout(300_000)

  it('runs the tiny preset with every method and prints one JSON object with measured bytes', async () => {
    const out = mkdtempSync(join(tmpdir(), 'fedgrow-sim-'))
    const run = await runCli(['simulate', '--peers', '2', '--rounds', '1', '--preset', 'tiny', '--pretrain-epochs', '2', '--finetune-steps', '3', '--methods', 'fedgrow,fedavg,independent', '--seed', '3', '--format', 'json', '--out', out])
    assert.equal(run.code, 0, run.stderr)
    const result = JSON.parse(run.stdout)
    assert.deepEqual(result.config, { peers: 2, rounds: 1, preset: 'tiny', alpha: 100, seed: 3 })
    assert.deepEqual(result.methods.map((m: { name: string }) => m.name), ['fedgrow', 'fedavg', 'independent'])
    for (const m of result.methods) {
      assert.equal(m.accuracy.perPeer.length, 2)
      for (const a of [m.accuracy.mean, m.accuracy.min, ...m.accuracy.perPeer]) assert.ok(a >= 0 && a <= 1)
      assert.ok(m.accuracy.std >= 0)
      for (const key of ['targetParams', 'trainableParamsPerPeer', 'sharedParamsPerRound', 'bytesSentPerPeerPerRound', 'bytesReceivedPerPeerPerRound', 'wallSeconds']) assert.equal(typeof m[key], 'number', key)
    }
    const [fedgrow, fedavg, independent] = result.methods
    assert.ok(fedgrow.bytesSentPerPeerPerRound > 0 && fedgrow.bytesReceivedPerPeerPerRound > 0, 'fedgrow bytes are measured')
    assert.ok(fedavg.bytesSentPerPeerPerRound > fedgrow.bytesSentPerPeerPerRound, 'sharing the whole target costs more than sharing Global-LiGO')
    assert.equal(independent.bytesSentPerPeerPerRound, 0, 'independent peers send nothing')
    // The split by protocol accounts for every byte, and the payloads are what sharing costs most.
    const families = Object.entries(fedgrow.bytesByProtocolPerPeerPerRound as Record<string, { sent: number, received: number }>)
    assert.ok(Math.abs(families.reduce((sum, [, b]) => sum + b.sent, 0) - fedgrow.bytesSentPerPeerPerRound) < 1e-6, JSON.stringify(families))
    assert.equal(families[0][0], 'payload', 'families are listed the most sent first')
    assert.ok(Object.values(independent.bytesByProtocolPerPeerPerRound as Record<string, { sent: number }>).every(b => b.sent === 0))
    assert.ok(fedgrow.trainableParamsPerPeer < fedgrow.targetParams)
    assert.equal(fedavg.trainableParamsPerPeer, fedavg.targetParams)
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')), result)
    assert.match(run.stderr, /\[fedgrow\] round 1\/1: mean accuracy/)
  })
})

describe('simulate on a pool of compute workers', function () {
  this.timeout(300_000)

  /** Small enough for seconds per run; heterogeneous small models as in a real federation, fine-tuned from checkpoints so that Local-LiGO trains. */
  const micro: Preset = { name: 'micro', smallDims: [8, 12], smallLayers: [1, 2], heads: 2, mlpRatio: 1, intermediate: { dim: 16, layers: 2 }, target: { dim: 24, layers: 2 }, pretrainMaxEpochs: 1, localLigoSteps: 5, localSteps: 5, finetune: {}, learningRate: 2e-3, batchSize: 32, rounds: 2 }
  const run = async (workers: number): Promise<SimulationResult> => await simulate({ peers: 3, rounds: 2, preset: micro, alpha: 100, methods: ['fedgrow', 'fedavg', 'local', 'authors-code'], seed: 5, smallModels: 'public', outDir: mkdtempSync(join(tmpdir(), `fedgrow-workers${workers}-`)), workers, backend: 'wasm', log: () => {} })

  it('gives the same per-peer accuracies and final digests with 1 and with 2 workers, and per-round curves', async () => {
    const one = await run(1)
    const two = await run(2)
    assert.equal(one.compute.workers, 1)
    assert.equal(two.compute.workers, 2)
    for (const [i, method] of one.methods.entries()) {
      assert.deepEqual(two.methods[i].accuracy.perPeer, method.accuracy.perPeer, `${method.name}: accuracies`)
      assert.deepEqual(two.methods[i].finalDigests, method.finalDigests, `${method.name}: digests`)
      assert.equal(new Set(method.finalDigests).size, method.name === 'local' ? 3 : 1, `${method.name}: sharing peers end on one model, lone ones on their own`)
      assert.deepEqual(method.curve.map(p => p.round), [1, 2], `${method.name}: one curve point per round`)
      assert.ok(method.curve[1].trainFlopsPerPeer > method.curve[0].trainFlopsPerPeer && method.curve[0].trainFlopsPerPeer > 0)
      assert.ok(method.curve[1].bytesSentPerPeer >= method.curve[0].bytesSentPerPeer)
      assert.equal(method.curve[1].accuracy.mean, method.accuracy.mean, `${method.name}: the last point is the final accuracy`)
      if (method.name === 'local') assert.ok(method.curve[1].spread.mean > 0.01, `local peers stay apart: ${JSON.stringify(method.curve[1].spread)}`)
      else assert.deepEqual(method.curve[1].spread, { mean: 0, max: 0 }, `${method.name}: peers on one model are 0 apart`)
    }
    const [fedgrow, fedavg, local, authors] = one.methods
    assert.ok(authors.sharedParamsPerRound > fedgrow.sharedParamsPerRound, 'authors-code shares the intermediate model besides Global-LiGO')
    assert.ok(authors.curve[1].bytesSentPerPeer > fedgrow.curve[1].bytesSentPerPeer)
    assert.equal(local.curve[1].bytesSentPerPeer, 0, 'local peers send nothing')
    assert.equal(local.sharedParamsPerRound, 0)
    assert.equal(local.trainableParamsPerPeer, fedavg.trainableParamsPerPeer, 'local trains the whole target, as fedavg does')
    assert.ok(fedgrow.curve[0].trainFlopsPerPeer > fedavg.curve[0].trainFlopsPerPeer, 'Dual-LiGO spends Local-LiGO steps before round 1')
    assert.notEqual(one.methods[0].finalDigests[0], one.methods[1].finalDigests[0])
    for (const w of two.compute.perWorker) assert.ok(w.heapBytes > 0 && w.backendBytes > 0, JSON.stringify(two.compute))
  })

  it('runs the same on any MNIST-format folder (--data idx:DIR), taking its image size and classes, from own small models or a public checkpoint', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgrow-idx-'))
    const toy = toyDataset(1600, 4, 12, 3)
    writeFileSync(join(dir, 'train-images-idx3-ubyte'), encodeIdx([toy.count, 12, 12], Uint8Array.from(toy.images, v => Math.round(Math.min(1, v) * 255))))
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), encodeIdx([toy.count], toy.labels))
    for (const smallModels of ['own', 'checkpoint'] as const) {
      // The checkpoint run also takes a larger public slice, which its result records.
      const publicFraction = smallModels === 'checkpoint' ? 0.3 : undefined
      const result = await simulate({ peers: 2, rounds: 1, preset: { ...micro, pretrainMaxEpochs: 20 }, alpha: 100, methods: ['fedgrow'], seed: 1, data: `idx:${dir}`, smallModels, publicFraction, outDir: mkdtempSync(join(tmpdir(), 'fedgrow-idx-run-')), workers: 1, backend: 'wasm', log: () => {} })
      assert.equal(result.config.publicFraction, publicFraction)
      assert.deepEqual(result.smallModels.map(m => m.source), [smallModels, smallModels])
      for (const m of result.smallModels) assert.ok(m.testAccuracy > 1 / 3 && m.validationAccuracy > 0 && m.steps > 0, JSON.stringify(m))
      assert.ok(result.methods[0].accuracy.mean > 1 / 3, `better than chance on 3 classes: ${result.methods[0].accuracy.mean}`)
    }
  })
})

describe('the public slice', () => {
  it('holds the asked share of the training rows, apart from the rows the peers are dealt, and the default share otherwise', () => {
    const toy = toyDataset(1600, 4, 12, 3)
    const data = { train: toy, test: toy }
    for (const [fraction, expected] of [[undefined, PUBLIC_FRACTION], [0.375, 0.375]] as const) {
      const { publicRows, shared } = splitPublic(data, 0, fraction)
      assert.equal(publicRows.count, Math.round(1600 * expected), `public rows for fraction ${fraction}`)
      assert.equal(publicRows.count + shared.train.count, 1600)
    }
  })
})
