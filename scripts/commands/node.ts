import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { federationId, parseManifest } from '../../protocol/manifest.js'
import { isSha256Hex } from '../../protocol/canonical.js'
import { loadNetworkPreset } from '../../node/network.js'
import { lookupManifest } from '../../node/p2p/manifest-exchange.js'
import type { Manifest } from '../../protocol/manifest.js'
import type { NetworkPreset } from '../../protocol/network.js'
import type { Logger } from '../../node/log.js'
import type { Flags } from '../args.js'
import { readModelFile } from '../../node/model/model-file.js'
import { loadShard, parsePartition, parseShard, DATA_SPEC_HELP } from '../../node/data/index.js'
import { planFor } from '../../node/federation/participant.js'
import { checkModelReads } from '../../node/train/pretrain.js'
import { isTextConfig } from '../../node/model/config.js'
import { loadOrCreateIdentity } from '../../node/p2p/identity.js'
import { runPeer } from '../../node/peer.js'
import { startComputePool } from '../../node/compute/pool.js'
import { parseBackendChoice } from '../../node/backend.js'
import { readSwarmKey } from '../../node/p2p/private-network.js'
import { teeLogger } from '../../node/log.js'
import { DASHBOARD_FLAG, METRICS_FLAG, serveDashboardFlag, serveMetricsFlag } from './servers.js'
import { InvalidArgumentError } from '../../node/errors.js'
import { numberFlag, optionalString, stringFlag } from '../args.js'
import { LOG_FLAGS, readLogging } from './shared.js'
import type { Command } from '../args.js'

/** How long a peer that knows only the federation id looks for its manifest. */
const MANIFEST_LOOKUP_MS = 120_000

