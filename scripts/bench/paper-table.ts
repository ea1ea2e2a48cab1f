/**
 * The paper's comparison, reproduced on this machine with real libp2p peers: fedgrow against growing
 * alone (independent), the model-sharing baselines (fedavg, authors-code) and the target trained alone
 * (local), on label-Dirichlet alpha 100 ("iid") and 0.5, on three axes: rounds, bytes sent, training FLOPs.
 * `--peers N[,N]` (default 8), `--preset NAME` (default small), `--alphas A[,A]`, `--rounds R`,
 * `--methods M,M` (default all five; fedgrow, independent and fedavg are always run: the comparison needs them),
 * `--private-head` (fedgrow and independent keep each peer's classifier private: the manifest's ligo.privateHead),
 * `--seed S` (default 0: shards, small models and training order), `--public-fraction F` (the public
 * checkpoints' share of the training rows; default PUBLIC_FRACTION), `--report` (write the section again
 * from the runs that the same command kept in runs/paper-table, without rerunning them).
 * A run narrower than the full comparison (other sizes, one alpha, fewer methods, other than 15 rounds) writes its own section.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { initBackend } from '../../node/backend.js'
import { METHOD_NAMES, simulate, SHARES_MODEL } from '../../node/simulation/index.js'
import { describeFinetune, PRESETS } from '../../node/simulation/presets.js'
import { PUBLIC_FRACTION } from '../../node/simulation/small-models.js'
import { curveTrend, FLAT_TOLERANCE, TREND_WINDOW_ROUNDS } from '../../node/simulation/curves.js'
import { createLogger } from '../../node/log.js'
import { consoleProgress } from '../../node/train/progress.js'
import { flagValue, markdownTable, writeSection } from './report.js'
import type { CurvePoint, MethodName, MethodResult, SimulationOptions, SimulationResult } from '../../node/simulation/index.js'

const METHODS: MethodName[] = ['fedgrow', 'independent', 'fedavg', 'local', 'authors-code']
/** What comparisonSection compares: always run. */
const COMPARED: MethodName[] = ['fedgrow', 'independent', 'fedavg']
/** The federation size whose tables keep the unsuffixed section name. */
const TABLE_PEERS = 8
/** The rounds every kept table ran: a run of other rounds writes sections of its own beside them. */
const TABLE_ROUNDS = 15
/** One letter per method in the ASCII plots (fedgrow and fedavg share their first). */
const PLOT_LETTERS: Record<MethodName, string> = { fedgrow: 'G', independent: 'I', fedavg: 'F', local: 'L', 'authors-code': 'A' }
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`
const points = (a: number, b: number): string => `${a >= b ? '+' : ''}${((a - b) * 100).toFixed(2)}`

/** A method's accuracy once it had spent no more than `budget` on `axis` (its last curve point within it). */
function accuracyWithin (m: MethodResult, axis: 'bytesSentPerPeer' | 'trainFlopsPerPeer', budget: number): { accuracy: number, round: number } | undefined {
  const within = m.curve.filter(p => p[axis] <= budget * 1.0001)
  const last = within.at(-1)
  return last === undefined ? undefined : { accuracy: last.accuracy.mean, round: last.round }
}

/** An ASCII plot of each method's mean accuracy by round: one letter per method. */
function asciiCurves (methods: MethodResult[], height = 12): string {
  const rounds = Math.max(...methods.map(m => m.curve.length))
  const all = methods.flatMap(m => m.curve.map(p => p.accuracy.mean))
  const lo = Math.floor(Math.min(...all) * 20) / 20
  const hi = Math.ceil(Math.max(...all) * 20) / 20
  const grid = Array.from({ length: height }, () => new Array<string>(rounds).fill(' '))
  const letters = methods.map(m => PLOT_LETTERS[m.name])
  methods.forEach((m, k) => m.curve.forEach((p: CurvePoint, i) => {
    const row = height - 1 - Math.round((p.accuracy.mean - lo) / Math.max(1e-9, hi - lo) * (height - 1))
    grid[row][i] = grid[row][i] === ' ' ? letters[k] : '*'
  }))
  const label = (row: number): string => pct(hi - (hi - lo) * row / (height - 1)).padStart(7)
  return [
    '```',
    ...grid.map((cells, row) => `${label(row)} |${cells.join('  ')}`),
    `        +${'-'.repeat(rounds * 3)}`,
    `         rounds 1..${rounds}; ${methods.map((m, k) => `${letters[k]} = ${m.name}`).join(', ')}; * = several`,
    '```'
  ].join('\n')
}

