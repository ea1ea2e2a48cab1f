/**
 * Network presets by name (networks/NAME.json, shipped with fedgrow) or by path.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { validateNetworkPreset } from '../protocol/network.js'
import { InvalidArgumentError } from './errors.js'
import type { NetworkPreset } from '../protocol/network.js'

const PRESET_DIR = fileURLToPath(new URL('../networks/', import.meta.url))

export function loadNetworkPreset (nameOrPath: string): NetworkPreset {
  const shipped = /^[a-z0-9-]+$/.test(nameOrPath) ? `${PRESET_DIR}${nameOrPath}.json` : undefined
  const path = shipped !== undefined && existsSync(shipped) ? shipped : nameOrPath
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    throw new InvalidArgumentError(`--network ${nameOrPath}: neither a shipped preset nor a readable file (shipped: ${shippedPresets().join(', ')})`)
  }
  try {
    return validateNetworkPreset(JSON.parse(text))
  } catch (err) {
    throw new InvalidArgumentError(`--network ${path}: ${(err as Error).message}`)
  }
}

export function shippedPresets (): string[] {
  return existsSync(PRESET_DIR) ? readdirSync(PRESET_DIR).filter(n => n.endsWith('.json')).map(n => n.slice(0, -5)).sort() : []
}
