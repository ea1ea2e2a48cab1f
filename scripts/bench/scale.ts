/**
 * How averaging scales: tiny-preset federations of 16, 64 and 256 peers in one process (real libp2p on
 * 127.0.0.1), each run with all-to-all averaging and with group averaging, side by side. Reports what a
 * peer pays per round (bytes, and in payloads of its Global-LiGO), round time, memory, how far the
 * peers' Global-LiGOs spread, and accuracy.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { simulate } from '../../node/simulation/index.js'
import { PRESETS } from '../../node/simulation/presets.js'
import { createLogger } from '../../node/log.js'
import { DEFAULTS } from '../../protocol/constants.js'
import { flagValue, markdownTable, writeSection } from './report.js'

const DEFAULT_SIZES = [16, 64, 256]
const DEFAULT_ROUNDS = 3
const BYTES_PER_PARAM = 4

interface Scheme {
  name: string
  groupSize?: number
}

async function runOne (peers: number, rounds: number, scheme: Scheme): Promise<{ row: Array<string | number>, payloadBytes: number }> {
  const rssBefore = process.memoryUsage().rss
  let peakRss = rssBefore
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, process.memoryUsage().rss) }, 200)
  const roundSeconds: number[] = []
  let previous = 0
  const tag = `[${peers} peers, ${scheme.name}]`
  const result = await simulate({
    peers,
    rounds,
    preset: PRESETS.tiny,
    alpha: 100,
    methods: ['fedgrow'],
    seed: 0,
    backend: 'wasm',
    ...(scheme.groupSize !== undefined ? { groupSize: scheme.groupSize } : {}),
    outDir: mkdtempSync(join(tmpdir(), `fedgrow-scale-${peers}-`)),
    log: (e) => {
      if (e.event === 'simulation-round') {
        roundSeconds.push(e.seconds - previous)
        previous = e.seconds
      }
      createLogger('text', (line) => { process.stderr.write(`${tag} ${line}\n`) })(e)
    }
  })
  clearInterval(sampler)
  const m = result.methods[0]
  const last = m.curve[m.curve.length - 1]
  const payloadBytes = BYTES_PER_PARAM * m.sharedParamsPerRound
  const row = [
    peers,
    scheme.name,
    Math.round(m.bytesSentPerPeerPerRound).toLocaleString('en-US'),
    m.payloadsSentPerPeerPerRound.toFixed(1),
    `${((m.bytesSentPerPeerPerRound - m.payloadsSentPerPeerPerRound * payloadBytes) / 1024).toFixed(0)} KiB`,
    roundSeconds.map(s => s.toFixed(0)).join(', '),
    m.wallSeconds.toFixed(0),
    `${(peakRss / 2 ** 20).toFixed(0)} MiB`,
    `${((peakRss - rssBefore) / peers / 2 ** 20).toFixed(1)} MiB`,
    `${(100 * last.spread.mean).toFixed(2)}% / ${(100 * last.spread.max).toFixed(2)}%`,
    `${(100 * m.accuracy.mean).toFixed(2)}%`
  ]
  return { row, payloadBytes }
}

export async function scaleBench (command: string, args: string[]): Promise<void> {
  const sizes = (flagValue(args, '--peers') ?? DEFAULT_SIZES.join(',')).split(',').map(Number)
  const rounds = Number(flagValue(args, '--rounds') ?? DEFAULT_ROUNDS)
  const groupSize = Number(flagValue(args, '--group-size') ?? DEFAULTS.groupSize)
  const schemes: Scheme[] = [{ name: 'all-to-all' }, { name: `group (${groupSize}+)`, groupSize }]
  const runs: Array<Awaited<ReturnType<typeof runOne>>> = []
  // The section is rewritten after every run, so that a long run that fails late keeps what it measured.
  for (const peers of sizes) {
    for (const scheme of schemes) {
      runs.push(await runOne(peers, rounds, scheme))
      writeScaleSection(command, rounds, groupSize, runs)
    }
  }
}

function writeScaleSection (command: string, rounds: number, groupSize: number, runs: Array<Awaited<ReturnType<typeof runOne>>>): void {
  const payload = `${(runs[0].payloadBytes / 1024).toFixed(1)} KiB`
  writeSection('scale', 'Scale: all-to-all against group averaging (preset tiny, fedgrow)', command, [
    `One process holds every peer (real libp2p nodes on 127.0.0.1 on the main thread; training on the compute workers, one per core). ${rounds} rounds each, alpha 100, seed 0; every peer bootstraps from peer 0. Group averaging: groups of ${groupSize} to ${2 * groupSize - 1} peers, redrawn every round (protocol/groups.ts).`,
    `"payloads" is how many whole Global-LiGO payloads (${payload} each) a peer served per round, on average; "other" is the rest of its bytes sent: gossipsub announcements (each peer re-announces every 2 s while it waits, and gossipsub forwards each one to its mesh), catch-up state answers and libp2p control traffic. "round s" is the time from one round's last peer to the next's (round 1 includes preparing every peer). Memory per peer is the growth of the process's peak RSS during the run over the peers. "spread" is the consensus distance after the last round: each peer's Global-LiGO's distance from the peers' mean, relative to the mean's norm (mean / max over peers).`,
    '',
    markdownTable(['peers', 'averaging', 'bytes sent/peer/round', 'payloads', 'other', 'round s', 'wall s', 'peak RSS', 'memory per peer', 'spread mean / max', 'accuracy mean'], runs.map(r => r.row))
  ].join('\n'))
}
