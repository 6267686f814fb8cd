// etcd's KV service (Range, Put, DeleteRange, Txn, Compact) over a Member, and the call plumbing every Fulcrum
// service shares: the hasleader check, error mapping, and deadlines for work that waits on Raft.
//
// Reads are linearizable unless the client asks for serializable: a ReadIndex round (batched with concurrent
// reads by the Ready loop) and then the local MVCC store. Writes are proposed through Raft on whichever member the
// client reached (a follower's proposal is forwarded by the core) and answered once applied here. Bad input is
// refused before anything is proposed, with etcd's codes and messages, so a bad request never costs a log entry.
import * as grpc from '@grpc/grpc-js';
import type { Encodable, Handlers, KVMethods, RangeResponse, ResponseHeader } from '../../proto/index.js';
import { encodeRangeResponse } from '../../proto/kv-wire.js';
import type { Command, Op } from '../../storage/command.js';
import type * as mvcc from '../../storage/mvcc/index.js';
import { checkDeleteRangeRequest, checkPutRequest, checkRangeRequest, checkTxnIntervals, checkTxnRequest, txnHasWrites } from '../../storage/mvcc/validate.js';
import type { CommandResult, StateMachine } from '../../storage/state-machine.js';
import { authorizeOp, authorizeRead, tokenMayBeAhead } from './authz.js';
import type { ApiContext } from './context.js';
import {
  fromMvccDeleteRange,
  fromMvccPut,
  fromMvccRange,
  fromMvccTxn,
  requestIdentity,
  requestSizeBound,
  requiresLeader,
  toMvccDeleteRange,
  toMvccPut,
  toMvccRange,
  toMvccTxn,
  toNumber,
  type HlcOf,
} from './convert.js';
import { apiError, toServiceError } from './errors.js';
import { waitingRequestsOf } from './deadlines.js';
import { boundedRead, checkTxnShape } from './limits.js';
import { responseHeader } from './header.js';
import { trace } from '../trace.js';
import { metadataOf, type MetadataReader, type ReadableMetadata } from './metadata.js';

// ---------------------------------------------------------------------------------------------------------
// Call plumbing (shared by the maintenance, cluster and fulcrum services)
// ---------------------------------------------------------------------------------------------------------

/**
 * An async unary handler as grpc-js wants it. Checks `hasleader` first (etcd clients send it with
 * WithRequireLeader and expect to fail fast), and maps every failure through the one error mapping.
 */
export function unary<Q, R>(ctx: ApiContext, method: string, run: (call: grpc.ServerUnaryCall<Q, R>) => Promise<R>): grpc.handleUnaryCall<Q, R> {
  return (call, callback) => {
    void (async () => {
      try {
        const wait = beforeCall(ctx, call);
        if (wait !== undefined) await wait;
        callback(null, await run(call));
      } catch (e) {
        callback(failure(ctx, method, e));
      }
    })();
  };
}

/** What a proposal call proposes, and how its result becomes the answer. */
interface Proposal<R> {
  readonly op: Op;
  readonly answer: (r: CommandResult) => R;
}

/**
 * A unary call that is one proposal (Put, DeleteRange): the checks and answers of unary() around proposeWithin(),
 * without their three async frames per request. Each was a promise and a suspended frame kept on the heap until
 * the proposal applied, much of it outliving the young generation at 100 puts in flight (thirty-fifth session).
 * A call whose token may be ahead of this member waits for its barrier on the general path.
 */
export function proposalCall<Q, R>(ctx: ApiContext, method: string, prepare: (call: grpc.ServerUnaryCall<Q, R>) => Proposal<R>): grpc.handleUnaryCall<Q, R> {
  const general = unary<Q, R>(ctx, method, async (call) => {
    const p = prepare(call);
    return p.answer(await proposeWithin(ctx, call, p.op, commandIdentity(call, authorizeOp(ctx, call, p.op))));
  });
  return (call, callback) => {
    const md = metadataOf(call);
    if (tokenMayBeAhead(ctx, md)) return general(call, callback);
    let p: Proposal<R>;
    let work: Promise<CommandResult>;
    try {
      checkLeaderRequirement(ctx, md);
      p = prepare(call);
      work = untilDeadline(ctx, call, ctx.member.propose(p.op, commandIdentity(call, authorizeOp(ctx, call, p.op))));
    } catch (e) {
      return callback(failure(ctx, method, e));
    }
    work.then(
      (r) => {
        let value: R;
        try {
          if (r.error !== undefined) throw r.error;
          value = p.answer(r);
        } catch (e) {
          return callback(failure(ctx, method, e));
        }
        callback(null, value);
      },
      (e: unknown) => callback(failure(ctx, method, e)),
    );
  };
}

