// v3electionpb.Election, run in the server with etcd's election recipe (clientv3/concurrency.Election):
//
//   Campaign  put <name>/<lease hex> with the lease if absent (a second campaign of the same lease reuses the key
//             and, if the value differs, proclaims it); wait until the key has the lowest create revision under
//             <name>/ (node/lease/line.ts); answer LeaderKey {name, key, rev = create revision = the fencing
//             token, lease}. A cancelled Campaign resigns (deletes its key). A key that vanishes while waiting
//             (its lease expired) is never granted: LEASE_NOT_FOUND.
//   Proclaim  txn: if create_revision(key) == rev then put(key, value, lease); otherwise "election: not leader".
//   Leader    the key with the lowest create revision under <name>/, or "election: no leader".
//   Observe   the current leader, every put to the leader key, then the next leader after it is deleted; when
//             there is none, the first put under the prefix.
//   Resign    txn: if create_revision(key) == rev then delete(key). Not an error when it no longer matches.
//
// Lease 0 in Campaign (and Lock) means "make me a session": etcd's server then grants a lease with the recipe's
// default TTL (60 s); so does Fulcrum. The server never keeps a lease alive on a client's behalf.
import type * as grpc from '@grpc/grpc-js';
import type { ElectionMethods, Encodable, Handlers, KeyValue as WireKeyValue, LeaderRequest, LeaderResponse } from '../../proto/index.js';
import type { KeyValue, MvccEvent } from '../../storage/mvcc/types.js';
import { bytesEqual, commandFailure, concat, Line, lineKey, prefixEnd } from '../lease/line.js';
import type { LeaseManager } from '../lease/manager.js';
import type { Member } from '../member.js';
import type { CommandAuth } from '../../storage/auth/index.js';
import { authorizeKeys } from './authz.js';
import type { ApiContext } from './context.js';
import { fromMvccKv } from './convert.js';
import { apiError, endStreamWithError } from './errors.js';
import { responseHeader } from './header.js';
import { parseLeaseId, unary } from './lease.js';
import { untilWritable } from './limits.js';

/** etcd's concurrency.Session default TTL, used when a Campaign or Lock names no lease. */
export const SESSION_TTL_SECONDS = 60;
/** Events queued for one Observe stream; on overflow the stream skips to the current leader (it loses nothing final). */
export const OBSERVE_QUEUE_MAX = 1_000;

const SLASH = Uint8Array.of(0x2f);

/** etcd's recipe errors: plain Go errors there, so clients see gRPC UNKNOWN with these messages (node/api/errors.ts). */
export const recipeError = {
  notLeader: (): Error => apiError('ELECTION_NOT_LEADER'),
  noLeader: (): Error => apiError('ELECTION_NO_LEADER'),
  missingLeaderKey: (): Error => apiError('ELECTION_MISSING_LEADER_KEY'),
};

