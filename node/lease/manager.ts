// The lease manager: the node-side owner of the leader's LeaseExpiryTracker. The replicated LeaseTable says which
// leases exist; the tracker (leader only, monotonic clock, memory only) says when each runs out. This class keeps
// the tracker's obligations from docs/leases-hlc-dedup.md:
//
//   - on every member, note when each lease was last heard of in the log (its grant or a renewal checkpoint
//     applied here), on this member's monotonic clock: a new leader's deadlines start from those moments;
//   - becomeLeader(table.list(), lastWord) only after a ReadIndex barrier in the new term: Raft answers it only
//     once an entry of this term has committed, and the barrier waits until it is applied, so the table holds
//     every renewal committed before the term began;
//   - stepDown() as soon as the role changes;
//   - grants applied while leading -> onGranted; revokes -> onRevoked;
//   - a timer proposes revokes for expiredLeases() (bounded per tick);
//   - a keep-alive is acknowledged only after a checkpoint entry carrying its renewal is applied (RenewalLog
//     batches them), and renews the tracker from the moment it arrived.
//
// Keep-alives that reach a follower are forwarded to the leader (gRPC, the leader's client URL) and the follower
// answers with the leader's answer, as etcd's followers do over their peer HTTP endpoint.
//
// Revokes proposed here are followed from their own results; a revoke proposed by another member is noticed
// lazily: before the tracker is trusted about a lease, the table is asked whether it still exists.
import { leaseTestHooks } from './test-hooks.js';
import { apiError } from '../api/errors.js';
import { LoopError } from '../raft-loop.js';
import { LeaseExpiryTracker, type LeaseId, type LeaseInfo } from '../../storage/lease/index.js';
import type { Member } from '../member.js';
import type { CommandResult } from '../../storage/state-machine.js';
import { Role, type SoftState } from '../../raft/types.js';
import type { Op } from '../../storage/command.js';
import { LeaderForwarder, type ForwardedTimeToLive } from './forwarder.js';
import type { CommandAuth } from '../../storage/auth/index.js';
import { commandFailure } from './line.js';
import { RenewalLog, TooManyRenewalsError, checkpointedLeases, type RenewalLogged } from './renewals.js';

/** How often the leader looks for expired leases (etcd's revoke loop runs every 500 ms). */
export const LEASE_TICK_INTERVAL_MS = 500;
/** Revokes proposed per tick at most: bounds the burst after a long pause. */
export const LEASE_REVOKES_PER_TICK_MAX = 500;
/** Deadline for one forwarded keep-alive or time-to-live call to the leader. */
export const LEASE_FORWARD_TIMEOUT_MS = 5_000;
/** Deadline for a proposal made by the manager (revoke) or on behalf of a keep-alive (its renewal entry). */
export const LEASE_PROPOSAL_TIMEOUT_MS = 7_000;
/** Pause between attempts to confirm a new leadership before building the tracker. */
const PROMOTION_RETRY_MS = 50;
/**
 * A keep-alive that arrives within this long after the arrival of the lease's last logged renewal is acknowledged
 * without a log entry; new leaders add it to the deadlines they inherit (expiry-tracker.ts). Bounds the log
 * traffic of a client that renews very often to two entries per second per lease, for 0.5 s of upper bound.
 */
export const LEASE_RENEWAL_COALESCE_MS = 500;
/** Last words kept for leases no longer in the table before they are pruned (revokes do not name their lease). */
const LAST_WORDS_SLACK = 1_000;

/** What the manager needs from a member: a small interface, so tests can drive it with a fake cluster. */
export type LeaseMember = Pick<Member, 'propose' | 'subscribeApplied' | 'subscribeSoftState' | 'subscribeRestored' | 'isLeader' | 'leaderId' | 'members' | 'linearizableBarrier'> & {
  readonly id: number;
  readonly stateMachine: {
    readonly leases: { get(id: LeaseId): LeaseInfo | undefined; has(id: LeaseId): boolean; list(): LeaseInfo[]; readonly size: number };
    readonly mvcc: { keysWithLease(id: bigint): Uint8Array[] };
  };
};

export interface Ticker {
  every(intervalMs: number, fn: () => void): () => void;
}

