/**
 * grow(): the grown model's parameters as a pure, differentiable function of a LiGO operator and the
 * source model's parameters (docs/method.md, "LiGO"). Method notation stores weights [out, in]; ours
 * are [in, out] (node/model/vit.ts), so each rule appears transposed:
 *   q, k, v:   W' = E W B^T            b' = B b
 *   o:         W' = B_v W E^T          b' = E b
 *   fc1:       W' = E W B_fc^T         b' = B_fc b
 *   fc2:       W' = B_fc W E^T         b' = E b
 *   LayerNorm: g' = E g, b' = E b
 *   depth:     W_l = sum_j w[m][l, j] W'_j  (biases alike)
 *   outside:   patch.w' = W E^T, patch.b' = E b (images) or embed.w' = W E^T (text: each token's row,
 *              as a patch's embedding), cls' = E cls, pos' = pos E^T, lnf via E,
 *              head.w' = E W, head.b' = b
 * Every product is a 2-D matMul without transpose flags (the fast path on wasm).
 */
import * as tf from '../tf.js'
import { blockParam } from '../model/vit.js'
import { isTextConfig } from '../model/config.js'
import { depthParam, sourceParam } from './operator.js'
import type { NamedTensors } from '../model/vit.js'
import type { GrowthShape } from './operator.js'

/** v [n] -> (M v) [m] for M [m, n], given Mt = M^T [n, m]. */
const apply = (Mt: tf.Tensor, v: tf.Tensor): tf.Tensor => tf.reshape(tf.matMul(tf.reshape(v, [1, -1]) as tf.Tensor2D, Mt as tf.Tensor2D), [-1])

/** left @ W @ right for 2-D tensors. */
const sandwich = (left: tf.Tensor, W: tf.Tensor, right: tf.Tensor): tf.Tensor =>
  tf.matMul(tf.matMul(left as tf.Tensor2D, W as tf.Tensor2D), right as tf.Tensor2D)

/** Width step for source layer j: every block parameter at the target width, keyed by its short name. */
function widenLayer (op: NamedTensors, src: NamedTensors, j: number, E: tf.Tensor, Et: tf.Tensor): Record<string, tf.Tensor> {
  const p = (n: string): tf.Tensor => src[blockParam(j, n)]
  const B = (n: 'q' | 'k' | 'v' | 'fc'): tf.Tensor => op[sourceParam(j, n)]
  const Bt = { q: tf.transpose(B('q')), k: tf.transpose(B('k')), v: tf.transpose(B('v')), fc: tf.transpose(B('fc')) }
  const out: Record<string, tf.Tensor> = {}
  for (const m of ['q', 'k', 'v'] as const) {
    out[`${m}.w`] = sandwich(E, p(`${m}.w`), Bt[m]) // [D2, D2]
    out[`${m}.b`] = apply(Bt[m], p(`${m}.b`)) // [D2]
  }
  out['o.w'] = sandwich(B('v'), p('o.w'), Et) // [D2, D2]
  out['o.b'] = apply(Et, p('o.b'))
  out['fc1.w'] = sandwich(E, p('fc1.w'), Bt.fc) // [D2, F2]
  out['fc1.b'] = apply(Bt.fc, p('fc1.b')) // [F2]
  out['fc2.w'] = sandwich(B('fc'), p('fc2.w'), Et) // [F2, D2]
  out['fc2.b'] = apply(Et, p('fc2.b'))
  for (const ln of ['ln1', 'ln2']) {
    out[`${ln}.g`] = apply(Et, p(`${ln}.g`))
    out[`${ln}.b`] = apply(Et, p(`${ln}.b`))
  }
  return out
}

/** The stem at the target width: every input token's embedding x becomes E x, like the residual stream. */
function growStem (shape: GrowthShape, source: NamedTensors, Et: tf.Tensor): NamedTensors {
  if (isTextConfig(shape.from)) return { 'embed.w': tf.matMul(source['embed.w'] as tf.Tensor2D, Et as tf.Tensor2D) } // [V, D1] x [D1, D2] -> [V, D2]
  return {
    'patch.w': tf.matMul(source['patch.w'] as tf.Tensor2D, Et as tf.Tensor2D), // [P, D2]
    'patch.b': apply(Et, source['patch.b'])
  }
}

/** The module type whose depth row mixes a block parameter: "q.w" -> "q", "ln1.g" -> "ln1". */
const moduleOf = (short: string): string => short.split('.')[0]

/**
 * The target model's parameters from `op` and the source parameters. Pure: creates tensors the caller
 * owns (run inside tf.tidy), disposes nothing given. Gradients flow to every operator tensor.
 */
export function grow (shape: GrowthShape, op: NamedTensors, source: NamedTensors): NamedTensors {
  const { from, to } = shape
  const E = op.E
  const Et = tf.transpose(E) // [D1, D2]
  const widened = Array.from({ length: from.layers }, (_, j) => widenLayer(op, source, j, E, Et))
  const out: NamedTensors = {
    ...growStem(shape, source, Et),
    cls: apply(Et, source.cls),
    pos: tf.matMul(source.pos as tf.Tensor2D, Et as tf.Tensor2D), // [T, D2]
    'lnf.g': apply(Et, source['lnf.g']),
    'lnf.b': apply(Et, source['lnf.b']),
    'head.w': tf.matMul(E as tf.Tensor2D, source['head.w'] as tf.Tensor2D), // [D2, C]
    'head.b': tf.clone(source['head.b'])
  }
  for (const short of Object.keys(widened[0])) {
    const shapeOut = widened[0][short].shape
    const stacked = tf.stack(widened.map(layer => tf.reshape(layer[short], [-1]))) // [L1, size]
    const mixed = tf.matMul(op[depthParam(moduleOf(short))] as tf.Tensor2D, stacked as tf.Tensor2D) // [L2, size]
    for (let l = 0; l < to.layers; l++) {
      out[blockParam(l, short)] = tf.reshape(tf.slice(mixed, [l, 0], [1, -1]), shapeOut)
    }
  }
  return out
}
