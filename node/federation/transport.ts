/**
 * What the round engine needs from the network, and nothing more. node/p2p/federation-transport.ts
 * implements it over libp2p; the engine never imports libp2p.
 */
import type { Announce, Fetch, State, View } from '../../protocol/messages.js'
import type { RejectionReason } from '../../protocol/errors.js'
import type { ExchangeHandlers } from '../p2p/exchange.js'

/** Bytes in each direction. */
export interface ByteCounts {
  sent: number
  received: number
}

/** Bytes on every connection, and the same split by protocol family (node/p2p/traffic.ts names them). */
export interface Traffic extends ByteCounts {
  byProtocol: Record<string, ByteCounts>
}

/** What was sent and received between two readings of one transport's counters, per family too. */
export function trafficSince (before: Traffic, after: Traffic): Traffic {
  const byProtocol: Record<string, ByteCounts> = {}
  for (const [family, now] of Object.entries(after.byProtocol)) {
    const then = before.byProtocol[family] ?? { sent: 0, received: 0 }
    byProtocol[family] = { sent: now.sent - then.sent, received: now.received - then.received }
  }
  return { sent: after.sent - before.sent, received: after.received - before.received, byProtocol }
}

/** Why an update was dropped: a protocol rejection, or a local one (too late, or unreachable). */
export type DropReason = RejectionReason | 'late' | 'unreachable'

export interface UpdateTransport {
  /** Our own peer id. */
  readonly selfId: string
  /** Our multiaddrs, as announced to others. */
  addresses: () => string[]
  /**
   * Starts receiving announcements (subscribes to the federation's topic) and serving requests. `screen`
   * is asked before an announcement is delivered or forwarded to other peers: false rejects it.
   * `onAnnounce`'s `told` is true for an announcement its author told us alone (`tell`), false for one
   * from the topic.
   */
  join: (handlers: ExchangeHandlers, onAnnounce: (from: string, announce: Announce, told: boolean) => void, screen: (from: string, announce: Announce) => boolean) => Promise<void>
  /** Publishes one of our announcements on the federation's topic: every participant hears it. */
  announce: (announce: Announce) => Promise<void>
  /**
   * Delivers one of our announcements to `peer` alone, over a direct stream; `join`'s screen checks it
   * there. `addresses`: the ones `peer` last announced, dialled when no connection to it is open.
   */
  tell: (peer: string, announce: Announce, addresses: string[]) => Promise<void>
  /** Fetches an announced payload from `from` (dialling its announced addresses if needed). */
  fetch: (from: string, request: Fetch, addresses: string[], payloadBytes: number, signal?: AbortSignal) => Promise<Uint8Array>
  /** Last completed round and Global-LiGO of `peer`. */
  requestState: (peer: string, payloadBytes: number, signal?: AbortSignal) => Promise<{ header: State, payload: Uint8Array }>
  /** Last completed round of `peer` and its Global-LiGO's digest, without the Global-LiGO. */
  requestStateHeader: (peer: string, signal?: AbortSignal) => Promise<State>
  /** Whom `peer` has heard from lately, each with the last round it did (view completion). */
  requestView: (peer: string, signal?: AbortSignal) => Promise<View>
  /** Peers we see on the federation's topic. */
  participants: () => string[]
  /** Reports a bad update from `from`, so its gossipsub score drops. */
  penalise: (from: string, reason: DropReason) => void
  /** Bytes sent and received on every connection so far, in total and by protocol family. */
  bytes: () => Promise<Traffic>
}
