/** `npm run bench -- NAME`: runs one benchmark and writes its section of BENCHMARKS.md. */
import '../node/polyfill.js'
import { trainStepBench } from './bench/train-step.js'
import { ligoBench } from './bench/ligo.js'
import { paperTableBench } from './bench/paper-table.js'
import { scaleBench } from './bench/scale.js'
import { byzantineBench } from './bench/byzantine.js'
import { fuzzBench } from './bench/fuzz.js'
import { workersBench } from './bench/workers.js'
import { designBench } from './bench/design.js'
import { textBench } from './bench/text.js'
import { networkThreadBench } from './bench/network-thread.js'

const BENCHES: Record<string, { help: string, run: (command: string, args: string[]) => Promise<void> }> = {
  'train-step': { help: 'train-step time of target-size models on wasm and cpu, as a fraction of each backend\'s matMul ceiling', run: trainStepBench },
  'paper-table': { help: 'fedgrow vs independent, fedavg, local and authors-code on rounds, bytes and FLOPs: 8 peers, preset small, alpha 100 and 0.5 (over an hour on 2 cores); each table says whose curve was still rising [--peers N,N --preset NAME --alphas A,A --rounds R --seed S --methods M,M --private-head --public-fraction F --report]', run: paperTableBench },
  scale: { help: 'tiny-preset federations of 16, 64 and 256 peers, all-to-all against group averaging: bytes per peer, round time, memory, spread, accuracy (hours for 256 on 2 cores) [--peers N,N --rounds R --group-size G --schemes all-to-all,group --seed S --preset tiny|small --report]', run: scaleBench },
  byzantine: { help: '20% hostile peers, each attack against each aggregation rule, vs a clean run', run: byzantineBench },
  design: { help: 'the design study: which way of growing and sharing makes collaboration pay, on an ideal network; --peers 1 pools every row on one peer, the ceiling of each design [--peers P --alpha A --seed S --rounds R --steps S --public ROWS --only NAMES --pulls LIST --tag T --report --seeds-report]', run: designBench },
  workers: { help: 'the same simulation with 1 and 2 compute workers: wall time, peak RSS, identical results, and the machine\'s two-worker ceiling [--pairs N]', run: workersBench },
  fuzz: { help: 'the CI fuzz test with many more cases (default 1,000,000) [--cases N]', run: fuzzBench },
  text: { help: 'every method on the bundled spam e-mails, preset text (4 peers; minutes on 2 cores) [--peers N --alpha A]', run: textBench },
  'network-thread': { help: 'what averaging computes on the network thread, per update received and per round closed, at the tiny, small and paper presets\' Global-LiGO sizes', run: networkThreadBench },
  ligo: { help: 'grow a pre-trained small model with LiGO (both inits) vs train the target from scratch: steps and FLOPs to the same accuracy [--lr RATE]', run: ligoBench }
}

const [name, ...args] = process.argv.slice(2)
const bench = name === undefined ? undefined : BENCHES[name]
if (bench === undefined) {
  process.stdout.write(`Usage: npm run bench -- NAME\n\n${Object.entries(BENCHES).map(([n, b]) => `  ${n.padEnd(12)} ${b.help}`).join('\n')}\n`)
  process.exitCode = name === undefined || name === '--help' ? 0 : 2
} else {
  // Quoted where a shell would split it (--only "fedgrow checkpoint,..."), so the report's command can be pasted.
  const shellWords = process.argv.slice(2).map(arg => /\s/.test(arg) ? `"${arg}"` : arg)
  await bench.run(`npm run bench -- ${shellWords.join(' ')}`, args)
}
