/**
 * Joining through a testnet: bootstrap/DHT nodes that do no training, and federation peers that are
 * given only the testnet's addresses and the federation id. They find each other through the DHT, the
 * late ones fetch the manifest (checked against the id), and they federate to one Global-LiGO.
 */
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { runPeer } from '../node/peer.js'
import { startTestnet } from '../node/testnet.js'
import { lookupManifest } from '../node/p2p/manifest-exchange.js'
import { validateVitConfig } from '../node/model/config.js'
import { splitTrainTest } from '../node/data/dataset.js'
import { federationId, validateManifest } from '../protocol/manifest.js'
import { DEFAULT_DHT_PROTOCOL } from '../protocol/constants.js'
import { modelData, roundStory, toyDataset, useBackend } from './helpers.js'
import { tinyManifest } from './fixtures.js'
import type { LogEvent } from '../node/log.js'
import type { Manifest } from '../protocol/manifest.js'
import type { NetworkPreset } from '../protocol/network.js'

const small = validateVitConfig({ imageSize: 8, patchSize: 4, numClasses: 4, heads: 2, mlpRatio: 1, dim: 8, layers: 1 })

async function federationPeer (manifest: Manifest, preset: NetworkPreset, index: number, events: LogEvent[]): Promise<ReturnType<typeof runPeer>> {
  return await runPeer({
    manifest,
    small: modelData(small, index),
    data: splitTrainTest(toyDataset(64, 300 + index), 0.25, index),
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: preset.bootstrap,
    network: { dhtProtocol: preset.dhtProtocol, addresses: preset.addresses },
    stateDir: mkdtempSync(join(tmpdir(), `fedgrow-testnet${index}-`)),
    localNetwork: true,
    lingerMs: 5_000,
    log: (e) => { events.push(e) }
  })
}

describe('testnet: DHT discovery and manifests by id', function () {
  this.timeout(180_000)
  before(async () => { await useBackend('wasm') })

  it('peers that know only the bootstrap addresses and the federation id find each other and federate', async () => {
    const testnet = await startTestnet({ nodes: 2, host: '127.0.0.1', port: 0, dhtProtocol: DEFAULT_DHT_PROTOCOL, addresses: 'any', seed: 'test', name: 'test' })
    try {
      const manifest = validateManifest({ ...tinyManifest({ rounds: 2, quorum: 3, roundTimeoutMs: 60_000 }), name: 'testnet-federation' })
      const id = federationId(manifest)
      const events: LogEvent[][] = [[], [], []]
      // The federation's creator holds the manifest; the others start from its id alone.
      const creator = federationPeer(manifest, testnet.preset, 0, events[0])
      const joiners = [1, 2].map(async (i) => {
        const fetched = await lookupManifest(testnet.preset, id, (e) => { events[i].push(e) }, 60_000)
        assert.equal(federationId(fetched), id)
        return await federationPeer(fetched, testnet.preset, i, events[i])
      })
      const results = await Promise.all([creator, ...joiners])
      assert.equal(new Set(results.map(r => r.globalDigest)).size, 1, `one Global-LiGO:\n${events.map(roundStory).join('\n-----\n')}`)
      assert.ok(results.every(r => r.completedRound === 2))
      for (const i of [1, 2]) assert.ok(events[i].some(e => e.event === 'manifest-fetched'), `peer ${i} fetched the manifest`)
      assert.ok(events.some(peerEvents => peerEvents.some(e => e.event === 'discovered' && e.via === 'dht')), 'peers were found through the DHT')
      const bootstrapIds = new Set(testnet.preset.bootstrap.map(a => a.split('/p2p/')[1]))
      for (const peerEvents of events) {
        const rounds = peerEvents.filter(e => e.event === 'round')
        assert.ok(rounds.some(r => r.peersHeard === 3), 'a round held all three peers')
        assert.ok(!peerEvents.some(e => e.event === 'update-accepted' && bootstrapIds.has(String(e.from))), 'testnet nodes take no part in rounds')
      }
    } finally {
      await testnet.stop()
    }
  })
})
