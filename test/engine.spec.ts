/**
 * The round engine over an in-memory transport, one engine ("A") and scripted peers: what it
 * re-announces and whom it catches up from, which real networks only show under timing luck.
 */
import assert from 'node:assert/strict'
import { RoundEngine } from '../node/federation/engine.js'
import type { DefenceEvent, EngineComponents, RoundResult } from '../node/federation/engine.js'
import { fedAvg, strategyFor } from '../node/federation/strategy.js'
import type { Strategy } from '../node/federation/strategy.js'
import { encodePayload, globalDigest, updateHash } from '../protocol/payload.js'
import { LIMITS } from '../protocol/constants.js'
import { REANNOUNCE_MS } from '../node/federation/reannounce.js'
import { presenceInterval, presenceRound, roundGroup } from '../protocol/groups.js'
import { encodeMessage } from '../protocol/messages.js'
import { ligoParamShapes } from '../node/ligo/operator.js'
import { validateVitConfig } from '../node/model/config.js'
import { PRESETS } from '../node/simulation/presets.js'
import type { Announce, Fetch, State, View } from '../protocol/messages.js'
import type { TensorSpec } from '../protocol/payload.js'
import type { TensorMap } from '../protocol/safetensors.js'
import type { UpdateTransport } from '../node/federation/transport.js'
import type { ExchangeHandlers } from '../node/p2p/exchange.js'

const FED = 'ab'.repeat(32)
const SPEC: TensorSpec[] = [{ name: 'E', shape: [2, 2] }]
const constant = (v: number): TensorMap => ({ E: { shape: [2, 2], data: new Float32Array(4).fill(v) } })

/** `from`'s announcement of `payload` for `round`, as an honest peer would sign it. */
function announceOf (from: string, round: number, payload: Uint8Array): Announce {
  return { type: 'announce', federationId: FED, round, sampleCount: 1, payloadHash: updateHash(FED, round, from, payload), payloadBytes: payload.length, addresses: [] }
}

interface Script {
  participants: string[]
  /** Answers A's fetch of `from`'s update. */
  fetch: (from: string, request: Fetch) => Promise<Uint8Array>
  requestState?: (peer: string) => Promise<{ header: State, payload: Uint8Array }>
  /** Answers A's view request to `peer`. @default throws, as a peer without view completion does */
  requestView?: (peer: string) => Promise<View>
  /** Called after each of A's announcements, with A's handlers and a way to deliver others' announcements. */
  onAnnounce?: (own: Announce, handlers: ExchangeHandlers, deliver: (from: string, announce: Announce, told?: boolean) => void) => void
  /** Called when A tells `peer` its announcement directly; throwing fails the tell. @default delivered, nothing happens */
  onTell?: (peer: string, own: Announce, handlers: ExchangeHandlers, deliver: (from: string, announce: Announce, told?: boolean) => void) => void
}

/**
 * A scripted transport for A: what A announced on the topic, whom it told directly, whose state's round
 * and digest it asked for, and whose whole state it fetched.
 */
function scripted (script: Script): { transport: UpdateTransport, announced: Announce[], told: string[], stateAsked: string[], stateFetched: string[], viewAsked: string[], deliver: (from: string, announce: Announce, told?: boolean) => void, participantQueries: () => number } {
  let participantQueries = 0
  const announced: Announce[] = []
  const told: string[] = []
  const stateAsked: string[] = []
  const stateFetched: string[] = []
  const viewAsked: string[] = []
  let handlers: ExchangeHandlers | undefined
  let onAnnounce: ((from: string, announce: Announce, told: boolean) => void) | undefined
  const deliver = (from: string, announce: Announce, told = false): void => { onAnnounce?.(from, announce, told) }
  const transport: UpdateTransport = {
    selfId: 'A',
    addresses: () => [],
    join: async (h, receive) => {
      handlers = h
      onAnnounce = receive
    },
    announce: async (own) => {
      announced.push(own)
      if (handlers !== undefined) script.onAnnounce?.(own, handlers, deliver)
    },
    tell: async (peer, own) => {
      told.push(peer)
      if (handlers !== undefined) script.onTell?.(peer, own, handlers, deliver)
    },
    fetch: async (from, request) => await script.fetch(from, request),
    requestState: async (peer) => {
      stateFetched.push(peer)
      if (script.requestState === undefined) throw new Error('unreachable')
      return await script.requestState(peer)
    },
    requestStateHeader: async (peer) => {
      stateAsked.push(peer)
      if (script.requestState === undefined) throw new Error('unreachable')
      return (await script.requestState(peer)).header
    },
    requestView: async (peer) => {
      viewAsked.push(peer)
      if (script.requestView === undefined) throw new Error('unreachable')
      return await script.requestView(peer)
    },
    participants: () => {
      participantQueries++
      return script.participants
    },
    penalise: () => {},
    bytes: async () => ({ sent: 0, received: 0, byProtocol: {} })
  }
  return { transport, announced, told, stateAsked, stateFetched, viewAsked, deliver, participantQueries: () => participantQueries }
}

