/** `fedgrow`: dispatches to a command, maps typed errors to exit codes with a one-line explanation. */
import '../node/polyfill.js'
import { initBackend, parseBackendChoice } from '../node/backend.js'
import { commandHelp, parseCommandArgs, optionalString } from './args.js'
import { evalCommand } from './commands/eval.js'
import { growCommand } from './commands/grow.js'
import { federationCommand } from './commands/federation.js'
import { nodeCommand } from './commands/node.js'
import { identityCommand } from './commands/identity.js'
import { testnetCommand } from './commands/testnet.js'
import { exportCommand } from './commands/export.js'
import { predictCommand } from './commands/predict.js'
import { simulateCommand } from './commands/simulate.js'
import { pretrainCommand } from './commands/pretrain.js'
import type { Command } from './args.js'

const COMMANDS: Command[] = [simulateCommand, pretrainCommand, evalCommand, predictCommand, exportCommand, growCommand, federationCommand, identityCommand, nodeCommand, testnetCommand]

/** Exit codes by error name; anything else is an internal error (1). */
export const EXIT_CODES: Record<string, number> = {
  InvalidArgumentError: 2,
  // A user's own training settings (learning rate) made the loss non-finite: a bad argument, as before.
  TrainingDivergedError: 2,
  InvalidConfigError: 3,
  DataError: 4,
  ModelFileError: 5,
  BackendUnavailableError: 6,
  InvalidManifestError: 7,
  ProtocolError: 8,
  NetworkError: 9,
  ComputeWorkerError: 10
}

function mainHelp (): string {
  return [
    'fedgrow: grow a large transformer together from small ones, peer to peer (Fed-Grow, arXiv 2406.13450).',
    '',
    'Usage: fedgrow COMMAND [flags]     fedgrow COMMAND --help for its flags',
    '',
    'Commands:',
    ...COMMANDS.map(c => `  ${c.name.padEnd(12)} ${c.summary}`),
    '',
    'Exit codes: 0 ok, 1 internal error, ' + Object.entries(EXIT_CODES).map(([n, c]) => `${c} ${n.replace(/Error$/, '')}`).join(', ')
  ].join('\n')
}

async function main (argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(mainHelp() + '\n')
    return name === undefined ? 2 : 0
  }
  const cmd = COMMANDS.find(c => c.name === name)
  if (cmd === undefined) {
    process.stderr.write(`fedgrow: unknown command "${name}"\n\n${mainHelp()}\n`)
    return 2
  }
  const { flags, positionals } = parseCommandArgs(cmd, rest)
  if (flags.help === true) {
    process.stdout.write(commandHelp(cmd) + '\n')
    return 0
  }
  const choice = parseBackendChoice(optionalString(flags, 'backend'))
  if (cmd.computeInWorkers !== true) {
    const backend = await initBackend(choice)
    process.stderr.write(`fedgrow: compute backend ${backend.name} (${backend.source})\n`)
  }
  await cmd.run(flags, positionals)
  return 0
}

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  const e = err as Error
  const code = EXIT_CODES[e.name]
  process.stderr.write(code !== undefined ? `fedgrow: ${e.message}\n` : `fedgrow: internal error: ${e.stack ?? String(e)}\n`)
  process.exitCode = code ?? 1
}
