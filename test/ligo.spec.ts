import assert from 'node:assert/strict'
import * as tf from '../node/tf.js'
import { validateTextConfig, validateVitConfig } from '../node/model/config.js'
import { checkParams, crossEntropy, forward, initParams } from '../node/model/vit.js'
import { countLigoParams, dualLigoParamCounts, globalShape, grow, growIntermediate, grownConfig, initLigo, initialGlobalLigo, ligoParamShapes, trainOperator } from '../node/ligo/index.js'
import { VariableSet } from '../node/train/variables.js'
import { expectNoLeakedTensors, maxAbsDiff, toyDataset, useBackend } from './helpers.js'
import type { NamedTensors } from '../node/model/vit.js'

const small = validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 3, dim: 8, layers: 2, heads: 2, mlpRatio: 1.5 })

/** Source weights with O(1) activations, so LayerNorm's epsilon is negligible (as in a trained model). */
function sourceParams (seed: number): NamedTensors {
  const params = initParams(small, seed)
  return tf.tidy(() => Object.fromEntries(Object.entries(params).map(([n, t]) => [n, /\.(g|b)$/.test(n) ? t.clone() : tf.mul(t, 25)])))
}

const images = (): tf.Tensor2D => tf.tensor2d(Float32Array.from({ length: 4 * 64 }, (_, i) => ((i * 53) % 97) / 97), [4, 64])

