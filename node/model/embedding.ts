/**
 * Embedding lookup with a gradient the wasm backend can run. tfjs differentiates tf.gather through
 * UnsortedSegmentSum, which wasm lacks, so a table looked up with plain gather cannot train there.
 * Its gradient here is a scatter instead: wasm's (and cpu's) ScatterNd adds the updates of repeated
 * indices, which is exactly the sum over every row that read the same table row.
 */
import * as tf from '../tf.js'

/**
 * Rows `ids` of `table`: table [vocab, dim], ids int32 [n] in [0, vocab) -> [n, dim]. Differentiable in
 * `table` only (ids are integers); the gradient is dense [vocab, dim], zero for rows nobody read.
 */
export function embeddingLookup (table: tf.Tensor, ids: tf.Tensor1D): tf.Tensor2D {
  const [vocab, dim] = table.shape as [number, number]
  const n = ids.shape[0]
  // A fresh customGrad per call so that ids, which have no gradient, stay out of its inputs; they are
  // saved rather than only closed over, since tfjs disposes the forward pass's tensors before backward.
  const lookup = tf.customGrad((t, save) => {
    ;(save as tf.GradSaveFunc)([ids])
    return {
      value: tf.gather(t as tf.Tensor2D, ids), // [n, dim]
      gradFunc: (dy: tf.Tensor, [savedIds]: tf.Tensor[]) => tf.scatterND(tf.reshape(savedIds, [n, 1]), dy, [vocab, dim]) // [vocab, dim], repeated ids summed
    }
  }) as (t: tf.Tensor) => tf.Tensor2D
  return lookup(table)
}
