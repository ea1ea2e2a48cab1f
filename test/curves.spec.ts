/** Whether a curve has flattened, on pencil-sized curves. */
import assert from 'node:assert/strict'
import { curveTrend } from '../node/simulation/curves.js'

const curve = (means: number[]): Array<{ round: number, accuracy: { mean: number, std: number, min: number } }> =>
  means.map((mean, i) => ({ round: i + 1, accuracy: { mean, std: 0, min: mean } }))

describe('curve trends', () => {
  it('calls a curve flat, rising or falling by its change over the last five rounds', () => {
    // Rounds 1..8: the window runs from round 3 to round 8.
    const flat = curveTrend(curve([0.5, 0.7, 0.80, 0.81, 0.80, 0.82, 0.81, 0.805]))
    assert.equal(flat.trend, 'flat')
    assert.ok(Math.abs(flat.change - 0.005) < 1e-12)
    assert.equal(curveTrend(curve([0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])).trend, 'rising')
    assert.equal(curveTrend(curve([0.84, 0.83, 0.82, 0.81, 0.80, 0.79])).trend, 'falling')
  })

  it('compares with the first round when the curve is shorter than the window', () => {
    const t = curveTrend(curve([0.5, 0.6, 0.65]))
    assert.ok(Math.abs(t.change - 0.15) < 1e-12)
    assert.equal(t.trend, 'rising')
    assert.equal(curveTrend(curve([0.7])).trend, 'flat')
  })

  it('finds the first round within one point of the best', () => {
    assert.equal(curveTrend(curve([0.5, 0.802, 0.81, 0.795, 0.79])).plateauRound, 2)
    assert.equal(curveTrend(curve([0.5, 0.6, 0.7, 0.9])).plateauRound, 4)
  })

  it('refuses a curve without rounds', () => {
    assert.throws(() => curveTrend([]), /the curve has no rounds/)
  })
})
