/**
 * A named set of tf.Variables owned by one object: what an optimiser updates and what a model file holds.
 * tfjs keys gradients by its own global variable names, so this maps them back to ours.
 */
import * as tf from '../tf.js'
import type { NamedTensors } from '../model/vit.js'

export class VariableSet {
  readonly byName: ReadonlyMap<string, tf.Variable>

  /** Copies `tensors` into new Variables; the caller keeps ownership of `tensors`. */
  constructor (tensors: NamedTensors) {
    this.byName = new Map(Object.entries(tensors).map(([name, t]) => [name, tf.variable(t, true)]))
  }

  get names (): string[] {
    return [...this.byName.keys()]
  }

  /** The variables as a NamedTensors view (no copies: do not dispose them). */
  get tensors (): NamedTensors {
    return Object.fromEntries(this.byName)
  }

  get size (): number {
    let total = 0
    for (const v of this.byName.values()) total += v.size
    return total
  }

  /**
   * Loss and gradients of `lossFn` with respect to every variable, keyed by our names.
   * Call inside tf.tidy; returned tensors belong to that scope.
   */
  lossAndGrads (lossFn: () => tf.Scalar): { loss: tf.Scalar, grads: NamedTensors } {
    const list = [...this.byName.values()]
    const { value, grads } = tf.variableGrads(lossFn, list)
    const named: NamedTensors = {}
    for (const [name, v] of this.byName) named[name] = grads[v.name]
    return { loss: value, grads: named }
  }

  /** Copies of the current values, owned by the caller. */
  snapshot (): NamedTensors {
    return tf.tidy(() => Object.fromEntries([...this.byName].map(([name, v]) => [name, tf.clone(v)])))
  }

  /** Overwrites every variable with the same-named tensor (shapes must match); inputs stay the caller's. */
  assign (tensors: NamedTensors): void {
    for (const [name, v] of this.byName) v.assign(tensors[name])
  }

  dispose (): void {
    for (const v of this.byName.values()) v.dispose()
  }

  [Symbol.dispose] (): void {
    this.dispose()
  }
}
