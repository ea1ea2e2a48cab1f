/**
 * How far one machine goes: tiny-preset federations of 16, 32 and 64 peers (one process, real libp2p
 * on 127.0.0.1). Reports the time per round and the process memory per peer.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { simulate } from '../../node/simulation/index.js'
import { PRESETS } from '../../node/simulation/presets.js'
import { createLogger } from '../../node/log.js'
import { markdownTable, writeSection } from './report.js'

const SIZES = [16, 32, 64]
const ROUNDS = 2

export async function scaleBench (command: string): Promise<void> {
  const rows: Array<Array<string | number>> = []
  for (const peers of SIZES) {
    const rssBefore = process.memoryUsage().rss
    let peakRss = rssBefore
    const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss) }, 200)
    const roundSeconds: number[] = []
    let previous = 0
    const result = await simulate({
      peers,
      rounds: ROUNDS,
      preset: PRESETS.tiny,
      alpha: 100,
      methods: ['fedgrow'],
      seed: 0,
      backend: 'wasm',
      outDir: mkdtempSync(join(tmpdir(), `fedgrow-scale-${peers}-`)),
      log: (e) => {
        if (e.event === 'simulation-round') {
          roundSeconds.push(e.seconds - previous)
          previous = e.seconds
        }
        createLogger('text', (line) => { process.stderr.write(`[${peers} peers] ${line}\n`) })(e)
      }
    })
    clearInterval(sampler)
    const m = result.methods[0]
    rows.push([peers, roundSeconds.map(s => s.toFixed(1)).join(', '), m.wallSeconds.toFixed(0), `${((peakRss - rssBefore) / peers / 2 ** 20).toFixed(1)} MiB`, `${(peakRss / 2 ** 20).toFixed(0)} MiB`, `${(100 * m.accuracy.mean).toFixed(2)}%`, Math.round(m.bytesSentPerPeerPerRound).toLocaleString('en-US')])
  }
  writeSection('scale', 'Scale: peers per machine (preset tiny, fedgrow)', command, [
    `One process holds every peer (real libp2p nodes on 127.0.0.1 on the main thread; training on one wasm compute worker per core). ${ROUNDS} rounds each; "round s" is the time from one round's last peer to the next's (round 1 includes Local-LiGO training of every peer).`,
    'Memory per peer is the growth of the process\'s peak RSS during the run divided by the peers; it includes each peer\'s data shard, models and libp2p node.',
    '',
    markdownTable(['peers', 'round s (1, 2)', 'wall s', 'memory per peer', 'peak RSS', 'accuracy mean', 'bytes sent/peer/round'], rows)
  ].join('\n'))
}
