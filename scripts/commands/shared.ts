/** Flag groups and helpers that several commands share: data selection, training settings, output. */
import { loadShard, parsePartition, parseShard, DATA_SPEC_HELP, VALIDATION_FRACTION } from '../../node/data/index.js'
import { DEFAULT_BATCH_SIZE, stepsForEpochs } from '../../node/train/trainer.js'
import { consoleProgress, silentProgress } from '../../node/train/progress.js'
import { createLogger } from '../../node/log.js'
import { InvalidArgumentError } from '../../node/errors.js'
import { FINETUNE_SELECTIONS, hasFinetuneBudget } from '../../protocol/manifest.js'
import { LIMITS } from '../../protocol/constants.js'
import type { FinetuneBudget, Manifest } from '../../protocol/manifest.js'
import type { Logger } from '../../node/log.js'
import type { ProgressSink } from '../../node/train/progress.js'
import { choiceFlag, numberFlag, optionalString, stringFlag } from '../args.js'
import type { TrainTest } from '../../node/data/index.js'
import type { TokenizerConfig } from '../../node/model/tokenizer.js'
import type { TrainOptions } from '../../node/train/trainer.js'
import type { Flags, FlagSpec } from '../args.js'

export const DATA_FLAGS: Record<string, FlagSpec> = {
  data: { type: 'string', value: 'SPEC', help: `training data: ${DATA_SPEC_HELP}`, default: 'mnist' },
  shard: { type: 'string', value: 'i/N', help: 'use only participant i of N (0-based), split by --partition', default: '0/1' },
  partition: { type: 'string', value: 'HOW', help: 'how shards are cut: iid, or dirichlet:ALPHA (label skew; 0.5 is strong, 100 is near iid)', default: 'iid' },
  seed: { type: 'string', value: 'N', help: 'seed for the train/test split, shards, initial weights and batch order', default: '0' }
}

export const TRAIN_FLAGS: Record<string, FlagSpec> = {
  'batch-size': { type: 'string', value: 'N', help: 'examples per step', default: String(DEFAULT_BATCH_SIZE) },
  lr: { type: 'string', value: 'RATE', help: 'peak AdamW learning rate (linear warm-up, cosine decay)', default: '0.002' },
  'weight-decay': { type: 'string', value: 'W', help: 'AdamW decoupled weight decay on matrices', default: '0.05' }
}

export const FORMAT_FLAG: Record<string, FlagSpec> = {
  format: { type: 'string', value: 'FMT', help: 'output: table (for people) or json (one JSON object on stdout)', default: 'table' }
}

export const LOG_FLAGS: Record<string, FlagSpec> = {
  log: { type: 'string', value: 'FMT', help: 'text, or json (one JSON object per line)', default: 'text' },
  quiet: { type: 'boolean', help: 'print only problems and final results; no progress' },
  verbose: { type: 'boolean', help: 'also print every accepted update and connection counts' }
}

/**
 * Phase 4's budget (the manifest's schedule.finetuneEpochs or finetuneSteps), for the commands that
 * write a manifest; `fallback` says what neither flag gives, and why.
 */
export function finetuneBudgetFlags (fallback: string): Record<string, FlagSpec> {
  return {
    'finetune-epochs': { type: 'string', value: 'E', help: `passes over its own training rows each participant makes, after the last round, training its final model's own weights (phase 4, private; 0: none). A budget in epochs grows with the rows: a fixed number of steps is many epochs of a small shard and few of a large one, and 12 epochs measured a larger sharing gain than 200 steps on 4, 8 and 16 peers (docs/method.md, "A phase-4 budget in epochs"). ${fallback}` },
    'finetune-steps': { type: 'string', value: 'N', help: 'the same phase\'s budget in steps instead of epochs (give one of the two; 0: none)' }
  }
}

