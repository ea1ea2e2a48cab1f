/**
 * Seeded randomness. Everything that must be identical on every machine (initial weights, the growth
 * operator's initialisation, data splits, shuffles) draws from here, never from Math.random or tfjs's
 * own generators, whose streams differ between backends.
 */

/** sfc32 (Chris Doty-Humphrey's Small Fast Counting generator): 128-bit state, passes PractRand. */
export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number
  private spareNormal: number | undefined

  constructor (seed: number | string) {
    const h = hashSeed(String(seed))
    this.a = h[0]; this.b = h[1]; this.c = h[2]; this.d = h[3]
    for (let i = 0; i < 12; i++) this.nextUint32()
  }

  nextUint32 (): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** Uniform in [0, 1). */
  next (): number {
    return this.nextUint32() / 4294967296
  }

  /** Uniform integer in [0, n). */
  int (n: number): number {
    return Math.floor(this.next() * n)
  }

  /** Standard normal (Box-Muller, both values used). */
  normal (): number {
    if (this.spareNormal !== undefined) {
      const z = this.spareNormal
      this.spareNormal = undefined
      return z
    }
    let u = 0
    while (u === 0) u = this.next()
    const v = this.next()
    const r = Math.sqrt(-2 * Math.log(u))
    this.spareNormal = r * Math.sin(2 * Math.PI * v)
    return r * Math.cos(2 * Math.PI * v)
  }

  /** Gamma(shape, 1), Marsaglia and Tsang (2000); shape < 1 by the boost u^(1/shape). */
  gamma (shape: number): number {
    if (shape < 1) return this.gamma(shape + 1) * Math.pow(this.next() || Number.MIN_VALUE, 1 / shape)
    const d = shape - 1 / 3
    const c = 1 / Math.sqrt(9 * d)
    for (;;) {
      let x: number, v: number
      do {
        x = this.normal()
        v = 1 + c * x
      } while (v <= 0)
      v = v * v * v
      const u = this.next()
      if (u < 1 - 0.0331 * x * x * x * x) return d * v
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v
    }
  }

  /** A draw from Dirichlet(alpha, ..., alpha) of the given size. */
  dirichlet (alpha: number, size: number): number[] {
    const g = Array.from({ length: size }, () => this.gamma(alpha))
    const total = g.reduce((s, x) => s + x, 0)
    return g.map(x => x / total)
  }

  /** Fisher-Yates in place; returns the same array. */
  shuffle<T> (items: T[] | Int32Array): typeof items {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      const t = items[i]
      items[i] = items[j]
      items[j] = t
    }
    return items
  }

  /** Float32Array of `count` normals scaled by `std`. */
  normalArray (count: number, std: number): Float32Array {
    const out = new Float32Array(count)
    for (let i = 0; i < count; i++) out[i] = this.normal() * std
    return out
  }
}

/** cyrb128: a string hash that spreads any seed over four 32-bit words. */
function hashSeed (str: string): [number, number, number, number] {
  let h1 = 1779033703; let h2 = 3144134277; let h3 = 1013904242; let h4 = 2773480762
  for (let i = 0; i < str.length; i++) {
    const k = str.charCodeAt(i)
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067)
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233)
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213)
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179)
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067)
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233)
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213)
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179)
  h1 ^= (h2 ^ h3 ^ h4); h2 ^= h1; h3 ^= h1; h4 ^= h1
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0]
}
