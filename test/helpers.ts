/** Shared test set-up: the backend, a leak check, and small synthetic data. */
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import * as tf from '../node/tf.js'
import { initBackend } from '../node/backend.js'
import { checkDataset } from '../node/data/dataset.js'
import { Rng } from '../node/random.js'
import type { ImageDataset } from '../node/data/dataset.js'
import { initParams } from '../node/model/vit.js'
import { toTensorMap } from '../node/storage/files.js'
import type { VitConfig } from '../node/model/config.js'
import type { ModelData } from '../node/compute/messages.js'

/** Every maths test runs on these backends (both ship inside npm packages). */
export const TEST_BACKENDS = ['wasm', 'cpu'] as const

export async function useBackend (name: typeof TEST_BACKENDS[number] = 'wasm'): Promise<void> {
  await initBackend(name)
}

/** Runs `fn` once to warm up, then again, and fails if the second run left tensors behind (tfjs test_utils). */
export function expectNoLeakedTensors (fn: () => void, label: string): void {
  fn()
  const before = tf.memory().numTensors
  fn()
  assert.equal(tf.memory().numTensors, before, `${label} leaked ${tf.memory().numTensors - before} tensors`)
}

/**
 * A learnable toy image set: class k has a bright square whose position depends on k, plus noise.
 * Seeded; `imageSize` must be a multiple of the patch size used with it.
 */
export function toyDataset (count: number, seed: number, imageSize = 8, numClasses = 4): ImageDataset {
  const rng = new Rng(`toy:${seed}`)
  const px = imageSize * imageSize
  const images = new Float32Array(count * px)
  const labels = new Uint8Array(count)
  for (let i = 0; i < count; i++) {
    const label = i % numClasses
    labels[i] = label
    for (let p = 0; p < px; p++) images[i * px + p] = 0.1 * rng.next()
    const row = Math.floor(label / 2) * (imageSize / 2)
    const col = (label % 2) * (imageSize / 2)
    for (let r = 0; r < imageSize / 2; r++) for (let c = 0; c < imageSize / 2; c++) images[i * px + (row + r) * imageSize + col + c] += 0.8
  }
  return checkDataset({ source: `toy:${seed}`, imageSize, channels: 1, numClasses, images, labels, count })
}

export const CLI = fileURLToPath(new URL('../scripts/fedgrow.js', import.meta.url))

export interface CliResult { code: number, stdout: string, stderr: string }

/** Runs the real `fedgrow` command in a child process. */
export function runCli (args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : 1), stdout, stderr })
    })
  })
}

export interface CliProcess {
  child: ChildProcess
  /** The JSON log events printed so far. */
  lines: () => Array<Record<string, unknown>>
  /** Everything printed on stderr so far. */
  stderr: () => string
  exited: Promise<number>
}

/** Starts a real `fedgrow` process, optionally through a wrapper command (e.g. `ip netns exec NS`). */
export function spawnCli (args: string[], wrapper: string[] = []): CliProcess {
  const command = [...wrapper, process.execPath, CLI, ...args]
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
  return {
    child,
    stderr: () => err,
    // The text after the last newline may be a line still being written.
    lines: () => out.split('\n').slice(0, -1).filter(l => l.startsWith('{')).map(l => JSON.parse(l) as Record<string, unknown>),
    exited: new Promise(resolve => child.on('exit', (code, signal) => { resolve(code ?? (signal === null ? 1 : 128)) }))
  }
}

/** Periodic or start-up events that say nothing about which updates a peer's rounds combined. */
const NOT_THE_STORY = new Set(['peers', 'listening', 'compute'])

/**
 * What decided a peer's Global-LiGO, one event a line (rounds, rejections, given-up fetches, catch-ups,
 * warnings): the message of an assertion that peers agree, so a failure that does not recur can be read.
 */
export function roundStory (events: Array<Record<string, unknown>>): string {
  return events.filter(e => !NOT_THE_STORY.has(String(e.event))).map(e => JSON.stringify(e)).join('\n')
}

/** Starts a real `fedgrow node` process on 127.0.0.1 with JSON logs. */
export const startNode = (args: string[]): CliProcess => spawnCli(['node', ...args, '--log', 'json', '--local'])

export function maxAbsDiff (a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0])
}

/** A freshly initialised model as plain data, the form a peer hands its compute worker. */
export function modelData (config: VitConfig, seed: number): ModelData {
  const params = initParams(config, seed)
  const data = toTensorMap(params)
  tf.dispose(Object.values(params))
  return { config, params: data }
}
