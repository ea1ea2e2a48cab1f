/**
 * Control messages: a 6-byte envelope (magic "FGRW", protocol version, message type) followed by a
 * UTF-8 JSON body whose fields are checked one by one; unknown fields are rejected. Payloads (Global-LiGO
 * tensors) are not messages: they are safetensors files (protocol/safetensors.ts) sent as their own frame.
 *
 *   type 1 announce        gossip: "I have an update for round r" (no tensors, only their hash and size)
 *   type 2 fetch           stream: ask an announcer for the payload with a given hash
 *   type 3 state-request   stream: ask for the last completed round, with or without its Global-LiGO
 *   type 4 state           stream: the answer; a payload frame with the Global-LiGO follows if asked for
 *   type 5 error           stream: why a request cannot be served
 *   type 6 view-request    stream: ask whom a peer has heard from lately (view completion)
 *   type 7 view            stream: the answer, each participant with the last round it was heard in
 */
import { checks } from './validate.js'
import { LIMITS, PROTOCOL_VERSION } from './constants.js'
import { ProtocolError } from './errors.js'

const MAGIC = [0x46, 0x47, 0x52, 0x57] // "FGRW"
const HEADER_BYTES = 6

export interface Announce {
  type: 'announce'
  federationId: string
  round: number
  /** Training examples behind this update: the weight in the sample-weighted mean. */
  sampleCount: number
  /** The update's hash, bound to its author and round (protocol/payload.ts updateHash). */
  payloadHash: string
  /**
   * The payload's size, which must be the manifest's exact one: a receiver then never buffers more. Its
   * tensor names, shapes and dtype are not announced: the manifest implies them, and the fetched payload
   * is checked against them (protocol/payload.ts decodePayload).
   */
  payloadBytes: number
  /** The announcer's own multiaddrs, so peers it is not yet connected to can fetch from it. */
  addresses: string[]
}

export interface Fetch {
  type: 'fetch'
  federationId: string
  round: number
  payloadHash: string
}

export interface StateRequest {
  type: 'state-request'
  federationId: string
  /**
   * Whether the answer carries the Global-LiGO payload. A catch-up first asks several peers without it
   * (a few hundred bytes each), then fetches the one state it chose, once per distinct digest.
   */
  withPayload: boolean
}

/** An update the responder holds for a round after `round`, so a joining peer can fetch it from `from`. */
export interface PendingUpdate {
  from: string
  announce: Announce
}

export interface State {
  type: 'state'
  federationId: string
  /** Last completed round (0: none yet; the payload is then the initial Global-LiGO). */
  round: number
  globalDigest: string
  payloadBytes: number
  pending: PendingUpdate[]
}

export interface ViewRequest {
  type: 'view-request'
  federationId: string
}

/** A participant the answering peer heard from itself (an announcement, a tell or a topic subscription), and the last round it did. */
export interface ViewEntry {
  peer: string
  round: number
}

export interface View {
  type: 'view'
  federationId: string
  /** At most LIMITS.maxViewEntries, most lately heard first; never the answerer itself (the asker knows it). */
  participants: ViewEntry[]
}

export interface ErrorMessage {
  type: 'error'
  reason: string
}

export type Message = Announce | Fetch | StateRequest | State | ErrorMessage | ViewRequest | View

const TYPE_CODES: Record<Message['type'], number> = { announce: 1, fetch: 2, 'state-request': 3, state: 4, error: 5, 'view-request': 6, view: 7 }
const TYPE_NAMES = Object.fromEntries(Object.entries(TYPE_CODES).map(([k, v]) => [v, k])) as Record<number, Message['type']>

export function encodeMessage (message: Message): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(message))
  const out = new Uint8Array(HEADER_BYTES + body.length)
  out.set(MAGIC, 0)
  out[4] = PROTOCOL_VERSION
  out[5] = TYPE_CODES[message.type]
  out.set(body, HEADER_BYTES)
  if (out.length > LIMITS.maxControlBytes) throw new ProtocolError('too-large', `${message.type} message of ${out.length} bytes exceeds ${LIMITS.maxControlBytes}`)
  return out
}

type Obj = Record<string, unknown>

const bad = (what: string): never => { throw new ProtocolError('malformed', what) }
/** A peer's bad field: its path, what it held (cut short: the sender chose it), and the rule. */
const { object, int, str, bool, hash, strings } = checks((path, value, rule) => bad(`${path} = ${String(JSON.stringify(value)).slice(0, 80)}: ${rule}`))

