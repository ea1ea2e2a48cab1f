/**
 * Declarative flags for the CLI: each command lists its flags with help text once, and gets parsing,
 * `--help` and checked number conversions from here.
 */
import { parseArgs } from 'node:util'
import { InvalidArgumentError } from '../node/errors.js'

export interface FlagSpec {
  type: 'string' | 'boolean'
  help: string
  /** Shown in help and used when the flag is absent. */
  default?: string
  multiple?: boolean
  /** Placeholder in help, e.g. FILE. */
  value?: string
}

export interface Command {
  name: string
  summary: string
  /** Extra paragraphs for `fedgrow NAME --help`. */
  details?: string
  flags: Record<string, FlagSpec>
  positionals?: string
  /**
   * Its tfjs work runs in compute workers (node/compute/), which load the backend themselves: the main
   * thread, which keeps the network, loads none.
   */
  computeInWorkers?: true
  run: (flags: Flags, positionals: string[]) => Promise<void>
}

export type Flags = Record<string, string | boolean | string[] | undefined>

export const COMMON_FLAGS: Record<string, FlagSpec> = {
  backend: { type: 'string', value: 'NAME', help: 'compute backend: auto (native TensorFlow if installed, else wasm, else cpu), tensorflow, wasm or cpu. Also FEDGROW_BACKEND.', default: 'auto' },
  help: { type: 'boolean', help: 'show this help' }
}

export function commandHelp (cmd: Command): string {
  const flags = { ...cmd.flags, ...COMMON_FLAGS }
  const lines = [`Usage: fedgrow ${cmd.name} [flags]${cmd.positionals !== undefined ? ' ' + cmd.positionals : ''}`, '', cmd.summary]
  if (cmd.details !== undefined) lines.push('', cmd.details)
  lines.push('', 'Flags:')
  for (const [name, spec] of Object.entries(flags)) {
    const left = `  --${name}${spec.type === 'string' ? ' ' + (spec.value ?? 'VALUE') : ''}`
    const def = spec.default !== undefined ? ` (default: ${spec.default})` : ''
    lines.push(left.padEnd(30) + ' ' + spec.help + def + (spec.multiple === true ? ' May be repeated.' : ''))
  }
  return lines.join('\n')
}

export function parseCommandArgs (cmd: Command, argv: string[]): { flags: Flags, positionals: string[] } {
  const specs = { ...cmd.flags, ...COMMON_FLAGS }
  const options: Record<string, { type: 'string' | 'boolean', multiple?: boolean, default?: string | string[] }> = {}
  for (const [name, s] of Object.entries(specs)) {
    const def = s.default !== undefined && s.type === 'string' ? { default: s.multiple === true ? [s.default] : s.default } : {}
    options[name] = { type: s.type, ...(s.multiple === true ? { multiple: true } : {}), ...def }
  }
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: cmd.positionals !== undefined, strict: true })
    return { flags: values as Flags, positionals }
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message.replace(/\. To specify.*$/s, '')}; see \`fedgrow ${cmd.name} --help\``)
  }
}

export function stringFlag (flags: Flags, name: string): string {
  const v = flags[name]
  if (typeof v !== 'string' || v === '') throw new InvalidArgumentError(`--${name} is required; see --help`)
  return v
}

export function optionalString (flags: Flags, name: string): string | undefined {
  const v = flags[name]
  return typeof v === 'string' ? v : undefined
}

/** A number flag within [min, max]; `integer` also demands a whole number. */
export function numberFlag (flags: Flags, name: string, min: number, max: number, integer = false): number {
  const text = stringFlag(flags, name)
  const n = Number(text)
  if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new InvalidArgumentError(`--${name} ${text}: must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}`)
  }
  return n
}

export function choiceFlag<T extends string> (flags: Flags, name: string, choices: readonly T[]): T {
  const v = stringFlag(flags, name)
  if (!(choices as readonly string[]).includes(v)) throw new InvalidArgumentError(`--${name} ${v}: must be one of ${choices.join(', ')}`)
  return v as T
}
