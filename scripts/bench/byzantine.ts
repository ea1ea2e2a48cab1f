/**
 * Byzantine robustness: 20% hostile peers (1 of 5), each attack against the plain mean and each robust
 * rule, compared with a clean run. Preset tiny, fedgrow only; accuracy over the honest peers.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initBackend } from '../../node/backend.js'
import { simulate } from '../../node/simulation/index.js'
import { PRESETS } from '../../node/simulation/presets.js'
import { ATTACKS } from '../../node/federation/attacks.js'
import { AGGREGATION_RULES } from '../../protocol/manifest.js'
import { markdownTable, writeSection } from './report.js'
import type { SimulationOptions } from '../../node/simulation/index.js'

const PEERS = 5
const BYZANTINE = 0.2
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`

export async function byzantineBench (command: string): Promise<void> {
  await initBackend('wasm')
  const cache = mkdtempSync(join(tmpdir(), 'fedgrow-byzantine-'))
  const run = async (overrides: Partial<SimulationOptions>): Promise<number> => {
    const result = await simulate({ peers: PEERS, rounds: PRESETS.tiny.rounds, preset: PRESETS.tiny, alpha: 100, methods: ['fedgrow'], seed: 0, outDir: cache, log: () => {}, ...overrides })
    process.stderr.write(`${JSON.stringify(result.config)}: ${pct(result.methods[0].accuracy.mean)}\n`)
    return result.methods[0].accuracy.mean
  }
  const rowFor = async (label: string, overrides: Partial<SimulationOptions>): Promise<string[]> => {
    const cells = [label]
    for (const rule of AGGREGATION_RULES) cells.push(pct(await run({ ...overrides, aggregation: rule })))
    return cells
  }
  const rows = [await rowFor('none (clean)', {})]
  for (const attack of ATTACKS) rows.push(await rowFor(attack, { byzantine: BYZANTINE, attack }))
  writeSection('byzantine', 'Byzantine peers: attacks against aggregation rules (preset tiny, fedgrow)', command, [
    `${PEERS} peers, ${PRESETS.tiny.rounds} rounds, ${BYZANTINE * 100}% hostile (the last peer). Each hostile peer trains honestly, then shares a corrupted update: scale (its change x10), signflip (its change reversed), noise (N(0,1) on every value), nan (every value NaN, which validation rejects whatever the rule).`,
    'Cells: mean test accuracy of the honest peers\' grown models, each on its own test split. The clean row has no hostile peer.',
    '',
    markdownTable(['attack', ...AGGREGATION_RULES], rows)
  ].join('\n'))
}