export interface LeaseManagerOptions {
  readonly tickIntervalMs: number;
  readonly revokesPerTickMax: number;
  readonly revokeRetryIntervalMs: number;
  readonly renewalCoalesceMs: number;
  readonly forwardTimeoutMs: number;
  readonly proposalTimeoutMs: number;
  /** A monotonic clock in milliseconds. Never wall time. */
  readonly monotonicNowMs: () => number;
  readonly ticker: Ticker;
  /** How keep-alives reach the leader from a follower; a gRPC forwarder unless a test injects one. */
  readonly forwarder: Forwarder;
}

/** The leader-facing calls a follower makes on a client's behalf. */
export interface Forwarder {
  /** `token`: the client's auth token, so the leader checks the same caller. */
  keepAlive(leaderTarget: string, id: LeaseId, timeoutMs: number, token?: string): Promise<number>;
  timeToLive(leaderTarget: string, id: LeaseId, keys: boolean, timeoutMs: number, token?: string): Promise<ForwardedTimeToLive>;
  close(): void;
}

const intervalTicker: Ticker = {
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref(); // the manager never keeps a process alive on its own
    return () => clearInterval(t);
  },
};

export function leaseManagerDefaults(): LeaseManagerOptions {
  return {
    tickIntervalMs: LEASE_TICK_INTERVAL_MS,
    revokesPerTickMax: LEASE_REVOKES_PER_TICK_MAX,
    renewalCoalesceMs: LEASE_RENEWAL_COALESCE_MS,
    revokeRetryIntervalMs: 3_000,
    forwardTimeoutMs: LEASE_FORWARD_TIMEOUT_MS,
    proposalTimeoutMs: LEASE_PROPOSAL_TIMEOUT_MS,
    monotonicNowMs: () => performance.now(),
    ticker: intervalTicker,
    forwarder: new LeaderForwarder(),
  };
}

function validate(o: LeaseManagerOptions): Readonly<LeaseManagerOptions> {
  for (const name of ['tickIntervalMs', 'revokesPerTickMax', 'revokeRetryIntervalMs', 'forwardTimeoutMs', 'proposalTimeoutMs'] as const) {
    if (!Number.isSafeInteger(o[name]) || o[name] <= 0) throw new RangeError(`${name} must be a positive integer, got ${o[name]}`);
  }
  if (!Number.isSafeInteger(o.renewalCoalesceMs) || o.renewalCoalesceMs < 0) throw new RangeError(`renewalCoalesceMs must be a non-negative integer, got ${o.renewalCoalesceMs}`);
  return Object.freeze({ ...o });
}

/** What LeaseTimeToLive answers; undefined from the manager means "no such lease" (etcd answers TTL -1). */
export interface LeaseTtl {
  readonly id: LeaseId;
  /** Whole seconds left, truncated as etcd does. */
  readonly ttlSeconds: number;
  readonly grantedTtlSeconds: number;
  readonly keys: readonly Uint8Array[];
}

export class LeaseManager {
  readonly options: Readonly<LeaseManagerOptions>;
  private readonly tracker: LeaseExpiryTracker;
  /** Whether the tracker should be leading, per the last soft state; the tracker itself follows after promotion. */
  private leading = false;
  /** Bumped on every role change, so a promotion that finishes after a step-down does nothing. */
  private epoch = 0;
  private promotion: Promise<void> = Promise.resolve();
  private readonly revokesInFlight = new Set<LeaseId>();
  /** Lease -> when this member last heard of it in the log (grant or renewal applied here), monotonic ms. */
  private readonly lastWordAtMs = new Map<LeaseId, number>();
  /** The last word for every lease not in lastWordAtMs: when this manager started, or a snapshot was installed. */
  private baselineMs = 0;
  private readonly renewals: RenewalLog;
  /** Lease -> when the renewal this leader last logged for it arrived (its own clock). Cleared on step-down. */
  private readonly loggedRenewalAtMs = new Map<LeaseId, number>();
  private readonly cleanups: Array<() => void> = [];
  private started = false;

