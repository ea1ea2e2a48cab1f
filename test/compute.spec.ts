/** Compute workers: a peer's Learner in a worker thread, and what a dead or closed worker does to its jobs. */
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startComputePool } from '../node/compute/pool.js'
import { splitTrainTest } from '../node/data/dataset.js'
import { validateVitConfig } from '../node/model/config.js'
import { validateManifest } from '../protocol/manifest.js'
import { readModelFile } from '../node/model/model-file.js'
import { INTERMEDIATE_PREFIX } from '../node/federation/participant.js'
import { OFF_THREAD_MIN_VALUES, offThread, sharedFloat32, strategyFor } from '../node/federation/strategy.js'
import { globalDigest } from '../protocol/payload.js'
import type { RemoteAggregate } from '../node/federation/strategy.js'
import type { Float32Allocator } from '../protocol/safetensors.js'
import { modelData, toyDataset, useBackend } from './helpers.js'
import { tinyManifest } from './fixtures.js'
import type { LearnerSpec } from '../node/compute/messages.js'
import type { Manifest } from '../protocol/manifest.js'

describe('compute workers', function () {
  this.timeout(60_000)
  // The test builds its inputs with tfjs on this thread.
  before(async () => { await useBackend('wasm') })
  const small = validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 4, heads: 2, mlpRatio: 1, dim: 8, layers: 1 })
  const spec = (manifest = tinyManifest()): LearnerSpec => ({ manifest, small: modelData(small, 1), data: splitTrainTest(toyDataset(64, 7), 0.25, 7), seed: 'peer-a' })

  it('trains a round in a worker, with progress, and the same update on a second worker', async () => {
    const pool = await startComputePool({ workers: 2, backend: 'wasm' })
    try {
      const progress: string[] = []
      const updates = []
      for (const worker of [0, 1]) {
        const learner = await pool.createLearner(spec(), { onProgress: (e) => { progress.push(e.phase) } }, worker)
        assert.equal(learner.worker, worker)
        await learner.prepare(mkdtempSync(join(tmpdir(), 'fedgrow-compute-')))
        updates.push(await learner.trainRound(await learner.initial(), 1))
        await learner.close()
      }
      assert.deepEqual(updates[1], updates[0], 'a job\'s result does not depend on the worker that ran it')
      assert.ok(updates[0].loss > 0 && updates[0].sampleCount === 48)
      assert.ok(progress.includes('round 1'), progress.join())
      assert.equal(pool.tensorsAlive(), 0, 'closed learners leave no tensors behind')
    } finally {
      await pool.close()
    }
  })

  it('aggregates a large round in a worker, bit-identical with this thread, from updates in shared and in ordinary memory', async () => {
    const pool = await startComputePool({ workers: 1, backend: 'wasm' })
    try {
      const values = (seed: number, allocate: Float32Allocator = (n) => new Float32Array(n)): Float32Array => {
        const out = allocate(1000)
        for (let i = 0; i < out.length; i++) out[i] = Math.sin(seed * 7.1 + i * 0.37) * (i % 3 === 0 ? -0 : 1)
        return out
      }
      // As the engine holds a round: peers' updates decoded into shared memory, its own in ordinary memory.
      const contributions = [1, 2, 3, 4, 5].map(k => ({ from: `peer${k}`, sampleCount: 10 * k, tensors: { w: { shape: [10, 100], data: values(k, k === 5 ? undefined : sharedFloat32) } } }))
      const current = { w: { shape: [10, 100], data: values(0) } }
      const sent: number[] = []
      const remote: RemoteAggregate = async (aggregation, c, cur) => {
        sent.push(c.length)
        return await pool.aggregate(aggregation, c, cur)
      }
      for (const rule of ['mean', 'median', 'trimmed-mean', 'centered-clip'] as const) {
        const here = strategyFor({ rule }).aggregate(contributions, current)
        const there = await offThread({ rule }, remote, 1).aggregate(contributions, current)
        assert.equal(globalDigest(there!), globalDigest(here!), rule)
        assert.equal(await offThread({ rule }, remote, 1).aggregate([], current), null, 'nothing arrived: keep the current Global-LiGO')
      }
      assert.deepEqual(sent, [5, 5, 5, 5], 'each non-empty round went to the worker')
      const below = await offThread({ rule: 'mean' }, remote).aggregate(contributions, current)
      assert.equal(sent.length, 4, `a round of ${5 * 1000} values, below ${OFF_THREAD_MIN_VALUES}, stays on this thread`)
      assert.equal(globalDigest(below!), globalDigest(strategyFor({ rule: 'mean' }).aggregate(contributions, current)!))
    } finally {
      await pool.close()
    }
  })

  it('fine-tunes the final model when the manifest asks, saving it with its own score (phase 4)', async () => {
    const pool = await startComputePool({ workers: 1, backend: 'wasm' })
    try {
      const saved = []
      const schedules: Array<Partial<Manifest['schedule']>> = [{}, { finetuneSteps: 6 }, { finetuneSteps: 6, finetuneSelect: 'best-held-out' }]
      for (const schedule of schedules) {
        const learner = await pool.createLearner(spec(validateManifest(tinyManifest(schedule))))
        const dir = mkdtempSync(join(tmpdir(), 'fedgrow-compute-'))
        await learner.prepare(dir)
        const global = await learner.initial()
        const grown = await learner.evaluate(global)
        const score = await learner.saveFinal(global, join(dir, 'target.fgm'), {}, grown)
        const file = readModelFile(join(dir, 'target.fgm'))
        assert.equal(file.info.testAccuracy, score.accuracy)
        saved.push({ grown, score, file })
        await learner.close()
      }
      const [plain, tuned, selected] = saved
      assert.ok(selected.score.finetuneKeptStep === 0 || selected.score.finetuneKeptStep === 6, `kept step ${selected.score.finetuneKeptStep}`)
      assert.equal(selected.file.info.finetuneKeptStep, selected.score.finetuneKeptStep, 'the model file says which check it is')
      assert.equal(selected.file.info.finetuned, selected.score.finetuneKeptStep === 6)
      assert.equal('finetuneKeptStep' in tuned.score, false, 'last keeps no check')
      assert.deepEqual(plain.score, plain.grown, 'without fine-tuning the known score of the grown model is kept')
      assert.equal(plain.file.info.finetuned, false)
      assert.equal(tuned.file.info.finetuned, true)
      assert.notDeepEqual(tuned.file.params['head.b'].data, plain.file.params['head.b'].data, 'fine-tuning changed the weights')
      assert.notEqual(tuned.score.loss, tuned.grown.loss, 'the fine-tuned model is scored anew')
      assert.equal(pool.tensorsAlive(), 0)
    } finally {
      await pool.close()
    }
  })

  it('authors-code shares the intermediate model beside Global-LiGO, starting round 1 from the peer\'s own', async () => {
    const pool = await startComputePool({ workers: 1, backend: 'wasm' })
    try {
      const learner = await pool.createLearner(spec(validateManifest({ ...tinyManifest(), method: 'authors-code' })))
      const dir = mkdtempSync(join(tmpdir(), 'fedgrow-compute-'))
      await learner.prepare(dir)
      const own = readModelFile(join(dir, 'intermediate.fgm')).params
      const shared = learner.spec.filter(t => t.name.startsWith(INTERMEDIATE_PREFIX)).map(t => t.name.slice(INTERMEDIATE_PREFIX.length))
      assert.deepEqual(shared.sort(), Object.keys(own).sort(), 'every intermediate parameter is shared')
      const initial = await learner.initial()
      const first = await learner.trainRound(initial, 1)
      const distance = (a: Float32Array, b: Float32Array): number => Math.sqrt(a.reduce((sum, v, i) => sum + (v - b[i]) ** 2, 0))
      const name = 'blocks.0.q.w'
      const fromOwn = distance(first.tensors[INTERMEDIATE_PREFIX + name].data, own[name].data)
      const fromInitial = distance(first.tensors[INTERMEDIATE_PREFIX + name].data, initial[INTERMEDIATE_PREFIX + name].data)
      assert.ok(fromOwn < fromInitial / 2, `round 1 trains the peer's own intermediate model (${fromOwn} from it, ${fromInitial} from the initial one)`)
      const second = await learner.trainRound(initial, 2)
      assert.ok(distance(second.tensors[INTERMEDIATE_PREFIX + name].data, initial[INTERMEDIATE_PREFIX + name].data) < fromInitial / 2, 'later rounds train the shared one they are given')
      await learner.close()
    } finally {
      await pool.close()
    }
  })

  it('brings a worker\'s typed error across with its name (exit codes depend on it)', async () => {
    const pool = await startComputePool({ backend: 'wasm' })
    try {
      const wrongHeads = validateManifest({ ...tinyManifest(), task: { ...tinyManifest().task, heads: 4 } })
      await assert.rejects(pool.createLearner(spec(wrongHeads)), { name: 'InvalidConfigError', message: /heads 2, the federation's task needs 4/ })
    } finally {
      await pool.close()
    }
  })

  it('fails the jobs of a worker that stops, and every later one, instead of hanging', async () => {
    const pool = await startComputePool({ backend: 'wasm' })
    const learner = await pool.createLearner(spec())
    const training = learner.trainRound(await learner.initial(), 1)
    await pool.close()
    await assert.rejects(training, { name: 'ComputeWorkerError', message: /compute worker 0/ })
    await assert.rejects(learner.evaluate({}), { name: 'ComputeWorkerError' }, 'a job given to a dead worker fails at once')
  })

  it('reports a worker that runs out of memory as a ComputeWorkerError', async () => {
    await assert.rejects(startComputePool({ backend: 'wasm', maxHeapMiB: 2 }), { name: 'ComputeWorkerError', message: /compute worker 0 ran out of memory/ })
  })
})
