// etcdserverpb.Lease over the LeaseManager: grant and revoke go through the log; keep-alive and time-to-live are
// answered by the leader's tracker (forwarded from followers); the list is read after a barrier.
//
// etcd's answers that clients rely on, kept here:
//   LeaseGrant  ID 0: the server picks; TTL above 9,000,000,000 s: OUT_OF_RANGE "etcdserver: too large lease
//               TTL"; a TTL below the minimum is raised to it; an existing ID: "etcdserver: lease already exists".
//   LeaseKeepAlive  one response per request, in order; an unknown or expired lease answers TTL 0 (the stream
//               stays open); other failures end the stream with their status.
//   LeaseTimeToLive an unknown lease answers TTL -1 (etcdctl prints "already expired").
import type * as grpc from '@grpc/grpc-js';
import type { Handlers, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseMethods, Encodable } from '../../proto/index.js';
import { LEASE_ID_MAX, LEASE_TTL_MAX_SECONDS, type LeaseInfo } from '../../storage/lease/index.js';
import { isForwarded } from '../lease/forwarder.js';
import { commandFailure } from '../lease/line.js';
import type { LeaseManager } from '../lease/manager.js';
import { intervalOf, type CommandAuth } from '../../storage/auth/index.js';
import { authGate, authorize, authorizeOp } from './authz.js';
import type { ApiContext } from './context.js';
import { apiError, endStreamWithError, isCodedError } from './errors.js';
import { unary as unaryCall } from './kv.js';
import { responseHeader } from './header.js';
import { untilWritable } from './limits.js';

/** Keep-alive requests read from one stream but not yet answered; more means the client ignores backpressure. */
export const KEEPALIVE_PENDING_MAX = 1_000;

export function createLeaseService(ctx: ApiContext, leases: LeaseManager): Handlers<LeaseMethods> {
  const member = ctx.member;
  const header = (revision?: number): ReturnType<typeof responseHeader> => responseHeader(member, revision);
  return {
    LeaseGrant: unary(ctx, 'LeaseGrant', async (req, call) => {
      const auth = authorize(ctx, call, 'user');
      const ttl = parseInt64(req.TTL, 'TTL');
      if (ttl > BigInt(LEASE_TTL_MAX_SECONDS)) throw apiError('LEASE_TTL_TOO_LARGE');
      // The table refuses a negative id (INVALID_LEASE) and raises a short or negative TTL to its minimum.
      const id = parseInt64(req.ID, 'ID');
      // Negative TTLs are raised to the minimum like short ones; clamped first, as Number() of a large negative
      // int64 is not a safe integer and the table would refuse it instead.
      const r = await leases.proposeWithDeadline({ leaseGrant: { id, ttlSeconds: Number(ttl < 0n ? 0n : ttl) } }, auth);
      throwIfFailed(r);
      const info = r.response as unknown as LeaseInfo;
      return { header: header(r.revision), ID: info.id, TTL: info.ttlSeconds, error: '' };
    }),

    LeaseRevoke: unary(ctx, 'LeaseRevoke', async (req, call) => {
      const id = parseLeaseId(req.ID, { zeroAllowed: false });
      const r = await leases.revoke(id, authorizeOp(ctx, call, { leaseRevoke: { id } })); // write on every attached key
      throwIfFailed(r);
      return { header: header(r.revision) };
    }),

    LeaseKeepAlive: (call) => keepAliveStream(call, leases, header, () => authorize(ctx, call, 'user')),

    LeaseTimeToLive: unary(ctx, 'LeaseTimeToLive', async (req, call) => {
      const id = parseLeaseId(req.ID, { zeroAllowed: true });
      const who = authorize(ctx, call, 'user');
      const ttl = id === 0n ? undefined : await leases.timeToLive(id, req.keys, { forwarded: isForwarded(call.metadata), ...callToken(call) });
      if (ttl !== undefined && req.keys) checkKeysReadable(ctx, who, ttl.keys);
      if (ttl === undefined) return { header: header(), ID: id, TTL: -1, grantedTTL: 0, keys: [] };
      return { header: header(), ID: id, TTL: ttl.ttlSeconds, grantedTTL: ttl.grantedTtlSeconds, keys: ttl.keys };
    }),

    LeaseLeases: unary(ctx, 'LeaseLeases', async (_req, call) => {
      authorize(ctx, call, 'user');
      const list = await leases.list();
      return { header: header(), leases: list.map((l) => ({ ID: l.id })) };
    }),
  };
}

