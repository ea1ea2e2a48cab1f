/**
 * The one kit that every validator in protocol/ is built from: each check names the field's path, the
 * value it found and the rule it broke, and throws the caller's own error (an invalid manifest, a
 * malformed message), so a user or a peer reads what was wrong and where.
 */
import { isSha256Hex } from './canonical.js'

export type Fields = Record<string, unknown>

/** Throws the validator's error for `path`, whose `value` broke `rule`. */
export type Fail = (path: string, value: unknown, rule: string) => never

export interface Checks {
  /** An object with every key of `required`, any of `optional`, and nothing else ('' for the path: the document itself). */
  object: (value: unknown, path: string, required: readonly string[], optional?: readonly string[]) => Fields
  /** A whole number in [min, max]. */
  int: (value: unknown, path: string, min: number, max: number) => number
  /** A finite number in [min, max]. */
  num: (value: unknown, path: string, min: number, max: number) => number
  /** A non-empty string of at most `maxLength` characters, one of `choices` when given. */
  str: (value: unknown, path: string, maxLength: number, choices?: readonly string[]) => string
  /** true or false. */
  bool: (value: unknown, path: string) => boolean
  /** A SHA-256 digest: 64 lowercase hex digits. */
  hash: (value: unknown, path: string) => string
  /** A list of at most `max` strings, each passing `isItem` (described by `item` in the error). */
  strings: (value: unknown, path: string, max: number, item: string, isItem: (s: string) => boolean) => string[]
}

export function checks (fail: Fail): Checks {
  return {
    object (value, path, required, optional = []) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(path, value, 'must be an object')
      const o = value as Fields
      const field = (k: string): string => path === '' ? k : `${path}.${k}`
      for (const k of Object.keys(o)) if (!required.includes(k) && !optional.includes(k)) fail(field(k), o[k], `is not a known field (known: ${[...required, ...optional].join(', ')})`)
      for (const k of required) if (!(k in o)) fail(field(k), undefined, 'is required')
      return o
    },
    int (value, path, min, max) {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) fail(path, value, `must be a whole number from ${min} to ${max}`)
      return value
    },
    num (value, path, min, max) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) fail(path, value, `must be a number from ${min} to ${max}`)
      return value
    },
    str (value, path, maxLength, choices) {
      if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) fail(path, value, `must be a non-empty string of at most ${maxLength} characters`)
      if (choices !== undefined && !choices.includes(value)) fail(path, value, `must be one of ${choices.join(', ')}`)
      return value
    },
    bool (value, path) {
      if (typeof value !== 'boolean') fail(path, value, 'must be true or false')
      return value
    },
    hash (value, path) {
      if (!isSha256Hex(value)) fail(path, value, 'must be a SHA-256 digest: 64 lowercase hex digits')
      return value
    },
    strings (value, path, max, item, isItem) {
      if (!Array.isArray(value) || value.length > max) fail(path, value, `must be a list of at most ${max} ${item}s`)
      const bad = value.find(s => typeof s !== 'string' || !isItem(s))
      if (bad !== undefined) fail(path, bad, `is not a ${item}`)
      return value as string[]
    }
  }
}
