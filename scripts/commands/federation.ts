import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { federationId, validateManifest, AGGREGATION_RULES, LIGO_INIT_NAMES } from '../../protocol/manifest.js'
import type { Manifest } from '../../protocol/manifest.js'
import { DEFAULTS, LIMITS, MANIFEST_VERSION, MODEL_LIMITS } from '../../protocol/constants.js'
import { DEFAULT_VIT_CONFIG } from '../../node/model/config.js'
import { DEFAULT_TOKENIZER } from '../../node/model/tokenizer.js'
import { isTextDataSpec } from '../../node/data/index.js'
import { InvalidArgumentError } from '../../node/errors.js'
import { createSwarmKey, readSwarmKey, swarmKeyFingerprint } from '../../node/p2p/private-network.js'
import { choiceFlag, numberFlag, optionalString, stringFlag } from '../args.js'
import type { Command } from '../args.js'
import { FINETUNE_FLAGS, finetuneBudgetFlags, headFlag, readFinetune, readFinetuneBudget, readPrivateHead } from './shared.js'

const num = (def: number | string, help: string, value = 'N'): { type: 'string', value: string, help: string, default: string } => ({ type: 'string', value, help, default: String(def) })

export const federationCommand: Command = {
  name: 'federation',
  summary: 'Create a federation manifest: `fedgrow federation init [flags] > fed.json` (prints its id on stderr).',
  details: [
    'The manifest fixes everything peers must agree on: the task, the intermediate and target shapes, the',
    'LiGO init and seed, the round schedule and the aggregation rule. Its id is the SHA-256 of its canonical',
    'JSON without the bootstrap list; topics and protocol ids derive from it. Defaults suit the bundled digits.',
    '',
    'Text federations: --data spam (the bundled e-mails) or text:FILE makes the task text-classification, as',
    'does any tokenizer flag. Every peer then tokenizes with the manifest\'s hashed-word tokenizer',
    '(--vocab-size, --seq-len, --tokenizer-seed; docs/text.md states the rule), so no vocabulary is ever',
    'shared, and brings a small text model pre-trained with that tokenizer (fedgrow pretrain --data ...',
    '--vocab-size V --seq-len S --tokenizer-seed K).',
    '',
    'Private federations: --psk-out (or --psk) puts the SHA-256 of a pre-shared key in the manifest; members',
    'start `fedgrow node --psk FILE`, and peers without the key cannot complete a connection. --allow lists',
    'the only peer ids that may connect or publish. The manifest itself can then be public.'
  ].join('\n'),
  positionals: 'init',
  flags: {
    name: { type: 'string', value: 'NAME', help: 'a name for people (part of the id) (default: fedgrow-digits, or fedgrow-text for text)' },
    data: { type: 'string', value: 'LABEL', help: 'what the data is (a label; each peer brings its own rows). spam or text:FILE make a text federation', default: 'mnist' },
    partition: { type: 'string', value: 'HOW', help: 'how shards are cut in simulations: iid or dirichlet:ALPHA', default: 'iid' },
    'image-size': num(DEFAULT_VIT_CONFIG.imageSize, 'images: square image side'),
    channels: num(DEFAULT_VIT_CONFIG.channels, 'images: channels'),
    'patch-size': num(DEFAULT_VIT_CONFIG.patchSize, 'images: patch side'),
    'vocab-size': { type: 'string', value: 'V', help: `text: hashed-word buckets, the token table's rows (default ${DEFAULT_TOKENIZER.vocabSize})` },
    'seq-len': { type: 'string', value: 'S', help: `text: tokens per text, longer ones cut (default ${DEFAULT_TOKENIZER.seqLen}; attention costs S^2)` },
    'tokenizer-seed': { type: 'string', value: 'K', help: `text: seed of the word hash (default ${DEFAULT_TOKENIZER.seed})` },
    classes: { type: 'string', value: 'N', help: `number of classes (default: ${DEFAULT_VIT_CONFIG.numClasses} for images, 2 for text)` },
    heads: num(DEFAULT_VIT_CONFIG.heads, 'attention heads of every model in the federation'),
    'intermediate-dim': num(48, 'intermediate (shared) model width'),
    'intermediate-layers': num(3, 'intermediate model depth'),
    'intermediate-mlp-ratio': num(2, 'intermediate FFN ratio', 'R'),
    'target-dim': num(64, 'target model width'),
    'target-layers': num(4, 'target model depth'),
    'target-mlp-ratio': num(2, 'target FFN ratio', 'R'),
    init: { type: 'string', value: 'INIT', help: `LiGO initialisation: ${LIGO_INIT_NAMES.join(' or ')}`, default: 'ligo' },
    seed: num(0, 'seed of the initial Global-LiGO (same on every peer)'),
    rounds: num(5, 'federated rounds'),
    'local-steps': num(20, 'Global-LiGO training steps per round on each peer'),
    'local-ligo-steps': num(0, 'Local-LiGO training steps before the first round. 0 suits participants who grow a published checkpoint of their shape: they then share one intermediate model, which is what makes averaging Global-LiGO pay (docs/method.md); give e.g. 100 when each brings a model of its own'),
    ...finetuneBudgetFlags('Simulations measured phase 4 worth +6.8 points on skewed data and neutral on even data (docs/method.md); off by default here, because it runs on every participant\'s machine.'),
    ...FINETUNE_FLAGS,
    ...headFlag('private', 'Private by default: without fine-tuning (no phase-4 budget, the default here) it measured 3.4 points better on skewed data and 0.8 worse on even data than grown, and was the only choice under which sharing beat growing alone on both kinds of data'),
    lr: num(0.001, 'AdamW learning rate', 'RATE'),
    'batch-size': num(64, 'examples per step'),
    'weight-decay': num(0.05, 'AdamW weight decay', 'W'),
    'round-timeout-ms': num(DEFAULTS.roundTimeoutMs, 'a round waits this long for missing peers', 'MS'),
    quorum: num(DEFAULTS.quorum, 'updates (own included) a round needs before it may close early. 2 means no peer trains a round alone while others are still starting; a peer alone waits --round-timeout-ms, then goes on and warns'),
    aggregation: { type: 'string', value: 'RULE', help: `how updates are combined: ${AGGREGATION_RULES.join(', ')} (the last three resist hostile peers)`, default: 'mean' },
    trim: { type: 'string', value: 'F', help: 'trimmed-mean: share dropped at each end per coordinate (default 0.2)' },
    'clip-tau': { type: 'string', value: 'TAU', help: 'centered-clip: clipping radius, the L2 norm of a whole update (default 1)' },
    'clip-iterations': { type: 'string', value: 'N', help: 'centered-clip: iterations per round (default 1)' },
    'group-size': { type: 'string', value: 'G', help: `group averaging: each round a peer averages with a group of G to 2G-1 peers, redrawn every round, instead of with everyone, so its traffic stays a few payloads a round however large the federation grows; peers then end on nearby, not equal, Global-LiGOs. For hundreds of peers and more (default: all-to-all; ${DEFAULTS.groupSize} is a good G)` },
    'psk-out': { type: 'string', value: 'FILE', help: 'make the federation private: write a new pre-shared key here (give it to members only)' },
    psk: { type: 'string', value: 'FILE', help: 'make the federation private with an existing pre-shared key (swarm.key format)' },
    allow: { type: 'string', value: 'PEER-ID', help: 'only this peer may join (repeat for each member; `fedgrow identity` prints an id)', multiple: true },
    bootstrap: { type: 'string', value: 'MULTIADDR', help: 'a peer to start from (not part of the id)', multiple: true },
    out: { type: 'string', value: 'FILE', help: 'write the manifest here instead of stdout' }
  },
  async run (flags, positionals) {
    if (positionals[0] !== 'init' || positionals.length !== 1) throw new InvalidArgumentError('usage: fedgrow federation init [flags] > fed.json')
    const int = (name: string, min: number, max: number): number => numberFlag(flags, name, min, max, true)
    const bootstrap = (flags.bootstrap as string[] | undefined) ?? []
    const allowlist = (flags.allow as string[] | undefined) ?? []
    const pskOut = optionalString(flags, 'psk-out')
    const pskIn = optionalString(flags, 'psk')
    if (pskOut !== undefined && pskIn !== undefined) throw new InvalidArgumentError('give --psk-out (a new key) or --psk (an existing key), not both')
    const tokenizerFlags = ['vocab-size', 'seq-len', 'tokenizer-seed'].filter(f => optionalString(flags, f) !== undefined)
    const textTask = isTextDataSpec(stringFlag(flags, 'data')) || tokenizerFlags.length > 0
    const common = { data: stringFlag(flags, 'data'), partition: stringFlag(flags, 'partition'), numClasses: optionalString(flags, 'classes') === undefined ? (textTask ? 2 : DEFAULT_VIT_CONFIG.numClasses) : int('classes', 2, 100000), heads: int('heads', 1, 256) }
    const optionalInt = (name: string, fallback: number, min: number, max: number): number => optionalString(flags, name) === undefined ? fallback : int(name, min, max)
    const task = textTask
      ? { kind: 'text-classification', ...common, tokenizer: { kind: DEFAULT_TOKENIZER.kind, vocabSize: optionalInt('vocab-size', DEFAULT_TOKENIZER.vocabSize, MODEL_LIMITS.minVocabSize, MODEL_LIMITS.maxVocabSize), seqLen: optionalInt('seq-len', DEFAULT_TOKENIZER.seqLen, 1, MODEL_LIMITS.maxSeqLen), seed: optionalInt('tokenizer-seed', DEFAULT_TOKENIZER.seed, 0, 2 ** 32 - 1) } }
      : { kind: 'image-classification', data: common.data, partition: common.partition, imageSize: int('image-size', 1, 1024), channels: int('channels', 1, 16), numClasses: common.numClasses, patchSize: int('patch-size', 1, 1024), heads: common.heads }
    const finetuneSchedule = (): Pick<Manifest['schedule'], 'finetuneSteps' | 'finetuneEpochs' | 'finetuneSelect' | 'finetunePull' | 'finetunePullPerRow'> => {
      const budget = readFinetuneBudget(flags, {})
      return { ...budget, ...readFinetune(flags, budget) }
    }
    const manifest = validateManifest({
      version: MANIFEST_VERSION,
      name: optionalString(flags, 'name') ?? (textTask ? 'fedgrow-text' : 'fedgrow-digits'),
      task,
      intermediate: { dim: int('intermediate-dim', 1, 8192), layers: int('intermediate-layers', 1, 128), mlpRatio: numberFlag(flags, 'intermediate-mlp-ratio', 0.01, 16) },
      target: { dim: int('target-dim', 1, 8192), layers: int('target-layers', 1, 128), mlpRatio: numberFlag(flags, 'target-mlp-ratio', 0.01, 16) },
      ligo: { init: choiceFlag(flags, 'init', LIGO_INIT_NAMES), seed: int('seed', 0, 2 ** 32 - 1), ...(readPrivateHead(flags) ? { privateHead: true } : {}) },
      schedule: { rounds: int('rounds', 1, 1000000), localSteps: int('local-steps', 1, 1000000), localLigoSteps: int('local-ligo-steps', 0, 1000000), learningRate: numberFlag(flags, 'lr', 1e-8, 1), batchSize: int('batch-size', 1, 65536), weightDecay: numberFlag(flags, 'weight-decay', 0, 10), roundTimeoutMs: int('round-timeout-ms', 100, 86400000), quorum: int('quorum', 1, 100000), ...finetuneSchedule() },
      aggregation: {
        rule: choiceFlag(flags, 'aggregation', AGGREGATION_RULES),
        ...(optionalString(flags, 'trim') !== undefined ? { trim: numberFlag(flags, 'trim', 0, 0.49) } : {}),
        ...(optionalString(flags, 'clip-tau') !== undefined ? { clipTau: numberFlag(flags, 'clip-tau', 1e-9, 1e9) } : {}),
        ...(optionalString(flags, 'clip-iterations') !== undefined ? { clipIterations: int('clip-iterations', 1, 100) } : {}),
        ...(optionalString(flags, 'group-size') !== undefined ? { averaging: 'group', groupSize: int('group-size', 2, LIMITS.maxGroupSize) } : {})
      },
      ...(pskOut !== undefined || pskIn !== undefined || allowlist.length > 0
        ? {
            access: {
              ...(pskOut !== undefined ? { preSharedKey: swarmKeyFingerprint(createSwarmKey(pskOut)) } : {}),
              ...(pskIn !== undefined ? { preSharedKey: swarmKeyFingerprint(readSwarmKey(pskIn)) } : {}),
              ...(allowlist.length > 0 ? { allowlist } : {})
            }
          }
        : {}),
      ...(bootstrap.length > 0 ? { bootstrap } : {})
    })
    const text = JSON.stringify(manifest, null, 2) + '\n'
    const out = optionalString(flags, 'out')
    if (out !== undefined) {
      mkdirSync(dirname(out), { recursive: true })
      writeFileSync(out, text)
    }
    else process.stdout.write(text)
    process.stderr.write(`federation id ${federationId(manifest)}\n`)
  }
}
