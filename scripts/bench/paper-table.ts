/**
 * The paper's comparison, reproduced on this machine: fedgrow vs fedavg vs independent, 8 peers,
 * preset small, label-Dirichlet alpha 100 ("iid") and 0.5, one simulation per alpha.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initBackend } from '../../node/backend.js'
import { simulate, METHOD_NAMES } from '../../node/simulation/index.js'
import { PRESETS } from '../../node/simulation/presets.js'
import { createLogger } from '../../node/log.js'
import { consoleProgress } from '../../node/train/progress.js'
import { markdownTable, writeSection } from './report.js'
import type { SimulationResult } from '../../node/simulation/index.js'

const PEERS = 8
const ALPHAS = [100, 0.5]
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`

function section (result: SimulationResult): string {
  const [fedgrow, fedavg, independent] = (['fedgrow', 'fedavg', 'independent'] as const).map(n => result.methods.find(m => m.name === n)!)
  const rows = result.methods.map(m => [m.name, pct(m.accuracy.mean), pct(m.accuracy.std), pct(m.accuracy.min), m.targetParams.toLocaleString('en-US'), m.trainableParamsPerPeer.toLocaleString('en-US'), m.sharedParamsPerRound.toLocaleString('en-US'), Math.round(m.bytesSentPerPeerPerRound).toLocaleString('en-US'), Math.round(m.bytesReceivedPerPeerPerRound).toLocaleString('en-US'), m.wallSeconds.toFixed(0)])
  return [
    `### alpha ${result.config.alpha}`,
    '',
    markdownTable(['method', 'accuracy mean', 'std', 'min', 'target params', 'trainable params/peer', 'params shared/round', 'bytes sent/peer/round', 'bytes received/peer/round', 'wall s'], rows),
    '',
    `- fedgrow bytes sent per round = ${(fedgrow.bytesSentPerPeerPerRound / fedavg.bytesSentPerPeerPerRound).toFixed(3)}x fedavg's (expected <= 0.3x)`,
    `- fedgrow trainable params = ${(fedgrow.trainableParamsPerPeer / fedgrow.targetParams).toFixed(3)}x the target's (expected <= 0.41x)`,
    `- fedgrow accuracy - independent = ${((fedgrow.accuracy.mean - independent.accuracy.mean) * 100).toFixed(2)} points (expected >= 0); fedgrow - fedavg = ${((fedgrow.accuracy.mean - fedavg.accuracy.mean) * 100).toFixed(2)} points (expected close to or above 0)`
  ].join('\n')
}

export async function paperTableBench (command: string): Promise<void> {
  await initBackend('wasm')
  const preset = PRESETS.small
  const results: SimulationResult[] = []
  for (const alpha of ALPHAS) {
    results.push(await simulate({
      peers: PEERS,
      rounds: preset.rounds,
      preset,
      alpha,
      methods: [...METHOD_NAMES],
      seed: 0,
      outDir: mkdtempSync(join(tmpdir(), `fedgrow-paper-table-${alpha}-`)),
      log: createLogger('text', (line) => { process.stderr.write(line + '\n') }),
      onProgress: consoleProgress()
    }))
  }
  const p = preset
  writeSection('paper-table', 'The paper\'s comparison: fedgrow vs fedavg vs independent (preset small, 8 peers)', command, [
    `Preset small: small models dim ${p.smallDims.join('/')} x ${p.smallLayers.join('/')} layers (drawn per peer, pre-trained on the peer's own shard until validation accuracy stopped rising, at most ${p.pretrainMaxEpochs} epochs), intermediate ${p.intermediate.dim}x${p.intermediate.layers}, target ${p.target.dim}x${p.target.layers}, ${p.heads} heads, mlp ratio ${p.mlpRatio}.`,
    `${p.rounds} rounds of ${p.localSteps} local steps (batch ${p.batchSize}, AdamW lr ${p.learningRate}); Local-LiGO ${p.localLigoSteps} steps. Peers are real libp2p nodes on 127.0.0.1 in one process; bytes come from libp2p's transfer counters (every protocol, including gossip and identify).`,
    'Accuracy: each peer\'s final model on its own test split (2,000 bundled digits split by the same label mix), mean/std/min across peers.',
    '',
    ...results.map(section)
  ].join('\n'))
}
