/**
 * The text tokenizer: hashed words, fixed entirely by its configuration and derived from no one's data,
 * so no vocabulary built from a participant's private text ever has to leave its machine, and every peer
 * tokenizes alike without exchanging anything but these four numbers.
 *
 * The rule, exactly (docs/text.md restates it for reproducing the ids with another tool), for
 * { kind: 'hashed-words', vocabSize V, seqLen S, seed K }:
 *   1. normalise the text to Unicode NFC, then lowercase it (String.prototype.toLowerCase: Unicode's
 *      default, locale-independent case mapping);
 *   2. words are the maximal runs of letters, combining marks and digits, /[\p{L}\p{M}\p{N}]+/u, in
 *      order; everything else (spaces, punctuation, symbols, emoji) only separates words. Marks are
 *      part of words so that scripts such as Devanagari or decomposed accents are not cut mid-word;
 *   3. each word's id is 2 + (h mod (V - 2)), where h is 32-bit FNV-1a (offset basis 2166136261,
 *      prime 16777619, arithmetic mod 2^32) over the 4 bytes of K (unsigned 32-bit, little-endian)
 *      followed by the word's UTF-8 bytes;
 *   4. the first S ids are kept (longer texts are cut); shorter ones are padded with 0 up to S.
 * Id 0 is padding and id 1 is reserved (never produced; kept free for a later mask or unknown token),
 * so words land in buckets [2, V). Collisions are accepted: with V = 8192 buckets two frequent words
 * rarely share one, and the model learns around the ones that do.
 */
import { invalidField } from '../errors.js'
import { MODEL_LIMITS, TOKENIZER_KINDS } from '../../protocol/constants.js'

export interface TokenizerConfig {
  /** The rule above; any change of rule gets a new kind, so old model files keep meaning what they meant. */
  kind: typeof TOKENIZER_KINDS[number]
  /** Token ids are in [0, vocabSize): the embedding table's rows. */
  vocabSize: number
  /** Tokens per text, after cutting or padding: the model's positions, less the cls token. */
  seqLen: number
  /** Seeds the word hash; another seed sends the words to other buckets. */
  seed: number
}

export const PAD_ID = 0
/** Reserved, never produced by 'hashed-words'. */
export const RESERVED_ID = 1
/** The first id a word can get. */
export const FIRST_WORD_ID = 2

export const DEFAULT_TOKENIZER: Readonly<TokenizerConfig> = { kind: 'hashed-words', vocabSize: 8192, seqLen: 256, seed: 0 }

/**
 * The rule above as data, for files that other tools read (export's config.json): everything needed to
 * reproduce a model's input ids.
 */
export function describeTokenizer (t: TokenizerConfig): Record<string, unknown> {
  return {
    ...t,
    padId: PAD_ID,
    reservedId: RESERVED_ID,
    rule: [
      'normalise the text to Unicode NFC, then lowercase it (Unicode default, locale-independent case mapping: JavaScript toLowerCase, Python str.lower)',
      'words: the maximal runs of letters, combining marks and digits, /[\\p{L}\\p{M}\\p{N}]+/u, in order; everything else only separates words',
      `each word's id: ${FIRST_WORD_ID} + (h mod (vocabSize - ${FIRST_WORD_ID})), h = 32-bit FNV-1a (offset basis ${FNV_OFFSET_BASIS}, prime ${FNV_PRIME}, mod 2^32) over the 4 bytes of seed (unsigned 32-bit, little-endian), then the word's UTF-8 bytes`,
      `keep the first seqLen ids; pad with ${PAD_ID} up to seqLen`
    ]
  }
}

/** Checks every field and returns a complete tokenizer config; throws InvalidConfigError naming the first bad field. */
export function validateTokenizer (input: Partial<TokenizerConfig>): TokenizerConfig {
  const t = { ...DEFAULT_TOKENIZER, ...input }
  if (!TOKENIZER_KINDS.includes(t.kind)) throw invalidField('tokenizer.kind', t.kind, `must be ${TOKENIZER_KINDS.map(k => `"${k}"`).join(' or ')} (the tokenizers this fedgrow knows)`)
  const whole = (field: string, value: unknown, min: number, max: number): void => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw invalidField(`tokenizer.${field}`, value, `must be a whole number from ${min} to ${max}`)
  }
  whole('vocabSize', t.vocabSize, MODEL_LIMITS.minVocabSize, MODEL_LIMITS.maxVocabSize)
  whole('seqLen', t.seqLen, 1, MODEL_LIMITS.maxSeqLen)
  whole('seed', t.seed, 0, 2 ** 32 - 1)
  return { kind: t.kind, vocabSize: t.vocabSize, seqLen: t.seqLen, seed: t.seed }
}

/** Whether two tokenizers give every text the same ids. */
export const sameTokenizer = (a: TokenizerConfig, b: TokenizerConfig): boolean =>
  a.kind === b.kind && a.vocabSize === b.vocabSize && a.seqLen === b.seqLen && a.seed === b.seed

const FNV_OFFSET_BASIS = 2166136261
const FNV_PRIME = 16777619
const WORD = /[\p{L}\p{M}\p{N}]+/gu
const utf8 = new TextEncoder()

/** FNV-1a, 32-bit, over `bytes` continuing from `hash`. */
function fnv1a (hash: number, bytes: ArrayLike<number>): number {
  let h = hash
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], FNV_PRIME) >>> 0
  return h
}

/** The words of `text` as the tokenizer sees them (steps 1 and 2): NFC, lowercased, letter/mark/digit runs. */
export function words (text: string): string[] {
  return text.normalize('NFC').toLowerCase().match(WORD) ?? []
}

/** One word's id (step 3), in [2, vocabSize). */
export function wordId (t: TokenizerConfig, word: string): number {
  const seeded = fnv1a(FNV_OFFSET_BASIS, [t.seed & 0xff, (t.seed >>> 8) & 0xff, (t.seed >>> 16) & 0xff, (t.seed >>> 24) & 0xff])
  return FIRST_WORD_ID + fnv1a(seeded, utf8.encode(word)) % (t.vocabSize - FIRST_WORD_ID)
}

/**
 * The ids of `text`, exactly seqLen of them: its first seqLen words' ids, then padding. Writes into
 * `out` at `offset` when given (a dataset's row), else into a new array.
 */
export function tokenize (t: TokenizerConfig, text: string, out = new Int32Array(t.seqLen), offset = 0): Int32Array {
  // Only the first seqLen words matter, so stop scanning there rather than splitting a long e-mail whole.
  let n = 0
  for (const match of text.normalize('NFC').toLowerCase().matchAll(WORD)) {
    if (n === t.seqLen) break
    out[offset + n++] = wordId(t, match[0])
  }
  out.fill(PAD_ID, offset + n, offset + t.seqLen)
  return out
}
