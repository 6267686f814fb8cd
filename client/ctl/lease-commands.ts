// lease grant / revoke / timetolive / keep-alive / list.
//
// These go through the raw Lease service (client.unary) rather than client.grantLease: a Lease object belongs to
// the client that made it and is revoked when that client closes, which is right for a program and wrong for a
// command line that grants a lease, prints its id and exits.
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import type { LeaseGrantResponse, LeaseKeepAliveResponse, LeaseTimeToLiveResponse } from '../../proto/index.js';
import { FulcrumClientError, LeaseNotFoundError, type Client, type Services } from '../index.js';
import { type Ctx, CtlError, UsageError, type Register } from './context.js';
import { bytesField, cellText, hexId, renderTable } from './format.js';
import { parseHexId, parseNonNegative } from './txn-parse.js';

export function registerLeaseCommands(program: Command, register: Register): void {
  const lease = program.command('lease').description('grant, revoke, inspect and keep alive leases');
  register(
    lease.command('grant').description('grant a lease (it ends after its TTL unless kept alive)').argument('<ttl>', 'seconds'),
    (ctx, ttl) => grant(ctx, ttl as string),
  );
  register(lease.command('revoke').description('revoke a lease: its keys are deleted').argument('<id>', 'hex'), (ctx, id) => revoke(ctx, id as string));
  register(
    lease.command('timetolive').description('the TTL left on a lease').argument('<id>', 'hex').option('--keys', 'also list the keys bound to it'),
    (ctx, id, flags) => timeToLive(ctx, id as string, (flags as { keys?: boolean }).keys ?? false),
  );
  register(lease.command('list').description('every lease of the cluster'), (ctx) => list(ctx));
  register(
    lease.command('keep-alive').description('keep a lease alive until interrupted (Ctrl-C)').argument('<id>', 'hex').option('--once', 'one keep-alive, then exit'),
    (ctx, id, flags) => keepAlive(ctx, id as string, (flags as { once?: boolean }).once ?? false),
  );
}

/** A random positive int64: the grant is then idempotent (a retry answers "lease already exists"). */
function randomLeaseId(): bigint {
  for (;;) {
    const id = randomBytes(8).readBigUInt64BE() & ((1n << 63n) - 1n);
    if (id !== 0n) return id;
  }
}

async function grant(ctx: Ctx, ttlText: string): Promise<void> {
  const ttl = parseNonNegative('ttl', ttlText);
  if (ttl === 0) throw new UsageError('ttl must be at least 1 second');
  const id = randomLeaseId();
  let granted: number;
  try {
    const r = await ctx.kv.unary<LeaseGrantResponse>('idempotent', 'lease grant', (s, md, co, cb) => s.lease.LeaseGrant({ ID: String(id), TTL: ttl }, md, co, cb), ctx.call);
    granted = Number(r.TTL);
  } catch (e) {
    // Our own id already exists: an earlier attempt of this very grant was applied (its answer was lost).
    if ((e as { code?: string }).code !== 'LEASE_EXISTS') throw e;
    granted = (await fetchTimeToLive(ctx.kv, id, false, ctx.call)).grantedTtl;
  }
  if (ctx.format === 'json') ctx.json({ id: hexId(id), ttl: granted });
  else if (ctx.format === 'simple') ctx.io.out(`${hexId(id)}\n`);
  else ctx.io.out(`lease ${hexId(id)} granted with TTL(${granted}s)\n`);
}

async function revoke(ctx: Ctx, idText: string): Promise<void> {
  const id = parseHexId('lease', idText);
  await ctx.kv.unary('idempotent', 'lease revoke', (s, md, co, cb) => s.lease.LeaseRevoke({ ID: String(id) }, md, co, cb), ctx.call);
  if (ctx.format === 'json') ctx.json({ id: hexId(id), revoked: true });
  else ctx.io.out(`lease ${hexId(id)} revoked\n`);
}

interface TimeToLive {
  readonly ttl: number;
  readonly grantedTtl: number;
  readonly keys: Buffer[];
}

async function fetchTimeToLive(client: Client, id: bigint, keys: boolean, call: Ctx['call']): Promise<TimeToLive> {
  const r = await client.unary<LeaseTimeToLiveResponse>('read', 'lease time-to-live', (s, md, co, cb) => s.lease.LeaseTimeToLive({ ID: String(id), keys }, md, co, cb), call);
  // etcd answers TTL -1 for a lease that does not exist (or expired) instead of an error; say it as one.
  if (Number(r.TTL) < 0) throw new LeaseNotFoundError(`lease ${hexId(id)} not found (expired, revoked or never granted)`);
  return { ttl: Number(r.TTL), grantedTtl: Number(r.grantedTTL), keys: r.keys };
}