/**
 * A peer id as libp2p writes it (base58btc, e.g. 12D3KooW..., or a CID), not parsed: the receiver uses it
 * as a name until it dials it, and a name that is no peer id then fails that dial alone.
 */
function peerIdText (value: unknown, path: string): string {
  const text = str(value, path, 128)
  return /^[1-9A-Za-z]{32,}$/.test(text) ? text : bad(`${path} = ${JSON.stringify(text)}: must be a peer id (32 to 128 letters and digits)`)
}

function checkAnnounce (value: unknown): Announce {
  const o = object(value, 'announce', ['type', 'federationId', 'round', 'sampleCount', 'payloadHash', 'payloadBytes', 'addresses'])
  const addresses = strings(o.addresses, 'announce.addresses', LIMITS.maxAddresses, 'multiaddr', a => a.startsWith('/') && a.length <= 512)
  return {
    type: 'announce',
    federationId: hash(o.federationId, 'announce.federationId'),
    round: int(o.round, 'announce.round', 1, LIMITS.maxRounds),
    sampleCount: int(o.sampleCount, 'announce.sampleCount', 1, LIMITS.maxSampleCount),
    payloadHash: hash(o.payloadHash, 'announce.payloadHash'),
    payloadBytes: int(o.payloadBytes, 'announce.payloadBytes', 1, LIMITS.maxPayloadBytes),
    addresses
  }
}

function checkBody (type: Message['type'], value: unknown): Message {
  switch (type) {
    case 'announce':
      return checkAnnounce(value)
    case 'fetch': {
      const o = object(value, 'fetch', ['type', 'federationId', 'round', 'payloadHash'])
      return { type, federationId: hash(o.federationId, 'fetch.federationId'), round: int(o.round, 'fetch.round', 1, LIMITS.maxRounds), payloadHash: hash(o.payloadHash, 'fetch.payloadHash') }
    }
    case 'state-request': {
      const o = object(value, 'state-request', ['type', 'federationId', 'withPayload'])
      return { type, federationId: hash(o.federationId, 'state-request.federationId'), withPayload: bool(o.withPayload, 'state-request.withPayload') }
    }
    case 'state': {
      const o = object(value, 'state', ['type', 'federationId', 'round', 'globalDigest', 'payloadBytes', 'pending'])
      if (!Array.isArray(o.pending) || o.pending.length > LIMITS.maxPending) bad(`pending must be a list of at most ${LIMITS.maxPending}`)
      const pending = (o.pending as unknown[]).map((p, i) => {
        const entry = object(p, `state.pending[${i}]`, ['from', 'announce'])
        return { from: str(entry.from, `state.pending[${i}].from`, 128), announce: checkAnnounce(entry.announce) }
      })
      return { type, federationId: hash(o.federationId, 'state.federationId'), round: int(o.round, 'state.round', 0, LIMITS.maxRounds), globalDigest: hash(o.globalDigest, 'state.globalDigest'), payloadBytes: int(o.payloadBytes, 'state.payloadBytes', 1, LIMITS.maxPayloadBytes), pending }
    }
    case 'view-request': {
      const o = object(value, 'view-request', ['type', 'federationId'])
      return { type, federationId: hash(o.federationId, 'view-request.federationId') }
    }
    case 'view': {
      const o = object(value, 'view', ['type', 'federationId', 'participants'])
      if (!Array.isArray(o.participants) || o.participants.length > LIMITS.maxViewEntries) bad(`view.participants must be a list of at most ${LIMITS.maxViewEntries}`)
      const participants = (o.participants as unknown[]).map((p, i) => {
        const entry = object(p, `view.participants[${i}]`, ['peer', 'round'])
        return { peer: peerIdText(entry.peer, `view.participants[${i}].peer`), round: int(entry.round, `view.participants[${i}].round`, 0, LIMITS.maxRounds) }
      })
      return { type, federationId: hash(o.federationId, 'view.federationId'), participants }
    }
    case 'error': {
      const o = object(value, 'error', ['type', 'reason'])
      return { type, reason: str(o.reason, 'error.reason', 1000) }
    }
    default: {
      const unreachable: never = type
      return bad(`unknown type ${String(unreachable)}`)
    }
  }
}