export function createElectionService(ctx: ApiContext, leases: LeaseManager): Handlers<ElectionMethods> {
  const member = ctx.member;
  const line = new Line(member);
  const header = (revision?: number): ReturnType<typeof responseHeader> => responseHeader(member, revision);
  return {
    Campaign: unary(ctx, 'Campaign', async (req, call) => {
      const prefix = concat(req.name, SLASH);
      const auth = authorizeKeys(ctx, call, { key: prefix, rangeEnd: prefixEnd(prefix) }, { read: true, write: true });
      const signal = cancelSignal(call);
      const lease = await sessionLease(leases, req.lease, auth);
      const joined = await line.join(lineKey(prefix, lease), req.value, lease, auth);
      if (joined.existingValue !== undefined && !bytesEqual(joined.existingValue, req.value)) {
        const ok = await proclaim(member, joined.key, joined.createRevision, lease, req.value, auth);
        if (!ok.succeeded) throw recipeError.notLeader();
      }
      try {
        const revision = await line.waitForTurn(prefix, joined.key, joined.createRevision, signal);
        return { header: header(revision), leader: { name: req.name, key: joined.key, rev: joined.createRevision, lease } };
      } catch (e) {
        // etcd resigns a cancelled campaign; a key that is gone already needs nothing.
        if (signal.aborted) void line.leave(joined.key, joined.createRevision, auth).catch(() => undefined);
        throw e;
      }
    }),

    Proclaim: unary(ctx, 'Proclaim', async (req, call) => {
      if (req.leader === null) throw recipeError.missingLeaderKey();
      const auth = authorizeKeys(ctx, call, { key: req.leader.key }, { read: true, write: true });
      const r = await proclaim(member, req.leader.key, Number(req.leader.rev), parseLeaseId(req.leader.lease, { zeroAllowed: true }), req.value, auth);
      if (!r.succeeded) throw recipeError.notLeader();
      return { header: header(r.revision) };
    }),

    Leader: unary(ctx, 'Leader', async (req, call) => {
      const prefix = concat(req.name, SLASH);
      authorizeKeys(ctx, call, { key: prefix, rangeEnd: prefixEnd(prefix) }, { read: true, write: false });
      await member.linearizableBarrier();
      const r = await currentLeader(member, concat(req.name, SLASH));
      if (r.kv === undefined) throw recipeError.noLeader();
      return { header: header(r.revision), kv: toWireKv(r.kv) };
    }),

    Observe: (call) => {
      const prefix = concat(call.request.name, SLASH);
      try {
        authorizeKeys(ctx, call, { key: prefix, rangeEnd: prefixEnd(prefix) }, { read: true, write: false });
      } catch (e) {
        endStreamWithError(call, e);
        return;
      }
      new Observer(call, member, prefix).start();
    },

    Resign: unary(ctx, 'Resign', async (req, call) => {
      if (req.leader === null) throw recipeError.missingLeaderKey();
      const auth = authorizeKeys(ctx, call, { key: req.leader.key }, { read: true, write: true });
      const r = await line.leave(req.leader.key, Number(req.leader.rev), auth);
      const failure = commandFailure(r);
      if (failure !== undefined) throw failure;
      return { header: header(r.revision) };
    }),
  };
}

/** The lease a Campaign or Lock runs under: the client's, or a fresh session lease for lease 0 (etcd's rule). */
export async function sessionLease(leases: LeaseManager, wire: string, auth?: CommandAuth): Promise<bigint> {
  const id = parseLeaseId(wire, { zeroAllowed: true });
  if (id !== 0n) return id;
  const r = await leases.proposeWithDeadline({ leaseGrant: { id: 0n, ttlSeconds: SESSION_TTL_SECONDS } }, auth);
  const failure = commandFailure(r);
  if (failure !== undefined) throw failure;
  return (r.response as unknown as { id: bigint }).id;
}

/** An AbortSignal that fires when the client cancels the call (or its deadline passes). */
export function cancelSignal(call: { readonly cancelled: boolean; on(event: 'cancelled', fn: () => void): unknown }): AbortSignal {
  const ac = new AbortController();
  const abort = (): void => ac.abort(apiError('TIMEOUT', 'fulcrum: call cancelled'));
  if (call.cancelled) abort();
  else call.on('cancelled', abort);
  return ac.signal;
}

async function proclaim(
  member: Member,
  key: Uint8Array,
  rev: number,
  lease: bigint,
  value: Uint8Array,
  auth: CommandAuth,
): Promise<{ succeeded: boolean; revision: number }> {
  const r = await member.propose(
    { txn: { compare: [{ key, target: 'CREATE', result: 'EQUAL', createRevision: rev }], success: [{ requestPut: { key, value, lease } }] } },
    { auth },
  );
  const failure = commandFailure(r);
  if (failure !== undefined) throw failure;
  return { succeeded: (r.response as { succeeded?: boolean }).succeeded === true, revision: r.revision };
}

/** The key with the lowest create revision under the prefix (etcd's WithFirstCreate), from local state. */
async function currentLeader(member: Member, prefix: Uint8Array): Promise<{ revision: number; kv?: KeyValue }> {
  const r = await member.stateMachine.mvcc.range({ key: prefix, rangeEnd: prefixEnd(prefix), sortTarget: 'CREATE', sortOrder: 'ASCEND', limit: 1 });
  return { revision: r.header.revision, ...(r.kvs[0] !== undefined ? { kv: r.kvs[0] } : {}) };
}