  constructor(
    readonly member: LeaseMember,
    options: Partial<LeaseManagerOptions> = {},
  ) {
    this.options = validate({ ...leaseManagerDefaults(), ...options });
    this.tracker = new LeaseExpiryTracker({
      monotonicNowMs: this.options.monotonicNowMs,
      revokeRetryIntervalMs: this.options.revokeRetryIntervalMs,
      batchMax: this.options.revokesPerTickMax,
      renewalCoalesceMs: this.options.renewalCoalesceMs,
    });
    // Leader-only: a renewal queued while this member led but proposed after it lost the lead would otherwise be
    // forwarded and committed under the next leader, after that leader built its deadlines from the log, and the
    // keep-alive acknowledged here would promise what the next leader never heard of (the chaos lease checker
    // caught a key revoked 0.1 s inside such a promise).
    this.renewals = new RenewalLog((op) => this.proposeWithDeadline(op, undefined, { leaderOnly: true }));
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    // Entries applied before now (replayed at start) were committed before now: now is a safe last word for them.
    this.hearAllNow();
    this.cleanups.push(this.member.subscribeSoftState((s) => this.onSoftState(s)));
    this.cleanups.push(this.member.subscribeApplied((results) => this.onApplied(results)));
    this.cleanups.push(this.member.subscribeRestored(() => this.hearAllNow()));
    this.cleanups.push(this.options.ticker.every(this.options.tickIntervalMs, () => void this.tick()));
    // The member may already lead (a single voter campaigns during start, before anyone could subscribe).
    if (this.member.isLeader()) this.onSoftState({ role: Role.Leader, lead: this.member.id });
  }

  stop(): void {
    for (const c of this.cleanups.splice(0)) c();
    this.epoch++;
    this.leading = false;
    this.tracker.stepDown();
    this.options.forwarder.close();
    this.started = false;
  }

  /** Whether this member's tracker keeps deadlines now (leader, promotion done). */
  get tracking(): boolean {
    return this.tracker.isLeader;
  }

  /** Resolves once a promotion in progress has finished (or at once). For tests and for keep-alives. */
  whenSettled(): Promise<void> {
    return this.promotion;
  }

  // ---- leadership

  private onSoftState(s: SoftState): void {
    const leading = s.role === Role.Leader;
    if (leading === this.leading) return;
    this.leading = leading;
    const epoch = ++this.epoch;
    if (leading) {
      this.promotion = this.promote(epoch);
    } else {
      this.tracker.stepDown();
      this.revokesInFlight.clear();
      this.loggedRenewalAtMs.clear();
      this.promotion = Promise.resolve();
    }
  }

  /** Confirm the new term with a barrier (every earlier entry applied), then start keeping deadlines. */
  private async promote(epoch: number): Promise<void> {
    while (epoch === this.epoch) {
      try {
        await this.member.linearizableBarrier();
      } catch {
        await sleep(PROMOTION_RETRY_MS); // no quorum yet, or a transient refusal: try again while still leader
        continue;
      }
      if (epoch !== this.epoch) return;
      this.tracker.becomeLeader(this.member.stateMachine.leases.list(), (id) => this.lastWordAtMs.get(id) ?? this.baselineMs);
      return;
    }
  }

  // ---- applied results

  private onApplied(results: readonly CommandResult[]): void {
    for (const r of results) {
      const granted = grantedLease(r);
      if (granted !== undefined) {
        this.lastWordAtMs.set(granted.id, this.nowMs());
        // Ignored by a tracker that is not leading: the lease is in the table it will be built from.
        this.tracker.onGranted(granted.id, granted.ttlSeconds);
      }
      for (const id of checkpointedLeases(r)) this.lastWordAtMs.set(id, this.nowMs());
    }
  }

  /** Every lease was last heard of now: at start, and after a snapshot replaced the table wholesale. */
  private hearAllNow(): void {
    this.lastWordAtMs.clear();
    this.baselineMs = this.nowMs();
  }

  /** Forget revoked leases' last words (revoke results do not name the lease, so prune against the table). */
  private pruneLastWords(): void {
    const table = this.member.stateMachine.leases;
    for (const id of this.lastWordAtMs.keys()) if (!table.has(id)) this.lastWordAtMs.delete(id);
    for (const id of this.loggedRenewalAtMs.keys()) if (!table.has(id)) this.loggedRenewalAtMs.delete(id);
  }

  private nowMs(): number {
    return Math.floor(this.options.monotonicNowMs());
  }

  /** The table is the truth about existence: drop a lease the tracker still holds but the log revoked. */
  private existsOrForget(id: LeaseId): boolean {
    if (this.member.stateMachine.leases.has(id)) return true;
    this.tracker.onRevoked(id);
    return false;
  }

