/**
 * Fault injection for simulations: crashes with restarts, lost announcements, and a network split in two
 * that later heals. Seeded, so a run with the same seed injects the same faults at the same points of
 * progress (not the same instants: those depend on the machine).
 */
import { Rng } from '../random.js'
import { InvalidArgumentError } from '../errors.js'
import type { Logger } from '../log.js'

export interface FaultOptions {
  /** Share of peers crashed once each, mid-round, and restarted on the same state directory. @default 0 */
  kill?: number
  /** Probability that a peer loses each announcement it receives. @default 0 */
  drop?: number
  /** Rounds for which the network is split into two halves (after round 2). @default 0 */
  partition?: number
}

/** The network splits once every peer has completed this round (round deadlines have adapted by then). */
const SPLIT_AFTER_ROUND = 2
/** How long a crashed peer stays down before it restarts. */
export const RESTART_DELAY_MS = 1_000
/** Longest delay after a victim's trigger round completes before it crashes (mid-round, while it waits). */
const MAX_CRASH_DELAY_MS = 1_500

export const hasFaults = (f: FaultOptions): boolean => (f.kill ?? 0) > 0 || (f.drop ?? 0) > 0 || (f.partition ?? 0) > 0

export function checkFaults (f: FaultOptions, rounds: number): void {
  if ((f.kill ?? 0) > 0 && rounds < 4) throw new InvalidArgumentError(`--kill needs at least 4 rounds (one before the crash, the crash, two to rejoin in); got --rounds ${rounds}`)
  if ((f.partition ?? 0) > 0 && rounds < (f.partition ?? 0) + 4) throw new InvalidArgumentError(`--partition ${f.partition} needs at least ${(f.partition ?? 0) + 4} rounds: two before the split (so round deadlines have adapted), ${f.partition} split, two after it heals; got --rounds ${rounds}`)
}

export interface FaultReport {
  crashes: number
  restarts: number
  /** Restarted peers that later completed a round together with others (aggregated 2+ updates or adopted theirs). */
  rejoined: number
  droppedAnnouncements: number
  partitionedRounds: number
}

/** One method run's faults: which peers crash when, who is cut off from whom, which messages are lost. */
export class FaultInjector {
  private readonly rng: Rng
  /** Victim index -> the round after which it crashes. */
  private readonly crashAfter = new Map<number, number>()
  private readonly completed: number[]
  private readonly crashes = new Map<number, AbortController>()
  /** Restarted peers not yet seen completing a round with others. */
  private readonly rejoining = new Set<number>()
  private split = false
  private healed = false
  readonly report: FaultReport = { crashes: 0, restarts: 0, rejoined: 0, droppedAnnouncements: 0, partitionedRounds: 0 }

  constructor (private readonly options: FaultOptions, private readonly peers: number, rounds: number, seed: string, private readonly log: Logger) {
    this.rng = new Rng(`faults:${seed}`)
    this.completed = new Array<number>(peers).fill(0)
    const victims = Math.round((options.kill ?? 0) * peers)
    // Crash after round 1 to rounds - 3, so two rounds remain in which the restarted peer takes part fully.
    for (const index of this.rng.shuffle([...Array(peers).keys()]).slice(0, victims)) this.crashAfter.set(index, 1 + this.rng.int(Math.max(1, rounds - 3)))
  }

  /** The crash signal for peer `index`'s next run (a fresh one after each restart). */
  crashSignal (index: number): AbortSignal {
    const controller = new AbortController()
    this.crashes.set(index, controller)
    return controller.signal
  }

  /**
   * Peer `index` completed `round`, aggregating `peersHeard` updates (0: it adopted a peer's result): may
   * schedule its crash, and split or heal the network.
   */
  onRound (index: number, round: number, peersHeard: number): void {
    this.completed[index] = Math.max(this.completed[index], round)
    if (this.rejoining.has(index) && peersHeard !== 1) {
      this.rejoining.delete(index)
      this.report.rejoined++
    }
    // >=: a peer that caught up may report a later round than the one it was due to crash after.
    if (round >= (this.crashAfter.get(index) ?? Infinity)) {
      this.crashAfter.delete(index)
      const controller = this.crashes.get(index)
      setTimeout(() => {
        this.report.crashes++
        this.log({ event: 'fault', kind: 'crash', peer: index, afterRound: round })
        controller?.abort()
      }, this.rng.next() * MAX_CRASH_DELAY_MS)
    }
    // The split starts once every peer is past round 2 and ends when the fastest side has run
    // `partition` rounds alone, so neither side can finish while the other is cut off.
    const partition = this.options.partition ?? 0
    if (partition > 0 && !this.split && !this.healed && Math.min(...this.completed) >= SPLIT_AFTER_ROUND) {
      this.split = true
      this.log({ event: 'fault', kind: 'partition', state: 'split', halves: [Math.floor(this.peers / 2), this.peers - Math.floor(this.peers / 2)] })
    }
    if (this.split && Math.max(...this.completed) >= SPLIT_AFTER_ROUND + partition) {
      this.split = false
      this.healed = true
      this.report.partitionedRounds = partition
      this.log({ event: 'fault', kind: 'partition', state: 'healed', round: Math.max(...this.completed) })
    }
  }

  restarted (index: number): void {
    this.report.restarts++
    this.rejoining.add(index)
    this.log({ event: 'fault', kind: 'restart', peer: index })
  }

  /** Whether peer `self` must refuse `remote` now (they sit on different sides of a split). */
  denies (self: number, remote: number | undefined): boolean {
    if (!this.split || remote === undefined) return false
    const half = Math.floor(this.peers / 2)
    return (self < half) !== (remote < half)
  }

  /** Whether the next announcement a peer receives is lost. */
  drops (): boolean {
    const lost = this.rng.next() < (this.options.drop ?? 0)
    if (lost) this.report.droppedAnnouncements++
    return lost
  }
}