/** Whether each method's curve (before phase 4) had flattened, and naming those that had not. */
function curvesLine (methods: MethodResult[]): string {
  const trends = methods.map(m => ({ name: m.name, ...curveTrend(m.curve) }))
  const rising = trends.filter(t => t.trend === 'rising').map(t => t.name)
  return `- curves before phase 4, change over the last ${TREND_WINDOW_ROUNDS} rounds (first round within ${FLAT_TOLERANCE * 100} point of the best): ` +
    trends.map(t => `${t.name} ${points(t.change, 0)}, ${t.trend} (round ${t.plateauRound})`).join('; ') +
    (rising.length === 0 ? '; none still rising' : `; still rising: ${rising.join(', ')}, so this comparison is not at ${rising.length === 1 ? 'its' : 'their'} plateau: run more rounds`)
}

/** One run's comparison: accuracy across peers per method, bytes, FLOPs, and the curves by round. */
export function comparisonSection (result: SimulationResult): string {
  const by = (n: MethodName): MethodResult => result.methods.find(m => m.name === n)!
  const fedgrow = by('fedgrow')
  const independent = by('independent')
  const fedavg = by('fedavg')
  const smallMean = result.smallModels.reduce((s, m) => s + m.testAccuracy, 0) / result.smallModels.length
  const rows = result.methods.map(m => [m.name + (SHARES_MODEL.has(m.name) ? ' (shares a model)' : ''), pct(m.accuracy.mean), pct(m.accuracy.std), pct(m.accuracy.min), m.trainableParamsPerPeer.toLocaleString('en-US'), Math.round(m.bytesSentPerPeerPerRound).toLocaleString('en-US'), (m.curve.at(-1)!.trainFlopsPerPeer / 1e12).toFixed(2), m.wallSeconds.toFixed(0)])
  const fedgrowBytes = fedgrow.curve.at(-1)!.bytesSentPerPeer
  const fedgrowFlops = fedgrow.curve.at(-1)!.trainFlopsPerPeer
  const fedavgAtBytes = accuracyWithin(fedavg, 'bytesSentPerPeer', fedgrowBytes)
  const fedavgAtFlops = accuracyWithin(fedavg, 'trainFlopsPerPeer', fedgrowFlops)
  return [
    `### ${result.config.peers} peers, alpha ${result.config.alpha}`,
    '',
    `Small models (public checkpoints, then each peer's rows until flat): mean ${pct(smallMean)}, min ${pct(Math.min(...result.smallModels.map(m => m.testAccuracy)))}.`,
    '',
    markdownTable(['method', 'accuracy mean', 'std', 'min', 'trainable params/peer', 'bytes sent/peer/round', 'training TFLOPs/peer', 'wall s'], rows),
    '',
    `- at equal rounds (${result.config.rounds}): fedgrow - independent = ${points(fedgrow.accuracy.mean, independent.accuracy.mean)} points (target >= +3); fedgrow - fedavg = ${points(fedgrow.accuracy.mean, fedavg.accuracy.mean)} points (target >= -2); fedgrow - small models = ${points(fedgrow.accuracy.mean, smallMean)} points`,
    `- before the fine-tuning (the grown models at round ${result.config.rounds}): fedgrow ${pct(fedgrow.curve.at(-1)!.accuracy.mean)}, independent ${pct(independent.curve.at(-1)!.accuracy.mean)} (${points(fedgrow.curve.at(-1)!.accuracy.mean, independent.curve.at(-1)!.accuracy.mean)} points), fedavg ${pct(fedavg.curve.at(-1)!.accuracy.mean)}`,
    `- at equal bytes (fedgrow's ${(fedgrowBytes / 1e6).toFixed(2)} MB per peer): fedavg ${fedavgAtBytes === undefined ? 'had sent more than that after round 1' : `reached ${pct(fedavgAtBytes.accuracy)} (round ${fedavgAtBytes.round})`} vs fedgrow ${pct(fedgrow.accuracy.mean)}`,
    `- at equal training FLOPs (fedgrow's ${(fedgrowFlops / 1e12).toFixed(2)} TFLOP per peer, Local-LiGO included): fedavg ${fedavgAtFlops === undefined ? 'had spent more after round 1' : `reached ${pct(fedavgAtFlops.accuracy)} (round ${fedavgAtFlops.round})`}`,
    curvesLine(result.methods),
    `- fedgrow bytes sent per round = ${(fedgrow.bytesSentPerPeerPerRound / fedavg.bytesSentPerPeerPerRound).toFixed(3)}x fedavg's (target <= 0.35x); trainable parameters = ${(fedgrow.trainableParamsPerPeer / fedgrow.targetParams).toFixed(3)}x the target's`,
    '',
    'Mean accuracy by round:',
    '',
    asciiCurves(result.methods)
  ].join('\n')
}

