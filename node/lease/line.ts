// "Wait in line": the queue that etcd's election and mutex recipes build from keys, run inside the server.
//
// Each participant owns the key <prefix><lease id in hex>, attached to its lease. Participants are ordered by
// the key's create revision; the one with the lowest holds the election or the lock. A waiter watches only its
// nearest predecessor (the highest create revision below its own), so a release wakes one waiter, not all.
//
//   name/  key          create rev
//          name/6a      7     <- holder (lowest)
//          name/6b      9     waits for name/6a to be deleted
//          name/6c      12    waits for name/6b
//
// The holder's create revision is the fencing token: revisions only grow, a key keeps its create revision for
// its whole life, and a grant requires the lowest create revision among the keys present at a linearizable read,
// so successive holders carry strictly increasing tokens across leader changes and restarts.
//
// Unlike etcd's recipes (which keep the session's lease alive while they wait), the server never renews a
// waiter's lease: the client must. A waiter whose key disappears (its lease expired or was revoked) is refused
// with LEASE_NOT_FOUND instead of being granted, which is what "granted only while the lease is alive" needs.
import type { CommandAuth } from '../../storage/auth/index.js';
import { apiError } from '../api/errors.js';
import type { KeyValue, RangeResponse, TxnResponse } from '../../storage/mvcc/types.js';
import type { CommandResult } from '../../storage/state-machine.js';
import type { Member } from '../member.js';

/** Waiters in line across all names on one member; more are refused (a bound on parked calls and listeners). */
export const LINE_WAITERS_MAX = 10_000;

export type LineMember = Pick<Member, 'propose' | 'linearizableBarrier' | 'subscribeApplied'> & {
  readonly stateMachine: { readonly mvcc: { range: Member['stateMachine']['mvcc']['range'] } };
};

/** Where a participant stands after joining. */
export interface Joined {
  readonly key: Uint8Array;
  readonly createRevision: number;
  /** The store revision of the join (the txn's header). */
  readonly revision: number;
  /** The key existed already (the same lease joined before): its current value. */
  readonly existingValue: Uint8Array | undefined;
}

const encoder = new TextEncoder();

/** <prefix><lease hex>, as etcd's recipes spell it (Go's %x: lowercase, no padding). */
export function lineKey(prefix: Uint8Array, lease: bigint): Uint8Array {
  return concat(prefix, encoder.encode(lease.toString(16)));
}

/** The range end that covers every key starting with `prefix` (etcd's GetPrefixRangeEnd). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.slice(0, i + 1);
    }
  }
  return Uint8Array.of(0); // all 0xff: every key from prefix on
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A failed command's typed error as something to throw. */
export function commandFailure(r: CommandResult): Error | undefined {
  if (r.error === undefined) return undefined;
  return Object.assign(new Error(r.error.message), { code: r.error.code });
}

export class Line {
  private waiters = 0;

  constructor(private readonly member: LineMember) {}

  /**
   * Put the key with the lease unless it exists (a second join of the same lease reuses the key, as etcd). `auth`:
   * the client's requester, checked again at apply like any client write.
   */
  async join(key: Uint8Array, value: Uint8Array, lease: bigint, auth?: CommandAuth): Promise<Joined> {
    const r = await this.member.propose(
      {
        txn: {
          compare: [{ key, target: 'CREATE', result: 'EQUAL', createRevision: 0 }],
          success: [{ requestPut: { key, value, lease } }],
          failure: [{ requestRange: { key } }],
        },
      },
      auth === undefined ? {} : { auth },
    );
    const failure = commandFailure(r);
    if (failure !== undefined) throw failure;
    const txn = r.response as unknown as TxnResponse;
    if (txn.succeeded) return { key, createRevision: txn.header.revision, revision: txn.header.revision, existingValue: undefined };
    const first = txn.responses[0];
    const kv = first !== undefined && 'responseRange' in first ? first.responseRange.kvs[0] : undefined;
    // Gone between compare and read is impossible inside one txn; absent here means the txn shape is broken.
    if (kv === undefined) throw apiError('TIMEOUT');
    return { key, createRevision: kv.createRevision, revision: txn.header.revision, existingValue: kv.value };
  }

  /**
   * Wait until `key` (created at `createRevision`) has the lowest create revision under `prefix`. Resolves with
   * the store revision of the linearizable read that saw it at the head. Throws LEASE_NOT_FOUND when the key
   * vanished first (its lease expired), and the abort reason when `signal` fires.
   */
  async waitForTurn(prefix: Uint8Array, key: Uint8Array, createRevision: number, signal: AbortSignal): Promise<number> {
    if (this.waiters >= LINE_WAITERS_MAX) throw apiError('TOO_MANY_REQUESTS');
    this.waiters++;
    try {
      for (;;) {
        signal.throwIfAborted();
        await this.member.linearizableBarrier();
        const view = await this.look(prefix, key, createRevision);
        if (view.mine === undefined) throw apiError('LEASE_NOT_FOUND');
        if (view.predecessor === undefined) return view.revision;
        await this.waitForDeletion([view.predecessor, view.mine], signal);
      }
    } finally {
      this.waiters--;
    }
  }

  /** One consistent look at the line: my key and my nearest predecessor, both at the same revision. */
  private async look(prefix: Uint8Array, key: Uint8Array, createRevision: number): Promise<{ revision: number; mine?: KeyValue; predecessor?: KeyValue }> {
    const mvcc = this.member.stateMachine.mvcc;
    const before: RangeResponse = await mvcc.range({
      key: prefix,
      rangeEnd: prefixEnd(prefix),
      maxCreateRevision: createRevision - 1,
      sortOrder: 'DESCEND',
      sortTarget: 'CREATE',
      limit: 1,
    });
    const revision = before.header.revision;
    const own = await mvcc.range({ key, revision });
    const mine = own.kvs.find((kv) => kv.createRevision === createRevision);
    return { revision, ...(mine !== undefined ? { mine } : {}), ...(before.kvs[0] !== undefined ? { predecessor: before.kvs[0] } : {}) };
  }

  /**
   * Resolve once any of these key versions is gone (deleted, or re-created with a new create revision). Listens
   * to applied results first, then checks the local state once, so a deletion between the two is not missed.
   */
  private waitForDeletion(kvs: readonly KeyValue[], signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: unknown): void => {
        if (done) return;
        done = true;
        unsubscribe();
        signal.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = (): void => finish(signal.reason ?? new Error('aborted'));
      const unsubscribe = this.member.subscribeApplied((results) => {
        for (const r of results) for (const e of r.events) if (e.type === 'DELETE' && kvs.some((kv) => bytesEqual(kv.key, e.kv.key))) return finish();
      });
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) return onAbort();
      this.anyGone(kvs).then(
        (gone) => gone && finish(),
        (e: unknown) => finish(e),
      );
    });
  }

  private async anyGone(kvs: readonly KeyValue[]): Promise<boolean> {
    for (const kv of kvs) {
      const r = await this.member.stateMachine.mvcc.range({ key: kv.key });
      if (r.kvs[0]?.createRevision !== kv.createRevision) return true;
    }
    return false;
  }

  /** Delete the key if it is still the same version of it (create revision), as Resign and a cancelled wait do. */
  async leave(key: Uint8Array, createRevision: number, auth?: CommandAuth): Promise<CommandResult> {
    return this.member.propose(
      {
        txn: {
          compare: [{ key, target: 'CREATE', result: 'EQUAL', createRevision }],
          success: [{ requestDeleteRange: { key } }],
        },
      },
      auth === undefined ? {} : { auth },
    );
  }
}
