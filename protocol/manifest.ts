/**
 * The federation manifest: everything peers must agree on before they can average a Global-LiGO.
 * Its id is the SHA-256 of its canonical JSON with `bootstrap` left out (addresses change, the federation
 * does not). Validation is strict: unknown fields are errors, every field is checked with its path.
 */
import { canonicalJson, sha256Hex } from './canonical.js'
import { DEFAULTS, LIMITS, MANIFEST_VERSION, MODEL_LIMITS, TOKENIZER_KINDS } from './constants.js'
import { InvalidManifestError } from './errors.js'
import { checks } from './validate.js'
import { AVERAGING_SCHEMES } from './groups.js'
import type { Fail, Fields } from './validate.js'

export const LIGO_INIT_NAMES = ['fedgrow', 'ligo'] as const
export const AGGREGATION_RULES = ['mean', 'trimmed-mean', 'median', 'centered-clip'] as const
/**
 * fedgrow: peers share Global-LiGO (the method). fedavg: peers share the whole target model, trained
 * from scratch (the model-sharing baseline the paper compares against). authors-code: Dual-LiGO as the
 * Fed-Grow authors' code runs it, sharing the intermediate model's weights as well as Global-LiGO (it
 * shares a model: a baseline, not the method).
 */
export const METHODS = ['fedgrow', 'fedavg', 'authors-code'] as const
/**
 * Which fine-tuning check a participant keeps: `last`, the weights after the last step; `best-held-out`,
 * the check (node/federation/learner.ts: every FINETUNE_CHECK_STEPS, and the model before them) that
 * scores best on a share of its own rows held out from fine-tuning, which helps small near-IID shards and
 * keeps too early a model on skewed ones.
 */
export const FINETUNE_SELECTIONS = ['last', 'best-held-out'] as const

export interface ModelSize {
  dim: number
  layers: number
  /** FFN width = mlpRatio * dim. */
  mlpRatio: number
}

/** What every task names: the data, how simulations cut it, the classes and the attention heads. */
interface TaskCommon {
  /** What the data is, e.g. "mnist" or "spam": a label for people; each peer brings its own rows. */
  data: string
  /** How the shared data was cut in a simulation: "iid" or "dirichlet:ALPHA". */
  partition: string
  numClasses: number
  heads: number
}

/** Images, cut into patches: every peer's model takes images of this size. */
export interface ImageTask extends TaskCommon {
  kind: 'image-classification'
  imageSize: number
  channels: number
  patchSize: number
}

/**
 * Texts, tokenized alike on every peer: the tokenizer is fixed by these four numbers (no vocabulary is
 * shared), and its vocabSize and seqLen are the shapes of every model's token table and positions.
 */
export interface TextTask extends TaskCommon {
  kind: 'text-classification'
  tokenizer: { kind: typeof TOKENIZER_KINDS[number], vocabSize: number, seqLen: number, seed: number }
}

export const TASK_KINDS = ['image-classification', 'text-classification'] as const

