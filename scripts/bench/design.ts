/**
 * The design study behind fedgrow's defaults (issue: make collaboration pay). Every candidate runs on
 * the same shards, small models and seeds, over an ideal network: each round, every peer trains from
 * the same start and the round's aggregate is the sample-weighted mean of all updates (what the engine
 * computes when no update is lost). No libp2p here: this isolates the method from the transport, which
 * `npm run bench -- paper-table` measures with real peers.
 *
 * Data: the bundled digits' train split loses a "public" slice that no participant holds (what public
 * pre-trained checkpoints are trained on); the rest is dealt to the peers by label-Dirichlet(alpha).
 * Each peer keeps 15% of its rows for validation (early stopping of its small model only).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as tf from '../../node/tf.js'
import { initBackend } from '../../node/backend.js'
import { loadData, partition, splitTrainTest, VALIDATION_FRACTION } from '../../node/data/index.js'
import { CLASSIFIER_PARAMS, countClassifierParams, countParams, crossEntropy, flopsPerTrainStep, forward, initParams } from '../../node/model/vit.js'
import { grow } from '../../node/ligo/grow.js'
import { countLigoParams, initLigo } from '../../node/ligo/operator.js'
import { globalShape, localShape, materialise, trainOperator } from '../../node/ligo/dual.js'
import { evaluate, stepsForEpochs, train } from '../../node/train/trainer.js'
import { finetune, ownWeightsLoss, predictWith, trainUntilFlat } from '../../node/train/pretrain.js'
import { VariableSet } from '../../node/train/variables.js'
import { weightedMean } from '../../node/federation/aggregate.js'
import { FINETUNE_CHECK_STEPS, FINETUNE_RATE, keptCheck } from '../../node/federation/learner.js'
import { fromTensorMap, toTensorMap } from '../../node/storage/files.js'
import { smallConfigs, taskShapeOf } from '../../node/simulation/index.js'
import { PRESETS } from '../../node/simulation/presets.js'
import { validateVitConfig } from '../../node/model/config.js'
import { markdownTable, tableKeepingRows, writeSection } from './report.js'
import type { TrainTest, Dataset } from '../../node/data/index.js'
import type { NamedTensors } from '../../node/model/vit.js'
import type { ModelConfig } from '../../node/model/config.js'
import type { DualLigoPlan } from '../../node/ligo/dual.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import type { TrainOptions } from '../../node/train/trainer.js'

/** Where the small model comes from: trained from random on the peer's rows, fine-tuned from a public checkpoint of its shape, or that checkpoint as it is. */
type SmallSource = 'own' | 'public' | 'checkpoint'
/**
 * What a peer trains each round: frozen (Global-LiGO through a frozen intermediate model), joint
 * (Global-LiGO and the peer's private Local-LiGO together), authors (Global-LiGO and the intermediate
 * model's weights, both shared: the authors' code), scratch (the target's own weights from random),
 * ditto (frozen, plus a private copy of Global-LiGO trained each round with a pull of dittoLambda toward
 * the shared one, which the peer's model is grown from: Li et al., arXiv 2012.04221), fedrep (the peer's
 * private Local-LiGO and Global-LiGO trained in turn, each with the other frozen: Collins et al., arXiv
 * 2102.07078), privatehead (frozen, with the target's classifier head, or only its bias, kept private:
 * trained with Global-LiGO each round but never grown nor sent, as in FedPer, Arivazhagan et al., arXiv
 * 1912.00818).
 */
type Regime = 'frozen' | 'joint' | 'authors' | 'scratch' | 'ditto' | 'fedrep' | 'privatehead'

interface Candidate {
  name: string
  small: SmallSource
  /** Local-LiGO's initial seed: the peer's own, or one per small shape (every peer of a shape starts alike). */
  localInit: 'own' | 'common'
  regime: Regime
  share: boolean
  /** Marked in every table: what it shares is more than the growth operator. */
  sharesModel: boolean
  /** Local-LiGO steps before the rounds, for the frozen regime. @default LOCAL_LIGO_STEPS */
  localLigoSteps?: number
  /** The ditto regime's proximal weight: the loss adds dittoLambda/2 x |personal - shared|^2. */
  dittoLambda?: number
  /** The privatehead regime's private tensors. @default CLASSIFIER_PARAMS (the whole head) */
  privateParams?: readonly string[]
  /**
   * Makes the privatehead regime's private tensors a correction added to the grown head (starting at zero)
   * instead of a replacement for it, with a loss of headPull/2 x |correction|^2 pulling it toward zero.
   */
  headPull?: number
  /** The candidate that shares nothing it is compared with. @default its name with "independent" for "fedgrow" */
  twin?: string
}

const twinOf = (c: Pick<Candidate, 'name' | 'twin'>): string => c.twin ?? c.name.replace(/^fedgrow/, 'independent')
/** A candidate's name in the study's tables. */
const displayName = (c: Pick<Candidate, 'name' | 'sharesModel'>): string => c.name + (c.sharesModel ? ' (shares a model)' : '')
/** A fedgrow candidate and its twin in the seed report. */
const pairName = (c: Pick<Candidate, 'name' | 'twin'>): string => `${c.name} vs ${twinOf(c)}`

const LOCAL_LIGO_STEPS = PRESETS.tiny.localLigoSteps * 3

const CANDIDATES: Candidate[] = [
  { name: 'fedavg', small: 'own', localInit: 'own', regime: 'scratch', share: true, sharesModel: true },
  { name: 'local', small: 'own', localInit: 'own', regime: 'scratch', share: false, sharesModel: false },
  { name: 'fedgrow (frozen)', small: 'own', localInit: 'own', regime: 'frozen', share: true, sharesModel: false },
  { name: 'independent (frozen)', small: 'own', localInit: 'own', regime: 'frozen', share: false, sharesModel: false },
  { name: 'fedgrow joint', small: 'own', localInit: 'own', regime: 'joint', share: true, sharesModel: false },
  { name: 'independent joint', small: 'own', localInit: 'own', regime: 'joint', share: false, sharesModel: false },
  { name: 'fedgrow public+common', small: 'public', localInit: 'common', regime: 'frozen', share: true, sharesModel: false },
  { name: 'independent public+common', small: 'public', localInit: 'common', regime: 'frozen', share: false, sharesModel: false },
  { name: 'fedgrow public+common joint', small: 'public', localInit: 'common', regime: 'joint', share: true, sharesModel: false },
  { name: 'independent public+common joint', small: 'public', localInit: 'common', regime: 'joint', share: false, sharesModel: false },
  { name: 'fedgrow checkpoint', small: 'checkpoint', localInit: 'common', regime: 'frozen', share: true, sharesModel: false, localLigoSteps: 0 },
  { name: 'independent checkpoint', small: 'checkpoint', localInit: 'common', regime: 'frozen', share: false, sharesModel: false, localLigoSteps: 0 },
  { name: 'authors-code', small: 'own', localInit: 'own', regime: 'authors', share: true, sharesModel: true },
  // What training the intermediate model adds to Global-LiGO when it starts as the grown public checkpoint
  // (on one peer holding every row: the ceiling of a design that freezes it).
  { name: 'authors-code checkpoint', small: 'checkpoint', localInit: 'common', regime: 'authors', share: true, sharesModel: true, localLigoSteps: 0 },
  { name: 'fedgrow checkpoint ditto 0.1', small: 'checkpoint', localInit: 'common', regime: 'ditto', share: true, sharesModel: false, localLigoSteps: 0, dittoLambda: 0.1, twin: 'independent checkpoint' },
  { name: 'fedgrow checkpoint ditto 1', small: 'checkpoint', localInit: 'common', regime: 'ditto', share: true, sharesModel: false, localLigoSteps: 0, dittoLambda: 1, twin: 'independent checkpoint' },
  { name: 'fedgrow checkpoint fedrep', small: 'checkpoint', localInit: 'common', regime: 'fedrep', share: true, sharesModel: false },
  { name: 'independent checkpoint fedrep', small: 'checkpoint', localInit: 'common', regime: 'fedrep', share: false, sharesModel: false },
  { name: 'fedgrow checkpoint privatehead', small: 'checkpoint', localInit: 'common', regime: 'privatehead', share: true, sharesModel: false, localLigoSteps: 0 },
  { name: 'independent checkpoint privatehead', small: 'checkpoint', localInit: 'common', regime: 'privatehead', share: false, sharesModel: false, localLigoSteps: 0 },
  { name: 'fedgrow checkpoint privatebias', small: 'checkpoint', localInit: 'common', regime: 'privatehead', share: true, sharesModel: false, localLigoSteps: 0, privateParams: ['head.b'] },
  { name: 'independent checkpoint privatebias', small: 'checkpoint', localInit: 'common', regime: 'privatehead', share: false, sharesModel: false, localLigoSteps: 0, privateParams: ['head.b'] },
  ...[0, 0.1, 1].flatMap(pull => [true, false].map(share => ({ name: `${share ? 'fedgrow' : 'independent'} checkpoint headdelta ${pull}`, small: 'checkpoint' as const, localInit: 'common' as const, regime: 'privatehead' as const, share, sharesModel: false, localLigoSteps: 0, headPull: pull })))
]