describe('LiGO', () => {
  before(async () => { await useBackend('wasm') })

  it('has the documented operator shapes and parameter count', () => {
    const to = grownConfig(small, { dim: 16, layers: 3 })
    const shapes = ligoParamShapes({ from: small, to })
    assert.deepEqual(shapes.E, [16, 8])
    assert.deepEqual(shapes['B.1.q'], [16, 8])
    assert.deepEqual(shapes['B.0.fc'], [24, 12])
    assert.deepEqual(shapes['w.fc2'], [3, 2])
    assert.equal(countLigoParams({ from: small, to }), 16 * 8 + 2 * (3 * 16 * 8 + 24 * 12) + 8 * 3 * 2)
  })

  it('(a) with the ligo init and equal shapes, grows the source model exactly', () => {
    const src = sourceParams(1)
    const x = images()
    const op = initLigo({ from: small, to: small }, 'ligo', 0)
    const diff = tf.tidy(() => maxAbsDiff(forward(small, grow({ from: small, to: small }, op, src), x), forward(small, src, x)))
    assert.ok(diff < 1e-5, `max abs diff ${diff}`)
    tf.dispose([x, ...Object.values(src), ...Object.values(op)])
  })

  it('(a) with the ligo init, growing width by a whole factor and depth by any (no noise) preserves the function', () => {
    const src = sourceParams(2)
    const x = images()
    // Depth too: blocks past the source's depth start with zero residual outputs, so they add nothing.
    for (const to of [grownConfig(small, { dim: 16, layers: 2 }), grownConfig(small, { dim: 24, layers: 2, mlpRatio: 2 }), grownConfig(small, { dim: 8, layers: 5 }), grownConfig(small, { dim: 16, layers: 3 })]) {
      const op = initLigo({ from: small, to }, 'ligo', 0, 0)
      const [diff, scale] = tf.tidy(() => {
        const ref = forward(small, src, x)
        return [maxAbsDiff(forward(to, grow({ from: small, to }, op, src), x), ref), tf.max(tf.abs(ref)).dataSync()[0]]
      })
      assert.ok(scale > 0.5, 'the check needs logits of a meaningful size')
      // float32 tolerance: LayerNorm's epsilon sees the variance divided by the growth factor.
      assert.ok(diff < 5e-5, `${to.dim}x${to.layers}: max abs diff ${diff} on logits up to ${scale}`)
      tf.dispose(Object.values(op))
    }
    tf.dispose([x, ...Object.values(src)])
  })

  it('gives the same operator for the same seed, and rejects impossible shapes', () => {
    const to = grownConfig(small, { dim: 16, layers: 3 })
    const a = initLigo({ from: small, to }, 'fedgrow', 9)
    const b = initLigo({ from: small, to }, 'fedgrow', 9)
    for (const n of Object.keys(a)) assert.equal(maxAbsDiff(a[n], b[n]), 0)
    assert.deepEqual(Array.from(a['w.q'].dataSync()), new Array(6).fill(0.5))
    tf.dispose([...Object.values(a), ...Object.values(b)])
    assert.throws(() => initLigo({ from: small, to: grownConfig(small, { dim: 4, layers: 2 }) }, 'ligo', 0), { name: 'InvalidConfigError', message: /smaller/ })
    assert.throws(() => initLigo({ from: small, to: { ...to, heads: 4 } }, 'ligo', 0), { name: 'InvalidConfigError', message: /heads/ })
  })

  it('(b) gradients with respect to E, B and w agree with finite differences', () => {
    const to = grownConfig(small, { dim: 12, layers: 3 })
    const shape = { from: small, to }
    const src = initParams(small, 3)
    const op = initLigo(shape, 'fedgrow', 4)
    const x = images()
    const y = tf.tensor1d([0, 1, 2, 1], 'int32')
    const names = Object.keys(op)
    const lossAt = (ps: tf.Tensor[]): tf.Scalar => crossEntropy(forward(to, grow(shape, Object.fromEntries(names.map((n, i) => [n, ps[i]])), src), x), y)
    const grads = tf.grads((...ps: tf.Tensor[]) => lossAt(ps))(names.map(n => op[n]))
    // Directional derivative along a random direction per tensor group, central differences in float32.
    for (const group of ['E', 'B.1.v', 'B.0.fc', 'w.q', 'w.ln2']) {
      const i = names.indexOf(group)
      const dir = tf.randomNormal(op[group].shape, 0, 1, 'float32', 11)
      const eps = 1e-2
      const shifted = (sign: number): number => tf.tidy(() => lossAt(names.map((n, k) => k === i ? tf.add(op[n], tf.mul(dir, sign * eps)) : op[n])).dataSync()[0])
      const numeric = (shifted(1) - shifted(-1)) / (2 * eps)
      const analytic = tf.tidy(() => tf.sum(tf.mul(grads[i], dir)).dataSync()[0])
      const rel = Math.abs(numeric - analytic) / Math.max(1e-3, Math.abs(analytic))
      assert.ok(rel < 2e-2, `${group}: analytic ${analytic} vs numeric ${numeric} (relative error ${rel})`)
      dir.dispose()
    }
    tf.dispose([x, y, ...grads, ...Object.values(src), ...Object.values(op)])
  })

  it('(c) grows heterogeneous small models (depth and width) to one intermediate shape', () => {
    const intermediate = validateVitConfig({ ...small, dim: 16, layers: 3, mlpRatio: 2 })
    const data = toyDataset(64, 5)
    const sizes = [{ dim: 8, layers: 1, mlpRatio: 2 }, { dim: 12, layers: 2, mlpRatio: 1 }, { dim: 16, layers: 3, mlpRatio: 1.5 }]
    for (const [i, size] of sizes.entries()) {
      const cfg = grownConfig(small, size)
      const params = initParams(cfg, i)
      const plan = { small: cfg, intermediate, target: validateVitConfig({ ...intermediate, dim: 24, layers: 4 }) }
      const { intermediate: grown, localLigo } = growIntermediate(plan, params, 'ligo', `local:${i}`, data, { steps: 2, batchSize: 16, seed: i })
      checkParams(intermediate, grown)
      // Every participant's Global-LiGO starts identical, whatever its small model.
      const globalA = initialGlobalLigo(plan, 'fedgrow', 'fed-1')
      const globalB = initialGlobalLigo(plan, 'fedgrow', 'fed-1')
      assert.equal(maxAbsDiff(globalA.E, globalB.E), 0)
      assert.deepEqual(globalA.E.shape, [24, 16])
      const counts = dualLigoParamCounts(plan)
      assert.equal(counts.globalLigo, countLigoParams(globalShape(plan)))
      assert.ok(counts.globalLigo < counts.target)
      tf.dispose([...Object.values(params), ...Object.values(grown), ...Object.values(localLigo), ...Object.values(globalA), ...Object.values(globalB)])
    }
  })

  it('(d) a training step of the operator leaks no tensors, and only the operator changes', () => {
    const to = grownConfig(small, { dim: 16, layers: 3 })
    const shape = { from: small, to }
    const src = initParams(small, 6)
    const srcBefore = tf.tidy(() => Object.values(src).map(t => t.clone()))
    const start = initLigo(shape, 'ligo', 7)
    const op = new VariableSet(start)
    const data = toyDataset(32, 6)
    expectNoLeakedTensors(() => { trainOperator(shape, op, src, data, { steps: 2, batchSize: 16, seed: 0 }) }, 'operator training step')
    Object.values(src).forEach((t, i) => assert.equal(maxAbsDiff(t, srcBefore[i]), 0, 'the source model must stay frozen'))
    assert.ok(maxAbsDiff(op.byName.get('E')!, start.E) > 0, 'the operator must have trained')
    op.dispose()
    tf.dispose([...srcBefore, ...Object.values(src), ...Object.values(start)])
  })

  describe('on a text model', () => {
    const text = validateTextConfig({ tokenizer: { kind: 'hashed-words', vocabSize: 40, seqLen: 6, seed: 0 }, numClasses: 2, dim: 8, layers: 1, heads: 2, mlpRatio: 1 })
    /** Token ids [4, seqLen], padding included. */
    const ids = (): tf.Tensor2D => tf.tensor2d(Int32Array.from({ length: 4 * 6 }, (_, i) => (i * 7) % 9 === 0 ? 0 : (i * 13) % 40), [4, 6], 'int32')
    const textSource = (): NamedTensors => {
      const params = initParams(text, 8)
      return tf.tidy(() => Object.fromEntries(Object.entries(params).map(([n, t]) => [n, /\.(g|b)$/.test(n) ? t.clone() : tf.mul(t, 25)])))
    }

    it('grows the token table through E: the ligo init preserves the logits, and E gets a gradient through embed.w', () => {
      const src = textSource()
      const x = ids()
      const to = grownConfig(text, { dim: 16, layers: 2 })
      const op = initLigo({ from: text, to }, 'ligo', 0, 0)
      const [diff, scale, embedShape] = tf.tidy(() => {
        const grown = grow({ from: text, to }, op, src)
        const ref = forward(text, src, x)
        return [maxAbsDiff(forward(to, grown, x), ref), tf.max(tf.abs(ref)).dataSync()[0], grown['embed.w'].shape]
      })
      assert.deepEqual(embedShape, [40, 16])
      assert.ok(scale > 0.5, 'the check needs logits of a meaningful size')
      assert.ok(diff < 5e-5, `max abs diff ${diff} on logits up to ${scale}`)
      // Through the wasm lookup's scatter gradient and embed.w' = W E^T, as well as every other use of E.
      const y = tf.tensor1d([0, 1, 1, 0], 'int32')
      const gradE = tf.tidy(() => tf.grad((E: tf.Tensor) => crossEntropy(forward(to, grow({ from: text, to }, { ...op, E }, src), x), y))(op.E))
      assert.ok(tf.tidy(() => tf.max(tf.abs(gradE)).dataSync()[0]) > 0, 'E must get a gradient')
      tf.dispose([x, y, gradE, ...Object.values(src), ...Object.values(op)])
    })

    it('refuses to grow into another tokenizer or an image model, saying which', () => {
      const other = validateTextConfig({ ...text, tokenizer: { ...text.tokenizer, seed: 1 }, dim: 16 })
      assert.throws(() => initLigo({ from: text, to: other }, 'ligo', 0), { name: 'InvalidConfigError', message: /the source tokenizes with .*"seed":0.*, the target with .*"seed":1/ })
      assert.throws(() => initLigo({ from: text, to: validateVitConfig({ numClasses: 2, dim: 16, layers: 1, heads: 2, mlpRatio: 1 }) }, 'ligo', 0), { name: 'InvalidConfigError', message: /the source is a text model, the target an image model/ })
    })
  })
})