const engineOn = (transport: UpdateTransport, roundTimeoutMs: number, onReject?: EngineComponents['onReject'], onRound: EngineComponents['onRound'] = () => {}, rounds = 1): RoundEngine => new RoundEngine({
  transport,
  strategy: fedAvg,
  trainRound: async () => ({ tensors: constant(1.5), sampleCount: 1, loss: 1 }),
  onRound,
  onReject
}, { federationId: FED, expected: SPEC, rounds, scheduleRounds: 10, roundTimeoutMs, quorum: 2, initial: constant(1), completedRound: 0 })

/** A's engine with group averaging (groups of 4), training constant(1) every round; `results` gets each round's report. */
function groupEngineOn (transport: UpdateTransport, settings: { rounds: number, roundTimeoutMs: number, quorum: number }): { engine: RoundEngine, results: RoundResult[] } {
  const results: RoundResult[] = []
  const engine = new RoundEngine({ transport, strategy: fedAvg, trainRound: async () => ({ tensors: constant(1), sampleCount: 1, loss: 1 }), onRound: (r) => { results.push(r) } },
    { federationId: FED, expected: SPEC, scheduleRounds: 10, groupSize: 4, initial: constant(1), completedRound: 0, ...settings })
  return { engine, results }
}

/** `peer` fetches A's update `own` whole: it asks, and the answer's stream closes. */
function fetchWhole (handlers: ExchangeHandlers, own: Announce, peer: string): void {
  const request: Fetch = { type: 'fetch', federationId: FED, round: own.round, payloadHash: own.payloadHash }
  handlers.payload(request, peer)
  handlers.served(request, peer)
}

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

