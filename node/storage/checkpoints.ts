/**
 * Round checkpoints: after each completed round a peer writes what it needs to resume (the round number
 * and Global-LiGO) as `checkpoints/round-NNNNNNNN.safetensors`, atomically, with the data checksum every
 * fedgrow safetensors file carries. The newest KEEP_CHECKPOINTS stay; on restart the newest one that
 * decodes and verifies wins, and every damaged one is reported, so a crash or a flipped byte costs at
 * most a round, never a silent half-state.
 *
 * Nothing else needs saving per round: each round's optimiser (AdamW over Global-LiGO) starts fresh from
 * the aggregate, and Local-LiGO is spent once the intermediate model exists (saved on its own).
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { encodeSafetensors } from '../../protocol/safetensors.js'
import { InvalidConfigError } from '../errors.js'
import { readTensorFile, writeFileAtomic } from './files.js'
import type { TensorMap } from '../../protocol/safetensors.js'

/** Completed rounds kept on disk: enough to fall back past a damaged newest one. */
export const KEEP_CHECKPOINTS = 3
export const CHECKPOINT_FORMAT = 'fedgrow-checkpoint'
const CHECKPOINT_DIR = 'checkpoints'
const NAME = /^round-(\d{8})\.safetensors$/

export interface Checkpoint {
  round: number
  global: TensorMap
  path: string
}

export interface DamagedCheckpoint {
  path: string
  error: string
}

export class CheckpointStore {
  private readonly dir: string

  constructor (stateDir: string, private readonly federationId: string, private readonly keep = KEEP_CHECKPOINTS) {
    this.dir = join(stateDir, CHECKPOINT_DIR)
  }

  /** Checkpoint files, newest round first. */
  private files (): Array<{ round: number, path: string }> {
    if (!existsSync(this.dir)) return []
    return readdirSync(this.dir).flatMap(name => {
      const match = NAME.exec(name)
      return match === null ? [] : [{ round: Number(match[1]), path: join(this.dir, name) }]
    }).sort((a, b) => b.round - a.round)
  }

  save (round: number, global: TensorMap): string {
    const ordered: TensorMap = {}
    for (const name of Object.keys(global).sort()) ordered[name] = global[name]
    const path = join(this.dir, `round-${String(round).padStart(8, '0')}.safetensors`)
    mkdirSync(this.dir, { recursive: true })
    writeFileAtomic(path, encodeSafetensors(ordered, { format: CHECKPOINT_FORMAT, federation: this.federationId, round: String(round) }))
    for (const old of this.files().slice(this.keep)) rmSync(old.path, { force: true })
    return path
  }

  /**
   * The newest checkpoint that verifies, and the newer ones that did not. Leftover temporary files from a
   * write that a crash interrupted are removed. A checkpoint of another federation is an error: the
   * state directory belongs to someone else.
   */
  latest (): { checkpoint: Checkpoint | null, damaged: DamagedCheckpoint[] } {
    if (existsSync(this.dir)) {
      for (const name of readdirSync(this.dir).filter(n => n.startsWith('.') && n.endsWith('.tmp'))) rmSync(join(this.dir, name), { force: true })
    }
    const damaged: DamagedCheckpoint[] = []
    for (const { round, path } of this.files()) {
      let decoded
      try {
        decoded = readTensorFile(path)
      } catch (err) {
        damaged.push({ path, error: (err as Error).message })
        continue
      }
      const { tensors, metadata } = decoded
      if (metadata.format !== CHECKPOINT_FORMAT || metadata.round !== String(round)) {
        damaged.push({ path, error: `metadata says format ${String(metadata.format)}, round ${String(metadata.round)}` })
        continue
      }
      if (metadata.federation !== this.federationId) {
        throw new InvalidConfigError(`${path} belongs to federation ${String(metadata.federation).slice(0, 16)}…, not ${this.federationId.slice(0, 16)}…; use another --state-dir for this federation`)
      }
      return { checkpoint: { round, global: tensors, path }, damaged }
    }
    return { checkpoint: null, damaged }
  }
}
