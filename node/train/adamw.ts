/**
 * AdamW: Adam with decoupled weight decay (Loshchilov and Hutter, arXiv 1711.05101). tfjs has Adam but
 * not AdamW. Decay applies to matrices only (rank >= 2), not to biases, LayerNorm gains or 1-D tokens,
 * as in the ViT and nanoGPT recipes. Moments are Variables owned here and freed by dispose().
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
  /**
   * A decoupled pull toward fixed weights: each step, every weight named in `toward` moves learning rate x
   * `rate` of its distance back to it, outside Adam's per-weight normalisation (as AdamW takes decay out
   * of the gradient), so a weight the data barely moves is not pinned by it. `toward` stays the caller's.
   * @default none
   */
  anchor?: { toward: NamedTensors, rate: number }
}

export class AdamW {
  readonly learningRate: number
  private readonly beta1: number
  private readonly beta2: number
  private readonly epsilon: number
  private readonly weightDecay: number
  private readonly anchor: AdamWOptions['anchor']
  private readonly m = new Map<string, tf.Variable>()
  private readonly v = new Map<string, tf.Variable>()
  private stepCount = 0

  constructor (private readonly params: VariableSet, options: AdamWOptions = {}) {
    this.learningRate = options.learningRate ?? 1e-3
    this.beta1 = options.beta1 ?? 0.9
    this.beta2 = options.beta2 ?? 0.999
    this.epsilon = options.epsilon ?? 1e-8
    this.weightDecay = options.weightDecay ?? 0.05
    this.anchor = options.anchor
    for (const [name, p] of params.byName) {
      this.m.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)))
      this.v.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p), false)))
    }
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
    tf.tidy('adamw', () => {
      // Each constant made a tensor once per step, not once per use: an op given a JS number uploads a
      // fresh scalar, which cost more than the ops themselves (measured on wasm: ~8 per parameter, 2x
      // the whole update's time on a ViT's ~60 parameters). Same float32 values, so the same results.
      const [beta1, keep1, beta2, keep2, epsilon, step, decay] = [this.beta1, 1 - this.beta1, this.beta2, 1 - this.beta2,
        this.epsilon, stepSize, 1 - learningRate * this.weightDecay].map(x => tf.scalar(x))
      const pull = this.anchor === undefined ? undefined : tf.scalar(learningRate * this.anchor.rate)
      for (const [name, p] of this.params.byName) {
        const g = grads[name]
        if (g === undefined) continue
        const m = this.m.get(name)!
        const v = this.v.get(name)!
        m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, keep1)))
        v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), keep2)))
        const decayed = p.rank >= 2 ? tf.mul(p, decay) : p
        const anchor = this.anchor?.toward[name]
        const pulled = anchor === undefined || pull === undefined ? decayed : tf.sub(decayed, tf.mul(tf.sub(p, anchor), pull))
        p.assign(tf.sub(pulled, tf.mul(tf.div(m, tf.add(tf.sqrt(v), epsilon)), step)))
      }
    })
  }

  dispose (): void {
    for (const s of [...this.m.values(), ...this.v.values()]) s.dispose()
  }

  [Symbol.dispose] (): void {
    this.dispose()
  }
}
