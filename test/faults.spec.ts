/**
 * Churn, lost messages and partitions in real simulated federations (`fedgrow simulate` with fault
 * injection), and the pure pieces that keep rounds moving: adaptive deadlines and per-peer rate limits.
 */
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ADAPTIVE_DEADLINE, adaptiveWaitMs, LagWindow } from '../node/federation/deadline.js'
import { RateLimiter } from '../node/p2p/rate-limit.js'
import { runCli } from './helpers.js'

interface FaultsJson { crashes: number, restarts: number, rejoined: number, droppedAnnouncements: number, partitionedRounds: number, distinctFinalDigests: number }

async function simulateWithFaults (args: string[]): Promise<{ perPeer: number[], faults: FaultsJson, stderr: string }> {
  const out = mkdtempSync(join(tmpdir(), 'fedgrow-faults-'))
  const run = await runCli(['simulate', '--preset', 'tiny', '--pretrain-epochs', '2', '--finetune-steps', '0', '--methods', 'fedgrow', '--format', 'json', '--out', out, ...args])
  assert.equal(run.code, 0, run.stderr)
  const method = JSON.parse(run.stdout).methods[0]
  return { perPeer: method.accuracy.perPeer, faults: method.faults, stderr: run.stderr }
}

describe('faults in a running federation', function () {
  this.timeout(300_000)

  it('keeps going when a third of the peers crash mid-round, and the restarted ones rejoin', async () => {
    const { perPeer, faults, stderr } = await simulateWithFaults(['--peers', '6', '--rounds', '5', '--kill', '0.34', '--drop', '0.1', '--seed', '1'])
    assert.equal(faults.crashes, 2)
    assert.equal(faults.restarts, 2)
    assert.equal(faults.rejoined, 2, 'each restarted peer later completed a round with the others')
    assert.ok(faults.droppedAnnouncements > 0, 'some announcements were lost')
    assert.equal(perPeer.length, 6, 'every peer, crashed or not, finished all rounds and was scored')
    assert.match(stderr, /fault: kind=crash peer=\d afterRound=\d/)
    assert.match(stderr, /\[fedgrow\] round 5\/5/)
  })

  it('ends with every peer on one Global-LiGO after a partition heals', async () => {
    const { faults, stderr } = await simulateWithFaults(['--peers', '4', '--rounds', '6', '--partition', '1', '--seed', '2'])
    assert.equal(faults.partitionedRounds, 1)
    assert.match(stderr, /state=split/)
    assert.match(stderr, /state=healed/)
    assert.equal(faults.distinctFinalDigests, 1)
  })

  it('refuses fault settings a run cannot honour', async () => {
    const run = await runCli(['simulate', '--peers', '3', '--rounds', '2', '--kill', '0.3', '--out', mkdtempSync(join(tmpdir(), 'fedgrow-faults-'))])
    assert.equal(run.code, 2)
    assert.match(run.stderr, /--kill needs at least 4 rounds/)
  })
})

describe('adaptive round deadlines', () => {
  it('uses the manifest timeout until enough lags are seen', () => {
    assert.equal(adaptiveWaitMs([100, 200], 60_000), 60_000)
  })

  it('waits twice the 90th-percentile lag, within the floor and the timeout', () => {
    const lags = [0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500]
    assert.equal(adaptiveWaitMs(lags, 60_000), 9000)
    assert.equal(adaptiveWaitMs(lags, 5_000), 5_000)
    assert.equal(adaptiveWaitMs([0, 10, 20, 30], 60_000), ADAPTIVE_DEADLINE.floorMs)
  })

  it('forgets old rounds: a federation that speeds up waits less', () => {
    const window = new LagWindow()
    for (let i = 0; i < ADAPTIVE_DEADLINE.window; i++) window.record(20_000)
    assert.equal(window.waitMs(120_000), 40_000)
    for (let i = 0; i < ADAPTIVE_DEADLINE.window; i++) window.record(1_000)
    assert.equal(window.waitMs(120_000), ADAPTIVE_DEADLINE.floorMs)
  })
})

describe('per-peer rate limit', () => {
  it('allows a burst, then the refill rate, per peer', () => {
    let now = 0
    const limiter = new RateLimiter(3, 1, () => now)
    assert.deepEqual([1, 2, 3, 4].map(() => limiter.allow('a')), [true, true, true, false])
    assert.equal(limiter.allow('b'), true, 'peers have separate buckets')
    now += 1000
    assert.deepEqual([limiter.allow('a'), limiter.allow('a')], [true, false])
    now += 10_000
    assert.deepEqual([1, 2, 3, 4].map(() => limiter.allow('a')), [true, true, true, false], 'the bucket refills to the burst, no more')
  })
})
