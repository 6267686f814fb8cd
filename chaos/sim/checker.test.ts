// Every check must be able to fail: each test feeds the checker a hand-made trace that breaks one property and
// expects that property's violation, next to a legal trace it must accept.
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../raft/storage.js';
import { EntryType, type Entry } from '../../raft/types.js';
import { SafetyChecker } from './checker.js';
import { chainHash, dataFingerprint } from './digest.js';
import { SafetyViolation, type CheckName } from './violation.js';

const BOOT_CHAIN = 7;

function fresh(): SafetyChecker {
  return new SafetyChecker(1, 1, BOOT_CHAIN);
}

function entry(index: number, term: number, payload = index * 10 + term): Entry {
  return { index, term, type: EntryType.Normal, data: new Uint8Array([payload & 0xff, payload >> 8]) };
}

function fps(es: readonly Entry[]): number[] {
  return es.map((e) => dataFingerprint(e.data));
}

function expectViolation(check: CheckName, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SafetyViolation);
    expect((e as SafetyViolation).check).toBe(check);
    return;
  }
  throw new Error(`expected a ${check} violation`);
}

/** A log over MemoryStorage: bootstrap snapshot at 1, then `es`. */
function logOf(es: readonly Entry[]): MemoryStorage {
  const s = new MemoryStorage();
  s.applySnapshot({ metadata: { index: 1, term: 1, confState: { voters: [1, 2, 3], learners: [] } }, data: new Uint8Array(0) });
  s.append(es);
  return s;
}

