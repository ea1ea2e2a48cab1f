import assert from 'node:assert/strict'
import * as tf from '../node/tf.js'
import { selfAttention } from '../node/model/vit.js'
import { TEST_BACKENDS, expectNoLeakedTensors, maxAbsDiff, useBackend } from './helpers.js'

/**
 * Plain multi-head attention through tfjs's own batched matMul and its autodiff, on the same
 * token-major [tokens*batch, dim] rows: the reference selfAttention must reproduce.
 */
function naiveAttention (q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, batch: number, heads: number): tf.Tensor2D {
  const [rows, dim] = q.shape
  const tokens = rows / batch
  const hd = dim / heads
  const split = (t: tf.Tensor2D): tf.Tensor3D =>
    tf.reshape(tf.transpose(tf.reshape(t, [tokens, batch, heads, hd]), [1, 2, 0, 3]), [batch * heads, tokens, hd]) // [batch*heads, tokens, hd]
  const scores = tf.div(tf.matMul(split(q), split(k), false, true), Math.sqrt(hd)) // [batch*heads, tokens, tokens]
  const mixed = tf.matMul(tf.softmax(scores), split(v)) // [batch*heads, tokens, hd]
  return tf.reshape(tf.transpose(tf.reshape(mixed, [batch, heads, tokens, hd]), [2, 0, 1, 3]), [rows, dim]) // [tokens*batch, dim]
}

const SHAPES = [
  { tokens: 3, batch: 2, heads: 2, hd: 4 },
  { tokens: 5, batch: 3, heads: 1, hd: 3 },
  { tokens: 2, batch: 1, heads: 3, hd: 2 }
]

describe('selfAttention (attention as depthwise convolutions)', () => {
  after(async () => { await useBackend('wasm') })

  for (const backend of TEST_BACKENDS) {
    it(`matches plain batched-matMul attention, forward and gradients, on ${backend}`, async () => {
      await useBackend(backend)
      for (const { tokens, batch, heads, hd } of SHAPES) {
        const label = `${backend} tokens ${tokens} batch ${batch} heads ${heads} hd ${hd}`
        const rows = tokens * batch
        const dim = heads * hd
        // Scores of order 1-10, so the softmax is far from uniform and the test sees its gradient.
        const [q, k, v] = [1, 2, 3].map(seed => tf.randomNormal([rows, dim], 0, 2, 'float32', seed) as tf.Tensor2D)
        const dy = tf.randomNormal([rows, dim], 0, 1, 'float32', 4) as tf.Tensor2D
        const loss = (f: typeof naiveAttention) => (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor): tf.Scalar =>
          tf.sum(tf.mul(f(a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D, batch, heads), dy))
        tf.tidy(() => {
          assert.ok(maxAbsDiff(selfAttention(q, k, v, batch, heads), naiveAttention(q, k, v, batch, heads)) < 1e-5, `${label}: forward differs`)
          const got = tf.grads(loss(selfAttention))([q, k, v])
          const want = tf.grads(loss(naiveAttention))([q, k, v])
          for (const [i, name] of ['q', 'k', 'v'].entries()) {
            assert.ok(maxAbsDiff(got[i], want[i]) < 1e-4, `${label}: gradient of ${name} differs by ${maxAbsDiff(got[i], want[i])}`)
          }
        })
        expectNoLeakedTensors(() => tf.tidy(() => { tf.grads(loss(selfAttention))([q, k, v]) }), `${label}: selfAttention`)
        tf.dispose([q, k, v, dy])
      }
    })
  }
})
