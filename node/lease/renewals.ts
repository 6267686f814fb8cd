// Renewals on the log. Every keep-alive the leader acknowledges is first committed as a checkpoint entry that
// says "this lease had its full TTL left at this point of the log", so a new leader can continue each lease's
// countdown from when it heard of the renewal instead of restarting it (storage/lease/expiry-tracker.ts says
// why that is safe). One entry carries every renewal that arrived while the previous entry was being
// committed: under load the cost is one small entry per commit round, not one per keep-alive.
import type { LeaseId } from '../../storage/lease/index.js';
import type { CommandResult } from '../../storage/state-machine.js';
import type { Op } from '../../storage/command.js';

/** Leases per checkpoint entry at most; more wait for the next entry. Bounds an entry at ~20 KiB. */
export const RENEWALS_PER_ENTRY_MAX = 1_000;
/** Renewals waiting for an entry at most; beyond it keep-alives are refused (`too many requests`) until it drains. */
export const RENEWALS_PENDING_MAX = 100_000;

export class TooManyRenewalsError extends Error {
  constructor() {
    super(`fulcrum: more than ${RENEWALS_PENDING_MAX} keep-alives waiting to be logged`);
  }
}

/** A renewal's outcome: the checkpoint entry's result, and whether that entry reached this lease. */
export interface RenewalLogged {
  readonly result: CommandResult;
  /** False when a revoke ordered before the entry removed the lease (or the entry failed). */
  readonly reached: boolean;
}

interface Waiter {
  resolve(r: RenewalLogged): void;
  reject(e: unknown): void;
}

export class RenewalLog {
  /** Lease -> full TTL to log, and everyone waiting for that lease's renewal to commit. */
  private readonly pending = new Map<LeaseId, { ttlMs: number; waiters: Waiter[] }>();
  private pendingWaiters = 0;
  private flushing = false;

  constructor(private readonly propose: (op: Op) => Promise<CommandResult>) {}

  /** Resolves once a checkpoint carrying this renewal has been applied: its result, and whether it reached `id`. */
  log(id: LeaseId, ttlMs: number): Promise<RenewalLogged> {
    if (this.pendingWaiters >= RENEWALS_PENDING_MAX) return Promise.reject(new TooManyRenewalsError());
    return new Promise<RenewalLogged>((resolve, reject) => {
      const slot = this.pending.get(id) ?? { ttlMs, waiters: [] };
      slot.waiters.push({ resolve, reject });
      this.pending.set(id, slot);
      this.pendingWaiters++;
      if (!this.flushing) void this.flush();
    });
  }

  /** Propose entries until nothing is pending; one entry in flight at a time (that is the batching). */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending.size > 0) await this.proposeOne(this.take());
    } finally {
      this.flushing = false;
    }
  }

  private take(): Array<[LeaseId, { ttlMs: number; waiters: Waiter[] }]> {
    const batch: Array<[LeaseId, { ttlMs: number; waiters: Waiter[] }]> = [];
    for (const entry of this.pending) {
      if (batch.length >= RENEWALS_PER_ENTRY_MAX) break;
      batch.push(entry);
    }
    for (const [id, slot] of batch) {
      this.pending.delete(id);
      this.pendingWaiters -= slot.waiters.length;
    }
    return batch;
  }

  private async proposeOne(batch: Array<[LeaseId, { ttlMs: number; waiters: Waiter[] }]>): Promise<void> {
    const checkpoints = batch.map(([id, slot]) => ({ id, remainingTtlMs: slot.ttlMs }));
    try {
      const result = await this.propose({ leaseCheckpoint: { checkpoints } });
      // One set per entry: each of up to RENEWALS_PER_ENTRY_MAX waiters asks about its own lease.
      const reached = new Set(checkpointedLeases(result));
      for (const [id, slot] of batch) {
        const answer = { result, reached: reached.has(id) };
        for (const w of slot.waiters) w.resolve(answer);
      }
    } catch (e) {
      for (const [, slot] of batch) for (const w of slot.waiters) w.reject(e);
    }
  }
}

/** The leases a checkpoint entry reached, from its applied result (the state machine lists them). */
export function checkpointedLeases(r: CommandResult): readonly LeaseId[] {
  if (r.op !== 'leaseCheckpoint' || r.error !== undefined) return [];
  const resp = r.response as { leases?: unknown } | null | undefined;
  const ids = resp?.leases;
  return Array.isArray(ids) ? ids.filter((x): x is bigint => typeof x === 'bigint') : [];
}
