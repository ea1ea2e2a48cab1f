/**
 * Manifests travel too: a peer that knows only a federation id asks the federation's providers for the
 * manifest over MANIFEST_PROTOCOL and uses it only if it hashes to that id. Request: one length-prefixed
 * frame holding the 64-character id. Answer: one frame holding the manifest's JSON, or an empty frame.
 */
import { lpStream } from '@libp2p/utils'
import { LIMITS, MANIFEST_PROTOCOL } from '../../protocol/constants.js'
import { federationId, parseManifest } from '../../protocol/manifest.js'
import { NetworkError } from '../errors.js'
import { federationProviders } from './discovery.js'
import { openStream, startHost } from './host.js'
import { RateLimiter } from './rate-limit.js'
import type { LimitedRequest } from './exchange.js'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { NetworkPreset } from '../../protocol/network.js'
import type { PeerId } from '@libp2p/interface'
import type { Manifest } from '../../protocol/manifest.js'
import type { Host } from './host.js'
import type { Logger } from '../log.js'
import type { PeerEvent } from '../events.js'

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const STREAM_OPTIONS = { maxDataLength: LIMITS.maxManifestBytes }

/**
 * Answers manifest requests for the federations in `manifests` (by id). A peer beyond its budget
 * (LIMITS.manifestRequest*) gets the empty answer, as if we had none, and `onLimited` hears of it.
 */
export async function serveManifests (libp2p: Host, manifests: Map<string, Manifest>, onLimited?: (peer: string, what: LimitedRequest) => void): Promise<void> {
  const budget = new RateLimiter(LIMITS.manifestRequestBurst, LIMITS.manifestRequestsPerSecond)
  await libp2p.handle(MANIFEST_PROTOCOL, async (stream, connection) => {
    const lp = lpStream(stream, STREAM_OPTIONS)
    const peer = connection.remotePeer.toString()
    try {
      const id = decoder.decode((await lp.read({ signal: AbortSignal.timeout(LIMITS.requestTimeoutMs) })).subarray())
      const allowed = budget.allow(peer)
      if (!allowed) onLimited?.(peer, 'manifest')
      const manifest = allowed ? manifests.get(id) : undefined
      await lp.write(manifest === undefined ? new Uint8Array(0) : encoder.encode(JSON.stringify(manifest)))
      await stream.close()
    } catch (err) {
      stream.abort(err as Error)
    }
  }, { maxInboundStreams: LIMITS.maxStreamsPerConnection, runOnLimitedConnection: true })
}

/** Asks one peer for a manifest; null when it has none, or sends one that is not this federation's. */
async function askFor (libp2p: Host, peer: PeerId, id: string, signal: AbortSignal): Promise<Manifest | null> {
  const stream = await openStream(libp2p, peer, MANIFEST_PROTOCOL, { signal, runOnLimitedConnection: true })
  const lp = lpStream(stream, STREAM_OPTIONS)
  try {
    await lp.write(encoder.encode(id), { signal })
    const answer = (await lp.read({ signal })).subarray()
    await stream.close()
    if (answer.length === 0) return null
    const manifest = parseManifest(decoder.decode(answer))
    return federationId(manifest) === id ? manifest : null
  } catch (err) {
    stream.abort(err as Error)
    return null
  }
}

/** Finds the federation's peers through the DHT and fetches its manifest from the first that has it. */
export async function fetchManifest (libp2p: Host, id: string, log: Logger<PeerEvent>, timeoutMs: number): Promise<Manifest> {
  const until = Date.now() + timeoutMs
  let asked = 0
  while (Date.now() < until) {
    const signal = AbortSignal.timeout(Math.max(1, Math.min(10_000, until - Date.now())))
    try {
      for await (const provider of federationProviders(libp2p, id, signal)) {
        asked++
        if (provider.multiaddrs.length > 0) await libp2p.peerStore.merge(provider.id, { multiaddrs: provider.multiaddrs })
        const manifest = await askFor(libp2p, provider.id, id, signal).catch(() => null)
        if (manifest !== null) {
          log({ event: 'manifest-fetched', federation: id, from: provider.id.toString() })
          return manifest
        }
      }
    } catch {
      // No providers yet (the DHT is still filling, or the federation's peers have not announced).
    }
    await new Promise(resolve => setTimeout(resolve, 1_000))
  }
  throw new NetworkError(`found no peer serving the manifest of federation ${id.slice(0, 16)}… in ${Math.round(timeoutMs / 1000)} s (${asked} providers asked); check the id and the network (--network), or pass the manifest file with --federation`)
}

/**
 * The manifest of federation `id`, found through a network's DHT by a short-lived host of its own (the
 * peer's real host needs the manifest before it starts).
 */
export async function lookupManifest (preset: Pick<NetworkPreset, 'bootstrap' | 'dhtProtocol' | 'addresses'>, id: string, log: Logger<PeerEvent>, timeoutMs: number): Promise<Manifest> {
  const host = await startHost({
    privateKey: await generateKeyPair('Ed25519'),
    listen: [],
    bootstrap: preset.bootstrap,
    ipColocationPenalty: preset.addresses !== 'any',
    dht: { protocol: preset.dhtProtocol, addresses: preset.addresses },
    // The federation's peers may be reachable only through a relay.
    nat: { relayServer: false, reachableViaRelay: false }
  })
  try {
    return await fetchManifest(host.libp2p, id, log, timeoutMs)
  } finally {
    await host.stop()
  }
}
