/**
 * Federations of real libp2p peers on 127.0.0.1, in this process (no mocks of libp2p): the round engine,
 * gossip, direct payload streams, catch-up, and an audit of every byte each peer sends.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import * as tf from '../node/tf.js'
import { runPeer } from '../node/peer.js'
import { validateVitConfig } from '../node/model/config.js'
import { initParams } from '../node/model/vit.js'
import { toTensorMap } from '../node/storage/files.js'
import { loadModel } from '../node/model/model-file.js'
import { splitTrainTest } from '../node/data/dataset.js'
import { federationId, validateManifest } from '../protocol/manifest.js'
import { announceProtocol, payloadProtocol, stateProtocol, viewProtocol } from '../protocol/constants.js'
import { toyDataset, useBackend } from './helpers.js'
import { tinyManifest } from './fixtures.js'
import type { PeerResult } from '../node/peer.js'
import type { LogEvent } from '../node/log.js'
import type { Contribution } from '../node/federation/aggregate.js'
import type { ImageDataset, TrainTest } from '../node/data/dataset.js'
import type { NamedTensors } from '../node/model/vit.js'
import type { Manifest } from '../protocol/manifest.js'

interface TestPeer {
  events: LogEvent[]
  sent: Map<string, Buffer[]>
  contributions: Map<number, Contribution[]>
  small: NamedTensors
  data: TrainTest<ImageDataset>
  stateDir: string
  done: Promise<PeerResult>
}

/** Small models of different depth and width, as in a real federation. */
const SMALL_SIZES = [{ dim: 8, layers: 1 }, { dim: 12, layers: 2 }, { dim: 8, layers: 2 }, { dim: 12, layers: 1 }]

async function startPeer (manifest: Manifest, index: number, bootstrap: string[]): Promise<TestPeer> {
  const small = validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 4, heads: 2, mlpRatio: 1, ...SMALL_SIZES[index] })
  const peer: Omit<TestPeer, 'done'> = {
    events: [],
    sent: new Map(),
    contributions: new Map(),
    small: initParams(small, index),
    data: splitTrainTest(toyDataset(96, 100 + index), 0.25, index),
    stateDir: mkdtempSync(join(tmpdir(), `fedgrow-peer${index}-`))
  }
  const done = runPeer({
    manifest,
    small: { config: small, params: toTensorMap(peer.small) },
    data: peer.data,
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap,
    stateDir: peer.stateDir,
    localNetwork: true,
    log: (e) => { peer.events.push(e) },
    wireTap: (protocol, bytes) => { peer.sent.set(protocol, [...(peer.sent.get(protocol) ?? []), Buffer.from(bytes)]) },
    onContribution: (round, c) => { peer.contributions.set(round, [...(peer.contributions.get(round) ?? []), c]) }
  })
  return { ...peer, done }
}