export interface Manifest {
  version: typeof MANIFEST_VERSION
  /** What peers share each round; optional in files, `fedgrow` when absent. */
  method: typeof METHODS[number]
  /** A human-readable name; part of the id, so two otherwise equal federations can differ by name. */
  name: string
  task: ImageTask | TextTask
  intermediate: ModelSize
  target: ModelSize
  ligo: {
    init: typeof LIGO_INIT_NAMES[number]
    seed: number
    /**
     * Each participant keeps its target's classifier (head.w, head.b) to itself: trained with Global-LiGO
     * every round, never grown by it nor sent. fedgrow only. Absent: the head is grown like the rest.
     */
    privateHead?: true
  }
  schedule: {
    rounds: number
    /** Global-LiGO optimiser steps per round. */
    localSteps: number
    /** Local-LiGO optimiser steps before the first round. */
    localLigoSteps: number
    learningRate: number
    batchSize: number
    weightDecay: number
    roundTimeoutMs: number
    /** Updates (own included) a round needs before its deadline may close it. */
    quorum: number
    /**
     * Steps each participant trains its own target model's weights, on its own rows, after the last
     * round (the method's optional last phase; nothing is shared). Absent: none.
     */
    finetuneSteps?: number
    /**
     * The same phase's budget in passes over the participant's own training rows instead of steps (at
     * batchSize, the last short batch dropped): a budget that scales with the rows, where fixed steps
     * are 40 epochs of a small shard and 6 of a large one. Exclusive with finetuneSteps. Absent: none.
     */
    finetuneEpochs?: number
    /** Which check of those steps the participant keeps (FINETUNE_SELECTIONS). Absent: `last`. */
    finetuneSelect?: typeof FINETUNE_SELECTIONS[number]
    /**
     * How hard those steps pull the weights back toward the grown ones: the loss adds
     * lambda/2 x |weights - grown weights|^2 (L2-SP), lambda = finetunePull. Absent: 0, no pull.
     */
    finetunePull?: number
    /**
     * finetunePull is per training row: a participant holding n rows pulls with lambda = finetunePull / n,
     * a prior whose weight against the data shrinks as the data grows. Absent: false.
     */
    finetunePullPerRow?: true
  }
  aggregation: {
    rule: typeof AGGREGATION_RULES[number]
    /** trimmed-mean: share of contributions dropped at each end, per coordinate. @default 0.2 */
    trim?: number
    /** centered-clip: the clipping radius tau (L2 norm over the whole update). @default 1 */
    clipTau?: number
    /** centered-clip: clipping iterations per round. @default 1 */
    clipIterations?: number
    /**
     * With whom each peer averages each round: absent (all-to-all, the exact mean of everyone's updates),
     * or `group`: small groups that change every round (protocol/groups.ts), for large federations.
     */
    averaging?: 'group'
    /** group averaging: the smallest group (groups hold min(n, groupSize) to 2 * groupSize - 1 of n peers). */
    groupSize?: number
  }
  /** Who may take part; absent: anyone who has the manifest. */
  access?: {
    /**
     * SHA-256 hex of the libp2p private-network key (swarm.key file) every member must hold; the key
     * itself never appears in a manifest.
     */
    preSharedKey?: string
    /** Peer ids allowed to connect and publish; absent: any peer (that holds the key, if one is set). */
    allowlist?: string[]
  }
  /** Multiaddrs to start from; not part of the id. */
  bootstrap?: string[]
}

/** A base58btc libp2p peer id as printed by libp2p (Ed25519 ids start with 12D3KooW). */
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{46,128}$/

/** Whether `peerId` may take part in a federation with this manifest. */
export function isMember (manifest: Manifest, peerId: string): boolean {
  return manifest.access?.allowlist === undefined || manifest.access.allowlist.includes(peerId)
}

const fail: Fail = (path, value, rule) => {
  throw new InvalidManifestError(`manifest ${path} = ${JSON.stringify(value)}: ${rule}`)
}
const { object, int, num, str, bool, hash, strings } = checks(fail)

const IMAGE_TASK_FIELDS = ['data', 'partition', 'imageSize', 'channels', 'numClasses', 'patchSize', 'heads'] as const
const TEXT_TASK_FIELDS = ['data', 'partition', 'numClasses', 'heads', 'tokenizer'] as const
/** Names, data sets and other free text in a manifest. */
const MAX_TEXT = 200

function size (value: unknown, path: string, heads: number): ModelSize {
  const o = object(value, path, ['dim', 'layers', 'mlpRatio'])
  const dim = int(o.dim, `${path}.dim`, 1, MODEL_LIMITS.maxDim)
  if (dim % heads !== 0) fail(`${path}.dim`, dim, `must be a multiple of task.heads (${heads})`)
  const mlpRatio = num(o.mlpRatio, `${path}.mlpRatio`, 0.01, MODEL_LIMITS.maxMlpRatio)
  if (!Number.isInteger(mlpRatio * dim)) fail(`${path}.mlpRatio`, mlpRatio, `mlpRatio * dim (${dim}) must be a whole number`)
  return { dim, layers: int(o.layers, `${path}.layers`, 1, MODEL_LIMITS.maxLayers), mlpRatio }
}

