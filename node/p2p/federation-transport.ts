/**
 * UpdateTransport over libp2p: announcements on the federation's gossipsub topic, with a topic validator
 * that rejects (and so scores down, and never forwards) what the round engine would hold against the
 * sender: malformed or foreign announcements, and those its screen refuses; payloads, state and
 * announcements told to one peer over direct streams (node/p2p/exchange.ts), the last checked as the
 * topic's are.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { LIMITS, updatesTopic } from '../../protocol/constants.js'
import { decodeMessage, encodeMessage } from '../../protocol/messages.js'
import { ProtocolError } from '../../protocol/errors.js'
import { fetchPayload, requestState, requestStateHeader, requestView, serveExchange, serveTells, tellAnnouncement } from './exchange.js'
import type { LimitedRequest } from './exchange.js'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { PeerId } from '@libp2p/interface'
import { trafficSoFar } from './traffic.js'
import { RateLimiter } from './rate-limit.js'
import type { Announce } from '../../protocol/messages.js'
import type { RejectionReason } from '../../protocol/errors.js'
import type { UpdateTransport } from '../federation/transport.js'
import type { StartedHost } from './host.js'

/** How long a fetch over a relayed-only link waits for a direct one (DCUtR) before using the relay. */
const DIRECT_LINK_WAIT_MS = 3_000

export interface FederationTransportInit {
  host: StartedHost
  federationId: string
  /** Largest payload this federation's Global-LiGO can have, in bytes. */
  maxPayloadBytes: number
  /** Called for every announcement the topic validator rejects or ignores, with the reason. */
  onReject?: (from: string, reason: RejectionReason) => void
  /** Whether an author may publish on the topic (a private federation's allowlist). @default everyone */
  isMember?: (peerId: string) => boolean
  /** Drops a valid incoming announcement when it returns true (simulated message loss). */
  dropAnnouncement?: () => boolean
  /** Called for every payload or state request refused because its peer spent its budget (LIMITS). */
  onLimited?: (peer: string, what: LimitedRequest) => void
}

/**
 * The announced addresses a fetch may dial to reach `author`, whose signature on the announcement proves
 * who chose them: only those whose destination (the /p2p/ component after the last /p2p-circuit, or
 * anywhere when there is no relay) is the author itself or unnamed, so an announcement cannot point our
 * dials at another peer. An address that is not a multiaddr at all is the author's doing (ProtocolError).
 */
export function authorAddresses (author: string, addresses: string[]): Multiaddr[] {
  const parsed = addresses.map((a) => {
    try {
      return multiaddr(a)
    } catch (err) {
      throw new ProtocolError('malformed', `announced address ${JSON.stringify(a.slice(0, 80))} is not a multiaddr: ${(err as Error).message}`)
    }
  })
  return parsed.filter((ma) => {
    const components = ma.getComponents()
    const afterRelay = components.slice(components.findLastIndex(c => c.name === 'p2p-circuit') + 1)
    return (afterRelay.find(c => c.name === 'p2p')?.value ?? author) === author
  })
}

/** The topic validator's verdict on an announcement, with the announcement when it is accepted. */
type Admission = { verdict: TopicValidatorResult.Accept, announce: Announce } | { verdict: TopicValidatorResult.Reject | TopicValidatorResult.Ignore }

