import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { simulate, DEFAULT_METHODS, DEFAULT_SMALL_MODEL_SOURCE, METHOD_NAMES, SHARES_MODEL } from '../../node/simulation/index.js'
import { PUBLIC_FRACTION, SMALL_MODEL_SOURCES } from '../../node/simulation/small-models.js'
import { PRESETS, PRESET_NAMES } from '../../node/simulation/presets.js'
import { teeLogger } from '../../node/log.js'
import { parseBackendChoice } from '../../node/backend.js'
import { PLOTTED } from '../../node/dashboard/index.js'
import { renderPage } from '../../node/dashboard/page.js'
import { DASHBOARD_FLAG, serveDashboardFlag } from './servers.js'
import type { LogEvent } from '../../node/log.js'
import type { FedgrowEvent, TaggedPeerEvent } from '../../node/events.js'
import { InvalidArgumentError } from '../../node/errors.js'
import { DATA_SPEC_HELP, isTextDataSpec } from '../../node/data/index.js'
import { ATTACKS } from '../../node/federation/attacks.js'
import { AGGREGATION_RULES } from '../../protocol/manifest.js'
import { LIMITS } from '../../protocol/constants.js'
import { choiceFlag, numberFlag, optionalString, stringFlag } from '../args.js'
import { FINETUNE_FLAGS, finetuneBudgetFlags, FORMAT_FLAG, headFlag, readPrivateHead, LOG_FLAGS, percent, printResult, readFinetune, readFinetuneBudget, readFormat, readLogging } from './shared.js'
import type { MethodName, SimulationResult } from '../../node/simulation/index.js'
import type { Command } from '../args.js'

const kb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`

export function resultTable (result: SimulationResult): string[] {
  const header = ['method', 'accuracy mean', 'std', 'min', 'target params', 'trainable/peer', 'shared/round', 'sent/peer/round', 'recv/peer/round', 'wall s']
  const rows = result.methods.map(m => [m.name + (SHARES_MODEL.has(m.name) ? ' (shares a model)' : ''), percent(m.accuracy.mean), percent(m.accuracy.std), percent(m.accuracy.min), m.targetParams.toLocaleString('en-US'), m.trainableParamsPerPeer.toLocaleString('en-US'), m.sharedParamsPerRound.toLocaleString('en-US'), kb(m.bytesSentPerPeerPerRound), kb(m.bytesReceivedPerPeerPerRound), m.wallSeconds.toFixed(1)])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ')
  const c = result.config
  const f = c.faults
  const extras = [c.aggregation !== undefined ? `, aggregation ${c.aggregation}` : '', c.groupSize !== undefined ? `, group averaging (groups of ${c.groupSize}+)` : '', c.byzantine !== undefined ? `, ${c.byzantine} hostile (${String(c.attack)})` : '', f !== undefined ? `, faults: kill ${f.kill ?? 0}, drop ${f.drop ?? 0}, partition ${f.partition ?? 0} rounds` : ''].join('')
  const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`
  const k = result.compute
  const compute = `compute: ${k.workers} ${k.backend} worker(s); peak RSS ${mib(k.peakRssBytes)}, ${mib(k.rssPerPeerBytes)} per peer; per worker ${k.perWorker.map(w => mib(w.heapBytes + w.backendBytes)).join(', ')} (JS heap + backend memory); main thread blocked at most ${k.mainThreadDelayMs.max.toFixed(0)} ms (p99 ${k.mainThreadDelayMs.p99.toFixed(0)} ms)`
  const smallMean = mean(result.smallModels.map(m => m.testAccuracy))
  const small = `small models alone (${result.smallModels[0]?.source === 'own' ? 'random weights' : 'the public checkpoint'} trained on each peer's rows until validation accuracy stopped rising): mean ${percent(smallMean)}, min ${percent(Math.min(...result.smallModels.map(m => m.testAccuracy)))}`
  return [`${c.peers} peers, ${c.rounds} rounds, preset ${c.preset}, alpha ${c.alpha}, seed ${c.seed}${extras}`, line(header), ...rows.map(line), small, ...verdict(result, smallMean), compute]
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
const points = (a: number, b: number): string => `${a >= b ? '+' : ''}${((a - b) * 100).toFixed(1)} points`

