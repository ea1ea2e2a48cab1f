/**
 * A peer stays on the network while it computes: its tfjs work runs in a compute worker, so libp2p pings
 * and /metrics scrapes are answered during Local-LiGO and during a round's training, phases that held the
 * event loop for 5-25 s when they ran on the main thread. A functional check, not a benchmark: each probe
 * gets a generous 5 s (here they take 10-250 ms; a shared 2-core CI machine once took over 2 s for one).
 * A node that blocked through a phase would still fail: it would answer at most one probe in that phase.
 */
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { startHost } from '../node/p2p/host.js'
import type { StartedHost } from '../node/p2p/host.js'
import type { Multiaddr } from '@multiformats/multiaddr'
import { runCli, startNode } from './helpers.js'

/** Longest wait for one ping or one scrape. */
const PROBE_TIMEOUT_MS = 5_000
/** Probes each phase must have seen for the check to mean anything. */
const MIN_PROBES_PER_PHASE = 4

interface Probe { phase: string, ping: boolean, scrape: boolean, error?: string }

/**
 * One ping within PROBE_TIMEOUT_MS. The prober's ping service allows one outbound stream at a time,
 * and on a loaded machine the previous probe's stream may not have closed yet: that is the prober's
 * own bookkeeping, not the node failing to answer, so it waits for the stream to close and pings again
 * within the same deadline.
 */
async function pingOnce (prober: StartedHost, addr: Multiaddr): Promise<void> {
  const signal = AbortSignal.timeout(PROBE_TIMEOUT_MS)
  for (;;) {
    try {
      await prober.libp2p.services.ping.ping(addr, { signal })
      return
    } catch (err) {
      if (!/Too many outbound protocol streams/.test((err as Error).message) || signal.aborted) throw err
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
}

describe('a peer answers while it trains', function () {
  this.timeout(300_000)

  it('answers every ping and metrics scrape during Local-LiGO and during a round\'s training', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgrow-responsive-'))
    const fed = join(dir, 'fed.json')
    // Enough steps that each phase lasts many seconds on wasm.
    assert.equal((await runCli(['federation', 'init', '--rounds', '1', '--quorum', '1', '--local-ligo-steps', '80', '--local-steps', '50', '--out', fed])).code, 0)
    const pre = await runCli(['pretrain', '--dim', '32', '--layers', '2', '--steps', '3', '--out', join(dir, 'small.fgm')])
    assert.equal(pre.code, 0, pre.stderr)
    const node = startNode(['--federation', fed, '--model', join(dir, 'small.fgm'), '--state-dir', join(dir, 'p0'), '--metrics', '127.0.0.1:0'])
    const prober = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    const probes: Probe[] = []
    try {
      const until = Date.now() + 120_000
      while (!node.lines().some(l => l.event === 'listening') || !/metrics at (http:\S+)/.test(node.stderr())) {
        if (Date.now() > until) assert.fail(`the node never listened:\n${node.stderr()}`)
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      const addr = multiaddr((node.lines().find(l => l.event === 'listening')!.multiaddrs as string[])[0])
      const url = /metrics at (http:\S+)/.exec(node.stderr())![1]
      const phase = (): string => {
        const events = node.lines().map(l => l.event)
        if (events.includes('round')) return 'after'
        return events.includes('local-ligo') ? 'round 1' : 'local-ligo'
      }
      while (phase() !== 'after') {
        if (Date.now() > until + 120_000) assert.fail('the node never finished round 1')
        const during = phase()
        const probe: Probe = { phase: during, ping: false, scrape: false }
        try {
          await pingOnce(prober, addr)
          probe.ping = true
          const res = await fetch(url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) })
          probe.scrape = res.ok && (await res.text()).includes('fedgrow_round')
        } catch (err) {
          probe.error = (err as Error).message
        }
        // A probe that failed as the phase ended may have raced the event; count it in the phase it began in.
        probes.push(probe)
        await new Promise(resolve => setTimeout(resolve, 200))
      }
    } finally {
      node.child.kill('SIGINT')
      await node.exited
      await prober.libp2p.stop()
    }
    for (const during of ['local-ligo', 'round 1']) {
      const inPhase = probes.filter(p => p.phase === during)
      assert.ok(inPhase.length >= MIN_PROBES_PER_PHASE, `only ${inPhase.length} probes during ${during}: the phase was too short to test`)
      const failed = inPhase.filter(p => !p.ping || !p.scrape)
      assert.deepEqual(failed, [], `${failed.length} of ${inPhase.length} probes during ${during} went unanswered within ${PROBE_TIMEOUT_MS} ms`)
    }
  })
})