export function federationTransport (init: FederationTransportInit): UpdateTransport {
  const { libp2p, registry } = init.host
  const pubsub = libp2p.services.pubsub
  const topic = updatesTopic(init.federationId)
  const penalised = new Set<string>()
  const limiter = new RateLimiter(LIMITS.announceBurst, LIMITS.announceRefillPerSecond)

  /** Decodes an announcement that claims to be ours; ProtocolError says why not. */
  const decodeAnnounce = (data: Uint8Array): Announce => {
    const message = decodeMessage(data)
    if (message.type !== 'announce') throw new ProtocolError('malformed', `${message.type} on the updates topic`)
    if (message.federationId !== init.federationId) throw new ProtocolError('wrong-federation', `announcement for ${message.federationId.slice(0, 12)}…`)
    return message
  }

  /** Lets a dial reach `author` at the addresses it announced, when no connection to it is open. */
  const rememberAddresses = async (author: string, addresses: string[]): Promise<PeerId> => {
    const peer = peerIdFromString(author)
    const dialable = authorAddresses(author, addresses)
    if (libp2p.getConnections(peer).length === 0 && dialable.length > 0) await libp2p.peerStore.merge(peer, { multiaddrs: dialable })
    return peer
  }

  return {
    selfId: libp2p.peerId.toString(),
    addresses: () => libp2p.getMultiaddrs().map(a => a.toString()),
    async join (handlers, onAnnounce, screen) {
      /**
       * What the round engine would hold against `from` before its announcement is delivered (or, on the
       * topic, forwarded): Reject scores the author down, Ignore drops it unscored; an accepted one comes
       * back decoded.
       */
      const admit = (from: string, data: Uint8Array): Admission => {
        if (penalised.has(from)) return { verdict: TopicValidatorResult.Reject }
        if (init.isMember?.(from) === false) {
          init.onReject?.(from, 'not-member')
          return { verdict: TopicValidatorResult.Reject }
        }
        if (!limiter.allow(from)) {
          // Not proof of malice (a burst of re-announcements after a reconnect), so not scored down.
          init.onReject?.(from, 'rate-limited')
          return { verdict: TopicValidatorResult.Ignore }
        }
        let announce: Announce
        try {
          announce = decodeAnnounce(data)
        } catch (err) {
          init.onReject?.(from, err instanceof ProtocolError ? err.reason : 'malformed')
          return { verdict: TopicValidatorResult.Reject }
        }
        // The engine's own checks (size, schedule, replays): it logs and bans what fails.
        return screen(from, announce) ? { verdict: TopicValidatorResult.Accept, announce } : { verdict: TopicValidatorResult.Reject }
      }
      pubsub.topicValidators.set(topic, (peer, msg) => admit(msg.type === 'signed' ? msg.from.toString() : peer.toString(), msg.data).verdict)
      pubsub.addEventListener('message', (evt) => {
        const msg = evt.detail
        if (msg.topic !== topic || msg.type !== 'signed') return
        if (init.dropAnnouncement?.() === true) return
        onAnnounce(msg.from.toString(), decodeAnnounce(msg.data), false)
      })
      await serveExchange(libp2p, init.federationId, init.maxPayloadBytes, handlers, init.onLimited)
      await serveTells(libp2p, init.federationId, (from, data) => {
        const admission = admit(from, data)
        if (admission.verdict !== TopicValidatorResult.Accept || init.dropAnnouncement?.() === true) return
        onAnnounce(from, admission.announce, true)
      })
      pubsub.subscribe(topic)
    },
    async announce (announce) {
      await pubsub.publish(topic, encodeMessage(announce))
    },
    async tell (peer, announce, addresses) {
      await rememberAddresses(peer, addresses)
      await tellAnnouncement(libp2p, peer, init.federationId, encodeMessage(announce))
    },
    async fetch (from, request, addresses, payloadBytes, signal) {
      const peer = await rememberAddresses(from, addresses)
      // Payloads prefer direct links: over a relayed one only, give a hole punch a moment to land first.
      const until = Date.now() + DIRECT_LINK_WAIT_MS
      while (libp2p.getConnections(peer).length > 0 && libp2p.getConnections(peer).every(c => c.limits !== undefined) && Date.now() < until) {
        await new Promise(resolve => setTimeout(resolve, 100))
      }
      return await fetchPayload(libp2p, from, request, payloadBytes, signal)
    },
    requestState: async (peer, payloadBytes, signal) => await requestState(libp2p, peer, init.federationId, payloadBytes, signal),
    requestStateHeader: async (peer, signal) => await requestStateHeader(libp2p, peer, init.federationId, signal),
    requestView: async (peer, signal) => await requestView(libp2p, peer, init.federationId, signal),
    participants: () => pubsub.getSubscribers(topic).map(p => p.toString()),
    penalise: (from) => { penalised.add(from) },
    bytes: async () => await trafficSoFar(registry)
  }
}
