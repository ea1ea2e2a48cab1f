/**
 * Global-LiGO payloads: a safetensors file of the operator's tensors in canonical (sorted-name) order,
 * with no metadata but the checksum. The global digest is the SHA-256 of the concatenated little-endian
 * float32 values in that order, so it depends on the numbers alone.
 */
import { sha256Hex } from './canonical.js'
import { LIMITS } from './constants.js'
import { ProtocolError } from './errors.js'
import { decodeSafetensors, encodeSafetensors, float32Bytes, TensorFileError } from './safetensors.js'
import type { Float32Allocator, TensorMap } from './safetensors.js'

/** A Global-LiGO tensor's name and shape, as the manifest implies them: what a payload must hold. */
export interface TensorSpec {
  name: string
  shape: number[]
}

export const canonicalNames = (tensors: Record<string, unknown>): string[] => Object.keys(tensors).sort()

export function encodePayload (tensors: TensorMap): Uint8Array {
  const ordered: TensorMap = {}
  for (const name of canonicalNames(tensors)) ordered[name] = tensors[name]
  return encodeSafetensors(ordered)
}

/** A plain loop: `every(Number.isFinite)`, a call per value, took 13 ms for the paper preset's 2M values. */
function allFinite (values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false
  return true
}

/**
 * Decodes a payload and checks it against the expected names and shapes and for finite values. The values
 * go where `allocate` puts them (shared memory, for a peer that hands updates to another thread).
 */
export function decodePayload (bytes: Uint8Array, expected: TensorSpec[], allocate?: Float32Allocator): TensorMap {
  let tensors: TensorMap
  try {
    tensors = decodeSafetensors(bytes, 'payload', allocate).tensors
  } catch (err) {
    if (err instanceof TensorFileError) throw new ProtocolError('malformed', err.message)
    throw err
  }
  const names = Object.keys(tensors)
  if (names.length !== expected.length || expected.some((e, i) => names[i] !== e.name || tensors[e.name].shape.join() !== e.shape.join())) {
    throw new ProtocolError('wrong-shape', 'payload tensors differ from the manifest\'s Global-LiGO')
  }
  for (const name of names) {
    if (!allFinite(tensors[name].data)) throw new ProtocolError('not-finite', `tensor ${name} holds NaN or infinity`)
  }
  return tensors
}

/** SHA-256 hex over the float32 little-endian values of every tensor, in canonical name order. */
export function globalDigest (tensors: TensorMap): string {
  return sha256Hex(...canonicalNames(tensors).map(name => float32Bytes(tensors[name].data)))
}

export { sha256Hex }

/**
 * The hash an announcement names its update by (`payloadHash`): SHA-256 over the UTF-8 line
 * `fedgrow/update/1 FEDERATION-ID ROUND AUTHOR` (single spaces, the round in decimal, the author's peer id
 * as libp2p prints it, then a newline), followed by the payload. The announcement's gossipsub signature
 * proves its author, and this hash ties the payload to that author and round: an update fetched from one
 * peer and announced by another, or in another round, never verifies (protocol/README.md, replays).
 */
export function updateHash (federationId: string, round: number, author: string, payload: Uint8Array): string {
  return sha256Hex(`fedgrow/update/1 ${federationId} ${round} ${author}\n`, payload)
}

/** L2 norm of `tensors` minus `reference` (or of `tensors` alone) over every value, summed in float64. */
export function l2Distance (tensors: TensorMap, reference?: TensorMap): number {
  let squared = 0
  for (const name of canonicalNames(tensors)) {
    const data = tensors[name].data
    const base = reference?.[name]?.data
    if (base === undefined) for (let i = 0; i < data.length; i++) squared += data[i] ** 2
    else for (let i = 0; i < data.length; i++) squared += (data[i] - base[i]) ** 2
  }
  return Math.sqrt(squared)
}

/**
 * Checks a Global-LiGO's values against the protocol's bounds; throws ProtocolError('out-of-bounds').
 * Every value at most LIMITS.maxAbsValue in magnitude; with `reference` (the receiver's current
 * Global-LiGO), also at most LIMITS.maxUpdateDistanceRatio times its norm away from it.
 */
export function checkValueBounds (tensors: TensorMap, reference?: TensorMap): void {
  for (const name of canonicalNames(tensors)) {
    const data = tensors[name].data
    const limit = LIMITS.maxAbsValue
    for (let i = 0; i < data.length; i++) {
      if (!(Math.abs(data[i]) <= limit)) throw new ProtocolError('out-of-bounds', `tensor ${name} holds ${data[i]}, beyond +-${LIMITS.maxAbsValue}`)
    }
  }
  if (reference === undefined) return
  const allowed = LIMITS.maxUpdateDistanceRatio * Math.max(l2Distance(reference), LIMITS.minReferenceNorm)
  const distance = l2Distance(tensors, reference)
  if (distance > allowed) throw new ProtocolError('out-of-bounds', `update lies ${distance.toPrecision(3)} from the current Global-LiGO, more than ${LIMITS.maxUpdateDistanceRatio} times its norm (${allowed.toPrecision(3)})`)
}
