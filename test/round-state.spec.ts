import assert from 'node:assert/strict'
import { CATCH_UP_GRACE_MS, decide, partnerClosed, peersAhead } from '../node/federation/round-state.js'
import type { RoundView } from '../node/federation/round-state.js'
import { REANNOUNCE_MAX_MS, REANNOUNCE_MS, ReannounceSchedule } from '../node/federation/reannounce.js'

/** Us (a) and two peers (b, c); our update arrived at t = 1,000; the round waits 3 s after that, 30 s at most. */
function view (overrides: Partial<RoundView> = {}): RoundView {
  return {
    expected: new Set(['a', 'b', 'c']),
    contributed: new Set(['a']),
    excluded: new Set(),
    knownElsewhere: new Set(),
    quorum: 2,
    partnerClosed: false,
    firstSeenAt: 1_000,
    waitMs: 3_000,
    hardDeadlineAt: 31_000,
    ahead: [],
    lastCatchUpAt: 0,
    ...overrides
  }
}

describe('round decisions', () => {
  it('closes as soon as every expected peer has reported and the quorum is met', () => {
    assert.deepEqual(decide(view({ contributed: new Set(['a', 'b', 'c']) }), 1_500), { action: 'close', because: 'all-reported' })
    // c was rejected: it reported, invalidly, so it is not waited for and counts toward the quorum.
    assert.deepEqual(decide(view({ contributed: new Set(['a', 'b']), excluded: new Set(['c']) }), 1_500), { action: 'close', because: 'all-reported' })
  })

  it('waits for the quorum even when everyone it knows of has reported', () => {
    assert.deepEqual(decide(view({ expected: new Set(['a']), contributed: new Set(['a']) }), 1_500), { action: 'wait', until: 31_000 }, 'until the hard deadline')
    assert.deepEqual(decide(view({ expected: new Set(['a']), contributed: new Set(['a']), quorum: 1 }), 1_500), { action: 'close', because: 'all-reported' })
  })

  it('counts the other groups\' participants toward the quorum, not toward whom it waits for', () => {
    const ownGroupDone = view({ expected: new Set(['a', 'b']), contributed: new Set(['a', 'b']), quorum: 4 })
    assert.deepEqual(decide(ownGroupDone, 1_500), { action: 'wait', until: 31_000 }, 'two peers known of four')
    assert.deepEqual(decide({ ...ownGroupDone, knownElsewhere: new Set(['c', 'd']) }, 1_500), { action: 'close', because: 'all-reported' })
  })

  it('closes at the adaptive deadline with a quorum, and not a moment before', () => {
    const twoOfThree = view({ contributed: new Set(['a', 'b']) })
    assert.deepEqual(decide(twoOfThree, 3_999), { action: 'wait', until: 4_000 })
    assert.deepEqual(decide(twoOfThree, 4_000), { action: 'close', because: 'deadline' })
    assert.deepEqual(decide(view(), 4_000), { action: 'wait', until: 31_000 }, 'alone is not a quorum of 2')
  })

  it('closes alone at the hard deadline rather than wait forever, but never with nothing', () => {
    assert.deepEqual(decide(view(), 30_999), { action: 'wait', until: 31_000 })
    assert.deepEqual(decide(view(), 31_000), { action: 'close', because: 'hard-deadline' })
    assert.deepEqual(decide(view({ contributed: new Set() }), 60_000), { action: 'wait', until: Infinity }, 'only an arrival can change this')
  })

  it('catches up from peers ahead once they have been ahead for the grace period, then not again within it', () => {
    const ahead = view({ ahead: ['b'], aheadSince: 2_000 })
    assert.deepEqual(decide(ahead, 2_000 + CATCH_UP_GRACE_MS - 1), { action: 'wait', until: 2_000 + CATCH_UP_GRACE_MS })
    assert.deepEqual(decide(ahead, 2_000 + CATCH_UP_GRACE_MS), { action: 'catch-up', from: ['b'] })
    const justAsked = view({ ahead: ['b'], aheadSince: 2_000, lastCatchUpAt: 4_500 })
    assert.deepEqual(decide(justAsked, 4_500 + CATCH_UP_GRACE_MS - 1), { action: 'wait', until: 4_500 + CATCH_UP_GRACE_MS })
    assert.deepEqual(decide(justAsked, 4_500 + CATCH_UP_GRACE_MS), { action: 'catch-up', from: ['b'] })
  })

  it('still catches up once the peer first seen ahead is gone: others may have closed the round too', () => {
    assert.deepEqual(decide(view({ ahead: [], aheadSince: 2_000 }), 2_000 + CATCH_UP_GRACE_MS), { action: 'catch-up', from: [] })
    assert.deepEqual(decide(view({ ahead: [] }), 2_000 + CATCH_UP_GRACE_MS), { action: 'wait', until: 31_000 }, 'nobody was ever ahead')
  })

  it('closes without the quorum once its group has reported, if a partner closed the round (group averaging)', () => {
    const groupDone = view({ expected: new Set(['a', 'b']), contributed: new Set(['a', 'b']), quorum: 4, ahead: ['b'], aheadSince: 2_000 })
    assert.deepEqual(decide(groupDone, 2_500), { action: 'wait', until: 2_000 + CATCH_UP_GRACE_MS }, 'two peers known of four: a catch-up')
    assert.deepEqual(decide({ ...groupDone, partnerClosed: true }, 2_500), { action: 'close', because: 'all-reported' })
    const partnerMissing = view({ expected: new Set(['a', 'b', 'c']), contributed: new Set(['a', 'b']), quorum: 4, partnerClosed: true, ahead: ['b'], aheadSince: 2_000 })
    assert.deepEqual(decide(partnerMissing, 2_000 + CATCH_UP_GRACE_MS), { action: 'catch-up', from: ['b'] }, 'c has not reported: no close without the quorum')
  })

  it('closes rather than catches up when both are due: its own round is complete', () => {
    assert.deepEqual(decide(view({ contributed: new Set(['a', 'b', 'c']), ahead: ['b'], aheadSince: 0 }), 10_000), { action: 'close', because: 'all-reported' })
  })
})

