import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { federationId, parseManifest, validateManifest } from '../protocol/manifest.js'
import { checkAnnouncement, checkAnnouncementContent, decodeMessage, encodeMessage } from '../protocol/messages.js'
import { checkValueBounds, decodePayload, encodePayload, globalDigest, updateHash } from '../protocol/payload.js'
import { canonicalJson } from '../protocol/canonical.js'
import { validateNetworkPreset } from '../protocol/network.js'
import { LIMITS, payloadProtocol, stateProtocol, updatesTopic } from '../protocol/constants.js'
import { tinyManifest } from './fixtures.js'
import type { Announce, Message, View } from '../protocol/messages.js'
import type { Manifest } from '../protocol/manifest.js'

const HASH = 'a'.repeat(64)
/** A peer id as libp2p writes one (Ed25519). */
const PEER = '12D3KooWGzh9a8tSNPbWhVgAdjF1i2y6PQnYEKc6yvzDCFePp8uY'
const announce = (overrides: Partial<Announce> = {}): Announce => ({
  type: 'announce', federationId: HASH, round: 3, sampleCount: 100, payloadHash: 'b'.repeat(64), payloadBytes: 1000, addresses: ['/ip4/127.0.0.1/tcp/1'], ...overrides
})

describe('protocol', () => {
  describe('manifest', () => {
    it('accepts a valid manifest and derives a stable id that ignores the bootstrap list', () => {
      const m = validateManifest(tinyManifest())
      const id = federationId(m)
      assert.match(id, /^[0-9a-f]{64}$/)
      assert.equal(federationId({ ...m, bootstrap: ['/ip4/1.2.3.4/tcp/1/p2p/x'] }), id)
      assert.notEqual(federationId({ ...m, name: 'other' }), id)
      assert.notEqual(federationId({ ...m, ligo: { ...m.ligo, seed: 8 } }), id)
      assert.equal(updatesTopic(id), `/fedgrow/${id}/updates/2`)
      assert.equal(payloadProtocol(id), `/fedgrow/${id}/payload/1.0.0`)
      assert.equal(stateProtocol(id), `/fedgrow/${id}/state/3.0.0`)
    })

    it('rejects bad manifests naming the field and the rule', () => {
      const bad = (change: (m: any) => void, message: RegExp): void => {
        const m: any = structuredClone(tinyManifest())
        change(m)
        assert.throws(() => validateManifest(m), { name: 'InvalidManifestError', message })
      }
      bad(m => { m.extra = 1 }, /manifest.extra .* not a known field/)
      bad(m => { delete m.schedule.rounds }, /schedule.rounds .* is required/)
      bad(m => { m.intermediate.dim = 13 }, /intermediate.dim = 13: must be a multiple of task.heads/)
      bad(m => { m.target.dim = 8 }, /at least as wide/)
      bad(m => { m.ligo.init = 'magic' }, /ligo.init .* one of fedgrow, ligo/)
      bad(m => { m.version = 2 }, /version/)
      bad(m => { m.schedule.learningRate = -1 }, /learningRate/)
      bad(m => { m.aggregation = { rule: 'krum' } }, /aggregation.rule .* one of mean, trimmed-mean, median, centered-clip/)
      bad(m => { m.aggregation = { rule: 'trimmed-mean', trim: 0.5 } }, /aggregation.trim = 0.5/)
      bad(m => { m.schedule.finetuneSteps = 1.5 }, /schedule.finetuneSteps = 1.5: must be a whole number/)
      assert.equal(validateManifest({ ...tinyManifest(), schedule: { ...tinyManifest().schedule, finetuneSteps: 50 } }).schedule.finetuneSteps, 50)
      assert.equal('finetuneSteps' in validateManifest(tinyManifest()).schedule, false, 'absent stays absent, so older manifests keep their id')
      bad(m => { m.schedule.finetuneSteps = 200; m.schedule.finetuneSelect = 'best' }, /schedule.finetuneSelect = "best": must be one of last, best-held-out/)
      bad(m => { m.schedule.finetuneSelect = 'best-held-out' }, /schedule.finetuneSelect = "best-held-out": .*set schedule.finetuneEpochs \(e.g. 12\) or schedule.finetuneSteps/)
      bad(m => { m.schedule.finetuneSteps = 0; m.schedule.finetuneSelect = 'best-held-out' }, /set schedule.finetuneEpochs \(e.g. 12\) or schedule.finetuneSteps/)
      assert.equal(validateManifest({ ...tinyManifest(), aggregation: { rule: 'centered-clip', clipTau: 2 } }).aggregation.clipTau, 2)
      assert.throws(() => parseManifest('{not json'), { name: 'InvalidManifestError', message: /not valid JSON/ })
      bad(m => { m.access = { allowlist: ['not-a-peer-id'] } }, /access.allowlist = "not-a-peer-id": is not a libp2p peer id/)
      bad(m => { m.access = { preSharedKey: 'AB' } }, /access.preSharedKey = "AB": must be a SHA-256 digest/)
      bad(m => { m.bootstrap = ['ip4/1.2.3.4'] }, /bootstrap = "ip4\/1.2.3.4": is not a multiaddr/)
    })

    it('reads schedule.finetuneSelect, writing only best-held-out so that older manifests keep their id', () => {
      const ids = (schedule: Partial<Manifest['schedule']>): string => federationId(validateManifest(tinyManifest(schedule)))
      // Ids from before the field existed.
      assert.equal(ids({ finetuneSteps: 200 }), '2e513bf3aa7b5ae9439d71561c71b6f8eaa3cbdabcaa0b61d93483936f8f325d')
      assert.equal(ids({ finetuneSteps: 200, finetuneSelect: 'last' }), ids({ finetuneSteps: 200 }))
      assert.equal(ids({ finetuneSelect: 'last' }), 'c16e20aa12980bdacefb0d3da4a3e83494f1181b65551dc7a35689bd114955bd')
      assert.equal('finetuneSelect' in validateManifest(tinyManifest({ finetuneSteps: 200, finetuneSelect: 'last' })).schedule, false)
      assert.equal(validateManifest(tinyManifest({ finetuneSteps: 200, finetuneSelect: 'best-held-out' })).schedule.finetuneSelect, 'best-held-out')
      assert.notEqual(ids({ finetuneSteps: 200, finetuneSelect: 'best-held-out' }), ids({ finetuneSteps: 200 }))
    })

    it('reads schedule.finetuneEpochs, a budget in epochs exclusive with finetuneSteps, written only when present', () => {
      const ids = (schedule: Partial<Manifest['schedule']>): string => federationId(validateManifest(tinyManifest(schedule)))
      assert.equal(validateManifest(tinyManifest({ finetuneEpochs: 12 })).schedule.finetuneEpochs, 12)
      assert.equal('finetuneEpochs' in validateManifest(tinyManifest({ finetuneSteps: 200 })).schedule, false)
      assert.equal(ids({ finetuneSteps: 200 }), '2e513bf3aa7b5ae9439d71561c71b6f8eaa3cbdabcaa0b61d93483936f8f325d', 'a manifest without it keeps its id')
      assert.notEqual(ids({ finetuneEpochs: 12 }), ids({ finetuneSteps: 200 }))
      assert.equal(validateManifest(tinyManifest({ finetuneEpochs: 12, finetuneSelect: 'best-held-out', finetunePull: 10 })).schedule.finetunePull, 10, 'a budget in epochs is a budget to select in and pull')
      assert.equal(validateManifest(tinyManifest({ finetuneSteps: 0, finetuneEpochs: 12 })).schedule.finetuneEpochs, 12, 'zero steps is no budget, so no clash')
      assert.throws(() => validateManifest(tinyManifest({ finetuneSteps: 200, finetuneEpochs: 12 })), /schedule.finetuneEpochs = 12: gives phase 4 a budget in epochs, and schedule.finetuneSteps \(200\) one in steps; keep one of them/)
      assert.throws(() => validateManifest(tinyManifest({ finetuneEpochs: 2.5 })), /schedule.finetuneEpochs = 2.5: must be a whole number/)
      assert.throws(() => validateManifest(tinyManifest({ finetuneEpochs: 10_001 })), /schedule.finetuneEpochs = 10001/)
      assert.throws(() => validateManifest(tinyManifest({ finetuneEpochs: 0, finetunePull: 10 })), /schedule.finetunePull = 10: .*set schedule.finetuneEpochs/)
    })

    it('reads schedule.finetunePull, writing no field for 0 so that older manifests keep their id, and refuses it without fine-tuning steps', () => {
      const ids = (schedule: Partial<Manifest['schedule']>): string => federationId(validateManifest(tinyManifest(schedule)))
      assert.equal(ids({ finetuneSteps: 200, finetunePull: 0 }), '2e513bf3aa7b5ae9439d71561c71b6f8eaa3cbdabcaa0b61d93483936f8f325d')
      assert.equal(validateManifest(tinyManifest({ finetuneSteps: 200, finetunePull: 10 })).schedule.finetunePull, 10)
      assert.notEqual(ids({ finetuneSteps: 200, finetunePull: 10 }), ids({ finetuneSteps: 200 }))
      assert.throws(() => validateManifest(tinyManifest({ finetunePull: 10 })), /schedule.finetunePull = 10: pulls fine-tuned weights toward the grown ones; set schedule.finetuneEpochs \(e.g. 12\) or schedule.finetuneSteps/)
      assert.throws(() => validateManifest(tinyManifest({ finetuneSteps: 200, finetunePull: -1 })), /schedule.finetunePull = -1/)
    })

    it('reads schedule.finetunePullPerRow beside a pull, writing nothing for false, and bounds a per-row pull by its own limit', () => {
      const ids = (schedule: Partial<Manifest['schedule']>): string => federationId(validateManifest(tinyManifest(schedule)))
      const fields = (schedule: Record<string, unknown>): Partial<Manifest['schedule']> => schedule as Partial<Manifest['schedule']>
      assert.equal(validateManifest(tinyManifest({ finetuneSteps: 200, finetunePull: 1000, finetunePullPerRow: true })).schedule.finetunePullPerRow, true)
      assert.equal(ids(fields({ finetuneSteps: 200, finetunePull: 10, finetunePullPerRow: false })), ids({ finetuneSteps: 200, finetunePull: 10 }))
      assert.notEqual(ids({ finetuneSteps: 200, finetunePull: 10, finetunePullPerRow: true }), ids({ finetuneSteps: 200, finetunePull: 10 }))
      // C/n reaches past the plain pull's limit: 1,000,000 over 345 rows is a lambda of 2,900.
      assert.equal(validateManifest(tinyManifest({ finetuneSteps: 200, finetunePull: 1e6, finetunePullPerRow: true })).schedule.finetunePull, 1e6)
      assert.throws(() => validateManifest(tinyManifest({ finetuneSteps: 200, finetunePull: 1e6 })), /schedule.finetunePull = 1000000/)
      assert.throws(() => validateManifest(tinyManifest({ finetuneSteps: 200, finetunePullPerRow: true })), /schedule.finetunePullPerRow = true: divides schedule.finetunePull by each participant's rows; set schedule.finetunePull/)
      assert.throws(() => validateManifest(tinyManifest(fields({ finetuneSteps: 200, finetunePull: 10, finetunePullPerRow: 'yes' }))), /schedule.finetunePullPerRow/)
    })

    it('validates network presets with the same field-naming errors', () => {
      const preset = { name: 'testnet', bootstrap: ['/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWHxX5zZiWDATLphgzrbUBjcdXBZd94pvEmGMBpdvQUkNY'] }
      assert.deepEqual(validateNetworkPreset(preset), { ...preset, dhtProtocol: '/fedgrow/kad/1.0.0', addresses: 'public' })
      const bad = (change: Record<string, unknown>, message: RegExp): void => {
        assert.throws(() => validateNetworkPreset({ ...preset, ...change }), { name: 'InvalidManifestError', message })
      }
      bad({ bootstrap: [] }, /network preset bootstrap = \[\]: must name at least one multiaddr/)
      bad({ addresses: 'lan' }, /network preset addresses = "lan": must be one of public, any/)
      bad({ federation: 'xyz' }, /network preset federation = "xyz": must be a SHA-256 digest/)
      bad({ colour: 'blue' }, /network preset colour = "blue": is not a known field/)
    })

    it('canonical JSON sorts keys at every depth', () => {
      assert.equal(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } }), '{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}')
    })
  })

  describe('messages', () => {
    it('round-trips every message type', () => {
      const messages: Message[] = [
        announce(),
        { type: 'fetch', federationId: HASH, round: 2, payloadHash: HASH },
        { type: 'state-request', federationId: HASH, withPayload: true },
        { type: 'state', federationId: HASH, round: 0, globalDigest: HASH, payloadBytes: 10, pending: [{ from: 'peer', announce: announce() }] },
        { type: 'error', reason: 'nope' },
        { type: 'view-request', federationId: HASH },
        { type: 'view', federationId: HASH, participants: [{ peer: PEER, round: 3 }] }
      ]
      for (const m of messages) assert.deepEqual(decodeMessage(encodeMessage(m)), m)
    })

    it('rejects a view answer that names something other than a peer id, a bad round, or too many participants', () => {
      const view = (participants: unknown[]): Uint8Array => encodeMessage({ type: 'view', federationId: HASH, participants } as View)
      assert.throws(() => decodeMessage(view([{ peer: 'A', round: 1 }])), { name: 'ProtocolError', message: /^malformed: view\.participants\[0\]\.peer = "A": must be a peer id/ })
      assert.throws(() => decodeMessage(view([{ peer: PEER, round: -1 }])), { name: 'ProtocolError', message: /^malformed: view\.participants\[0\]\.round = -1/ })
      assert.throws(() => decodeMessage(view([{ peer: PEER, round: 1, extra: 1 }])), { name: 'ProtocolError', message: /view\.participants\[0\]\.extra = 1: is not a known field/ })
      assert.throws(() => decodeMessage(view(Array.from({ length: LIMITS.maxViewEntries + 1 }, () => ({ peer: PEER, round: 1 })))), { name: 'ProtocolError', message: /at most 512/ })
    })

    it('rejects malformed bytes with a specific reason', () => {
      const good = encodeMessage(announce())
      const reason = (bytes: Uint8Array): string => { try { decodeMessage(bytes); return 'accepted' } catch (err) { return (err as { reason: string }).reason } }
      assert.equal(reason(new Uint8Array(LIMITS.maxControlBytes + 1)), 'too-large')
      assert.equal(reason(Uint8Array.from([1, 2, 3])), 'bad-envelope')
      assert.equal(reason(Uint8Array.from([...good.subarray(0, 4), 9, ...good.subarray(5)])), 'unknown-version')
      assert.equal(reason(Uint8Array.from([...good.subarray(0, 5), 77, ...good.subarray(6)])), 'unknown-type')
      assert.equal(reason(Uint8Array.from([...good.subarray(0, 6), 0xff])), 'malformed')
      assert.equal(reason(encodeMessage({ ...announce(), round: 0 } as Announce)), 'malformed')
      assert.equal(reason(encodeMessage({ ...announce(), extra: 1 } as unknown as Announce)), 'malformed')
      assert.equal(reason(encodeMessage({ ...announce(), payloadHash: 'XYZ' } as Announce)), 'malformed')
      assert.equal(reason(encodeMessage(announce({ sampleCount: LIMITS.maxSampleCount }))), 'accepted')
      assert.equal(reason(encodeMessage(announce({ sampleCount: LIMITS.maxSampleCount + 1 }))), 'malformed')
    })

    it('rejects a version-1 announcement\'s tensor list and dtype as unknown fields, naming them', () => {
      const tensors = [{ name: 'E', shape: [4, 2] }]
      assert.throws(() => decodeMessage(encodeMessage({ ...announce(), tensors } as unknown as Announce)), { name: 'ProtocolError', message: /^malformed: announce\.tensors = \[\{"name":"E".*is not a known field/ })
      assert.throws(() => decodeMessage(encodeMessage({ ...announce(), dtype: 'float32' } as unknown as Announce)), { name: 'ProtocolError', message: /^malformed: announce\.dtype = "float32": is not a known field/ })
    })

    it('checks announcements against federation, round and payload size', () => {
      const ctx = { federationId: HASH, currentRound: 3, payloadBytes: 1000 }
      const reason = (a: Announce): string => { try { checkAnnouncement(a, ctx); return 'ok' } catch (err) { return (err as { reason: string }).reason } }
      assert.equal(reason(announce()), 'ok')
      assert.equal(reason(announce({ round: 5 })), 'ok')
      assert.equal(reason(announce({ federationId: 'c'.repeat(64) })), 'wrong-federation')
      assert.equal(reason(announce({ round: 2 })), 'stale-round')
      assert.equal(reason(announce({ round: 6 })), 'implausible-round')
      assert.equal(reason(announce({ payloadBytes: 512 * 1024 * 1024 })), 'too-large')
    })

    it('holds a round after the manifest\'s last against the sender, before calling it implausible', () => {
      const ctx = { federationId: HASH, currentRound: 3, payloadBytes: 1000, lastRound: 5 }
      const reason = (a: Announce): string => { try { checkAnnouncement(a, ctx); return 'ok' } catch (err) { return (err as { reason: string }).reason } }
      assert.equal(reason(announce({ round: 5 })), 'ok')
      assert.equal(reason(announce({ round: 6 })), 'beyond-schedule')
      assert.equal(reason(announce({ round: LIMITS.maxRounds })), 'beyond-schedule')
    })

    it('screens content whatever the receiver\'s round (the topic validator\'s check)', () => {
      const ctx = { federationId: HASH, payloadBytes: 1000, lastRound: 5 }
      const reason = (a: Announce): string => { try { checkAnnouncementContent(a, ctx); return 'ok' } catch (err) { return (err as { reason: string }).reason } }
      assert.equal(reason(announce({ round: 1 })), 'ok', 'a late announcement is timing, not content')
      assert.equal(reason(announce({ round: 6 })), 'beyond-schedule')
      assert.equal(reason(announce({ federationId: 'c'.repeat(64) })), 'wrong-federation')
      assert.equal(reason(announce({ payloadBytes: 999 })), 'too-large')
    })
  })

  describe('payload', () => {
    const tensors = { w: { shape: [2], data: Float32Array.from([1, 2]) }, E: { shape: [1, 2], data: Float32Array.from([0.5, -1]) } }
    const spec = [{ name: 'E', shape: [1, 2] }, { name: 'w', shape: [2] }]

    it('encodes in canonical order and decodes only what the manifest expects', () => {
      const decoded = decodePayload(encodePayload(tensors), spec)
      assert.deepEqual(Object.keys(decoded), ['E', 'w'])
      assert.deepEqual(Array.from(decoded.E.data), [0.5, -1])
      assert.throws(() => decodePayload(encodePayload(tensors), [{ name: 'E', shape: [2, 1] }, { name: 'w', shape: [2] }]), { name: 'ProtocolError', message: /wrong-shape/ })
      const nan = { ...tensors, w: { shape: [2], data: Float32Array.from([1, NaN]) } }
      assert.throws(() => decodePayload(encodePayload(nan), spec), { name: 'ProtocolError', message: /not-finite/ })
      const truncated = encodePayload(tensors).subarray(0, 20)
      assert.throws(() => decodePayload(truncated, spec), { name: 'ProtocolError', message: /malformed/ })
    })

    it('bounds values: a magnitude for everything, a distance from the current Global-LiGO for updates', () => {
      const of = (...values: number[]): { E: { shape: number[], data: Float32Array } } => ({ E: { shape: [values.length], data: Float32Array.from(values) } })
      checkValueBounds(of(LIMITS.maxAbsValue, -LIMITS.maxAbsValue))
      assert.throws(() => { checkValueBounds(of(3e38, -3e38)) }, { name: 'ProtocolError', message: /out-of-bounds/ })
      assert.throws(() => { checkValueBounds(of(0, 2 * LIMITS.maxAbsValue)) }, { name: 'ProtocolError', message: /out-of-bounds/ })
      // Reference norm 5 (3, 4): an update may lie up to 10 x 5 = 50 away from it.
      checkValueBounds(of(3 + 30, 4 + 40), of(3, 4))
      assert.throws(() => { checkValueBounds(of(3 + 31, 4 + 40), of(3, 4)) }, { name: 'ProtocolError', message: /out-of-bounds.*more than 10 times/ })
      // A near-zero reference still allows a distance of 10 x minReferenceNorm.
      checkValueBounds(of(LIMITS.maxUpdateDistanceRatio * LIMITS.minReferenceNorm, 0), of(0, 0))
      assert.throws(() => { checkValueBounds(of(LIMITS.maxUpdateDistanceRatio * LIMITS.minReferenceNorm + 0.5, 0), of(0, 0)) }, { name: 'ProtocolError', message: /out-of-bounds/ })
    })

    it('names an update by a hash bound to its federation, round and author', () => {
      const payload = encodePayload(tensors)
      const hash = updateHash(HASH, 3, 'peerA', payload)
      // As protocol/README.md writes it, computed independently.
      assert.equal(hash, createHash('sha256').update(`fedgrow/update/1 ${HASH} 3 peerA\n`).update(payload).digest('hex'))
      assert.notEqual(updateHash(HASH, 3, 'peerB', payload), hash, 'another author')
      assert.notEqual(updateHash(HASH, 4, 'peerA', payload), hash, 'another round')
      assert.notEqual(updateHash('c'.repeat(64), 3, 'peerA', payload), hash, 'another federation')
    })

    it('digests the values alone, independent of key order', () => {
      assert.equal(globalDigest(tensors), globalDigest({ E: tensors.E, w: tensors.w }))
      assert.notEqual(globalDigest(tensors), globalDigest({ ...tensors, w: { shape: [2], data: Float32Array.from([1, 2.0001]) } }))
      // As protocol/README.md defines it, computed independently (Python: sha256(struct.pack('<3f', 0.1, 2, -3)
      // + struct.pack('<2f', 1.5, -0.0))); `b` is a view into a larger array, as a decoded tensor may be.
      const backing = Float32Array.from([9, 1.5, -0, 9])
      const known = { b: { shape: [2], data: backing.subarray(1, 3) }, a: { shape: [3], data: Float32Array.from([0.1, 2, -3]) } }
      assert.equal(globalDigest(known), '6dd1f5cdadf804172bbfb363e56fdb7e59ca1e91f75236ec8bffa757f7774eff')
    })

    it('decodes a payload at any byte offset, as the network hands it over', () => {
      const bytes = encodePayload(tensors)
      const unaligned = new Uint8Array(bytes.length + 3)
      unaligned.set(bytes, 3)
      const decoded = decodePayload(unaligned.subarray(3), spec)
      assert.deepEqual(Array.from(decoded.E.data), [0.5, -1])
      assert.deepEqual(Array.from(decoded.w.data), [1, 2])
      assert.equal(decoded.w.data.byteOffset, 0, 'values are copied out, not left as a view of the payload')
    })
  })
})
