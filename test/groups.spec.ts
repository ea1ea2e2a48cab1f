/**
 * Group averaging (issue #16): the grouping rule by hand, the manifest fields, and one round among 8 real
 * libp2p peers whose round engines average in groups: each ends on its group's mean, and a peer that
 * drops out after announcing (it never serves its update) leaves its group to finish without it.
 */
import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { presenceInterval, presenceRound, roundGroup } from '../protocol/groups.js'
import { federationId, validateManifest } from '../protocol/manifest.js'
import { LIMITS, updatesTopic } from '../protocol/constants.js'
import { startHost } from '../node/p2p/host.js'
import { federationTransport } from '../node/p2p/federation-transport.js'
import { RoundEngine } from '../node/federation/engine.js'
import type { RoundResult } from '../node/federation/engine.js'
import { fedAvg } from '../node/federation/strategy.js'
import { encodePayload } from '../protocol/payload.js'
import { tinyManifest } from './fixtures.js'
import type { StartedHost } from '../node/p2p/host.js'
import type { UpdateTransport } from '../node/federation/transport.js'
import type { TensorMap } from '../protocol/safetensors.js'
import type { TensorSpec } from '../protocol/payload.js'

const FED = 'f'.repeat(64)
const names = (n: number): string[] => Array.from({ length: n }, (_, i) => `peer-${i}`)

/** Every peer's group, as each computes it, keyed by peer. */
function groupsOf (peers: string[], round: number, groupSize: number): Map<string, Set<string>> {
  return new Map(peers.map(p => [p, new Set(roundGroup(FED, round, p, peers, groupSize).members)]))
}

