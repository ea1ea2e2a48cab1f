import assert from 'node:assert/strict'
import { mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { startHost } from '../node/p2p/host.js'
import { federationTransport } from '../node/p2p/federation-transport.js'
import { loadOrCreateIdentity } from '../node/p2p/identity.js'
import { updatesTopic } from '../protocol/constants.js'
import { encodeMessage } from '../protocol/messages.js'
import type { StartedHost } from '../node/p2p/host.js'
import type { RejectionReason } from '../protocol/errors.js'

const FED = 'f'.repeat(64)

describe('libp2p host', function () {
  this.timeout(60_000)
  const hosts: StartedHost[] = []
  afterEach(async () => { await Promise.all(hosts.splice(0).map(async h => { await h.stop() })) })

  it('keeps its identity across restarts in a private key file', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'fedgrow-id-')), 'identity.key')
    const a = await loadOrCreateIdentity(path)
    const b = await loadOrCreateIdentity(path)
    assert.equal(a.publicKey.toString(), b.publicKey.toString())
    assert.equal(statSync(path).mode & 0o777, 0o600)
  })

  it('rejects invalid announcements and scores their sender below the graylist threshold', async () => {
    const topic = updatesTopic(FED)
    const honest = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false, scoredTopics: [topic] })
    hosts.push(honest)
    const hostile = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [honest.libp2p.getMultiaddrs()[0].toString()], ipColocationPenalty: false, scoredTopics: [topic] })
    hosts.push(hostile)
    const rejected: RejectionReason[] = []
    const received: string[] = []
    const transport = federationTransport({ host: honest, federationId: FED, maxPayloadBytes: 1024, onReject: (_from, reason) => { rejected.push(reason) } })
    await transport.join({ payload: () => null, state: () => { throw new Error('unused') } }, (from) => { received.push(from) }, () => true)
    hostile.libp2p.services.pubsub.subscribe(topic)
    const until = Date.now() + 20_000
    while (honest.libp2p.services.pubsub.getSubscribers(topic).length === 0 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 100))
    const foreign = encodeMessage({ type: 'state-request', federationId: FED })
    const wrongFederation = encodeMessage({ type: 'announce', federationId: 'e'.repeat(64), round: 1, sampleCount: 1, payloadHash: FED, payloadBytes: 10, dtype: 'float32', tensors: [{ name: 'E', shape: [1] }], addresses: [] })
    for (const data of [Uint8Array.from([1, 2, 3]), foreign, wrongFederation]) {
      await hostile.libp2p.services.pubsub.publish(topic, data)
      await new Promise(resolve => setTimeout(resolve, 300))
    }
    while (rejected.length < 3 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 100))
    assert.deepEqual(rejected, ['bad-envelope', 'malformed', 'wrong-federation'])
    assert.deepEqual(received, [], 'nothing invalid reaches the engine')
    // Scores are cached for about a second; wait for a fresh one.
    await new Promise(resolve => setTimeout(resolve, 1500))
    const score = (honest.libp2p.services.pubsub as unknown as { getScore: (peer: string) => number }).getScore(hostile.libp2p.peerId.toString())
    assert.ok(score <= -80, `the hostile peer's score is ${score}, not below the graylist threshold`)
  })
})
