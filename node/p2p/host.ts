/**
 * The libp2p host of a participant: TCP, Noise, Yamux, identify, ping, bootstrap and gossipsub
 * (StrictSign), with byte counters from @libp2p/prometheus-metrics in a registry of its own.
 * libp2p 3 neither auto-dials discovered peers nor re-dials bootstrap peers (docs/performance.md): this host
 * dials discovered peers while it holds fewer than DISCOVERY_DIAL_TARGET, and re-dials its bootstrap list
 * while it is not connected to it.
 */
import '../polyfill.js'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@libp2p/noise'
import { yamux } from '@libp2p/yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { bootstrap } from '@libp2p/bootstrap'
import { gossipsub } from '@libp2p/gossipsub'
import { createTopicScoreParams } from '@libp2p/gossipsub/score'
import { prometheusMetrics } from '@libp2p/prometheus-metrics'
import { preSharedKey } from '@libp2p/pnet'
import { kadDHT, passthroughMapper, removePrivateAddressesMapper } from '@libp2p/kad-dht'
import type { KadDHT } from '@libp2p/kad-dht'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { autoNAT } from '@libp2p/autonat'
import { dcutr } from '@libp2p/dcutr'
import { multiaddr } from '@multiformats/multiaddr'
import { Registry } from 'prom-client'
import { NetworkError } from '../errors.js'
import type { AbortOptions, Libp2p, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import type { GossipSub } from '@libp2p/gossipsub'

/**
 * Weight of gossipsub's P4 (invalid message deliveries) on scored topics: with the default graylist
 * threshold of -80, two rejected messages (-20 * 2^2) get a peer ignored.
 */
export const INVALID_MESSAGE_WEIGHT = -20
/** Per decay interval (1 s), how much of a peer's invalid-message count is kept. */
const INVALID_MESSAGE_DECAY = 0.9

/** Re-dial period for bootstrap peers we are not connected to. */
export const BOOTSTRAP_REDIAL_MS = 2_000
/** How often connections to peers that `denyPeer` now refuses are closed (a partition starting). */
const DENY_SWEEP_MS = 500
/**
 * New inbound connections accepted per second from one IP address. Many peers on one machine dial each
 * other at once, which libp2p's default of 5 refuses; on a public network, 16 leaves room for peers behind
 * one NAT while one address can hold at most 16 x INBOUND_UPGRADE_TIMEOUT_MS / 1000 = 80 of the
 * MAX_PENDING_INBOUND_CONNECTIONS handshake slots.
 */
const INBOUND_CONNECTIONS_PER_SECOND = { local: 1_000, public: 16 } as const
/**
 * Inbound connections that may be mid-handshake at once. libp2p's default of 10 let 10 idle TCP sockets
 * that never start a handshake refuse every new peer until they timed out (measured: 10 of 12 dials
 * failed); a pending socket costs a few KiB, so 256 is cheap.
 */
export const MAX_PENDING_INBOUND_CONNECTIONS = 256
/**
 * How long an inbound connection may take to finish its Noise handshake and muxer negotiation before it
 * is closed. Those are a few round trips (well under a second across continents, longer through a
 * relay); libp2p's 10 s default let an idle socket hold its slot twice as long.
 */
export const INBOUND_UPGRADE_TIMEOUT_MS = 5_000
/**
 * Discovered peers are dialled only while a host is connected to fewer peers than this. Dialling every
 * one made a federation a full mesh, since every announcement names its sender and so "discovers" it:
 * n(n-1)/2 connections, 32,640 at 256 peers, which with two sockets each are more open files than one
 * process of a simulation may hold (20,000 here). Gossipsub needs only its mesh (6 to 12 of the topic's
 * connected peers) and a peer fetches an update by dialling its sender, so a federation stays
 * connected with far fewer links, provided every peer gets a mesh: see BOOTSTRAP_PEER_SCORE.
 */
export const DISCOVERY_DIAL_TARGET = 32

/**
 * Gossipsub's application-specific score given to this host's bootstrap peers (times gossipsub's default
 * weight of 10: 20, past its default acceptPXThreshold of 10), so that their peer exchange is followed.
 * A bootstrap peer is a hub: its mesh holds at most 12 of the peers that joined through it and it prunes
 * the rest, and a pruned peer connected to no one else has an empty mesh and hears a message only if the
 * hub's gossip happens to name it (64 peers bootstrapped from one, no other links: 51 empty meshes, a
 * message reached 68% of the peers on average and 2% at worst; docs/performance.md).
 * With peer exchange a pruned peer dials PX_PEERS of the hub's other topic peers, as the gossipsub v1.1
 * spec intends; only peers the user chose to bootstrap from are trusted with it, as the spec advises,
 * since peer exchange lets the sender pick whom we dial.
 */
export const BOOTSTRAP_PEER_SCORE = 2
/**
 * Peers named in a gossipsub PRUNE's peer exchange. Gossipsub's default of 16 made every pruned peer dial
 * 16 peers at once: at 256 peers in one simulation process that dial storm timed out Noise handshakes and
 * left half the peers unconnected. Six, gossipsub's target mesh degree, is enough to fill a mesh.
 */
export const PX_PEERS = 6

export interface HostInit {
  privateKey: PrivateKey
  /** Multiaddrs to listen on, e.g. /ip4/127.0.0.1/tcp/0. */
  listen: string[]
  /** Multiaddrs to announce instead of the listen addresses (e.g. a public address). @default [] */
  announce?: string[]
  /** Peers to start from (full multiaddrs with /p2p/ peer ids). @default [] */
  bootstrap?: string[]
  /**
   * Treats peers on one IP as one: gossipsub's colocation penalty, and the public limit on new inbound
   * connections per address (INBOUND_CONNECTIONS_PER_SECOND). Off for local simulations, where every
   * peer shares 127.0.0.1. @default true
   */
  ipColocationPenalty?: boolean
  /** Largest gossipsub RPC accepted; must be equal on every peer. @default 4 MiB (gossipsub's) */
  maxGossipBytes?: number
  /**
   * Topics whose invalid messages count against the sender's gossipsub score: a message the topic
   * validator rejects costs INVALID_MESSAGE_WEIGHT times the square of the sender's invalid count.
   * @default []
   */
  scoredTopics?: string[]
  /**
   * Sees every chunk this host sends on every protocol stream, in plaintext (inside Noise), with the
   * protocol id: the seam for wire audits.
   */
  wireTap?: (protocol: string, bytes: Uint8Array) => void
  /**
   * A libp2p private-network key (the swarm.key file's bytes): connections are encrypted with it before
   * anything else, so peers without it cannot even complete a handshake.
   */
  preSharedKey?: Uint8Array
  /**
   * Peers to refuse, checked on every dial and every connection in either direction, and every
   * DENY_SWEEP_MS against open connections (allowlists, simulated partitions).
   */
  denyPeer?: (peerId: string) => boolean
  /** Discovered peers are dialled while this host is connected to fewer peers than this. @default DISCOVERY_DIAL_TARGET */
  discoveryDialTarget?: number
  /** Where libp2p's metrics go (e.g. one served on --metrics). @default a registry of this host's own */
  registry?: Registry
  /**
   * Join a Kademlia DHT (network presets, testnets): `protocol` is its protocol id; `addresses: 'any'`
   * keeps private and loopback addresses in DHT records (a LAN, or a testnet on one machine).
   */
  dht?: { protocol: string, addresses: 'public' | 'any' }
  /**
   * Take part in NAT traversal: AutoNAT, circuit relay v2 as a client (dialling peers through relays;
   * with `reachableViaRelay`, also taking a reservation so that peers behind a NAT can be dialled) and
   * DCUtR hole punching; with `relayServer`, also relay for others.
   */
  nat?: { relayServer: boolean, reachableViaRelay: boolean }
}

/**
 * Limits of the relay server role: a Global-LiGO payload must fit through a relayed connection, which
 * libp2p's defaults (128 KiB, 2 minutes) would cut off.
 */
export const RELAY_LIMITS = { dataBytes: 1n << 30n, durationMs: 60 * 60_000 }

type MetricsFactory = ReturnType<typeof prometheusMetrics>

/** Wraps libp2p's metrics so every protocol stream's outgoing bytes also reach `tap`. */
function tapped (factory: MetricsFactory, tap: (protocol: string, bytes: Uint8Array) => void): MetricsFactory {
  return (components) => {
    const metrics = factory(components)
    const track = metrics.trackProtocolStream.bind(metrics)
    metrics.trackProtocolStream = (stream) => {
      track(stream)
      const send = stream.send.bind(stream)
      stream.send = (data) => {
        tap(stream.protocol ?? 'unknown', data instanceof Uint8Array ? data : data.subarray())
        return send(data)
      }
    }
    return metrics
  }
}

export type Host = Libp2p<{ pubsub: GossipSub, identify: ReturnType<ReturnType<typeof identify>>, ping: ReturnType<ReturnType<typeof ping>>, dht?: KadDHT }>

/**
 * A stream to `peer` for `protocol` on a connection already held, a direct one first, else one dialled.
 * libp2p's dialProtocol dials again whenever a peer's only connections are limited (relayed), so that a
 * direct connection can replace them (js-libp2p #2187); it then aborts the new relayed connection as a
 * duplicate of the one held. Over the NAT test's relay every request of ours opened, and lost, a
 * relayed connection that way, and some failed with it ("Remote closed connection during opening").
 * Relayed links are still upgraded: hole punching (DCUtR) runs on every relayed connection.
 */
export async function openStream (libp2p: Host, peer: PeerId, protocol: string, options: AbortOptions & { runOnLimitedConnection?: boolean }): Promise<Stream> {
  const open = libp2p.getConnections(peer).filter(c => c.status === 'open')
  const held = open.find(c => c.limits === undefined) ?? open[0]
  if (held !== undefined) {
    try {
      return await held.newStream(protocol, options)
    } catch (err) {
      // A connection that closed under us is not the peer's answer: dial instead.
      if (held.status === 'open') throw err
    }
  }
  return await libp2p.dialProtocol(peer, protocol, options)
}

export interface StartedHost {
  libp2p: Host
  /** This host's own byte counters (prom-client registry), read by trafficSoFar() (traffic.ts). */
  registry: Registry
  stop: () => Promise<void>
}

export async function startHost (init: HostInit): Promise<StartedHost> {
  const registry = init.registry ?? new Registry()
  const bootstrapList = init.bootstrap ?? []
  // Each bootstrap address with the peer id it names (its /p2p/ part), if any, parsed once.
  const bootstrapTargets = bootstrapList.map(addr => {
    const ma = multiaddr(addr)
    return { ma, peer: ma.getComponents().find(c => c.name === 'p2p')?.value }
  })
  const bootstrapPeers = new Set(bootstrapTargets.map(t => t.peer).filter(peer => peer !== undefined))
  const deny = init.denyPeer
  const libp2p = await createLibp2p({
    privateKey: init.privateKey,
    // '/p2p-circuit' asks a relay for a reservation, so a peer behind a NAT is reachable through it.
    addresses: { listen: init.nat?.reachableViaRelay === true ? [...init.listen, '/p2p-circuit'] : init.listen, announce: init.announce ?? [] },
    transports: init.nat === undefined ? [tcp()] : [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: bootstrapList.length > 0 ? [bootstrap({ list: bootstrapList })] : [],
    connectionManager: {
      inboundConnectionThreshold: INBOUND_CONNECTIONS_PER_SECOND[init.ipColocationPenalty === false ? 'local' : 'public'],
      maxIncomingPendingConnections: MAX_PENDING_INBOUND_CONNECTIONS,
      inboundUpgradeTimeout: INBOUND_UPGRADE_TIMEOUT_MS
    },
    ...(init.preSharedKey !== undefined ? { connectionProtector: preSharedKey({ psk: init.preSharedKey }) } : {}),
    ...(deny !== undefined
      ? {
          connectionGater: {
            denyDialPeer: (peer: PeerId) => deny(peer.toString()),
            denyInboundEncryptedConnection: (peer: PeerId) => deny(peer.toString()),
            denyOutboundEncryptedConnection: (peer: PeerId) => deny(peer.toString())
          }
        }
      : {}),
    metrics: init.wireTap === undefined ? prometheusMetrics({ registry }) : tapped(prometheusMetrics({ registry }), init.wireTap),
    services: {
      identify: identify(),
      ping: ping(),
      ...(init.nat !== undefined ? { autoNAT: autoNAT(), dcutr: dcutr() } : {}),
      ...(init.nat?.relayServer === true ? { relay: circuitRelayServer({ reservations: { defaultDataLimit: RELAY_LIMITS.dataBytes, defaultDurationLimit: RELAY_LIMITS.durationMs } }) } : {}),
      ...(init.dht !== undefined ? { dht: kadDHT({ protocol: init.dht.protocol, clientMode: false, peerInfoMapper: init.dht.addresses === 'any' ? passthroughMapper : removePrivateAddressesMapper }) } : {}),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictSign',
        // Behind a NAT, a relayed connection may be a peer's only link to the federation.
        runOnLimitedConnection: true,
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        ...(init.maxGossipBytes !== undefined ? { maxInboundDataLength: init.maxGossipBytes } : {}),
        doPX: true,
        prunePeers: PX_PEERS,
        scoreParams: {
          appSpecificScore: (peer) => bootstrapPeers.has(peer) ? BOOTSTRAP_PEER_SCORE : 0,
          ...(init.ipColocationPenalty === false ? { IPColocationFactorWeight: 0 } : {}),
          topics: Object.fromEntries((init.scoredTopics ?? []).map(topic => [topic, createTopicScoreParams({
            topicWeight: 1,
            // Only invalid messages count: a quiet but honest peer must not lose score.
            timeInMeshWeight: 0,
            firstMessageDeliveriesWeight: 0,
            meshMessageDeliveriesWeight: 0,
            meshFailurePenaltyWeight: 0,
            invalidMessageDeliveriesWeight: INVALID_MESSAGE_WEIGHT,
            invalidMessageDeliveriesDecay: INVALID_MESSAGE_DECAY
          })]))
        }
      })
    }
  }).catch((err: Error) => {
    throw new NetworkError(`cannot start listening on ${init.listen.join(', ')}: ${err.message.split('\n')[0]}; pick another port or address with --listen`)
  }) as unknown as Host

  const dialTarget = init.discoveryDialTarget ?? DISCOVERY_DIAL_TARGET
  // Dials under way count toward the target: peers are discovered in bursts, before any dial completes.
  let discoveryDials = 0
  libp2p.addEventListener('peer:discovery', (evt) => {
    if (libp2p.getConnections(evt.detail.id).length > 0 || libp2p.getPeers().length + discoveryDials >= dialTarget) return
    discoveryDials++
    // A discovered peer that cannot be dialled is one of many: the federation reaches us through others.
    libp2p.dial(evt.detail.id).catch(() => {}).finally(() => { discoveryDials-- })
  })
  const redial = setInterval(() => {
    for (const { ma, peer } of bootstrapTargets) {
      if (peer !== undefined && peer === libp2p.peerId.toString()) continue
      if (peer === undefined || !libp2p.getPeers().some(p => p.toString() === peer)) libp2p.dial(ma).catch(() => {})
    }
  }, BOOTSTRAP_REDIAL_MS)
  redial.unref()
  const sweep = deny === undefined
    ? undefined
    : setInterval(() => {
      for (const conn of libp2p.getConnections()) if (deny(conn.remotePeer.toString())) conn.close().catch(() => {})
    }, DENY_SWEEP_MS)
  sweep?.unref()
  return {
    libp2p,
    registry,
    stop: async () => {
      clearInterval(redial)
      clearInterval(sweep)
      await libp2p.stop()
    }
  }
}