/** The one conversion of a key-value to the wire (with Fulcrum's HLC fields). */
export function toWireKv(kv: KeyValue): Encodable<WireKeyValue> {
  return fromMvccKv(kv);
}

function hasPrefix(key: Uint8Array, prefix: Uint8Array): boolean {
  return key.length >= prefix.length && prefix.every((b, i) => key[i] === b);
}

/**
 * One Observe stream. Applied events under the prefix are queued as they arrive and handled one at a time after
 * a first linearizable read; events at or below the revision of the last read are already reflected in it.
 */
class Observer {
  private leader: KeyValue | undefined;
  private floorRevision = 0;
  private readonly queue: MvccEvent[] = [];
  private needResync = true;
  private pumping = false;
  /** The last write found no room: the pump waits for 'drain' before it sends more. */
  private blocked = false;
  private closed = false;
  private unsubscribe: () => void = () => undefined;

  constructor(
    private readonly call: grpc.ServerWritableStream<LeaderRequest, Encodable<LeaderResponse>>,
    private readonly member: Member,
    private readonly prefix: Uint8Array,
  ) {}

  start(): void {
    this.unsubscribe = this.member.subscribeApplied((results) => this.onApplied(results));
    this.call.on('cancelled', () => this.close());
    this.call.on('error', () => this.close());
    void this.member.linearizableBarrier().then(
      () => this.pump(),
      (e: unknown) => this.fail(e),
    );
  }

  private onApplied(results: readonly { events: readonly MvccEvent[] }[]): void {
    for (const r of results) {
      for (const e of r.events) {
        if (!hasPrefix(e.kv.key, this.prefix)) continue;
        if (this.queue.length >= OBSERVE_QUEUE_MAX) {
          // Too far behind: forget the backlog and read the current leader instead.
          this.queue.length = 0;
          this.needResync = true;
        } else this.queue.push(e);
      }
    }
    if (!this.needResync || this.floorRevision > 0) void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    try {
      while (!this.closed && (this.needResync || this.queue.length > 0)) {
        if (this.needResync) await this.resync();
        else this.handle(this.queue.shift()!);
        // A client that does not read: wait, while new events go to the bounded queue (or to a resync).
        if (this.blocked) await untilWritable(this.call);
        this.blocked = false;
      }
    } catch (e) {
      this.fail(e);
    } finally {
      this.pumping = false;
    }
  }

  private async resync(): Promise<void> {
    this.needResync = false;
    const r = await currentLeader(this.member, this.prefix);
    this.floorRevision = r.revision;
    const changed = r.kv !== undefined && (this.leader === undefined || !bytesEqual(this.leader.key, r.kv.key) || this.leader.modRevision !== r.kv.modRevision);
    this.leader = r.kv;
    if (changed) this.send(r.kv!, r.revision);
  }

  private handle(e: MvccEvent): void {
    if (e.kv.modRevision <= this.floorRevision) return;
    if (this.leader === undefined) {
      // No leader: the first put under the prefix is the new one (it is the only key).
      if (e.type !== 'PUT') return;
      this.leader = e.kv;
      this.send(e.kv, e.kv.modRevision);
      return;
    }
    if (!bytesEqual(e.kv.key, this.leader.key)) return;
    if (e.type === 'PUT') {
      this.leader = e.kv;
      this.send(e.kv, e.kv.modRevision);
    } else {
      this.leader = undefined;
      this.needResync = true; // the line moves on: read who leads now
    }
  }

  private send(kv: KeyValue, revision: number): void {
    if (!this.closed && !this.call.write({ header: responseHeader(this.member, revision), kv: toWireKv(kv) })) this.blocked = true;
  }

  private fail(e: unknown): void {
    if (this.closed) return;
    this.close();
    endStreamWithError(this.call, e);
  }

  private close(): void {
    this.closed = true;
    this.unsubscribe();
  }
}
