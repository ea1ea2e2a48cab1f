import assert from 'node:assert/strict'
import { canonicalOrder, centeredClip, clippedWeights, consensusDistances, coordinateMedian, trimmedMean, weightedMean } from '../node/federation/aggregate.js'
import { LIMITS } from '../protocol/constants.js'
import { fedAvg, strategyFor } from '../node/federation/strategy.js'

const t = (...values: number[]): { shape: number[], data: Float32Array } => ({ shape: [values.length], data: Float32Array.from(values) })

describe('aggregation', () => {
  it('computes the sample-weighted mean (worked by hand)', () => {
    // (100 * [1, 4] + 300 * [5, 0]) / 400 = [4, 1]
    const mean = weightedMean([{ from: 'b', sampleCount: 300, tensors: { x: t(5, 0) } }, { from: 'a', sampleCount: 100, tensors: { x: t(1, 4) } }])
    assert.deepEqual(Array.from(mean.x.data), [4, 1])
  })

  it('measures how far each model is from the models\' mean, relative to the mean (worked by hand)', () => {
    // The mean of x is [2, 2] and of y [0]: norm sqrt(8); each model is sqrt(1 + 1 + 1) away from it.
    const a = { x: t(1, 1), y: t(-1) }
    const b = { x: t(3, 3), y: t(1) }
    assert.deepEqual(consensusDistances([a, b]).map(d => d.toFixed(6)), [Math.sqrt(3 / 8), Math.sqrt(3 / 8)].map(d => d.toFixed(6)))
    assert.deepEqual(consensusDistances([a, a, a]), [0, 0, 0])
    assert.deepEqual(consensusDistances([]), [])
  })

  it('clips a claimed sample count to 4 times the lower median (worked by hand)', () => {
    assert.equal(LIMITS.maxWeightOverMedian, 4)
    // Two peers: the lower median is the smaller count, 48; the claim of 2^32 - 1 weighs 4 x 48 = 192.
    const claim = [{ from: 'a', sampleCount: 48, tensors: { x: t(0) } }, { from: 'z', sampleCount: LIMITS.maxSampleCount, tensors: { x: t(10) } }]
    assert.deepEqual(clippedWeights(claim), [48, 192])
    assert.deepEqual(Array.from(weightedMean(claim).x.data), [8])
    // Three peers: the lower median is the middle count, so one peer claiming little cuts nobody.
    assert.deepEqual(clippedWeights([1, 20, 90].map((n, i) => ({ from: `p${i}`, sampleCount: n, tensors: { x: t(0) } }))), [1, 20, 80])
  })

  it('is bit-identical whatever order contributions arrive in', () => {
    const contributions = ['p3', 'p1', 'p2'].map((from, i) => ({ from, sampleCount: 7 + i * 13, tensors: { x: t(0.1 * (i + 1), 1 / 3 + i, -2.7e-3 * i) } }))
    const a = weightedMean(contributions)
    const b = weightedMean([...contributions].reverse())
    assert.deepEqual(Buffer.from(a.x.data.buffer), Buffer.from(b.x.data.buffer))
    assert.deepEqual(canonicalOrder(contributions).map(c => c.from), ['p1', 'p2', 'p3'])
  })

  it('keeps the current Global-LiGO when nothing arrived', () => {
    for (const rule of ['mean', 'median', 'trimmed-mean', 'centered-clip'] as const) assert.equal(strategyFor({ rule }).aggregate([], { x: t(1) }), null)
    assert.equal(fedAvg.name, 'mean')
  })

  const column = (...values: number[]): Array<{ from: string, sampleCount: number, tensors: { x: ReturnType<typeof t> } }> =>
    values.map((v, i) => ({ from: `p${i}`, sampleCount: i === values.length - 1 ? 1e9 : 1, tensors: { x: t(v) } }))

  it('takes the coordinate-wise median, ignoring sample counts (worked by hand)', () => {
    assert.deepEqual(Array.from(coordinateMedian(column(1, 5, 3)).x.data), [3])
    assert.deepEqual(Array.from(coordinateMedian(column(1, 2, 3, 10)).x.data), [2.5])
  })

  it('sorts each coordinate\'s values as TypedArray sort does, -0 before +0, so peers on other versions agree bit for bit', () => {
    assert.ok(Object.is(coordinateMedian(column(0, -0, 1)).x.data[0], 0), 'sorted -0, +0, 1: the median is +0')
    assert.ok(Object.is(coordinateMedian(column(-0, 0, -1)).x.data[0], -0), 'sorted -1, -0, +0: the median is -0')
    // Against sort() itself, on columns short enough for insertion sort and longer, with ties and zeros.
    let seed = 7
    const next = (): number => { seed = (seed * 16807) % 2147483647; return seed }
    for (const n of [2, 5, 16, 32, 33, 40]) {
      for (let trial = 0; trial < 20; trial++) {
        const values = Array.from({ length: n }, () => [0, -0, 1, -1, 0.5, next() / 2147483647 - 0.5][next() % 6])
        const sorted = Float64Array.from(Float32Array.from(values)).sort()
        const expected = n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        assert.ok(Object.is(coordinateMedian(column(...values)).x.data[0], Math.fround(expected)), `median of [${values.map(v => Object.is(v, -0) ? '-0' : v).join(', ')}]`)
      }
    }
  })

  it('trims the extremes before averaging (worked by hand)', () => {
    // n = 4, trim 0.25: drop 1 and 100, mean of 2 and 3.
    assert.deepEqual(Array.from(trimmedMean(column(100, 1, 3, 2), 0.25).x.data), [2.5])
    // trim 0 is the plain (unweighted) mean.
    assert.deepEqual(Array.from(trimmedMean(column(1, 2, 6), 0).x.data), [3])
  })

  it('clips each update around the current model (worked by hand)', () => {
    // Reference 0; updates [3, 4] (norm 5) and [0, 0]; tau 1: clip([3, 4]) = [0.6, 0.8], so v = [0.3, 0.4].
    const updates = [{ from: 'a', sampleCount: 1, tensors: { x: t(3, 4) } }, { from: 'b', sampleCount: 1, tensors: { x: t(0, 0) } }]
    const v = centeredClip(updates, { x: t(0, 0) }, 1, 1)
    assert.ok(Math.abs(v.x.data[0] - 0.3) < 1e-7 && Math.abs(v.x.data[1] - 0.4) < 1e-7, `${Array.from(v.x.data)}`)
    // With a radius larger than every update, one iteration is the plain mean.
    assert.deepEqual(Array.from(centeredClip(updates, { x: t(0, 0) }, 100, 1).x.data), [1.5, 2])
  })

  it('bounds what one hostile update can do, where the mean cannot', () => {
    const honest = [1, 1.1, 0.9, 1.05].map((v, i) => ({ from: `h${i}`, sampleCount: 10, tensors: { x: t(v) } }))
    const hostile = { from: 'z', sampleCount: 10, tensors: { x: t(1e6) } }
    const all = [...honest, hostile]
    assert.ok(weightedMean(all).x.data[0] > 1e5)
    assert.ok(Math.abs(coordinateMedian(all).x.data[0] - 1.05) < 1e-6)
    assert.ok(Math.abs(trimmedMean(all, 0.2).x.data[0] - (1 + 1.05 + 1.1) / 3) < 1e-6)
    assert.ok(centeredClip(all, { x: t(1) }, 1, 3).x.data[0] < 1.5)
  })
})
