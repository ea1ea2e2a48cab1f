/**
 * The safetensors container (https://github.com/huggingface/safetensors, "Format"): an 8-byte
 * little-endian header length N, N bytes of UTF-8 JSON, then the raw little-endian tensor bytes.
 * The JSON maps each tensor name to {dtype, shape, data_offsets: [begin, end]} relative to the data
 * section, plus an optional "__metadata__" map of string to string.
 *
 * fedgrow adds one metadata key, `sha256`: the hex SHA-256 of the data section, so that a flipped
 * byte is caught on load. Other safetensors readers ignore it. Only F32 tensors are written.
 * Pure: bytes in, bytes out; the decoder checks every limit before it allocates.
 */
import { sha256Hex } from './canonical.js'

export const SAFETENSORS_LIMITS = {
  /** Largest JSON header accepted (the reference implementation uses 100 MB). */
  maxHeaderBytes: 100_000_000,
  maxTensors: 100_000,
  maxRank: 8
} as const

export const CHECKSUM_KEY = 'sha256'

export interface TensorEntry {
  shape: number[]
  data: Float32Array
}

export type TensorMap = Record<string, TensorEntry>

export class TensorFileError extends Error {
  override readonly name = 'TensorFileError'
}

interface HeaderEntry {
  dtype: string
  shape: number[]
  data_offsets: [number, number]
}

const sizeOf = (shape: number[]): number => shape.reduce((a, b) => a * b, 1)

/** Whether this machine stores numbers little-endian, as the format does (x64 and arm64 do). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/**
 * The little-endian bytes of `values`: a view of them on a little-endian machine, a converted copy
 * otherwise. (Converting value by value through a DataView took 46 ms for 8 MB, the paper preset's
 * Global-LiGO, on the network thread at every payload.)
 */
export function float32Bytes (values: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
  const out = new Uint8Array(values.byteLength)
  const view = new DataView(out.buffer)
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true)
  return out
}

/** Where decoded values go: a new Float32Array of `length` values, in whatever memory the caller needs. */
export type Float32Allocator = (length: number) => Float32Array

const ordinaryMemory: Float32Allocator = (length) => new Float32Array(length)

/** Float32 values, in an array from `allocate`, from little-endian `bytes` at any alignment. */
export function float32FromBytes (bytes: Uint8Array, allocate = ordinaryMemory): Float32Array {
  const out = allocate(bytes.byteLength / 4)
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes)
    return out
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true)
  return out
}

/** Encodes tensors (in the given key order) and string metadata; adds the data checksum. */
export function encodeSafetensors (tensors: TensorMap, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {}
  let offset = 0
  for (const [name, t] of Object.entries(tensors)) {
    if (sizeOf(t.shape) !== t.data.length) throw new TensorFileError(`tensor ${name}: shape [${t.shape}] needs ${sizeOf(t.shape)} values, got ${t.data.length}`)
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] }
    offset += t.data.byteLength
  }
  const data = new Uint8Array(offset)
  let at = 0
  for (const t of Object.values(tensors)) {
    data.set(float32Bytes(t.data), at)
    at += t.data.byteLength
  }
  header.__metadata__ = { ...metadata, [CHECKSUM_KEY]: sha256Hex(data) }
  let json = JSON.stringify(header)
  json += ' '.repeat((8 - (json.length % 8)) % 8) // the format recommends 8-byte alignment of the data
  const jsonBytes = new TextEncoder().encode(json)
  const out = new Uint8Array(8 + jsonBytes.length + data.length)
  new DataView(out.buffer).setBigUint64(0, BigInt(jsonBytes.length), true)
  out.set(jsonBytes, 8)
  out.set(data, 8 + jsonBytes.length)
  return out
}

