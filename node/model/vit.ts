/**
 * A Vision Transformer (Dosovitskiy et al., arXiv 2010.11929) written as a pure function of a config
 * and a map of named parameter tensors, so that a growth operator can produce the parameters as
 * differentiable tensors. Read it top to bottom: dense, layerNorm, attention, mlp, block, forward.
 * The same function is the text transformer: a text config (config.ts) swaps the patch stem for a token
 * embedding table and keeps every other parameter, name and shape rule, so whatever grows, averages or
 * saves a ViT's parameters handles a text model's the same way.
 *
 * Parameter names and shapes (D = dim, F = mlpRatio * D, T = patches + 1 or seqLen + 1, P = patch
 * pixels, V = vocabSize, C = classes).
 * Dense weights are stored [in, out] so every projection is x @ W, the fast 2-D path on wasm.
 *   patch.w [P, D]   patch.b [D]         patch embedding (image models)
 *   embed.w [V, D]                       token embedding table (text models), row i = token id i
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
import { hiddenDim, inputWidth, isTextConfig, numPatches, numTokens, patchDim } from './config.js'
import { embeddingLookup } from './embedding.js'
import type { BodyConfig, ModelConfig, TextConfig, VitConfig } from './config.js'

export type NamedTensors = Record<string, tf.Tensor>

/** The module types a block has, in the order the growth operator's depth tensor lists them. */
export const BLOCK_MODULES = ['q', 'k', 'v', 'o', 'ln1', 'fc1', 'fc2', 'ln2'] as const
export type BlockModule = typeof BLOCK_MODULES[number]

const LAYER_NORM_EPSILON = 1e-6

export const blockParam = (layer: number, name: string): string => `blocks.${layer}.${name}`

