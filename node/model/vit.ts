/**
 * A Vision Transformer (Dosovitskiy et al., arXiv 2010.11929) written as a pure function of a config
 * and a map of named parameter tensors, so that a growth operator can produce the parameters as
 * differentiable tensors. Read it top to bottom: dense, layerNorm, attention, mlp, block, forward.
 *
 * Parameter names and shapes (D = dim, F = mlpRatio * D, T = patches + 1, P = patch pixels, C = classes).
 * Dense weights are stored [in, out] so every projection is x @ W, the fast 2-D path on wasm.
 *   patch.w [P, D]   patch.b [D]         patch embedding
 *   cls [D]          pos [T, D]          cls token, learned position embedding
 *   blocks.{l}.ln1.g [D]  .ln1.b [D]     pre-attention LayerNorm
 *   blocks.{l}.q.w [D, D] .q.b [D]       likewise k, v: attention projections
 *   blocks.{l}.o.w [D, D] .o.b [D]       attention output
 *   blocks.{l}.ln2.g [D]  .ln2.b [D]     pre-FFN LayerNorm
 *   blocks.{l}.fc1.w [D, F] .fc1.b [F]   FFN in
 *   blocks.{l}.fc2.w [F, D] .fc2.b [D]   FFN out
 *   lnf.g [D]  lnf.b [D]                 final LayerNorm
 *   head.w [D, C]  head.b [C]            classifier on the cls token
 */
import * as tf from '../tf.js'
import { Rng } from '../random.js'
import { InvalidConfigError } from '../errors.js'
import { hiddenDim, numPatches, numTokens, patchDim, pixelsPerImage } from './config.js'
import type { VitConfig } from './config.js'

export type NamedTensors = Record<string, tf.Tensor>

/** The module types a block has, in the order the growth operator's depth tensor lists them. */
export const BLOCK_MODULES = ['q', 'k', 'v', 'o', 'ln1', 'fc1', 'fc2', 'ln2'] as const
export type BlockModule = typeof BLOCK_MODULES[number]

const LAYER_NORM_EPSILON = 1e-6

export const blockParam = (layer: number, name: string): string => `blocks.${layer}.${name}`

/** Every parameter's name and shape, in a fixed order (the order files and payloads use). */
export function paramShapes (c: VitConfig): Record<string, number[]> {
  const D = c.dim
  const F = hiddenDim(c)
  const shapes: Record<string, number[]> = {
    'patch.w': [patchDim(c), D],
    'patch.b': [D],
    cls: [D],
    pos: [numTokens(c), D]
  }
  for (let l = 0; l < c.layers; l++) {
    const p = (n: string): string => blockParam(l, n)
    shapes[p('ln1.g')] = [D]; shapes[p('ln1.b')] = [D]
    for (const m of ['q', 'k', 'v', 'o']) { shapes[p(`${m}.w`)] = [D, D]; shapes[p(`${m}.b`)] = [D] }
    shapes[p('ln2.g')] = [D]; shapes[p('ln2.b')] = [D]
    shapes[p('fc1.w')] = [D, F]; shapes[p('fc1.b')] = [F]
    shapes[p('fc2.w')] = [F, D]; shapes[p('fc2.b')] = [D]
  }
  shapes['lnf.g'] = [D]; shapes['lnf.b'] = [D]
  shapes['head.w'] = [D, c.numClasses]; shapes['head.b'] = [c.numClasses]
  return shapes
}

export function countParams (c: VitConfig): number {
  return Object.values(paramShapes(c)).reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0)
}

/** Multiply-adds x2 of one forward pass over one image; a training step costs about 3x this per image. */
export function forwardFlopsPerImage (c: VitConfig): number {
  const T = numTokens(c)
  const D = c.dim
  const perBlock = 2 * T * (4 * D * D + 2 * D * hiddenDim(c)) + 2 * 2 * T * T * D
  return 2 * numPatches(c) * patchDim(c) * D + c.layers * perBlock + 2 * D * c.numClasses
}

export function flopsPerTrainStep (c: VitConfig, batchSize: number): number {
  return 3 * forwardFlopsPerImage(c) * batchSize
}

