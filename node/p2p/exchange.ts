/**
 * Direct streams between two peers of a federation, beside gossip: fetch an announced payload from its
 * announcer, ask for the last completed round (catch-up: its digest, or its Global-LiGO too), ask whom a
 * peer has heard from (view completion), and tell one peer an announcement. One request and one answer
 * per stream (a told announcement has none), each a length-prefixed frame: a control message
 * (protocol/messages.ts), then for answers with tensors a payload frame. Frame sizes are bounded before anything is buffered.
 */
import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import { LIMITS, announceProtocol, payloadProtocol, stateProtocol, viewProtocol } from '../../protocol/constants.js'
import { decodeMessage, encodeMessage, expectMessage } from '../../protocol/messages.js'
import { ProtocolError } from '../../protocol/errors.js'
import { RateLimiter } from './rate-limit.js'
import type { Fetch, Message, State, StateRequest, View, ViewEntry, ViewRequest } from '../../protocol/messages.js'
import { openStream } from './host.js'
import type { Host } from './host.js'
import type { Stream } from '@libp2p/interface'

const REQUEST_TIMEOUT_MS = LIMITS.requestTimeoutMs
/** Relayed (limited) connections carry these streams too: a peer behind a NAT may have no other. */
const STREAM_LIMITS = { maxInboundStreams: LIMITS.maxStreamsPerConnection, maxOutboundStreams: LIMITS.maxStreamsPerConnection, runOnLimitedConnection: true }

export interface ExchangeHandlers {
  /** The payload bytes announced with this hash, or null if we do not hold them; `from` asked. */
  payload: (request: Fetch, from: string) => Uint8Array | null
  /**
   * The answer to `from`'s `request` was written whole and its stream closed: `from` holds the payload.
   * Asking is not holding: a peer that stopped once everyone had asked cut a slow transfer off.
   */
  served: (request: Fetch, from: string) => void
  /** Our last completed round and its Global-LiGO payload. */
  state: () => { header: State, payload: Uint8Array }
  /** Participants we heard from ourselves lately, with the last round we did, the most lately heard first: the answer keeps the first LIMITS.maxViewEntries. */
  view: () => ViewEntry[]
}

/** Which request a peer made beyond its budget (LIMITS: payloadRequest*, stateRequest*, viewRequest*, manifestRequest*). */
export type LimitedRequest = 'payload' | 'state' | 'view' | 'manifest'

/**
 * libp2p's errors for a remote that broke the length-prefixed framing: a frame longer than the answer may
 * be, a malformed length prefix, or more bytes than the answer's two frames. Only the sender causes these.
 */
const FRAMING_ERRORS: Record<string, 'too-large' | 'malformed'> = {
  InvalidDataLengthError: 'too-large',
  InvalidDataLengthLengthError: 'too-large',
  StreamBufferError: 'too-large',
  InvalidMessageLengthError: 'malformed'
}

/**
 * A framing violation becomes a ProtocolError, held against the sender; other failures (a timeout, a
 * reset or truncated stream) stay network failures, which an honest peer's link can cause.
 */
function chargeFraming (err: Error, peer: string): Error {
  const reason = FRAMING_ERRORS[err.name]
  return reason === undefined ? err : new ProtocolError(reason, `${peer} broke the answer's framing: ${err.message}`)
}

function frames (stream: Stream, maxPayloadBytes: number): ReturnType<typeof lpStream> {
  const maxDataLength = Math.max(LIMITS.maxControlBytes, maxPayloadBytes)
  // An answer is a control frame then a payload frame, which may arrive in one read.
  return lpStream(stream, { maxDataLength, maxBufferSize: maxDataLength + LIMITS.maxControlBytes + 32 })
}

/** The answer to a request beyond the asker's budget: a well-formed refusal, which the asker skips. */
const limitedAnswer = (what: LimitedRequest): Uint8Array => encodeMessage({ type: 'error', reason: `rate-limited: too many ${what} requests from this peer` })

/**
 * Registers this peer's payload, state and view handlers for one federation. Each asking peer has a budget of
 * requests per protocol (LIMITS); beyond it, it gets an `error` answer and `onLimited` hears of it.
 */
