/**
 * Protocol ids, topics, versions and limits. Ids derive from the federation id, so peers of different
 * federations never share a topic or a stream protocol.
 */

/** Version of the message envelope (protocol/messages.ts). */
export const PROTOCOL_VERSION = 2
/** Version of the federation manifest format (protocol/manifest.ts). */
export const MANIFEST_VERSION = 1

/**
 * Gossipsub topic on which a federation's update announcements travel. It names the protocol version, so
 * peers of another version neither receive nor forward announcements they would reject.
 */
export const updatesTopic = (federationId: string): string => `/fedgrow/${federationId}/updates/${PROTOCOL_VERSION}`
/**
 * Stream protocol: fetch one announced Global-LiGO payload from its announcer. Still 1.0.0: protocol
 * version 2 changed no field of what it carries (a fetch, then the payload).
 */
export const payloadProtocol = (federationId: string): string => `/fedgrow/${federationId}/payload/1.0.0`
/**
 * Stream protocol: ask a peer for the last completed round and, if asked for, its Global-LiGO (catch-up).
 * 2.0.0 since protocol version 2: a state answer's `pending` entries embed announcements, whose fields
 * changed. 3.0.0 since a state request says whether it wants the payload (`withPayload`): a catch-up asks
 * several peers for their round and digest, then fetches only the state it adopts.
 */
export const stateProtocol = (federationId: string): string => `/fedgrow/${federationId}/state/3.0.0`

/**
 * Stream protocol: deliver one of the dialler's own announcements to one peer, which treats it as if it
 * had come from the topic. A re-announcement for a partner that has not fetched an update goes here: on
 * the topic it would reach every peer of the federation, each forwarding it along its mesh, for the sake
 * of one. Its author is the dialler, whom the connection's Noise handshake authenticates. Added beside
 * version 2 (no message changed); a peer without it makes the dialler fall back to the topic.
 */
export const announceProtocol = (federationId: string): string => `/fedgrow/${federationId}/announce/1.0.0`

/**
 * Stream protocol: ask a peer whom it has heard from lately (view completion). A round must know of the
 * quorum's worth of participants before it closes; with group averaging a peer hears of those outside its
 * group only from their rare presence announcements, so whole groups sat at the hard deadline knowing 46
 * to 63 of 64 simulated peers. A peer short of its quorum asks its partners instead. Added beside version
 * 2 (message types 6 and 7); a peer without it is simply not counted.
 */
export const viewProtocol = (federationId: string): string => `/fedgrow/${federationId}/view/1.0.0`

/** Stream protocol: ask a peer for a federation's manifest by id (the answer must hash to that id). */
export const MANIFEST_PROTOCOL = '/fedgrow/manifest/1.0.0'
/** The DHT key a federation's peers provide: the SHA-256 of this string, as a raw CIDv1. */
export const federationRendezvous = (federationId: string): string => `/fedgrow/federation/${federationId}`
/** Kademlia protocol of fedgrow networks that do not name their own. */
export const DEFAULT_DHT_PROTOCOL = '/fedgrow/kad/1.0.0'

/**
 * The largest model shapes a manifest or a model file may name, checked before anything is allocated
 * (an 8192-wide, 128-layer target is ~100 GB of float32: beyond any participant, but no absurd request).
 */
export const MODEL_LIMITS = {
  maxImageSize: 1024,
  maxChannels: 16,
  maxClasses: 100_000,
  maxDim: 8192,
  maxLayers: 128,
  maxHeads: 256,
  maxMlpRatio: 16,
  /** Text models' token table rows: id 0 pads, id 1 is reserved, so 3 leaves one bucket for words. */
  minVocabSize: 3,
  maxVocabSize: 1 << 22,
  /** Tokens per text (attention costs seqLen^2 per layer). */
  maxSeqLen: 4096
} as const

/** How a text federation's peers turn text into token ids (node/model/tokenizer.ts states each rule). */
export const TOKENIZER_KINDS = ['hashed-words'] as const