describe('SafetyChecker', () => {
  it('election safety: one leader per term, whether it says so or acts so', () => {
    const c = fresh();
    c.onLeaderAct(1, 2, 'sent App');
    c.onLeaderAct(1, 2, 'sent Heartbeat');
    c.onLeaderAct(2, 3, 'sent App');
    expectViolation('election-safety', () => c.onLeaderAct(3, 2, 'sent App'));
  });

  it('one vote per member per term', () => {
    const c = fresh();
    c.onVoteGranted(2, 5, 1);
    c.onVoteGranted(2, 5, 1); // a duplicated response is the same vote
    c.onVoteGranted(2, 6, 3);
    expectViolation('single-vote', () => c.onVoteGranted(2, 5, 3));
  });

  it('log matching: same (index, term) must mean the same payload and the same history', () => {
    const c = fresh();
    const a = [entry(2, 2), entry(3, 2)];
    c.onPersistEntries(1, a, 1, fps(a));
    c.onPersistEntries(2, a, 1, fps(a));
    const other = [entry(3, 3, 99)];
    c.onPersistEntries(3, other, 2, fps(other)); // a different term at 3 is fine (it may be overwritten later)
    const forged = [entry(3, 2, 77)];
    expectViolation('log-matching', () => c.onPersistEntries(3, forged, 2, fps(forged)));
  });

  it('log matching: an entry that follows a different history is caught (conflicting suffix not truncated)', () => {
    const c = fresh();
    const leader = [entry(2, 2), entry(3, 3)];
    c.onPersistEntries(1, leader, 1, fps(leader));
    // Member 2 kept a stale (2, term 1)... then appended (3, term 3) on top of it: previous term 1, not 2.
    const stale = [entry(2, 1, 5)];
    c.onPersistEntries(2, stale, 1, fps(stale));
    const next = [entry(3, 3)];
    expectViolation('log-matching', () => c.onPersistEntries(2, next, 1, fps(next)));
  });

  it('state machine safety: every member applies the one committed sequence', () => {
    const c = fresh();
    const h2 = chainHash(BOOT_CHAIN, 2, 42);
    c.onHardState(1, 2, 2);
    c.onApply(1, 1, 2, 2, h2, 2);
    c.onApply(2, 1, 2, 2, h2, 2);
    expectViolation('state-machine-safety', () => c.onApply(3, 1, 2, 2, chainHash(BOOT_CHAIN, 2, 43), 2));
  });

  it('applying beyond the commit index or out of order is caught', () => {
    const c = fresh();
    expectViolation('state-machine-safety', () => c.onApply(1, 1, 2, 2, 5, 1));
    expectViolation('apply-order', () => c.onApply(1, 1, 3, 2, 5, 3));
  });

  it('a snapshot whose state differs from the committed sequence is caught', () => {
    const c = fresh();
    c.onHardState(1, 2, 2);
    c.onApply(1, 1, 2, 2, 1234, 2);
    c.onRestore(2, 2, 2, 1234);
    expectViolation('state-machine-safety', () => c.onRestore(3, 2, 2, 999));
  });

  it('commit never goes backwards within a life, nor below the durable value at start', () => {
    const c = fresh();
    c.onStart(1, 5);
    expectViolation('commit-monotonic', () => c.onHardState(1, 2, 4));
    const d = fresh();
    d.onStart(1, 1);
    d.onHardState(1, 2, 6);
    d.onHardState(1, 2, 6);
    expectViolation('commit-monotonic', () => d.onHardState(1, 2, 5));
  });

  it('leader completeness: a new leader must hold every entry committed before its term', () => {
    const c = fresh();
    const es = [entry(2, 2), entry(3, 2)];
    c.onHardState(1, 2, 3);
    let chain = BOOT_CHAIN;
    for (const e of es) {
      chain = chainHash(chain, e.index, 1);
      c.onApply(1, e.index - 1, e.index, e.term, chain, 3);
    }
    c.onVoteDelivered(2, 1, 3);
    c.onVoteDelivered(3, 1, 4);
    // Member 2 has the committed entries: it may lead term 3.
    c.onBecomeLeader(2, 3, [1, 2, 3], logOf(es));
    // Member 3 lost entry 3 (a different term there): it must not lead term 4.
    expectViolation('leader-completeness', () => c.onBecomeLeader(3, 4, [1, 2, 3], logOf([entry(2, 2), entry(3, 3)])));
    // Member 1 is short: its log ends before the commit index.
    const d = fresh();
    d.onHardState(1, 2, 3);
    d.onApply(1, 1, 2, 2, chainHash(BOOT_CHAIN, 2, 1), 3);
    d.onApply(1, 2, 3, 2, chainHash(chainHash(BOOT_CHAIN, 2, 1), 3, 1), 3);
    d.onVoteDelivered(2, 3, 3);
    expectViolation('leader-completeness', () => d.onBecomeLeader(2, 3, [1, 2, 3], logOf([entry(2, 2)])));
  });

  it('leader completeness does not apply to entries committed in the new leader term or later', () => {
    const c = fresh();
    c.onHardState(1, 5, 2); // known committed by term 5
    c.onApply(1, 1, 2, 5, 11, 2);
    c.onVoteDelivered(2, 3, 4);
    c.onBecomeLeader(2, 4, [1, 2, 3], logOf([])); // a stale leader of term 4 need not have it
  });

  it('a leader must have been voted in by a majority of its configuration voters', () => {
    const c = fresh();
    c.onVoteDelivered(1, 2, 3);
    c.onBecomeLeader(1, 3, [1, 2, 3], logOf([]));
    // Member 4 (a learner) voted for 2: not a voter, so 2 has 2 of 5.
    c.onVoteDelivered(2, 4, 4);
    c.onVoteDelivered(2, 3, 4);
    expectViolation('vote-from-voter', () => c.onBecomeLeader(2, 4, [1, 2, 3, 5, 6], logOf([])));
    // A late answer from an earlier campaign neither counts nor erases this term's votes.
    const e = fresh();
    e.onVoteDelivered(1, 2, 5);
    e.onVoteDelivered(1, 3, 4);
    e.onBecomeLeader(1, 5, [1, 2, 3], logOf([]));
    // Votes from an earlier term do not count.
    const d = fresh();
    d.onVoteDelivered(1, 2, 3);
    expectViolation('vote-from-voter', () => d.onBecomeLeader(1, 4, [1, 2, 3], logOf([])));
    // A non-voter cannot lead.
    expectViolation('vote-from-voter', () => fresh().onBecomeLeader(4, 2, [1, 2, 3], logOf([])));
  });

  it('a leader advances its commit index only to an entry of its own term', () => {
    const c = fresh();
    c.onLeaderCommit(1, 5, 10, 5);
    expectViolation('commit-own-term', () => c.onLeaderCommit(1, 5, 12, 4));
  });

  it('learners never campaign', () => {
    const c = fresh();
    c.onCampaign(1, 3, false, 'Vote');
    expectViolation('learner-no-vote', () => c.onCampaign(4, 3, true, 'PreVote'));
  });

  it('a read must observe everything committed before it started', () => {
    const c = fresh();
    c.onHardState(1, 2, 7);
    c.onReadStart(1, 100);
    c.onReadState(2, 1, 7);
    c.onReadState(2, 1, 9);
    c.onReadStart(2, 110);
    c.onHardState(1, 2, 9); // committed after read 2 started: read 2 may miss it
    c.onReadState(3, 2, 7);
    c.onReadStart(3, 120);
    expectViolation('read-linearizable', () => c.onReadState(1, 3, 8));
  });
});
