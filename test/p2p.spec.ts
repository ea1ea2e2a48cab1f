import assert from 'node:assert/strict'
import { mkdtempSync, statSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { INBOUND_UPGRADE_TIMEOUT_MS, MAX_PENDING_INBOUND_CONNECTIONS, startHost } from '../node/p2p/host.js'
import { federationTransport } from '../node/p2p/federation-transport.js'
import { loadOrCreateIdentity } from '../node/p2p/identity.js'
import { CONNECTION_FAMILY, protocolFamily, trafficSoFar } from '../node/p2p/traffic.js'
import { LIMITS, announceProtocol, payloadProtocol, stateProtocol, updatesTopic, viewProtocol } from '../protocol/constants.js'
import { fetchPayload, requestView, serveExchange, tellAnnouncement } from '../node/p2p/exchange.js'
import { lpStream } from '@libp2p/utils'
import { encodeMessage } from '../protocol/messages.js'
import type { StartedHost } from '../node/p2p/host.js'
import type { RejectionReason } from '../protocol/errors.js'
import type { Announce, Fetch } from '../protocol/messages.js'

const FED = 'f'.repeat(64)

/** Four times libp2p's default limit on inbound connections mid-handshake (10), which these used to fill. */
const IDLE_SOCKETS = 40

/** A TCP connection to `port` on 127.0.0.1 that never sends a byte; resolves once connected. */
async function idleSocket (port: number): Promise<{ closed: Promise<number>, destroy: () => void }> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const closed = new Promise<number>(resolve => { socket.once('close', () => { resolve(Date.now()) }) })
    // A refused socket is reset by the listener: that is the outcome these tests look for.
    socket.on('error', () => {})
    socket.once('connect', () => { resolve({ closed, destroy: () => { socket.destroy() } }) })
    setTimeout(() => { reject(new Error('an idle socket did not connect within 2 s')) }, 2_000).unref()
  })
}