/** One line on what the comparison means, when fedgrow ran with something to compare it to. */
function verdict (result: SimulationResult, smallMean: number): string[] {
  const accuracy = (name: MethodName): number | undefined => result.methods.find(m => m.name === name)?.accuracy.mean
  const fedgrow = accuracy('fedgrow')
  if (fedgrow === undefined) return []
  const independent = accuracy('independent')
  const fedavg = accuracy('fedavg')
  return [[
    `meaning: fedgrow's grown models are ${points(fedgrow, smallMean)} over the small models each peer trains alone`,
    independent !== undefined ? `, ${points(fedgrow, independent)} over growing alone (independent)` : '',
    fedavg !== undefined ? `, and ${points(fedgrow, fedavg)} against fedavg, which shares the whole model` : ''
  ].join('')]
}

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'Run a federation of real libp2p peers on this machine and compare fedgrow with its baselines.',
  details: [
    'Each peer gets its own shard of the data (label-Dirichlet with --alpha, seeded) and its own small model,',
    'whose width and depth are drawn from the preset and which is pre-trained on that shard (cached in',
    'OUT/cache). Methods: fedgrow (share Global-LiGO), fedavg (train the target from scratch and share all',
    'of it), independent (Dual-LiGO, no sharing), local (the target from scratch, no sharing), and',
    'authors-code (Dual-LiGO sharing the intermediate model as well as Global-LiGO, as the Fed-Grow',
    'authors\' code does; not run unless asked). Accuracy is each peer\'s final model on its own test split.',
    'Bytes are measured by libp2p\'s transfer counters. Presets: tiny (CI), small (benchmarks), paper',
    '(the authors\' shapes; for GPU machines), text (--data spam or text:FILE; the default for text data).',
    '',
    'Fault injection (--kill, --drop, --partition) is seeded; with faults, a round needs half the peers',
    '(quorum) instead of all, and JSON results gain a "faults" object per method, with the number of',
    'different Global-LiGOs the peers ended on (1 means they agree).',
    '',
    'Every peer\'s libp2p node runs on the main thread; its training runs on a pool of compute worker',
    'threads (--workers), so peers keep answering each other while they train.',
    '',
    'OUT/report.html is a self-contained page (open it from disk) with the comparison table and the',
    'per-round curves of every method and peer; --dashboard shows the same page live while the run goes.'
  ].join('\n'),
  flags: {
    peers: { type: 'string', value: 'N', help: 'number of peers', default: '4' },
    rounds: { type: 'string', value: 'R', help: 'federated rounds (default: the preset\'s)' },
    preset: { type: 'string', value: 'NAME', help: `${PRESET_NAMES.join(', ')} (default: tiny, or text for text data: 64 tokens of 4,096 hashed words)` },
    alpha: { type: 'string', value: 'A', help: 'label-Dirichlet concentration: 100 is near iid, 0.5 is skewed', default: '100' },
    methods: { type: 'string', value: 'LIST', help: `comma-separated: ${METHOD_NAMES.join(',')}`, default: DEFAULT_METHODS.join(',') },
    seed: { type: 'string', value: 'N', help: 'seed for shards, small-model shapes and initial weights', default: '0' },
    data: { type: 'string', value: 'SPEC', help: `the data the peers split among them: ${DATA_SPEC_HELP}; models take its image size, channels and classes, or for texts the preset's tokenizer`, default: 'mnist' },
    'pretrain-epochs': { type: 'string', value: 'E', help: 'most epochs a small model (and a public checkpoint) trains before it counts as flat; lower it for quick runs (default: the preset\'s)' },
    ...finetuneBudgetFlags('Default: the preset\'s (12 epochs; 100 steps in text).'),
    ...FINETUNE_FLAGS,
    ...headFlag('grown', 'Grown here, because after phase 4 the two end within 0.1 point; before it, a private head is what made sharing pay on skewed data'),
    'small-models': { type: 'string', value: 'FROM', help: 'what each peer grows: checkpoint (a public checkpoint of its shape, trained on a slice of the data no peer holds, as people start from published models; Local-LiGO is then not trained), public (that checkpoint fine-tuned on the peer\'s rows until flat) or own (random weights trained on the peer\'s rows until flat)', default: DEFAULT_SMALL_MODEL_SOURCE },
    'public-fraction': { type: 'string', value: 'F', help: `share of the data's training rows that no peer holds, on which the public checkpoints train: larger stands for participants who start from a stronger published model (default: ${PUBLIC_FRACTION}, 1,500 of the bundled 8,000 digits)` },
    aggregation: { type: 'string', value: 'RULE', help: `how peers combine updates: ${AGGREGATION_RULES.join(', ')}`, default: 'mean' },
    'group-size': { type: 'string', value: 'G', help: 'average in groups of G to 2G-1 peers, redrawn every round, instead of with everyone (group averaging: a peer\'s traffic stops growing with the federation; peers then end on nearby, not equal, Global-LiGOs) (default: all-to-all)' },
    byzantine: { type: 'string', value: 'F', help: 'share of peers that are hostile (accuracy is reported over the honest ones)', default: '0' },
    attack: { type: 'string', value: 'NAME', help: `what hostile peers send: ${ATTACKS.join(', ')}`, default: 'signflip' },
    kill: { type: 'string', value: 'F', help: 'share of peers crashed once each, mid-round, and restarted 1 s later on their saved state', default: '0' },
    drop: { type: 'string', value: 'P', help: 'probability that a peer loses each update announcement it receives (re-announcements may get through)', default: '0' },
    partition: { type: 'string', value: 'ROUNDS', help: 'split the peers into two halves that cannot reach each other after round 2, until the faster half has run ROUNDS rounds alone; then heal', default: '0' },
    workers: { type: 'string', value: 'N', help: 'compute worker threads the peers\' training is spread over (peer i on worker i mod N); results are the same for any N (default: one per core, as memory allows, at most one per peer)' },
    out: { type: 'string', value: 'DIR', help: 'state, cache, results.json and report.html', default: 'runs/simulate' },
    ...DASHBOARD_FLAG,
    quiet: LOG_FLAGS.quiet,
    verbose: LOG_FLAGS.verbose,
    ...FORMAT_FLAG
  },
  computeInWorkers: true,
  async run (flags) {
    const format = readFormat(flags)
    const named = PRESETS[optionalString(flags, 'preset') === undefined ? (isTextDataSpec(stringFlag(flags, 'data')) ? 'text' : 'tiny') : choiceFlag(flags, 'preset', PRESET_NAMES)]
    const preset = {
      ...named,
      ...(optionalString(flags, 'pretrain-epochs') !== undefined ? { pretrainMaxEpochs: numberFlag(flags, 'pretrain-epochs', 1, 100000, true) } : {}),
      finetune: readFinetuneBudget(flags, named.finetune)
    }
    const phase4 = readFinetune(flags, preset.finetune)
    const methods = stringFlag(flags, 'methods').split(',').map(m => m.trim())
    for (const m of methods) if (!(METHOD_NAMES as readonly string[]).includes(m)) throw new InvalidArgumentError(`--methods: "${m}" is not one of ${METHOD_NAMES.join(', ')}`)
    const outDir = stringFlag(flags, 'out')
    mkdirSync(outDir, { recursive: true })
    const { log, onProgress } = readLogging({ ...flags, log: 'text' }, (line) => { process.stderr.write(line + '\n') })
    const dashboard = await serveDashboardFlag(flags, `fedgrow simulate: ${methods.join(', ')}`, 'fedgrow simulate')
    // Everything the report plots, timestamped as the dashboard does it.
    const events: LogEvent[] = []
    const record = (e: FedgrowEvent | TaggedPeerEvent): void => {
      if (!PLOTTED.has(e.event)) return
      events.push({ ...e, t: Date.now() })
      dashboard?.publish(e)
    }
    let result: SimulationResult
    try {
      result = await simulate({
        peers: numberFlag(flags, 'peers', 1, 1024, true),
        rounds: optionalString(flags, 'rounds') === undefined ? preset.rounds : numberFlag(flags, 'rounds', 1, 100000, true),
        preset,
        alpha: numberFlag(flags, 'alpha', 1e-6, 1e9),
        methods: methods as MethodName[],
        seed: numberFlag(flags, 'seed', 0, 2 ** 32 - 1, true),
        data: stringFlag(flags, 'data'),
        smallModels: choiceFlag(flags, 'small-models', SMALL_MODEL_SOURCES),
        ...(optionalString(flags, 'public-fraction') !== undefined ? { publicFraction: numberFlag(flags, 'public-fraction', 0.01, 0.9) } : {}),
        outDir,
        aggregation: choiceFlag(flags, 'aggregation', AGGREGATION_RULES),
        ...phase4,
        privateHead: readPrivateHead(flags),
        ...(optionalString(flags, 'group-size') !== undefined ? { groupSize: numberFlag(flags, 'group-size', 2, LIMITS.maxGroupSize, true) } : {}),
        byzantine: numberFlag(flags, 'byzantine', 0, 0.99),
        attack: choiceFlag(flags, 'attack', ATTACKS),
        faults: { kill: numberFlag(flags, 'kill', 0, 0.99), drop: numberFlag(flags, 'drop', 0, 0.99), partition: numberFlag(flags, 'partition', 0, 1000, true) },
        log: teeLogger(log, record),
        onPeerEvent: record,
        onProgress,
        ...(optionalString(flags, 'workers') !== undefined ? { workers: numberFlag(flags, 'workers', 1, 256, true) } : {}),
        backend: parseBackendChoice(optionalString(flags, 'backend'))
      })
    } finally {
      await dashboard?.close()
    }
    writeFileSync(join(outDir, 'results.json'), JSON.stringify(result, null, 2) + '\n')
    writeFileSync(join(outDir, 'report.html'), renderPage(`fedgrow simulate: ${resultTable(result)[0]}`, { events, results: result }))
    printResult(format, result, [...resultTable(result), `results: ${join(outDir, 'results.json')}`, `report: ${join(outDir, 'report.html')}`])
  }
}
