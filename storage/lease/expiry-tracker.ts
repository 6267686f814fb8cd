// The leader's lease clock. Not replicated: only the leader keeps deadlines, on its own monotonic clock, and when
// a lease runs out it proposes a revoke through the log. Followers never expire anything, so a member with a
// skewed or paused clock cannot delete keys on its own, and applying the log never depends on local time.
//
// The promise to clients, for a lease with TTL T:
//   (lower) it never expires sooner than T after the last acknowledged keep-alive;
//   (upper) it expires no later than T + checkpointIntervalMs + failover after it, where failover is the time
//           from the old leader's last checkpoint round to the new leader's becomeLeader() (about one election
//           timeout). With checkpoints every interval this is etcd's "T plus about one election timeout".
//
// Why this holds across a leader change. The old leader checkpoints each long lease every checkpointIntervalMs:
// at its local time c it proposes remaining R = deadline - c. The new leader is elected after that entry committed,
// so it becomes leader at p > c, and it sets deadline' = p + R. Measured in real time (monotonic clocks on
// different machines tick at the same rate; only their origins differ), deadline' - deadline = p - c >= 0: the new
// leader extends every deadline by exactly the time that passed since the old leader's last word, which is at
// least as much as the old leader could have been ahead. Using the full TTL instead would be safe but could keep
// a dead client's lease up to a whole TTL too long; using anything measured on the old leader's clock would
// compare two unrelated clock origins.
//
//   old leader  |--grant--ck(R=50)--ck(R=45)--X dies                   (TTL 60, interval 5)
//   real time   0        10        15        17            18=p
//   new leader                                             |becomeLeader: deadline = 18 + 45 = 63 >= 60
//
// A keep-alive after a checkpoint must not be undone by that checkpoint: if the log holds a remaining TTL shorter
// than the full TTL, renew() returns a reset checkpoint (remaining = full TTL) that the caller must commit before
// acknowledging the keep-alive (etcd does the same). And the renewal is counted from `renewedAtMs`, which the
// caller sets to the moment it began confirming its leadership (ReadIndex): any newer leader was elected after
// that moment, so its p + T is later than renewedAtMs + T.
//
// The caller's other duty: call becomeLeader() only after applying every entry committed before its term (so it
// sees the latest checkpoints), and tell the tracker about grants and revokes applied while it leads.
import { assert } from '../../raft/errors.js';
import { errLeaseNotFound } from './errors.js';
import type { LeaseId, LeaseInfo } from './lease-table.js';

/** How often the leader records each long lease's remaining TTL in the log. Also the slack in the upper bound. */
export const LEASE_CHECKPOINT_INTERVAL_MS = 5_000;
/** An expired lease whose revoke has not applied yet is reported again after this long (the proposal may be lost). */
export const LEASE_REVOKE_RETRY_INTERVAL_MS = 3_000;
/** At most this many leases per expiredLeases() or dueCheckpoints() call: one proposal's worth. */
export const LEASE_BATCH_MAX = 1_000;

export interface LeaseExpiryTrackerConfig {
  /** A monotonic clock in milliseconds (performance.now, or the simulator's). Never wall time. */
  readonly monotonicNowMs: () => number;
  readonly checkpointIntervalMs: number;
  readonly revokeRetryIntervalMs: number;
  readonly batchMax: number;
  /** Added to every deadline on becomeLeader. 0 when renewals are acknowledged only after confirming leadership. */
  readonly promotionExtensionMs: number;
}

export const LEASE_EXPIRY_TRACKER_DEFAULTS = {
  checkpointIntervalMs: LEASE_CHECKPOINT_INTERVAL_MS,
  revokeRetryIntervalMs: LEASE_REVOKE_RETRY_INTERVAL_MS,
  batchMax: LEASE_BATCH_MAX,
  promotionExtensionMs: 0,
} as const;

export function validateLeaseExpiryTrackerConfig(
  config: Partial<LeaseExpiryTrackerConfig> & Pick<LeaseExpiryTrackerConfig, 'monotonicNowMs'>,
): Readonly<LeaseExpiryTrackerConfig> {
  const c = { ...LEASE_EXPIRY_TRACKER_DEFAULTS, ...config };
  for (const name of ['checkpointIntervalMs', 'revokeRetryIntervalMs', 'batchMax'] as const) {
    if (!Number.isSafeInteger(c[name]) || c[name] <= 0) throw new RangeError(`${name} must be a positive integer, got ${c[name]}`);
  }
  if (!Number.isSafeInteger(c.promotionExtensionMs) || c.promotionExtensionMs < 0) {
    throw new RangeError(`promotionExtensionMs must be a non-negative integer, got ${c.promotionExtensionMs}`);
  }
  return Object.freeze(c);
}