/** Where each run's results are kept, so that `--report` can write its section again without rerunning it. */
const RUNS_DIR = join('runs', 'paper-table')

async function simulateAndKeep (file: string, options: SimulationOptions): Promise<SimulationResult> {
  const result = await simulate(options)
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, JSON.stringify(result) + '\n')
  return result
}

function readRun (file: string): SimulationResult {
  if (!existsSync(file)) throw new Error(`--report: no kept run at ${file}; run the same command without --report first`)
  return JSON.parse(readFileSync(file, 'utf8')) as SimulationResult
}

const listFlag = (args: string[], flag: string, fallback: number[]): number[] => flagValue(args, flag)?.split(',').map(Number) ?? fallback

const DEFAULT_ALPHAS = [100, 0.5]

/** What a paper-table command runs: the runs it keeps, and the section it writes, are named by it. */
interface TableRuns { sizes: number[], alphas: number[], methods: MethodName[], privateHead: boolean, rounds: number, seed: number, publicFraction: number }

/**
 * The BENCHMARKS.md section a run writes: the full comparison (8 peers, both alphas, every method) keeps
 * the plain name; a narrower run gets a section of its own, named by what it narrowed, so it never
 * replaces the full tables.
 */
function sectionOf ({ sizes, alphas, methods, privateHead, rounds, seed, publicFraction }: TableRuns): { name: string, title: string } {
  const parts: Array<{ key: string, label: string }> = []
  if (rounds !== TABLE_ROUNDS) parts.push({ key: `rounds-${rounds}`, label: `${rounds} rounds` })
  if (seed !== 0) parts.push({ key: `seed-${seed}`, label: `seed ${seed}` })
  if (publicFraction !== PUBLIC_FRACTION) parts.push({ key: `public-${publicFraction}`, label: `public slice ${publicFraction}` })
  if (privateHead) parts.push({ key: 'private-head', label: 'private heads' })
  if (sizes.join() !== String(TABLE_PEERS)) parts.push({ key: `peers-${sizes.join('-')}`, label: `${sizes.join(', ')} peers` })
  if (alphas.join() !== DEFAULT_ALPHAS.join()) parts.push({ key: `alpha-${alphas.join('-')}`, label: `alpha ${alphas.join(', ')}` })
  if (methods.length !== METHODS.length) parts.push({ key: methods.join('-'), label: `only ${methods.join(', ')}` })
  const title = 'fedgrow vs its baselines'
  return parts.length === 0 ? { name: 'paper-table', title } : { name: `paper-table-${parts.map(x => x.key).join('-')}`, title: `${title}, ${parts.map(x => x.label).join('; ')}` }
}

