/**
 * Train-step speed of a target-size ViT on each backend that ships with fedgrow (wasm, cpu), measured
 * side by side in one process, and its effective GFLOP/s as a fraction of a large 2-D matMul's
 * GFLOP/s on the same backend (the ceiling that a model of dense layers could reach there).
 */
import * as tf from '../../node/tf.js'
import { initBackend } from '../../node/backend.js'
import { validateVitConfig } from '../../node/model/config.js'
import { crossEntropy, flopsPerTrainStep, forward, initParams, countParams } from '../../node/model/vit.js'
import { VariableSet } from '../../node/train/variables.js'
import { AdamW } from '../../node/train/adamw.js'
import { markdownTable, writeSection } from './report.js'

const BACKENDS = ['wasm', 'cpu'] as const
const MATMUL_SIZE = 1024
const BATCH = 64
const ROUNDS = 2

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

/** Seconds per call of `fn` after one warm-up call, over `reps` calls. */
function timeIt (fn: () => void, reps: number): number {
  fn()
  const t0 = performance.now()
  for (let i = 0; i < reps; i++) fn()
  return (performance.now() - t0) / 1000 / reps
}

function matMulSeconds (): number {
  const a = tf.randomNormal([MATMUL_SIZE, MATMUL_SIZE]) as tf.Tensor2D
  const b = tf.randomNormal([MATMUL_SIZE, MATMUL_SIZE]) as tf.Tensor2D
  // Return nothing from tidy: it would walk a returned typed array element by element, looking for tensors.
  const seconds = timeIt(() => { tf.tidy(() => { tf.matMul(a, b).dataSync() }) }, tf.getBackend() === 'cpu' ? 1 : 5)
  tf.dispose([a, b])
  return seconds
}

function stepSeconds (config: ReturnType<typeof validateVitConfig>, steps: number): number {
  const init = initParams(config, 0)
  const vars = new VariableSet(init)
  tf.dispose(Object.values(init))
  const optimizer = new AdamW(vars)
  const images = tf.randomUniform([BATCH, 784]) as tf.Tensor2D
  const labels = tf.tensor1d(Array.from({ length: BATCH }, (_, i) => i % 10), 'int32')
  const seconds = timeIt(() => {
    tf.tidy(() => {
      const { loss, grads } = vars.lossAndGrads(() => crossEntropy(forward(config, vars.tensors, images), labels))
      optimizer.apply(grads)
      loss.dataSync()
    })
  }, steps)
  optimizer.dispose()
  vars.dispose()
  tf.dispose([images, labels])
  return seconds
}

export async function trainStepBench (command: string, _args: string[]): Promise<void> {
  const models = [
    validateVitConfig({ dim: 64, layers: 4, heads: 4, mlpRatio: 2 }),
    validateVitConfig({ dim: 128, layers: 6, heads: 8, mlpRatio: 1 })
  ]
  const samples = new Map<string, number[]>()
  const add = (key: string, v: number): void => { samples.set(key, [...(samples.get(key) ?? []), v]) }
  for (let round = 0; round < ROUNDS; round++) {
    for (const backend of BACKENDS) {
      await initBackend(backend)
      add(`${backend}:matmul`, matMulSeconds())
      for (const m of models) {
        add(`${backend}:${m.dim}x${m.layers}`, stepSeconds(m, backend === 'cpu' ? 1 : 5))
        process.stderr.write(`round ${round + 1}/${ROUNDS} ${backend} ${m.dim}x${m.layers} done\n`)
      }
    }
  }
  const rows: Array<Array<string | number>> = []
  const stepTime: Record<string, number> = {}
  for (const backend of BACKENDS) {
    const matmulGflops = 2 * MATMUL_SIZE ** 3 / median(samples.get(`${backend}:matmul`)!) / 1e9
    for (const m of models) {
      const key = `${m.dim}x${m.layers}`
      const s = median(samples.get(`${backend}:${key}`)!)
      stepTime[`${backend}:${key}`] = s
      const gflops = flopsPerTrainStep(m, BATCH) / s / 1e9
      rows.push([backend, `dim ${m.dim}, ${m.layers} layers, mlp ${m.mlpRatio} (${countParams(m).toLocaleString('en-US')} params)`, (s * 1000).toFixed(1), gflops.toFixed(2), matmulGflops.toFixed(2), `${(100 * gflops / matmulGflops).toFixed(0)}%`])
    }
  }
  const speedups = models.map(m => `${m.dim}x${m.layers}: wasm is ${(stepTime[`cpu:${m.dim}x${m.layers}`] / stepTime[`wasm:${m.dim}x${m.layers}`]).toFixed(1)}x faster than cpu`)
  writeSection('train-step', 'Train step: wasm vs cpu backend', command, [
    `One AdamW step (forward, backward, update) at batch ${BATCH} on 28x28 digits; median of ${ROUNDS} rounds run alternately on each backend in one process.`,
    `FLOPs per step from flopsPerTrainStep (3x the forward multiply-adds x2). The ceiling is a ${MATMUL_SIZE}x${MATMUL_SIZE}x${MATMUL_SIZE} 2-D matMul on the same backend.`,
    '',
    markdownTable(['backend', 'model', 'ms/step', 'effective GFLOP/s', 'matMul GFLOP/s', 'fraction of matMul'], rows),
    '',
    ...speedups.map(s => `- ${s}`)
  ].join('\n'))
}
