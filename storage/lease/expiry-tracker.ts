// The leader's lease clock. Not replicated: only the leader keeps deadlines, on its own monotonic clock, and when
// a lease runs out it proposes a revoke through the log. Followers never expire anything, so a member with a
// skewed or paused clock cannot delete keys on its own, and applying the log never depends on local time.
//
// The promise to clients, for a lease with TTL T and last acknowledged keep-alive (or grant) at k:
//   (lower) it never expires sooner than k + T;
//   (upper) it expires by max(k + T + replication lag, p) + one tick, where p is when a new leader finished its
//           promotion. Without a leader change p drops out; with one, the new leader continues the old countdown
//           instead of restarting it, so the bound is "T plus at most the failover" (about one election timeout),
//           never T plus a checkpoint interval and never 2T.
//
// How. The caller commits a checkpoint entry (remaining = full TTL) for a keep-alive BEFORE acknowledging it
// (batched: one entry carries every renewal that arrived while the previous one was in flight). So the log holds
// the latest acknowledged renewal of every lease, give or take renewalCoalesceMs: a renewal that arrives within
// that long after the arrival of the lease's last logged one is acknowledged without an entry, and a new leader
// adds renewalCoalesceMs to every deadline it inherits (k <= k_logged + coalesce <= lastWord + coalesce). Each member remembers, on its own monotonic clock, when it
// applied the latest grant or checkpoint of each lease ("last word"). A member applies an entry only after it
// committed, and the keep-alive was acknowledged after the commit but measured from k < commit, so in real time
//     lastWord >= commit >= k.
// On promotion the new leader sets deadline = lastWord + remaining (remaining = T for grants and renewals; a
// smaller value only in logs written before every renewal was logged, where the old "remaining at time c" rule
// gives the same inequality with c in place of k). Real-time deadline >= k + T: never early. And lastWord is at
// most the replication and apply lag after the commit: never much late. Comparing only durations measured on one
// machine (lastWord and now on the new leader; T is a constant) is what makes this safe: the members' monotonic
// clocks agree on rate, not on origin, and wall clocks are not trusted at all.
//
//   old leader  |--grant--ka(k=15)--commit ck(T)--ack--X dies             (TTL 60)
//   real time   0        15        15.002                 17       18=p
//   new leader          applies ck at 15.003 = lastWord      |promote: deadline = 15.003 + 60 >= 15 + 60
//
// A member that restarted, or installed a snapshot, did not see each entry applied: it uses the moment it started
// or installed as the last word of every lease it holds, which is later than any commit it contains. Safe, and
// only such a member gives a looser upper bound if it becomes leader.
//
// The caller's other duty: call becomeLeader() only after applying every entry committed before its term (so it
// has seen the latest checkpoints), and tell the tracker about grants and revokes applied while it leads.
import { assert } from '../../raft/errors.js';
import { errLeaseNotFound } from './errors.js';
import type { LeaseId, LeaseInfo } from './lease-table.js';

/** An expired lease whose revoke has not applied yet is reported again after this long (the proposal may be lost). */
export const LEASE_REVOKE_RETRY_INTERVAL_MS = 3_000;
/** At most this many leases per expiredLeases() call: one round's worth of revoke proposals. */
export const LEASE_BATCH_MAX = 1_000;

export interface LeaseExpiryTrackerConfig {
  /** A monotonic clock in milliseconds (performance.now, or the simulator's). Never wall time. */
  readonly monotonicNowMs: () => number;
  readonly revokeRetryIntervalMs: number;
  readonly batchMax: number;
  /**
   * How long after a logged renewal arrived a leader may acknowledge further renewals of the same lease without
   * logging them (see LeaseManager). A new leader adds it to every inherited deadline, which covers those.
   */
  readonly renewalCoalesceMs: number;
}

export const LEASE_EXPIRY_TRACKER_DEFAULTS = {
  revokeRetryIntervalMs: LEASE_REVOKE_RETRY_INTERVAL_MS,
  batchMax: LEASE_BATCH_MAX,
  renewalCoalesceMs: 0,
} as const;

export function validateLeaseExpiryTrackerConfig(
  config: Partial<LeaseExpiryTrackerConfig> & Pick<LeaseExpiryTrackerConfig, 'monotonicNowMs'>,
): Readonly<LeaseExpiryTrackerConfig> {
  const c = { ...LEASE_EXPIRY_TRACKER_DEFAULTS, ...config };
  for (const name of ['revokeRetryIntervalMs', 'batchMax'] as const) {
    if (!Number.isSafeInteger(c[name]) || c[name] <= 0) throw new RangeError(`${name} must be a positive integer, got ${c[name]}`);
  }
  if (!Number.isSafeInteger(c.renewalCoalesceMs) || c.renewalCoalesceMs < 0) throw new RangeError(`renewalCoalesceMs must be a non-negative integer, got ${c.renewalCoalesceMs}`);
  return Object.freeze(c);
}

/** A checkpoint entry's item: the remaining TTL the log should hold for a lease (the full TTL for a renewal). */
export interface LeaseCheckpoint {
  readonly id: LeaseId;
  readonly remainingTtlMs: number;
}