/** Decodes and checks a control message; throws ProtocolError with the reason. Checks size before parsing. */
export function decodeMessage (bytes: Uint8Array): Message {
  if (bytes.length > LIMITS.maxControlBytes) throw new ProtocolError('too-large', `${bytes.length} bytes exceeds ${LIMITS.maxControlBytes}`)
  if (bytes.length < HEADER_BYTES || MAGIC.some((b, i) => bytes[i] !== b)) throw new ProtocolError('bad-envelope', 'missing the FGRW magic')
  if (bytes[4] !== PROTOCOL_VERSION) throw new ProtocolError('unknown-version', `protocol version ${bytes[4]}; this fedgrow speaks ${PROTOCOL_VERSION}`)
  const type = TYPE_NAMES[bytes[5]]
  if (type === undefined) throw new ProtocolError('unknown-type', `message type ${bytes[5]}`)
  let body: unknown
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(HEADER_BYTES)))
  } catch {
    throw new ProtocolError('malformed', 'body is not UTF-8 JSON')
  }
  if ((body as Obj | null)?.type !== type) bad(`body type ${JSON.stringify((body as Obj | null)?.type)} does not match envelope type ${type}`)
  return checkBody(type, body)
}

/** Decodes a message that must be of one type, e.g. a response on a stream. */
export function expectMessage<T extends Message['type']> (bytes: Uint8Array, type: T): Extract<Message, { type: T }> {
  const message = decodeMessage(bytes)
  if (message.type === 'error' && type !== 'error') throw new ProtocolError('malformed', `peer answered with an error: ${message.reason}`)
  if (message.type !== type) bad(`expected ${type}, got ${message.type}`)
  return message as Extract<Message, { type: T }>
}

export interface AnnounceContext {
  federationId: string
  /** The round this peer is collecting. */
  currentRound: number
  /** The exact size of a valid payload: every Global-LiGO of the manifest's shapes encodes to the same length. */
  payloadBytes: number
  /** The manifest's last round: no honest peer announces a later one. @default LIMITS.maxRounds */
  lastRound?: number
}

/** What the announcement checks need that does not depend on the receiver's round. */
export type AnnounceContentContext = Omit<AnnounceContext, 'currentRound'>

function checkFederation (a: Announce, ctx: AnnounceContentContext): void {
  if (a.federationId !== ctx.federationId) throw new ProtocolError('wrong-federation', `announcement for federation ${a.federationId.slice(0, 12)}…, ours is ${ctx.federationId.slice(0, 12)}…`)
}

function checkSchedule (a: Announce, ctx: AnnounceContentContext): void {
  if (ctx.lastRound !== undefined && a.round > ctx.lastRound) throw new ProtocolError('beyond-schedule', `round ${a.round} is after the manifest's last round ${ctx.lastRound}`)
}

function checkPayloadSize (a: Announce, ctx: AnnounceContentContext): void {
  if (a.payloadBytes !== ctx.payloadBytes) throw new ProtocolError('too-large', `announced ${a.payloadBytes} payload bytes; a Global-LiGO of the manifest's shapes is exactly ${ctx.payloadBytes}`)
}

/**
 * The checks that hold an announcement against its sender whatever round the receiver is in: federation,
 * a round the schedule never reaches, payload size. The topic validator applies them before forwarding,
 * so what a receiver would ban for never travels further.
 */
export function checkAnnouncementContent (a: Announce, ctx: AnnounceContentContext): void {
  checkFederation(a, ctx)
  checkSchedule(a, ctx)
  checkPayloadSize(a, ctx)
}

/** Checks an announcement against this peer's federation and round; throws ProtocolError with the reason. */
export function checkAnnouncement (a: Announce, ctx: AnnounceContext): void {
  checkFederation(a, ctx)
  if (a.round < ctx.currentRound) throw new ProtocolError('stale-round', `round ${a.round} is behind our round ${ctx.currentRound}`)
  // Checked before implausible-round: a round the schedule never reaches is proof, not a sign we fell behind.
  checkSchedule(a, ctx)
  if (a.round > ctx.currentRound + LIMITS.maxRoundsAhead) throw new ProtocolError('implausible-round', `round ${a.round} is more than ${LIMITS.maxRoundsAhead} ahead of our round ${ctx.currentRound}`)
  checkPayloadSize(a, ctx)
}
