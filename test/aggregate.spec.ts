import assert from 'node:assert/strict'
import { canonicalOrder, weightedMean } from '../node/federation/aggregate.js'
import { fedAvg } from '../node/federation/strategy.js'

const t = (...values: number[]): { shape: number[], data: Float32Array } => ({ shape: [values.length], data: Float32Array.from(values) })

describe('aggregation', () => {
  it('computes the sample-weighted mean (worked by hand)', () => {
    // (100 * [1, 4] + 300 * [5, 0]) / 400 = [4, 1]
    const mean = weightedMean([{ from: 'b', sampleCount: 300, tensors: { x: t(5, 0) } }, { from: 'a', sampleCount: 100, tensors: { x: t(1, 4) } }])
    assert.deepEqual(Array.from(mean.x.data), [4, 1])
  })

  it('is bit-identical whatever order contributions arrive in', () => {
    const contributions = ['p3', 'p1', 'p2'].map((from, i) => ({ from, sampleCount: 7 + i * 13, tensors: { x: t(0.1 * (i + 1), 1 / 3 + i, -2.7e-3 * i) } }))
    const a = weightedMean(contributions)
    const b = weightedMean([...contributions].reverse())
    assert.deepEqual(Buffer.from(a.x.data.buffer), Buffer.from(b.x.data.buffer))
    assert.deepEqual(canonicalOrder(contributions).map(c => c.from), ['p1', 'p2', 'p3'])
  })

  it('keeps the current Global-LiGO when nothing arrived', () => {
    assert.equal(fedAvg.aggregate([]), null)
  })
})
