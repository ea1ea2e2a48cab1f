import assert from 'node:assert/strict'
import * as tf from '../node/tf.js'
import { validateVitConfig } from '../node/model/config.js'
import { countParams, crossEntropy, forward, initParams, paramShapes, toPatches, checkParams } from '../node/model/vit.js'
import { TEST_BACKENDS, expectNoLeakedTensors, maxAbsDiff, useBackend } from './helpers.js'

const config = validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 3, dim: 8, layers: 2, heads: 2, mlpRatio: 1.5 })

describe('ViT model', () => {
  before(async () => { await useBackend('wasm') })

  it('rejects bad configs naming the field and the rule', () => {
    assert.throws(() => validateVitConfig({ dim: 10, heads: 4 }), { name: 'InvalidConfigError', message: /heads = 4: must divide dim 10/ })
    assert.throws(() => validateVitConfig({ imageSize: 28, patchSize: 5 }), { name: 'InvalidConfigError', message: /patchSize/ })
    assert.throws(() => validateVitConfig({ layers: 0 }), { name: 'InvalidConfigError', message: /layers = 0/ })
    assert.throws(() => validateVitConfig({ dim: 10, heads: 2, mlpRatio: 0.25 }), { name: 'InvalidConfigError', message: /mlpRatio/ })
  })

  it('counts parameters from the documented shapes', () => {
    // patch 16*8+8, cls 8, pos 5*8, per block 4*(64+8) + 2*2*8 + (8*12+12) + (12*8+8), lnf 16, head 8*3+3
    const perBlock = 4 * 72 + 32 + 108 + 104
    assert.equal(countParams(config), 136 + 8 + 40 + 2 * perBlock + 16 + 27)
    const params = initParams(config, 1)
    checkParams(config, params)
    assert.deepEqual(params['blocks.1.fc1.w'].shape, [8, 12])
    tf.dispose(Object.values(params))
  })

  it('cuts patches row-major, channels last', () => {
    const c = validateVitConfig({ imageSize: 4, patchSize: 2, channels: 1, dim: 4, heads: 1 })
    const patches = tf.tidy(() => toPatches(c, tf.range(0, 16).reshape([1, 16]) as tf.Tensor2D).arraySync())
    assert.deepEqual(patches, [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])
  })

  it('maps [batch, pixels] to [batch, classes] and leaks nothing', () => {
    const params = initParams(config, 2)
    const images = tf.randomUniform([5, 64], 0, 1, 'float32', 3) as tf.Tensor2D
    const logits = tf.tidy(() => forward(config, params, images))
    assert.deepEqual(logits.shape, [5, 3])
    expectNoLeakedTensors(() => tf.tidy(() => { forward(config, params, images) }), 'forward')
    assert.throws(() => forward(config, params, tf.zeros([2, 10]) as tf.Tensor2D), { name: 'InvalidConfigError' })
    tf.dispose([logits, images, ...Object.values(params)])
  })

  it('computes the same logits and gradients on every backend, and the custom dense gradient matches autodiff', async () => {
    const results: Array<{ logits: tf.Tensor, grad: tf.Tensor }> = []
    for (const backend of TEST_BACKENDS) {
      await useBackend(backend)
      const params = initParams(config, 4)
      const images = tf.tensor2d(Float32Array.from({ length: 2 * 64 }, (_, i) => (i * 37 % 101) / 101), [2, 64])
      const labels = tf.tensor1d([0, 2], 'int32')
      const names = Object.keys(params)
      const grads = tf.grads((...ps: tf.Tensor[]) => crossEntropy(forward(config, Object.fromEntries(names.map((n, i) => [n, ps[i]])), images), labels))(names.map(n => params[n]))
      const qIndex = names.indexOf('blocks.0.q.w')
      // Reference gradient for one dense weight through tfjs's own matMul gradient.
      const reference = tf.grad((w: tf.Tensor) => crossEntropy(forward(config, { ...params, 'blocks.0.q.w': tf.add(w, 0) }, images), labels))(params['blocks.0.q.w'])
      assert.ok(maxAbsDiff(grads[qIndex], reference) < 1e-5, `${backend}: custom dense gradient differs from autodiff`)
      results.push({ logits: tf.keep(forward(config, params, images)), grad: tf.keep(grads[qIndex].clone()) })
      tf.dispose([images, labels, reference, ...grads, ...Object.values(params)])
    }
    await useBackend('wasm')
    const [a, b] = results
    assert.ok(maxAbsDiff(a.logits, b.logits) < 1e-4, 'logits differ between wasm and cpu')
    assert.ok(maxAbsDiff(a.grad, b.grad) < 1e-4, 'gradients differ between wasm and cpu')
    tf.dispose(results.flatMap(r => [r.logits, r.grad]))
  })

  it('lists every parameter in a fixed order', () => {
    const names = Object.keys(paramShapes(config))
    assert.deepEqual(names.slice(0, 4), ['patch.w', 'patch.b', 'cls', 'pos'])
    assert.deepEqual(names.slice(-4), ['lnf.g', 'lnf.b', 'head.w', 'head.b'])
  })
})