/** Every parameter's name and shape, in a fixed order (the order files and payloads use). */
export function paramShapes (c: ModelConfig): Record<string, number[]> {
  const D = c.dim
  const F = hiddenDim(c)
  const stem: Record<string, number[]> = isTextConfig(c) ? { 'embed.w': [c.tokenizer.vocabSize, D] } : { 'patch.w': [patchDim(c), D], 'patch.b': [D] }
  const shapes: Record<string, number[]> = {
    ...stem,
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

/** The classifier on the cls token: what a participant keeps to itself under the manifest's `ligo.privateHead`. */
export const CLASSIFIER_PARAMS = ['head.w', 'head.b'] as const

/** Parameters of the classifier (CLASSIFIER_PARAMS): what a private head trains beside Global-LiGO. */
export function countClassifierParams (c: ModelConfig): number {
  const shapes = paramShapes(c)
  return CLASSIFIER_PARAMS.reduce((s, name) => s + shapes[name].reduce((a, b) => a * b, 1), 0)
}

export function countParams (c: ModelConfig): number {
  return Object.values(paramShapes(c)).reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0)
}

/**
 * Multiply-adds x2 of one forward pass over one input (image or text); a training step costs about 3x
 * this per input. A text stem is a lookup, no multiply-adds.
 */
export function forwardFlopsPerImage (c: ModelConfig): number {
  const T = numTokens(c)
  const D = c.dim
  const perBlock = 2 * T * (4 * D * D + 2 * D * hiddenDim(c)) + 2 * 2 * T * T * D
  const stem = isTextConfig(c) ? 0 : 2 * numPatches(c) * patchDim(c) * D
  return stem + c.layers * perBlock + 2 * D * c.numClasses
}

export function flopsPerTrainStep (c: ModelConfig, batchSize: number): number {
  return 3 * forwardFlopsPerImage(c) * batchSize
}

/**
 * Fresh parameters for training from scratch: truncated-free normal(0, 0.02) weights as in ViT/GPT-2,
 * zero biases, unit LayerNorm gains. Drawn from a seeded generator, so equal on every backend.
 * The caller owns the returned tensors.
 */
export function initParams (c: ModelConfig, seed: number | string): NamedTensors {
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

/** "a ViT with dim 32 and 2 layers", "a text transformer with ...": for messages about a config's parameters. */
export function describeModel (c: ModelConfig): string {
  return `a ${isTextConfig(c) ? 'text transformer' : 'ViT'} with dim ${c.dim} and ${c.layers} layers`
}

/** Throws InvalidConfigError unless `params` holds exactly the config's names with the config's shapes. */
export function checkParams (c: ModelConfig, params: NamedTensors): void {
  const shapes = paramShapes(c)
  for (const [name, shape] of Object.entries(shapes)) {
    const t = params[name]
    if (t === undefined) throw new InvalidConfigError(`parameter ${name} is missing (expected shape [${shape}])`)
    if (t.shape.join() !== shape.join()) throw new InvalidConfigError(`parameter ${name} has shape [${t.shape}], the config needs [${shape}]`)
  }
  for (const name of Object.keys(params)) {
    if (!(name in shapes)) throw new InvalidConfigError(`parameter ${name} is not part of ${describeModel(c)}`)
  }
}

/**
 * x @ w + b with a hand-written gradient: tfjs's own matMul gradient uses transpose flags, which drop
 * wasm into a scalar loop (measured ~1.4 GFLOP/s against ~20 for plain 2-D products); explicit
 * transposes keep every product on the fast path.
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
      const [rows, out] = dy.shape
      const dyT = tf.transpose(dy as tf.Tensor2D) // [out, rows]
      return [
        tf.matMul(dy as tf.Tensor2D, tf.transpose(ws)), // [rows, out] x [out, in] -> [rows, in]
        // w's gradient transposed, so that x is the right-hand operand: wasm (XNNPACK) packs that one
        // per tensor and reuses the packing, and q, k, v share their x (measured: a reused packing halves
        // a [64, 1088] x [1088, 64] product's time).
        tf.transpose(tf.matMul(dyT, xs)), // [out, rows] x [rows, in] -> [out, in] -> [in, out]
        // Column sums as a product: wasm's sum over the first axis transposes first (measured 2x slower).
        tf.reshape(tf.matMul(dyT, tf.ones([rows, 1])), [out]) // [out, rows] x [rows, 1] -> [out]
      ]
    }
  }
}) as (x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor) => tf.Tensor2D

/**
 * LayerNorm over the last axis of [rows, dim], with its gradient written out: tfjs's autodiff of the
 * same maths runs ~40 small kernels backward, this ~11.
 */
const layerNorm = tf.customGrad((x, g, b, save) => {
  const [x2, g1, b1] = [x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D]
  const centred = tf.sub(x2, tf.mean(x2, -1, true)) // [rows, dim]
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), -1, true), LAYER_NORM_EPSILON)) // [rows, 1]
  const normed = tf.mul(centred, rstd) // [rows, dim]
  ;(save as tf.GradSaveFunc)([normed, rstd, g1])
  return {
    value: tf.add(tf.mul(normed, g1), b1), // [rows, dim]
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [n, r, gs] = saved
      const dNormed = tf.mul(dy, gs) // [rows, dim]
      const dx = tf.mul(r, tf.sub(tf.sub(dNormed, tf.mean(dNormed, -1, true)), tf.mul(n, tf.mean(tf.mul(dNormed, n), -1, true)))) // [rows, dim]
      return [dx, tf.sum(tf.mul(dy, n), 0), tf.sum(dy, 0)] // [rows, dim], [dim], [dim]
    }
  }
}) as (x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor) => tf.Tensor2D

/**
 * GELU in its sigmoid form y = x * s, s = sigmoid(1.702 x): ~7x faster than the tanh form on wasm
 * (measured). Its gradient s + 1.702 x s (1 - s) = s + 1.702 (y - y s) is written out: 5 kernels
 * backward where autodiff ran ~10.
 */
const gelu = tf.customGrad((x, save) => {
  const s = tf.sigmoid(tf.mul(x as tf.Tensor2D, 1.702)) // [rows, hidden]
  const y = tf.mul(x as tf.Tensor2D, s) // [rows, hidden]
  ;(save as tf.GradSaveFunc)([y, s])
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, [ys, ss]: tf.Tensor[]) => tf.mul(dy, tf.add(ss, tf.mul(tf.sub(ys, tf.mul(ys, ss)), 1.702)))
  }
}) as (x: tf.Tensor2D) => tf.Tensor2D

/**
 * out[i, n, j] = sum_k a[i, k, n] * b[k, n, j] for a [I, K, N] and b [K, N, J]: a batched matMul with
 * the batch n last, run as one depthwise convolution (n the channel, k the filter width, j the channel
 * multiplier). Why: wasm runs batched and transposed matMuls in a scalar loop (measured ~1.4 GFLOP/s),
 * its depthwise convolution on XNNPACK (measured 4-5x faster on attention's shapes).
 * No gradient: wasm lacks the depthwise-convolution gradient kernels, so callers write their own.
 */
