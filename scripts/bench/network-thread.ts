/**
 * What a peer's network thread computes for averaging, at each preset's Global-LiGO size: per update it
 * receives (its hash, decoding with the finite check, the value bounds, its digest), and per round it
 * closes (each aggregation rule over a group's or a federation's updates, and the consensus distances a
 * simulation reports), and for rounds large enough to leave it, how long the network thread is still held
 * while a compute worker aggregates. Each millisecond held is a millisecond the peer answers nobody.
 * Everything is timed side by side in one process on the same synthetic updates.
 */
import { configFor } from '../../node/model/config.js'
import { globalLigoSpec } from '../../node/federation/participant.js'
import { PRESETS } from '../../node/simulation/presets.js'
import { consensusDistances } from '../../node/federation/aggregate.js'
import { OFF_THREAD_MIN_VALUES, offThread, sharedFloat32, strategyFor } from '../../node/federation/strategy.js'
import { startComputePool } from '../../node/compute/pool.js'
import { Rng } from '../../node/random.js'
import { checkValueBounds, decodePayload, encodePayload, globalDigest, updateHash } from '../../protocol/payload.js'
import { markdownTable, writeSection } from './report.js'
import type { Contribution } from '../../node/federation/aggregate.js'
import type { Float32Allocator, TensorMap } from '../../protocol/safetensors.js'
import type { TensorSpec } from '../../protocol/payload.js'
import type { Manifest } from '../../protocol/manifest.js'

const PRESET_NAMES = ['tiny', 'small', 'paper'] as const
/** A group of 4 to 7 (group averaging's sizes), and all-to-all among 16 peers. */
const CONTRIBUTIONS = [4, 7, 16]
const RULES: Array<Manifest['aggregation']> = [{ rule: 'mean' }, { rule: 'median' }, { rule: 'trimmed-mean' }, { rule: 'centered-clip' }]
const REPEATS = 3
/** The bundled digits' task, as simulations cut it (node/simulation/index.ts taskShapeOf). */
const DIGITS = { imageSize: 28, channels: 1, numClasses: 10, patchSize: 7 }

/** Milliseconds of one call of `fn`: the median of REPEATS calls after a warm-up call. */
function millis (fn: () => unknown): number {
  fn()
  const times: number[] = []
  for (let i = 0; i < REPEATS; i++) {
    const start = performance.now()
    fn()
    times.push(performance.now() - start)
  }
  return times.sort((a, b) => a - b)[Math.floor(REPEATS / 2)]
}

function presetSpec (name: typeof PRESET_NAMES[number]): TensorSpec[] {
  const preset = PRESETS[name]
  const body = (dim: number, layers: number): Parameters<typeof configFor>[1] => ({ dim, layers, heads: preset.heads, mlpRatio: preset.mlpRatio })
  return globalLigoSpec({
    small: configFor(DIGITS, body(preset.smallDims[0], preset.smallLayers[0])),
    intermediate: configFor(DIGITS, body(preset.intermediate.dim, preset.intermediate.layers)),
    target: configFor(DIGITS, body(preset.target.dim, preset.target.layers))
  })
}

/** An update of `spec`'s shapes, values around 0.1 scale, seeded, in the memory `allocate` gives. */
function update (spec: TensorSpec[], seed: string, allocate: Float32Allocator = (n) => new Float32Array(n)): TensorMap {
  const rng = new Rng(seed)
  return Object.fromEntries(spec.map(({ name, shape }) => {
    const data = allocate(shape.reduce((a, b) => a * b, 1))
    for (let i = 0; i < data.length; i++) data[i] = 0.1 * (rng.next() - 0.5)
    return [name, { shape, data }]
  }))
}

/**
 * The longest the network thread went without running a timer while `run` ran, and the wall time (ms):
 * what a peer's libp2p would have waited, at most, for its turn.
 */
