/**
 * Private federations: members hold the pre-shared key and are on the allowlist; outsiders (no key, a
 * wrong key, or the right key but not on the list) can neither connect to a member nor get an update
 * into its rounds.
 */
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { runPeer } from '../node/peer.js'
import { startHost } from '../node/p2p/host.js'
import { createSwarmKey, swarmKeyFingerprint } from '../node/p2p/private-network.js'
import { validateVitConfig } from '../node/model/config.js'
import { splitTrainTest } from '../node/data/dataset.js'
import { federationId, isMember, validateManifest } from '../protocol/manifest.js'
import { encodeMessage } from '../protocol/messages.js'
import { payloadProtocol, updatesTopic } from '../protocol/constants.js'
import { modelData, toyDataset, useBackend } from './helpers.js'
import { tinyManifest } from './fixtures.js'
import type { PrivateKey } from '@libp2p/interface'
import type { LogEvent } from '../node/log.js'
import type { Manifest } from '../protocol/manifest.js'
import type { PeerInit } from '../node/peer.js'

const small = validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 4, heads: 2, mlpRatio: 1, dim: 8, layers: 1 })

function memberInit (manifest: Manifest, key: PrivateKey, psk: Uint8Array | undefined, index: number, bootstrap: string[], events: LogEvent[]): PeerInit {
  return {
    manifest,
    small: modelData(small, index),
    data: splitTrainTest(toyDataset(64, 200 + index), 0.25, index),
    privateKey: key,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap,
    stateDir: mkdtempSync(join(tmpdir(), `fedgrow-private${index}-`)),
    localNetwork: true,
    lingerMs: 2_000,
    ...(psk !== undefined ? { preSharedKey: psk } : {}),
    log: (e) => { events.push(e) }
  }
}

async function refused (dial: Promise<unknown>): Promise<boolean> {
  try {
    await dial
    return false
  } catch {
    return true
  }
}

describe('private federations', function () {
  this.timeout(120_000)
  before(async () => { await useBackend('wasm') })

  it('lets only key holders on the allowlist connect, publish and contribute', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgrow-psk-'))
    const psk = createSwarmKey(join(dir, 'swarm.key'))
    const wrongPsk = createSwarmKey(join(dir, 'other.key'))
    const [a, b, control, outsider] = await Promise.all([0, 1, 2, 3].map(async () => await generateKeyPair('Ed25519')))
    const manifest = validateManifest({
      ...tinyManifest({ rounds: 2, quorum: 2, roundTimeoutMs: 20_000 }),
      access: { preSharedKey: swarmKeyFingerprint(psk), allowlist: [a, b, control].map(k => peerIdFromPrivateKey(k).toString()) }
    })
    const events: LogEvent[][] = [[], []]
    const first = runPeer(memberInit(manifest, a, psk, 0, [], events[0]))
    const until = Date.now() + 30_000
    // Once it has joined, the member serves the federation's protocols (before, it is still preparing).
    while (events[0].find(e => e.event === 'joined') === undefined && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 50))
    const addrA = (events[0].find(e => e.event === 'listening')!.multiaddrs as string[])[0]
    const second = runPeer(memberInit(manifest, b, psk, 1, [addrA], events[1]))

    // Outsiders: no key, a wrong key, and the right key on an identity the allowlist does not name.
    const topic = updatesTopic(federationId(manifest))
    const noKey = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    const wrongKey = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], preSharedKey: wrongPsk })
    const notListed = await startHost({ privateKey: outsider, listen: ['/ip4/127.0.0.1/tcp/0'], preSharedKey: psk })
    // Positive control: a listed identity with the key does connect (it never joins the topic).
    const listed = await startHost({ privateKey: control, listen: ['/ip4/127.0.0.1/tcp/0'], preSharedKey: psk })
    try {
      assert.ok(!(await refused(listed.libp2p.dialProtocol(multiaddr(addrA), payloadProtocol(federationId(manifest))))), 'a listed key holder opens a stream')
      await listed.stop()
      for (const [name, host] of [['no key', noKey], ['wrong key', wrongKey], ['not on the allowlist', notListed]] as const) {
        // The dialer may finish its half of a handshake before the member hangs up, so what must fail is
        // opening a stream: every request an outsider could make needs one.
        assert.ok(await refused(host.libp2p.dialProtocol(multiaddr(addrA), payloadProtocol(federationId(manifest)))), `an outsider with ${name} cannot open a stream`)
        host.libp2p.services.pubsub.subscribe(topic)
        const forged = { type: 'announce' as const, federationId: federationId(manifest), round: 1, sampleCount: 1_000_000, payloadHash: 'ab'.repeat(32), payloadBytes: 4, addresses: [] }
        await host.libp2p.services.pubsub.publish(topic, encodeMessage(forged)).catch(() => {})
      }
      const [ra, rb] = await Promise.all([first, second])
      assert.equal(ra.completedRound, 2)
      assert.equal(ra.globalDigest, rb.globalDigest)
      for (const peerEvents of events) {
        const rounds = peerEvents.filter(e => e.event === 'round')
        assert.ok(rounds.length === 2 && rounds.every(r => r.peersHeard === 2 || r.caughtUp === true), 'each round holds exactly the two members')
      }
      for (const host of [noKey, wrongKey, notListed]) assert.equal(host.libp2p.getPeers().length, 0, 'no outsider ever held a connection')
    } finally {
      await Promise.all([listed, noKey, wrongKey, notListed].map(async h => { await h.stop() }))
    }
  })

  it('refuses to start a member without the key, with the wrong key, or off the allowlist', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedgrow-psk-'))
    const psk = createSwarmKey(join(dir, 'swarm.key'))
    const member = await generateKeyPair('Ed25519')
    const manifest = validateManifest({ ...tinyManifest(), access: { preSharedKey: swarmKeyFingerprint(psk), allowlist: [peerIdFromPrivateKey(member).toString()] } })
    await assert.rejects(runPeer(memberInit(manifest, member, undefined, 0, [], [])), /requires a pre-shared key/)
    await assert.rejects(runPeer(memberInit(manifest, member, createSwarmKey(join(dir, 'b.key')), 0, [], [])), /the manifest expects/)
    await assert.rejects(runPeer(memberInit(manifest, await generateKeyPair('Ed25519'), psk, 0, [], [])), /not on this federation's allowlist/)
  })

  it('validates access rules in manifests and orders the allowlist canonically', () => {
    const ids = ['12D3KooWFZczSkdRH4k8VAdddcLPHRnhgyb8s7xNWv6XQmnNNK45', '12D3KooWD6NYWorFEZ2NbBHELUchBr8CPDEx8Dg4fTMoTGznE7Za']
    const one = validateManifest({ ...tinyManifest(), access: { allowlist: ids } })
    const other = validateManifest({ ...tinyManifest(), access: { allowlist: [...ids].reverse() } })
    assert.equal(federationId(one), federationId(other))
    assert.ok(isMember(one, ids[0]))
    assert.ok(!isMember(one, '12D3KooWLsqpug9Ssc2pr3Bi5TbRPmmStU9exBKoavSMJTPjhewJ'))
    assert.ok(isMember(validateManifest(tinyManifest()), 'anyone'))
    assert.throws(() => validateManifest({ ...tinyManifest(), access: { allowlist: ['not a peer id'] } }), /access.allowlist.*not a libp2p peer id/)
    assert.throws(() => validateManifest({ ...tinyManifest(), access: { preSharedKey: 'secret' } }), /access.preSharedKey/)
    assert.throws(() => validateManifest({ ...tinyManifest(), access: { key: 'x' } }), /access.key.*not a known field/)
  })
})