interface StudyOptions {
  peers: number
  alpha: number
  seed: number
  rounds: number
  stepsPerRound: number
  learningRate: number
  finetuneSteps: number
  publicRows: number
  only?: string[]
  /** Extra phase-4 runs, one per setting, with the loss pulled toward the grown weights (L2-SP); none by default. */
  pulls?: PullSetting[]
  /** Added to the run file's name, so that a run beside an earlier one of the same candidates keeps both (their phase-4 variants are reported together). */
  tag?: string
}

/**
 * One `--pulls` entry: `L` pulls every peer with lambda L; `C/n` with lambda C over the peer's training
 * rows (a prior whose weight against the data shrinks as the data grows, so one setting can suit shards
 * of 345 and of 2,000 rows); a `-body` suffix leaves the classifier head unpulled, as L2-SP leaves a
 * new head free (Li et al., arXiv 1802.01483), so that phase 4 may re-fit a peer's label mix; a
 * `-decoupled` suffix applies the pull in the optimiser instead of the loss (AdamWOptions.anchor, at
 * rate L), because Adam's normalisation makes a pull in the loss pin every weight the data barely moves,
 * however small lambda is. An `@Ee` suffix gives phase 4 a budget of E epochs of the peer's training rows
 * instead of the fixed steps (`0@5e`: no pull, 5 epochs), because 200 steps are 40 epochs of 345 rows
 * and 6 of 2,000: a budget that scales with the rows, rather than a pull that does.
 */
interface PullSetting { strength: number, perRow: boolean, bodyOnly: boolean, decoupled: boolean, epochs?: number }

function parsePull (text: string): PullSetting {
  const match = /^([0-9.]+)(\/n)?(-body)?(-decoupled)?(?:@([0-9]+)e)?$/.exec(text)
  if (match === null || !(Number(match[1]) >= 0) || (match[5] !== undefined && !(Number(match[5]) > 0))) throw new Error(`--pulls: ${JSON.stringify(text)} is not a pull; write lambda (10), lambda per training row (3450/n), either with -body to leave the head unpulled and/or -decoupled to pull in the optimiser, and @Ee for a budget of E epochs (0@5e)`)
  return { strength: Number(match[1]), perRow: match[2] !== undefined, bodyOnly: match[3] !== undefined, decoupled: match[4] !== undefined, ...(match[5] !== undefined ? { epochs: Number(match[5]) } : {}) }
}

const pullLabel = (p: Pick<PullSetting, 'strength'> & Partial<PullSetting>): string => `${p.strength}${p.perRow === true ? '/n' : ''}${p.bodyOnly === true ? ' (head unpulled)' : ''}${p.decoupled === true ? ' (decoupled)' : ''}${p.epochs === undefined ? '' : `, ${p.epochs} epochs`}`
const pullStrengthFor = (p: PullSetting, peer: Peer): number => p.perRow ? p.strength / peer.train.count : p.strength

/** A phase-4 variant as a run file keeps it (`lambda` is the setting's strength; older files hold only lambda). */
type StoredPull = NonNullable<CandidateResult['pulled']>[number]
/** `afterRound`: never stored; joinRuns sets it on a variant it takes from a shorter run of the candidate. */
const storedPullLabel = (p: StoredPull): string => pullLabel({ ...p, strength: p.lambda }) + (p.afterRound === undefined ? '' : `, after round ${p.afterRound}`)

interface Peer {
  index: number
  seed: string
  config: ModelConfig
  train: Dataset
  validation: Dataset
  test: Dataset
  small: Partial<Record<SmallSource, { params: NamedTensors, validationAccuracy: number, testAccuracy: number, steps: number }>>
}

interface CandidateResult {
  name: string
  sharesModel: boolean
  sharedParamsPerRound: number
  trainableParamsPerPeer: number
  /** Per round, over peers: accuracy of each peer's current model on its own test rows. */
  curve: Array<{ round: number, mean: number, std: number, min: number, bytesPerPeer: number, trainFlopsPerPeer: number }>
  final: { mean: number, std: number, min: number, perPeer: number[] }
  finetuned: { mean: number, std: number, min: number, perPeer: number[] }
  /** Phase 4 stopped early on the peer's held-out rows (PHASE4_PATIENCE); absent in runs before it existed. */
  validated?: { mean: number, std: number, min: number, perPeer: number[] }
  /** Phase 4's whole run, keeping the check that scored best on the held-out rows; absent in runs before it existed. */
  bestOf?: { mean: number, std: number, min: number, perPeer: number[] }
  /** Phase 4 with the loss pulled toward the grown weights, one entry per `--pulls` setting (the fixed budget and stopped early); `lambda` is the setting's strength. */
  pulled?: Array<{ lambda: number, perRow?: boolean, bodyOnly?: boolean, decoupled?: boolean, epochs?: number, fixed: Stats & { perPeer: number[] }, validated: Stats & { perPeer: number[] }, afterRound?: number }>
  intermediate?: { mean: number }
}

type Stats = { mean: number, std: number, min: number }

const stats = (xs: number[]): Stats => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length
  return { mean, std: Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length), min: Math.min(...xs) }
}
const prefixed = (prefix: string, t: NamedTensors): NamedTensors => Object.fromEntries(Object.entries(t).map(([k, v]) => [`${prefix}${k}`, v]))
const unprefixed = (prefix: string, t: NamedTensors): NamedTensors => Object.fromEntries(Object.entries(t).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]))
const MAX_SMALL_EPOCHS = 100
/** Epochs without a better validation score before a small model counts as flat (small ViTs plateau for a few epochs early on). */
const PATIENCE_EPOCHS = 10

function log (message: string): void {
  process.stderr.write(`[design ${new Date().toISOString().slice(11, 19)}] ${message}\n`)
}

function peersOf (options: StudyOptions): { peers: Peer[], publicData: Dataset } {
  const data = loadData('mnist', options.seed)
  const pool = splitTrainTest(data.train, options.publicRows / data.train.count, `public:${options.seed}`)
  const shards = partition({ train: pool.train, test: data.test }, options.peers, { kind: 'dirichlet', alpha: options.alpha }, options.seed)
  const configs = smallConfigs(PRESETS.tiny, options.peers, options.seed, taskShapeOf(data))
  const peers = shards.map((shard: TrainTest, index) => {
    const split = splitTrainTest(shard.train, VALIDATION_FRACTION, `validation:${options.seed}:${index}`)
    return { index, seed: `study:${options.seed}:${index}`, config: configs[index], train: split.train, validation: split.test, test: shard.test, small: {} }
  })
  return { peers, publicData: pool.test }
}

function untilFlat (config: ModelConfig, start: NamedTensors, data: Dataset, validation: Dataset, lr: number, seed: string): ReturnType<typeof trainUntilFlat> {
  const epoch = stepsForEpochs(data.count, 1, 64)
  return trainUntilFlat(config, start, data, { steps: epoch * MAX_SMALL_EPOCHS, learningRate: lr, weightDecay: 0.05, seed, schedule: 'constant' }, { validation, everySteps: epoch, patience: PATIENCE_EPOCHS })
}

