/**
 * Protocol ids, topics, versions and limits. Ids derive from the federation id, so peers of different
 * federations never share a topic or a stream protocol.
 */

/** Version of the message envelope (protocol/messages.ts). */
export const PROTOCOL_VERSION = 1
/** Version of the federation manifest format (protocol/manifest.ts). */
export const MANIFEST_VERSION = 1

/** Gossipsub topic on which a federation's update announcements travel. */
export const updatesTopic = (federationId: string): string => `/fedgrow/${federationId}/updates/1`
/** Stream protocol: fetch one announced Global-LiGO payload from its announcer. */
export const payloadProtocol = (federationId: string): string => `/fedgrow/${federationId}/payload/1.0.0`
/** Stream protocol: ask a peer for the last completed round and its Global-LiGO (catch-up). */
export const stateProtocol = (federationId: string): string => `/fedgrow/${federationId}/state/1.0.0`

/** Stream protocol: ask a peer for a federation's manifest by id (the answer must hash to that id). */
export const MANIFEST_PROTOCOL = '/fedgrow/manifest/1.0.0'
/** The DHT key a federation's peers provide: the SHA-256 of this string, as a raw CIDv1. */
export const federationRendezvous = (federationId: string): string => `/fedgrow/federation/${federationId}`
/** Kademlia protocol of fedgrow networks that do not name their own. */
export const DEFAULT_DHT_PROTOCOL = '/fedgrow/kad/1.0.0'

export const LIMITS = {
  /**
   * Largest control message (announcement, request, state header). Gossipsub caps a whole RPC at 4 MiB
   * and drops larger ones silently (docs/performance.md), so announcements stay tiny and payloads go over
   * a direct stream.
   */
  maxControlBytes: 64 * 1024,
  /** Largest Global-LiGO payload accepted before the manifest's exact size is known. */
  maxPayloadBytes: 512 * 1024 * 1024,
  /** Tensors named in one announcement (a LiGO with 1,000 source layers has ~4,000). */
  maxTensors: 8192,
  /** Highest round number a manifest may schedule. */
  maxRounds: 1_000_000,
  /** Announcements more than this many rounds ahead of ours are implausible and rejected. */
  maxRoundsAhead: 2,
  /** Multiaddrs an announcer may list. */
  maxAddresses: 16,
  /** Peer id strings in a state response's pending list. */
  maxPending: 1024,
  /** Peers whose updates one round holds; announcements from more senders are dropped (over-capacity). */
  maxPeersPerRound: 1024,
  /** Peer ids in a manifest's allowlist. */
  maxAllowlist: 10_000,
  /**
   * Announcements one author may publish: a burst of this many, refilled at announceRefillPerSecond
   * (an honest peer announces once a round and re-announces every 2 s). Excess ones are ignored.
   */
  announceBurst: 10,
  announceRefillPerSecond: 1,
  /** Concurrent payload or state requests one connection may have open, in each direction, per protocol. */
  maxStreamsPerConnection: 16,
  /** Longest time one payload or state request may take, end to end. */
  requestTimeoutMs: 30_000,
  /** Largest manifest (JSON) served or accepted. */
  maxManifestBytes: 64 * 1024
} as const

/** Defaults for manifest fields a user may leave out. */
export const DEFAULTS = {
  /** How long a round waits for every known peer before aggregating what it has. */
  roundTimeoutMs: 60_000,
  /**
   * Updates (own included) a round needs before the deadline may close it. Two, so that peers started a
   * few seconds apart all take part from round 1 instead of the first one training alone: a peer with
   * nobody to hear waits until roundTimeoutMs, then closes the round alone and warns (`alone`).
   */
  quorum: 2
} as const
