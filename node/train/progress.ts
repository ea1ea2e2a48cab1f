/**
 * Progress for long work: a redrawn bar on a terminal, plain lines every few seconds otherwise
 * (logs, CI, pipes). Writes to stderr so stdout stays clean for --format json.
 */

export interface ProgressEvent {
  /** What is running, e.g. "pretrain" or "grow: local-ligo". */
  phase: string
  done: number
  total: number
  /** Running mean of the training loss since the last report. */
  loss?: number
}

export type ProgressSink = (event: ProgressEvent) => void

/** Seconds between plain lines when stderr is not a terminal. */
export const PLAIN_PROGRESS_INTERVAL_S = 5
const BAR_WIDTH = 30

export function consoleProgress (stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  let phase: string | undefined
  let started = 0
  let lastPlain = 0
  return (e) => {
    if (e.phase !== phase) {
      phase = e.phase
      started = Date.now()
      lastPlain = 0
    }
    const elapsedS = (Date.now() - started) / 1000
    const fraction = e.total > 0 ? e.done / e.total : 1
    const loss = e.loss === undefined ? '' : ` loss ${e.loss.toFixed(4)}`
    const etaS = fraction > 0 ? elapsedS * (1 - fraction) / fraction : 0
    const text = `${e.phase} ${e.done}/${e.total}${loss} ${elapsedS.toFixed(0)}s elapsed, ~${etaS.toFixed(0)}s left`
    if (stream.isTTY) {
      const filled = Math.round(fraction * BAR_WIDTH)
      stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${text}\x1b[K${e.done >= e.total ? '\n' : ''}`)
    } else if (e.done >= e.total || elapsedS - lastPlain >= PLAIN_PROGRESS_INTERVAL_S) {
      lastPlain = elapsedS
      stream.write(text + '\n')
    }
  }
}

export const silentProgress: ProgressSink = () => {}