/** Small models: each peer's own (from random), and each fine-tuned from its shape's public checkpoint. */
function prepareSmalls (peers: Peer[], publicData: Dataset, sources: Set<SmallSource>): void {
  const publicSplit = splitTrainTest(publicData, VALIDATION_FRACTION, 'public-validation')
  const checkpoints = new Map<string, NamedTensors>()
  for (const peer of peers) {
    const shapeKey = `${peer.config.dim}x${peer.config.layers}`
    if ((sources.has('public') || sources.has('checkpoint')) && !checkpoints.has(shapeKey)) {
      const init = initParams(peer.config, `public:${shapeKey}`)
      const flat = untilFlat(peer.config, init, publicSplit.train, publicSplit.test, 2e-3, `public:${shapeKey}`)
      tf.dispose(Object.values(init))
      checkpoints.set(shapeKey, flat.params)
      log(`public checkpoint ${shapeKey}: validation ${(flat.best.accuracy * 100).toFixed(1)}% at step ${flat.best.step}`)
    }
    if (sources.has('checkpoint')) {
      const params = tf.tidy(() => Object.fromEntries(Object.entries(checkpoints.get(shapeKey)!).map(([k, t]) => [k, tf.clone(t)])))
      peer.small.checkpoint = { params, validationAccuracy: NaN, testAccuracy: evaluate(predictWith(peer.config, params), peer.test).accuracy, steps: 0 }
    }
    for (const source of [...sources].filter(s => s !== 'checkpoint')) {
      const start = source === 'own' ? initParams(peer.config, `small:${peer.seed}`) : checkpoints.get(shapeKey)!
      const flat = untilFlat(peer.config, start, peer.train, peer.validation, source === 'own' ? 2e-3 : 5e-4, `${source}:${peer.seed}`)
      if (source === 'own') tf.dispose(Object.values(start))
      const testAccuracy = evaluate(predictWith(peer.config, flat.params), peer.test).accuracy
      peer.small[source] = { params: flat.params, validationAccuracy: flat.best.accuracy, testAccuracy, steps: flat.best.step }
      log(`peer ${peer.index} small ${source} ${shapeKey}: test ${(testAccuracy * 100).toFixed(1)}% (validation flat at step ${flat.best.step})`)
    }
  }
  for (const params of checkpoints.values()) tf.dispose(Object.values(params))
}

function roundOptions (options: StudyOptions, seed: string, round: number): TrainOptions {
  return { steps: options.stepsPerRound, learningRate: options.learningRate, weightDecay: 0.05, seed: `${seed}:round:${round}`, schedule: 'constant', batchSize: 64 }
}

/**
 * Steps a round spends on the peer's private part besides the shared part's. Ditto's private operator
 * trains as many steps as the shared one; FedRep's private Local-LiGO does too, so both cost the same
 * (twice the frozen regime) and the comparison between them is at equal compute.
 */
const privateStepsPerRound = (c: Candidate, options: StudyOptions): number => c.regime === 'ditto' || c.regime === 'fedrep' ? options.stepsPerRound : 0

/** One peer's private state under a candidate, and how it trains and scores a round. */
interface PeerRun {
  /** Train from the shared part `global` (or the peer's own, alone); returns the new shared part. */
  round: (global: TensorMap, round: number) => TensorMap
  /** The peer's target model from the shared part; the caller owns it. */
  target: (global: TensorMap) => NamedTensors
  dispose: () => void
}

function planOf (peer: Peer): DualLigoPlan {
  const shape = { imageSize: 28, channels: 1, numClasses: 10, patchSize: 7, heads: 4, mlpRatio: 1 }
  return { small: peer.config, intermediate: validateVitConfig({ ...shape, ...PRESETS.tiny.intermediate }), target: validateVitConfig({ ...shape, ...PRESETS.tiny.target }) }
}

function localInitSeed (c: Candidate, peer: Peer): string {
  return c.localInit === 'own' ? `local:${peer.seed}` : `local:common:${peer.config.dim}x${peer.config.layers}`
}

/** Phases 1-2 as fedgrow runs them: Local-LiGO trained (localLigoSteps), the intermediate model materialised. */
function frozenIntermediate (c: Candidate, peer: Peer, plan: DualLigoPlan): NamedTensors {
  const small = peer.small[c.small]!.params
  const start = initLigo(localShape(plan), 'ligo', localInitSeed(c, peer))
  const op = new VariableSet(start)
  tf.dispose(Object.values(start))
  try {
    trainOperator(localShape(plan), op, small, peer.train, { steps: c.localLigoSteps ?? LOCAL_LIGO_STEPS, learningRate: 2e-3, weightDecay: 0.05, seed: `${peer.seed}:local`, batchSize: 64 })
    return materialise(localShape(plan), op.tensors, small)
  } finally {
    op.dispose()
  }
}

/** `start` trained on `lossOf`, which gets the variables' current values; the caller owns what it returns. */
function trainCopy (start: NamedTensors, lossOf: (t: NamedTensors, images: tf.Tensor2D, labels: tf.Tensor1D) => tf.Scalar, data: Dataset, options: TrainOptions): NamedTensors {
  const vars = new VariableSet(start)
  try {
    train(vars, (images, labels) => lossOf(vars.tensors, images, labels), data, options)
    return vars.snapshot()
  } finally {
    vars.dispose()
  }
}

/** `tensors` as a TensorMap; takes ownership of the tensors. */
function handOver (tensors: NamedTensors): TensorMap {
  const out = toTensorMap(tensors)
  tf.dispose(Object.values(tensors))
  return out
}

/** The target a shared Global-LiGO grows from a frozen intermediate model; the caller owns it. */
function grownByShared (plan: DualLigoPlan, global: TensorMap, intermediate: NamedTensors): NamedTensors {
  const op = fromTensorMap(global)
  const grown = materialise(globalShape(plan), op, intermediate)
  tf.dispose(Object.values(op))
  return grown
}

function snapshotMap (vars: VariableSet): TensorMap {
  const snap = vars.snapshot()
  const out = toTensorMap(snap)
  tf.dispose(Object.values(snap))
  return out
}

/**
 * Global-LiGO trained from `start` through a frozen intermediate model; with `pull`, the loss adds
 * lambda/2 x |operator - anchor|^2 (Ditto's personal objective). Returns the trained operator, which the
 * caller owns.
 */
function trainThroughFrozen (plan: DualLigoPlan, intermediate: NamedTensors, start: NamedTensors, data: Dataset, options: TrainOptions, pull?: { anchor: NamedTensors, lambda: number }): NamedTensors {
  const G = globalShape(plan)
  return trainCopy(start, (op, images, labels) => {
    const loss = crossEntropy(forward(plan.target, grow(G, op, intermediate), images), labels)
    if (pull === undefined) return loss
    const distance = tf.addN(Object.keys(op).map(name => tf.sum(tf.squaredDifference(op[name], pull.anchor[name]))))
    return tf.add(loss, tf.mul(distance, pull.lambda / 2))
  }, data, options)
}

/** The target that Global-LiGO `op` grows from the intermediate model Local-LiGO `local` grows from `small`. */
const dualGrown = (plan: DualLigoPlan, op: NamedTensors, local: NamedTensors, small: NamedTensors): NamedTensors => grow(globalShape(plan), op, grow(localShape(plan), local, small))

function dualLoss (plan: DualLigoPlan, op: NamedTensors, local: NamedTensors, small: NamedTensors, images: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return crossEntropy(forward(plan.target, dualGrown(plan, op, local, small), images), labels)
}

/**
 * A peer whose Local-LiGO is private and kept from round to round (joint, fedrep). `step` trains one
 * round from the shared Global-LiGO and the peer's Local-LiGO and returns both anew (the caller owns
 * them; the inputs stay the caller's).
 */
