/**
 * AdamW: Adam with decoupled weight decay (Loshchilov and Hutter, arXiv 1711.05101). tfjs has Adam but
 * not AdamW. Decay applies to matrices only (rank >= 2), not to biases, LayerNorm gains or 1-D tokens,
 * as in the ViT and nanoGPT recipes. Moments are Variables owned here and freed by dispose().
 *
 * All parameters are updated as one flat vector: a ViT has ~60 parameter tensors, and ~15 small ops on
 * each cost more (measured: ~900 of a 64x4 ViT's ~2300 kernels per step on wasm) than the arithmetic.
 * The elementwise maths is the same as per tensor, so results are bitwise the same.
 */
import * as tf from '../tf.js'
import type { NamedTensors } from '../model/vit.js'
import type { VariableSet } from './variables.js'

export interface AdamWOptions {
  /** @default 1e-3 */
  learningRate?: number
  /** @default 0.9 */
  beta1?: number
  /** @default 0.999 */
  beta2?: number
  /** @default 1e-8 */
  epsilon?: number
  /** Decoupled decay per step, times the learning rate. @default 0.05 (the authors' setting) */
  weightDecay?: number
}

export class AdamW {
  readonly learningRate: number
  private readonly beta1: number
  private readonly beta2: number
  private readonly epsilon: number
  private readonly weightDecay: number
  /** Both moments flat, the parameters in the VariableSet's order. */
  private readonly m: tf.Variable
  private readonly v: tf.Variable
  private readonly sizes: number[]
  private readonly isMatrix: boolean[]
  private stepCount = 0

  constructor (private readonly params: VariableSet, options: AdamWOptions = {}) {
    this.learningRate = options.learningRate ?? 1e-3
    this.beta1 = options.beta1 ?? 0.9
    this.beta2 = options.beta2 ?? 0.999
    this.epsilon = options.epsilon ?? 1e-8
    this.weightDecay = options.weightDecay ?? 0.05
    const all = [...params.byName.values()]
    this.sizes = all.map(p => p.size)
    this.isMatrix = all.map(p => p.rank >= 2)
    const total = this.sizes.reduce((a, b) => a + b, 0)
    this.m = tf.tidy(() => tf.variable(tf.zeros([total]), false))
    this.v = tf.tidy(() => tf.variable(tf.zeros([total]), false))
  }

  get steps (): number {
    return this.stepCount
  }

  /**
   * One update from `grads` (keyed like the VariableSet), at `learningRate` (a schedule's value for
   * this step; the configured rate by default). Does not dispose `grads`.
   */
  apply (grads: NamedTensors, learningRate = this.learningRate): void {
    this.stepCount++
    const t = this.stepCount
    const stepSize = learningRate * Math.sqrt(1 - this.beta2 ** t) / (1 - this.beta1 ** t)
    const params = [...this.params.byName]
    const present = params.map(([name]) => grads[name] !== undefined)
    const total = this.m.size
    tf.tidy('adamw', () => {
      const flat = (ts: tf.Tensor[]): tf.Tensor1D => tf.concat(ts.map(x => tf.reshape(x, [-1]))) as tf.Tensor1D // [total]
      // A parameter without a gradient this step keeps its value and moments: zeros stand in, then
      // `keep` restores the old values (only then is the mask built).
      const g = flat(params.map(([name, p], i) => present[i] ? grads[name] : tf.zeros([p.size])))
      const p = flat(params.map(([, x]) => x))
      // Decay only matrices: a factor of exactly 1 elsewhere, so biases come out bitwise unchanged.
      const decay = new Float32Array(total).fill(1)
      let offset = 0
      for (let i = 0; i < params.length; i++) {
        if (this.isMatrix[i]) decay.fill(1 - learningRate * this.weightDecay, offset, offset + this.sizes[i])
        offset += this.sizes[i]
      }
      let m = tf.add(tf.mul(this.m, this.beta1), tf.mul(g, 1 - this.beta1))
      let v = tf.add(tf.mul(this.v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2))
      let next = tf.sub(tf.mul(p, tf.tensor1d(decay)), tf.mul(tf.div(m, tf.add(tf.sqrt(v), this.epsilon)), stepSize))
      if (present.includes(false)) {
        const mask = new Uint8Array(total)
        offset = 0
        for (let i = 0; i < params.length; i++) { if (present[i]) mask.fill(1, offset, offset + this.sizes[i]); offset += this.sizes[i] }
        const keep = tf.tensor1d(mask, 'bool')
        m = tf.where(keep, m, this.m)
        v = tf.where(keep, v, this.v)
        next = tf.where(keep, next, p)
      }
      this.m.assign(m)
      this.v.assign(v)
      const pieces = tf.split(next, this.sizes)
      params.forEach(([, x], i) => { if (present[i]) x.assign(tf.reshape(pieces[i], x.shape)) })
    })
  }

  dispose (): void {
    this.m.dispose()
    this.v.dispose()
  }

  [Symbol.dispose] (): void {
    this.dispose()
  }
}
