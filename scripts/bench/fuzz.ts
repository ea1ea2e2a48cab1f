/**
 * The long fuzz run: the CI fuzz test (test/fuzz.spec.ts, fixed seed) with many more cases, so the same
 * generators go further; records the cases, the outcome and the wall time.
 */
import { spawnSync } from 'node:child_process'
import { InvalidArgumentError } from '../../node/errors.js'
import { markdownTable, writeSection } from './report.js'

const DEFAULT_CASES = 1_000_000

export async function fuzzBench (command: string, args: string[]): Promise<void> {
  const at = args.indexOf('--cases')
  const cases = at === -1 ? DEFAULT_CASES : Number(args[at + 1])
  if (!Number.isInteger(cases) || cases < 1) throw new InvalidArgumentError(`--cases ${args[at + 1]}: a whole number of cases`)
  const started = Date.now()
  const run = spawnSync('npx', ['mocha', '--no-config', '--import=tsx', '--timeout', '0', 'test/fuzz.spec.ts'], { env: { ...process.env, FUZZ_CASES: String(cases) }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  const seconds = (Date.now() - started) / 1000
  const passing = /(\d+) passing/.exec(run.stdout)?.[1] ?? '0'
  const failing = /(\d+) failing/.exec(run.stdout)?.[1] ?? '0'
  writeSection('fuzz', 'Fuzzing every decoder and validator, long run', command, [
    markdownTable(['cases', 'tests passing', 'tests failing', 'wall s'], [[cases.toLocaleString('en-US'), passing, failing, seconds.toFixed(0)]]),
    '',
    run.status === 0 ? 'Every input was accepted or rejected with a typed error and a reason.' : `The run failed; mocha said:\n\n\`\`\`\n${run.stdout.slice(-3000)}\n\`\`\``
  ].join('\n'))
  if (run.status !== 0) process.exitCode = 1
}
