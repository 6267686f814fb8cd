import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemoryBackend } from '../backend.js';
import { LeaseExpiryTracker } from './expiry-tracker.js';
import { LeaseTable, type LeaseId } from './lease-table.js';

/**
 * Real time for the test, driven by hand. Each member's monotonic clock reads it plus its own origin, because
 * monotonic clocks on different machines agree on rate but not on zero.
 */
class FakeTime {
  realMs = 0;
  clockFor(originMs: number): () => number {
    return () => this.realMs + originMs;
  }
}

const ELECTION_TIMEOUT = 1_000;

function trackerOn(time: FakeTime, originMs = 0, renewalCoalesceMs = 0): LeaseExpiryTracker {
  return new LeaseExpiryTracker({ monotonicNowMs: time.clockFor(originMs), revokeRetryIntervalMs: 3_000, renewalCoalesceMs });
}

/** A tracker that never heard of anything before now (a fresh leader over an empty or fresh table). */
const heardNow = (time: FakeTime, originMs = 0) => (): number => time.realMs + originMs;

/** Commit a renewal checkpoint (the full TTL) into the replicated table, as the log would. */
function commitRenewal(table: LeaseTable, id: LeaseId): void {
  const lease = table.get(id);
  if (lease !== undefined) table.checkpoint(id, lease.ttlSeconds * 1000, new MemoryBackend().batch());
}

function grant(table: LeaseTable, tracker: LeaseExpiryTracker, id: LeaseId, ttlSeconds: number): void {
  const lease = table.grant(id, ttlSeconds, new MemoryBackend().batch());
  tracker.onGranted(lease.id, lease.ttlSeconds);
}