/** --finetune-epochs or --finetune-steps as the manifest writes them (0 as no field); neither: `fallback`. */
export function readFinetuneBudget (flags: Flags, fallback: FinetuneBudget): FinetuneBudget {
  const epochs = optionalString(flags, 'finetune-epochs')
  const steps = optionalString(flags, 'finetune-steps')
  if (epochs !== undefined && steps !== undefined) throw new InvalidArgumentError(`--finetune-epochs ${epochs} and --finetune-steps ${steps} both set phase 4's budget; give one of them`)
  if (epochs !== undefined) {
    const e = numberFlag(flags, 'finetune-epochs', 0, LIMITS.maxFinetuneEpochs, true)
    return e > 0 ? { finetuneEpochs: e } : {}
  }
  if (steps !== undefined) {
    const n = numberFlag(flags, 'finetune-steps', 0, 1_000_000, true)
    return n > 0 ? { finetuneSteps: n } : {}
  }
  return fallback
}

/** Phase 4's selection rule and pull (the manifest's schedule.finetuneSelect and finetunePull), for the commands that set phase 4's budget. */
export const FINETUNE_FLAGS: Record<string, FlagSpec> = {
  'finetune-pull': { type: 'string', value: 'LAMBDA|C/n', help: `how hard fine-tuning pulls the weights back toward the grown ones: the loss adds lambda/2 x |weights - grown weights|^2 (L2-SP; 0: no pull), with lambda = LAMBDA, or C/n = C over each participant's training rows. It keeps what the federation grew while fitting your rows: 10 turned a sharing gain of +1.1 points into +4.5 on 16 peers of about 345 digits each, and cost 3 points on 4 peers of about 2,000 each, where fine-tuning does not over-fit; 1000/n (lambda 0.5 there) still cost 2 (docs/method.md, "Pulling phase 4 toward the grown model"; needs --finetune-epochs or --finetune-steps)`, default: '0' },
  'finetune-select': { type: 'string', value: 'RULE', help: `which fine-tuned weights each participant keeps: ${FINETUNE_SELECTIONS.join(' or ')}. last keeps the last step's; best-held-out keeps the fine-tuning check that scores best on ${VALIDATION_FRACTION * 100}% of your rows held out from it: it helps many peers with little near-IID data each, and keeps too early a model on skewed data (docs/method.md, "Choosing when phase 4 stops"; needs --finetune-epochs or --finetune-steps)`, default: 'last' }
}

/** Where each participant's classifier comes from: the manifest's ligo.privateHead. */
const HEADS = ['private', 'grown'] as const

/** --head, for the commands that write a manifest, with the command's default and why it is that. */
export function headFlag (fallback: typeof HEADS[number], why: string): Record<string, FlagSpec> {
  return { head: { type: 'string', value: 'FROM', help: `each participant's classifier: private (trained with Global-LiGO every round and kept, never sent; fedgrow only) or grown (by Global-LiGO, like the rest of the model). ${why} (docs/method.md, "A private head")`, default: fallback } }
}

export const readPrivateHead = (flags: Flags): boolean => choiceFlag(flags, 'head', HEADS) === 'private'

const GIVE_A_BUDGET = 'give --finetune-epochs E (e.g. 12) or --finetune-steps N (e.g. 200)'

/**
 * --finetune-select and --finetune-pull, for phase 4 with `budget`, as the manifest writes them (the
 * defaults as no field): a rule other than last, or a pull, needs a budget to act on.
 */
export function readFinetune (flags: Flags, budget: FinetuneBudget): Pick<Manifest['schedule'], 'finetuneSelect' | 'finetunePull' | 'finetunePullPerRow'> {
  const select = choiceFlag(flags, 'finetune-select', FINETUNE_SELECTIONS)
  if (select !== 'last' && !hasFinetuneBudget(budget)) throw new InvalidArgumentError(`--finetune-select ${select} chooses among fine-tuning checks; ${GIVE_A_BUDGET}`)
  const pull = readPull(flags)
  if (pull.finetunePull !== undefined && !hasFinetuneBudget(budget)) throw new InvalidArgumentError(`--finetune-pull ${stringFlag(flags, 'finetune-pull')} pulls fine-tuned weights toward the grown ones; ${GIVE_A_BUDGET}`)
  return { ...(select !== 'last' ? { finetuneSelect: select } : {}), ...pull }
}