/**
 * Fresh parameters for training from scratch: truncated-free normal(0, 0.02) weights as in ViT/GPT-2,
 * zero biases, unit LayerNorm gains. Drawn from a seeded generator, so equal on every backend.
 * The caller owns the returned tensors.
 */
export function initParams (c: VitConfig, seed: number | string): NamedTensors {
  const rng = new Rng(`vit-init:${seed}`)
  const params: NamedTensors = {}
  for (const [name, shape] of Object.entries(paramShapes(c))) {
    const size = shape.reduce((a, b) => a * b, 1)
    if (name.endsWith('.g')) params[name] = tf.ones(shape)
    else if (name.endsWith('.b')) params[name] = tf.zeros(shape)
    else params[name] = tf.tensor(rng.normalArray(size, 0.02), shape)
  }
  return params
}

/** Throws InvalidConfigError unless `params` holds exactly the config's names with the config's shapes. */
export function checkParams (c: VitConfig, params: NamedTensors): void {
  const shapes = paramShapes(c)
  for (const [name, shape] of Object.entries(shapes)) {
    const t = params[name]
    if (t === undefined) throw new InvalidConfigError(`parameter ${name} is missing (expected shape [${shape}])`)
    if (t.shape.join() !== shape.join()) throw new InvalidConfigError(`parameter ${name} has shape [${t.shape}], the config needs [${shape}]`)
  }
  for (const name of Object.keys(params)) {
    if (!(name in shapes)) throw new InvalidConfigError(`parameter ${name} is not part of a ViT with dim ${c.dim} and ${c.layers} layers`)
  }
}

/**
 * x @ w + b with a hand-written gradient: tfjs's own matMul gradient uses transpose flags, which drop
 * wasm into a scalar loop (docs/performance.md); explicit transposes keep every product on the fast path.
 * The bias is added separately rather than fused: wasm's fused kernel checks the rank of the bias's
 * underlying buffer, which for a grown bias (a reshaped matMul result) is not 1.
 */
const dense = tf.customGrad((x, w, b, save) => {
  const [x2, w2, b1] = [x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D]
  ;(save as tf.GradSaveFunc)([x2, w2])
  return {
    value: tf.add(tf.matMul(x2, w2), b1), // [rows, out]
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D]
      const dy2 = dy as tf.Tensor2D
      return [
        tf.matMul(dy2, tf.transpose(ws)), // [rows, in]
        tf.matMul(tf.transpose(xs), dy2), // [in, out]
        tf.sum(dy2, 0) // [out]
      ]
    }
  }
}) as (x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor) => tf.Tensor2D

/** LayerNorm over the last axis of [rows, dim]. */
function layerNorm (x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true) // [rows, 1] each
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, LAYER_NORM_EPSILON))), g), b) as tf.Tensor2D
}

/** GELU in its sigmoid form x * sigmoid(1.702 x): ~7x faster than the tanh form on wasm (docs/performance.md). */
const gelu = (x: tf.Tensor2D): tf.Tensor2D => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))) as tf.Tensor2D

/** Multi-head self-attention over [batch*tokens, dim]; returns [batch*tokens, dim]. */
function attention (c: VitConfig, p: NamedTensors, l: number, x: tf.Tensor2D, batch: number): tf.Tensor2D {
  const T = numTokens(c)
  const H = c.heads
  const hd = c.dim / H
  const heads = (t: tf.Tensor2D): tf.Tensor3D =>
    tf.reshape(tf.transpose(tf.reshape(t, [batch, T, H, hd]), [0, 2, 1, 3]), [batch * H, T, hd]) // [batch*heads, tokens, hd]
  const q = heads(dense(x, p[blockParam(l, 'q.w')], p[blockParam(l, 'q.b')]))
  const k = heads(dense(x, p[blockParam(l, 'k.w')], p[blockParam(l, 'k.b')]))
  const v = heads(dense(x, p[blockParam(l, 'v.w')], p[blockParam(l, 'v.b')]))
  const scores = tf.mul(tf.matMul(q, tf.transpose(k, [0, 2, 1])), 1 / Math.sqrt(hd)) // [batch*heads, tokens, tokens]
  const mixed = tf.matMul(tf.softmax(scores), v) // [batch*heads, tokens, hd]
  const merged: tf.Tensor2D = tf.reshape(tf.transpose(tf.reshape(mixed, [batch, H, T, hd]), [0, 2, 1, 3]), [batch * T, c.dim]) // [batch*tokens, dim]
  return dense(merged, p[blockParam(l, 'o.w')], p[blockParam(l, 'o.b')])
}