describe('LeaseExpiryTracker', () => {
  it('expires a lease exactly TTL after its grant, and TTL after its last renewal', () => {
    const time = new FakeTime();
    const table = LeaseTable.empty();
    const tracker = trackerOn(time, 123_456);
    tracker.becomeLeader(table.list(), heardNow(time, 123_456));
    grant(table, tracker, 1n, 10);
    time.realMs = 9_999;
    expect(tracker.expiredLeases()).toEqual([]);
    time.realMs = 10_000;
    expect(tracker.expiredLeases()).toEqual([1n]);
    tracker.onRevoked(1n); // the leader's revoke was applied

    grant(table, tracker, 2n, 10);
    time.realMs = 14_000;
    expect(tracker.renew(2n)).toBe(10);
    expect(tracker.remainingMs(2n)).toBe(10_000);
    time.realMs = 23_999;
    expect(tracker.expiredLeases()).toEqual([]);
    time.realMs = 24_000;
    expect(tracker.expiredLeases()).toEqual([2n]);
  });

  it('reports an expired lease once, again after the retry interval, and refuses to renew it', () => {
    const time = new FakeTime();
    const table = LeaseTable.empty();
    const tracker = trackerOn(time);
    tracker.becomeLeader([], heardNow(time));
    grant(table, tracker, 1n, 2);
    time.realMs = 2_000;
    expect(tracker.expiredLeases()).toEqual([1n]);
    expect(tracker.expiredLeases()).toEqual([]);
    expect(() => tracker.renew(1n)).toThrow(expect.objectContaining({ code: 'LEASE_NOT_FOUND', message: 'etcdserver: requested lease not found' }));
    time.realMs = 4_999;
    expect(tracker.expiredLeases()).toEqual([]);
    time.realMs = 5_000;
    expect(tracker.expiredLeases()).toEqual([1n]);
    tracker.onRevoked(1n);
    time.realMs = 9_000;
    expect(tracker.expiredLeases()).toEqual([]);
    expect(tracker.size).toBe(0);
  });

  it('orders expired leases by deadline then id, at most batchMax at a time', () => {
    const time = new FakeTime();
    const tracker = new LeaseExpiryTracker({ monotonicNowMs: time.clockFor(0), batchMax: 2 });
    tracker.becomeLeader([], heardNow(time));
    tracker.onGranted(9n, 3);
    tracker.onGranted(5n, 3);
    tracker.onGranted(7n, 2);
    time.realMs = 3_000;
    expect(tracker.expiredLeases()).toEqual([7n, 5n]);
    expect(tracker.expiredLeases()).toEqual([9n]);
  });

  it('refuses to renew a lease reported expired while its renewal was being committed', () => {
    const time = new FakeTime();
    const tracker = trackerOn(time);
    tracker.becomeLeader([], heardNow(time));
    tracker.onGranted(1n, 2);
    time.realMs = 1_999;
    expect(() => tracker.checkRenewable(1n)).not.toThrow();
    const arrivedAt = time.realMs;
    time.realMs = 2_000; // the renewal entry is still committing when the round reports the lease
    expect(tracker.expiredLeases()).toEqual([1n]);
    expect(() => tracker.renew(1n, arrivedAt)).toThrow(expect.objectContaining({ code: 'LEASE_NOT_FOUND' }));
    expect(() => tracker.checkRenewable(1n)).toThrow(expect.objectContaining({ code: 'LEASE_NOT_FOUND' }));
  });

  it('followers keep no deadlines', () => {
    const time = new FakeTime();
    const tracker = trackerOn(time);
    tracker.onGranted(1n, 1);
    time.realMs = 10_000;
    expect(tracker.expiredLeases()).toEqual([]);
    expect(() => tracker.renew(1n)).toThrow(expect.objectContaining({ code: 'LEASE_NOT_FOUND' }));
    expect(() => tracker.checkRenewable(1n)).toThrow(expect.objectContaining({ code: 'LEASE_NOT_FOUND' }));
    expect(tracker.isLeader).toBe(false);
  });

  it('a new leader continues the countdown from when it applied the last renewal (the header’s worked example)', () => {
    const time = new FakeTime();
    const table = LeaseTable.empty();
    const oldLeader = trackerOn(time, 1_000_000);
    oldLeader.becomeLeader(table.list(), heardNow(time, 1_000_000));
    grant(table, oldLeader, 1n, 60);
    time.realMs = 15_000; // a keep-alive arrives
    const arrivedAt = time.realMs;
    oldLeader.checkRenewable(1n);
    time.realMs = 15_002; // its renewal commits...
    commitRenewal(table, 1n);
    const newLeaderOrigin = -42_000; // a member with a very different clock origin
    const appliedAtOnNewLeader = 15_003 + newLeaderOrigin; // ...and the future leader applies it 1 ms later
    expect(oldLeader.renew(1n, arrivedAt)).toBe(60);
    time.realMs = 17_000; // the old leader dies
    oldLeader.stepDown();
    time.realMs = 18_000; // the new leader is promoted
    const newLeader = trackerOn(time, newLeaderOrigin);
    newLeader.becomeLeader(table.list(), (id) => (id === 1n ? appliedAtOnNewLeader : Number.NaN));
    const newDeadline = time.realMs + newLeader.remainingMs(1n)!;
    expect(newDeadline).toBe(75_003);
    // Never sooner than TTL after the keep-alive arrived, and later only by the commit and apply lag.
    expect(newDeadline).toBeGreaterThanOrEqual(arrivedAt + 60_000);
    expect(newDeadline - (arrivedAt + 60_000)).toBe(3);
    time.realMs = 75_002;
    expect(newLeader.expiredLeases()).toEqual([]);
    time.realMs = 75_003;
    expect(newLeader.expiredLeases()).toEqual([1n]);
  });

  it('a lease whose last word is older than its TTL expires at the new leader’s first round', () => {
    const time = new FakeTime();
    time.realMs = 100_000;
    const tracker = trackerOn(time, 5);
    tracker.becomeLeader([{ id: 1n, ttlSeconds: 10, remainingTtlMs: undefined }], () => 5 + 20_000);
    expect(tracker.remainingMs(1n)).toBe(0);
    expect(tracker.expiredLeases()).toEqual([1n]);
  });

  it('refuses a last word in the future (it would stretch the lease past what the log says)', () => {
    const time = new FakeTime();
    const tracker = trackerOn(time);
    expect(() => tracker.becomeLeader([{ id: 1n, ttlSeconds: 10, remainingTtlMs: undefined }], () => 1)).toThrow(/future/);
  });

  it('property: across renewals (some acknowledged without an entry) and leader changes, expiry falls within [TTL after arrival, max(TTL after ack + apply lag + coalescing, promotion)]', () => {
    const TICK = 100;
    const MEMBERS = 3;
    const COALESCE = 500;
    type Event = { kind: 'wait'; ticks: number } | { kind: 'keepAlive'; commitMs: number; applyLagsMs: number[] } | { kind: 'crash'; next: number; failoverMs: number };
    const event: fc.Arbitrary<Event> = fc.oneof(
      // Short waits too: renewals close together are the ones acknowledged without an entry.
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('wait' as const), ticks: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 120 })) }) },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('keepAlive' as const),
          commitMs: fc.integer({ min: 0, max: 50 }),
          applyLagsMs: fc.array(fc.integer({ min: 0, max: 80 }), { minLength: MEMBERS, maxLength: MEMBERS }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), next: fc.integer({ min: 0, max: MEMBERS - 1 }), failoverMs: fc.integer({ min: ELECTION_TIMEOUT, max: 3 * ELECTION_TIMEOUT }) }) },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(event, { maxLength: 40 }),
        fc.array(fc.integer({ min: -1e9, max: 1e9 }), { minLength: MEMBERS, maxLength: MEMBERS }),
        (ttlSeconds, events, origins) => {
          const time = new FakeTime();
          const table = LeaseTable.empty({ minTtlSeconds: 1 });
          // Each member's last word about lease 1, in real time; converted to its own clock when it leads.
          const lastWordReal = new Array<number>(MEMBERS).fill(0);
          let leaderIndex = 0;
          const elect = (i: number): LeaseExpiryTracker => {
            const t = trackerOn(time, origins[i]!, COALESCE);
            t.becomeLeader(table.list(), () => Math.min(lastWordReal[i]!, time.realMs) + origins[i]!);
            return t;
          };
          let leader: LeaseExpiryTracker | undefined = elect(0);
          grant(table, leader, 1n, ttlSeconds);
          let lastArrivalMs = 0;
          let upperMs = ttlSeconds * 1000 + COALESCE;
          let loggedArrivalMs: number | undefined;
          let expiredAtMs: number | undefined;
          const tick = (): void => {
            time.realMs += TICK;
            if (leader?.expiredLeases().includes(1n) === true) expiredAtMs = time.realMs;
          };
          for (const e of events) {
            if (expiredAtMs !== undefined || leader === undefined) break;
            if (e.kind === 'wait') {
              for (let i = 0; i < e.ticks && expiredAtMs === undefined; i++) tick();
            } else if (e.kind === 'keepAlive') {
              const arrivedAt = time.realMs;
              try {
                leader.checkRenewable(1n);
              } catch {
                expiredAtMs = time.realMs; // due at this very instant: the round now would report it
                break;
              }
              if (loggedArrivalMs !== undefined && arrivedAt - loggedArrivalMs <= COALESCE) {
                // Acknowledged without an entry (the manager's coalescing); new leaders allow for it.
                leader.renew(1n, arrivedAt + origins[leaderIndex]!);
                lastArrivalMs = arrivedAt;
                upperMs = Math.max(upperMs, arrivedAt + ttlSeconds * 1000);
                continue;
              }
              loggedArrivalMs = arrivedAt;
              const committedAt = arrivedAt + e.commitMs; // nothing else happens while it commits
              commitRenewal(table, 1n);
              for (let i = 0; i < MEMBERS; i++) lastWordReal[i] = committedAt + e.applyLagsMs[i]!;
              time.realMs = committedAt;
              if (leader.remainingMs(1n) === 0) {
                expiredAtMs = committedAt; // expired while committing: the leader refuses to acknowledge
                break;
              }
              leader.renew(1n, arrivedAt + origins[leaderIndex]!);
              lastArrivalMs = arrivedAt;
              upperMs = Math.max(upperMs, committedAt + Math.max(...e.applyLagsMs) + ttlSeconds * 1000 + COALESCE);
            } else {
              loggedArrivalMs = undefined; // the manager forgets what it logged when it steps down
              leader.stepDown();
              time.realMs += e.failoverMs;
              leaderIndex = e.next;
              leader = elect(leaderIndex);
              upperMs = Math.max(upperMs, time.realMs);
              // The inherited deadline itself, before any tick rounds it: never sooner than TTL after the last ack.
              const inherited = leader.remainingMs(1n);
              if (inherited !== undefined && inherited > 0) expect(time.realMs + inherited).toBeGreaterThanOrEqual(lastArrivalMs + ttlSeconds * 1000);
            }
          }
          while (expiredAtMs === undefined) tick();
          expect(expiredAtMs).toBeGreaterThanOrEqual(lastArrivalMs + ttlSeconds * 1000);
          expect(expiredAtMs).toBeLessThanOrEqual(upperMs + TICK);
        },
      ),
      { numRuns: 500 },
    );
  });
});