/**
 * What every unary call does before its handler: the `hasleader` check (etcd runs it in an interceptor for every
 * call), and, for a token this member may not have applied yet, a ReadIndex barrier first (see tokenMayBeAhead).
 * Undefined when there is nothing to wait for, so the common call pays no promise for it.
 */
export function beforeCall(ctx: ApiContext, call: SurfaceCall): Promise<void> | undefined {
  const md = metadataOf(call);
  checkLeaderRequirement(ctx, md);
  return tokenMayBeAhead(ctx, md) ? readBarrier(ctx, call) : undefined;
}

export function checkLeaderRequirement(ctx: ApiContext, md: MetadataReader): void {
  if (requiresLeader(md) && ctx.member.leaderId() === 0) throw apiError('NO_LEADER');
}

/** The gRPC status for an error; an unexpected one is logged here, since the client only sees INTERNAL. */
export function failure(ctx: ApiContext, method: string, e: unknown): grpc.ServiceError {
  const err = toServiceError(e);
  if (err.code === grpc.status.INTERNAL) ctx.logger.error({ component: 'api', method, err: e }, 'request failed unexpectedly');
  return err;
}

/** What every kind of server call has in common (grpc-js does not export its ServerSurfaceCall type). */
export type SurfaceCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, 'cancelled' | 'metadata' | 'getDeadline' | 'on' | 'once' | 'removeListener'> &
  ReadableMetadata;

export function remainingMs(deadline: grpc.Deadline): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return at - Date.now();
}

/**
 * Wait for work that goes through Raft, but no longer than the request timeout or the client's deadline,
 * whichever comes first (then etcd's "request timed out"); stop waiting as soon as the client cancels. etcd bounds
 * its wait by the call's deadline too, so a client whose deadline passes sees this or its own DEADLINE_EXCEEDED,
 * whichever timer fires first, from either server. The work
 * itself may still complete later (a proposal cannot be taken back), which is why clients retry with a
 * fulcrum-request-id when they need exactly-once. One sweep per member checks every waiting request
 * (deadlines.ts), not a timer and a listener each.
 */
export function untilDeadline<T>(ctx: ApiContext, call: SurfaceCall, work: Promise<T>): Promise<T> {
  const waitMs = Math.max(0, Math.min(ctx.limits.requestTimeoutMs, remainingMs(call.getDeadline())));
  return waitingRequestsOf(ctx).wait(call, waitMs, work);
}

/** Propose a command within the deadline; a command the state machine refused becomes its typed error. */
export async function proposeWithin(
  ctx: ApiContext,
  call: SurfaceCall,
  op: Op,
  identity: Pick<Command, 'clientId' | 'seq' | 'auth'> = {},
): Promise<CommandResult> {
  const r = await untilDeadline(ctx, call, ctx.member.propose(op, identity));
  if (r.error !== undefined) throw r.error;
  return r;
}

/** A linearizable point for a read: every write acknowledged before the call is visible after it. */
export function readBarrier(ctx: ApiContext, call: SurfaceCall): Promise<void> {
  return untilDeadline(ctx, call, ctx.member.linearizableBarrier());
}

/**
 * The HLC of a revision for a read's response header, as far as the state machine can tell without a lookup it
 * does not offer: the newest recorded revision's stamp is known exactly. (Key-values do not need this: each
 * version carries its own create/mod HLC from the store.)
 */
export function hlcLookup(sm: StateMachine): HlcOf {
  const last = sm.revisionTime.last();
  return (revision) => (last !== undefined && last.revision === revision ? last.hlc : undefined);
}

/** The header of a read at the store's revision: its HLC when known. */
export function readHeader(ctx: ApiContext, revision: number): Encodable<ResponseHeader> {
  return responseHeader(ctx.member, revision, hlcLookup(ctx.member.stateMachine)(revision));
}

// ---------------------------------------------------------------------------------------------------------
// KV
// ---------------------------------------------------------------------------------------------------------

function checkRequestSize(ctx: ApiContext, request: unknown): void {
  if (requestSizeBound(request) > ctx.limits.requestBytesMax) throw apiError('REQUEST_TOO_LARGE');
}

/** The batch a read-only txn runs with: it has no writes to stage, and staging one would be a bug. */
const READ_ONLY_BATCH = {
  put(): void {
    throw new Error('fulcrum: a read-only txn tried to write');
  },
  del(): void {
    throw new Error('fulcrum: a read-only txn tried to delete');
  },
};

/**
 * The store's configuration with the API's txn limit, copied once per store configuration (a snapshot restore may
 * bring another store) rather than once per request.
 */
function requestConfig(ctx: ApiContext): () => mvcc.MvccConfig {
  let made: { from: mvcc.MvccConfig; txnOpsMax: number; config: mvcc.MvccConfig } | undefined;
  return () => {
    const from = ctx.member.stateMachine.mvcc.config;
    const txnOpsMax = ctx.limits.txnOpsMax;
    if (made?.from !== from || made.txnOpsMax !== txnOpsMax) made = { from, txnOpsMax, config: { ...from, txnOpsMax } };
    return made.config;
  };
}