async function waitFor (what: string, test: () => boolean, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!test()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

const listening = (p: TestPeer): string | undefined => (p.events.find(e => e.event === 'listening')?.multiaddrs as string[] | undefined)?.[0]
const rounds = (p: TestPeer): LogEvent[] => p.events.filter(e => e.event === 'round')

/** Independent check: sample-weighted mean in float64, sorted by sender, rounded to float32, digested. */
function offlineDigest (contributions: Contribution[]): string {
  const sorted = [...contributions].sort((a, b) => (a.from < b.from ? -1 : 1))
  const total = sorted.reduce((s, c) => s + c.sampleCount, 0)
  const hash = createHash('sha256')
  for (const name of Object.keys(sorted[0].tensors).sort()) {
    const mean = new Float64Array(sorted[0].tensors[name].data.length)
    for (const c of sorted) c.tensors[name].data.forEach((v, i) => { mean[i] += (c.sampleCount / total) * v })
    hash.update(Buffer.from(Float32Array.from(mean).buffer))
  }
  return hash.digest('hex')
}

/** 64-byte windows of float32 values that a tensor holds (non-constant, so they cannot match by chance). */
function windows (data: Float32Array, count: number): Buffer[] {
  const out: Buffer[] = []
  for (let k = 0; k < count; k++) {
    const start = Math.floor((k + 0.5) * (data.length - 16) / count)
    const w = data.subarray(start, start + 16)
    if (w.length === 16 && new Set(w).size > 4) out.push(Buffer.from(Float32Array.from(w).buffer))
  }
  return out
}

describe('federation over libp2p', function () {
  this.timeout(240_000)
  // Quorum 4 with three founders: round 1 closes at its deadline with three updates, and round 2 waits
  // for the peer that starts after round 1, so the late join happens mid-federation on any machine.
  // With private heads, so that the audit also finds no byte of the classifier each peer trains and keeps.
  const manifest = validateManifest({ ...tinyManifest({ rounds: 3, quorum: 4, roundTimeoutMs: 8000 }), ligo: { init: 'ligo', seed: 7, privateHead: true } })
  const peers: TestPeer[] = []
  let results: PeerResult[] = []

  before(async () => {
    await useBackend('wasm')
    peers.push(await startPeer(manifest, 0, []))
    await waitFor('the first peer to listen', () => listening(peers[0]) !== undefined)
    const bootstrap = [listening(peers[0])!]
    peers.push(await startPeer(manifest, 1, bootstrap), await startPeer(manifest, 2, bootstrap))
    await waitFor('round 1 on every peer', () => peers.every(p => rounds(p).length >= 1))
    peers.push(await startPeer(manifest, 3, bootstrap))
    results = await Promise.all(peers.map(async p => await p.done))
  })

  it('runs every round on every peer, bootstrapped from one address', () => {
    for (const r of results) assert.equal(r.completedRound, 3)
    for (const p of peers.slice(0, 3)) assert.deepEqual(rounds(p).map(e => e.round), [1, 2, 3])
    assert.equal(rounds(peers[0])[0].peersHeard, 3, 'round 1 aggregates the three founding peers')
    assert.equal(rounds(peers[0])[2].peersHeard, 4, 'round 3 aggregates all four')
  })

  it('ends with one Global-LiGO digest that matches the weighted mean computed offline', () => {
    const digests = new Set(results.map(r => r.globalDigest))
    assert.equal(digests.size, 1, `digests differ: ${[...digests].join(', ')}`)
    const last = rounds(peers[0]).at(-1)!
    const contributions = peers[0].contributions.get(3)!
    assert.equal(contributions.length, last.peersHeard)
    assert.equal(offlineDigest(contributions), results[0].globalDigest)
  })

  it('lets a peer that starts after round 1 catch up and join', () => {
    const late = peers[3]
    const caughtUp = late.events.find(e => e.event === 'caught-up')
    assert.ok(caughtUp !== undefined && Number(caughtUp.round) >= 1, 'the late peer adopts a completed round')
    assert.ok(rounds(late).some(e => e.caughtUp === false && Number(e.peersHeard) >= 2), 'the late peer aggregates a round with the others')
    assert.ok(peers[0].contributions.get(3)!.some(c => c.from === results[3].peerId), 'the others aggregate its update in the last round')
  })

  it('sends nothing but Global-LiGO payloads and small control messages', () => {
    const fedgrowProtocols = [payloadProtocol, stateProtocol, announceProtocol, viewProtocol].map(protocol => protocol(federationId(manifest)))
    const libp2pProtocols = [/^\/meshsub\//, /^\/ipfs\/id\//, /^\/ipfs\/ping\//]
    for (const [i, p] of peers.entries()) {
      for (const protocol of p.sent.keys()) assert.ok(fedgrowProtocols.includes(protocol) || libp2pProtocols.some(r => r.test(protocol)), `peer ${i} spoke ${protocol}`)
      const wire = Buffer.concat([...p.sent.values()].flat())
      assert.ok(wire.length > 0)
      const intermediate = loadModel(join(p.stateDir, 'intermediate.fgm')).params
      const target = loadModel(join(p.stateDir, 'target.fgm')).params
      const secrets: Array<[string, Buffer]> = []
      for (const [kind, model] of [['small', p.small], ['intermediate', intermediate], ['target', target]] as const) {
        for (const [name, t] of Object.entries(model)) if (t.size >= 16) for (const w of windows(t.dataSync() as Float32Array, 2)) secrets.push([`${kind} ${name}`, w])
      }
      for (let row = 0; row < p.data.train.count; row += 7) {
        for (const w of windows(p.data.train.images.subarray(row * 64, (row + 1) * 64), 1)) secrets.push([`training image ${row}`, w])
      }
      assert.ok(secrets.length > 50, 'the audit must check many private windows')
      // Positive control: the same search does find what a peer is meant to send: its own updates that
      // others fetched (a late or slow peer's update may miss a round that closed without it).
      const ownId = results[i].peerId
      const fetchedByOthers = (round: number): boolean => peers.some((q, j) => j !== i && (q.contributions.get(round) ?? []).some(c => c.from === ownId))
      const ownUpdates = [...p.contributions.entries()].flatMap(([round, cs]) => fetchedByOthers(round) ? cs.filter(c => c.from === ownId) : [])
      assert.ok(ownUpdates.length > 0)
      for (const c of ownUpdates) for (const w of windows(c.tensors.E.data, 2)) assert.notEqual(wire.indexOf(w), -1, `peer ${i}'s own Global-LiGO update is not on its wire`)
      for (const [what, w] of secrets) assert.equal(wire.indexOf(w), -1, `peer ${i} sent bytes of its ${what}`)
      const payloadBytes = (p.sent.get(payloadProtocol(federationId(manifest))) ?? []).reduce((s, b) => s + b.length, 0)
      assert.ok(payloadBytes > 0 || i === 3, `peer ${i} served its updates over the payload protocol`)
      tf.dispose([...Object.values(intermediate), ...Object.values(target)])
    }
  })

  after(() => {
    for (const p of peers) tf.dispose(Object.values(p.small))
  })
})