function privateLocalRun (c: Candidate, peer: Peer, plan: DualLigoPlan, step: (global: NamedTensors, local: NamedTensors, small: NamedTensors, round: number) => { global: NamedTensors, local: NamedTensors }): PeerRun {
  const small = peer.small[c.small]!.params
  let local = initLigo(localShape(plan), 'ligo', localInitSeed(c, peer))
  return {
    round: (global, round) => {
      const start = fromTensorMap(global)
      try {
        const next = step(start, local, small, round)
        tf.dispose(Object.values(local))
        local = next.local
        const shared = toTensorMap(next.global)
        tf.dispose(Object.values(next.global))
        return shared
      } finally {
        tf.dispose(Object.values(start))
      }
    },
    target: (global) => {
      const op = fromTensorMap(global)
      const grown = tf.tidy(() => dualGrown(plan, op, local, small))
      tf.dispose(Object.values(op))
      return grown
    },
    dispose: () => { tf.dispose(Object.values(local)) }
  }
}

/** Joint: Global-LiGO and the private Local-LiGO trained together, through the target. */
function jointRun (c: Candidate, peer: Peer, plan: DualLigoPlan, options: StudyOptions): PeerRun {
  return privateLocalRun(c, peer, plan, (global, local, small, round) => {
    const both = trainCopy({ ...prefixed('g/', global), ...prefixed('l/', local) }, (t, images, labels) => dualLoss(plan, unprefixed('g/', t), unprefixed('l/', t), small, images, labels), peer.train, roundOptions(options, peer.seed, round))
    return { global: unprefixed('g/', both), local: unprefixed('l/', both) }
  })
}

/**
 * FedRep: the private Local-LiGO is the peer's head. Each round it trains first, through the received
 * Global-LiGO held frozen (so it adapts to what the federation shares), then Global-LiGO trains through
 * the intermediate model the new Local-LiGO grows, held frozen, and only that is shared.
 */
function fedrepRun (c: Candidate, peer: Peer, plan: DualLigoPlan, options: StudyOptions): PeerRun {
  return privateLocalRun(c, peer, plan, (global, local, small, round) => {
    const head = trainCopy(local, (l, images, labels) => dualLoss(plan, global, l, small, images, labels), peer.train, { ...roundOptions(options, `${peer.seed}:private`, round), steps: privateStepsPerRound(c, options) })
    const intermediate = materialise(localShape(plan), head, small)
    try {
      return { global: trainThroughFrozen(plan, intermediate, global, peer.train, roundOptions(options, peer.seed, round)), local: head }
    } catch (error) {
      tf.dispose(Object.values(head))
      throw error
    } finally {
      tf.dispose(Object.values(intermediate))
    }
  })
}

/**
 * Ditto on the frozen regime: the shared Global-LiGO trains as in fedgrow, and a private one, started
 * from the first shared one and kept from round to round, trains as many steps pulled toward the
 * round's shared start. The peer's model grows from the private one.
 */
function dittoRun (c: Candidate, peer: Peer, plan: DualLigoPlan, options: StudyOptions): PeerRun {
  const G = globalShape(plan)
  let intermediate = frozenIntermediate(c, peer, plan)
  let personal: NamedTensors | undefined
  return {
    round: (global, round) => {
      const start = fromTensorMap(global)
      try {
        const shared = trainThroughFrozen(plan, intermediate, start, peer.train, roundOptions(options, peer.seed, round))
        const next = trainThroughFrozen(plan, intermediate, personal ?? start, peer.train, roundOptions(options, `${peer.seed}:personal`, round), { anchor: start, lambda: c.dittoLambda! })
        if (personal !== undefined) tf.dispose(Object.values(personal))
        personal = next
        return handOver(shared)
      } finally {
        tf.dispose(Object.values(start))
      }
    },
    target: (global) => personal !== undefined ? materialise(G, personal, intermediate) : grownByShared(plan, global, intermediate),
    dispose: () => {
      tf.dispose([...Object.values(intermediate), ...Object.values(personal ?? {})])
      intermediate = {}
      personal = undefined
    }
  }
}

/**
 * Private head on the frozen regime: each round Global-LiGO and the peer's own classifier head (started
 * from the head that the first round's shared Global-LiGO grows) train together through a target whose
 * grown head is replaced by the private one; only Global-LiGO is shared. Why: with skewed labels one
 * shared operator grows one classifier for every peer's label mix, and the head is where a mix lives.
 * With headPull the private part is instead a correction added to the grown head, started at zero and
 * pulled toward it, so the shared operator still learns a classifier from every peer's rows and each
 * peer's correction holds only what its own label mix needs.
 */
