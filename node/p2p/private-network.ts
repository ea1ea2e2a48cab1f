/**
 * Private federations' pre-shared keys, in the libp2p/IPFS swarm.key format (`/key/swarm/psk/1.0.0/`,
 * `/base16/`, 64 hex digits). A manifest names a key only by the SHA-256 of the file's bytes, so the
 * manifest can be published while the key is handed to members privately.
 */
import { chmodSync, existsSync, readFileSync } from 'node:fs'
import { generateKey } from '@libp2p/pnet'
import { sha256Hex } from '../../protocol/canonical.js'
import { writeFileAtomic } from '../storage/files.js'
import { InvalidArgumentError } from '../errors.js'

/** Bytes of a swarm key file: two header lines and 64 hex digits. */
const SWARM_KEY_BYTES = 95
const SWARM_KEY = /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-fA-F]{64}\s*$/

/** What a manifest's access.preSharedKey holds for this key. */
export const swarmKeyFingerprint = (key: Uint8Array): string => sha256Hex(key)

/** Writes a new random swarm key, readable only by its owner; refuses to overwrite one. */
export function createSwarmKey (path: string): Uint8Array {
  if (existsSync(path)) throw new InvalidArgumentError(`${path} exists; pass it with --psk to reuse that key, or choose another file`)
  const key = new Uint8Array(SWARM_KEY_BYTES)
  generateKey(key)
  writeFileAtomic(path, key)
  chmodSync(path, 0o600)
  return key
}

export function readSwarmKey (path: string): Uint8Array {
  let bytes: Uint8Array
  try {
    bytes = readFileSync(path)
  } catch (err) {
    throw new InvalidArgumentError(`--psk ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  if (!SWARM_KEY.test(Buffer.from(bytes).toString('latin1'))) throw new InvalidArgumentError(`--psk ${path}: not a libp2p swarm key (expected "/key/swarm/psk/1.0.0/", "/base16/" and 64 hex digits); create one with fedgrow federation init --psk-out FILE`)
  return bytes
}
