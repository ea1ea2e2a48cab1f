import assert from 'node:assert/strict'
import { Rng } from '../node/random.js'

describe('Rng', () => {
  it('gives the same stream for the same seed and different streams for different seeds', () => {
    const a = Array.from({ length: 5 }, (() => { const r = new Rng(7); return () => r.nextUint32() })())
    const b = Array.from({ length: 5 }, (() => { const r = new Rng(7); return () => r.nextUint32() })())
    const c = Array.from({ length: 5 }, (() => { const r = new Rng(8); return () => r.nextUint32() })())
    assert.deepEqual(a, b)
    assert.notDeepEqual(a, c)
  })

  it('draws normals with mean ~0 and variance ~1', () => {
    const r = new Rng('normal')
    const xs = Array.from({ length: 20000 }, () => r.normal())
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length
    const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length
    assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`)
    assert.ok(Math.abs(variance - 1) < 0.05, `variance ${variance}`)
  })

  it('draws Dirichlet vectors that sum to one, skewed for small alpha', () => {
    const r = new Rng('dir')
    const skewed = r.dirichlet(0.1, 10)
    const flat = r.dirichlet(1000, 10)
    assert.ok(Math.abs(skewed.reduce((s, x) => s + x, 0) - 1) < 1e-9)
    assert.ok(Math.max(...skewed) > 0.3, `alpha 0.1 should concentrate mass: ${skewed}`)
    assert.ok(Math.max(...flat) < 0.15, `alpha 1000 should be near uniform: ${flat}`)
  })
})
