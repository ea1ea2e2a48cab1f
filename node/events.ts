/**
 * Everything fedgrow reports while it runs, as one typed catalogue: a peer's milestones and rounds, its
 * defences, a simulation's summaries. The log (node/log.ts) writes these events; metrics, the dashboard
 * and the simulation read them by their `event` name with typed fields, so no reader parses a log
 * record, and an emitter that drops or misspells a field fails to compile.
 */
import type { DefenceEvent, RoundResult } from './federation/engine.js'
import type { DropReason } from './federation/transport.js'
import type { LimitedRequest } from './p2p/exchange.js'

/** What `repeatsCounted` adds to an event a peer can make us emit once per message it sends. */
// Types, not interfaces, so that every event reads as a plain record of fields (LogEvent).
type Counted = {
  /** How many so far for this (sender, reason). */
  count?: number
  /** How many this line stands for. */
  repeats?: number
}

/** A peer's life: listening, Local-LiGO, each round, the final model, and what its defences did. */
export type PeerEvent =
  | DefenceEvent
  | { event: 'listening', peerId: string, multiaddrs: string[], federation: string, method: string }
  | { event: 'local-ligo', steps: number, intermediateAccuracy: number }
  | { event: 'local-ligo', resumed: string }
  | { event: 'checkpoint-damaged', path: string, error: string, action?: string }
  | { event: 'resumed', round: number, path: string }
  | { event: 'joined', federation: string, completedRound: number }
  | { event: 'caught-up', round: number, globalDigest: string }
  | ({ event: 'round', accuracy: number, loss: number } & RoundResult)
  | { event: 'alone', round: number, connected: number, detail: string }
  | { event: 'update-accepted', round: number, from: string, sampleCount: number }
  | ({ event: 'rejected', from: string, reason: DropReason, detail: string } & Counted)
  | ({ event: 'request-limited', from: string, request: LimitedRequest } & Counted)
  | { event: 'peers', connected: number }
  | { event: 'relayed-link' | 'direct-link', peer: string, address: string, note: string }
  | { event: 'provided', key: string }
  | { event: 'discovered', peer: string, via: 'dht', connected: boolean }
  | { event: 'manifest-fetched', federation: string, from: string }
  | { event: 'warning', message: string }
  /** `finetuneKeptStep`: with best-held-out fine-tuning, the step whose check the final model is (0: as grown). */
  | { event: 'done', peerId: string, completedRound: number, globalDigest: string, accuracy: number, targetPath: string, finetuneKeptStep?: number }

/** A simulation's own reports, beside its peers'. */
export type SimulationEvent =
  | { event: 'compute', workers: number, backend: string, source: string }
  | { event: 'pretrained', model: string, dim: number, layers: number, steps: number, validationAccuracy?: number, accuracy: number }
  | { event: 'method', method: string, peers: number, rounds: number }
  | { event: 'simulation-round', method: string, round: number, of: number, peers: number, meanAccuracy: number, meanBytesSent: number, seconds: number, spread: number }
  | { event: 'fault', kind: 'crash', peer: number, afterRound: number }
  | { event: 'fault', kind: 'restart', peer: number }
  | { event: 'fault', kind: 'partition', state: 'split', halves: [number, number] }
  | { event: 'fault', kind: 'partition', state: 'healed', round: number }
  | { event: 'warning', message: string }

export type FedgrowEvent = PeerEvent | SimulationEvent
export type EventName = FedgrowEvent['event']

/** A simulated peer's event, tagged with the method it ran and its index (some events name a `peer` id of their own). */
export type TaggedPeerEvent = PeerEvent & { method: string, peerIndex: number }

/** The event named `name`, its fields typed. */
export type EventOf<N extends EventName> = Extract<FedgrowEvent, { event: N }>