async function heldMillis (run: () => Promise<unknown>): Promise<{ held: number, wall: number }> {
  const start = performance.now()
  let last = start
  let held = 0
  const ticker = setInterval(() => {
    const now = performance.now()
    held = Math.max(held, now - last)
    last = now
  }, 1)
  await run()
  const end = performance.now()
  clearInterval(ticker)
  return { held: Math.max(held, end - last), wall: end - start }
}

const fmt = (ms: number): string => ms < 10 ? ms.toFixed(1) : ms.toFixed(0)

export async function networkThreadBench (command: string): Promise<void> {
  const perUpdate: string[][] = []
  const perRound: string[][] = []
  const offThreadRows: string[][] = []
  const pool = await startComputePool({ workers: 1 })
  for (const name of PRESET_NAMES) {
    const spec = presetSpec(name)
    const values = spec.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0)
    const reference = update(spec, `${name}:reference`)
    const payload = encodePayload(reference)
    process.stderr.write(`${name}: Global-LiGO of ${values.toLocaleString('en-US')} values\n`)
    perUpdate.push([name, values.toLocaleString('en-US'), `${(payload.length / 1024).toFixed(1)} KiB`,
      fmt(millis(() => updateHash('f'.repeat(64), 1, 'peer', payload))),
      fmt(millis(() => decodePayload(payload, spec))),
      fmt(millis(() => { checkValueBounds(reference, reference) })),
      fmt(millis(() => globalDigest(reference)))])
    for (const count of CONTRIBUTIONS) {
      // As the engine holds a round: peers' updates decoded into shared memory, the peer's own in ordinary memory.
      const contributions: Contribution[] = Array.from({ length: count }, (_, i) => ({ from: `peer${String(i).padStart(2, '0')}`, sampleCount: 100 + i, tensors: update(spec, `${name}:${i}`, i === 0 ? undefined : sharedFloat32) }))
      const rules = RULES.map(aggregation => fmt(millis(() => strategyFor(aggregation).aggregate(contributions, reference))))
      perRound.push([name, String(count), ...rules, fmt(millis(() => consensusDistances(contributions.map(c => c.tensors))))])
      if (values * count < OFF_THREAD_MIN_VALUES) continue
      const offThreadCells: string[] = []
      for (const aggregation of RULES) {
        const strategy = offThread(aggregation, pool.aggregate)
        await strategy.aggregate(contributions, reference)
        const { held, wall } = await heldMillis(async () => await strategy.aggregate(contributions, reference))
        offThreadCells.push(`${fmt(held)} (${fmt(wall)})`)
      }
      offThreadRows.push([name, String(count), ...offThreadCells])
    }
  }
  await pool.close()
  writeSection('network-thread', 'Averaging\'s work on the network thread, by Global-LiGO size', command, [
    'Milliseconds of the network thread (median of 3 calls after a warm-up), on synthetic updates of each preset\'s Global-LiGO shapes. Per update a peer receives: `updateHash` checks it against its announcement, `decodePayload` reads it and checks every value is finite, `checkValueBounds` its distance from the current Global-LiGO, `globalDigest` names a state. Per round it closes: each rule over a group of 4 or 7 updates or an all-to-all round of 16, computed on this thread, and the consensus distances a simulation reports. Training runs in compute workers; the rest runs beside libp2p.',
    '',
    markdownTable(['preset', 'values', 'payload', 'updateHash', 'decodePayload', 'checkValueBounds', 'globalDigest'], perUpdate),
    '',
    markdownTable(['preset', 'updates', ...RULES.map(r => r.rule), 'consensus distances'], perRound),
    '',
    `A peer aggregates rounds of ${OFF_THREAD_MIN_VALUES.toLocaleString('en-US')} values or more in its compute worker (\`OFF_THREAD_MIN_VALUES\`, node/federation/strategy.ts), with the other peers' updates in shared memory as the engine decodes them and its own copied: the longest the network thread then went without running a 1 ms timer, and in brackets the wall time of the aggregation, both in ms.`,
    '',
    markdownTable(['preset', 'updates', ...RULES.map(r => r.rule)], offThreadRows)
  ].join('\n'))
}
