/**
 * LiGO, the learned linear growth operator (Wang et al., "Learning to Grow Pretrained Models for
 * Efficient Transformer Training", ICLR 2023, arXiv 2303.00980), as described in docs/method.md.
 *
 * An operator from (L1, D1) to (L2, D2) is a map of named tensors:
 *   E            [D2, D1]   residual-stream expansion, shared by every layer and the embeddings
 *   B.{j}.q|k|v  [D2, D1]   per source layer j: attention projections (o's input is tied to v)
 *   B.{j}.fc     [F2, F1]   per source layer j: FFN hidden units (fc2's input is tied to fc1)
 *   w.{m}        [L2, L1]   depth mixing per module type m in BLOCK_MODULES
 * Source and target share their task shape (images and patches, or the tokenizer; the classes) and heads;
 * only width, depth and mlp ratio change. The operator does not depend on the input: a text model's token
 * table grows through E as an image model's patch embedding does.
 */
import * as tf from '../tf.js'
import { InvalidConfigError } from '../errors.js'
import { Rng } from '../random.js'
import { BLOCK_MODULES } from '../model/vit.js'
import { hiddenDim, taskDifference } from '../model/config.js'
import type { ModelConfig } from '../model/config.js'
import type { NamedTensors } from '../model/vit.js'

/** From and to share a task shape (config.ts: images or tokenizer, classes) and heads. */
export interface GrowthShape {
  from: ModelConfig
  to: ModelConfig
}

export const LIGO_INITS = ['fedgrow', 'ligo'] as const
/**
 * fedgrow: the Fed-Grow authors' code: E and every B xavier-normal, w = 1/L1 (every new layer the mean
 *   of all source layers). Not function-preserving.
 * ligo: LiGO's own code, made exact where the tied parameterisation allows. Depth is "stackbert" (target
 *   layer l copies source layer l mod L1; copies beyond the first L1 get noise, and start with zero
 *   attention-output and FFN-output weights, so they add nothing to the residual stream). Width keeps the first
 *   units: E duplicates residual units Net2Net-style, scaled so E^T E = I, which keeps LayerNorm exact
 *   when D2 is a multiple of D1; B keeps each head's first units and starts the new ones at `noise`;
 *   B_q also rescales the attention temperature 1/sqrt(head dim). With equal shapes it is the identity.
 */
export type LigoInit = typeof LIGO_INITS[number]

/** Std of the symmetry-breaking noise on new units and copied layers in the `ligo` init. */
export const DEFAULT_LIGO_NOISE = 0.01

export const sourceParam = (j: number, name: 'q' | 'k' | 'v' | 'fc'): string => `B.${j}.${name}`
export const depthParam = (m: string): string => `w.${m}`

/** Checks that `to` can be grown from `from`; throws InvalidConfigError naming the mismatch. */
export function checkGrowthShape (shape: GrowthShape): void {
  const { from, to } = shape
  // A text model's token table grows like its other weights, so source and target must read ids alike.
  const difference = taskDifference(from, to, 'the source', 'the target')
  if (difference !== undefined) throw new InvalidConfigError(`growth keeps the input and the classes, but ${difference}; grow into a model of the source's task`)
  if (from.heads !== to.heads) throw new InvalidConfigError(`growth keeps heads: source has ${from.heads}, target ${to.heads}`)
  if (to.dim < from.dim) throw new InvalidConfigError(`target dim ${to.dim} is smaller than source dim ${from.dim}; LiGO grows, it does not shrink`)
  if (to.layers < from.layers) throw new InvalidConfigError(`target layers ${to.layers} is fewer than source layers ${from.layers}`)
  if (hiddenDim(to) < hiddenDim(from)) throw new InvalidConfigError(`target FFN width ${hiddenDim(to)} is smaller than source FFN width ${hiddenDim(from)}`)
}

export function ligoParamShapes (shape: GrowthShape): Record<string, number[]> {
  const { from, to } = shape
  const shapes: Record<string, number[]> = { E: [to.dim, from.dim] }
  for (let j = 0; j < from.layers; j++) {
    for (const m of ['q', 'k', 'v'] as const) shapes[sourceParam(j, m)] = [to.dim, from.dim]
    shapes[sourceParam(j, 'fc')] = [hiddenDim(to), hiddenDim(from)]
  }
  for (const m of BLOCK_MODULES) shapes[depthParam(m)] = [to.layers, from.layers]
  return shapes
}

export function countLigoParams (shape: GrowthShape): number {
  return Object.values(ligoParamShapes(shape)).reduce((s, d) => s + d[0] * d[1], 0)
}

