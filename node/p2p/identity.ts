/**
 * A peer's persistent identity: an Ed25519 key in libp2p's protobuf encoding, in a file only its owner
 * can read (mode 0600). Created on first use; the same file gives the same peer id on every start.
 */
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { writeFileAtomic } from '../storage/files.js'
import { InvalidArgumentError } from '../errors.js'
import type { PrivateKey } from '@libp2p/interface'

export async function loadOrCreateIdentity (path: string): Promise<PrivateKey> {
  if (existsSync(path)) {
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600)
    try {
      return privateKeyFromProtobuf(readFileSync(path))
    } catch (err) {
      throw new InvalidArgumentError(`${path} is not a libp2p private key (${(err as Error).message}); move it away to create a new identity`)
    }
  }
  const key = await generateKeyPair('Ed25519')
  writeFileAtomic(path, privateKeyToProtobuf(key))
  chmodSync(path, 0o600)
  return key
}
