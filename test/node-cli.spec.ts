/** Three `fedgrow node` processes, started as the README says, federate and finish. */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli, startNode } from './helpers.js'

describe('fedgrow node (three processes)', function () {
  this.timeout(180_000)
  const dir = mkdtempSync(join(tmpdir(), 'fedgrow-nodes-'))

  it('federates from one bootstrap address and saves each peer\'s grown model', async () => {
    const fed = join(dir, 'fed.json')
    const init = await runCli(['federation', 'init', '--rounds', '2', '--quorum', '3', '--local-steps', '3', '--local-ligo-steps', '3', '--intermediate-dim', '24', '--intermediate-layers', '2', '--target-dim', '32', '--target-layers', '2', '--out', fed])
    assert.equal(init.code, 0, init.stderr)
    assert.match(init.stderr, /federation id [0-9a-f]{64}/)
    for (const [i, dim] of [16, 16, 24].entries()) {
      const pre = await runCli(['pretrain', '--dim', String(dim), '--layers', String(1 + (i % 2)), '--steps', '3', '--shard', `${i}/3`, '--out', join(dir, `p${i}`, 'small.fgm')])
      assert.equal(pre.code, 0, pre.stderr)
    }
    const common = (i: number): string[] => ['--federation', fed, '--model', join(dir, `p${i}`, 'small.fgm'), '--shard', `${i}/3`, '--state-dir', join(dir, `p${i}`)]
    const first = startNode(common(0))
    const until = Date.now() + 60_000
    while (first.lines().find(l => l.event === 'listening') === undefined && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 100))
    const addr = (first.lines().find(l => l.event === 'listening')?.multiaddrs as string[])[0]
    assert.match(addr, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3KooW/)
    const others = [1, 2].map(i => startNode([...common(i), '--bootstrap', addr]))
    const codes = await Promise.all([first, ...others].map(async p => await p.exited))
    assert.deepEqual(codes, [0, 0, 0])
    const done = [first, ...others].map(p => p.lines().find(l => l.event === 'done')!)
    assert.equal(new Set(done.map(d => d.globalDigest)).size, 1, 'every peer ends on the same Global-LiGO')
    for (const p of [first, ...others]) {
      const rounds = p.lines().filter(l => l.event === 'round')
      assert.deepEqual(rounds.map(r => r.round), [1, 2])
      for (const r of rounds) {
        // A peer that finds the others a round ahead adopts their result instead of aggregating itself.
        assert.ok(r.peersHeard === 3 || r.caughtUp === true, JSON.stringify(r))
        assert.ok(Number(r.accuracy) >= 0 && Number(r.accuracy) <= 1)
      }
      // Per peer, not per round: a fast peer's fetches for round 2 may fall in its round-1 window.
      assert.ok(rounds.every(r => Number(r.bytesSent) >= 0) && rounds.some(r => Number(r.bytesSent) > 0) && rounds.some(r => Number(r.bytesReceived) > 0), JSON.stringify(rounds))
    }
    for (const round of [1, 2]) {
      assert.ok([first, ...others].some(p => p.lines().some(l => l.event === 'round' && l.round === round && l.peersHeard === 3)), `some peer aggregated all three updates in round ${round}`)
    }
    for (const i of [0, 1, 2]) assert.ok(existsSync(join(dir, `p${i}`, 'target.fgm')))
    const scored = await runCli(['eval', '--model', join(dir, 'p0', 'target.fgm'), '--shard', '0/3', '--format', 'json'])
    assert.equal(scored.code, 0, scored.stderr)
    assert.equal(JSON.parse(scored.stdout).accuracy, done[0].accuracy)
    assert.equal(JSON.parse(readFileSync(fed, 'utf8')).schedule.rounds, 2)
  })
})