/** Checks `task`: an image task or a text task, each with exactly its own fields. */
function validateTask (value: unknown): Manifest['task'] {
  const kind = str((object(value, 'task', ['kind'], [...IMAGE_TASK_FIELDS, ...TEXT_TASK_FIELDS])).kind, 'task.kind', MAX_TEXT, TASK_KINDS)
  const t = object(value, 'task', ['kind', ...(kind === 'text-classification' ? TEXT_TASK_FIELDS : IMAGE_TASK_FIELDS)])
  const data = str(t.data, 'task.data', MAX_TEXT)
  const partition = str(t.partition, 'task.partition', MAX_TEXT)
  const numClasses = (): number => int(t.numClasses, 'task.numClasses', 2, MODEL_LIMITS.maxClasses)
  const heads = (): number => int(t.heads, 'task.heads', 1, MODEL_LIMITS.maxHeads)
  if (kind === 'text-classification') {
    const common = { data, partition, numClasses: numClasses(), heads: heads() }
    const k = object(t.tokenizer, 'task.tokenizer', ['kind', 'vocabSize', 'seqLen', 'seed'])
    const tokenizer = {
      kind: str(k.kind, 'task.tokenizer.kind', MAX_TEXT, TOKENIZER_KINDS) as TextTask['tokenizer']['kind'],
      vocabSize: int(k.vocabSize, 'task.tokenizer.vocabSize', MODEL_LIMITS.minVocabSize, MODEL_LIMITS.maxVocabSize),
      seqLen: int(k.seqLen, 'task.tokenizer.seqLen', 1, MODEL_LIMITS.maxSeqLen),
      seed: int(k.seed, 'task.tokenizer.seed', 0, 2 ** 32 - 1)
    }
    return { kind, ...common, tokenizer }
  }
  // Fields checked and written in their order from before text tasks existed.
  const image: ImageTask = {
    kind: 'image-classification',
    data,
    partition,
    imageSize: int(t.imageSize, 'task.imageSize', 1, MODEL_LIMITS.maxImageSize),
    channels: int(t.channels, 'task.channels', 1, MODEL_LIMITS.maxChannels),
    numClasses: numClasses(),
    patchSize: int(t.patchSize, 'task.patchSize', 1, MODEL_LIMITS.maxImageSize),
    heads: heads()
  }
  if (image.imageSize % image.patchSize !== 0) fail('task.patchSize', image.patchSize, `must divide task.imageSize (${image.imageSize})`)
  return image
}

/** Phase 4's budget as a manifest writes it: finetuneSteps or finetuneEpochs (neither: no phase 4). */
export type FinetuneBudget = Pick<Manifest['schedule'], 'finetuneSteps' | 'finetuneEpochs'>

const SET_A_BUDGET = 'set schedule.finetuneEpochs (e.g. 12) or schedule.finetuneSteps (e.g. 200), or remove it'

/** Whether a schedule (as written, or validated) gives phase 4 a budget: steps or epochs above 0. */
export function hasFinetuneBudget (s: { finetuneSteps?: unknown, finetuneEpochs?: unknown }): boolean {
  return (typeof s.finetuneSteps === 'number' && s.finetuneSteps > 0) || (typeof s.finetuneEpochs === 'number' && s.finetuneEpochs > 0)
}

/**
 * Phase 4's budget as written: `finetuneSteps` or `finetuneEpochs`, each only when present (so that
 * manifests written before either keep their id), never both above 0.
 */
function finetuneBudget (s: Fields): FinetuneBudget {
  const steps = s.finetuneSteps === undefined ? undefined : int(s.finetuneSteps, 'schedule.finetuneSteps', 0, 1_000_000)
  const epochs = s.finetuneEpochs === undefined ? undefined : int(s.finetuneEpochs, 'schedule.finetuneEpochs', 0, LIMITS.maxFinetuneEpochs)
  if ((steps ?? 0) > 0 && (epochs ?? 0) > 0) fail('schedule.finetuneEpochs', epochs, `gives phase 4 a budget in epochs, and schedule.finetuneSteps (${steps}) one in steps; keep one of them`)
  return { ...(steps !== undefined ? { finetuneSteps: steps } : {}), ...(epochs !== undefined ? { finetuneEpochs: epochs } : {}) }
}

