/**
 * Network presets: where a node starts when it joins a network rather than a list of addresses
 * (`fedgrow node --network NAME|FILE`). A preset names bootstrap multiaddrs, the Kademlia protocol the
 * network's DHT speaks, which addresses peers may exchange through it, and optionally a default
 * federation id. Validation is strict, as for manifests.
 */
import { isSha256Hex } from './canonical.js'
import { DEFAULT_DHT_PROTOCOL } from './constants.js'
import { InvalidManifestError } from './errors.js'

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

function fail (field: string, value: unknown, rule: string): never {
  throw new InvalidManifestError(`network preset ${field} = ${JSON.stringify(value)}: ${rule}`)
}

export function validateNetworkPreset (value: unknown): NetworkPreset {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('(root)', value, 'must be an object')
  const o = value as Record<string, unknown>
  const known = ['name', 'bootstrap', 'dhtProtocol', 'addresses', 'federation', 'description']
  for (const k of Object.keys(o)) if (!known.includes(k)) fail(k, o[k], `is not a known field (known: ${known.join(', ')})`)
  if (typeof o.name !== 'string' || o.name.length === 0 || o.name.length > 100) fail('name', o.name, 'must be a string of 1 to 100 characters')
  if (!Array.isArray(o.bootstrap) || o.bootstrap.length === 0 || o.bootstrap.length > 256 || !o.bootstrap.every(b => typeof b === 'string' && b.startsWith('/') && b.length < 1024)) {
    fail('bootstrap', o.bootstrap, 'must be a list of 1 to 256 multiaddrs')
  }
  const dhtProtocol = o.dhtProtocol ?? DEFAULT_DHT_PROTOCOL
  if (typeof dhtProtocol !== 'string' || !/^\/[\x21-\x7e]{1,200}$/.test(dhtProtocol)) fail('dhtProtocol', dhtProtocol, 'must be a protocol id such as /fedgrow/kad/1.0.0')
  const addresses = o.addresses ?? 'public'
  if (addresses !== 'public' && addresses !== 'any') fail('addresses', addresses, 'must be "public" or "any"')
  if (o.federation !== undefined && !isSha256Hex(o.federation)) fail('federation', o.federation, 'must be a federation id (64 lowercase hex digits)')
  return { name: o.name, bootstrap: o.bootstrap as string[], dhtProtocol, addresses, ...(o.federation !== undefined ? { federation: o.federation as string } : {}) }
}