  // ---- the timer

  /** One round: propose revokes for expired leases. Resolves when those proposals settle. */
  async tick(): Promise<void> {
    const slack = LAST_WORDS_SLACK + this.member.stateMachine.leases.size;
    if (this.lastWordAtMs.size > slack || this.loggedRenewalAtMs.size > slack) this.pruneLastWords();
    if (!this.tracker.isLeader || leaseTestHooks.skipExpiry) return;
    const work: Array<Promise<void>> = [];
    for (const id of this.tracker.expiredLeases()) {
      if (!this.existsOrForget(id) || this.revokesInFlight.has(id)) continue;
      work.push(this.proposeExpiry(id));
    }
    await Promise.all(work);
  }

  private async proposeExpiry(id: LeaseId): Promise<void> {
    this.revokesInFlight.add(id);
    try {
      // Leader-only, like renewals: the expiry was judged on this leader's deadlines, which a later leader replaces.
      const r = await this.proposeWithDeadline({ leaseRevoke: { id } }, undefined, { leaderOnly: true });
      // LEASE_NOT_FOUND: someone revoked it first. Either way it is gone.
      if (r.error === undefined || r.error.code === 'LEASE_NOT_FOUND') this.tracker.onRevoked(id);
    } catch {
      // Lost leadership or a timeout: the tracker reports it again after revokeRetryIntervalMs.
    } finally {
      this.revokesInFlight.delete(id);
    }
  }

  // ---- client calls

  /** A client revoked a lease through this member: stop tracking it once the revoke is applied. */
  async revoke(id: LeaseId, auth?: CommandAuth): Promise<CommandResult> {
    const r = await this.proposeWithDeadline({ leaseRevoke: { id } }, auth);
    if (r.error === undefined) this.tracker.onRevoked(id);
    return r;
  }

  /**
   * A keep-alive. On the leader: the renewal counts from the moment it arrived, and is committed to the log
   * (batched with others) before it is acknowledged. On a follower: forwarded to the leader. Resolves with the TTL
   * in seconds; LEASE_NOT_FOUND for an unknown or expired lease. `forwarded` requests are never forwarded again.
   */
  async renew(id: LeaseId, opts: { forwarded?: boolean; token?: string } = {}): Promise<number> {
    if (!this.member.isLeader()) {
      if (opts.forwarded === true) throw apiError('NOT_LEADER');
      return this.options.forwarder.keepAlive(this.leaderTarget(), id, this.options.forwardTimeoutMs, opts.token);
    }
    // Whole milliseconds, as the tracker counts: a fraction would put renewedAtMs after the tracker's "now".
    const renewedAtMs = this.nowMs();
    await this.promotion;
    if (!this.tracker.isLeader) throw apiError('LEADER_CHANGED');
    if (!this.existsOrForget(id)) throw apiError('LEASE_NOT_FOUND');
    this.adoptUntracked(id);
    this.tracker.checkRenewable(id);
    // Renewed and logged a moment ago: acknowledge without another entry (new leaders allow for it, see above).
    const loggedAt = this.loggedRenewalAtMs.get(id);
    if (loggedAt !== undefined && renewedAtMs - loggedAt <= this.options.renewalCoalesceMs) return this.tracker.renew(id, renewedAtMs);
    const ttlMs = this.tracker.ttlMsOf(id) ?? 0;
    // Revoked in the log before the renewal reached it: the lease is gone, whatever the tracker thinks.
    if (!(await this.logRenewal(id, ttlMs))) throw apiError('LEASE_NOT_FOUND');
    // Committed: every later leader counts from when it applied this entry. If this member lost the lead while
    // the entry was committing, the acknowledgement is still true; there is just no local deadline to move.
    if (!this.tracker.isLeader) return ttlMs / 1000;
    this.loggedRenewalAtMs.set(id, Math.max(this.loggedRenewalAtMs.get(id) ?? renewedAtMs, renewedAtMs));
    return this.tracker.renew(id, renewedAtMs);
  }

