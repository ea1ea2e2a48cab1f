/**
 * Structured events for people and machines: `text` prints one readable line per event, `json` one JSON
 * object per line (JSON Lines) on stdout. Progress bars go to stderr and are not events.
 * Levels: `quiet` prints only problems and final results, `normal` adds milestones and rounds,
 * `verbose` adds every accepted update and periodic connection counts.
 */
import type { FedgrowEvent, PeerEvent, TaggedPeerEvent } from './events.js'

export type LogFormat = 'text' | 'json'
export type LogLevel = 'quiet' | 'normal' | 'verbose'

/** Events shown even with --quiet: something went wrong, or the final result. */
const PROBLEMS_AND_RESULTS = new Set(['rejected', 'state-rejected', 'state-unvouched', 'state-dropped', 'rollback', 'fetch-given-up', 'request-limited', 'checkpoint-damaged', 'fault', 'alone', 'warning', 'done'])
/** Events shown only with --verbose. */
const DETAIL = new Set(['update-accepted', 'peers'])

export function shows (level: LogLevel, event: string): boolean {
  if (level === 'verbose') return true
  if (level === 'quiet') return PROBLEMS_AND_RESULTS.has(event)
  return !DETAIL.has(event)
}

/** Any event as written: its name and fields (what a reader of the JSON lines gets back). */
export interface LogEvent {
  event: string
  [field: string]: unknown
}

/** Where events go: each is one of the catalogue's (node/events.ts); a peer's logger takes PeerEvents. */
export type Logger<E extends FedgrowEvent = FedgrowEvent> = (event: E) => void

function describe (e: FedgrowEvent | TaggedPeerEvent): string {
  const pct = (x: number): string => `${(100 * x).toFixed(2)}%`
  switch (e.event) {
    case 'listening':
      return `peer ${e.peerId} listening on:\n${e.multiaddrs.map(a => `  ${a}`).join('\n')}\n(give one of these to other peers as --bootstrap)`
    case 'round':
      return `round ${e.round}: ${e.peersHeard} of ${e.peersExpected} peers heard (closed: ${e.closedBy}), accuracy ${pct(e.accuracy)}, train loss ${e.trainLoss.toFixed(4)}, sent ${e.bytesSent} B, received ${e.bytesReceived} B, ${pct(e.consensusDistance)} from the mean it took, digest ${e.globalDigest.slice(0, 16)}…, ${e.seconds.toFixed(1)} s`
    case 'simulation-round':
      return `[${e.method}] round ${e.round}/${e.of}: mean accuracy ${pct(e.meanAccuracy)}, mean sent per peer ${(e.meanBytesSent / 1024).toFixed(1)} KiB, spread across peers ${pct(e.spread)}, ${e.seconds.toFixed(1)} s`
    case 'alone':
      return `warning: ${e.detail}`
    case 'warning':
      return `warning: ${e.message}`
    case 'rejected':
      return `rejected an update from ${e.from}: ${e.reason} (${e.detail})`
    default: {
      const { event, ...rest } = e
      return `${event}: ${Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ')}`
    }
  }
}

export function createLogger (format: LogFormat, write: (line: string) => void = (line) => { process.stdout.write(line + '\n') }, level: LogLevel = 'normal'): (event: FedgrowEvent | TaggedPeerEvent) => void {
  return (e) => { if (shows(level, e.event)) write(format === 'json' ? JSON.stringify(e) : describe(e)) }
}

/** One logger that hands every event to each of `loggers`. */
export const teeLogger = <E extends FedgrowEvent>(...loggers: Array<(event: E) => void>): (event: E) => void => (e) => { for (const log of loggers) log(e) }

/** Distinct (event, sender, reason) keys counted before the counts start again, so memory stays bounded. */
const MAX_COUNTED_KEYS = 10_000

/**
 * Wraps a logger so that an event a peer can make us emit once per message it sends (`rejected`,
 * `request-limited`) is written only the 1st, 2nd, 4th, 8th, … time for its
 * (event, sender, reason or request), with `count` (how many so far) and `repeats` (how many this line
 * stands for): a flood of n rejected messages costs about log2(n) lines. Other events pass through.
 */
export function repeatsCounted (log: Logger<PeerEvent>): Logger<PeerEvent> {
  const counts = new Map<string, number>()
  return (e) => {
    if (e.event !== 'rejected' && e.event !== 'request-limited') {
      log(e)
      return
    }
    if (counts.size >= MAX_COUNTED_KEYS) counts.clear()
    const key = `${e.event} ${e.from} ${e.event === 'rejected' ? e.reason : e.request}`
    const count = (counts.get(key) ?? 0) + 1
    counts.set(key, count)
    const isPowerOfTwo = (count & (count - 1)) === 0
    if (isPowerOfTwo) log({ ...e, count, repeats: count === 1 ? 1 : count / 2 })
  }
}