/** Multiply-adds x2 of one grow(): the width step per source layer plus the depth mix. */
export function growFlops (shape: GrowthShape): number {
  const { from, to } = shape
  const [d1, d2, f1, f2] = [from.dim, to.dim, hiddenDim(from), hiddenDim(to)]
  const sandwich = (rows: number, inner: number, cols: number, out: number): number => 2 * (rows * inner * cols + rows * cols * out)
  const perSourceLayer = 4 * sandwich(d2, d1, d1, d2) + sandwich(d2, d1, f1, f2) + sandwich(f2, f1, d1, d2)
  const blockParams = 4 * d2 * d2 + 2 * d2 * f2 + 9 * d2 + f2
  return from.layers * perSourceLayer + 2 * to.layers * from.layers * blockParams
}

/** xavier-normal: std sqrt(2 / (fanIn + fanOut)). */
function xavier (rows: number, cols: number, rng: Rng): Float32Array {
  return rng.normalArray(rows * cols, Math.sqrt(2 / (rows + cols)))
}

/** [D2, D1]: row i copies unit i mod D1, scaled by 1/sqrt(copies of that unit) so the columns are orthonormal. */
function duplication (d2: number, d1: number, noise: number, rng: Rng): Float32Array {
  const out = new Float32Array(d2 * d1)
  const copies = (j: number): number => Math.floor((d2 - 1 - j) / d1) + 1
  for (let i = 0; i < d2; i++) {
    const j = i % d1
    out[i * d1 + j] = 1 / Math.sqrt(copies(j))
    if (i >= d1) for (let c = 0; c < d1; c++) out[i * d1 + c] += noise * rng.normal()
  }
  return out
}

/**
 * [heads*hd2, heads*hd1]: within each head, the first hd1 units are kept (times `scale`) and the new
 * units start at `noise`. heads = 1 gives the plain [I; noise] of LiGO's code.
 */
function headKeep (heads: number, hd2: number, hd1: number, scale: number, noise: number, rng: Rng): Float32Array {
  const cols = heads * hd1
  const out = new Float32Array(heads * hd2 * cols)
  for (let h = 0; h < heads; h++) {
    for (let u = 0; u < hd2; u++) {
      const row = h * hd2 + u
      if (u < hd1) out[row * cols + h * hd1 + u] = scale
      else for (let c = 0; c < cols; c++) out[row * cols + c] = noise * rng.normal()
    }
  }
  return out
}

/**
 * Modules whose output is added to the residual stream: in a block past the source's depth they start
 * at zero, so that the new block adds nothing and the grown model computes the source's function
 * (the loss-preserving depth growth of Shen et al., "Staged Training for Transformer Language Models",
 * ICML 2022, arXiv 2203.06211). Their depth weights still get gradients, so the new blocks learn.
 */
const RESIDUAL_OUTPUTS: ReadonlySet<string> = new Set(['o', 'fc2'])

/**
 * [L2, L1] stackbert: target layer l copies source layer l mod L1; layers past L1 get noise on every
 * weight, except that their residual outputs start at zero (RESIDUAL_OUTPUTS).
 */
function stack (module: string, l2: number, l1: number, noise: number, rng: Rng): Float32Array {
  const out = new Float32Array(l2 * l1)
  for (let l = 0; l < l2; l++) {
    if (l >= l1 && RESIDUAL_OUTPUTS.has(module)) continue
    out[l * l1 + (l % l1)] = 1
    if (l >= l1) for (let j = 0; j < l1; j++) out[l * l1 + j] += noise * rng.normal()
  }
  return out
}

/**
 * A fresh operator from a seed: the same seed gives the same operator on every machine and backend.
 * The caller owns the returned tensors.
 */
export function initLigo (shape: GrowthShape, init: LigoInit, seed: number | string, noise = DEFAULT_LIGO_NOISE): NamedTensors {
  checkGrowthShape(shape)
  const rng = new Rng(`ligo:${init}:${seed}`)
  const { from, to } = shape
  const hd1 = from.dim / from.heads
  const hd2 = to.dim / to.heads
  const out: NamedTensors = {}
  for (const [name, [rows, cols]] of Object.entries(ligoParamShapes(shape))) {
    let values: Float32Array
    if (init === 'fedgrow') {
      values = name.startsWith('w.') ? new Float32Array(rows * cols).fill(1 / cols) : xavier(rows, cols, rng)
    } else if (name === 'E') {
      values = duplication(rows, cols, noise, rng)
    } else if (name.startsWith('w.')) {
      values = stack(name.slice('w.'.length), rows, cols, noise, rng)
    } else if (name.endsWith('.fc')) {
      values = headKeep(1, rows, cols, 1, noise, rng)
    } else {
      values = headKeep(from.heads, hd2, hd1, name.endsWith('.q') ? Math.sqrt(hd2 / hd1) : 1, noise, rng)
    }
    out[name] = tf.tensor2d(values, [rows, cols])
  }
  return out
}
