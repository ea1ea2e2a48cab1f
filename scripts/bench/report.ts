/** Benchmark output: the machine, the command, and a section of BENCHMARKS.md replaced in place. */
import { existsSync, readFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { writeFileAtomic } from '../../node/storage/files.js'

export const BENCHMARKS_FILE = 'BENCHMARKS.md'

export function machineLine (): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU'
  return `${cpu}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}/${process.arch}`
}

export function markdownTable (header: string[], rows: Array<Array<string | number>>): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map(r => `| ${r.join(' | ')} |`)
  ].join('\n')
}

/** A time as benchmarks print it: "2026-12-01 21:07" (UTC, to the minute). */
export const utcMinute = (at: Date = new Date()): string => at.toISOString().slice(0, 16).replace('T', ' ')

const sectionMarks = (name: string): { start: string, end: string } => ({ start: `<!-- bench:${name} -->`, end: `<!-- /bench:${name} -->` })

/**
 * A markdown table of `rows` merged with the rows of the same table in the section of BENCHMARKS.md
 * named `section` whose first cell no row of `rows` has, with a line naming them; rows sorted by their
 * first cell's place in `order` (others last). A report regenerated from the run files on this machine
 * so keeps the rows of runs whose files it does not have, rather than dropping them. Rows of a table
 * with other columns are not kept, unless the new header only adds columns at its end: those rows get
 * '-' there.
 */
export function tableKeepingRows (section: string, header: string[], rows: string[][], order: string[], runFiles: string): string {
  const [headerLine, ...lines] = markdownTable(header, rows).split('\n')
  const firstCell = (line: string): string => line.slice(2, line.indexOf(' |'))
  const names = new Set(rows.map(r => r[0]))
  const { start, end } = sectionMarks(section)
  const text = existsSync(BENCHMARKS_FILE) ? readFileSync(BENCHMARKS_FILE, 'utf8') : ''
  const from = text.indexOf(start)
  const previous = from < 0 ? [] : firstTable(text.slice(from, text.indexOf(end, from)).split('\n'))
  const added = previous.length > 0 && headerLine.startsWith(previous[0]) ? headerLine.slice(previous[0].length).split(' |').length - 1 : -1
  const kept = added < 0 ? [] : previous.slice(2).filter(line => !names.has(firstCell(line))).map(line => line + ' - |'.repeat(added))
  const rank = (line: string): number => { const i = order.indexOf(firstCell(line)); return i < 0 ? order.length : i }
  const body = [...lines.slice(1), ...kept].sort((x, y) => rank(x) - rank(y))
  const note = kept.length === 0 ? [] : ['', `Kept from the previous report, as it was, since their run files are not in ${runFiles} on the machine that wrote this one: ${kept.map(firstCell).join('; ')}.`]
  return [headerLine, lines[0], ...body, ...note].join('\n')
}

/** The lines of the first markdown table among `lines`: a section may hold more than one table. */
function firstTable (lines: string[]): string[] {
  const from = lines.findIndex(line => line.startsWith('| '))
  if (from < 0) return []
  const length = lines.slice(from).findIndex(line => !line.startsWith('| '))
  return lines.slice(from, length < 0 ? undefined : from + length)
}

/** Replaces (or appends) the section of BENCHMARKS.md that belongs to `name`. */
export function writeSection (name: string, title: string, command: string, body: string): void {
  const { start, end } = sectionMarks(name)
  const section = [start, `## ${title}`, '', `Command: \`${command}\``, '', `Machine: ${machineLine()}; run ${utcMinute()} UTC.`, '', body.trim(), end].join('\n')
  const existing = existsSync(BENCHMARKS_FILE) ? readFileSync(BENCHMARKS_FILE, 'utf8') : '# Benchmarks\n\nWritten by `npm run bench -- NAME`; each section is replaced when its benchmark runs again.\n'
  const pattern = new RegExp(`${start}[\\s\\S]*?${end}`)
  const next = pattern.test(existing) ? existing.replace(pattern, section) : `${existing.trimEnd()}\n\n${section}\n`
  writeFileAtomic(BENCHMARKS_FILE, new TextEncoder().encode(next))
  process.stdout.write(`${section}\n\nwritten to ${BENCHMARKS_FILE}\n`)
}

/** The value after `flag` in a bench's arguments (`--peers 16,64`), or undefined when the flag is absent. */
export function flagValue (args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag)
  if (i < 0) return undefined
  const value = args[i + 1]
  if (value === undefined || value.startsWith('--')) throw new Error(`${flag} needs a value, e.g. ${flag} 16`)
  return value
}
