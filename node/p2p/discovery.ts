/**
 * Finding a federation's peers through the DHT. Every peer provides the federation's rendezvous key
 * (the SHA-256 of federationRendezvous(id), as a raw CIDv1) and, while it has fewer than `targetPeers`
 * connections, asks the DHT for the key's providers and dials them. libp2p 3 does not dial what it
 * discovers by itself (docs/performance.md), so this loop does.
 */
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { federationRendezvous } from '../../protocol/constants.js'
import type { Host } from './host.js'
import type { Logger } from '../log.js'
import type { PeerEvent } from '../events.js'
import type { PeerInfo } from '@libp2p/interface'

/** A raw-codec CIDv1: the DHT key for "who takes part in this federation". */
const RAW_CODEC = 0x55
/** How often the loop runs while below target, and how long one provider query may take. */
export const DISCOVERY_INTERVAL_MS = 3_000
const QUERY_TIMEOUT_MS = 10_000
/** Provider records expire (kad-dht: 48 h); re-announcing hourly also repairs a record lost to churn. */
const REPROVIDE_MS = 60 * 60_000
/** Connections a peer keeps to its federation before it stops looking for more. */
export const DEFAULT_TARGET_PEERS = 8

export async function rendezvousKey (federationId: string): Promise<CID> {
  return CID.createV1(RAW_CODEC, await sha256.digest(new TextEncoder().encode(federationRendezvous(federationId))))
}

/** Providers of a federation's key, as the DHT returns them (not ourselves), until `signal` ends. */
export async function * federationProviders (libp2p: Host, federationId: string, signal: AbortSignal): AsyncGenerator<PeerInfo> {
  for await (const provider of libp2p.contentRouting.findProviders(await rendezvousKey(federationId), { signal })) {
    if (!provider.id.equals(libp2p.peerId)) yield provider
  }
}

export interface Discovery {
  stop: () => void
}

export function startDiscovery (libp2p: Host, federationId: string, log: Logger<PeerEvent>, targetPeers = DEFAULT_TARGET_PEERS): Discovery {
  let stopped = false
  let providedAt = 0
  /** Federation peers the DHT has named so far. */
  const found = new Set<string>()
  const tick = async (): Promise<void> => {
    const key = await rendezvousKey(federationId)
    if (Date.now() - providedAt >= REPROVIDE_MS && libp2p.getPeers().length > 0) {
      try {
        await libp2p.contentRouting.provide(key, { signal: AbortSignal.timeout(QUERY_TIMEOUT_MS) })
        providedAt = Date.now()
        log({ event: 'provided', key: key.toString() })
      } catch {
        // The DHT has no peers yet, or the query timed out: the next tick tries again.
      }
    }
    if (libp2p.getPeers().length >= targetPeers) return
    try {
      for await (const provider of federationProviders(libp2p, federationId, AbortSignal.timeout(QUERY_TIMEOUT_MS))) {
        const id = provider.id.toString()
        const connected = libp2p.getConnections(provider.id).length > 0
        if (!found.has(id)) log({ event: 'discovered', peer: id, via: 'dht', connected })
        found.add(id)
        if (stopped || connected) continue
        if (provider.multiaddrs.length > 0) await libp2p.peerStore.merge(provider.id, { multiaddrs: provider.multiaddrs })
        libp2p.dial(provider.id).catch(() => {})
      }
    } catch {
      // A query that found nothing in time; the next tick asks again.
    }
  }
  let running = false
  const timer = setInterval(() => {
    if (running || stopped) return
    running = true
    tick().finally(() => { running = false })
  }, DISCOVERY_INTERVAL_MS)
  timer.unref()
  return {
    stop: () => {
      stopped = true
      clearInterval(timer)
    }
  }
}