/** `schedule.finetuneSelect` as written: nothing for `last` (the default, so that older manifests keep their id). */
function finetuneSelect (s: Fields): Pick<Manifest['schedule'], 'finetuneSelect'> {
  if (s.finetuneSelect === undefined) return {}
  const select = str(s.finetuneSelect, 'schedule.finetuneSelect', MAX_TEXT, FINETUNE_SELECTIONS)
  if (select === 'last') return {}
  if (!hasFinetuneBudget(s)) fail('schedule.finetuneSelect', select, `chooses among fine-tuning checks; ${SET_A_BUDGET}`)
  return { finetuneSelect: 'best-held-out' }
}

/**
 * `schedule.finetunePull` and `finetunePullPerRow` as written: nothing for no pull and for false (the
 * defaults, so that older manifests keep their id).
 */
function finetunePull (s: Fields): Pick<Manifest['schedule'], 'finetunePull' | 'finetunePullPerRow'> {
  const perRow = s.finetunePullPerRow !== undefined && bool(s.finetunePullPerRow, 'schedule.finetunePullPerRow')
  const pull = s.finetunePull === undefined ? 0 : num(s.finetunePull, 'schedule.finetunePull', 0, perRow ? LIMITS.maxFinetunePullPerRow : LIMITS.maxFinetunePull)
  if (pull === 0) {
    if (perRow) fail('schedule.finetunePullPerRow', true, 'divides schedule.finetunePull by each participant\'s rows; set schedule.finetunePull (e.g. 1000) or remove it')
    return {}
  }
  if (!hasFinetuneBudget(s)) fail('schedule.finetunePull', pull, `pulls fine-tuned weights toward the grown ones; ${SET_A_BUDGET}`)
  return { finetunePull: pull, ...(perRow ? { finetunePullPerRow: true } : {}) }
}

/** `ligo.privateHead` as written: nothing for false (the default, so that older manifests keep their id). */
function privateHead (l: Fields, method: Manifest['method']): Pick<Manifest['ligo'], 'privateHead'> {
  if (l.privateHead === undefined || !bool(l.privateHead, 'ligo.privateHead')) return {}
  if (method !== 'fedgrow') fail('ligo.privateHead', true, `keeps each participant's classifier private while Global-LiGO grows the rest of its model, which only the fedgrow method grows (this manifest's method is ${method}); remove it`)
  return { privateHead: true }
}

