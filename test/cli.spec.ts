import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadShard, parsePartition, parseShard } from '../node/data/index.js'
import { readModelFile } from '../node/model/model-file.js'
import { DEFAULT_BATCH_SIZE } from '../node/train/trainer.js'
import { runCli } from './helpers.js'

describe('fedgrow CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedgrow-cli-'))

  it('describes every command and flag in --help', async () => {
    const main = await runCli(['--help'])
    assert.equal(main.code, 0)
    assert.match(main.stdout, /pretrain/)
    assert.match(main.stdout, /eval/)
    const pretrain = await runCli(['pretrain', '--help'])
    for (const flag of ['--dim', '--layers', '--heads', '--mlp-ratio', '--epochs', '--data', '--out', '--backend', '--format']) assert.match(pretrain.stdout, new RegExp(flag))
  })

  it('pretrains, saves, and evaluates to the same accuracy', async () => {
    const out = join(dir, 'small.fgm')
    const trained = await runCli(['pretrain', '--dim', '16', '--layers', '1', '--heads', '2', '--steps', '30', '--out', out, '--format', 'json'])
    assert.equal(trained.code, 0, trained.stderr)
    assert.match(trained.stderr, /compute backend wasm/)
    const t = JSON.parse(trained.stdout)
    assert.equal(t.steps, 30)
    assert.ok(t.accuracy > 0.2, `accuracy after 30 steps: ${t.accuracy}`)
    const evaluated = await runCli(['eval', '--model', out, '--format', 'json'])
    assert.equal(evaluated.code, 0, evaluated.stderr)
    const e = JSON.parse(evaluated.stdout)
    assert.equal(e.accuracy, t.accuracy)
    assert.equal(e.count, 2000)
    // A participant fine-tunes a public checkpoint on its own shard, until flat.
    const tuned = await runCli(['pretrain', '--from', out, '--shard', '1/4', '--epochs', '6', '--patience', '2', '--lr', '0.0005', '--out', join(dir, 'tuned.fgm'), '--format', 'json'])
    assert.equal(tuned.code, 0, tuned.stderr)
    const f = JSON.parse(tuned.stdout)
    assert.equal(f.from, out)
    assert.equal(f.config.dim, 16, 'the checkpoint\'s shape, not the flags\' defaults')
    assert.ok(f.steps >= 0 && f.accuracy > 0.2, JSON.stringify(f))
  })

  it('writes phase 4\'s selection rule and a grown head into the manifest, and refuses the rule without fine-tuning steps', async () => {
    const [best, none, pulledAlone, pulled, perRow, badPull] = await Promise.all([
      runCli(['federation', 'init', '--finetune-steps', '200', '--finetune-select', 'best-held-out', '--head', 'grown']),
      runCli(['federation', 'init', '--finetune-select', 'best-held-out']),
      runCli(['federation', 'init', '--finetune-pull', '3']),
      runCli(['federation', 'init', '--finetune-steps', '200', '--finetune-pull', '3']),
      runCli(['federation', 'init', '--finetune-steps', '200', '--finetune-pull', '1000/n']),
      runCli(['federation', 'init', '--finetune-steps', '200', '--finetune-pull', '/n'])
    ])
    assert.equal(best.code, 0, best.stderr)
    const written = JSON.parse(best.stdout)
    const { finetuneSteps, finetuneSelect, finetunePull } = written.schedule
    assert.deepEqual({ finetuneSteps, finetuneSelect, finetunePull }, { finetuneSteps: 200, finetuneSelect: 'best-held-out', finetunePull: undefined }, 'no pull by default')
    assert.equal(written.ligo.privateHead, undefined, '--head grown writes no field')
    assert.equal(none.code, 2)
    assert.match(none.stderr, /--finetune-select best-held-out chooses among fine-tuning checks; give --finetune-epochs E \(e.g. 12\) or --finetune-steps N/)
    assert.equal(pulledAlone.code, 2)
    assert.match(pulledAlone.stderr, /--finetune-pull 3 pulls fine-tuned weights toward the grown ones; give --finetune-epochs E/)
    assert.equal(pulled.code, 0, pulled.stderr)
    assert.equal(JSON.parse(pulled.stdout).schedule.finetunePull, 3)
    assert.equal(JSON.parse(pulled.stdout).schedule.finetunePullPerRow, undefined)
    assert.equal(perRow.code, 0, perRow.stderr)
    assert.deepEqual([JSON.parse(perRow.stdout).schedule.finetunePull, JSON.parse(perRow.stdout).schedule.finetunePullPerRow], [1000, true])
    assert.equal(badPull.code, 2)
    assert.match(badPull.stderr, /--finetune-pull \/n: must be a number from 0 to 10000 \(lambda\), or C\/n/)
  })

  it('writes phase 4\'s budget in epochs, and refuses a budget in both epochs and steps', async () => {
    const [epochs, both, none] = await Promise.all([
      runCli(['federation', 'init', '--finetune-epochs', '12', '--finetune-select', 'best-held-out']),
      runCli(['federation', 'init', '--finetune-epochs', '12', '--finetune-steps', '200']),
      runCli(['federation', 'init', '--finetune-epochs', '0'])
    ])
    assert.equal(epochs.code, 0, epochs.stderr)
    const { finetuneEpochs, finetuneSteps, finetuneSelect } = JSON.parse(epochs.stdout).schedule
    assert.deepEqual({ finetuneEpochs, finetuneSteps, finetuneSelect }, { finetuneEpochs: 12, finetuneSteps: undefined, finetuneSelect: 'best-held-out' })
    assert.equal(both.code, 2)
    assert.match(both.stderr, /--finetune-epochs 12 and --finetune-steps 200 both set phase 4's budget; give one of them/)
    assert.equal(none.code, 0, none.stderr)
    assert.equal('finetuneEpochs' in JSON.parse(none.stdout).schedule, false, '0 epochs: no phase 4, written as no field')
  })

  it('grows with a phase-4 budget in epochs of the --data rows, saved with the model, and refuses two budgets', async () => {
    const small = join(dir, 'grow-small.fgm')
    const pre = await runCli(['pretrain', '--dim', '16', '--layers', '1', '--heads', '2', '--steps', '5', '--out', small])
    assert.equal(pre.code, 0, pre.stderr)
    const grown = join(dir, 'grown-epochs.fgm')
    const growArgs = ['grow', '--from', small, '--to-dim', '24', '--to-layers', '2', '--steps', '5', '--shard', '2/8', '--out', grown]
    const [epochs, both] = await Promise.all([
      runCli([...growArgs, '--finetune-epochs', '2', '--format', 'json']),
      runCli([...growArgs, '--finetune-epochs', '2', '--finetune-steps', '3'])
    ])
    assert.equal(epochs.code, 0, epochs.stderr)
    const rows = loadShard('mnist', parseShard('2/8'), parsePartition('iid'), 0).train.count
    assert.equal(JSON.parse(epochs.stdout).finetuneSteps, 2 * Math.floor(rows / DEFAULT_BATCH_SIZE), `2 epochs of ${rows} rows`)
    assert.equal(readModelFile(grown).info.finetuneEpochs, 2)
    assert.equal(both.code, 2)
    assert.match(both.stderr, /--finetune-epochs 2 and --finetune-steps 3 both set phase 4's budget; give one of them/)
  })

  it('exits with a typed code and a one-line reason on bad input', async () => {
    const badFlag = await runCli(['pretrain', '--dimm', '3'])
    assert.equal(badFlag.code, 2)
    assert.match(badFlag.stderr, /--dimm/)
    const badValue = await runCli(['pretrain', '--dim', 'ten', '--out', join(dir, 'x.fgm')])
    assert.equal(badValue.code, 2)
    assert.match(badValue.stderr, /--dim ten: must be a whole number/)
    const badShare = await runCli(['simulate', '--public-fraction', '0.95', '--out', join(dir, 'sim')])
    assert.equal(badShare.code, 2)
    assert.match(badShare.stderr, /--public-fraction 0.95: must be a number from 0.01 to 0.9/)
    const badConfig = await runCli(['pretrain', '--dim', '10', '--heads', '4', '--out', join(dir, 'x.fgm')])
    assert.equal(badConfig.code, 3)
    const missing = await runCli(['eval', '--model', join(dir, 'missing.fgm')])
    assert.equal(missing.code, 5)
    assert.match(missing.stderr, /cannot read/)
    const noNative = await runCli(['eval', '--model', join(dir, 'missing.fgm'), '--backend', 'tensorflow'])
    assert.equal(noNative.code, 6)
    assert.match(noNative.stderr, /npm install @tensorflow\/tfjs-node-gpu/)
  })
})
