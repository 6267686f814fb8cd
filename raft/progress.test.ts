import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Progress, ProgressTracker } from './progress.js';

type Member = { id: number; match: number; learner: boolean };

/** Puts these members in `t`, in place of those it had; `match` by id, learners marked. */
function fill(t: ProgressTracker, members: readonly Member[]): ProgressTracker {
  t.progress.clear();
  for (const m of members) {
    const p = new Progress(m.id, m.match + 1, m.learner, 16, 0);
    p.match = m.match;
    t.progress.set(m.id, p);
  }
  t.membershipChanged();
  return t;
}

/** A new tracker with these members. */
function tracker(members: readonly Member[]): ProgressTracker {
  return fill(new ProgressTracker(), members);
}

/** The definition: the largest value that at least a quorum of voters has reached. */
function reference(members: ReadonlyArray<{ match: number; learner: boolean }>): number {
  const values = members.filter((m) => !m.learner).map((m) => m.match);
  if (values.length === 0) return 0;
  const quorum = Math.floor(values.length / 2) + 1;
  return values.filter((v) => values.filter((w) => w >= v).length >= quorum).reduce((a, b) => Math.max(a, b), 0);
}

const membersArb = fc.uniqueArray(fc.record({ id: fc.integer({ min: 1, max: 50 }), match: fc.integer({ min: 0, max: 20 }), learner: fc.boolean() }), {
  selector: (m) => m.id,
  maxLength: 9,
});

describe('ProgressTracker.committedIndex', () => {
  it('is the largest index a quorum of voters has matched (learners never count)', () => {
    fc.assert(
      fc.property(membersArb, (members) => {
        expect(tracker(members).committedIndex()).toBe(reference(members));
      }),
    );
  });

  it('stays right when one tracker is asked again after matches and membership change', () => {
    fc.assert(
      fc.property(fc.array(membersArb, { minLength: 1, maxLength: 6 }), (configs) => {
        const t = new ProgressTracker();
        for (const members of configs) expect(fill(t, members).committedIndex()).toBe(reference(members));
      }),
    );
  });

  it('examples: 9 7 7 5 3 -> 7; 5 3 -> 3; one voter -> its own; none -> 0', () => {
    const m = (matches: number[]): Member[] => matches.map((match, i) => ({ id: i + 1, match, learner: false }));
    expect(tracker(m([9, 7, 7, 5, 3])).committedIndex()).toBe(7);
    expect(tracker(m([3, 9, 5, 7, 7])).committedIndex()).toBe(7);
    expect(tracker(m([5, 3])).committedIndex()).toBe(3);
    expect(tracker(m([4])).committedIndex()).toBe(4);
    expect(tracker([]).committedIndex()).toBe(0);
    expect(tracker([...m([2, 2, 8]), { id: 9, match: 100, learner: true }]).committedIndex()).toBe(2);
  });
});
