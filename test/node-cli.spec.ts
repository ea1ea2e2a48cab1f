/** Three `fedgrow node` processes, started as the README says, federate and finish. */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { roundStory, runCli, startNode } from './helpers.js'
import type { CliProcess } from './helpers.js'

describe('fedgrow node (three processes)', function () {
  this.timeout(180_000)
  const dir = mkdtempSync(join(tmpdir(), 'fedgrow-nodes-'))

  /** Pre-trains one small model per shard of 3, of the given widths and alternating depths, as DIR/PREFIXi/small.fgm. */
  const pretrainThree = async (prefix: string, dims: number[], steps: number): Promise<void> => {
    for (const [i, dim] of dims.entries()) {
      const pre = await runCli(['pretrain', '--dim', String(dim), '--layers', String(1 + (i % 2)), '--steps', String(steps), '--shard', `${i}/3`, '--out', join(dir, `${prefix}${i}`, 'small.fgm')])
      assert.equal(pre.code, 0, pre.stderr)
    }
  }
  /** The first multiaddr a node prints once it listens. */
  const listeningAddress = async (node: CliProcess): Promise<string> => {
    const until = Date.now() + 60_000
    while (node.lines().find(l => l.event === 'listening') === undefined) {
      if (Date.now() > until) assert.fail(`the node never listened:\n${node.stderr()}`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    return (node.lines().find(l => l.event === 'listening')?.multiaddrs as string[])[0]
  }

  it('federates from one bootstrap address and saves each peer\'s grown model', async () => {
    const fed = join(dir, 'fed.json')
    const init = await runCli(['federation', 'init', '--rounds', '2', '--quorum', '3', '--local-steps', '3', '--local-ligo-steps', '3', '--intermediate-dim', '24', '--intermediate-layers', '2', '--target-dim', '32', '--target-layers', '2', '--out', fed])
    assert.equal(init.code, 0, init.stderr)
    assert.match(init.stderr, /federation id [0-9a-f]{64}/)
    await pretrainThree('p', [16, 16, 24], 3)
    const common = (i: number): string[] => ['--federation', fed, '--model', join(dir, `p${i}`, 'small.fgm'), '--shard', `${i}/3`, '--state-dir', join(dir, `p${i}`)]
    const first = startNode(common(0))
    const addr = await listeningAddress(first)
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

  it('federates with the default manifest when peers start a few seconds apart', async () => {
    const fed = join(dir, 'default-fed.json')
    const init = await runCli(['federation', 'init', '--out', fed])
    assert.equal(init.code, 0, init.stderr)
    assert.equal(JSON.parse(readFileSync(fed, 'utf8')).ligo.privateHead, true, 'the default keeps each classifier private')
    await pretrainThree('d', [16, 24, 32], 10)
    // The manifest's 5 rounds, stopped after 3 to keep the suite short: a peer's last round waits for all.
    const common = (i: number): string[] => ['--federation', fed, '--model', join(dir, `d${i}`, 'small.fgm'), '--shard', `${i}/3`, '--state-dir', join(dir, `d${i}`), '--rounds', '3']
    const first = startNode(common(0))
    const addr = await listeningAddress(first)
    const peers = [first]
    for (const i of [1, 2]) {
      await new Promise(resolve => setTimeout(resolve, 3_000))
      peers.push(startNode([...common(i), '--bootstrap', addr]))
    }
    const codes = await Promise.all(peers.map(async p => await p.exited))
    assert.deepEqual(codes, [0, 0, 0], peers.map(p => p.stderr()).join('\n'))
    const digests = peers.map(p => p.lines().find(l => l.event === 'done')?.globalDigest)
    assert.equal(new Set(digests).size, 1, `every peer ends on one Global-LiGO: ${digests.join(', ')}\n${peers.map(p => roundStory(p.lines())).join('\n-----\n')}`)
    for (const i of [0, 1, 2]) assert.ok(existsSync(join(dir, `d${i}`, 'private-head-3.safetensors')), `peer ${i} kept its head of the last round`)
    const rounds = peers.map(p => p.lines().filter(l => l.event === 'round'))
    // A peer has joined once it ran a round itself; in that round the others may have closed before its update came.
    const allJoined = Math.max(...rounds.map(own => Math.min(...own.filter(r => r.caughtUp !== true).map(r => Number(r.round)))))
    assert.ok(allJoined < 3, `all three joined before the last round: ${JSON.stringify(rounds)}`)
    for (const r of rounds.flat().filter(r => Number(r.round) > allJoined && r.caughtUp !== true)) {
      assert.equal(r.peersHeard, 3, `once all three have joined every round hears all three: ${JSON.stringify(r)}`)
    }
  })

  it('serves Prometheus metrics with fedgrow\'s series, and logs at the chosen level', async () => {
    const fed = join(dir, 'metrics-fed.json')
    const init = await runCli(['federation', 'init', '--rounds', '1000', '--quorum', '2', '--local-steps', '1', '--local-ligo-steps', '1', '--intermediate-dim', '24', '--intermediate-layers', '2', '--target-dim', '32', '--target-layers', '2', '--out', fed])
    assert.equal(init.code, 0, init.stderr)
    const common = (i: number): string[] => ['--federation', fed, '--model', join(dir, `p${i}`, 'small.fgm'), '--shard', `${i}/3`, '--state-dir', join(dir, `m${i}`)]
    const first = startNode([...common(0), '--verbose'])
    const until = Date.now() + 60_000
    const waitFor = async (what: string, test: () => boolean): Promise<void> => {
      while (!test()) {
        if (Date.now() > until) assert.fail(`timed out waiting for ${what}`)
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
    const addr = await listeningAddress(first)
    const second = startNode([...common(1), '--bootstrap', addr, '--metrics', '127.0.0.1:0', '--quiet'])
    try {
      await waitFor('the metrics address', () => /metrics at (http:\S+)/.test(second.stderr()))
      const url = /metrics at (http:\S+)/.exec(second.stderr())![1]
      let text = ''
      const find = (series: string): string | undefined => text.split('\n').find(l => l.startsWith(series + ' ') || l.startsWith(series + '{'))
      const value = (series: string): number => {
        const line = find(series)
        assert.ok(line !== undefined, `${series} is exported`)
        return Number(line.split(' ').at(-1))
      }
      // Scrape until the second peer has taken part in rounds itself (it may first catch up by adopting
      // the first peer's state, which fetches no updates).
      for (;;) {
        text = await (await fetch(url)).text()
        if (Number(find('fedgrow_updates_accepted_total')?.split(' ').at(-1) ?? 0) >= 2 && Number(find('fedgrow_round_duration_seconds_count')?.split(' ').at(-1) ?? 0) >= 2) break
        if (Date.now() > until + 60_000) assert.fail(`the second peer never ran two rounds with the first:\n${text.split('\n').filter(l => l.startsWith('fedgrow_')).join('\n')}`)
        await new Promise(resolve => setTimeout(resolve, 500))
      }
      assert.ok(value('fedgrow_round') >= 2)
      assert.ok(value('fedgrow_local_accuracy') > 0 && value('fedgrow_local_accuracy') <= 1)
      assert.ok(value('fedgrow_local_loss') > 0)
      assert.ok(value('fedgrow_round_duration_seconds_count') >= 2)
      assert.ok(value('fedgrow_updates_accepted_total') >= 2, 'the other peer\'s updates were accepted')
      assert.ok(value('fedgrow_peers') >= 1)
      assert.ok(value('fedgrow_tensors_alive') > 0)
      assert.ok(value('fedgrow_protocol_bytes{protocol="payload",direction="sent"}') > 0)
      assert.ok(value('fedgrow_protocol_bytes{protocol="gossipsub",direction="received"}') > 0)
      // Every family libp2p counts is exported, down to the connections' own framing.
      assert.ok(value('fedgrow_protocol_bytes{protocol="identify",direction="sent"}') > 0)
      assert.ok(value('fedgrow_protocol_bytes{protocol="connection",direction="sent"}') > 0)
      assert.match(text, /^libp2p_data_transfer_bytes_total\{/m, 'libp2p\'s own metrics are in the same scrape')
      assert.ok(first.lines().some(l => l.event === 'update-accepted'), '--verbose logs each accepted update')
      assert.ok(!second.lines().some(l => l.event === 'round' || l.event === 'listening'), '--quiet logs no milestones')
    } finally {
      first.child.kill('SIGINT')
      second.child.kill('SIGINT')
      await Promise.all([first.exited, second.exited])
    }
  })
})
