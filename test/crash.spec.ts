/**
 * Nothing lost on a crash: a real `fedgrow node` is SIGKILLed at seeded random moments, over and over,
 * and restarted on the same state directory. Every time, the newest checkpoint verifies, is no older
 * than the last round the node reported, and is the round the next run resumes from. Damaged
 * checkpoints are detected and the previous good one used.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CheckpointStore } from '../node/storage/checkpoints.js'
import { Rng } from '../node/random.js'
import { federationId, validateManifest } from '../protocol/manifest.js'
import { runCli, startNode } from './helpers.js'
import type { TensorMap } from '../protocol/safetensors.js'

// 9, not more: each kill costs a node start (4-5 s), and the suite stays within its 10 minutes on 2 cores.
const KILLS = 9

const roundsOf = (lines: Array<Record<string, unknown>>): number[] => lines.filter(l => l.event === 'round').map(l => Number(l.round))

describe('crash safety', function () {
  this.timeout(300_000)

  it(`resumes from a verified completed round after each of ${KILLS} SIGKILLs at random moments`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgrow-crash-'))
    const fed = join(dir, 'fed.json')
    const init = await runCli(['federation', 'init', '--rounds', '100000', '--quorum', '1', '--local-steps', '1', '--local-ligo-steps', '2', '--intermediate-dim', '24', '--intermediate-layers', '2', '--target-dim', '32', '--target-layers', '2', '--out', fed])
    assert.equal(init.code, 0, init.stderr)
    const pre = await runCli(['pretrain', '--dim', '16', '--layers', '1', '--steps', '2', '--out', join(dir, 'small.fgm')])
    assert.equal(pre.code, 0, pre.stderr)
    const store = new CheckpointStore(join(dir, 'state'), federationId(validateManifest(JSON.parse(readFileSync(fed, 'utf8')))))
    const rng = new Rng('crash-test')
    let saved = 0
    let killedMidRun = 0
    for (let kill = 0; kill < KILLS; kill++) {
      const node = startNode(['--federation', fed, '--model', join(dir, 'small.fgm'), '--state-dir', join(dir, 'state')])
      // Even kills: uniform over the first 3.3 s, start-up included (loading, Local-LiGO). Odd kills:
      // uniform over 1.5 s of ~0.2 s rounds once rounds run, so kills land mid-round and mid-write too,
      // however slow the machine's start-up.
      if (kill % 2 === 1) {
        const until = Date.now() + 60_000
        while (roundsOf(node.lines()).length === 0 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 20))
      }
      await new Promise(resolve => setTimeout(resolve, kill % 2 === 1 ? 1_500 * rng.next() : 300 + 3_000 * rng.next()))
      node.child.kill('SIGKILL')
      assert.equal(await node.exited, 128, 'the node was killed, it did not exit by itself')
      const lines = node.lines()
      const resumed = lines.find(l => l.event === 'resumed')
      const ran = roundsOf(lines)
      // A kill may land before the checkpoint is read (loading the intermediate model); once a run has
      // read it, or gone on to rounds, it must have resumed from the last one.
      if (saved > 0 && (resumed !== undefined || ran.length > 0)) {
        assert.equal(resumed?.round, saved, `run ${kill} resumed from the last checkpoint`)
      }
      if (ran.length > 0) {
        assert.equal(ran[0], saved + 1, `run ${kill} continued with the round after its checkpoint`)
        killedMidRun++
      }
      const { checkpoint, damaged } = store.latest()
      assert.deepEqual(damaged, [], 'atomic writes never leave a damaged checkpoint')
      const now = checkpoint?.round ?? 0
      assert.ok(now >= Math.max(saved, ...ran), `checkpoint ${now} covers every reported round (${ran.at(-1) ?? 'none'}) and never goes back (${saved})`)
      saved = now
    }
    assert.ok(killedMidRun >= Math.floor(KILLS / 2), `${killedMidRun} of ${KILLS} kills came after rounds had run`)
    // A run that reached rounds ran one, then about 1.5 s of ~0.2 s rounds before its kill (17 rounds over 4 such runs here).
    assert.ok(saved > 2 * killedMidRun, `the node made progress across restarts (round ${saved} after ${killedMidRun} runs that reached rounds)`)
  })

  it('falls back to the previous checkpoint when the newest is damaged, and reports it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgrow-ckpt-'))
    const id = 'f'.repeat(64)
    const store = new CheckpointStore(dir, id)
    const global = (value: number): TensorMap => ({ 'w.q': { shape: [2, 2], data: new Float32Array(4).fill(value) } })
    for (let round = 1; round <= 5; round++) store.save(round, global(round))
    const newest = store.latest().checkpoint!
    assert.equal(newest.round, 5)
    const bytes = readFileSync(newest.path)
    bytes[bytes.length - 3] ^= 0x40
    writeFileSync(newest.path, bytes)
    writeFileSync(join(dir, 'checkpoints', '.round-00000006.safetensors.123.tmp'), 'half written')
    const { checkpoint, damaged } = store.latest()
    assert.equal(checkpoint?.round, 4, 'the previous good round')
    assert.deepEqual([...checkpoint!.global['w.q'].data], [4, 4, 4, 4])
    assert.equal(damaged.length, 1)
    assert.match(damaged[0].error, /checksum/)
    assert.throws(() => new CheckpointStore(dir, 'e'.repeat(64)).latest(), { name: 'InvalidConfigError' })
  })

  it('keeps only the newest checkpoints', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgrow-ckpt-'))
    const store = new CheckpointStore(dir, 'f'.repeat(64), 2)
    for (let round = 1; round <= 4; round++) store.save(round, { x: { shape: [1], data: new Float32Array([round]) } })
    assert.deepEqual(readdirSync(join(dir, 'checkpoints')).sort(), ['round-00000003.safetensors', 'round-00000004.safetensors'])
  })
})