const tcpPort = (host: StartedHost): number => Number(/\/tcp\/(\d+)/.exec(host.libp2p.getMultiaddrs()[0].toString())![1])

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

  it(`admits a new peer while ${IDLE_SOCKETS} idle sockets that never start a handshake are open, and closes them`, async () => {
    assert.ok(IDLE_SOCKETS < MAX_PENDING_INBOUND_CONNECTIONS)
    const honest = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false })
    hosts.push(honest)
    const openedAt = Date.now()
    const idle = await Promise.all(Array.from({ length: IDLE_SOCKETS }, async () => await idleSocket(tcpPort(honest))))
    await new Promise(resolve => setTimeout(resolve, 300))
    const newcomer = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false })
    hosts.push(newcomer)
    const connection = await newcomer.libp2p.dial(honest.libp2p.getMultiaddrs()[0], { signal: AbortSignal.timeout(5_000) })
    assert.equal(connection.status, 'open')
    await connection.newStream('/ipfs/ping/1.0.0', { signal: AbortSignal.timeout(2_000) }).then(async s => { await s.close() })
    const closedAfterMs = (await Promise.all(idle.map(async s => await s.closed))).map(at => at - openedAt)
    assert.ok(Math.max(...closedAfterMs) < INBOUND_UPGRADE_TIMEOUT_MS + 3_000, `idle sockets were closed after ${Math.max(...closedAfterMs)} ms, not after the ${INBOUND_UPGRADE_TIMEOUT_MS} ms upgrade timeout`)
  })

  it('refuses more than 16 new connections a second from one address on a public network', async () => {
    const honest = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'] })
    hosts.push(honest)
    const idle = await Promise.all(Array.from({ length: 24 }, async () => await idleSocket(tcpPort(honest))))
    let refused = 0
    for (const s of idle) void s.closed.then(() => { refused++ })
    // Well before the upgrade timeout closes the admitted ones.
    await new Promise(resolve => setTimeout(resolve, INBOUND_UPGRADE_TIMEOUT_MS / 4))
    assert.ok(refused >= 24 - 16, `only ${refused} of 24 sockets opened at once were refused at once`)
    for (const s of idle) s.destroy()
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
    await transport.join({ payload: () => null, served: () => {}, state: () => { throw new Error('unused') }, view: () => [] }, (from) => { received.push(from) }, () => true)
    hostile.libp2p.services.pubsub.subscribe(topic)
    const until = Date.now() + 20_000
    while (honest.libp2p.services.pubsub.getSubscribers(topic).length === 0 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 100))
    const foreign = encodeMessage({ type: 'state-request', federationId: FED, withPayload: true })
    const wrongFederation = encodeMessage({ type: 'announce', federationId: 'e'.repeat(64), round: 1, sampleCount: 1, payloadHash: FED, payloadBytes: 10, addresses: [] })
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

  it('takes an announcement told over a direct stream as its dialler\'s, checked as the topic\'s are', async () => {
    const [a, b] = await Promise.all([0, 1].map(async () => await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false })))
    hosts.push(a, b)
    await a.libp2p.peerStore.merge(b.libp2p.peerId, { multiaddrs: b.libp2p.getMultiaddrs() })
    const rejected: RejectionReason[] = []
    const received: Array<[string, number, boolean]> = []
    const teller = federationTransport({ host: a, federationId: FED, maxPayloadBytes: 1024 })
    const listener = federationTransport({ host: b, federationId: FED, maxPayloadBytes: 1024, onReject: (_from, reason) => { rejected.push(reason) } })
    // The screen stands for the engine's checks: it refuses a sample count of 2.
    await listener.join({ payload: () => null, served: () => {}, state: () => { throw new Error('unused') }, view: () => [] }, (from, announce, told) => { received.push([from, announce.sampleCount, told]) }, (_from, announce) => announce.sampleCount !== 2)
    const announce = (sampleCount: number): Announce => ({ type: 'announce', federationId: FED, round: 1, sampleCount, payloadHash: FED, payloadBytes: 10, addresses: [] })
    const bPeer = b.libp2p.peerId.toString()
    await teller.tell(bPeer, announce(1), [])
    await teller.tell(bPeer, announce(2), [])
    await tellAnnouncement(a.libp2p, bPeer, FED, Uint8Array.from([1, 2, 3]))
    await tellAnnouncement(a.libp2p, bPeer, FED, encodeMessage({ ...announce(3), federationId: 'e'.repeat(64) }))
    const until = Date.now() + 10_000
    while (received.length + rejected.length < 3 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 50))
    assert.deepEqual(received, [[a.libp2p.peerId.toString(), 1, true]], 'only the valid one reaches the engine, as the dialler\'s, told')
    assert.deepEqual(rejected, ['bad-envelope', 'wrong-federation'])
  })

  it('sends its requests to a peer it reaches only through a relay over the relayed connection it holds, not a new one each', async () => {
    const relay = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false, nat: { relayServer: true, reachableViaRelay: false } })
    hosts.push(relay)
    const relayAddress = relay.libp2p.getMultiaddrs()[0].toString()
    // Neither listens on an address of its own: b is reachable only through its reservation on the relay.
    const [a, b] = await Promise.all([0, 1].map(async () => await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: [], bootstrap: [relayAddress], ipColocationPenalty: false, nat: { relayServer: false, reachableViaRelay: true } })))
    hosts.push(a, b)
    const until = Date.now() + 20_000
    while (!b.libp2p.getMultiaddrs().some(ma => ma.toString().includes('/p2p-circuit')) && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 100))
    const relayedToB: string[] = []
    a.libp2p.addEventListener('connection:open', (evt) => { if (evt.detail.remotePeer.equals(b.libp2p.peerId)) relayedToB.push(evt.detail.limits === undefined ? 'direct' : 'relayed') })
    await a.libp2p.dial(b.libp2p.getMultiaddrs().find(ma => ma.toString().includes('/p2p-circuit'))!)
    const received: number[] = []
    const listener = federationTransport({ host: b, federationId: FED, maxPayloadBytes: 1024 })
    await listener.join({ payload: () => null, served: () => {}, state: () => { throw new Error('unused') }, view: () => [] }, (_from, announce) => { received.push(announce.sampleCount) }, () => true)
    const teller = federationTransport({ host: a, federationId: FED, maxPayloadBytes: 1024 })
    const tells = 5
    for (let i = 1; i <= tells; i++) await teller.tell(b.libp2p.peerId.toString(), { type: 'announce', federationId: FED, round: 1, sampleCount: i, payloadHash: FED, payloadBytes: 10, addresses: [] }, [])
    while (received.length < tells && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 50))
    assert.deepEqual(received, [1, 2, 3, 4, 5])
    assert.deepEqual(relayedToB, ['relayed'], `one relayed connection for ${tells} requests`)
  })

  it('reports a payload served once its answer\'s stream has closed, and not for a payload it does not hold', async () => {
    const [server, fetcher] = await Promise.all([0, 1].map(async () => await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false })))
    hosts.push(server, fetcher)
    await fetcher.libp2p.peerStore.merge(server.libp2p.peerId, { multiaddrs: server.libp2p.getMultiaddrs() })
    const held = new Uint8Array(64 * 1024).fill(7)
    const served: Array<[string, string]> = []
    await serveExchange(server.libp2p, FED, held.length, {
      payload: (request) => request.payloadHash === 'a'.repeat(64) ? held : null,
      served: (request, from) => { served.push([request.payloadHash.slice(0, 1), from]) },
      state: () => { throw new Error('unused') },
      view: () => []
    })
    const fetch = (hash: string): Fetch => ({ type: 'fetch', federationId: FED, round: 1, payloadHash: hash })
    const fetched = await fetchPayload(fetcher.libp2p, server.libp2p.peerId.toString(), fetch('a'.repeat(64)), held.length)
    assert.equal(fetched.length, held.length)
    await assert.rejects(fetchPayload(fetcher.libp2p, server.libp2p.peerId.toString(), fetch('b'.repeat(64)), held.length), /no payload/)
    const until = Date.now() + 5_000
    while (served.length === 0 && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 20))
    assert.deepEqual(served, [['a', fetcher.libp2p.peerId.toString()]])
  })

  it('answers whom it has heard from, within its budget, and holds a malformed view answer against the answerer', async () => {
    const [server, asker, liar] = await Promise.all([0, 1, 2].map(async () => await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false })))
    hosts.push(server, asker, liar)
    for (const host of [server, liar]) await asker.libp2p.peerStore.merge(host.libp2p.peerId, { multiaddrs: host.libp2p.getMultiaddrs() })
    const heard = [{ peer: liar.libp2p.peerId.toString(), round: 4 }]
    const limited: string[] = []
    await serveExchange(server.libp2p, FED, 0, { payload: () => null, served: () => {}, state: () => { throw new Error('unused') }, view: () => heard }, (_peer, what) => { limited.push(what) })
    const serverId = server.libp2p.peerId.toString()
    for (let i = 0; i < LIMITS.viewRequestBurst; i++) assert.deepEqual(await requestView(asker.libp2p, serverId, FED), { type: 'view', federationId: FED, participants: heard })
    await assert.rejects(requestView(asker.libp2p, serverId, FED), /rate-limited: too many view requests/)
    assert.deepEqual(limited, ['view'])
    await liar.libp2p.handle(viewProtocol(FED), async (stream) => {
      const lp = lpStream(stream)
      await lp.read()
      await lp.write(encodeMessage({ type: 'view', federationId: FED, participants: [{ peer: 'nobody', round: 1 }] }))
      await stream.close()
    })
    await assert.rejects(requestView(asker.libp2p, liar.libp2p.peerId.toString(), FED), { name: 'ProtocolError', message: /^malformed: view\.participants\[0\]\.peer = "nobody"/ })
  })

  it('dials the peers it discovers until it is connected to its dial target, and no more', async () => {
    const start = async (init: { discoveryDialTarget?: number } = {}): Promise<StartedHost> => {
      const host = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false, ...init })
      hosts.push(host)
      return host
    }
    const others = await Promise.all([0, 1, 2, 3].map(async () => await start()))
    /** How many peers `host` is connected to once it has discovered all of `others` at once and its dials settled. */
    const connectedAfterDiscovering = async (host: StartedHost): Promise<number> => {
      await Promise.all(others.map(async o => { await host.libp2p.peerStore.merge(o.libp2p.peerId, { multiaddrs: o.libp2p.getMultiaddrs() }) }))
      const until = Date.now() + 5_000
      while (host.libp2p.getPeers().length < others.length && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 50))
      return host.libp2p.getPeers().length
    }
    assert.equal(await connectedAfterDiscovering(await start({ discoveryDialTarget: 2 })), 2)
    assert.equal(await connectedAfterDiscovering(await start()), others.length, 'under the default target every discovered peer is dialled')
  })

  it(`gives every peer that joined through one bootstrap peer a gossipsub mesh, by the bootstrap peer's peer exchange`, async () => {
    // Past gossipsub's 12-peer mesh ceiling, so the bootstrap peer must prune some of those joining it.
    const peerCount = 20
    const topic = updatesTopic(FED)
    const start = async (bootstrap: string[]): Promise<StartedHost> => {
      const host = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false, bootstrap })
      hosts.push(host)
      host.libp2p.services.pubsub.subscribe(topic)
      return host
    }
    const hub = await start([])
    const bootstrap = [hub.libp2p.getMultiaddrs()[0].toString()]
    const joiners = await Promise.all(Array.from({ length: peerCount - 1 }, async () => await start(bootstrap)))
    // The mesh is not on gossipsub's exported interface, only on its implementation.
    const meshOf = (host: StartedHost): string[] => (host.libp2p.services.pubsub as unknown as { getMeshPeers: (topic: string) => string[] }).getMeshPeers(topic)
    const meshless = (): StartedHost[] => joiners.filter(h => meshOf(h).length === 0)
    // Gossipsub prunes and grafts on its 1 s heartbeat; a few heartbeats settle it.
    const until = Date.now() + 30_000
    while ((meshless().length > 0 || hub.libp2p.getPeers().length < peerCount - 1) && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 250))
    assert.equal(hub.libp2p.getPeers().length, peerCount - 1, 'every peer reached the bootstrap peer')
    assert.ok(meshOf(hub).length <= 12, 'the bootstrap peer pruned its mesh')
    assert.deepEqual(meshless().map(h => h.libp2p.peerId.toString()), [], 'peers with an empty mesh')
  })

  it('splits its bytes by protocol family, and the families add up to every byte on its connections', async () => {
    assert.deepEqual([payloadProtocol(FED), stateProtocol(FED), announceProtocol(FED), viewProtocol(FED), '/meshsub/1.2.0', '/ipfs/id/push/1.0.0', '/ipfs/id/1.0.0', '/ipfs/ping/1.0.0', '/fedgrow/kad/1.0.0', '/x/1'].map(protocolFamily),
      ['payload', 'state', 'announce', 'view', 'gossipsub', 'identify-push', 'identify', 'ping', 'kad-dht', '/x/1'])
    const a = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false })
    hosts.push(a)
    const b = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false })
    hosts.push(b)
    const pings = 5
    for (let i = 0; i < pings; i++) await a.libp2p.services.ping.ping(b.libp2p.getMultiaddrs()[0])
    const traffic = await trafficSoFar(a.registry)
    const families = Object.values(traffic.byProtocol)
    assert.equal(families.reduce((s, f) => s + f.sent, 0), traffic.sent)
    assert.equal(families.reduce((s, f) => s + f.received, 0), traffic.received)
    // A ping is 32 bytes each way on a stream of its own.
    assert.ok(traffic.byProtocol.ping.sent >= 32 * pings && traffic.byProtocol.ping.received >= 32 * pings, JSON.stringify(traffic))
    assert.ok(traffic.byProtocol[CONNECTION_FAMILY].sent > 0, 'the Noise handshake is counted as the connection\'s own')
  })
})
