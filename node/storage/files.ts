/**
 * Files that must never be seen half-written: write to a temporary file beside the target, fsync it,
 * rename it over the target, fsync the folder. A crash leaves either the old file or the new one.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs'
import { dirname, basename, join } from 'node:path'
import { decodeSafetensors, encodeSafetensors, TensorFileError } from '../../protocol/safetensors.js'
import { ModelFileError } from '../errors.js'
import type { TensorMap } from '../../protocol/safetensors.js'
import * as tf from '../tf.js'
import type { NamedTensors } from '../model/vit.js'

export function writeFileAtomic (path: string, bytes: Uint8Array): void {
  const dir = dirname(path)
  mkdirSync(dir, { recursive: true })
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`)
  const fd = openSync(tmp, 'w', 0o644)
  try {
    let written = 0
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written)
    fsyncSync(fd)
  } catch (err) {
    closeSync(fd)
    rmSync(tmp, { force: true })
    throw err
  }
  closeSync(fd)
  renameSync(tmp, path)
  const dirFd = openSync(dir, 'r')
  try { fsyncSync(dirFd) } finally { closeSync(dirFd) }
}

/** Writes named tensors and string metadata as one safetensors file, atomically. Tensors stay the caller's. */
export function writeTensorFile (path: string, tensors: NamedTensors, metadata: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(toTensorMap(tensors), metadata))
}

/** Reads and verifies a safetensors file; throws ModelFileError naming the file and the fault. */
export function readTensorFile (path: string): { tensors: TensorMap, metadata: Record<string, string> } {
  let bytes: Uint8Array
  try {
    bytes = readFileSync(path)
  } catch (err) {
    throw new ModelFileError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  try {
    return decodeSafetensors(bytes, path)
  } catch (err) {
    if (err instanceof TensorFileError) throw new ModelFileError(err.message)
    throw err
  }
}

/** Tensors the caller owns, made from decoded entries. */
export function fromTensorMap (entries: TensorMap): NamedTensors {
  const out: NamedTensors = {}
  for (const [name, e] of Object.entries(entries)) out[name] = tf.tensor(e.data, e.shape, 'float32')
  return out
}

/** Copies tensors' values out into plain arrays (the form payloads and aggregation use). */
export function toTensorMap (tensors: NamedTensors): TensorMap {
  const out: TensorMap = {}
  for (const [name, t] of Object.entries(tensors)) out[name] = { shape: [...t.shape], data: Float32Array.from(t.dataSync()) }
  return out
}