/** Checks an untrusted manifest (parsed JSON) field by field; returns a typed copy. */
export function validateManifest (value: unknown): Manifest {
  const m = object(value, 'manifest', ['version', 'name', 'task', 'intermediate', 'target', 'ligo', 'schedule', 'aggregation'], ['bootstrap', 'method', 'access'])
  if (m.version !== MANIFEST_VERSION) fail('version', m.version, `this fedgrow reads manifest version ${MANIFEST_VERSION}`)
  const task = validateTask(m.task)
  const intermediate = size(m.intermediate, 'intermediate', task.heads)
  const target = size(m.target, 'target', task.heads)
  if (target.dim < intermediate.dim || target.layers < intermediate.layers || target.dim * target.mlpRatio < intermediate.dim * intermediate.mlpRatio) {
    fail('target', m.target, 'must be at least as wide, deep and FFN-wide as intermediate (Global-LiGO grows)')
  }
  const l = object(m.ligo, 'ligo', ['init', 'seed'], ['privateHead'])
  const method = m.method === undefined ? 'fedgrow' : str(m.method, 'manifest.method', MAX_TEXT, METHODS) as Manifest['method']
  const s = object(m.schedule, 'schedule', ['rounds', 'localSteps', 'localLigoSteps', 'learningRate', 'batchSize', 'weightDecay'], ['roundTimeoutMs', 'quorum', 'finetuneSteps', 'finetuneEpochs', 'finetuneSelect', 'finetunePull', 'finetunePullPerRow'])
  const a = object(m.aggregation, 'aggregation', ['rule'], ['trim', 'clipTau', 'clipIterations', 'averaging', 'groupSize'])
  const averaging = a.averaging === undefined ? 'all-to-all' : str(a.averaging, 'aggregation.averaging', MAX_TEXT, AVERAGING_SCHEMES)
  if (averaging !== 'group' && a.groupSize !== undefined) fail('aggregation.groupSize', a.groupSize, 'applies to group averaging only; add "averaging": "group" or remove it')
  let access: Manifest['access']
  if (m.access !== undefined) {
    const acc = object(m.access, 'access', [], ['preSharedKey', 'allowlist'])
    access = {}
    if (acc.preSharedKey !== undefined) {
      // The SHA-256 of the swarm key file.
      access.preSharedKey = hash(acc.preSharedKey, 'access.preSharedKey')
    }
    if (acc.allowlist !== undefined) {
      const list = strings(acc.allowlist, 'access.allowlist', LIMITS.maxAllowlist, 'libp2p peer id (e.g. 12D3KooW…; `fedgrow identity` prints yours)', id => PEER_ID.test(id))
      if (list.length === 0) fail('access.allowlist', list, 'must name at least one peer id')
      // Sorted, so the order people list members in does not change the federation id.
      access.allowlist = [...new Set(list)].sort()
    }
  }
  let bootstrap: string[] | undefined
  if (m.bootstrap !== undefined) {
    bootstrap = strings(m.bootstrap, 'bootstrap', 256, 'multiaddr (e.g. /ip4/1.2.3.4/tcp/4001/p2p/12D3KooW…)', b => b.startsWith('/') && b.length < 1024)
  }
  return {
    version: MANIFEST_VERSION,
    method,
    name: str(m.name, 'manifest.name', MAX_TEXT),
    task,
    intermediate,
    target,
    ligo: { init: str(l.init, 'ligo.init', MAX_TEXT, LIGO_INIT_NAMES) as Manifest['ligo']['init'], seed: int(l.seed, 'ligo.seed', 0, 2 ** 32 - 1), ...privateHead(l, method) },
    schedule: {
      rounds: int(s.rounds, 'schedule.rounds', 1, LIMITS.maxRounds),
      localSteps: int(s.localSteps, 'schedule.localSteps', 1, 1_000_000),
      localLigoSteps: int(s.localLigoSteps, 'schedule.localLigoSteps', 0, 1_000_000),
      learningRate: num(s.learningRate, 'schedule.learningRate', 1e-8, 1),
      batchSize: int(s.batchSize, 'schedule.batchSize', 1, 65536),
      weightDecay: num(s.weightDecay, 'schedule.weightDecay', 0, 10),
      roundTimeoutMs: s.roundTimeoutMs === undefined ? DEFAULTS.roundTimeoutMs : int(s.roundTimeoutMs, 'schedule.roundTimeoutMs', 100, 86_400_000),
      quorum: s.quorum === undefined ? DEFAULTS.quorum : int(s.quorum, 'schedule.quorum', 1, 100_000),
      ...finetuneBudget(s),
      ...finetuneSelect(s),
      ...finetunePull(s)
    },
    aggregation: {
      rule: str(a.rule, 'aggregation.rule', MAX_TEXT, AGGREGATION_RULES) as Manifest['aggregation']['rule'],
      ...(a.trim !== undefined ? { trim: num(a.trim, 'aggregation.trim', 0, 0.49) } : {}),
      ...(a.clipTau !== undefined ? { clipTau: num(a.clipTau, 'aggregation.clipTau', 1e-9, 1e9) } : {}),
      ...(a.clipIterations !== undefined ? { clipIterations: int(a.clipIterations, 'aggregation.clipIterations', 1, 100) } : {}),
      // All-to-all is written as nothing, so that manifests from before group averaging keep their id.
      ...(averaging === 'group' ? { averaging, groupSize: a.groupSize === undefined ? DEFAULTS.groupSize : int(a.groupSize, 'aggregation.groupSize', 2, LIMITS.maxGroupSize) } : {})
    },
    ...(access !== undefined ? { access } : {}),
    ...(bootstrap !== undefined ? { bootstrap } : {})
  }
}

/** The federation id: SHA-256 hex of the canonical JSON of the manifest without `bootstrap`. */
export function federationId (manifest: Manifest): string {
  const { bootstrap: _ignored, ...identity } = manifest
  return sha256Hex(canonicalJson(identity))
}

/** Parses manifest text (JSON) and validates it. */
export function parseManifest (text: string): Manifest {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new InvalidManifestError(`manifest is not valid JSON: ${(err as Error).message}`)
  }
  return validateManifest(value)
}