function privateHeadRun (c: Candidate, peer: Peer, plan: DualLigoPlan, options: StudyOptions): PeerRun {
  const G = globalShape(plan)
  const names = c.privateParams ?? CLASSIFIER_PARAMS
  const correcting = c.headPull !== undefined
  const headOf = (t: NamedTensors): NamedTensors => Object.fromEntries(names.map(name => [name, t[name]]))
  let intermediate = frozenIntermediate(c, peer, plan)
  let head: NamedTensors | undefined
  /** The grown target with the private part in its head; the grown head tensors it replaces stay in `grown`. */
  const withHead = (grown: NamedTensors, own: NamedTensors): NamedTensors => ({ ...grown, ...(correcting ? Object.fromEntries(names.map(name => [name, tf.add(grown[name], own[name])])) : own) })
  const lossOf = (t: NamedTensors, images: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar => {
    const own = unprefixed('h/', t)
    const loss = crossEntropy(forward(plan.target, withHead(grow(G, unprefixed('g/', t), intermediate), own), images), labels)
    if (!correcting) return loss
    return tf.add(loss, tf.mul(tf.addN(names.map(name => tf.sum(tf.square(own[name])))), c.headPull! / 2))
  }
  return {
    round: (global, round) => {
      const start = fromTensorMap(global)
      try {
        head ??= tf.tidy(() => {
          const grownHead = headOf(grow(G, start, intermediate))
          return correcting ? Object.fromEntries(names.map(name => [name, tf.zerosLike(grownHead[name])])) : grownHead
        })
        const both = trainCopy({ ...prefixed('g/', start), ...prefixed('h/', head) }, lossOf, peer.train, roundOptions(options, peer.seed, round))
        tf.dispose(Object.values(head))
        head = unprefixed('h/', both)
        return handOver(unprefixed('g/', both))
      } finally {
        tf.dispose(Object.values(start))
      }
    },
    target: (global) => {
      const grown = grownByShared(plan, global, intermediate)
      if (head === undefined) return grown
      const own = head
      const target = tf.tidy(() => withHead(grown, Object.fromEntries(names.map(name => [name, own[name].clone()]))))
      tf.dispose(Object.values(headOf(grown)))
      return target
    },
    dispose: () => {
      tf.dispose([...Object.values(intermediate), ...Object.values(head ?? {})])
      intermediate = {}
      head = undefined
    }
  }
}

function peerRun (c: Candidate, peer: Peer, plan: DualLigoPlan, options: StudyOptions): PeerRun {
  const G = globalShape(plan)
  if (c.regime === 'ditto') return dittoRun(c, peer, plan, options)
  if (c.regime === 'privatehead') return privateHeadRun(c, peer, plan, options)
  if (c.regime === 'fedrep') return fedrepRun(c, peer, plan, options)
  if (c.regime === 'scratch') {
    return {
      round: (global, round) => {
        const start = fromTensorMap(global)
        const { params } = finetune(plan.target, start, peer.train, roundOptions(options, peer.seed, round))
        tf.dispose(Object.values(start))
        const out = toTensorMap(params)
        tf.dispose(Object.values(params))
        return out
      },
      target: (global) => fromTensorMap(global),
      dispose: () => {}
    }
  }
  if (c.regime === 'frozen' || c.regime === 'authors') {
    let intermediate = frozenIntermediate(c, peer, plan)
    return {
      round: (global, round) => {
        const start = fromTensorMap(global)
        // The authors' code shares the intermediate model too: round 1 starts from the peer's own.
        const vars = new VariableSet(c.regime === 'authors' && round === 1 ? { ...start, ...prefixed('int/', intermediate) } : start)
        tf.dispose(Object.values(start))
        try {
          train(vars, (images, labels) => {
            const t = vars.tensors
            const op = c.regime === 'authors' ? unprefixed('op/', t) : t
            const source = c.regime === 'authors' ? unprefixed('int/', t) : intermediate
            return crossEntropy(forward(plan.target, grow(G, op, source), images), labels)
          }, peer.train, roundOptions(options, peer.seed, round))
          return snapshotMap(vars)
        } finally {
          vars.dispose()
        }
      },
      target: (global) => {
        const t = fromTensorMap(global)
        const op = c.regime === 'authors' ? unprefixed('op/', t) : t
        const source = c.regime === 'authors' ? unprefixed('int/', t) : intermediate
        const grown = materialise(G, op, source)
        tf.dispose(Object.values(t))
        return grown
      },
      dispose: () => { tf.dispose(Object.values(intermediate)); intermediate = {} }
    }
  }
  return jointRun(c, peer, plan, options)
}

function initialShared (c: Candidate, plan: DualLigoPlan, options: StudyOptions): TensorMap {
  const t = c.regime === 'scratch' ? initParams(plan.target, `fedavg:${options.seed}`) : initLigo(globalShape(plan), 'ligo', `global:${options.seed}`)
  const named = c.regime === 'authors' ? prefixed('op/', t) : t
  const map = toTensorMap(named)
  tf.dispose(Object.values(t))
  return map
}

function runCandidate (c: Candidate, peers: Peer[], options: StudyOptions): CandidateResult {
  const plans = peers.map(planOf)
  const runs = peers.map((peer, i) => peerRun(c, peer, plans[i], options))
  const plan = plans[0]
  const globalParams = countLigoParams(globalShape(plan))
  const targetParams = countParams(plan.target)
  const intermediateParams = countParams(plan.intermediate)
  const sharedParams = c.regime === 'scratch' ? targetParams : c.regime === 'authors' ? globalParams + intermediateParams : globalParams
  const localParams = countLigoParams(localShape(plan))
  const headParams = (c.privateParams ?? CLASSIFIER_PARAMS).includes('head.w') ? countClassifierParams(plan.target) : plan.target.numClasses
  const trainable = c.regime === 'scratch' ? targetParams : c.regime === 'joint' || c.regime === 'fedrep' ? globalParams + localParams : c.regime === 'authors' ? globalParams + intermediateParams : c.regime === 'ditto' ? 2 * globalParams : c.regime === 'privatehead' ? globalParams + headParams : globalParams
  // Private steps (Ditto's operator, FedRep's Local-LiGO) run through the whole target, like the shared part's.
  const roundFlops = flopsPerTrainStep(plan.target, 64) * (options.stepsPerRound + privateStepsPerRound(c, options))
  const prepareFlops = c.regime === 'frozen' || c.regime === 'authors' || c.regime === 'ditto' || c.regime === 'privatehead' ? (c.localLigoSteps ?? LOCAL_LIGO_STEPS) * flopsPerTrainStep(plan.intermediate, 64) : 0
  let shared = peers.map(() => initialShared(c, plan, options))
  const curve: CandidateResult['curve'] = []
  const score = (i: number): number => {
    const target = runs[i].target(shared[i])
    const accuracy = evaluate(predictWith(plan.target, target), peers[i].test).accuracy
    tf.dispose(Object.values(target))
    return accuracy
  }
  try {
    for (let round = 1; round <= options.rounds; round++) {
      const updates = runs.map((run, i) => run.round(shared[i], round))
      if (c.share) {
        const mean = weightedMean(updates.map((tensors, i) => ({ from: String(i).padStart(4, '0'), sampleCount: peers[i].train.count, tensors })))
        shared = peers.map(() => mean)
      } else {
        shared = updates
      }
      const accuracies = peers.map((_, i) => score(i))
      curve.push({ round, ...stats(accuracies), bytesPerPeer: c.share ? round * sharedParams * 4 : 0, trainFlopsPerPeer: prepareFlops + round * roundFlops })
      log(`${c.name} round ${round}: ${(stats(accuracies).mean * 100).toFixed(2)}%`)
    }
    const perPeer = peers.map((_, i) => score(i))
    // Phase 4 (optional in the method): each peer fine-tunes its own target's weights on its own rows;
    // one run per peer gives the fixed, the early-stopped and the best-checkpoint choice.
    const phase4Runs = (pull?: PullSetting): Phase4Choices[] => peers.map((p, i) => {
      if (options.finetuneSteps === 0) return { fixed: perPeer[i], validated: perPeer[i], bestOf: perPeer[i] }
      const target = runs[i].target(shared[i])
      try {
        return phase4Choices(phase4Checks(plan.target, target, p, options, pull))
      } finally {
        tf.dispose(Object.values(target))
      }
    })
    const over = (runs: Phase4Choices[], pick: (x: Phase4Choices) => number): Stats & { perPeer: number[] } => {
      const xs = runs.map(pick)
      return { ...stats(xs), perPeer: xs }
    }
    const phase4 = phase4Runs()
    const pulled = (options.pulls ?? []).map(pull => {
      const choices = phase4Runs(pull)
      log(`${c.name} phase 4 pulled toward the grown weights, lambda ${pullLabel(pull)}: ${(100 * stats(choices.map(x => x.fixed)).mean).toFixed(2)}%`)
      return { lambda: pull.strength, ...(pull.perRow ? { perRow: true } : {}), ...(pull.bodyOnly ? { bodyOnly: true } : {}), ...(pull.decoupled ? { decoupled: true } : {}), ...(pull.epochs !== undefined ? { epochs: pull.epochs } : {}), fixed: over(choices, x => x.fixed), validated: over(choices, x => x.validated) }
    })
    return { name: c.name, sharesModel: c.sharesModel, sharedParamsPerRound: c.share ? sharedParams : 0, trainableParamsPerPeer: trainable, curve, final: { ...stats(perPeer), perPeer }, finetuned: over(phase4, x => x.fixed), validated: over(phase4, x => x.validated), bestOf: over(phase4, x => x.bestOf), ...(pulled.length > 0 ? { pulled } : {}) }
  } finally {
    runs.forEach(r => { r.dispose() })
  }
}

/** Phase 4's training, the same for the fixed and the validated variant so that they differ only in when they stop. */
const phase4Options = (options: StudyOptions, peer: Peer): TrainOptions => ({ steps: options.finetuneSteps, learningRate: options.learningRate * FINETUNE_RATE, weightDecay: 0.05, seed: `${peer.seed}:finetune`, batchSize: 64 })

/** Early stopping ends phase 4 after this many checks (every FINETUNE_CHECK_STEPS, as the product checks) without a better score. */
const PHASE4_PATIENCE = 3

/** One phase-4 check: accuracy on the peer's held-out rows (what it can see) and on its test rows (what we report). */
interface Phase4Check { step: number, validation: number, test: number }

/**
 * Phase 4 run once for its whole budget: the grown target fine-tuned on the peer's training rows, scored
 * on its held-out and test rows before training (step 0) and every FINETUNE_CHECK_STEPS steps, so that every
 * way of choosing when to stop is judged on the same trajectory. Why: a fixed 200 steps over-fits a small
 * shard (16 peers, alpha 100: fedgrow fell from 83.19% to 81.75%). A `pull` pulls the weights back
 * toward the grown ones (ownWeightsLoss's L2-SP term, or the optimiser's anchor when decoupled) and may
 * set the budget in epochs (PullSetting).
 */
function phase4Checks (config: ModelConfig, target: NamedTensors, peer: Peer, options: StudyOptions, pull?: PullSetting): Phase4Check[] {
  const score = (params: NamedTensors): { validation: number, test: number } => ({ validation: evaluate(predictWith(config, params), peer.validation).accuracy, test: evaluate(predictWith(config, params), peer.test).accuracy })
  const checks: Phase4Check[] = [{ step: 0, ...score(target) }]
  const vars = new VariableSet(target)
  try {
    const toward = pull?.bodyOnly === true ? Object.fromEntries(Object.entries(target).filter(([name]) => !(CLASSIFIER_PARAMS as readonly string[]).includes(name))) : target
    const strength = pull === undefined ? 0 : pullStrengthFor(pull, peer)
    const decoupled = pull?.decoupled === true
    train(vars, ownWeightsLoss(config, vars, { toward, strength: decoupled ? 0 : strength }), peer.train, {
      ...phase4Options(options, peer),
      ...(pull?.epochs !== undefined ? { steps: stepsForEpochs(peer.train.count, pull.epochs, 64) } : {}),
      ...(decoupled ? { anchor: { toward, rate: strength } } : {}),
      checkpoint: { every: FINETUNE_CHECK_STEPS, run: (step, params) => { checks.push({ step, ...score(params) }) } }
    })
  } finally {
    vars.dispose()
  }
  return checks
}

interface Phase4Choices {
  /** The last check: the whole budget, as the product runs it. */
  fixed: number
  /** The best held-out score before PHASE4_PATIENCE checks without a better one (the target unchanged when none beats it). */
  validated: number
  /** The best held-out score of the whole run, step 0 included (earliest on ties). */
  bestOf: number
}

/** The test accuracy each stopping rule would have kept, from one run's checks (step 0 first). */
export function phase4Choices (checks: Phase4Check[]): Phase4Choices {
  const [start, ...trained] = checks
  let best = trained[0]
  for (const c of trained) {
    if (c.validation > best.validation) best = c
    if (c.step - best.step >= PHASE4_PATIENCE * FINETUNE_CHECK_STEPS) break
  }
  // The product's rule (`--finetune-select best-held-out`), on the same checks.
  const kept = keptCheck(checks.map(c => ({ step: c.step, accuracy: c.validation })))
  const bestOf = checks.find(c => c.step === kept.step)!
  return { fixed: trained.at(-1)!.test, validated: best.validation > start.validation ? best.test : start.test, bestOf: bestOf.test }
}

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`

/** The study's federation size and public slice. Its files and sections keep unprefixed names; other settings get their own. */
const STUDY_PEERS = 8
const STUDY_PUBLIC_ROWS = 1500
const studyPart = (o: Pick<StudyOptions, 'peers' | 'publicRows'>): string => (o.peers === STUDY_PEERS ? '' : `peers-${o.peers}-`) + (o.publicRows === STUDY_PUBLIC_ROWS ? '' : `public-${o.publicRows}-`)
const sizeLabel = (o: Pick<StudyOptions, 'peers' | 'publicRows'>): string => (o.peers === STUDY_PEERS ? '' : `${o.peers} peers, `) + (o.publicRows === STUDY_PUBLIC_ROWS ? '' : `${o.publicRows} public digits, `)
/**
 * `--peers 1` deals every row the study's peers hold to one peer: each design trained on the pooled rows,
 * which is the most any averaging of the same design could reach.
 */
const POOLED = 1
const studyTitle = (o: StudyOptions): string => o.peers === POOLED ? `Design study: each design's ceiling, every row on one peer${o.publicRows === STUDY_PUBLIC_ROWS ? '' : ` (${o.publicRows} public digits)`}` : `Design study: what makes sharing Global-LiGO pay (${sizeLabel(o)}alpha ${o.alpha})`
const studyPeers = (o: StudyOptions): string => o.peers === POOLED ? 'One peer holding every training row that the study deals out to its peers (the ceiling of averaging: a federation of the same design can at best match training on the pooled rows)' : `${o.peers} peers, label-Dirichlet alpha ${o.alpha}`

function parse (args: string[]): StudyOptions {
  const get = (flag: string, fallback: number): number => {
    const i = args.indexOf(flag)
    return i >= 0 ? Number(args[i + 1]) : fallback
  }
  const onlyAt = args.indexOf('--only')
  return {
    peers: get('--peers', STUDY_PEERS),
    alpha: get('--alpha', 100),
    seed: get('--seed', 0),
    rounds: get('--rounds', 20),
    stepsPerRound: get('--steps', 20),
    learningRate: get('--lr', 2e-3),
    finetuneSteps: get('--finetune', 200),
    publicRows: get('--public', STUDY_PUBLIC_ROWS),
    ...(args.includes('--pulls') ? { pulls: args[args.indexOf('--pulls') + 1].split(',').map(parsePull) } : {}),
    ...(onlyAt >= 0 ? { only: args[onlyAt + 1].split(',') } : {}),
    ...(args.includes('--tag') ? { tag: args[args.indexOf('--tag') + 1] } : {})
  }
}

export async function designBench (command: string, args: string[]): Promise<void> {
  const options = parse(args)
  if (args.includes('--report')) {
    writeReport(options, command.replace(' --report', ''))
    return
  }
  if (args.includes('--seeds-report')) {
    writeSeedsReport(options, command)
    return
  }
  await initBackend('wasm')
  // --smalls-only: just the small models of every source (what a peer could have alone), for the report.
  const smallsOnly = args.includes('--smalls-only')
  const candidates = smallsOnly ? [] : CANDIDATES.filter(c => options.only === undefined || options.only.includes(c.name))
  const { peers, publicData } = peersOf(options)
  prepareSmalls(peers, publicData, smallsOnly ? new Set<SmallSource>(['own', 'public', 'checkpoint']) : new Set(candidates.map(c => c.small)))
  const results: CandidateResult[] = []
  const outDir = join('runs', 'design')
  mkdirSync(outDir, { recursive: true })
  const file = join(outDir, `${studyPart(options)}alpha-${options.alpha}-seed-${options.seed}${smallsOnly ? '-smalls' : options.only === undefined ? '' : '-' + candidates.map(c => c.name.replace(/[^a-z0-9.]+/g, '-')).join('_').slice(0, 80)}${options.tag === undefined ? '' : `-${options.tag}`}.json`)
  const save = (): void => { writeFileSync(file, JSON.stringify({ options, smalls: peers.map(p => Object.fromEntries(Object.entries(p.small).map(([k, v]) => [k, { test: v.testAccuracy, validation: v.validationAccuracy, steps: v.steps }]))), results }, null, 1)) }
  save()
  for (const c of candidates) {
    results.push(runCandidate(c, peers, options))
    save()
  }
  for (const p of peers) for (const s of Object.values(p.small)) tf.dispose(Object.values(s.params))
  // Seed 0's tables are the study; other seeds feed the spread across seeds.
  if (options.seed === 0) writeReport(options, command)
  else if (seedPairs(resultsBySeed(options)).length > 0) writeSeedsReport(options, `npm run bench -- design --seeds-report --alpha ${options.alpha}${options.peers === STUDY_PEERS ? '' : ` --peers ${options.peers}`}${options.publicRows === STUDY_PUBLIC_ROWS ? '' : ` --public ${options.publicRows}`}`)
  else log(`no candidate and its twin on two seeds at alpha ${options.alpha} yet: no seed report`)

}

interface StudyFile {
  options: StudyOptions
  smalls: Array<Partial<Record<SmallSource, { test: number }>>>
  results: CandidateResult[]
}

const accuracyAt = (r: CandidateResult, round: number): number | undefined => r.curve.find(p => p.round === round)?.mean

/**
 * Writes the alpha's section of BENCHMARKS.md from every study file of that alpha and seed in
 * runs/design (candidates may have run in separate processes, one per core): each candidate's curve
 * at rounds 5, 15 and 25, its final and fine-tuned accuracy, and what sharing gained over its twin
 * that shares nothing.
 */
function writeReport (options: StudyOptions, command: string): void {
  const { alpha, seed } = options
  const dir = join('runs', 'design')
  const files = readdirSync(dir).filter(f => f.startsWith(`${studyPart(options)}alpha-${alpha}-seed-${seed}`) && f.endsWith('.json')).map(f => JSON.parse(readFileSync(join(dir, f), 'utf8')) as StudyFile)
  const byName = joinRuns(files.flatMap(f => f.results))
  const results = CANDIDATES.map(c => byName.get(c.name)).filter((r): r is CandidateResult => r !== undefined)
  const smallMean = (source: SmallSource): string => {
    const all = files.flatMap(f => f.smalls.map(s => s[source]?.test)).filter((x): x is number => x !== undefined)
    return all.length === 0 ? '(not in these run files)' : pct(all.reduce((a, b) => a + b, 0) / all.length)
  }
  const at = (r: CandidateResult, round: number): string => {
    const a = accuracyAt(r, round)
    return a === undefined ? '-' : pct(a)
  }
  /** The alone twin a fedgrow candidate is compared with, when it ran. */
  const twinResult = (r: CandidateResult): CandidateResult | undefined => r.name.startsWith('fedgrow') ? byName.get(twinOf(CANDIDATES.find(c => c.name === r.name) ?? r)) : undefined
  const gain = (r: CandidateResult): string => {
    const twin = twinResult(r)
    if (twin === undefined) return ''
    const last = Math.min(r.curve.length, twin.curve.length)
    const rounds = [5, 15, last].filter((n, i, all) => n <= last && all.indexOf(n) === i)
    return rounds.map(n => `${points(accuracyAt(r, n)!, accuracyAt(twin, n)!)} (r${n})`).join(', ')
  }
  /** A phase-4 variant's accuracy, with fedgrow's gain over its twin in brackets; '-' for runs made before it existed. */
  const phase4Cell = (r: CandidateResult, variant: 'validated' | 'bestOf'): string => {
    const own = r[variant]
    if (own === undefined) return '-'
    const twin = twinResult(r)?.[variant]
    return pct(own.mean) + (twin === undefined ? '' : ` (${points(own.mean, twin.mean)})`)
  }
  const rows = results.map(r => [displayName(r), at(r, 1), at(r, 5), at(r, 15), at(r, 25), `${pct(r.final.mean)} ± ${pct(r.final.std)} (min ${pct(r.final.min)})`, pct(r.finetuned.mean), phase4Cell(r, 'validated'), phase4Cell(r, 'bestOf'), gain(r), (r.sharedParamsPerRound * 4).toLocaleString('en-US'), (r.curve[Math.min(14, r.curve.length - 1)].trainFlopsPerPeer / 1e12).toFixed(2), r.trainableParamsPerPeer.toLocaleString('en-US')])
  const o = files[0]?.options
  if (o === undefined) return
  // Seed 0's tables are the study; another seed's (--report --seed S) get a section of their own.
  const seedPart = seed === 0 ? '' : `-seed-${seed}`
  const section = `design-${studyPart(options)}alpha-${alpha}${seedPart}`
  writeSection(section, studyTitle(options) + (seed === 0 ? '' : `, seed ${seed}`), command, [
    `${studyPeers(options)}, seed ${seed}; tiny shapes (small ${PRESETS.tiny.smallDims.join('/')} x ${PRESETS.tiny.smallLayers.join('/')} -> ${PRESETS.tiny.intermediate.dim}x${PRESETS.tiny.intermediate.layers} -> ${PRESETS.tiny.target.dim}x${PRESETS.tiny.target.layers}); rounds of ${o.stepsPerRound} steps, AdamW lr ${o.learningRate}, batch 64; ideal network (every update in every round). Candidates ran in ${files.length} process(es), with the same shards, small models and seeds; a '-' is a round the candidate did not run to.`,
    `Small models, mean test accuracy over peers: trained from random on the peer's rows until flat ${smallMean('own')}; the public checkpoint of the peer's shape (${o.publicRows} digits no peer holds) as it is ${smallMean('checkpoint')}; that checkpoint fine-tuned on the peer's rows until flat ${smallMean('public')}.`,
    `Fine-tuned: each peer then trains its grown target's own weights ${o.finetuneSteps} steps on its own training rows (85% of its shard, as in the rounds). The same run is scored on the peer's held-out rows (the other 15%, never trained on) before training and every ${FINETUNE_CHECK_STEPS} steps. Stopped early: the best-scoring check before ${PHASE4_PATIENCE} checks without a better score, or the target unchanged if none beats it. Best check: the best-scoring check of the whole run, the unchanged target included. In brackets, fedgrow minus its twin ('-': run before the column existed). Sharing gain: fedgrow minus its twin that shares nothing, in points, at the rounds shown.`,
    '',
    tableKeepingRows(section, ['candidate', 'round 1', 'round 5', 'round 15', 'round 25', 'final (mean ± std, min)', 'fine-tuned', 'fine-tuned, stopped early', 'fine-tuned, best check', 'sharing gain', 'bytes shared/round', 'training TFLOPs/peer by round 15', 'trainable params/peer'], rows, CANDIDATES.map(displayName), 'runs/design'),
    ...pulledTable(results, twinResult)
  ].join('\n'))
}

/**
 * Each candidate of `results` (the runs of one seed) by name: its longest run, with the phase-4 variants
 * of the same seeded run in other files (--tag) joined to it, and those of its shorter runs (phase 4
 * after an earlier round, the unpulled fine-tuning included) labelled with that round.
 */
function joinRuns (results: CandidateResult[]): Map<string, CandidateResult> {
  const runs = [...results].sort((a, b) => b.curve.length - a.curve.length)
  const byName = new Map<string, CandidateResult>()
  for (const r of runs) {
    const longest = byName.get(r.name)
    if (longest === undefined) byName.set(r.name, r)
    else byName.set(r.name, { ...longest, pulled: mergePulls(longest.pulled, longest.curve.length === r.curve.length ? r.pulled : asEarlierPhase4(r)) })
  }
  return byName
}

/** A shorter run's phase-4 variants, its unpulled fine-tuning first, each marked with the round it followed. */
function asEarlierPhase4 (r: CandidateResult): CandidateResult['pulled'] {
  const afterRound = r.curve.length
  const unpulled = r.validated === undefined ? [] : [{ lambda: 0, fixed: r.finetuned, validated: r.validated, afterRound }]
  return [...unpulled, ...(r.pulled ?? []).map(p => ({ ...p, afterRound }))]
}

/** `a`'s phase-4 variants, then those of `b` that `a` lacks; undefined when neither has any. */
function mergePulls (a: CandidateResult['pulled'], b: CandidateResult['pulled']): CandidateResult['pulled'] {
  const merged = [...(a ?? []), ...(b ?? []).filter(p => !(a ?? []).some(q => storedPullLabel(q) === storedPullLabel(p)))]
  return merged.length === 0 ? undefined : merged
}

/** Phase 4 pulled toward the grown weights, for the candidates that ran it (`--pulls`), beside the unpulled phase 4. */
function pulledTable (results: CandidateResult[], twinOfResult: (r: CandidateResult) => CandidateResult | undefined): string[] {
  const ran = results.filter(r => r.pulled !== undefined)
  if (ran.length === 0) return []
  const cell = (own: Stats, twin: Stats | undefined): string => pct(own.mean) + (twin === undefined ? '' : ` (${points(own.mean, twin.mean)})`)
  const rows = ran.flatMap(r => {
    const twin = twinOfResult(r)
    const unpulled = [displayName(r), '0 (the fine-tuning above)', cell(r.finetuned, twin?.finetuned), r.validated === undefined ? '-' : cell(r.validated, twin?.validated)]
    return [unpulled, ...r.pulled!.map(p => {
      const twinPull = twin?.pulled?.find(t => storedPullLabel(t) === storedPullLabel(p))
      return [displayName(r), storedPullLabel(p), cell(p.fixed, twinPull?.fixed), cell(p.validated, twinPull?.validated)]
    })]
  })
  return [
    '',
    'Phase 4 pulled toward the grown weights (L2-SP): the same fine-tuning with lambda/2 x |weights - grown weights|^2 added to the loss, from the same grown target, seed and batches. C/n: lambda is C over the peer\'s training rows. Head unpulled: the classifier head (head.w, head.b) is left out of the pull. Decoupled: no loss term; each step the optimiser moves every weight learning rate x lambda of its distance back to its grown value, outside Adam\'s normalisation. Variants from every run file of the same seeded candidates are joined (a run with --tag beside one without), so the command above names only the last run. In brackets, fedgrow minus its twin under the same lambda.',
    '',
    markdownTable(['candidate', 'lambda', 'fine-tuned', 'fine-tuned, stopped early'], rows)
  ]
}

const points = (a: number, b: number): string => `${a >= b ? '+' : ''}${((a - b) * 100).toFixed(2)}`

/**
 * Every candidate of every study file of `alpha` in runs/design, by seed (joinRuns), each from its runs
 * of the most rounds that every seed ran it to: seeds compare after the same rounds, so one seed's
 * longer run (--rounds 25 beside 15) does not stand in for it.
 */
function resultsBySeed (options: StudyOptions): Map<number, Map<string, CandidateResult>> {
  const dir = join('runs', 'design')
  const runsBySeed = new Map<number, CandidateResult[]>()
  for (const name of readdirSync(dir).filter(f => f.startsWith(`${studyPart(options)}alpha-${options.alpha}-seed-`) && f.endsWith('.json'))) {
    const file = JSON.parse(readFileSync(join(dir, name), 'utf8')) as StudyFile
    runsBySeed.set(file.options.seed, [...(runsBySeed.get(file.options.seed) ?? []), ...file.results])
  }
  const lengthsOf = (name: string, runs: CandidateResult[]): number[] => runs.filter(r => r.name === name).map(r => r.curve.length)
  const sharedLength = (name: string): number => Math.max(...[...runsBySeed.values()].map(runs => lengthsOf(name, runs)).reduce((common, own) => common.filter(n => own.includes(n))))
  const names = new Set([...runsBySeed.values()].flat().map(r => r.name))
  const roundsOf = new Map([...names].map(name => [name, sharedLength(name)]))
  return new Map([...runsBySeed].map(([seed, runs]) => [seed, joinRuns(runs.filter(r => r.curve.length === roundsOf.get(r.name)))]))
}

/** A phase-4 variant that is a budget in epochs with no pull (`--pulls 0@Ee`). */
const isEpochBudget = (p: StoredPull): p is StoredPull & { epochs: number } =>
  p.epochs !== undefined && p.lambda === 0 && p.perRow !== true && p.bodyOnly !== true && p.decoupled !== true

/** The budgets in epochs (no pull) that any of `results` ran, smallest first. */
function epochBudgets (results: CandidateResult[]): number[] {
  return [...new Set(results.flatMap(r => (r.pulled ?? []).filter(isEpochBudget).map(p => p.epochs)))].sort((a, b) => a - b)
}

/** The fedgrow candidates run with their twins on every seed found (none unless there are two seeds). */
function seedPairs (bySeed: Map<number, Map<string, CandidateResult>>): Candidate[] {
  const everywhere = (name: string): boolean => [...bySeed.values()].every(results => results.has(name))
  return bySeed.size < 2 ? [] : CANDIDATES.filter(c => c.name.startsWith('fedgrow') && everywhere(c.name) && everywhere(twinOf(c)))
}

/**
 * Writes the alpha's seed-spread section of BENCHMARKS.md: for each fedgrow candidate run with its
 * twin on more than one seed, what sharing gained on each seed (at the last round both reached, and
 * after fine-tuning), how many peers it put ahead, and the mean and spread over seeds. A gain that one
 * seed's shards happened to favour shows up here.
 */
function writeSeedsReport (options: StudyOptions, command: string): void {
  const { alpha } = options
  const bySeed = resultsBySeed(options)
  const seeds = [...bySeed.keys()].sort((a, b) => a - b)
  const pairs = seedPairs(bySeed)
  if (pairs.length === 0) throw new Error(`the seed report needs a fedgrow candidate and its twin on at least two seeds at alpha ${alpha}; found seeds ${seeds.join(', ') || 'none'} in runs/design`)
  const spread = (xs: number[]): string => { const s = stats(xs); return `${s.mean >= 0 ? '+' : ''}${(100 * s.mean).toFixed(2)} ± ${(100 * s.std).toFixed(2)}` }
  const budgets = epochBudgets(pairs.flatMap(c => [...bySeed.values()].map(results => results.get(c.name)!)))
  const rows = pairs.map(c => {
    const ranTo = (seed: number): number => Math.min(bySeed.get(seed)!.get(c.name)!.curve.length, bySeed.get(seed)!.get(twinOf(c))!.curve.length)
    // One round for every seed: a seed run on for longer is compared where the others stopped.
    const last = Math.min(...seeds.map(ranTo))
    const perSeed = seeds.map(seed => {
      const shared = bySeed.get(seed)!.get(c.name)!
      const alone = bySeed.get(seed)!.get(twinOf(c))!
      const ahead = shared.final.perPeer.filter((a, i) => a > alone.final.perPeer[i]).length
      const variantGain = (variant: 'validated' | 'bestOf'): number | undefined => {
        const [a, b] = [shared[variant], alone[variant]]
        return a === undefined || b === undefined ? undefined : a.mean - b.mean
      }
      const budgetGain = (epochs: number): number | undefined => {
        const [a, b] = [shared, alone].map(r => r.pulled?.find(p => isEpochBudget(p) && p.epochs === epochs))
        return a === undefined || b === undefined ? undefined : a.fixed.mean - b.fixed.mean
      }
      return { seed, ranTo: ranTo(seed), gain: accuracyAt(shared, last)! - accuracyAt(alone, last)!, finetunedGain: shared.finetuned.mean - alone.finetuned.mean, validatedGain: variantGain('validated'), bestOfGain: variantGain('bestOf'), budgetGains: budgets.map(budgetGain), ahead, peers: shared.final.perPeer.length }
    })
    /** Fine-tuning follows a run's last round: a seed run on for longer adds its own. */
    const ranOnNote = (ps: typeof perSeed): string => ps.filter(p => p.ranTo > last).map(p => ` (seed ${p.seed}: after r${p.ranTo})`).join('')
    const variantCell = (g: number | undefined, label: string): string => g === undefined ? '' : `, ${points(g, 0)} ${label}`
    /** Mean ± std over seeds, or how many seeds ran the variant when some but not all did. */
    const variantSpread = (gains: Array<number | undefined>): string => {
      const ran = gains.filter((g): g is number => g !== undefined)
      return ran.length === gains.length ? spread(ran) : ran.length === 0 ? '-' : `- (${ran.length} of ${gains.length} seeds)`
    }
    const budgetCells = (p: typeof perSeed[number]): string => budgets.map((epochs, i) => variantCell(p.budgetGains[i], `after ${epochs} epochs`)).join('')
    return [pairName(c), ...perSeed.map(p => `${points(p.gain, 0)} at r${last}, ${p.ranTo > last ? `run on to r${p.ranTo}, then ` : ''}${points(p.finetunedGain, 0)} fine-tuned${variantCell(p.validatedGain, 'stopped early')}${variantCell(p.bestOfGain, 'best check')}${budgetCells(p)}; ${p.ahead}/${p.peers} peers ahead`), spread(perSeed.map(p => p.gain)), spread(perSeed.map(p => p.finetunedGain)) + ranOnNote(perSeed), variantSpread(perSeed.map(p => p.validatedGain)), variantSpread(perSeed.map(p => p.bestOfGain)), ...budgets.map((_, i) => variantSpread(perSeed.map(p => p.budgetGains[i])))]
  })
  const section = `design-seeds-${studyPart(options)}alpha-${alpha}`
  writeSection(section, `Design study across seeds: what sharing gains (${sizeLabel(options)}alpha ${alpha})`, command, [
    `Each seed draws its own public slice, shards, small-model shapes and training order (otherwise as in the design study above). Sharing gain: fedgrow minus its twin that shares nothing, in points of mean test accuracy over peers, at the last round every seed ran, after each peer's fine-tuning of its grown target on its own rows (a fixed number of steps), after the same fine-tuning stopped early or at its best check on the peer's held-out rows (only on runs made since those existed), and after a fine-tuning of E epochs of the peer's rows instead (where a run had --pulls 0@Ee). "Peers ahead": peers whose fedgrow model beat their independent one (before fine-tuning). Mean ± std over seeds (population std).`,
    '',
    tableKeepingRows(section, ['candidate', ...seeds.map(s => `seed ${s}`), 'gain, mean ± std', 'fine-tuned gain, mean ± std', 'stopped-early gain, mean ± std', 'best-check gain, mean ± std', ...budgets.map(e => `${e}-epoch gain, mean ± std`)], rows, CANDIDATES.map(pairName), 'runs/design')
  ].join('\n'))
}