export async function serveExchange (libp2p: Host, federationId: string, maxPayloadBytes: number, handlers: ExchangeHandlers, onLimited?: (peer: string, what: LimitedRequest) => void): Promise<void> {
  const payloadBudget = new RateLimiter(LIMITS.payloadRequestBurst, LIMITS.payloadRequestsPerSecond)
  const stateBudget = new RateLimiter(LIMITS.stateRequestBurst, LIMITS.stateRequestsPerSecond)
  const stateHeaderBudget = new RateLimiter(LIMITS.stateHeaderRequestBurst, LIMITS.stateHeaderRequestsPerSecond)
  const viewBudget = new RateLimiter(LIMITS.viewRequestBurst, LIMITS.viewRequestsPerSecond)
  await libp2p.handle(payloadProtocol(federationId), async (stream, connection) => {
    const lp = frames(stream, maxPayloadBytes)
    const peer = connection.remotePeer.toString()
    try {
      const request = expectMessage((await lp.read({ signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).subarray(), 'fetch')
      const payload = request.federationId === federationId ? handlers.payload(request, peer) : null
      const sending = payload !== null && payloadBudget.allow(peer)
      if (payload === null) {
        await lp.write(encodeMessage({ type: 'error', reason: `no payload ${request.payloadHash.slice(0, 12)}… for round ${request.round}` }))
      } else if (!sending) {
        onLimited?.(peer, 'payload')
        await lp.write(limitedAnswer('payload'))
      } else {
        await lp.writeV([encodeMessage({ type: 'fetch', federationId, round: request.round, payloadHash: request.payloadHash }), payload])
      }
      await stream.close()
      if (sending) handlers.served(request, peer)
    } catch (err) {
      stream.abort(err as Error)
    }
  }, STREAM_LIMITS)
  await serveRequests<StateRequest>(libp2p, federationId, stateProtocol(federationId), 'state-request', 'state', maxPayloadBytes, onLimited, {
    budget: (request) => request.withPayload ? stateBudget : stateHeaderBudget,
    answer: (request) => {
      const { header, payload } = handlers.state()
      return request.withPayload ? [encodeMessage(header), payload] : [encodeMessage(header)]
    }
  })
  await serveRequests<ViewRequest>(libp2p, federationId, viewProtocol(federationId), 'view-request', 'view', 0, onLimited, {
    budget: () => viewBudget,
    answer: () => [encodeMessage({ type: 'view', federationId, participants: handlers.view().slice(0, LIMITS.maxViewEntries) })]
  })
}

/**
 * Serves a protocol whose request names the federation and whose answer is this peer's own (state, view):
 * a request for another federation gets an `error`, one beyond its sender's budget a refusal, any other
 * the frames `answer` gives.
 */
async function serveRequests<R extends StateRequest | ViewRequest> (libp2p: Host, federationId: string, protocol: string, type: R['type'], what: LimitedRequest, maxPayloadBytes: number, onLimited: ((peer: string, what: LimitedRequest) => void) | undefined, serve: { budget: (request: R) => RateLimiter, answer: (request: R) => Uint8Array[] }): Promise<void> {
  await libp2p.handle(protocol, async (stream, connection) => {
    const lp = frames(stream, maxPayloadBytes)
    const peer = connection.remotePeer.toString()
    try {
      const request = expectMessage((await lp.read({ signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).subarray(), type) as R
      if (request.federationId !== federationId) {
        await lp.write(encodeMessage({ type: 'error', reason: 'wrong federation' }))
      } else if (!serve.budget(request).allow(peer)) {
        onLimited?.(peer, what)
        await lp.write(limitedAnswer(what))
      } else {
        await lp.writeV(serve.answer(request))
      }
      await stream.close()
    } catch (err) {
      stream.abort(err as Error)
    }
  }, STREAM_LIMITS)
}

/** A request's stream options: the caller's signal, if any, bounded by REQUEST_TIMEOUT_MS. */
function requestOptions (signal?: AbortSignal): { signal: AbortSignal, runOnLimitedConnection: true } {
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
  return { signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]), runOnLimitedConnection: true }
}

/**
 * Serves announcements told directly (announceProtocol): one frame per stream, no answer. `onTell` gets
 * each one's bytes and its author, the remote peer.
 */
export async function serveTells (libp2p: Host, federationId: string, onTell: (from: string, data: Uint8Array) => void): Promise<void> {
  await libp2p.handle(announceProtocol(federationId), async (stream, connection) => {
    const lp = frames(stream, 0)
    try {
      const data = (await lp.read({ signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).subarray()
      await stream.close()
      onTell(connection.remotePeer.toString(), data)
    } catch (err) {
      stream.abort(err as Error)
    }
  }, STREAM_LIMITS)
}

/** Tells `peer` one of our announcements (`message`, encoded) over a direct stream. */
export async function tellAnnouncement (libp2p: Host, peer: string, federationId: string, message: Uint8Array, signal?: AbortSignal): Promise<void> {
  const options = requestOptions(signal)
  const stream = await openStream(libp2p, peerIdFromString(peer), announceProtocol(federationId), options)
  try {
    await frames(stream, 0).write(message, options)
    await stream.close(options)
  } catch (err) {
    stream.abort(err as Error)
    throw err
  }
}

/** Sends one request; returns the answer's control message and, if `maxPayloadBytes` > 0, the payload frame that follows it. */
async function request (libp2p: Host, peer: string, protocol: string, message: Uint8Array, maxPayloadBytes: number, signal?: AbortSignal): Promise<{ header: Message, payload: Uint8Array }> {
  const options = requestOptions(signal)
  const stream = await openStream(libp2p, peerIdFromString(peer), protocol, options)
  const lp = frames(stream, maxPayloadBytes)
  try {
    await lp.write(message, options)
    const header = decodeMessage((await lp.read(options)).subarray())
    // A well-formed refusal (e.g. a round the peer no longer holds) is not misbehaviour: no ProtocolError.
    if (header.type === 'error') throw new Error(`${peer} answered: ${header.reason}`)
    const payload = maxPayloadBytes > 0 ? (await lp.read(options)).subarray() : new Uint8Array()
    await stream.close(options)
    return { header, payload }
  } catch (err) {
    stream.abort(err as Error)
    throw chargeFraming(err as Error, peer)
  }
}

/** Fetches one payload from its announcer; the caller checks its hash and contents. */
export async function fetchPayload (libp2p: Host, peer: string, fetch: Fetch, payloadBytes: number, signal?: AbortSignal): Promise<Uint8Array> {
  const { header, payload } = await request(libp2p, peer, payloadProtocol(fetch.federationId), encodeMessage(fetch), payloadBytes, signal)
  if (header.type !== 'fetch') throw new ProtocolError('malformed', `expected a fetch answer, got ${header.type}`)
  if (payload.length !== payloadBytes) throw new ProtocolError('too-large', `payload of ${payload.length} bytes, announced ${payloadBytes}`)
  return payload
}

/** Asks `peer` for its last completed round and Global-LiGO; the caller checks both. */
export async function requestState (libp2p: Host, peer: string, federationId: string, payloadBytes: number, signal?: AbortSignal): Promise<{ header: State, payload: Uint8Array }> {
  return await stateAnswer(libp2p, peer, federationId, payloadBytes, signal)
}

/** Asks `peer` for its last completed round and its Global-LiGO's digest, without the Global-LiGO. */
export async function requestStateHeader (libp2p: Host, peer: string, federationId: string, signal?: AbortSignal): Promise<State> {
  return (await stateAnswer(libp2p, peer, federationId, 0, signal)).header
}

/** A state answer; with `payloadBytes` 0, asked for without its payload frame. */
async function stateAnswer (libp2p: Host, peer: string, federationId: string, payloadBytes: number, signal?: AbortSignal): Promise<{ header: State, payload: Uint8Array }> {
  const withPayload = payloadBytes > 0
  const { header, payload } = await request(libp2p, peer, stateProtocol(federationId), encodeMessage({ type: 'state-request', federationId, withPayload }), payloadBytes, signal)
  if (header.type !== 'state') throw new ProtocolError('malformed', `expected a state answer, got ${header.type}`)
  return { header, payload }
}

/** Asks `peer` whom it has heard from lately; the caller decides whom to believe (LIMITS.viewVouchers). */
export async function requestView (libp2p: Host, peer: string, federationId: string, signal?: AbortSignal): Promise<View> {
  const { header } = await request(libp2p, peer, viewProtocol(federationId), encodeMessage({ type: 'view-request', federationId }), 0, signal)
  if (header.type !== 'view') throw new ProtocolError('malformed', `expected a view answer, got ${header.type}`)
  if (header.federationId !== federationId) throw new ProtocolError('wrong-federation', `view answer for federation ${header.federationId.slice(0, 12)}…`)
  return header
}
