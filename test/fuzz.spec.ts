/**
 * Hostile input: random and mutated bytes for every decoder and validator that sees network or disk
 * data. Each input must be accepted, or rejected with the module's typed error and a reason. Nothing
 * else may escape (no TypeError, RangeError or out-of-memory), and nothing is allocated past the limits.
 * Seeded, so CI runs the same 100,000+ cases every time; FUZZ_CASES=N runs more.
 */
import assert from 'node:assert/strict'
import { Rng } from '../node/random.js'
import { checkAnnouncement, decodeMessage, encodeMessage } from '../protocol/messages.js'
import { PROTOCOL_VERSION } from '../protocol/constants.js'
import { decodePayload, encodePayload } from '../protocol/payload.js'
import { decodeSafetensors } from '../protocol/safetensors.js'
import { parseManifest } from '../protocol/manifest.js'
import { ProtocolError, InvalidManifestError } from '../protocol/errors.js'
import { TensorFileError } from '../protocol/safetensors.js'
import { tinyManifest } from './fixtures.js'
import type { Message } from '../protocol/messages.js'

const CASES = Number(process.env.FUZZ_CASES ?? 100_000)
const HASH = '0123456789abcdef'.repeat(4)

const seeds: Uint8Array[] = [
  encodeMessage({ type: 'announce', federationId: HASH, round: 2, sampleCount: 10, payloadHash: HASH, payloadBytes: 120, addresses: ['/ip4/127.0.0.1/tcp/1'] }),
  encodeMessage({ type: 'fetch', federationId: HASH, round: 1, payloadHash: HASH }),
  encodeMessage({ type: 'state-request', federationId: HASH, withPayload: true }),
  encodeMessage({ type: 'error', reason: 'x' }),
  encodeMessage({ type: 'view-request', federationId: HASH }),
  encodeMessage({ type: 'view', federationId: HASH, participants: [{ peer: '12D3KooWGzh9a8tSNPbWhVgAdjF1i2y6PQnYEKc6yvzDCFePp8uY', round: 2 }] }),
  encodePayload({ E: { shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) }, 'w.q': { shape: [1, 1], data: Float32Array.from([0.5]) } }),
  new TextEncoder().encode(JSON.stringify(tinyManifest()))
]

/** One of: random bytes, or a seed with flipped bytes, a cut, an insertion, or a byte changed to an edge value. */
function mutate (rng: Rng): Uint8Array {
  if (rng.next() < 0.15) return Uint8Array.from({ length: rng.int(64) }, () => rng.int(256))
  const base = Uint8Array.from(seeds[rng.int(seeds.length)])
  switch (rng.int(4)) {
    case 0:
      for (let k = 0; k < 1 + rng.int(4); k++) base[rng.int(base.length)] ^= 1 << rng.int(8)
      return base
    case 1:
      return base.subarray(0, rng.int(base.length))
    case 2: {
      const at = rng.int(base.length)
      const insert = Uint8Array.from({ length: 1 + rng.int(8) }, () => rng.int(256))
      return Uint8Array.from([...base.subarray(0, at), ...insert, ...base.subarray(at)])
    }
    default:
      base[rng.int(base.length)] = [0, 0xff, 0x7f, 0x80, 0x22, 0x2d][rng.int(6)]
      return base
  }
}

/** Runs `fn`, returning 'ok' or the rejection reason; fails the test on any other exception. */
function outcome (fn: () => unknown, typed: Array<new (...args: any[]) => Error>): string {
  try {
    fn()
    return 'ok'
  } catch (err) {
    if (!typed.some(T => err instanceof T)) throw new Error(`untyped failure: ${(err as Error).name}: ${(err as Error).message}`)
    if (err instanceof ProtocolError) return err.reason
    return (err as Error).name
  }
}

describe(`fuzzing decoders and validators (${CASES.toLocaleString('en-US')} cases, fixed seed)`, function () {
  this.timeout(300_000)

  it('rejects every malformed input with a typed error and a reason, and never crashes', () => {
    const rng = new Rng('fuzz')
    const tally = new Map<string, number>()
    const count = (key: string): void => { tally.set(key, (tally.get(key) ?? 0) + 1) }
    const spec = [{ name: 'E', shape: [2, 2] }, { name: 'w.q', shape: [1, 1] }]
    for (let i = 0; i < CASES; i++) {
      const bytes = mutate(rng)
      let message: Message | undefined
      count(`message:${outcome(() => { message = decodeMessage(bytes) }, [ProtocolError])}`)
      if (message?.type === 'announce') {
        const announce = message
        count(`announce:${outcome(() => { checkAnnouncement(announce, { federationId: HASH, currentRound: 2, payloadBytes: 120 }) }, [ProtocolError])}`)
      }
      count(`payload:${outcome(() => decodePayload(bytes, spec), [ProtocolError])}`)
      count(`safetensors:${outcome(() => decodeSafetensors(bytes), [TensorFileError])}`)
      count(`manifest:${outcome(() => parseManifest(new TextDecoder().decode(bytes)), [InvalidManifestError])}`)
    }
    // Every decoder saw both accepted and rejected inputs, with several distinct reasons.
    const reasons = (prefix: string): string[] => [...tally.keys()].filter(k => k.startsWith(prefix) && !k.endsWith(':ok'))
    for (const prefix of ['message:', 'payload:', 'safetensors:', 'manifest:']) {
      assert.ok((tally.get(`${prefix}ok`) ?? 0) > 0, `${prefix} accepted nothing: the mutations are too destructive to test acceptance`)
      assert.ok(reasons(prefix).length > 0, `${prefix} rejected nothing`)
    }
    assert.ok(reasons('message:').length >= 4, `message rejections: ${reasons('message:').join(', ')}`)
    assert.ok(reasons('announce:').length >= 2, `announcement rejections: ${reasons('announce:').join(', ')}`)
  })

  it('refuses before allocating when a header claims more than the limits allow', () => {
    const bytes = Buffer.alloc(16)
    bytes.writeBigUInt64LE(2n ** 40n, 0)
    assert.throws(() => decodeSafetensors(bytes), { name: 'TensorFileError', message: /exceeds/ })
    const huge = new Uint8Array(70 * 1024)
    huge.set([0x46, 0x47, 0x52, 0x57, PROTOCOL_VERSION, 1])
    assert.throws(() => decodeMessage(huge), { name: 'ProtocolError', message: /too-large/ })
  })
})
