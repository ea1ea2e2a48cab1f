/**
 * Bytes on the wire, in total and per protocol family, from libp2p's transfer counters
 * (@libp2p/prometheus-metrics, label `libp2p_data_transfer_bytes_total{protocol}`). libp2p counts every
 * byte of every connection under "global" (trackMultiaddrConnection: what crosses the socket, encrypted)
 * and each protocol stream's own bytes under its protocol id (trackProtocolStream, after the stream's
 * protocol was negotiated). What no stream counts is the connections' own cost: the Noise handshake and
 * its per-frame tags, Yamux frame headers and window updates, and multistream-select negotiation.
 */
import type { Registry } from 'prom-client'
import type { ByteCounts, Traffic } from '../federation/transport.js'

/**
 * The family of the bytes no protocol stream counts (global minus every stream): Noise, Yamux and
 * multistream-select framing.
 */
export const CONNECTION_FAMILY = 'connection'

/**
 * Protocol families by libp2p protocol id, first match wins. fedgrow's ids embed the federation id
 * (protocol/constants.ts), and libp2p's carry versions: one family each, so that tables stay narrow and
 * runs of different federations compare. An id that matches none is its own family, so nothing is hidden.
 */
const FAMILIES: ReadonlyArray<readonly [string, RegExp]> = [
  ['payload', /^\/fedgrow\/[^/]+\/payload\//],
  ['state', /^\/fedgrow\/[^/]+\/state\//],
  ['announce', /^\/fedgrow\/[^/]+\/announce\//],
  ['view', /^\/fedgrow\/[^/]+\/view\//],
  ['manifest', /^\/fedgrow\/manifest\//],
  ['gossipsub', /^\/(meshsub|floodsub)\//],
  // Pushed to every connected peer whenever our addresses or protocols change; the plain id runs once a connection.
  ['identify-push', /^\/ipfs\/id\/push\//],
  ['identify', /^\/ipfs\/id\//],
  ['ping', /^\/ipfs\/ping\//],
  ['kad-dht', /\/kad\//],
  ['circuit-relay', /^\/libp2p\/circuit\//],
  ['autonat', /^\/libp2p\/autonat\//],
  ['dcutr', /^\/libp2p\/dcutr/]
]

/** The family a libp2p protocol id belongs to (FAMILIES), or the id itself. */
export function protocolFamily (protocol: string): string {
  return FAMILIES.find(([, pattern]) => pattern.test(protocol))?.[0] ?? protocol
}

/** libp2p's label for every connection's bytes. */
const GLOBAL_LABEL = 'global'

/** Bytes sent and received so far by the host whose libp2p metrics fill `registry`, in total and by family. */
export async function trafficSoFar (registry: Registry): Promise<Traffic> {
  const metric = registry.getSingleMetric('libp2p_data_transfer_bytes_total')
  const values = metric === undefined ? [] : (await metric.get()).values
  const total: ByteCounts = { sent: 0, received: 0 }
  const byProtocol: Record<string, ByteCounts> = {}
  for (const { labels, value } of values) {
    // Labels read "PROTOCOL sent" or "PROTOCOL received".
    const match = /^(.*) (sent|received)$/.exec(String(labels.protocol))
    if (match === null) continue
    const [, protocol, direction] = match as unknown as [string, string, 'sent' | 'received']
    if (protocol === GLOBAL_LABEL) {
      total[direction] += value
      continue
    }
    const family = protocolFamily(protocol)
    byProtocol[family] ??= { sent: 0, received: 0 }
    byProtocol[family][direction] += value
  }
  const streams = Object.values(byProtocol)
  byProtocol[CONNECTION_FAMILY] = {
    sent: total.sent - streams.reduce((s, c) => s + c.sent, 0),
    received: total.received - streams.reduce((s, c) => s + c.received, 0)
  }
  return { ...total, byProtocol }
}
