/**
 * Simulation on every core: the same simulation (same seed, same peers) with 1 and with 2 compute
 * workers, each run in a fresh `fedgrow simulate` process so its wall time and peak RSS are its own.
 * Runs alternate (1, 2, 2, 1, ...) so that drift in the machine's load hits both alike.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { markdownTable, writeSection } from './report.js'
import { startComputePool } from '../../node/compute/pool.js'
import { loadData, partition } from '../../node/data/index.js'
import { validateVitConfig } from '../../node/model/config.js'
import type { SimulationResult } from '../../node/simulation/index.js'

const CLI = fileURLToPath(new URL('../fedgrow.js', import.meta.url))
const SIMULATION = ['simulate', '--peers', '4', '--preset', 'tiny', '--methods', 'fedgrow,fedavg,independent', '--seed', '0', '--backend', 'wasm', '--format', 'json']

interface Run { workers: number, wallSeconds: number, result: SimulationResult }

async function simulateWith (workers: number): Promise<Run> {
  const out = mkdtempSync(join(tmpdir(), `fedgrow-bench-workers${workers}-`))
  const started = Date.now()
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [CLI, ...SIMULATION, '--workers', String(workers), '--out', out], { maxBuffer: 64 * 2 ** 20 }, (err, out, stderr) => {
      if (err !== null) reject(new Error(`fedgrow simulate --workers ${workers} failed: ${err.message}\n${stderr}`))
      else resolve(out)
    })
  })
  return { workers, wallSeconds: (Date.now() - started) / 1000, result: JSON.parse(stdout) as SimulationResult }
}

/** Steps of the ceiling's training job: a few seconds of one worker's time. */
const CEILING_STEPS = 60

/**
 * What two workers can gain on this machine at best: one training job alone, then two identical ones
 * on two workers at once (no network, no scheduling). Cores that share caches or memory bandwidth
 * (or are hyperthreads underneath a VM's vCPUs) keep this below 2.
 */
async function twoWorkerCeiling (): Promise<{ oneMs: number, twoMs: number }> {
  const shard = partition(loadData('mnist', 0), 4, { kind: 'dirichlet', alpha: 100 }, 0)[0]
  const config = validateVitConfig({ dim: 48, layers: 3, heads: 4, mlpRatio: 1 })
  const dir = mkdtempSync(join(tmpdir(), 'fedgrow-bench-ceiling-'))
  const job = (i: number): Parameters<Awaited<ReturnType<typeof startComputePool>>['pretrain']>[0] => ({ config, data: shard, options: { steps: CEILING_STEPS, batchSize: 64, learningRate: 1e-3, seed: i }, path: join(dir, `m${i}.fgm`), info: {} })
  const pool = await startComputePool({ workers: 2, backend: 'wasm' })
  try {
    await pool.pretrain(job(0))
    let started = Date.now()
    await pool.pretrain(job(1))
    const oneMs = Date.now() - started
    started = Date.now()
    await Promise.all([pool.pretrain(job(2)), pool.pretrain(job(3))])
    return { oneMs, twoMs: Date.now() - started }
  } finally {
    await pool.close()
  }
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length

export async function workersBench (command: string, args: string[]): Promise<void> {
  const pairs = args[0] === '--pairs' ? Number(args[1]) : 1
  const runs: Run[] = []
  for (let p = 0; p < pairs; p++) {
    for (const workers of p % 2 === 0 ? [1, 2] : [2, 1]) {
      process.stderr.write(`workers bench: pair ${p + 1}/${pairs}, --workers ${workers}\n`)
      runs.push(await simulateWith(workers))
    }
  }
  const ceiling = await twoWorkerCeiling()
  const byWorkers = (n: number): Run[] => runs.filter(r => r.workers === n)
  const same = byWorkers(1).every(one => byWorkers(2).every(two => JSON.stringify(two.result.methods.map(m => [m.accuracy.perPeer, m.finalDigests])) === JSON.stringify(one.result.methods.map(m => [m.accuracy.perPeer, m.finalDigests]))))
  const rows = [1, 2].map(n => {
    const these = byWorkers(n)
    const c = these[0].result.compute
    return [n, these.map(r => r.wallSeconds.toFixed(1)).join(', '), mean(these.map(r => r.wallSeconds)).toFixed(1), mib(Math.max(...these.map(r => r.result.compute.peakRssBytes))), c.perWorker.map(w => mib(w.heapBytes + w.backendBytes)).join(', '), mib(c.rssPerPeerBytes)]
  })
  const speedup = mean(byWorkers(1).map(r => r.wallSeconds)) / mean(byWorkers(2).map(r => r.wallSeconds))
  writeSection('workers', 'Workers: one simulation on 1 and on 2 compute workers', command, [
    `The same simulation (\`fedgrow ${SIMULATION.join(' ')}\`, all three methods, pre-training included) with \`--workers 1\` and \`--workers 2\`, each in a fresh process, alternating. Wall time is the whole process; peak RSS is the process's (main thread, libp2p nodes and workers); per worker is the largest JS heap plus wasm memory seen at a round's end.`,
    '',
    markdownTable(['workers', 'wall s (each run)', 'mean wall s', 'peak RSS', 'per worker', 'RSS per peer'], rows),
    '',
    `Speed-up with 2 workers: **${speedup.toFixed(2)}x**. Per-peer accuracies and final digests ${same ? 'were identical in every run' : 'DIFFERED between runs'}.`,
    '',
    `This machine's ceiling for the same kind of work: one ${CEILING_STEPS}-step training job (a 48x3 ViT, batch 64) alone took ${ceiling.oneMs} ms, two of them on two workers at once ${ceiling.twoMs} ms: a throughput gain of **${(2 * ceiling.oneMs / ceiling.twoMs).toFixed(2)}x** at best. The simulation also has serial parts (start-up, each method's peers starting and finishing).`
  ].join('\n'))
}
