/**
 * Global-LiGO payloads: a safetensors file of the operator's tensors in canonical (sorted-name) order,
 * with no metadata but the checksum. The global digest is the SHA-256 of the concatenated little-endian
 * float32 values in that order, so it depends on the numbers alone.
 */
import { sha256Hex } from './canonical.js'
import { ProtocolError } from './errors.js'
import { decodeSafetensors, encodeSafetensors, TensorFileError } from './safetensors.js'
import type { TensorSpec } from './messages.js'
import type { TensorMap } from './safetensors.js'

export const canonicalNames = (tensors: Record<string, unknown>): string[] => Object.keys(tensors).sort()

export function encodePayload (tensors: TensorMap): Uint8Array {
  const ordered: TensorMap = {}
  for (const name of canonicalNames(tensors)) ordered[name] = tensors[name]
  return encodeSafetensors(ordered)
}

/** Decodes a payload and checks it against the expected names and shapes and for finite values. */
export function decodePayload (bytes: Uint8Array, expected: TensorSpec[]): TensorMap {
  let tensors: TensorMap
  try {
    tensors = decodeSafetensors(bytes, 'payload').tensors
  } catch (err) {
    if (err instanceof TensorFileError) throw new ProtocolError('malformed', err.message)
    throw err
  }
  const names = Object.keys(tensors)
  if (names.length !== expected.length || expected.some((e, i) => names[i] !== e.name || tensors[e.name].shape.join() !== e.shape.join())) {
    throw new ProtocolError('wrong-shape', 'payload tensors differ from the manifest\'s Global-LiGO')
  }
  for (const name of names) {
    if (!tensors[name].data.every(Number.isFinite)) throw new ProtocolError('not-finite', `tensor ${name} holds NaN or infinity`)
  }
  return tensors
}

/** SHA-256 hex over the float32 little-endian values of every tensor, in canonical name order. */
export function globalDigest (tensors: TensorMap): string {
  const names = canonicalNames(tensors)
  const total = names.reduce((s, n) => s + tensors[n].data.length, 0)
  const bytes = new Uint8Array(total * 4)
  const view = new DataView(bytes.buffer)
  let at = 0
  for (const n of names) for (const v of tensors[n].data) { view.setFloat32(at, v, true); at += 4 }
  return sha256Hex(bytes)
}

export { sha256Hex }