describe('group averaging: who averages with whom', () => {
  it('cuts 8 peers into 2 groups of 4 that every member agrees on', () => {
    const groups = groupsOf(names(8), 1, 4)
    for (const [peer, members] of groups) {
      assert.equal(members.size, 4)
      assert.ok(members.has(peer))
      for (const other of members) assert.deepEqual([...groups.get(other) ?? []].sort(), [...members].sort(), `${peer} and ${other} disagree`)
    }
    assert.equal(new Set([...groups.values()].map(g => [...g].sort().join())).size, 2)
  })

  it('keeps fewer than two groups\' worth of peers together, and spreads the rest', () => {
    assert.equal(roundGroup(FED, 1, 'peer-0', names(3), 4).members.size, 3)
    assert.equal(roundGroup(FED, 1, 'peer-0', names(7), 4).groupCount, 1)
    const sizes = [...new Set([...groupsOf(names(9), 1, 4).values()].map(g => [...g].sort().join()))].map(g => g.split(',').length).sort()
    assert.deepEqual(sizes, [4, 5])
  })

  it('counts a peer that is not in its own list of participants', () => {
    const group = roundGroup(FED, 1, 'newcomer', names(7), 4)
    assert.equal(group.groupCount, 2)
    assert.ok(group.members.has('newcomer'))
  })

  it('puts each peer on the topic once every presenceInterval rounds, about 8 peers a round whatever the federation\'s size', () => {
    assert.deepEqual([1, 8, 9, 64, 256].map(presenceInterval), [1, 1, 2, 8, 32])
    for (const n of [16, 64, 256]) {
      const peers = names(n)
      const interval = presenceInterval(n)
      const perRound = Array.from({ length: interval }, (_, r) => peers.filter(p => presenceRound(FED, r + 1, p, n)).length)
      assert.equal(perRound.reduce((a, b) => a + b, 0), n, `${n} peers: each on the topic exactly once in ${interval} rounds`)
      assert.ok(Math.max(...perRound) <= 3 * LIMITS.presenceAnnouncersPerRound, `${n} peers: ${perRound.join(', ')} on the topic per round`)
    }
  })

  it('forms the groups written out here (known answer: the rule, not roundGroup, computes them)', () => {
    // Computed outside fedgrow (Python's hashlib): SHA-256 of `fedgrow/group/2 <FED> 7 <peer>`, sorted,
    // cut into floor(14 / 4) = 3 blocks by floor(i * 3 / 14).
    const expected = [
      ['peer-1', 'peer-13', 'peer-10', 'peer-0', 'peer-6'],
      ['peer-5', 'peer-3', 'peer-9', 'peer-11', 'peer-2'],
      ['peer-7', 'peer-8', 'peer-4', 'peer-12']
    ]
    for (const members of expected) {
      for (const self of members) {
        const group = roundGroup(FED, 7, self, names(14), 4)
        assert.deepEqual([...group.members].sort(), [...members].sort(), `${self}'s group`)
        assert.equal(group.groupCount, 3)
      }
    }
  })

  it('moves at most one peer per block boundary when a view holds one participant more', () => {
    for (let n = 18; n <= 66; n++) {
      const groupCount = Math.floor(n / 4)
      // A participant that changes the number of groups re-cuts every block (protocol/README.md).
      if (Math.floor((n + 1) / 4) !== groupCount) continue
      const peers = names(n)
      for (let round = 1; round <= 3; round++) {
        const without = groupsOf(peers, round, 4)
        const withExtra = groupsOf([...peers, 'extra'], round, 4)
        // A peer that moved keeps under half of its old group; one that stayed loses at most a member to
        // each boundary (groups hold at least 4 here).
        const moved = peers.filter(p => {
          const before = without.get(p) ?? new Set<string>()
          return [...withExtra.get(p) ?? []].filter(q => before.has(q)).length * 2 < before.size
        })
        assert.ok(moved.length <= groupCount - 1, `n = ${n}, round ${round}: ${moved.length} of ${n} peers moved (${groupCount} groups)`)
      }
    }
  })

  it('draws new groups every round, the same on every peer', () => {
    const peers = names(16)
    const byRound = [1, 2, 3].map(r => [...new Set([...groupsOf(peers, r, 4).values()].map(g => [...g].sort().join()))].sort().join('|'))
    assert.equal(new Set(byRound).size, 3)
    assert.equal(byRound[0], [...new Set([...groupsOf([...peers].reverse(), 1, 4).values()].map(g => [...g].sort().join()))].sort().join('|'))
  })
})

describe('group averaging in the manifest', () => {
  it('defaults the group size, and keeps all-to-all manifests\' ids', () => {
    const base = tinyManifest({})
    const group = validateManifest({ ...base, aggregation: { rule: 'mean', averaging: 'group' } })
    assert.deepEqual(group.aggregation, { rule: 'mean', averaging: 'group', groupSize: 4 })
    const explicit = validateManifest({ ...base, aggregation: { rule: 'mean', averaging: 'all-to-all' } })
    assert.equal(federationId(explicit), federationId(validateManifest(base)))
    assert.notEqual(federationId(group), federationId(explicit))
  })

  it('names the field of a bad group setting', () => {
    const base = tinyManifest({})
    assert.throws(() => validateManifest({ ...base, aggregation: { rule: 'mean', groupSize: 4 } }), /aggregation\.groupSize.*group averaging only/)
    assert.throws(() => validateManifest({ ...base, aggregation: { rule: 'mean', averaging: 'group', groupSize: 1 } }), /aggregation\.groupSize = 1/)
    assert.throws(() => validateManifest({ ...base, aggregation: { rule: 'mean', averaging: 'ring' } }), /aggregation\.averaging/)
  })
})