describe('round engine, scripted peers', () => {
  it('announces the tiny preset\'s Global-LiGO in a few hundred bytes: the manifest implies its tensors', async () => {
    const { heads, mlpRatio, intermediate, target } = PRESETS.tiny
    const shapes = ligoParamShapes({ from: validateVitConfig({ heads, mlpRatio, ...intermediate }), to: validateVitConfig({ heads, mlpRatio, ...target }) })
    const spec = Object.keys(shapes).sort().map(name => ({ name, shape: shapes[name] }))
    const zeros: TensorMap = Object.fromEntries(spec.map(({ name, shape }) => [name, { shape, data: new Float32Array(shape[0] * shape[1]) }]))
    const { transport, announced } = scripted({ participants: [], fetch: async () => { throw new Error('no fetches here') } })
    // As a simulated peer announces: one localhost address with its peer id.
    const address = '/ip4/127.0.0.1/tcp/45678/p2p/12D3KooWHxX5zZiWDATLphgzrbUBjcdXBZd94pvEmGMBpdvQUkNY'
    const engine = new RoundEngine({ transport: { ...transport, addresses: () => [address] }, strategy: fedAvg, trainRound: async () => ({ tensors: zeros, sampleCount: 168, loss: 1 }), onRound: () => {} },
      { federationId: FED, expected: spec, rounds: 1, roundTimeoutMs: 1_000, quorum: 1, initial: zeros, completedRound: 0 })
    await engine.join()
    await engine.run()
    const bytes = encodeMessage(announced[0]).length
    // Measured: 335 bytes; protocol version 1's tensor list and dtype made it 900.
    assert.ok(bytes <= 350, `the announcement is ${bytes} bytes`)
  })

  it('rejects an update of the announced size whose payload holds other shapes, after fetching it', async () => {
    const misshaped = encodePayload({ E: { shape: [4, 1], data: new Float32Array(4).fill(2) } })
    assert.equal(misshaped.length, encodePayload(constant(2)).length, 'the announced size is the manifest\'s')
    const rejected: string[] = []
    const { transport } = scripted({
      participants: ['B'],
      fetch: async () => misshaped,
      onAnnounce: (_own, _handlers, deliver) => { deliver('B', announceOf('B', 1, misshaped)) }
    })
    // B reported, invalidly: it counts toward the quorum of 2, so the round closes at once on A's update,
    // not at its 20 s timeout.
    const engine = engineOn(transport, 20_000, (from, reason) => { rejected.push(`${from} ${reason}`) })
    const started = Date.now()
    await engine.join()
    await engine.run()
    assert.deepEqual(rejected, ['B wrong-shape'])
    assert.equal(engine.currentGlobal.E.data[0], 1.5, 'the round closed on A\'s own update alone')
    assert.ok(Date.now() - started < 10_000, 'the banned sender counted toward the quorum')
  })

  it('does not re-announce for a partner whose update it gave up fetching: that peer is gone', async () => {
    const good = encodePayload(constant(2))
    // B's payload never arrives (LIMITS.maxFetchAttempts failures, as far apart as retries may be); C's
    // takes 3.5 s, so the round waits past a re-announcement.
    const { transport, announced, participantQueries } = scripted({
      participants: ['B', 'C'],
      fetch: async (from) => {
        if (from === 'B') throw new Error('connection refused')
        await sleep(3_500)
        return good
      },
      onAnnounce: (own, handlers, deliver) => {
        if (announced.length > 1) return
        deliver('C', announceOf('C', 1, good))
        fetchWhole(handlers, own, 'C')
        void (async () => {
          for (let i = 0; i < LIMITS.maxFetchAttempts; i++) {
            deliver('B', announceOf('B', 1, good))
            await sleep(LIMITS.fetchRetryAfterMs + 50)
          }
        })()
      }
    })
    const engine = engineOn(transport, 10_000)
    await engine.join()
    await engine.run()
    assert.equal(engine.completedRound, 1)
    assert.equal(announced.length, 1, 'C fetched our update and B never will: nothing to re-announce for')
    // The round waits 3.5 s for C with nothing to announce: it wakes on arrivals and every 2 s, never in a loop.
    assert.ok(participantQueries() < 30, `the wait looked for participants ${participantQueries()} times`)
  })

  it('retries a failed fetch only on an announcement a while later: announcements close together cannot use up a flapping link\'s attempts', async () => {
    const good = encodePayload(constant(2))
    // B's link flaps for its first 500 ms. B's announcement reaches A three times in that time (its first
    // publication, a close-time tell, a lingering re-announcement), then once more 1.5 s on.
    const started = Date.now()
    let fetches = 0
    const { transport } = scripted({
      participants: ['B'],
      fetch: async () => {
        fetches++
        if (Date.now() - started < 500) throw new Error('Remote closed connection during opening')
        return good
      },
      onAnnounce: (own, handlers, deliver) => {
        fetchWhole(handlers, own, 'B')
        if (fetches > 0) return
        void (async () => {
          for (const at of [0, 20, 40, 1_500]) {
            await sleep(at - (Date.now() - started))
            deliver('B', announceOf('B', 1, good))
          }
        })()
      }
    })
    const events: RoundResult[] = []
    const rejected: string[] = []
    const engine = engineOn(transport, 10_000, (from, reason) => { rejected.push(`${from} ${reason}`) }, (event) => { events.push(event) })
    await engine.join()
    await engine.run()
    assert.deepEqual(rejected, ['B unreachable'], 'one failed attempt')
    assert.equal(fetches, 2, 'the announcements 20 and 40 ms after the failure started no fetch')
    assert.deepEqual(events.map(e => [e.peersHeard, e.closedBy]), [[2, 'all-reported']], 'B\'s update made the round')
    assert.ok(LIMITS.fetchRetryAfterMs < REANNOUNCE_MS, 'a sender re-announcing at its shortest interval is retried each time')
  })

  it('tells again a partner whose fetch of its update broke off, and lingers until the fetch completes: asking is not holding', async () => {
    const good = encodePayload(constant(2))
    let completeB: (() => void) | undefined
    const { transport, told } = scripted({
      participants: ['B'],
      fetch: async () => good,
      onAnnounce: (own, handlers, deliver) => {
        // B asks for A's update and its transfer is cut before the stream closes: no `served`.
        handlers.payload({ type: 'fetch', federationId: FED, round: own.round, payloadHash: own.payloadHash }, 'B')
        completeB = () => { fetchWhole(handlers, own, 'B') }
        deliver('B', announceOf('B', 1, good))
      }
    })
    const engine = engineOn(transport, 10_000)
    await engine.join()
    await engine.run()
    assert.deepEqual(told, ['B'], 'told at the close, as a partner that does not hold the update')
    // After the last round, the host stops once finish() returns: not while B's next fetch is under way.
    setTimeout(() => { completeB!() }, 500)
    const lingering = Date.now()
    await engine.finish(10_000)
    const lingeredMs = Date.now() - lingering
    assert.deepEqual(told, ['B', 'B'], 'told again as the linger starts')
    assert.ok(lingeredMs >= 400 && lingeredMs < 5_000, `finish() returned ${lingeredMs} ms in, once B's fetch completed`)
  })

  it('re-announces on the topic while the round has heard from fewer peers than its quorum, and counts every announcement', async () => {
    const good = encodePayload(constant(2))
    // B hears of us (and announces itself) only after our first re-announcement, 2 s in.
    const { transport, announced } = scripted({
      participants: ['B'],
      fetch: async () => good,
      onAnnounce: (own, handlers, deliver) => {
        if (announced.length !== 2) return
        deliver('B', announceOf('B', 1, good))
        fetchWhole(handlers, own, 'B')
      }
    })
    const events: RoundResult[] = []
    const engine = engineOn(transport, 10_000, undefined, (event) => { events.push(event) })
    await engine.join()
    await engine.run()
    assert.equal(announced.length, 2)
    assert.deepEqual(events.map(e => [e.round, e.peersHeard, e.announcementsSent, e.announcementsTold]), [[1, 2, 2, 0]])
  })

  it('waits quietly for a known peer still training: after its first round, nothing is re-announced while the peer has our update', async () => {
    const good = encodePayload(constant(2))
    // B fetches each of our updates at once; its own round-2 update comes 4.5 s after ours (it trains slower).
    const { transport, announced, told } = scripted({
      participants: ['B'],
      fetch: async () => good,
      onAnnounce: (own, handlers, deliver) => {
        fetchWhole(handlers, own, 'B')
        if (own.round === 1) deliver('B', announceOf('B', 1, good))
        else setTimeout(() => { deliver('B', announceOf('B', 2, good)) }, 4_500)
      }
    })
    const events: RoundResult[] = []
    const engine = engineOn(transport, 10_000, undefined, (event) => { events.push(event) }, 2)
    await engine.join()
    await engine.run()
    assert.deepEqual(announced.map(a => a.round), [1, 2], 'no re-announcement on the topic at 2 s: B is known and holds ours')
    assert.deepEqual(told, [])
    assert.deepEqual(events.map(e => [e.round, e.peersHeard, e.announcementsSent]), [[1, 2, 1], [2, 2, 1]])
  })

  for (const tellFails of [false, true]) {
    it(tellFails ? 'falls back to the topic when a partner cannot be told' : 'tells a partner that has not fetched its update, with the quorum met, instead of the whole topic', async () => {
      const good = encodePayload(constant(2))
      // B fetches ours at once; C only once it hears of us again, 2 s in (a missed announcement).
      const { transport, announced, told } = scripted({
        participants: ['B', 'C'],
        fetch: async () => good,
        onAnnounce: (own, handlers, deliver) => {
          if (announced.length === 1) {
            deliver('B', announceOf('B', 1, good))
            fetchWhole(handlers, own, 'B')
          } else {
            deliver('C', announceOf('C', 1, good))
          }
        },
        onTell: (peer, own, handlers, deliver) => {
          if (tellFails) throw new Error('protocol not supported')
          deliver(peer, announceOf(peer, 1, good))
          fetchWhole(handlers, own, peer)
        }
      })
      const events: RoundResult[] = []
      const engine = engineOn(transport, 10_000, undefined, (event) => { events.push(event) })
      await engine.join()
      await engine.run()
      // A C that cannot be told, and so never fetched ours, is tried once more as the round closes.
      assert.deepEqual(told, tellFails ? ['C', 'C'] : ['C'])
      assert.equal(announced.length, tellFails ? 2 : 1)
      assert.deepEqual(events.map(e => [e.peersHeard, e.announcementsSent, e.announcementsTold]), [[3, tellFails ? 2 : 1, tellFails ? 2 : 1]])
    })
  }

  it('tells the partners that reported without fetching its update as the round closes, not 2 s later', async () => {
    const good = encodePayload(constant(2))
    // Our first announcement reaches nobody (a mesh still forming); B and C announce theirs, which we fetch.
    const { transport, announced, told } = scripted({
      participants: ['B', 'C'],
      fetch: async () => good,
      onAnnounce: (_own, _handlers, deliver) => {
        if (announced.length > 1) return
        deliver('B', announceOf('B', 1, good))
        deliver('C', announceOf('C', 1, good))
      }
    })
    const events: RoundResult[] = []
    const engine = engineOn(transport, 10_000, undefined, (event) => { events.push(event) })
    await engine.join()
    await engine.run()
    assert.deepEqual([...told].sort(), ['B', 'C'], 'both wait for our update: each is told it once')
    assert.equal(announced.length, 1, 'the topic hears it once')
    assert.deepEqual(events.map(e => [e.closedBy, e.peersHeard, e.announcementsTold]), [['all-reported', 3, 2]])
  })

  it('counts a payload served while it reports a round in the next round\'s report, not in none', async () => {
    const good = encodePayload(constant(2))
    let handlersOfA: ExchangeHandlers | undefined
    const ownAnnounces: Announce[] = []
    // B announces at once each round; it fetches our round-1 update only while we report round 1 (we were
    // evaluating), and our round-2 update at once.
    const { transport } = scripted({
      participants: ['B'],
      fetch: async () => good,
      onAnnounce: (own, handlers, deliver) => {
        handlersOfA = handlers
        ownAnnounces.push(own)
        deliver('B', announceOf('B', own.round, good))
        if (own.round === 2) fetchWhole(handlers, own, 'B')
      }
    })
    const events: RoundResult[] = []
    const engine = engineOn(transport, 10_000, undefined, async (event) => {
      events.push(event)
      if (event.round !== 1) return
      await sleep(20)
      assert.ok(handlersOfA?.payload({ type: 'fetch', federationId: FED, round: 1, payloadHash: ownAnnounces[0].payloadHash }, 'B') !== null, 'round 1\'s update is still served')
    }, 2)
    await engine.join()
    await engine.run()
    assert.deepEqual(events.map(e => e.payloadsServed), [0, 2], 'each payload served is in exactly one round\'s report')
  })

  it('re-announces a closed round for a straggler still in it, unless that straggler has fetched our update', async () => {
    const fromB = encodePayload(constant(2))
    const fromC = encodePayload(constant(3))
    const { transport, announced, told, deliver } = scripted({
      participants: ['B', 'C'],
      fetch: async (from) => from === 'B' ? fromB : fromC,
      onAnnounce: (own, handlers, deliverNow) => {
        if (announced.length > 1) return
        fetchWhole(handlers, own, 'B')
        deliverNow('B', announceOf('B', 1, fromB))
        deliverNow('C', announceOf('C', 1, fromC))
      }
    })
    const engine = engineOn(transport, 10_000)
    await engine.join()
    await engine.run()
    const afterRound = announced.length
    assert.deepEqual(told, ['C'], 'C reported without fetching ours: told as the round closed')
    deliver('B', announceOf('B', 1, fromB))
    assert.deepEqual(told, ['C'], 'B has our update: nothing to tell it')
    deliver('C', announceOf('C', 1, fromC))
    assert.deepEqual(told, ['C', 'C'], 'C still has not fetched ours: it hears it again, from us alone')
    assert.equal(announced.length, afterRound, 'nobody else hears it')
    engine.stop()
  })

  it('keeps an update whose local handling fails, and neither bans nor blames its sender', async () => {
    const fromB = encodePayload(constant(2))
    const { transport } = scripted({
      participants: ['B'],
      fetch: async () => fromB,
      onAnnounce: (_own, _handlers, deliver) => { deliver('B', announceOf('B', 1, fromB)) }
    })
    const rejected: string[] = []
    const warnings: string[] = []
    let global: TensorMap | undefined
    const engine = new RoundEngine({
      transport,
      strategy: fedAvg,
      trainRound: async () => ({ tensors: constant(1.5), sampleCount: 1, loss: 1 }),
      onRound: (_result, g) => { global = g },
      onReject: (from, reason) => { rejected.push(`${from}:${reason}`) },
      onWarning: (message) => { warnings.push(message) },
      onContribution: (_round, c) => { if (c.from === 'B') throw new Error('disk full') }
    }, { federationId: FED, expected: SPEC, rounds: 1, scheduleRounds: 10, roundTimeoutMs: 10_000, quorum: 2, initial: constant(1), completedRound: 0 })
    await engine.join()
    await engine.run()
    assert.deepEqual(rejected, [], 'our own failure is not the sender\'s')
    assert.deepEqual([...global!.E.data], [1.75, 1.75, 1.75, 1.75], 'B\'s update is averaged in')
    assert.equal(warnings.length, 1)
    assert.match(warnings[0], /round 1's update from B failed here.*disk full/)
  })

  it('catches up once from a peer that announced a far round, not again when its state proves it is not there', async () => {
    const good = encodePayload(constant(2))
    const initial = encodePayload(constant(1))
    const stateOfRound0 = { header: { type: 'state' as const, federationId: FED, round: 0, globalDigest: globalDigest(constant(1)), payloadBytes: initial.length, pending: [] }, payload: initial }
    let stopHostile = false
    // H announces round 9 (too far ahead to hold) every 0.5 s, and answers with the state of round 0;
    // C's update takes 4.5 s to arrive, so the round waits through two catch-up periods.
    const { transport, stateAsked } = scripted({
      participants: ['C'],
      fetch: async () => {
        await sleep(4_500)
        return good
      },
      requestState: async () => stateOfRound0,
      onAnnounce: (own, handlers, deliver) => {
        deliver('C', announceOf('C', 1, good))
        fetchWhole(handlers, own, 'C')
        void (async () => {
          while (!stopHostile) {
            deliver('H', announceOf('H', 9, good))
            await sleep(500)
          }
        })()
      }
    })
    const engine = engineOn(transport, 10_000)
    await engine.join()
    await engine.run()
    stopHostile = true
    assert.equal(engine.completedRound, 1)
    assert.deepEqual(stateAsked, ['H', 'C'], 'one catch-up, asking H and the participant C')
  })

  it('waits for an aggregation run elsewhere, answering state requests for the last completed round meanwhile', async () => {
    const payload = encodePayload(constant(2))
    let handlers: ExchangeHandlers | undefined
    const { transport } = scripted({
      participants: ['B'],
      fetch: async () => payload,
      onAnnounce: (_own, h, deliver) => {
        handlers = h
        deliver('B', announceOf('B', 1, payload))
      }
    })
    let markAsked = (): void => {}
    const asked = new Promise<void>(resolve => { markAsked = resolve })
    let comeBack = (): void => {}
    const back = new Promise<void>(resolve => { comeBack = resolve })
    // As offThread's worker: the round's contributions leave, the result comes back later.
    const elsewhere: Strategy = {
      name: 'mean',
      aggregate: async (contributions, current) => {
        markAsked()
        await back
        return fedAvg.aggregate(contributions, current)
      }
    }
    const results: RoundResult[] = []
    const engine = new RoundEngine({ transport, strategy: elsewhere, trainRound: async () => ({ tensors: constant(1), sampleCount: 1, loss: 1 }), onRound: (r) => { results.push(r) } },
      { federationId: FED, expected: SPEC, rounds: 1, scheduleRounds: 10, roundTimeoutMs: 60_000, quorum: 2, initial: constant(1), completedRound: 0 })
    await engine.join()
    const running = engine.run()
    await asked
    const during = handlers!.state().header
    assert.deepEqual([during.round, during.globalDigest], [0, globalDigest(constant(1))], 'still round 0 and the initial Global-LiGO')
    assert.equal(results.length, 0)
    comeBack()
    await running
    assert.equal(results[0].globalDigest, globalDigest(constant(1.5)), 'the mean of 1 and 2, once the aggregation came back')
    assert.equal(handlers!.state().header.round, 1)
  })

  it('closes a group round once its group has reported, when it knows of the quorum: other groups\' updates are not waited for', async () => {
    const others = ['B', 'C', 'D', 'E', 'F', 'G', 'H', 'I']
    const partners = roundGroup(FED, 1, 'A', others, 4).members
    const payload = encodePayload(constant(2))
    const { transport, announced } = scripted({
      participants: others,
      fetch: async () => payload,
      // Only A's group announces: the other group trains on, as at the back of a shared queue.
      onAnnounce: (_own, _handlers, deliver) => { for (const peer of partners) if (peer !== 'A') deliver(peer, announceOf(peer, 1, payload)) }
    })
    const { engine, results } = groupEngineOn(transport, { rounds: 1, roundTimeoutMs: 60_000, quorum: 1 + others.length })
    await engine.join()
    await engine.run()
    assert.equal(results[0].closedBy, 'all-reported', 'not at the hard deadline, waiting to hear the other group')
    assert.deepEqual([results[0].peersHeard, results[0].peersExpected], [partners.size, partners.size])
    assert.equal(announced.length, 1, 'knowing of the quorum, it need not re-announce on the topic')
  })

  it('closes a group round once its group has reported, short of the quorum, when a partner has closed it: no catch-up', async () => {
    // A knows of 8 of the 9 other participants. Its group reports, and one partner already announces
    // round 2: that partner knew of the quorum when it closed round 1, so A closes too, on its own
    // update and its group's, rather than discarding its update for a catch-up.
    const others = ['B', 'C', 'D', 'E', 'F', 'G', 'H', 'I']
    const partners = [...roundGroup(FED, 1, 'A', others, 4).members].filter(peer => peer !== 'A')
    const payload = encodePayload(constant(2))
    const { transport, stateAsked } = scripted({
      participants: others,
      fetch: async () => payload,
      onAnnounce: (own, _handlers, deliver) => {
        if (own.round !== 1) return
        for (const peer of partners) deliver(peer, announceOf(peer, 1, payload))
        deliver(partners[0], announceOf(partners[0], 2, payload))
      }
    })
    const { engine, results } = groupEngineOn(transport, { rounds: 1, roundTimeoutMs: 5_000, quorum: 2 + others.length })
    await engine.join()
    await engine.run()
    assert.equal(results[0].closedBy, 'all-reported', 'not by a catch-up, nor at the hard deadline')
    assert.deepEqual([results[0].peersHeard, results[0].caughtUp], [partners.length + 1, false])
    assert.deepEqual(stateAsked, [], 'no state asked for')
  })

  describe('view completion: a round short of its quorum asks its partners whom they know', () => {
    // A hears first-hand only of its own group among 12 participants (quorum 12). Its partners report at
    // once, and each can name the other 8: with their word, A knows of the quorum and closes as soon as
    // its group has reported; on one peer's word alone it does not, and waits to its hard deadline.
    const others = ['B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L']
    const partners = [...roundGroup(FED, 1, 'A', others, 4).members].filter(peer => peer !== 'A')
    const strangers = others.filter(peer => !partners.includes(peer))
    const payload = encodePayload(constant(2))
    const viewOf = (peer: string): View => ({ type: 'view', federationId: FED, participants: [...strangers, ...partners.filter(p => p !== peer)].map(p => ({ peer: p, round: 1 })) })

    async function runWith (answering: string[]): Promise<{ result: RoundResult, viewAsked: string[], ownView: string[] }> {
      let handlers: ExchangeHandlers | undefined
      const { transport, viewAsked } = scripted({
        participants: partners,
        fetch: async () => payload,
        onAnnounce: (own, h, deliver) => {
          handlers = h
          if (own.round === 1) for (const peer of partners) deliver(peer, announceOf(peer, 1, payload))
        },
        requestView: async (peer) => {
          if (!answering.includes(peer)) throw new Error('no view protocol')
          return viewOf(peer)
        }
      })
      const { engine, results } = groupEngineOn(transport, { rounds: 1, roundTimeoutMs: 1_500, quorum: 1 + others.length })
      await engine.join()
      await engine.run()
      return { result: results[0], viewAsked, ownView: handlers!.view().map(entry => entry.peer).sort() }
    }

    it('closes once two partners name the rest, on its group\'s updates alone', async () => {
      const { result, viewAsked, ownView } = await runWith(partners)
      assert.equal(result.closedBy, 'all-reported', 'not at the hard deadline')
      assert.equal(result.peersHeard, partners.length + 1)
      assert.deepEqual([...viewAsked].sort(), [...partners].sort(), 'each partner asked once')
      assert.deepEqual(ownView, [...partners].sort(), 'its own answer names only whom it heard from itself')
    })

    it('does not count participants on one peer\'s word', async () => {
      const { result } = await runWith(partners.slice(0, 1))
      assert.equal(result.closedBy, 'hard-deadline')
    })
  })

  it('counts a peer that announced a round it had closed as a participant of the next: a late announcement is still presence', async () => {
    // A knows of 7 peers; Z, training at the back of a shared queue, announces round 1 only after A
    // closed it. With a quorum of all 9, round 2 closes when its group reports only if A counts Z.
    const known = ['B', 'C', 'D', 'E', 'F', 'G', 'H']
    const everyone = [...known, 'Z']
    const payload = encodePayload(constant(2))
    const partnersOf = (round: number): string[] => [...roundGroup(FED, round, 'A', round === 1 ? known : everyone, 4).members].filter(p => p !== 'A')
    const deliverGroup = (round: number, deliver: (from: string, announce: Announce) => void): void => {
      for (const peer of partnersOf(round)) deliver(peer, announceOf(peer, round, payload))
    }
    const { transport, deliver } = scripted({
      participants: known,
      fetch: async () => payload,
      onAnnounce: (own, _handlers, deliverNow) => { deliverGroup(own.round, deliverNow) },
      onTell: (_peer, own, _handlers, deliverNow) => { deliverGroup(own.round, deliverNow) }
    })
    const results: RoundResult[] = []
    const engine = new RoundEngine({
      transport,
      strategy: fedAvg,
      trainRound: async () => ({ tensors: constant(1), sampleCount: 1, loss: 1 }),
      onRound: (r) => {
        results.push(r)
        if (r.round === 1) deliver('Z', announceOf('Z', 1, payload))
      }
    }, { federationId: FED, expected: SPEC, rounds: 2, scheduleRounds: 10, roundTimeoutMs: 1_000, quorum: 1 + everyone.length, groupSize: 4, initial: constant(1), completedRound: 0 })
    await engine.join()
    await engine.run()
    assert.equal(results[0].closedBy, 'hard-deadline', 'round 1 knows of 8 of the 9: short of the quorum')
    assert.equal(results[1].closedBy, 'all-reported', 'round 2 knows of Z, so of all 9')
    assert.equal(results[1].peersExpected, partnersOf(2).length + 1, 'its group is drawn from all 9')
  })

  it('tells a group round\'s update to its partners alone, on the topic only in its first round and its presence rounds', async () => {
    // 20 others: with A, 21 participants, so presenceInterval gives 3 and one of rounds 2-4 is A's presence round.
    const others = Array.from({ length: 20 }, (_, i) => `P${String(i).padStart(2, '0')}`)
    assert.equal(presenceInterval(others.length + 1), 3)
    const payload = encodePayload(constant(2))
    const partnersOf = (round: number): string[] => [...roundGroup(FED, round, 'A', others, 4).members].filter(p => p !== 'A')
    // The partners never fetch A's update: they hold it, or wait for it, as A's tells and close decide.
    const toldIn = new Map<number, string[]>()
    // Each partner announces its own update once a round, as soon as it hears of A's.
    const announcedBy = new Set<string>()
    const announceOnce = (peer: string, round: number, deliver: (from: string, announce: Announce, told?: boolean) => void, told = false): void => {
      if (announcedBy.has(`${round} ${peer}`)) return
      announcedBy.add(`${round} ${peer}`)
      deliver(peer, announceOf(peer, round, payload), told)
    }
    const { transport, announced } = scripted({
      participants: others,
      fetch: async () => payload,
      onAnnounce: (own, _handlers, deliver) => { for (const peer of partnersOf(own.round)) announceOnce(peer, own.round, deliver) },
      // A partner told A's update tells A its own (A is in its group too), before it has fetched A's:
      // A has told it already, and does not answer that tell.
      onTell: (peer, own, _handlers, deliver) => {
        toldIn.set(own.round, [...toldIn.get(own.round) ?? [], peer])
        announceOnce(peer, own.round, deliver, true)
      }
    })
    const { engine } = groupEngineOn(transport, { rounds: 4, roundTimeoutMs: 10_000, quorum: 2 })
    await engine.join()
    await engine.run()
    const presence = [2, 3, 4].filter(round => presenceRound(FED, round, 'A', others.length + 1))
    assert.equal(presence.length, 1)
    assert.deepEqual(announced.map(a => a.round), [1, ...presence], 'the first round and the presence round go to the topic, once each')
    for (const round of [2, 3, 4].filter(r => !presence.includes(r))) {
      assert.deepEqual([...toldIn.get(round) ?? []].sort(), partnersOf(round).sort(), `round ${round} is told to A's group, once: neither the close nor an answer to a partner's tell tells it again`)
    }
    for (const round of [1, ...presence]) {
      assert.deepEqual([...toldIn.get(round) ?? []].sort(), partnersOf(round).sort(), `round ${round} went to the topic: its close tells each partner that has not fetched, once`)
    }
    assert.equal(engine.completedRound, 4)
  })

  it('averages with a peer outside its group that told it its update, and tells that peer its own', async () => {
    const others = ['B', 'C', 'D', 'E', 'F', 'G', 'H', 'I']
    const partners = [...roundGroup(FED, 1, 'A', others, 4).members].filter(p => p !== 'A')
    const outsider = others.find(p => !partners.includes(p)) ?? ''
    const payloads = new Map([...partners.map(p => [p, encodePayload(constant(2))] as const), [outsider, encodePayload(constant(7))]])
    const { transport, told } = scripted({
      participants: others,
      fetch: async (from) => payloads.get(from) ?? new Uint8Array(),
      onAnnounce: (own, handlers, deliver) => {
        for (const peer of partners) {
          deliver(peer, announceOf(peer, own.round, payloads.get(peer) ?? new Uint8Array()))
          fetchWhole(handlers, own, peer)
        }
        // The outsider's view put A in its group: it tells A alone.
        deliver(outsider, announceOf(outsider, own.round, payloads.get(outsider) ?? new Uint8Array()), true)
      },
      onTell: (peer, own, handlers) => { fetchWhole(handlers, own, peer) }
    })
    const { engine, results } = groupEngineOn(transport, { rounds: 1, roundTimeoutMs: 10_000, quorum: 2 })
    await engine.join()
    await engine.run()
    assert.deepEqual(told, [outsider], 'the outsider is told A\'s update')
    assert.equal(results[0].peersHeard, partners.length + 2, 'its group, itself and the outsider')
    const mean = (1 + 2 * partners.length + 7) / (partners.length + 2)
    assert.ok(Math.abs(engine.currentGlobal.E.data[0] - mean) < 1e-6, `ended on ${engine.currentGlobal.E.data[0]}, not ${mean}`)
  })

  describe('catch-up', () => {
    interface CatchUp { value: number, defences: DefenceEvent[], stateAsked: string[], stateFetched: string[] }
    /**
     * A's catch-up, holding round 1 at 1, from peers that each claim a round-2 state of `claimed[peer]`
     * everywhere; `served[peer]`, when given, is what that peer's payload holds instead.
     */
    async function catchUpFrom (claimed: Record<string, number>, options: { strategy?: Strategy, groupSize?: number, served?: Record<string, number> } = {}): Promise<CatchUp> {
      const defences: DefenceEvent[] = []
      const { transport, stateAsked, stateFetched } = scripted({
        participants: Object.keys(claimed),
        fetch: async () => { throw new Error('no fetches here') },
        requestState: async (peer) => {
          const payload = encodePayload(constant(options.served?.[peer] ?? claimed[peer]))
          return { header: { type: 'state', federationId: FED, round: 2, globalDigest: globalDigest(constant(claimed[peer])), payloadBytes: payload.length, pending: [] }, payload }
        }
      })
      const engine = new RoundEngine({ transport, strategy: options.strategy ?? fedAvg, trainRound: async () => { throw new Error('no training here') }, onRound: () => {}, onDefence: (d) => { defences.push(d) } },
        { federationId: FED, expected: SPEC, rounds: 3, roundTimeoutMs: 1_000, quorum: 2, initial: constant(1), completedRound: 1, ...(options.groupSize !== undefined ? { groupSize: options.groupSize } : {}) })
      assert.equal(await engine.catchUp([]), 2)
      return { value: engine.currentGlobal.E.data[0], defences, stateAsked, stateFetched }
    }

    it('asks every peer for its round and digest, and fetches only the state it adopts, past a peer whose payload does not match its claim', async () => {
      const { value, defences, stateAsked, stateFetched } = await catchUpFrom({ B: 2, C: 2, D: 2 }, { served: { B: 3 } })
      assert.equal(value, 2)
      assert.deepEqual(stateAsked, ['B', 'C', 'D'])
      assert.deepEqual(stateFetched, ['B', 'C'], 'B\'s payload breaks its claim; C\'s is the one adopted, and D\'s is not fetched')
      assert.deepEqual(defences.map(d => d.event === 'state-rejected' && `${d.from} ${d.reason}`), ['B hash-mismatch'])
    })

    it('ranks the other claims again once every peer that claimed the chosen state was banned for what it sent', async () => {
      const { value, stateFetched } = await catchUpFrom({ B: 3, C: 3, D: 3, E: 2, F: 2 }, { served: { B: 4, C: 4, D: 4 } })
      assert.equal(value, 2)
      assert.deepEqual(stateFetched, ['B', 'C', 'D', 'E'])
    })

    describe('with group averaging', () => {
      it('fetches each distinct state once and weighs it by the peers that claimed it', async () => {
        const { value, stateFetched } = await catchUpFrom({ B: 1.1, C: 1.1, D: 1.3 }, { groupSize: 4 })
        assert.deepEqual(stateFetched, ['B', 'D'])
        assert.ok(Math.abs(value - (2 * 1.1 + 1.3) / 3) < 1e-6, `adopted ${value}, not the mean of B, C and D`)
      })

      it('drops a state farther from its Global-LiGO than an update may lie', async () => {
        // 1000 everywhere lies ~2,000 from a Global-LiGO of norm 2, beyond 10 x max(norm, 1).
        const { value, defences } = await catchUpFrom({ B: 1.1, C: 1.2, D: 1000 }, { groupSize: 4 })
        assert.ok(Math.abs(value - 1.15) < 1e-6, `adopted ${value}, not the mean of B and C`)
        assert.deepEqual(defences.map(d => d.event === 'state-dropped' && d.from), ['D'])
      })

      it('takes the median of the states when the manifest\'s rule is robust', async () => {
        // 9 lies 16 from it, within the bound: the mean would move 2.6 towards it, the median not at all.
        const { value } = await catchUpFrom({ B: 1.1, C: 1.2, D: 9 }, { groupSize: 4, strategy: strategyFor({ rule: 'centered-clip' }) })
        assert.ok(Math.abs(value - 1.2) < 1e-6, `adopted ${value}, not the median 1.2`)
      })
    })
  })
})

