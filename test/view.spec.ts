/**
 * View completion's rule by hand: whom a peer counts as a participant on its peers' word (view.ts).
 */
import assert from 'node:assert/strict'
import { vouchedParticipants } from '../node/federation/view.js'

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
