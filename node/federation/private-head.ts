/**
 * A participant's private classifier (the manifest's `ligo.privateHead`): its target's head, trained with
 * Global-LiGO every round and never sent. It lives in the participant's state dir, one file per round it
 * was trained in, so that a restarted peer trains round r from the head round r-1 left, as a peer that
 * never stopped does, and a crash loses nothing.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fromTensorMap, readTensorFile, writeTensorFile } from '../storage/files.js'
import type { NamedTensors } from '../model/vit.js'

const FILE_PATTERN = /^private-head-(\d+)\.safetensors$/
const fileOf = (stateDir: string, round: number): string => join(stateDir, `private-head-${round}.safetensors`)

/** The rounds whose heads are saved in `stateDir`, oldest first. */
function savedRounds (stateDir: string): number[] {
  if (!existsSync(stateDir)) return []
  return readdirSync(stateDir).map(name => FILE_PATTERN.exec(name)).filter(m => m !== null).map(m => Number(m[1])).sort((a, b) => a - b)
}

/** The head trained in the newest round before `round` (Infinity: the newest of all), or undefined if none; the caller owns it. */
export function loadHeadBefore (stateDir: string, round: number): { round: number, params: NamedTensors } | undefined {
  const saved = savedRounds(stateDir).filter(r => r < round).at(-1)
  if (saved === undefined) return undefined
  return { round: saved, params: fromTensorMap(readTensorFile(fileOf(stateDir, saved)).tensors) }
}

/**
 * Saves the head trained in `round` (the tensors stay the caller's), then removes every older file but
 * the newest: a crash before the round closes makes the peer train `round` again, from that one.
 */
export function saveHead (stateDir: string, round: number, params: NamedTensors): void {
  writeTensorFile(fileOf(stateDir, round), params, { round: String(round) })
  const older = savedRounds(stateDir).filter(r => r < round)
  for (const r of older.slice(0, -1)) rmSync(fileOf(stateDir, r), { force: true })
}