/** A checkpoint to propose: the lease's remaining TTL as this leader sees it now. */
export interface LeaseCheckpoint {
  readonly id: LeaseId;
  readonly remainingTtlMs: number;
}

export interface LeaseRenewal {
  readonly ttlSeconds: number;
  /** When set, commit this checkpoint before acknowledging the keep-alive. */
  readonly resetCheckpoint: LeaseCheckpoint | undefined;
}

interface TrackedLease {
  readonly id: LeaseId;
  readonly ttlMs: number;
  deadlineMs: number;
  /** When the log last learned this lease's remaining TTL (checkpoint, reset, grant or promotion). */
  checkpointedAtMs: number;
  /** The remaining TTL the log holds; undefined: the log says "full TTL". */
  loggedRemainingMs: number | undefined;
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

  /** Start keeping deadlines: each lease continues from its last checkpoint (see the header for why). */
  becomeLeader(leases: Iterable<LeaseInfo>): void {
    this.leases.clear();
    this.leading = true;
    const now = this.nowMs();
    for (const lease of leases) {
      const ttlMs = lease.ttlSeconds * 1000;
      const remainingMs = Math.min(lease.remainingTtlMs ?? ttlMs, ttlMs);
      this.leases.set(lease.id, {
        id: lease.id,
        ttlMs,
        deadlineMs: now + remainingMs + this.config.promotionExtensionMs,
        checkpointedAtMs: now,
        loggedRemainingMs: lease.remainingTtlMs,
        reportedExpiredAtMs: undefined,
      });
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
    const now = this.nowMs();
    const ttlMs = ttlSeconds * 1000;
    this.leases.set(id, { id, ttlMs, deadlineMs: now + ttlMs, checkpointedAtMs: now, loggedRemainingMs: undefined, reportedExpiredAtMs: undefined });
  }

  /** A revoke was applied. Ignored on followers. */
  onRevoked(id: LeaseId): void {
    if (this.leading) this.leases.delete(id);
  }

  /**
   * A keep-alive. The deadline becomes renewedAtMs + TTL; see the header for what renewedAtMs must be. A lease
   * already reported expired cannot be renewed (its revoke may be in flight): LEASE_NOT_FOUND, as etcd answers.
   */
  renew(id: LeaseId, renewedAtMs: number = this.nowMs()): LeaseRenewal {
    const lease = this.leases.get(id);
    if (lease === undefined || lease.reportedExpiredAtMs !== undefined || lease.deadlineMs <= this.nowMs()) throw errLeaseNotFound();
    assert(renewedAtMs <= this.nowMs(), 'renewedAtMs is in the future');
    lease.deadlineMs = Math.max(lease.deadlineMs, renewedAtMs + lease.ttlMs);
    let resetCheckpoint: LeaseCheckpoint | undefined;
    if (lease.loggedRemainingMs !== undefined && lease.loggedRemainingMs < lease.ttlMs) {
      resetCheckpoint = { id, remainingTtlMs: lease.ttlMs };
      lease.loggedRemainingMs = lease.ttlMs;
      lease.checkpointedAtMs = renewedAtMs;
    }
    return { ttlSeconds: lease.ttlMs / 1000, resetCheckpoint };
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

  /**
   * Checkpoints to propose now: every live lease longer than the interval whose log entry is an interval old,
   * oldest first (ties by id). Short leases need none: restarting them in full costs at most one interval.
   */
  dueCheckpoints(): LeaseCheckpoint[] {
    if (!this.leading) return [];
    const now = this.nowMs();
    const interval = this.config.checkpointIntervalMs;
    const due = [...this.leases.values()].filter((l) => l.ttlMs > interval && l.deadlineMs > now && now - l.checkpointedAtMs >= interval);
    due.sort((a, b) => a.checkpointedAtMs - b.checkpointedAtMs || compareIds(a.id, b.id));
    return due.slice(0, this.config.batchMax).map((l) => {
      l.checkpointedAtMs = now;
      l.loggedRemainingMs = l.deadlineMs - now;
      return { id: l.id, remainingTtlMs: l.deadlineMs - now };
    });
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