/** The manifest from --federation FILE, or fetched by --federation-id (or the preset's) through the network. */
async function readOrFetchManifest (flags: Flags, network: NetworkPreset | undefined, log: Logger): Promise<Manifest> {
  const path = optionalString(flags, 'federation')
  const id = optionalString(flags, 'federation-id') ?? network?.federation
  if (path !== undefined) {
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      throw new InvalidArgumentError(`--federation ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    const manifest = parseManifest(text)
    if (id !== undefined && federationId(manifest) !== id) throw new InvalidArgumentError(`--federation ${path} has id ${federationId(manifest)}, not ${id}`)
    return manifest
  }
  if (id === undefined) throw new InvalidArgumentError('give the manifest with --federation FILE, or a federation id with --federation-id ID and --network')
  if (!isSha256Hex(id)) throw new InvalidArgumentError(`--federation-id ${id}: a federation id is 64 lowercase hex digits (fedgrow federation init prints it)`)
  if (network === undefined) throw new InvalidArgumentError('--federation-id needs --network: the manifest is fetched from the federation\'s peers, found through the network\'s DHT')
  process.stderr.write(`fedgrow node: looking up federation ${id.slice(0, 16)}… on ${network.name}\n`)
  return await lookupManifest(network, id, log, MANIFEST_LOOKUP_MS)
}

export const nodeCommand: Command = {
  name: 'node',
  summary: 'Run a federation peer: grow your small model with Dual-LiGO, averaging Global-LiGO with your peers.',
  details: [
    'Prints its peer id and multiaddrs on start (hand one to others as --bootstrap), then one line per round.',
    'Only Global-LiGO updates leave this machine: your data, small model, Local-LiGO and grown models stay.',
    'The grown target model is saved as STATE-DIR/target.fgm at the end. Ctrl-C stops cleanly.'
  ].join('\n'),
  flags: {
    federation: { type: 'string', value: 'FILE', help: 'the federation manifest (fedgrow federation init)' },
    'federation-id': { type: 'string', value: 'ID', help: 'join by id alone: fetch the manifest from the federation\'s peers (needs --network)' },
    network: { type: 'string', value: 'NAME|FILE', help: 'join through a network\'s DHT: a shipped preset (local, amino) or a preset file (fedgrow testnet up --out)' },
    model: { type: 'string', value: 'FILE', help: 'your small pre-trained model (.fgm)' },
    data: { type: 'string', value: 'SPEC', help: `your data: ${DATA_SPEC_HELP}`, default: 'mnist' },
    shard: { type: 'string', value: 'i/N', help: 'use only part i of N of the data (for trials on shared data)', default: '0/1' },
    partition: { type: 'string', value: 'HOW', help: 'how --shard cuts the data (default: the manifest\'s task.partition)' },
    seed: { type: 'string', value: 'N', help: 'seed of the train/test split and shards (same on every peer of a trial)', default: '0' },
    listen: { type: 'string', value: 'MULTIADDR', help: 'address to listen on', default: '/ip4/127.0.0.1/tcp/0', multiple: true },
    announce: { type: 'string', value: 'MULTIADDR', help: 'address to announce instead of the listen address', multiple: true },
    bootstrap: { type: 'string', value: 'MULTIADDR', help: 'a peer to start from, with /p2p/PEER-ID (also read from the manifest)', multiple: true },
    psk: { type: 'string', value: 'FILE', help: 'the pre-shared key of a private federation (its manifest says so)' },
    identity: { type: 'string', value: 'FILE', help: 'your private key file, created if missing (default: STATE-DIR/identity.key)' },
    'state-dir': { type: 'string', value: 'DIR', help: 'where this peer keeps its state and writes target.fgm' },
    rounds: { type: 'string', value: 'R', help: 'stop after round R (default: the manifest\'s rounds)' },
    ...METRICS_FLAG,
    ...DASHBOARD_FLAG,
    ...LOG_FLAGS,
    local: { type: 'boolean', help: 'many peers share this machine\'s IP: turn off gossipsub\'s IP colocation penalty' }
  },
  computeInWorkers: true,
  async run (flags) {
    const { log, onProgress } = readLogging(flags)
    const networkName = optionalString(flags, 'network')
    const network = networkName === undefined ? undefined : loadNetworkPreset(networkName)
    const manifest = await readOrFetchManifest(flags, network, log)
    const stateDir = stringFlag(flags, 'state-dir')
    mkdirSync(stateDir, { recursive: true })
    const modelPath = stringFlag(flags, 'model')
    const small = readModelFile(modelPath)
    // Checked here, before any network start, so that a model of another task is a plain error.
    const plan = planFor(manifest, small.config)
    const partition = parsePartition(optionalString(flags, 'partition') ?? manifest.task.partition)
    // Texts are tokenized as the federation says (planFor checked that the small model agrees).
    const tokenizer = isTextConfig(plan.small) ? plan.small.tokenizer : undefined
    const data = loadShard(stringFlag(flags, 'data'), parseShard(stringFlag(flags, 'shard')), partition, numberFlag(flags, 'seed', 0, 2 ** 32 - 1, true), tokenizer)
    checkModelReads(small.config, data.train, modelPath, false)
    const privateKey = await loadOrCreateIdentity(optionalString(flags, 'identity') ?? join(stateDir, 'identity.key'))
    const controller = new AbortController()
    const stop = (): void => {
      process.stderr.write('fedgrow node: stopping (Ctrl-C again to force)\n')
      controller.abort()
      process.once('SIGINT', () => process.exit(130))
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    const rounds = optionalString(flags, 'rounds')
    const psk = optionalString(flags, 'psk')
    const pool = await startComputePool({ backend: parseBackendChoice(optionalString(flags, 'backend')) })
    process.stderr.write(`fedgrow: compute backend ${pool.backend.name} (${pool.backend.source}) in a worker thread; the network stays on the main thread\n`)
    const metrics = await serveMetricsFlag(flags, 'fedgrow node')
    const dashboard = await serveDashboardFlag(flags, `fedgrow node: ${manifest.name}`, 'fedgrow node')
    try {
      await runPeer({
        manifest,
        small,
        data,
        privateKey,
        listen: flags.listen as string[],
        announce: (flags.announce as string[] | undefined) ?? [],
        bootstrap: [...((flags.bootstrap as string[] | undefined) ?? []), ...(manifest.bootstrap ?? []), ...(network?.bootstrap ?? [])],
        ...(network !== undefined ? { network: { dhtProtocol: network.dhtProtocol, addresses: network.addresses } } : {}),
        stateDir,
        compute: { pool },
        ...(rounds !== undefined ? { rounds: numberFlag(flags, 'rounds', 1, 1000000, true) } : {}),
        log: dashboard === undefined ? log : teeLogger(log, dashboard.publish),
        onProgress,
        localNetwork: flags.local === true,
        ...(psk !== undefined ? { preSharedKey: readSwarmKey(psk) } : {}),
        ...(metrics !== undefined ? { metricsRegistry: metrics.registry } : {}),
        signal: controller.signal
      })
    } finally {
      await pool.close()
      await metrics?.close()
      await dashboard?.close()
    }
  }
}
