/**
 * A testnet you can run: N bootstrap nodes that do no training, only DHT (server mode), so that
 * federation peers given only their addresses and a federation id find each other. Identities come from
 * key files (stable addresses across restarts) or, for the `local` preset, from public seeds.
 */
import { join } from 'node:path'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { startHost } from './p2p/host.js'
import { loadOrCreateIdentity } from './p2p/identity.js'
import { sha256Hex } from '../protocol/canonical.js'
import type { PrivateKey } from '@libp2p/interface'
import type { NetworkPreset } from '../protocol/network.js'
import type { StartedHost } from './p2p/host.js'

export interface TestnetInit {
  nodes: number
  /** Listen host (e.g. 127.0.0.1, or 0.0.0.0 on a server) and first port; node i listens on port + i. */
  host: string
  port: number
  /** Addresses to announce instead (a server's public IP); node i uses port + i. */
  announceHost?: string
  dhtProtocol: string
  addresses: NetworkPreset['addresses']
  /** Where node i's key is kept (created if missing); without it, keys come from `seed`. */
  keysDir?: string
  /** Seed for public, reproducible identities (the shipped `local` preset). */
  seed?: string
  /** Also act as circuit relays (v2) for peers behind NATs. */
  relay?: boolean
  name: string
}

export interface Testnet {
  preset: NetworkPreset
  hosts: StartedHost[]
  stop: () => Promise<void>
}

/** The identity of testnet node `index`: a key file, or a key derived from a public seed. */
export async function testnetKey (index: number, init: Pick<TestnetInit, 'keysDir' | 'seed'>): Promise<PrivateKey> {
  if (init.keysDir !== undefined) return await loadOrCreateIdentity(join(init.keysDir, `node${index}.key`))
  const seed = Buffer.from(sha256Hex(new TextEncoder().encode(`${init.seed ?? 'fedgrow-testnet'}:${index}`)), 'hex')
  return await generateKeyPairFromSeed('Ed25519', seed)
}

export async function startTestnet (init: TestnetInit): Promise<Testnet> {
  const hosts: StartedHost[] = []
  try {
    for (let i = 0; i < init.nodes; i++) {
      const announce = init.announceHost === undefined ? [] : [`/ip4/${init.announceHost}/tcp/${init.port + i}`]
      const bootstrap = hosts.map(h => `${h.libp2p.getMultiaddrs()[0].toString()}`)
      hosts.push(await startHost({
        privateKey: await testnetKey(i, init),
        listen: [`/ip4/${init.host}/tcp/${init.port === 0 ? 0 : init.port + i}`],
        announce,
        bootstrap,
        ipColocationPenalty: init.addresses !== 'any',
        dht: { protocol: init.dhtProtocol, addresses: init.addresses },
        ...(init.relay === true ? { nat: { relayServer: true, reachableViaRelay: false } } : {})
      }))
    }
  } catch (err) {
    await Promise.all(hosts.map(async h => { await h.stop() }))
    throw err
  }
  const preset: NetworkPreset = {
    name: init.name,
    bootstrap: hosts.map(h => h.libp2p.getMultiaddrs()[0].toString()),
    dhtProtocol: init.dhtProtocol,
    addresses: init.addresses
  }
  return { preset, hosts, stop: async () => { await Promise.all(hosts.map(async h => { await h.stop() })) } }
}