type Unary<Q, R> = grpc.handleUnaryCall<Q, R>;

/** kv.ts's unary wrapper (the checks every call gets, the one error mapping) for a handler of (request, call). */
export function unary<Q, R>(ctx: ApiContext, method: string, fn: (req: Q, call: grpc.ServerUnaryCall<Q, R>) => Promise<R>): Unary<Q, R> {
  return unaryCall(ctx, method, (call) => fn(call.request, call));
}

function keepAliveStream(
  call: grpc.ServerDuplexStream<LeaseKeepAliveRequest, Encodable<LeaseKeepAliveResponse>>,
  leases: LeaseManager,
  header: () => ReturnType<typeof responseHeader>,
  authorizeRequest: () => unknown,
): void {
  const forwarded = isForwarded(call.metadata);
  // Each request's renewal starts as soon as it arrives (so the renewals of one stream share log entries), but
  // the answers go out in request order: a client matches responses to its requests by order and ID.
  let chain = Promise.resolve();
  let pending = 0;
  let failed = false;
  const fail = (e: unknown): void => {
    if (failed) return;
    failed = true;
    endStreamWithError(call, e);
  };
  call.on('data', (req: LeaseKeepAliveRequest) => {
    if (failed) return;
    if (++pending > KEEPALIVE_PENDING_MAX) return fail(apiError('TOO_MANY_REQUESTS'));
    let id: bigint;
    try {
      authorizeRequest(); // every request: a token that expires (or a user deleted) mid-stream stops renewing
      id = parseLeaseId(req.ID, { zeroAllowed: true });
    } catch (e) {
      return fail(e);
    }
    const renewal = renewOrZero(leases, id, { forwarded, ...callToken(call) });
    renewal.catch(() => undefined); // its failure is reported in order below
    chain = chain.then(async () => {
      try {
        const ttl = await renewal;
        // Pending until grpc-js takes the answer: a client that never reads fills KEEPALIVE_PENDING_MAX instead of
        // the member's write buffer.
        if (!failed && !call.cancelled && !call.write({ header: header(), ID: id, TTL: ttl })) await untilWritable(call);
      } catch (e) {
        fail(e);
      } finally {
        pending--;
      }
    });
  });
  call.on('end', () => void chain.then(() => failed || call.end()));
  call.on('error', () => {
    failed = true; // the client went away; nothing to answer
  });
}

/** etcd answers a keep-alive for a lease it does not have with TTL 0 rather than an error. */
async function renewOrZero(leases: LeaseManager, id: bigint, opts: { forwarded: boolean; token?: string }): Promise<number> {
  if (id === 0n) return 0;
  try {
    return await leases.renew(id, opts);
  } catch (e) {
    if (isCodedError(e) && e.code === 'LEASE_NOT_FOUND') return 0;
    throw e;
  }
}

function throwIfFailed(r: Parameters<typeof commandFailure>[0]): void {
  const failure = commandFailure(r);
  if (failure !== undefined) throw failure;
}

function parseInt64(v: string, field: string): bigint {
  try {
    return BigInt(v);
  } catch {
    throw apiError('INVALID_ARGUMENT', `fulcrum: ${field} is not an integer`);
  }
}

/** A lease id from the wire. 0 is "none"/"pick one"; negative ids are not etcd lease ids. */
export function parseLeaseId(v: string, opts: { zeroAllowed: boolean }): bigint {
  const id = parseInt64(v, 'ID');
  if (id === 0n && !opts.zeroAllowed) throw apiError('LEASE_NOT_FOUND');
  if (id < 0n || id > LEASE_ID_MAX) throw apiError('LEASE_NOT_FOUND');
  return id;
}

/** The caller's token, forwarded with a call this member sends on to the leader. */
function callToken(call: { readonly metadata: grpc.Metadata }): { token?: string } {
  const t = call.metadata.get('token')[0];
  return typeof t === 'string' && t !== '' ? { token: t } : {};
}

/** TimeToLive with keys names the lease's keys: the caller must be allowed to read them all. */
function checkKeysReadable(ctx: ApiContext, who: CommandAuth, keys: readonly Uint8Array[]): void {
  if (who.user === '' || keys.length === 0) return;
  if (!authGate(ctx).store.isPermitted(who.user, { read: keys.map((key) => intervalOf(key, undefined)), write: [] })) throw apiError('PERMISSION_DENIED');
}
