/**
 * Network presets: where a node starts when it joins a network rather than a list of addresses
 * (`fedgrow node --network NAME|FILE`). A preset names bootstrap multiaddrs, the Kademlia protocol the
 * network's DHT speaks, which addresses peers may exchange through it, and optionally a default
 * federation id. Validation is strict, as for manifests.
 */
import { DEFAULT_DHT_PROTOCOL } from './constants.js'
import { InvalidManifestError } from './errors.js'
import { checks } from './validate.js'
import type { Fail } from './validate.js'

export interface NetworkPreset {
  name: string
  /** Full multiaddrs with /p2p/PEER-ID (or /dnsaddr/...). */
  bootstrap: string[]
  dhtProtocol: string
  /**
   * `public`: DHT records keep only public addresses (the internet). `any`: private and loopback ones too
   * (a LAN, or a testnet rehearsed on one machine).
   */
  addresses: 'public' | 'any'
  /** A federation id to join when the user names none. */
  federation?: string
}

const fail: Fail = (path, value, rule) => {
  throw new InvalidManifestError(`network preset${path === '' ? '' : ` ${path}`} = ${JSON.stringify(value)}: ${rule}`)
}
const { object, str, hash, strings } = checks(fail)

export function validateNetworkPreset (value: unknown): NetworkPreset {
  const o = object(value, '', ['name', 'bootstrap'], ['dhtProtocol', 'addresses', 'federation', 'description'])
  const name = str(o.name, 'name', 100)
  const bootstrap = strings(o.bootstrap, 'bootstrap', 256, 'multiaddr', b => b.startsWith('/') && b.length < 1024)
  if (bootstrap.length === 0) fail('bootstrap', bootstrap, 'must name at least one multiaddr')
  const dhtProtocol = o.dhtProtocol ?? DEFAULT_DHT_PROTOCOL
  if (typeof dhtProtocol !== 'string' || !/^\/[\x21-\x7e]{1,200}$/.test(dhtProtocol)) fail('dhtProtocol', dhtProtocol, 'must be a protocol id such as /fedgrow/kad/1.0.0')
  const addresses = str(o.addresses ?? 'public', 'addresses', 10, ['public', 'any']) as NetworkPreset['addresses']
  return { name, bootstrap, dhtProtocol, addresses, ...(o.federation !== undefined ? { federation: hash(o.federation, 'federation') } : {}) }
}