function parseHeader (bytes: Uint8Array, where: string): { header: Record<string, unknown>, dataStart: number } {
  if (bytes.length < 8) throw new TensorFileError(`${where}: ${bytes.length} bytes is too short for a safetensors file (the header length alone takes 8); the file is truncated`)
  const headerBytes = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true)
  if (headerBytes > BigInt(SAFETENSORS_LIMITS.maxHeaderBytes)) throw new TensorFileError(`${where}: header length ${headerBytes} exceeds ${SAFETENSORS_LIMITS.maxHeaderBytes} bytes; not a safetensors file, or corrupt`)
  const dataStart = 8 + Number(headerBytes)
  if (dataStart > bytes.length) throw new TensorFileError(`${where}: header says ${headerBytes} bytes but the file has ${bytes.length - 8} after the length; the file is truncated`)
  let header: unknown
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)))
  } catch (err) {
    throw new TensorFileError(`${where}: header is not valid UTF-8 JSON (${(err as Error).message}); the file is corrupt`)
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new TensorFileError(`${where}: header is not a JSON object`)
  return { header: header as Record<string, unknown>, dataStart }
}

function checkEntry (name: string, raw: unknown, dataBytes: number, where: string): HeaderEntry {
  const e = raw as Partial<HeaderEntry> | null
  if (e === null || typeof e !== 'object') throw new TensorFileError(`${where}: tensor ${name} has no {dtype, shape, data_offsets} entry`)
  if (e.dtype !== 'F32') throw new TensorFileError(`${where}: tensor ${name} has dtype ${String(e.dtype)}; fedgrow reads F32 only`)
  if (!Array.isArray(e.shape) || e.shape.length > SAFETENSORS_LIMITS.maxRank || !e.shape.every(d => Number.isInteger(d) && d >= 0)) {
    throw new TensorFileError(`${where}: tensor ${name} has shape ${JSON.stringify(e.shape)}; need at most ${SAFETENSORS_LIMITS.maxRank} non-negative whole numbers`)
  }
  const offsets = e.data_offsets
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(o => Number.isInteger(o)) || offsets[0] < 0 || offsets[1] < offsets[0] || offsets[1] > dataBytes) {
    throw new TensorFileError(`${where}: tensor ${name} has data_offsets ${JSON.stringify(offsets)} outside the ${dataBytes}-byte data section; the file is truncated or corrupt`)
  }
  if (offsets[1] - offsets[0] !== sizeOf(e.shape) * 4) {
    throw new TensorFileError(`${where}: tensor ${name} spans ${offsets[1] - offsets[0]} bytes but shape [${e.shape}] of F32 needs ${sizeOf(e.shape) * 4}`)
  }
  return e as HeaderEntry
}

/** Decodes and verifies a file: bounds, dtype, offsets and (when present) the checksum. Never returns a partial map. */
export function decodeSafetensors (bytes: Uint8Array, where = 'safetensors', allocate = ordinaryMemory): { tensors: TensorMap, metadata: Record<string, string> } {
  const { header, dataStart } = parseHeader(bytes, where)
  const data = bytes.subarray(dataStart)
  const rawMeta = header.__metadata__ ?? {}
  if (typeof rawMeta !== 'object' || rawMeta === null || !Object.values(rawMeta).every(v => typeof v === 'string')) {
    throw new TensorFileError(`${where}: __metadata__ must map strings to strings`)
  }
  const metadata = rawMeta as Record<string, string>
  const names = Object.keys(header).filter(k => k !== '__metadata__')
  if (names.length > SAFETENSORS_LIMITS.maxTensors) throw new TensorFileError(`${where}: ${names.length} tensors exceeds the limit of ${SAFETENSORS_LIMITS.maxTensors}`)
  const entries = names.map(name => [name, checkEntry(name, header[name], data.length, where)] as const)
  const covered = entries.reduce((s, [, e]) => s + e.data_offsets[1] - e.data_offsets[0], 0)
  if (covered !== data.length) throw new TensorFileError(`${where}: tensors cover ${covered} bytes but the data section holds ${data.length}; the file is truncated or has trailing bytes`)
  const expected = metadata[CHECKSUM_KEY]
  if (expected !== undefined && sha256Hex(data) !== expected) throw new TensorFileError(`${where}: data checksum does not match the header; the file is corrupt (restore it or re-create it)`)
  const tensors: TensorMap = {}
  for (const [name, e] of entries) tensors[name] = { shape: e.shape, data: float32FromBytes(data.subarray(e.data_offsets[0], e.data_offsets[1]), allocate) }
  return { tensors, metadata }
}