describe('group averaging among 8 real libp2p peers', function () {
  this.timeout(60_000)
  const PEERS = 8
  const GROUP_SIZE = 4
  const spec: TensorSpec[] = [{ name: 'w', shape: [4] }]
  const filled = (value: number): TensorMap => ({ w: { shape: [4], data: new Float32Array(4).fill(value) } })
  /** Peer i's update: 1 + 2^i / 1000 everywhere, so no two groups' means are equal and a mean names its members. */
  const updateOf = (i: number): number => 1 + 2 ** i / 1000
  let hosts: StartedHost[] = []

  afterEach(async () => {
    await Promise.all(hosts.map(async h => { await h.libp2p.stop() }))
    hosts = []
  })

  /**
   * Starts PEERS hosts connected to one another, so that each knows every participant from the start
   * (with a partial view a peer forms groups among the peers it knows, a test of its own).
   */
  async function meshOfPeers (count = PEERS): Promise<UpdateTransport[]> {
    const topic = updatesTopic(FED)
    hosts = await Promise.all(Array.from({ length: count }, async () => await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false, scoredTopics: [topic] })))
    await Promise.all(hosts.flatMap((a, i) => hosts.slice(i + 1).map(async b => await a.libp2p.dial(b.libp2p.getMultiaddrs()[0]))))
    return hosts.map(host => federationTransport({ host, federationId: FED, maxPayloadBytes: encodePayload(filled(0)).length }))
  }

  async function untilAllSubscribed (transports: UpdateTransport[]): Promise<void> {
    const until = Date.now() + 30_000
    while (transports.some(t => t.participants().length < transports.length - 1)) {
      if (Date.now() > until) throw new Error(`peers see ${transports.map(t => t.participants().length).join(', ')} subscribers, not ${transports.length - 1} each`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }

  /**
   * `rounds` rounds on every peer; `dropOut` (a peer index) announces, never serves its update, and stops.
   * The round timeout is long enough for a loaded machine's fetches, except where a test waits it out.
   */
  async function runRounds (transports: UpdateTransport[], rounds: number, { dropOut, roundTimeoutMs = 20_000, onResult }: { dropOut?: number, roundTimeoutMs?: number, onResult?: (peer: string, result: RoundResult) => void } = {}): Promise<Map<string, number>> {
    const ends = new Map<string, number>()
    const engines = transports.map((transport, i) => {
      const wrapped: UpdateTransport = i !== dropOut
        ? transport
        : {
            ...transport,
            join: async (handlers, onAnnounce, screen) => { await transport.join({ ...handlers, payload: () => null }, onAnnounce, screen) },
            announce: async (announce) => {
              await transport.announce(announce)
              await hosts[i].libp2p.stop()
            }
          }
      return new RoundEngine({
        transport: wrapped,
        strategy: fedAvg,
        trainRound: async () => ({ tensors: filled(updateOf(i)), sampleCount: 10, loss: 0 }),
        onRound: (result, global) => {
          ends.set(transport.selfId, global.w.data[0])
          onResult?.(transport.selfId, result)
        }
      }, { federationId: FED, expected: spec, rounds, roundTimeoutMs, quorum: 2, groupSize: GROUP_SIZE, initial: filled(1), completedRound: 0 })
    })
    await Promise.all(engines.map(async e => { await e.join() }))
    await untilAllSubscribed(transports)
    await Promise.all(engines.map(async (e, i) => { if (i !== dropOut) await e.run() }).concat(dropOut === undefined ? [] : [engines[dropOut].run().catch(() => {})]))
    for (const e of engines) e.stop()
    return ends
  }

  /** The mean of the updates of `self`'s group in `round`, without `without`. */
  function groupMean (ids: string[], self: string, without?: string, round = 1): number {
    const members = [...roundGroup(FED, round, self, ids, GROUP_SIZE).members].filter(p => p !== without)
    return members.reduce((sum, p) => sum + updateOf(ids.indexOf(p)), 0) / members.length
  }

  it('ends every peer on the mean of its own group', async () => {
    const transports = await meshOfPeers()
    const ids = transports.map(t => t.selfId)
    const ends = await runRounds(transports, 1)
    assert.equal(ends.size, PEERS)
    for (const id of ids) assert.ok(Math.abs((ends.get(id) ?? NaN) - groupMean(ids, id)) < 1e-6, `${id} ended on ${ends.get(id)}, its group's mean is ${groupMean(ids, id)}`)
    assert.equal(new Set(ends.values()).size, 2, 'two groups, two means')
  })

  it('ends a later round on its group\'s mean when most peers tell their update to their group alone', async () => {
    // 12 peers: presenceInterval(12) = 2, so in round 2 only about half announce on the topic.
    const transports = await meshOfPeers(12)
    const ids = transports.map(t => t.selfId)
    const results: RoundResult[] = []
    const ends = await runRounds(transports, 2, { onResult: (_peer, result) => { if (result.round === 2) results.push(result) } })
    assert.equal(results.length, 12)
    for (const id of ids) assert.ok(Math.abs((ends.get(id) ?? NaN) - groupMean(ids, id, undefined, 2)) < 1e-6, `${id} ended on ${ends.get(id)}, its round-2 group's mean is ${groupMean(ids, id, undefined, 2)}`)
    const onTopic = results.filter(r => r.announcementsSent > 0).length
    assert.equal(onTopic, ids.filter(id => presenceRound(FED, 2, id, 12)).length, 'only the presence round\'s peers announce round 2 on the topic')
    assert.ok(onTopic < 12 && results.every(r => r.closedBy === 'all-reported'), `${onTopic} of 12 on the topic; closed by ${results.map(r => r.closedBy).join(', ')}`)
  })

  it('lets the others finish when a peer drops out mid-round, its group without it', async () => {
    const transports = await meshOfPeers()
    const ids = transports.map(t => t.selfId)
    const dropped = ids[3]
    const ends = await runRounds(transports, 1, { dropOut: 3, roundTimeoutMs: 8_000 })
    for (const id of ids.filter(p => p !== dropped)) {
      assert.ok(Math.abs((ends.get(id) ?? NaN) - groupMean(ids, id, dropped)) < 1e-6, `${id} ended on ${ends.get(id)}, its group's mean without the dropped peer is ${groupMean(ids, id, dropped)}`)
    }
  })

  it('catches a late peer up to the mean of the states it asks for, though groups disagree, fetching each distinct state once', async () => {
    const transports = await meshOfPeers()
    const ends = await runRounds(transports, 2)
    assert.equal(new Set(ends.values()).size, 2, 'two groups, two states')
    const late = await startHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], ipColocationPenalty: false, scoredTopics: [updatesTopic(FED)] })
    hosts.push(late)
    await Promise.all(hosts.slice(0, PEERS).map(async h => await late.libp2p.dial(h.libp2p.getMultiaddrs()[0])))
    const network = federationTransport({ host: late, federationId: FED, maxPayloadBytes: encodePayload(filled(0)).length })
    const fetched: string[] = []
    const transport: UpdateTransport = {
      ...network,
      requestState: async (peer, payloadBytes) => {
        fetched.push(peer)
        return await network.requestState(peer, payloadBytes)
      }
    }
    const engine = new RoundEngine({ transport, strategy: fedAvg, trainRound: async () => { throw new Error('a caught-up peer trains nothing') }, onRound: () => {} },
      { federationId: FED, expected: spec, rounds: 2, roundTimeoutMs: 5_000, quorum: 2, groupSize: GROUP_SIZE, initial: filled(1), completedRound: 0 })
    await engine.join()
    assert.equal(await engine.catchUp(transports.map(t => t.selfId)), 2)
    assert.equal(fetched.length, 2, `whole states fetched from ${fetched.join(', ')}: one per group`)
    const everyone = [...ends.values()].reduce((a, b) => a + b, 0) / ends.size
    assert.ok(Math.abs(engine.currentGlobal.w.data[0] - everyone) < 1e-6, `caught up to ${engine.currentGlobal.w.data[0]}, the peers' mean is ${everyone}`)
  })
})