  /** Log a renewal; resolves with whether its checkpoint entry reached the lease. */
  private async logRenewal(id: LeaseId, ttlMs: number): Promise<boolean> {
    let logged: RenewalLogged;
    try {
      logged = await this.renewals.log(id, ttlMs);
    } catch (e) {
      if (e instanceof TooManyRenewalsError) throw apiError('TOO_MANY_REQUESTS');
      throw e;
    }
    const failure = commandFailure(logged.result);
    if (failure !== undefined) throw failure;
    return logged.reached;
  }

  /** The remaining TTL, granted TTL and keys of a lease; undefined when it does not exist. */
  async timeToLive(id: LeaseId, keys: boolean, opts: { forwarded?: boolean; token?: string } = {}): Promise<LeaseTtl | undefined> {
    if (!this.member.isLeader()) {
      if (opts.forwarded === true) throw apiError('NOT_LEADER');
      const r = await this.options.forwarder.timeToLive(this.leaderTarget(), id, keys, this.options.forwardTimeoutMs, opts.token);
      return r.ttlSeconds < 0 ? undefined : { id, ttlSeconds: r.ttlSeconds, grantedTtlSeconds: r.grantedTtlSeconds, keys: r.keys };
    }
    await this.member.linearizableBarrier();
    await this.promotion;
    const info = this.member.stateMachine.leases.get(id);
    if (info === undefined) {
      this.tracker.onRevoked(id);
      return undefined;
    }
    this.adoptUntracked(id);
    const remainingMs = this.tracker.remainingMs(id) ?? info.ttlSeconds * 1000;
    return {
      id,
      ttlSeconds: Math.trunc(remainingMs / 1000),
      grantedTtlSeconds: info.ttlSeconds,
      keys: keys ? this.member.stateMachine.mvcc.keysWithLease(id) : [],
    };
  }

  /** Every lease, after a barrier (a linearizable list). */
  async list(): Promise<LeaseInfo[]> {
    await this.member.linearizableBarrier();
    return this.member.stateMachine.leases.list();
  }

  /**
   * Safety net: a lease in the table that a leading tracker does not know (a grant whose result was not seen)
   * starts a full TTL now, which can only lengthen it.
   */
  private adoptUntracked(id: LeaseId): void {
    if (!this.tracker.isLeader || this.tracker.remainingMs(id) !== undefined) return;
    const info = this.member.stateMachine.leases.get(id);
    if (info !== undefined) this.tracker.onGranted(id, info.ttlSeconds);
  }

  /** The leader's client URL; the forwarder picks credentials by its scheme. */
  private leaderTarget(): string {
    const lead = this.member.leaderId();
    if (lead === 0) throw apiError('NO_LEADER');
    const record = this.member.members().find((m) => m.id === lead);
    const url = record?.clientUrls[0];
    if (url === undefined) throw apiError('NO_LEADER', 'etcdserver: no leader'); // not published yet: as good as none
    return url;
  }

  /** `auth`: the client's requester, for a client's command (storage/auth/authorize.ts checks it at apply). */
  async proposeWithDeadline(op: Op, auth?: CommandAuth, how: { leaderOnly?: boolean } = {}): Promise<CommandResult> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(apiError('TIMEOUT')), this.options.proposalTimeoutMs);
    });
    try {
      const proposed = this.member.propose(op, auth === undefined ? {} : { auth }, how).catch((e: unknown) => {
        // Refused because this member no longer leads: the client asks again, and reaches the leader.
        if (how.leaderOnly === true && e instanceof LoopError && e.code === 'PROPOSAL_DROPPED') throw apiError('LEADER_CHANGED');
        throw e;
      });
      return await Promise.race([proposed, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** "http://10.0.0.1:2379" -> "10.0.0.1:2379" (grpc-js targets carry no scheme for plain TCP). */
export function grpcTarget(url: string): string {
  const m = /^[a-z]+:\/\/([^/]+)/i.exec(url);
  return m?.[1] ?? url;
}

/** A grant's applied result carries the table's LeaseInfo. */
function grantedLease(r: CommandResult): { id: LeaseId; ttlSeconds: number } | undefined {
  const resp = r.response as Record<string, unknown> | null | undefined;
  if (r.op !== 'leaseGrant' || r.error !== undefined || typeof resp !== 'object' || resp === null) return undefined;
  if (typeof resp.id !== 'bigint' || typeof resp.ttlSeconds !== 'number') return undefined;
  return { id: resp.id, ttlSeconds: resp.ttlSeconds };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