function channelMatMul (a: tf.Tensor, b: tf.Tensor): tf.Tensor3D {
  const [I, K, N] = a.shape as [number, number, number]
  const J = (b.shape as [number, number, number])[2]
  const out = tf.depthwiseConv2d(tf.reshape<tf.Rank.R4>(a, [1, I, K, N]), tf.reshape<tf.Rank.R4>(b, [1, K, N, J]), 1, 'valid') // [1, I, 1, N*J]
  return tf.reshape(out, [I, N, J]) // [I, N, J]
}

/**
 * softmax(q k^T / sqrt(hd)) v for every (image, head) at once, on q, k, v [tokens*batch, dim] in token-major
 * row order, which read as [tokens, batch*heads, hd] with no copy: the batch*heads axis n is already
 * contiguous, as channelMatMul needs. Returns [tokens*batch, dim], the heads merged, in the same order.
 * The gradient is written out with channelMatMul too, since wasm has none for depthwise convolutions;
 * each product takes one operand as stored and the other through one 3-D transpose.
 */
export function selfAttention (q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, batch: number, heads: number): tf.Tensor2D {
  const [rows, D] = q.shape
  const T = rows / batch
  const N = batch * heads
  const hd = D / heads
  const scale = 1 / Math.sqrt(hd)
  const attend = tf.customGrad((qIn, kIn, vIn, save) => {
    const [q3, k3, v3] = [qIn, kIn, vIn].map(t => tf.reshape(t as tf.Tensor, [T, N, hd])) // [tokens, batch*heads, hd] each
    const scores = channelMatMul(
      tf.transpose(tf.mul(q3, scale), [0, 2, 1]), // [query, hd, n]
      tf.transpose(k3, [2, 1, 0])) // [hd, n, key] -> scores [query, n, key]
    const probs = tf.softmax(scores) // [query, n, key]
    ;(save as tf.GradSaveFunc)([q3, k3, v3, probs])
    const mixed = channelMatMul(tf.transpose(probs, [0, 2, 1]), v3) // [query, key, n] x [key, n, hd] -> [query, n, hd]
    return {
      value: tf.reshape(mixed, [rows, D]), // [tokens*batch, dim]
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [qs, ks, vs, p] = saved
        const dMixed = tf.reshape(dy, [T, N, hd]) // [query, n, hd]
        const dProbs = channelMatMul(tf.transpose(dMixed, [0, 2, 1]), tf.transpose(vs, [2, 1, 0])) // [query, hd, n] x [hd, n, key] -> [query, n, key]
        const dv = channelMatMul(tf.transpose(p, [2, 0, 1]), dMixed) // [key, query, n] x [query, n, hd] -> [key, n, hd]
        // Softmax backward, with the 1/sqrt(hd) of the scores folded in.
        const dScores = tf.mul(tf.mul(p, tf.sub(dProbs, tf.sum(tf.mul(dProbs, p), -1, true))), scale) // [query, n, key]
        const dq = channelMatMul(tf.transpose(dScores, [0, 2, 1]), ks) // [query, key, n] x [key, n, hd] -> [query, n, hd]
        const dk = channelMatMul(tf.transpose(dScores, [2, 0, 1]), qs) // [key, query, n] x [query, n, hd] -> [key, n, hd]
        return [dq, dk, dv].map(g => tf.reshape(g, [rows, D])) // [tokens*batch, dim] each
      }
    }
  }) as (q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D) => tf.Tensor2D
  return attend(q, k, v)
}

/** Multi-head self-attention over [tokens*batch, dim] (token-major rows); returns [tokens*batch, dim]. */
function attention (c: BodyConfig, p: NamedTensors, l: number, x: tf.Tensor2D, batch: number): tf.Tensor2D {
  const q = dense(x, p[blockParam(l, 'q.w')], p[blockParam(l, 'q.b')]) // [tokens*batch, dim]
  const k = dense(x, p[blockParam(l, 'k.w')], p[blockParam(l, 'k.b')])
  const v = dense(x, p[blockParam(l, 'v.w')], p[blockParam(l, 'v.b')])
  return dense(selfAttention(q, k, v, batch, c.heads), p[blockParam(l, 'o.w')], p[blockParam(l, 'o.b')])
}