describe('who is ahead of the round being collected', () => {
  const partners = new Set(['a', 'b'])
  const none = (): boolean => false

  it('counts a next-round announcer only if it is a partner, and one two rounds ahead or more whatever its group', () => {
    assert.deepEqual(peersAhead({ next: ['b', 'x'], afterNext: [], farther: [] }, partners, none), ['b'], 'x, another group, closes on its own time')
    // Round r + 2 is still held for its round (LIMITS.maxRoundsAhead), not among the farther ones.
    assert.deepEqual(peersAhead({ next: [], afterNext: ['y'], farther: [] }, partners, none), ['y'])
    assert.deepEqual(peersAhead({ next: [], afterNext: [], farther: ['z'] }, partners, none), ['z'])
  })

  it('says a partner closed the round in step only if one is in the next round and nobody further ahead', () => {
    assert.equal(partnerClosed({ next: ['b', 'x'], afterNext: [], farther: [] }, partners, none), true)
    assert.equal(partnerClosed({ next: ['x'], afterNext: [], farther: [] }, partners, none), false, 'x is another group')
    assert.equal(partnerClosed({ next: ['b'], afterNext: ['y'], farther: [] }, partners, none), false, 'y is two rounds ahead: we fell behind')
    assert.equal(partnerClosed({ next: ['b'], afterNext: [], farther: ['z'] }, partners, none), false)
    assert.equal(partnerClosed({ next: ['b'], afterNext: ['y'], farther: [] }, partners, peer => peer !== 'b'), true, 'y is ignored (banned, or disproved)')
    assert.equal(partnerClosed({ next: ['b'], afterNext: [], farther: [] }, partners, peer => peer === 'b'), false)
  })

  it('never counts an ignored peer (self, banned), and each peer once', () => {
    assert.deepEqual(peersAhead({ next: ['b'], afterNext: ['b', 'y'], farther: ['y', 'z'] }, partners, peer => peer === 'z'), ['b', 'y'])
  })
})

describe('when a waiting peer re-announces', () => {
  it('doubles the interval up to its cap, and starts again when a new partner appears', () => {
    const schedule = new ReannounceSchedule(0, ['a', 'b'])
    const gaps: number[] = []
    let at = 0
    for (let i = 0; i < 5; i++) {
      const due = schedule.dueAt(['a', 'b'])
      gaps.push(due - at)
      at = due
      schedule.announced(at)
    }
    assert.deepEqual(gaps, [REANNOUNCE_MS, 2 * REANNOUNCE_MS, 4 * REANNOUNCE_MS, REANNOUNCE_MAX_MS, REANNOUNCE_MAX_MS])
    assert.equal(schedule.dueAt(['a', 'b', 'c']), at + REANNOUNCE_MS, 'c has not heard of the update yet')
    assert.equal(schedule.dueAt(['a', 'b']), at + REANNOUNCE_MS, 'a partner leaving changes nothing')
  })
})