/** The exactly-once identity and the requester a proposed command carries. */
function commandIdentity(call: SurfaceCall, auth: Command['auth']): Pick<Command, 'clientId' | 'seq' | 'auth'> {
  const { clientId, seq } = requestIdentity(metadataOf(call));
  return clientId === undefined ? { auth } : { clientId, seq, auth };
}

export function createKvService(ctx: ApiContext): Handlers<KVMethods> {
  const config = requestConfig(ctx);
  return {
    Range: unary(ctx, 'Range', async (call) => {
      const req = toMvccRange(call.request);
      checkRangeRequest(req, config());
      authorizeRead(ctx, call, req);
      if (!call.request.serializable) await readBarrier(ctx, call);
      const sm = ctx.member.stateMachine;
      const r = await boundedRead(ctx.limits, (opts) => sm.mvcc.range(req, opts));
      const header = readHeader(ctx, r.header.revision);
      // Encoded here from the store's answer (the service passes a Buffer through), or by protobufjs if it cannot be.
      return (encodeRangeResponse(header, r) as unknown as Encodable<RangeResponse> | undefined) ?? fromMvccRange(r, header);
    }),

    Put: proposalCall(ctx, 'Put', (call) => {
      trace('api put');
      checkRequestSize(ctx, call.request);
      const req = toMvccPut(call.request);
      checkPutRequest(req, config());
      return {
        op: { put: req },
        // The response's own revision, not the store's: a deduplicated retry answers the first attempt's. The
        // header's HLC is the command's (the one its rows record as mod_hlc).
        answer: (r) => {
          const res = r.response as unknown as mvcc.PutResponse;
          trace('api put answered');
          return fromMvccPut(res, responseHeader(ctx.member, res.header.revision, r.hlc));
        },
      };
    }),

    DeleteRange: proposalCall(ctx, 'DeleteRange', (call) => {
      checkRequestSize(ctx, call.request);
      const req = toMvccDeleteRange(call.request);
      checkDeleteRangeRequest(req, config());
      return {
        op: { deleteRange: req },
        answer: (r) => {
          const res = r.response as unknown as mvcc.DeleteRangeResponse;
          return fromMvccDeleteRange(res, responseHeader(ctx.member, res.header.revision, r.hlc));
        },
      };
    }),

    // A txn that cannot write in either branch is served like a linearizable Range: a ReadIndex barrier, then
    // compares and reads evaluated locally between two applied batches (one point of the log), as etcd serves
    // read-only txns. Any other txn goes through Raft.
    Txn: unary(ctx, 'Txn', async (call) => {
      checkTxnShape(call.request, ctx.limits); // first: the checks after it recurse through the nesting
      checkRequestSize(ctx, call.request);
      const req = toMvccTxn(call.request);
      checkTxnRequest(req, config());
      checkTxnIntervals([{ requestTxn: req }]);
      const auth = authorizeOp(ctx, call, { txn: req }); // every compare and both branches, whichever runs
      if (!txnHasWrites(req)) {
        await readBarrier(ctx, call);
        const read = (sm: StateMachine): ReturnType<StateMachine['mvcc']['txn']> => boundedRead(ctx.limits, (opts) => sm.mvcc.txn(req, READ_ONLY_BATCH, undefined, opts));
        const res = await untilDeadline(ctx, call, ctx.member.readState(read));
        return fromMvccTxn(res.response, readHeader(ctx, res.response.header.revision));
      }
      const r = await proposeWithin(ctx, call, { txn: req }, commandIdentity(call, auth));
      const res = r.response as unknown as mvcc.TxnResponse;
      return fromMvccTxn(res, responseHeader(ctx.member, res.header.revision, r.hlc));
    }),

    // `physical` is answered once the compaction entry is applied: the index is compacted then and reads below
    // the revision fail; the rows are deleted in bounded chunks behind it (docs/mvcc.md).
    Compact: unary(ctx, 'Compact', async (call) => {
      const revision = toNumber(call.request.revision);
      const op = { compact: { revision } };
      const r = await proposeWithin(ctx, call, op, commandIdentity(call, authorizeOp(ctx, call, op)));
      // `physical`: answer once this member has deleted the compacted rows, as etcd does (within the deadline).
      if (call.request.physical === true) {
        const done = new AbortController(); // stops the wait if the deadline or the client gives up first
        try {
          await untilDeadline(ctx, call, ctx.member.whenCompactedPhysically(done.signal));
        } finally {
          done.abort();
        }
      }
      return { header: responseHeader(ctx.member, r.revision, r.hlc) };
    }),
  };
}