/** --finetune-pull: LAMBDA, or C/n for C over each participant's training rows; nothing for 0. */
function readPull (flags: Flags): Pick<Manifest['schedule'], 'finetunePull' | 'finetunePullPerRow'> {
  const text = stringFlag(flags, 'finetune-pull').trim()
  const perRow = text.endsWith('/n')
  const number = perRow ? text.slice(0, -2) : text
  const pull = Number(number)
  if (number.trim() === '' || !Number.isFinite(pull) || pull < 0 || pull > (perRow ? LIMITS.maxFinetunePullPerRow : LIMITS.maxFinetunePull)) {
    throw new InvalidArgumentError(`--finetune-pull ${text}: must be a number from 0 to ${LIMITS.maxFinetunePull} (lambda), or C/n with C from 0 to ${LIMITS.maxFinetunePullPerRow} (lambda = C over each participant's training rows)`)
  }
  return pull === 0 ? {} : { finetunePull: pull, ...(perRow ? { finetunePullPerRow: true } : {}) }
}

/** The logger and progress sink that --log, --quiet and --verbose ask for, writing events with `write`. */
export function readLogging (flags: Flags, write?: (line: string) => void): { log: Logger, onProgress: ProgressSink } {
  if (flags.quiet === true && flags.verbose === true) throw new InvalidArgumentError('--quiet and --verbose contradict each other; pick one')
  const level = flags.quiet === true ? 'quiet' : flags.verbose === true ? 'verbose' : 'normal'
  return { log: createLogger(choiceFlag(flags, 'log', ['text', 'json'] as const), write, level), onProgress: level === 'quiet' ? silentProgress : consoleProgress() }
}

export function readSeed (flags: Flags): number {
  return numberFlag(flags, 'seed', 0, 2 ** 32 - 1, true)
}

/** The rows --data, --shard, --partition and --seed select; texts tokenized with `tokenizer` (the model's). */
export function readData (flags: Flags, tokenizer?: TokenizerConfig): TrainTest {
  return loadShard(stringFlag(flags, 'data'), parseShard(stringFlag(flags, 'shard')), parsePartition(stringFlag(flags, 'partition')), readSeed(flags), tokenizer)
}

/** Steps from --steps, or else --epochs over `trainCount` rows. */
export function readTrainOptions (flags: Flags, trainCount: number, phase: string): TrainOptions & { batchSize: number } {
  const batchSize = numberFlag(flags, 'batch-size', 1, 65536, true)
  const steps = optionalString(flags, 'steps') !== undefined
    ? numberFlag(flags, 'steps', 0, 1e9, true)
    : stepsForEpochs(trainCount, numberFlag(flags, 'epochs', 0, 1e6, true), batchSize)
  return {
    steps,
    batchSize,
    learningRate: numberFlag(flags, 'lr', 0, 10),
    weightDecay: numberFlag(flags, 'weight-decay', 0, 10),
    seed: readSeed(flags),
    phase,
    onProgress: consoleProgress()
  }
}

export type OutputFormat = 'table' | 'json'

export function readFormat (flags: Flags): OutputFormat {
  return choiceFlag(flags, 'format', ['table', 'json'] as const)
}

/** Prints `result` as one JSON object, or `lines` for people. */
export function printResult (format: OutputFormat, result: unknown, lines: string[]): void {
  process.stdout.write(format === 'json' ? JSON.stringify(result) + '\n' : lines.join('\n') + '\n')
}

export const percent = (fraction: number): string => `${(fraction * 100).toFixed(2)}%`