function methodsFlag (args: string[]): MethodName[] {
  const asked = flagValue(args, '--methods')?.split(',') ?? METHODS
  const unknown = asked.filter(m => !(METHOD_NAMES as readonly string[]).includes(m))
  if (unknown.length > 0) throw new Error(`--methods: unknown ${unknown.join(', ')}; choose from ${METHOD_NAMES.join(', ')}`)
  return METHODS.filter(m => COMPARED.includes(m) || asked.includes(m))
}

export async function paperTableBench (command: string, args: string[]): Promise<void> {
  const methods = methodsFlag(args)
  const privateHead = args.includes('--private-head')
  const presetAt = args.indexOf('--preset')
  const preset = PRESETS[presetAt >= 0 ? args[presetAt + 1] : 'small']
  const rounds = listFlag(args, '--rounds', [preset.rounds])[0]
  const seed = listFlag(args, '--seed', [0])[0]
  const sizes = listFlag(args, '--peers', [TABLE_PEERS])
  const alphas = listFlag(args, '--alphas', DEFAULT_ALPHAS)
  const publicFraction = listFlag(args, '--public-fraction', [PUBLIC_FRACTION])[0]
  const { name, title } = sectionOf({ sizes, alphas, methods, privateHead, rounds, seed, publicFraction })
  const runFile = (peers: number, alpha: number): string => join(RUNS_DIR, name, `peers-${peers}-alpha-${alpha}.json`)
  const reportOnly = args.includes('--report')
  const results: SimulationResult[] = []
  if (!reportOnly) await initBackend('wasm')
  for (const peers of sizes) {
    for (const alpha of alphas) {
      results.push(reportOnly ? readRun(runFile(peers, alpha)) : await simulateAndKeep(runFile(peers, alpha), {
        peers,
        rounds,
        preset,
        alpha,
        methods,
        seed,
        privateHead,
        publicFraction,
        outDir: mkdtempSync(join(tmpdir(), `fedgrow-paper-table-${peers}-${alpha}-`)),
        log: createLogger('text', (line) => { process.stderr.write(line + '\n') }),
        onProgress: consoleProgress()
      }))
    }
  }
  const p = preset
  // A --report section names the command that ran the runs it shows.
  writeSection(name, `The paper's comparison: ${title} (preset ${p.name})`, command.replace(' --report', ''), [
    `Preset ${p.name}: small models dim ${p.smallDims.join('/')} x ${p.smallLayers.join('/')} layers (drawn per peer), intermediate ${p.intermediate.dim}x${p.intermediate.layers}, target ${p.target.dim}x${p.target.layers}, ${p.heads} heads, mlp ratio ${p.mlpRatio}.`,
    `${rounds} rounds of ${p.localSteps} local steps (batch ${p.batchSize}, AdamW lr ${p.learningRate}); Local-LiGO ${p.localLigoSteps} steps; ${describeFinetune(p.finetune)} after the last round.${privateHead ? ' fedgrow and independent keep each peer\'s classifier private (ligo.privateHead).' : ''} Peers are real libp2p nodes on 127.0.0.1 in one process; bytes come from libp2p's transfer counters (every protocol, including gossip and identify).${publicFraction === PUBLIC_FRACTION ? '' : ` The public checkpoints train on ${publicFraction} of the training rows (default ${PUBLIC_FRACTION}), which no peer holds.`}`,
    'Accuracy: each peer\'s final model on its own test split (the bundled digits\' 2,000 test rows, dealt by the same label mix), mean/std/min across peers.',
    '',
    ...results.map(comparisonSection)
  ].join('\n'))
}
