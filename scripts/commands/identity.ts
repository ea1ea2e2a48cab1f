import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadOrCreateIdentity } from '../../node/p2p/identity.js'
import { InvalidArgumentError } from '../../node/errors.js'
import { optionalString } from '../args.js'
import type { Command } from '../args.js'

export const identityCommand: Command = {
  name: 'identity',
  summary: 'Print your peer id (creating your key if needed), e.g. for a private federation\'s --allow list.',
  details: 'Reads the same key `fedgrow node` uses: --identity FILE, or STATE-DIR/identity.key.',
  flags: {
    'state-dir': { type: 'string', value: 'DIR', help: 'the state directory you will give fedgrow node' },
    identity: { type: 'string', value: 'FILE', help: 'your private key file, created if missing' }
  },
  async run (flags) {
    const file = optionalString(flags, 'identity')
    const dir = optionalString(flags, 'state-dir')
    if (file === undefined && dir === undefined) throw new InvalidArgumentError('give --state-dir DIR or --identity FILE')
    const key = await loadOrCreateIdentity(file ?? join(dir as string, 'identity.key'))
    process.stdout.write(peerIdFromPrivateKey(key).toString() + '\n')
  }
}