function mlp (p: NamedTensors, l: number, x: tf.Tensor2D): tf.Tensor2D {
  const h = gelu(dense(x, p[blockParam(l, 'fc1.w')], p[blockParam(l, 'fc1.b')])) as tf.Tensor2D // [batch*tokens, hidden]
  return dense(h, p[blockParam(l, 'fc2.w')], p[blockParam(l, 'fc2.b')]) // [batch*tokens, dim]
}

function block (c: VitConfig, p: NamedTensors, l: number, x: tf.Tensor2D, batch: number): tf.Tensor2D {
  x = tf.add(x, attention(c, p, l, layerNorm(x, p[blockParam(l, 'ln1.g')], p[blockParam(l, 'ln1.b')]), batch))
  return tf.add(x, mlp(p, l, layerNorm(x, p[blockParam(l, 'ln2.g')], p[blockParam(l, 'ln2.b')])))
}

/** Cuts [batch, pixels] images (row-major, channels last) into [batch*patches, patchPixels] with 4-D ops only. */
export function toPatches (c: VitConfig, images: tf.Tensor2D): tf.Tensor2D {
  const batch = images.shape[0]
  const grid = c.imageSize / c.patchSize
  const rows = tf.reshape(images, [batch * grid, c.patchSize, grid, c.patchSize * c.channels]) // [batch*gridRows, patchRow, gridCols, patchCol*channels]
  return tf.reshape(tf.transpose(rows, [0, 2, 1, 3]), [batch * grid * grid, patchDim(c)]) // [batch*patches, patchPixels]
}

/**
 * Logits [batch, classes] for images [batch, imageSize*imageSize*channels] with values in [0, 1].
 * Pure: reads `params`, creates tensors the caller owns (wrap in tf.tidy), disposes nothing given.
 */
export function forward (c: VitConfig, params: NamedTensors, images: tf.Tensor2D): tf.Tensor2D {
  const batch = images.shape[0]
  if (images.shape[1] !== pixelsPerImage(c)) {
    throw new InvalidConfigError(`images have ${images.shape[1]} values each; this model takes ${c.imageSize}x${c.imageSize}x${c.channels} = ${pixelsPerImage(c)}`)
  }
  const T = numTokens(c)
  const D = c.dim
  const patches = dense(toPatches(c, images), params['patch.w'], params['patch.b']) // [batch*patches, dim]
  const cls = tf.broadcastTo(tf.reshape(params.cls, [1, 1, D]), [batch, 1, D]) // [batch, 1, dim]
  const tokens = tf.concat([cls, tf.reshape(patches, [batch, T - 1, D])], 1) // [batch, tokens, dim]
  let x: tf.Tensor2D = tf.reshape(tf.add(tokens, params.pos), [batch * T, D]) // [batch*tokens, dim]
  for (let l = 0; l < c.layers; l++) x = block(c, params, l, x, batch)
  x = layerNorm(x, params['lnf.g'], params['lnf.b'])
  const clsOut: tf.Tensor2D = tf.reshape(tf.slice(tf.reshape(x, [batch, T, D]), [0, 0, 0], [batch, 1, D]), [batch, D]) // [batch, dim]
  return dense(clsOut, params['head.w'], params['head.b']) // [batch, classes]
}

/** Mean softmax cross-entropy of logits [batch, classes] against integer labels [batch]. */
export function crossEntropy (logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const oneHot = tf.oneHot(labels, logits.shape[1]) // [batch, classes]
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), 1))) as tf.Scalar
}