async function timeToLive(ctx: Ctx, idText: string, keys: boolean): Promise<void> {
  const id = parseHexId('lease', idText);
  const t = await fetchTimeToLive(ctx.kv, id, keys, ctx.call);
  if (ctx.format === 'json') {
    ctx.json({ id: hexId(id), ttl: t.ttl, grantedTtl: t.grantedTtl, ...(keys ? { keys: t.keys.map((k) => bytesField('key', k)) } : {}) });
    return;
  }
  const attached = keys ? `, attached keys([${t.keys.map(cellText).join(' ')}])` : '';
  ctx.io.out(`lease ${hexId(id)} granted with TTL(${t.grantedTtl}s), remaining(${t.ttl}s)${attached}\n`);
}

async function list(ctx: Ctx): Promise<void> {
  const ids = await ctx.kv.leases(ctx.call);
  if (ctx.format === 'json') ctx.json({ leases: ids.map((id) => hexId(id)) });
  else if (ctx.format === 'simple') for (const id of ids) ctx.io.out(`${hexId(id)}\n`);
  else ctx.io.out(renderTable(['LEASE ID'], ids.map((id) => [hexId(id)])));
}

/**
 * Keep-alives three times per TTL (as etcd's client), each a short-lived stream through the client's failover,
 * so a member going away moves the next keep-alive elsewhere. Ends with LEASE_NOT_FOUND when the server says the
 * lease is gone, and cleanly on Ctrl-C.
 */
async function keepAlive(ctx: Ctx, idText: string, once: boolean): Promise<void> {
  const id = parseHexId('lease', idText);
  // Until when the lease certainly lives (the last answer's TTL from when it was asked): while it does, a failed
  // keep-alive (no member reachable for a while) is worth trying again rather than giving up on the lease.
  let aliveUntil = 0;
  for (;;) {
    const askedAt = performance.now();
    let ttl: number;
    try {
      ttl = await keepAliveOnce(ctx, id);
    } catch (e) {
      if (once || !(e instanceof FulcrumClientError) || !e.retryable || performance.now() + KEEPALIVE_RETRY_MS >= aliveUntil) throw e;
      ctx.io.err(`lease ${hexId(id)}: keep-alive failed (${e.message.replace(/fulcrum client: /g, '')}); trying again\n`);
      if (!(await sleepUnlessInterrupted(ctx.io.interrupt, KEEPALIVE_RETRY_MS))) return;
      continue;
    }
    if (ttl <= 0) throw new CtlError('LEASE_NOT_FOUND', `lease ${hexId(id)} expired or was revoked`);
    aliveUntil = askedAt + ttl * 1000;
    if (ctx.format === 'json') ctx.json({ id: hexId(id), ttl });
    else ctx.io.out(`lease ${hexId(id)} keepalived with TTL(${ttl})\n`);
    if (once || !(await sleepUnlessInterrupted(ctx.io.interrupt, (ttl * 1000) / 3))) return;
  }
}

/** Pause before another keep-alive after one failed. */
const KEEPALIVE_RETRY_MS = 1_000;

/** One keep-alive over a fresh stream, as a unary call (the client's failover and deadline apply). */
function keepAliveOnce(ctx: Ctx, id: bigint): Promise<number> {
  const invoke = (s: Services, md: grpc.Metadata, co: grpc.CallOptions, cb: grpc.requestCallback<LeaseKeepAliveResponse>): grpc.ClientUnaryCall => {
    const stream = s.lease.LeaseKeepAlive(md, co) as unknown as grpc.ClientDuplexStream<{ ID: string }, LeaseKeepAliveResponse>;
    let done = false;
    const once = (err: grpc.ServiceError | null, res?: LeaseKeepAliveResponse): void => {
      if (done) return;
      done = true;
      stream.removeAllListeners();
      stream.on('error', () => undefined); // the cancel below surfaces as CANCELLED: expected, not a failure
      stream.cancel();
      cb(err, res);
    };
    stream.on('data', (res: LeaseKeepAliveResponse) => once(null, res));
    stream.on('error', (e: grpc.ServiceError) => once(e));
    stream.on('end', () => once(Object.assign(new Error('keep-alive stream ended without an answer'), { code: 14, details: 'keep-alive stream ended without an answer', metadata: undefined as never })));
    stream.write({ ID: String(id) });
    return stream as unknown as grpc.ClientUnaryCall;
  };
  return ctx.kv.unary<LeaseKeepAliveResponse>('idempotent', 'lease keep-alive', invoke, ctx.call).then((r) => Number(r.TTL));
}

/** Resolves false when interrupted (then the command ends), true after the pause. */
export function sleepUnlessInterrupted(signal: AbortSignal, ms: number): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      signal.removeEventListener('abort', stop);
      resolve(true);
    }, ms);
    const stop = (): void => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener('abort', stop, { once: true });
  });
}
