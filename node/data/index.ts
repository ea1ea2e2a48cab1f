/**
 * Data specs as users type them: images `mnist` (the bundled digits) or `idx:DIR` (an MNIST-format
 * folder), texts `spam` (the bundled SpamAssassin e-mails) or `text:FILE` (a user's labelled texts),
 * optionally cut to one participant's shard. Texts are tokenized on load, so they need the tokenizer
 * of the model that will read them.
 */
import { DataError, InvalidArgumentError } from '../errors.js'
import { DEFAULT_TOKENIZER } from '../model/tokenizer.js'
import { inSharedMemory, splitTrainTest } from './dataset.js'
import { loadIdxDir } from './idx.js'
import { loadBundledMnist } from './mnist.js'
import { partition } from './partition.js'
import { loadSpamAssassin, loadTextFile } from './text.js'
import type { ImageDataset, TrainTest } from './dataset.js'
import type { Partition } from './partition.js'
import type { TokenizerConfig } from '../model/tokenizer.js'

export * from './dataset.js'
export { parsePartition, partition } from './partition.js'
export type { Partition } from './partition.js'

/** Share of the rows held out for testing when a source has no test set of its own. */
export const DEFAULT_TEST_FRACTION = 0.2
/**
 * Share of a participant's training rows held out to choose among checkpoints of its own training: when
 * its small model is flat, and which phase-4 check to keep (`best-held-out`); it then trains on the rest.
 */
export const VALIDATION_FRACTION = 0.15

export const DATA_SPEC_HELP = '`mnist` (10,000 bundled digits), `idx:DIR` (a folder of MNIST-format IDX files, gzipped or not), `spam` (5,946 bundled e-mails, ham or spam) or `text:FILE` (labelled texts: .jsonl of {"text", "label"}, or .csv with a text,label header)'

/** The specs that name images; loadData types their data as such. */
export type ImageDataSpec = 'mnist' | `idx:${string}`

/** Whether a data spec names texts (`spam`, `text:FILE`), whose models need a tokenizer. */
export const isTextDataSpec = (spec: string): boolean => spec === 'spam' || spec.startsWith('text:')

/**
 * Loads a spec into train and test sets; sources without a test set are split with `seed`. Texts are
 * tokenized with `tokenizer` (the default's when not given).
 */
export function loadData (spec: ImageDataSpec, seed?: number | string): TrainTest<ImageDataset>
export function loadData (spec: string, seed?: number | string, tokenizer?: TokenizerConfig): TrainTest
export function loadData (spec: string, seed: number | string = 0, tokenizer: TokenizerConfig = DEFAULT_TOKENIZER): TrainTest {
  if (spec === 'mnist') return splitTrainTest(loadBundledMnist(), DEFAULT_TEST_FRACTION, seed)
  if (spec === 'spam') return splitTrainTest(loadSpamAssassin(tokenizer), DEFAULT_TEST_FRACTION, seed)
  if (spec.startsWith('text:')) {
    const file = spec.slice('text:'.length)
    if (file === '') throw new DataError('data spec "text:" needs a file, e.g. text:./messages.jsonl')
    return splitTrainTest(loadTextFile(file, tokenizer), DEFAULT_TEST_FRACTION, seed)
  }
  if (spec.startsWith('idx:')) {
    const dir = spec.slice('idx:'.length)
    if (dir === '') throw new DataError('data spec "idx:" needs a folder, e.g. idx:./data/fashion')
    const { train, test } = loadIdxDir(dir)
    return test === null ? splitTrainTest(train, DEFAULT_TEST_FRACTION, seed) : { train, test }
  }
  throw new DataError(`data spec "${spec}" is not known; use ${DATA_SPEC_HELP}`)
}

export interface Shard {
  index: number
  count: number
}

/** Parses "i/N" (0-based i) as used by --shard. */
export function parseShard (text: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(text)
  const index = Number(match?.[1])
  const count = Number(match?.[2])
  if (match === null || count < 1 || index >= count) {
    throw new InvalidArgumentError(`shard "${text}" must be i/N with 0 <= i < N, e.g. 0/4 for the first of four participants`)
  }
  return { index, count }
}

/** The participant's own train and test rows: the same on every machine for the same spec, seed and partition. */
export function loadShard (spec: string, shard: Shard, how: Partition, seed: number | string, tokenizer?: TokenizerConfig): TrainTest {
  const data = loadData(spec, seed, tokenizer)
  return inSharedMemory(shard.count === 1 ? data : partition(data, shard.count, how, seed)[shard.index])
}
