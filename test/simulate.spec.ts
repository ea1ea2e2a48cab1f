import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from './helpers.js'

describe('fedgrow simulate', function () {
  this.timeout(300_000)

  it('runs the tiny preset with every method and prints one JSON object with measured bytes', async () => {
    const out = mkdtempSync(join(tmpdir(), 'fedgrow-sim-'))
    const run = await runCli(['simulate', '--peers', '2', '--rounds', '1', '--preset', 'tiny', '--methods', 'fedgrow,fedavg,independent', '--seed', '3', '--format', 'json', '--out', out])
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
    assert.ok(fedgrow.trainableParamsPerPeer < fedgrow.targetParams)
    assert.equal(fedavg.trainableParamsPerPeer, fedavg.targetParams)
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')), result)
    assert.match(run.stderr, /\[fedgrow\] round 1\/1: mean accuracy/)
  })
})