function mlp (p: NamedTensors, l: number, x: tf.Tensor2D): tf.Tensor2D {
  const h = gelu(dense(x, p[blockParam(l, 'fc1.w')], p[blockParam(l, 'fc1.b')])) as tf.Tensor2D // [tokens*batch, hidden]
  return dense(h, p[blockParam(l, 'fc2.w')], p[blockParam(l, 'fc2.b')]) // [tokens*batch, dim]
}

function block (c: BodyConfig, p: NamedTensors, l: number, x: tf.Tensor2D, batch: number): tf.Tensor2D {
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

/** The patch stem: images [batch, pixels] -> patch embeddings [patches*batch, dim], token-major. */
function embedPatches (c: VitConfig, params: NamedTensors, images: tf.Tensor2D): tf.Tensor2D {
  const batch = images.shape[0]
  const patches = numPatches(c)
  const pixels = tf.transpose(tf.reshape(toPatches(c, images), [batch, patches, patchDim(c)]), [1, 0, 2]) // [patches, batch, patchPixels]
  return dense(tf.reshape(pixels, [patches * batch, patchDim(c)]), params['patch.w'], params['patch.b']) // [patches*batch, dim]
}

/** The token stem: int32 ids [batch, seqLen] -> rows of embed.w [seqLen*batch, dim], token-major. */
function embedTokens (c: TextConfig, params: NamedTensors, ids: tf.Tensor2D): tf.Tensor2D {
  if (ids.dtype !== 'int32') throw new InvalidConfigError(`a text model takes int32 token ids; got ${ids.dtype} values (tokenize the text first, node/model/tokenizer.ts)`)
  const tokenMajor = tf.reshape<tf.Rank.R1>(tf.transpose(ids), [c.tokenizer.seqLen * ids.shape[0]]) // [seqLen*batch]
  return embeddingLookup(params['embed.w'], tokenMajor) // [seqLen*batch, dim]
}

/**
 * Logits [batch, classes] for a batch of inputs [batch, inputWidth]: images (float32 pixels in [0, 1],
 * imageSize*imageSize*channels, row-major, channels last) for an image config, int32 token ids
 * [batch, seqLen] (tokenizer.ts) for a text config.
 * Pure: reads `params`, creates tensors the caller owns (wrap in tf.tidy), disposes nothing given.
 */
export function forward (c: ModelConfig, params: NamedTensors, inputs: tf.Tensor2D): tf.Tensor2D {
  const batch = inputs.shape[0]
  if (inputs.shape[1] !== inputWidth(c)) {
    const takes = isTextConfig(c) ? `${c.tokenizer.seqLen} token ids` : `${c.imageSize}x${c.imageSize}x${c.channels} = ${inputWidth(c)} pixels`
    throw new InvalidConfigError(`inputs have ${inputs.shape[1]} values each; this model takes ${takes}`)
  }
  const T = numTokens(c)
  const D = c.dim
  // The residual stream is token-major, rows (token, input), so that attention's q, k, v need no
  // per-head transpose (see selfAttention); dense layers, LayerNorm and GELU act on rows in any order.
  const stem = isTextConfig(c) ? embedTokens(c, params, inputs) : embedPatches(c, params, inputs) // [(tokens-1)*batch, dim]
  const cls = tf.broadcastTo(tf.reshape(params.cls, [1, 1, D]), [1, batch, D]) // [1, batch, dim]
  const tokens = tf.concat([cls, tf.reshape(stem, [T - 1, batch, D])], 0) // [tokens, batch, dim]
  let x: tf.Tensor2D = tf.reshape(tf.add(tokens, tf.reshape(params.pos, [T, 1, D])), [T * batch, D]) // [tokens*batch, dim]
  for (let l = 0; l < c.layers; l++) x = block(c, params, l, x, batch)
  x = layerNorm(x, params['lnf.g'], params['lnf.b'])
  const clsOut = tf.slice(x, [0, 0], [batch, D]) // [batch, dim]: the cls token's rows come first
  return dense(clsOut, params['head.w'], params['head.b']) // [batch, classes]
}

/** Mean softmax cross-entropy of logits [batch, classes] against integer labels [batch]. */
export function crossEntropy (logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const oneHot = tf.oneHot(labels, logits.shape[1]) // [batch, classes]
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), 1))) as tf.Scalar
}