interface TrackedLease {
  readonly id: LeaseId;
  readonly ttlMs: number;
  deadlineMs: number;
  /** When expiredLeases() last reported it; undefined: never. */
  reportedExpiredAtMs: number | undefined;
}

export class LeaseExpiryTracker {
  private readonly config: Readonly<LeaseExpiryTrackerConfig>;
  private readonly leases = new Map<LeaseId, TrackedLease>();
  private leading = false;

  constructor(config: Partial<LeaseExpiryTrackerConfig> & Pick<LeaseExpiryTrackerConfig, 'monotonicNowMs'>) {
    this.config = validateLeaseExpiryTrackerConfig(config);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  get size(): number {
    return this.leases.size;
  }

  /**
   * Start keeping deadlines. Each lease continues from the last word this member heard of it: `lastWordAtMs(id)`
   * on this tracker's clock, never later than now (see the header for why this is safe).
   */
  becomeLeader(leases: Iterable<LeaseInfo>, lastWordAtMs: (id: LeaseId) => number): void {
    this.leases.clear();
    this.leading = true;
    const now = this.nowMs();
    for (const lease of leases) {
      const ttlMs = lease.ttlSeconds * 1000;
      const remainingMs = Math.min(lease.remainingTtlMs ?? ttlMs, ttlMs);
      const heardAtMs = lastWordAtMs(lease.id);
      assert(heardAtMs <= now, `last word about lease ${lease.id} is in the future`);
      this.leases.set(lease.id, { id: lease.id, ttlMs, deadlineMs: heardAtMs + remainingMs + this.config.renewalCoalesceMs, reportedExpiredAtMs: undefined });
    }
  }

  /** Leadership lost: forget every deadline. The next leader starts from the log. */
  stepDown(): void {
    this.leading = false;
    this.leases.clear();
  }

  /** A grant was applied. Ignored on followers, so the composer can call it unconditionally. */
  onGranted(id: LeaseId, ttlSeconds: number): void {
    if (!this.leading) return;
    const ttlMs = ttlSeconds * 1000;
    this.leases.set(id, { id, ttlMs, deadlineMs: this.nowMs() + ttlMs, reportedExpiredAtMs: undefined });
  }

  /** A revoke was applied. Ignored on followers. */
  onRevoked(id: LeaseId): void {
    if (this.leading) this.leases.delete(id);
  }

  /**
   * Whether a keep-alive may renew this lease: tracked, not yet reported expired (its revoke may be in flight),
   * and not past its deadline. Checked before the renewal is logged; LEASE_NOT_FOUND otherwise, as etcd answers.
   */
  checkRenewable(id: LeaseId): void {
    const lease = this.leases.get(id);
    if (lease === undefined || lease.reportedExpiredAtMs !== undefined || lease.deadlineMs <= this.nowMs()) throw errLeaseNotFound();
  }

  /**
   * A keep-alive whose renewal is on the log. The deadline becomes at least renewedAtMs + TTL, where renewedAtMs
   * was read before the renewal was proposed (and checkRenewable passed then). Refused if the lease was reported
   * expired while the renewal was being committed: its revoke may already be in the log behind the renewal, so
   * acknowledging would promise a lifetime the lease will not get. Returns the TTL in seconds.
   */
  renew(id: LeaseId, renewedAtMs: number = this.nowMs()): number {
    const lease = this.leases.get(id);
    if (lease === undefined || lease.reportedExpiredAtMs !== undefined) throw errLeaseNotFound();
    assert(renewedAtMs <= this.nowMs(), 'renewedAtMs is in the future');
    lease.deadlineMs = Math.max(lease.deadlineMs, renewedAtMs + lease.ttlMs);
    return lease.ttlMs / 1000;
  }

  /** The TTL a renewal should log for a tracked lease, or undefined when it is not tracked. */
  ttlMsOf(id: LeaseId): number | undefined {
    return this.leases.get(id)?.ttlMs;
  }

  /** Milliseconds left before the lease expires on this leader, or undefined when it is not tracked. */
  remainingMs(id: LeaseId): number | undefined {
    const lease = this.leases.get(id);
    return lease === undefined ? undefined : Math.max(0, lease.deadlineMs - this.nowMs());
  }

  /**
   * Leases whose deadline has passed, earliest first (ties by id), for the leader to revoke through the log.
   * Each is reported once, then again every revokeRetryIntervalMs until its revoke is applied.
   */
  expiredLeases(): LeaseId[] {
    if (!this.leading) return [];
    const now = this.nowMs();
    const due = [...this.leases.values()].filter(
      (l) => l.deadlineMs <= now && (l.reportedExpiredAtMs === undefined || now - l.reportedExpiredAtMs >= this.config.revokeRetryIntervalMs),
    );
    due.sort((a, b) => a.deadlineMs - b.deadlineMs || compareIds(a.id, b.id));
    const batch = due.slice(0, this.config.batchMax);
    for (const l of batch) l.reportedExpiredAtMs = now;
    return batch.map((l) => l.id);
  }

  private nowMs(): number {
    const now = this.config.monotonicNowMs();
    assert(Number.isFinite(now), 'monotonic clock returned a non-finite value');
    return Math.floor(now);
  }
}

function compareIds(a: LeaseId, b: LeaseId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
