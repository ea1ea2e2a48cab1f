/**
 * Federation on text: every method on the bundled SpamAssassin e-mails, preset text (the default of
 * `fedgrow simulate --data spam`), scored as the paper-table bench scores digits.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initBackend } from '../../node/backend.js'
import { METHOD_NAMES, simulate } from '../../node/simulation/index.js'
import { describeFinetune, PRESETS } from '../../node/simulation/presets.js'
import { createLogger } from '../../node/log.js'
import { consoleProgress } from '../../node/train/progress.js'
import { comparisonSection } from './paper-table.js'
import { flagValue, writeSection } from './report.js'

export async function textBench (command: string, args: string[]): Promise<void> {
  await initBackend('wasm')
  const p = PRESETS.text
  const peers = Number(flagValue(args, '--peers') ?? 4)
  const alpha = Number(flagValue(args, '--alpha') ?? 100)
  const result = await simulate({
    peers,
    rounds: p.rounds,
    preset: p,
    alpha,
    methods: [...METHOD_NAMES],
    seed: 0,
    data: 'spam',
    outDir: mkdtempSync(join(tmpdir(), 'fedgrow-text-')),
    log: createLogger('text', (line) => { process.stderr.write(line + '\n') }),
    onProgress: consoleProgress()
  })
  writeSection('text', 'Federation on text: fedgrow vs its baselines on spam (preset text)', command, [
    `Data: the bundled SpamAssassin e-mails (docs/text.md), Subject and body, tokenized as hashed words: ${p.tokenizer?.vocabSize ?? '8192'} buckets, ${p.tokenizer?.seqLen ?? 256} tokens, seed 0. Ham or spam; always guessing ham scores 69.2%.`,
    `Preset text: small models dim ${p.smallDims.join('/')} x ${p.smallLayers.join('/')} layers (drawn per peer), intermediate ${p.intermediate.dim}x${p.intermediate.layers}, target ${p.target.dim}x${p.target.layers}, ${p.heads} heads, mlp ratio ${p.mlpRatio}. Small models grow a public checkpoint of their shape, trained on 3/16 of the training e-mails that no peer holds.`,
    `${p.rounds} rounds of ${p.localSteps} local steps (batch ${p.batchSize}, AdamW lr ${p.learningRate}); ${describeFinetune(p.finetune)} after the last round. Peers are real libp2p nodes on 127.0.0.1 in one process.`,
    'Accuracy: each peer\'s final model on its own test split (its share of the 1,189 held-out e-mails, dealt by the same label mix as its training rows), mean/std/min across peers.',
    '',
    comparisonSection(result)
  ].join('\n'))
}