export const LIMITS = {
  /**
   * Largest control message (announcement, request, state header). Gossipsub caps a whole RPC at 4 MiB
   * and drops larger ones silently (docs/performance.md), so announcements stay tiny and payloads go over
   * a direct stream.
   */
  maxControlBytes: 64 * 1024,
  /** Largest Global-LiGO payload accepted before the manifest's exact size is known. */
  maxPayloadBytes: 512 * 1024 * 1024,
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
  /**
   * Participants one view answer names, the most lately heard first: at about 75 bytes each, 512 stay
   * within maxControlBytes.
   */
  maxViewEntries: 512,
  /**
   * Distinct peers whose view answers must name a participant we have not heard from ourselves before we
   * count it: one hostile peer's list alone could fill our view with names that never report, to be
   * waited for and grouped with. Its last round is the latest that this many vouch for, so one peer
   * naming a late round cannot keep a departed participant in our view.
   */
  viewVouchers: 2,
  /** Peers a round short of its quorum asks for their view: partners whose update arrived, so alive and reachable. */
  viewAsksPerRound: 3,
  /** Largest smallest-group a manifest may ask for (aggregation.groupSize). */
  maxGroupSize: 256,
  /**
   * Strongest pull of phase 4 toward the grown weights (schedule.finetunePull). Beyond it the pull's
   * gradient swamps any loss's, and fine-tuning would not move: no use, only a mistyped number.
   */
  maxFinetunePull: 10_000,
  /**
   * Strongest pull per training row (schedule.finetunePull with finetunePullPerRow): maxFinetunePull on a
   * participant holding 100,000 rows.
   */
  maxFinetunePullPerRow: 1_000_000_000,
  /**
   * Longest phase-4 budget in epochs of a participant's rows (schedule.finetuneEpochs): the useful
   * budgets measured are 3 to 40; beyond this it is a mistyped number, not a schedule.
   */
  maxFinetuneEpochs: 10_000,
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
  maxManifestBytes: 64 * 1024,
  /**
   * Largest magnitude of any Global-LiGO value in an update, a state answer or an aggregate
   * (`out-of-bounds`). Global-LiGO's values mix a model's weights into the target's (measured: at most
   * ~6 after training at learning rate 0.3); a value of 1e6 scales weights a million-fold, which no model
   * trains from, and float32 values near 3e38 overflow to infinity in the first sum. Independent of the
   * manifest, so it also bounds a state that a joining peer has nothing to compare with.
   */
  maxAbsValue: 1e6,
  /**
   * An update may lie at most this many times the current Global-LiGO's L2 norm (at least
   * `minReferenceNorm`) from it (`out-of-bounds`). One round of local training moves it far less: measured
   * on the test shapes, 0.01-0.4 of its norm at learning rate 0.002, up to 5.2 at 0.3 (a rate at which
   * training barely holds). An update farther away is not training, and with the mean rule it would drag
   * the aggregate by its weight times that distance.
   */
  maxUpdateDistanceRatio: 10,
  /** The norm the distance bound uses when Global-LiGO's own is smaller, so a near-zero operator can still move. */
  minReferenceNorm: 1,
  /**
   * Distinct peers that must answer a catch-up with the same (round, digest) before it is adopted, or all
   * that answered when fewer did: one peer's word alone could hand us any state, and an honest round is
   * closed by at least the quorum (2 by default) peers, all of which hold it.
   */
  catchUpVouchers: 2,
  /**
   * Peers asked for their state's round and digest in one catch-up. Only the state adopted is then
   * fetched whole (with group averaging, one per distinct digest of the round adopted), so asking more
   * costs little; the bound keeps a catch-up's answers, and its fetches, few.
   */
  catchUpMaxAsks: 8,
  /**
   * How long a peer whose claim to be ahead a catch-up disproved is not taken as ahead. An honest
   * announcer of round R has completed R - 1, so a state answer for an earlier round (or none) disproves
   * it. Without this, one announcement of the last round would make every round catch up every 2 s
   * until we reached it; with it, such a peer costs one catch-up (8 state requests, and no Global-LiGO
   * unless peers vouch for a state ahead) a minute. An honest peer that was merely unreachable loses
   * only its say in starting catch-ups meanwhile.
   */
  disprovedAheadMs: 60_000,
  /**
   * Rounds a known participant may miss before rounds stop waiting for it: it has crashed or left (an
   * honest peer announces every round, and re-announces every 2 s). It is waited for again from its next
   * announcement.
   */
  silentRoundsForgotten: 3,
  /**
   * With group averaging, about how many participants announce on the topic each round, whatever the
   * federation's size; the others tell their update to their group alone. An announcement on the topic
   * reaches every peer and each forwards it along its mesh (the scale bench measured 1.6 to 4 KiB sent
   * per peer for each one), so with every participant on the topic every round, a peer's traffic grew
   * with the federation: 24 payloads' worth a round at 64 peers, for 3 payloads. These announcements are
   * how peers that do not share a group learn who takes part (protocol/groups.ts, presenceRound).
   */
  presenceAnnouncersPerRound: 8,
  /**
   * Largest sampleCount an announcement may claim (`malformed` beyond it). No shard holds 4 billion
   * examples, and the sum of 1,024 such counts stays an exact integer in float64 (below 2^53), so every
   * peer computes the same weights.
   */
  maxSampleCount: 2 ** 32 - 1,
  /**
   * In the mean rule, a contribution weighs at most this many times the round's lower median sample count
   * (aggregate.ts clippedWeights). A claimed count cannot be checked: without the clip, one peer claiming
   * 2^32 examples would outweigh everyone. Label-Dirichlet shards at alpha 0.5 over 8 peers stay within
   * about 2x of the median, so honest weights are rarely clipped; while the honest peers are a majority
   * of a round, the lower median is one of their counts, so a hostile peer weighs at most 4 honest ones.
   */
  maxWeightOverMedian: 4,
  /**
   * Fetches of one sender's update in one round (network failures: a timeout, a cut or truncated stream)
   * before the round stops waiting for it and ignores its re-announcements for that round: each
   * re-announcement would otherwise cost a fresh fetch of a whole payload.
   */
  maxFetchAttempts: 3,
  /**
   * After a fetch fails on the network, the sender's announcements of that update are ignored for this
   * long: the next attempt waits for one that comes later. A link that flaps (a relayed connection
   * replaced, which in the NAT test happened every second or two) would otherwise fail the attempts that
   * a close-time tell, a re-announcement and a lingering peer's announcement start within a second of
   * one another, and the round would give up an honest sender's update (the likeliest way a CI run ended
   * its two NAT-test peers on two Global-LiGOs). Under REANNOUNCE_MS (2 s), the sender's shortest
   * interval, so none of its spaced re-announcements is lost.
   */
  fetchRetryAfterMs: 1_000,
  /**
   * State requests with the payload one peer may make: a burst of this many, refilled at
   * stateRequestsPerSecond; others get an `error` answer. Each answer is a whole Global-LiGO, and an
   * honest peer fetches a state only once a catch-up has chosen it: at most once every 2 s.
   */
  stateRequestBurst: 4,
  stateRequestsPerSecond: 0.5,
  /**
   * State requests without the payload (a round and a digest, a few hundred bytes) one peer may make:
   * an honest one asks at start and at most once every 2 s while it catches up.
   */
  stateHeaderRequestBurst: 8,
  stateHeaderRequestsPerSecond: 1,
  /**
   * Payload requests one peer may make (burst, then per second); others get an `error` answer. An
   * honest peer fetches each of our updates once (at most maxFetchAttempts times), one per round.
   */
  payloadRequestBurst: 32,
  payloadRequestsPerSecond: 8,
  /**
   * View requests one peer may make (burst, then per second): an honest one asks each partner at most
   * once a round, and only while its round is short of the quorum.
   */
  viewRequestBurst: 4,
  viewRequestsPerSecond: 0.5,
  /** Manifest requests one peer may make (burst, then per second): an honest one asks once, until it has it. */
  manifestRequestBurst: 4,
  manifestRequestsPerSecond: 0.2
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
  quorum: 2,
  /**
   * Group averaging's smallest group. Four: each peer fetches 3 to 6 payloads a round whatever the
   * federation's size (the scale bench's `bytes sent/peer/round`), and the groups, redrawn every round,
   * still mix the federation (its `spread` column).
   */
  groupSize: 4
} as const
