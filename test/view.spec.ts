/**
 * View completion's rule by hand: whom a peer counts as a participant on its peers' word (view.ts).
 */
import assert from 'node:assert/strict'
import { PeerViews, vouchedParticipants } from '../node/federation/view.js'
import { LIMITS } from '../protocol/constants.js'

const answer = (entries: Record<string, number>): Map<string, number> => new Map(Object.entries(entries))

describe('view completion: whom peers vouch for', () => {
  it('counts a participant that two answers name, and not one that a single answer names', () => {
    const vouched = vouchedParticipants([answer({ X: 3, Y: 3 }), answer({ X: 2 })], 2)
    assert.deepEqual([...vouched], [['X', 2]])
  })

  it('takes the second latest round named, so that one peer naming a late round keeps nobody alive', () => {
    const vouched = vouchedParticipants([answer({ X: 9 }), answer({ X: 4 }), answer({ X: 1 })], 2)
    assert.deepEqual([...vouched], [['X', 4]])
  })

  it('needs as many answers as it is told, and counts nobody from no answers', () => {
    assert.deepEqual([...vouchedParticipants([answer({ X: 1 }), answer({ X: 1 })], 3)], [])
    assert.deepEqual([...vouchedParticipants([], 2)], [])
    assert.deepEqual([...vouchedParticipants([answer({ X: 5 })], 1)], [['X', 5]])
  })
})

describe('view completion: one peer\'s views, round by round', () => {
  const none = (): boolean => false
  const entries = (round: number, ...peers: string[]): Array<{ peer: string, round: number }> => peers.map(peer => ({ peer, round }))

  it(`asks each peer once a round, and at most ${LIMITS.viewAsksPerRound} a round`, () => {
    const views = new PeerViews()
    assert.deepEqual(views.toAsk(['B', 'C']), ['B', 'C'])
    assert.deepEqual(views.toAsk(['B', 'D', 'E']), ['D'])
    views.newRound()
    assert.deepEqual(views.toAsk(['B']), ['B'])
  })

  it('counts a name two answers of one round give, at a round no later than that one, and forgets it once it is too silent', () => {
    const views = new PeerViews()
    views.record('B', entries(4, 'X', 'Y'), 4, none)
    assert.deepEqual([...views.current(4, 3)], [], 'one answer vouches for nobody')
    views.newRound()
    views.record('C', entries(4, 'Y'), 5, none)
    assert.deepEqual([...views.current(5, 3)], [], 'answers of different rounds do not add up')
    views.record('C', entries(9, 'X'), 5, none)
    views.record('D', entries(8, 'X'), 5, none)
    assert.deepEqual([...views.current(5, 3)], [['X', 5]], 'rounds 9 and 8 named in round 5 count as 5')
    assert.deepEqual([...views.current(8, 3)], [['X', 5]], 'kept while within the silent rounds')
    assert.deepEqual([...views.current(9, 3)], [], 'then forgotten')
  })

  it('takes neither the word of an ignored peer nor its name', () => {
    const views = new PeerViews()
    const banned = (peer: string): boolean => peer === 'Z'
    views.record('Z', entries(1, 'X'), 1, banned)
    views.record('B', entries(1, 'X', 'Z'), 1, banned)
    views.record('C', entries(1, 'Z'), 1, banned)
    assert.deepEqual([...views.names()], [])
  })
})

