import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemoryBackend } from '../backend.js';
import { LeaseExpiryTracker, type LeaseCheckpoint } from './expiry-tracker.js';
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

const INTERVAL = 5_000;
const ELECTION_TIMEOUT = 1_000;

function trackerOn(time: FakeTime, originMs = 0): LeaseExpiryTracker {
  return new LeaseExpiryTracker({ monotonicNowMs: time.clockFor(originMs), checkpointIntervalMs: INTERVAL, revokeRetryIntervalMs: 3_000 });
}

/** Commit checkpoints into the replicated table, as the log would. */
function commitCheckpoints(table: LeaseTable, checkpoints: readonly LeaseCheckpoint[]): void {
  const batch = new MemoryBackend().batch();
  for (const c of checkpoints) table.checkpoint(c.id, c.remainingTtlMs, batch);
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
    tracker.becomeLeader(table.list());
    grant(table, tracker, 1n, 10);
    time.realMs = 9_999;
    expect(tracker.expiredLeases()).toEqual([]);
    time.realMs = 10_000;
    expect(tracker.expiredLeases()).toEqual([1n]);
    tracker.onRevoked(1n); // the leader's revoke was applied

    grant(table, tracker, 2n, 10);
    time.realMs = 14_000;
    expect(tracker.renew(2n)).toEqual({ ttlSeconds: 10, resetCheckpoint: undefined });
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
    tracker.becomeLeader([]);
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
    tracker.becomeLeader([]);
    tracker.onGranted(9n, 3);
    tracker.onGranted(5n, 3);
    tracker.onGranted(7n, 2);
    time.realMs = 3_000;
    expect(tracker.expiredLeases()).toEqual([7n, 5n]);
    expect(tracker.expiredLeases()).toEqual([9n]);
  });

  it('schedules checkpoints for leases longer than the interval, every interval', () => {
    const time = new FakeTime();
    const tracker = trackerOn(time);
    tracker.becomeLeader([]);
    tracker.onGranted(1n, 60);
    tracker.onGranted(2n, 5); // not longer than the interval: restarting it costs at most one interval
    time.realMs = 4_999;
    expect(tracker.dueCheckpoints()).toEqual([]);
    time.realMs = 5_000;
    expect(tracker.dueCheckpoints()).toEqual([{ id: 1n, remainingTtlMs: 55_000 }]);
    expect(tracker.dueCheckpoints()).toEqual([]);
    time.realMs = 10_000;
    expect(tracker.dueCheckpoints()).toEqual([{ id: 1n, remainingTtlMs: 50_000 }]);
  });

  it('a renewal after a checkpoint returns a reset checkpoint, once', () => {
    const time = new FakeTime();
    const tracker = trackerOn(time);
    tracker.becomeLeader([]);
    tracker.onGranted(1n, 60);
    expect(tracker.renew(1n).resetCheckpoint).toBeUndefined(); // the log says "full TTL" already
    time.realMs = 5_000;
    expect(tracker.dueCheckpoints()).toHaveLength(1);
    time.realMs = 6_000;
    expect(tracker.renew(1n).resetCheckpoint).toEqual({ id: 1n, remainingTtlMs: 60_000 });
    expect(tracker.renew(1n).resetCheckpoint).toBeUndefined();
  });

  it('followers keep no deadlines', () => {
    const time = new FakeTime();
    const tracker = trackerOn(time);
    tracker.onGranted(1n, 1);
    time.realMs = 10_000;
    expect(tracker.expiredLeases()).toEqual([]);
    expect(tracker.dueCheckpoints()).toEqual([]);
    expect(() => tracker.renew(1n)).toThrow(expect.objectContaining({ code: 'LEASE_NOT_FOUND' }));
    expect(tracker.isLeader).toBe(false);
  });

  it('a new leader continues the countdown from the last checkpoint (the header’s worked example)', () => {
    const time = new FakeTime();
    const table = LeaseTable.empty();
    const oldLeader = trackerOn(time, 1_000_000);
    oldLeader.becomeLeader(table.list());
    grant(table, oldLeader, 1n, 60);
    for (const t of [5_000, 10_000, 15_000]) {
      time.realMs = t;
      commitCheckpoints(table, oldLeader.dueCheckpoints());
    }
    expect(table.get(1n)?.remainingTtlMs).toBe(45_000);
    const oldDeadline = 60_000;
    time.realMs = 17_000; // the old leader dies
    oldLeader.stepDown();
    time.realMs = 17_000 + ELECTION_TIMEOUT; // a member with a very different clock origin takes over
    const newLeader = trackerOn(time, -42_000);
    newLeader.becomeLeader(table.list());
    const newDeadline = time.realMs + newLeader.remainingMs(1n)!;
    expect(newDeadline).toBe(63_000);
    // The promise: never sooner than TTL after the last renewal, never later than TTL + interval + failover.
    expect(newDeadline).toBeGreaterThanOrEqual(oldDeadline);
    expect(newDeadline).toBeLessThanOrEqual(oldDeadline + INTERVAL + ELECTION_TIMEOUT);
    time.realMs = 62_999;
    expect(newLeader.expiredLeases()).toEqual([]);
    time.realMs = 63_000;
    expect(newLeader.expiredLeases()).toEqual([1n]);
  });

  it('without the reset checkpoint a renewal would be undone by a leader change; with it, it is kept', () => {
    const time = new FakeTime();
    const table = LeaseTable.empty();
    const oldLeader = trackerOn(time);
    oldLeader.becomeLeader([]);
    grant(table, oldLeader, 1n, 60);
    time.realMs = 5_000;
    commitCheckpoints(table, oldLeader.dueCheckpoints()); // the log says 55s remain
    time.realMs = 9_000;
    const renewal = oldLeader.renew(1n); // acknowledged at 9s: the lease must live until at least 69s
    commitCheckpoints(table, renewal.resetCheckpoint === undefined ? [] : [renewal.resetCheckpoint]);
    time.realMs = 9_500;
    oldLeader.stepDown();
    time.realMs = 9_500 + ELECTION_TIMEOUT;
    const newLeader = trackerOn(time, 7);
    newLeader.becomeLeader(table.list());
    const newDeadline = time.realMs + newLeader.remainingMs(1n)!;
    expect(newDeadline).toBeGreaterThanOrEqual(69_000);
    expect(newDeadline).toBeLessThanOrEqual(69_000 + INTERVAL + ELECTION_TIMEOUT);
  });

  it('promotionExtensionMs is added to every inherited deadline', () => {
    const time = new FakeTime();
    const tracker = new LeaseExpiryTracker({ monotonicNowMs: time.clockFor(0), promotionExtensionMs: ELECTION_TIMEOUT });
    tracker.becomeLeader([{ id: 1n, ttlSeconds: 10, remainingTtlMs: 4_000 }]);
    expect(tracker.remainingMs(1n)).toBe(5_000);
  });

  it('property: across renewals and leader changes, expiry falls within [TTL, TTL + k·(interval + failover)] of the last acknowledged keep-alive', () => {
    const TICK = 100;
    type Event = { kind: 'wait'; ticks: number } | { kind: 'keepAlive' } | { kind: 'crash' };
    const event: fc.Arbitrary<Event> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant('wait' as const), ticks: fc.integer({ min: 1, max: 120 }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('keepAlive' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const) }) },
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(event, { maxLength: 40 }), fc.array(fc.integer({ min: -1e9, max: 1e9 }), { minLength: 50, maxLength: 50 }), (ttlSeconds, events, origins) => {
        const time = new FakeTime();
        const table = LeaseTable.empty({ minTtlSeconds: 1 });
        let members = 0;
        const elect = (): LeaseExpiryTracker => {
          const t = trackerOn(time, origins[members++ % origins.length]!);
          t.becomeLeader(table.list());
          return t;
        };
        let leader = elect();
        grant(table, leader, 1n, ttlSeconds);
        let lastAckMs = 0;
        let failoversSinceAck = 0;
        let expiredAtMs: number | undefined;
        const tick = (): void => {
          time.realMs += TICK;
          commitCheckpoints(table, leader.dueCheckpoints());
          if (leader.expiredLeases().includes(1n)) expiredAtMs = time.realMs;
        };
        for (const e of events) {
          if (expiredAtMs !== undefined) break;
          if (e.kind === 'wait') {
            for (let i = 0; i < e.ticks && expiredAtMs === undefined; i++) tick();
          } else if (e.kind === 'keepAlive') {
            try {
              const r = leader.renew(1n);
              if (r.resetCheckpoint !== undefined) commitCheckpoints(table, [r.resetCheckpoint]);
              lastAckMs = time.realMs;
              failoversSinceAck = 0;
            } catch {
              expiredAtMs = time.realMs; // due at this very instant: the next tick would report it
            }
          } else {
            leader.stepDown();
            time.realMs += ELECTION_TIMEOUT;
            leader = elect();
            failoversSinceAck++;
          }
        }
        while (expiredAtMs === undefined) tick();
        const ttlMs = ttlSeconds * 1000;
        expect(expiredAtMs).toBeGreaterThanOrEqual(lastAckMs + ttlMs);
        expect(expiredAtMs).toBeLessThanOrEqual(lastAckMs + ttlMs + failoversSinceAck * (INTERVAL + TICK + ELECTION_TIMEOUT));
      }),
      { numRuns: 500 },
    );
  });
});
