/**
 * Seeded partitioning of a data set across N participants.
 *
 * Label-Dirichlet (Hsu et al., arXiv 1909.06335, as used by Fed-Grow): for each class, proportions over
 * participants are drawn from Dirichlet(alpha) and that class's rows are dealt out accordingly. Small alpha
 * gives skewed label mixes; alpha = 100 is the authors' "iid". Each participant's test rows are dealt with
 * the same per-class proportions, so its test split follows its own label mix.
 */
import { InvalidArgumentError } from '../errors.js'
import { Rng } from '../random.js'
import { subset } from './dataset.js'
import type { Dataset, TrainTest } from './dataset.js'

export type Partition = { kind: 'iid' } | { kind: 'dirichlet', alpha: number }

/** Rows of each class, each list shuffled with `rng`. */
function rowsByClass (ds: Dataset, rng: Rng): number[][] {
  const byClass: number[][] = Array.from({ length: ds.numClasses }, () => [])
  for (let i = 0; i < ds.count; i++) byClass[ds.labels[i]].push(i)
  for (const rows of byClass) rng.shuffle(rows)
  return byClass
}

/** Deals `rows` out by `shares` (summing to 1): cut points are rounded cumulative shares, so nothing is lost. */
function deal (rows: number[], shares: number[]): number[][] {
  const out: number[][] = []
  let start = 0
  let cumulative = 0
  for (const share of shares) {
    cumulative += share
    const end = Math.round(cumulative * rows.length)
    out.push(rows.slice(start, end))
    start = end
  }
  return out
}

/** Per-class shares over participants: [numClasses][participants]. */
function classShares (partition: Partition, numClasses: number, participants: number, rng: Rng): number[][] {
  switch (partition.kind) {
    case 'iid':
      return Array.from({ length: numClasses }, () => new Array<number>(participants).fill(1 / participants))
    case 'dirichlet':
      if (!(partition.alpha > 0)) throw new InvalidArgumentError(`Dirichlet alpha ${partition.alpha} must be a positive number`)
      return Array.from({ length: numClasses }, () => rng.dirichlet(partition.alpha, participants))
    default: {
      const unreachable: never = partition
      throw new InvalidArgumentError(`unknown partition ${JSON.stringify(unreachable)}`)
    }
  }
}

/**
 * Splits train and test across `participants`, returning one TrainTest per participant. Same seed, same
 * split, on every machine; each participant can compute its own shard without seeing anyone else's.
 */
export function partition<D extends Dataset> (data: TrainTest<D>, participants: number, how: Partition, seed: number | string): Array<TrainTest<D>> {
  if (!Number.isInteger(participants) || participants < 1) throw new InvalidArgumentError(`participants ${participants} must be a whole number >= 1`)
  const rng = new Rng(`partition:${seed}:${participants}`)
  const shares = classShares(how, data.train.numClasses, participants, rng)
  const trainRows = rowsByClass(data.train, rng).map((rows, c) => deal(rows, shares[c]))
  const testRows = rowsByClass(data.test, rng).map((rows, c) => deal(rows, shares[c] ?? new Array<number>(participants).fill(1 / participants)))
  return Array.from({ length: participants }, (_, p) => {
    const mine = (perClass: number[][][]): number[] => rng.shuffle(perClass.flatMap(rowsOfClass => rowsOfClass[p])) as number[]
    return { train: subset(data.train, mine(trainRows)), test: subset(data.test, mine(testRows)) }
  })
}

/** Parses "iid" or "dirichlet:ALPHA" (also a bare number, taken as alpha). */
export function parsePartition (text: string): Partition {
  if (text === 'iid') return { kind: 'iid' }
  const alphaText = text.startsWith('dirichlet:') ? text.slice('dirichlet:'.length) : text
  const alpha = Number(alphaText)
  if (alphaText === '' || !(alpha > 0)) throw new InvalidArgumentError(`partition "${text}" must be "iid", "dirichlet:ALPHA" or ALPHA with ALPHA > 0 (e.g. 0.5)`)
  return { kind: 'dirichlet', alpha }
}
