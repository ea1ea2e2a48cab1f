import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { startTestnet } from '../../node/testnet.js'
import { InvalidArgumentError } from '../../node/errors.js'
import { DEFAULT_DHT_PROTOCOL } from '../../protocol/constants.js'
import { choiceFlag, numberFlag, optionalString, stringFlag } from '../args.js'
import type { Command } from '../args.js'

export const testnetCommand: Command = {
  name: 'testnet',
  summary: 'Run bootstrap/DHT nodes for a network: `fedgrow testnet up --nodes 3 --out mynet.json`.',
  details: [
    'The nodes do no training: they answer DHT queries, through which federation peers that know only',
    'these addresses and a federation id find each other (`fedgrow node --network mynet.json`). Prints',
    'the nodes\' multiaddrs and writes a network preset for them. The defaults reproduce the shipped',
    '`local` preset (127.0.0.1, ports 4101-4103, identities from public seeds: for rehearsal only). On a',
    'server: --host 0.0.0.0 --announce-host PUBLIC-IP --keys-dir DIR --addresses public, and open the',
    'TCP ports. Runs until Ctrl-C.'
  ].join('\n'),
  positionals: 'up',
  flags: {
    nodes: { type: 'string', value: 'N', help: 'bootstrap/DHT nodes to run', default: '3' },
    host: { type: 'string', value: 'IP', help: 'address to listen on', default: '127.0.0.1' },
    port: { type: 'string', value: 'PORT', help: 'first TCP port; node i listens on PORT + i (0: any free ports)', default: '4101' },
    'announce-host': { type: 'string', value: 'IP', help: 'public IPv4 address to advertise instead of the listen address' },
    addresses: { type: 'string', value: 'SCOPE', help: 'addresses kept in DHT records: public (the internet) or any (a LAN, or this machine)', default: 'any' },
    'dht-protocol': { type: 'string', value: 'ID', help: 'Kademlia protocol id of the network', default: DEFAULT_DHT_PROTOCOL },
    'keys-dir': { type: 'string', value: 'DIR', help: 'keep node identities here (stable addresses across restarts); default: public seeds' },
    relay: { type: 'boolean', help: 'also relay (circuit relay v2) for peers behind NATs; run it on a node with a public address' },
    name: { type: 'string', value: 'NAME', help: 'the network\'s name in the preset', default: 'local' },
    out: { type: 'string', value: 'FILE', help: 'write the network preset here' }
  },
  async run (flags, positionals) {
    if (positionals[0] !== 'up' || positionals.length !== 1) throw new InvalidArgumentError('usage: fedgrow testnet up [flags]')
    const keysDir = optionalString(flags, 'keys-dir')
    const announceHost = optionalString(flags, 'announce-host')
    const testnet = await startTestnet({
      nodes: numberFlag(flags, 'nodes', 1, 64, true),
      host: stringFlag(flags, 'host'),
      port: numberFlag(flags, 'port', 0, 65535 - 64, true),
      ...(announceHost !== undefined ? { announceHost } : {}),
      dhtProtocol: stringFlag(flags, 'dht-protocol'),
      addresses: choiceFlag(flags, 'addresses', ['public', 'any'] as const),
      ...(keysDir !== undefined ? { keysDir } : { seed: 'fedgrow-local-testnet' }),
      name: stringFlag(flags, 'name'),
      relay: flags.relay === true
    })
    const text = JSON.stringify(testnet.preset, null, 2) + '\n'
    const out = optionalString(flags, 'out')
    if (out !== undefined) {
      mkdirSync(dirname(out), { recursive: true })
      writeFileSync(out, text)
    }
    process.stdout.write(`testnet ${testnet.preset.name} up, ${testnet.hosts.length} nodes:\n${testnet.preset.bootstrap.map(a => `  ${a}`).join('\n')}\n${out !== undefined ? `preset written to ${out}` : text}\n(Ctrl-C stops)\n`)
    await new Promise<void>(resolve => {
      process.once('SIGINT', resolve)
      process.once('SIGTERM', resolve)
    })
    await testnet.stop()
  }
}
