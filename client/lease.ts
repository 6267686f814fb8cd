// Leases with automatic keep-alive, and a `lost` signal the caller can trust.
//
//   const lease = await client.grantLease(10);              // kept alive until close()
//   await client.put('workers/w1', 'up', { lease });
//   lease.signal                                             // AbortSignal: aborts when the lease is lost
//   lease.on('lost', (err) => ...)                           // err.reason: 'expired' | 'deadline' | 'revoked' | 'closed'
//   await lease.close();                                     // stops keep-alives and revokes it
//
// `lost` fires on the client's monotonic clock at `validUntil`, before the server could have expired the lease
// (lease-clock.ts), unless a keep-alive answered in time pushed it further; or as soon as the server says the
// lease is gone. Lost is final: keep-alives stop, and after a missed deadline the client revokes the lease (best
// effort) so that what it guarded is released promptly rather than at the server's own expiry.
//
// The grant picks the lease id on the client (a random positive int64) so that a grant retried after a lost
// answer cannot create a second lease: the retry answers "lease already exists", which here means "granted".
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveResponse } from '../proto/index.js';
import { FulcrumClientError, InvalidArgumentError, LeaseLostError, LeaseNotFoundError } from './errors.js';
import type { KeySpace } from './keyspace.js';
import { defaultLeaseMarginMs, LeaseClock } from './lease-clock.js';
import type { Endpoint } from './pool.js';
import { Rpc, type CallOptions } from './rpc.js';
import { num } from './types.js';

/** Pause before reopening a keep-alive stream, doubling up to the max while streams keep failing. */
const STREAM_RETRY_FIRST_MS = 50;
const STREAM_RETRY_MAX_MS = 1_000;
/** Keep-alives go out three times per TTL (as etcd's client), but not more often than this. */
const KEEPALIVE_INTERVAL_MIN_MS = 100;
/** The least time an answer is awaited on a stream before another member is tried. */
const ANSWER_TIMEOUT_MIN_MS = 500;
/** How long close() waits for the revoke. */
const CLOSE_REVOKE_TIMEOUT_MS = 2_000;

export interface GrantOptions extends CallOptions {
  /** Keep the lease alive until close() (default true). Without it, the lease ends after its TTL. */
  readonly keepAlive?: boolean;
  /** Ask for this id instead of a random one. */
  readonly id?: bigint;
  /** How long before the server's earliest possible expiry `lost` fires (default: TTL/10, 50 ms to 1 s). */
  readonly marginMs?: number;
  /**
   * When the deadline passes without a renewal, revoke the lease at once (default true) so that what it guards
   * is released now rather than at the server's expiry. False leaves it to expire.
   */
  readonly revokeOnLoss?: boolean;
}

export interface LeaseTimeToLive {
  /** Seconds left on the server (-1 if the lease is gone). */
  readonly ttlSeconds: number;
  readonly grantedTtlSeconds: number;
  /** Keys bound to the lease (in a namespace view: those inside it, without the prefix). */
  readonly keys: Buffer[];
}

type KeepAliveStream = grpc.ClientDuplexStream<{ ID: string }, LeaseKeepAliveResponse>;

export class Lease extends EventEmitter<{ lost: [LeaseLostError]; renewed: [validUntilMs: number] }> {
  private readonly controller = new AbortController();
  private lostError: LeaseLostError | undefined;
  private lossTimer: NodeJS.Timeout | undefined;
  private stream: KeepAliveStream | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    /** The lease id. */
    readonly id: bigint,
    /** The TTL the server granted, in seconds (it may raise a short one to its minimum). */
    readonly ttlSeconds: number,
    private readonly clock: LeaseClock,
    private readonly rpc: Rpc,
    private readonly space: KeySpace,
    private readonly onClosed: (lease: Lease) => void,
    private readonly revokeOnLoss = true,
  ) {
    super();
    this.armLossTimer();
  }

  /** Aborts (with a LeaseLostError as its reason) when the lease is lost, revoked or closed. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** performance.now() milliseconds until which the lease is certainly alive (if not revoked). */
  get validUntil(): number {
    return this.clock.validUntilMs;
  }

  /** Milliseconds the lease is certainly alive for, from now (0 once lost). */
  get remainingMs(): number {
    return this.lostError === undefined ? Math.max(0, this.clock.validUntilMs - performance.now()) : 0;
  }

  /** Why the lease was lost, or undefined while it is held. */
  get lost(): LeaseLostError | undefined {
    return this.lostError;
  }

  /** Start sending keep-alives in the background (grantLease does this unless `keepAlive: false`). */
  startKeepAlive(): void {
    if (this.loop !== undefined || this.stopped) return;
    this.loop = this.keepAliveLoop();
  }

  /** One keep-alive now, outside the background stream; resolves with the TTL the server answered. */
  async keepAliveOnce(o: CallOptions = {}): Promise<number> {
    this.throwIfLost();
    const sentAt = performance.now();
    const res = await this.rpc.call<LeaseKeepAliveResponse>('idempotent', 'lease keep-alive', (s, md, co, cb) => unaryKeepAlive(s.lease.LeaseKeepAlive(md, co), this.id, cb), o);
    this.onAnswer(this.clock.renewed(sentAt, num(res.TTL)));
    if (num(res.TTL) <= 0) throw new LeaseNotFoundError();
    return num(res.TTL);
  }

  async timeToLive(o: CallOptions & { keys?: boolean } = {}): Promise<LeaseTimeToLive> {
    const req = { ID: String(this.id), keys: o.keys ?? false };
    const res = await this.rpc.call<LeaseTimeToLiveResponse>('read', 'lease time-to-live', (s, md, co, cb) => s.lease.LeaseTimeToLive(req, md, co, cb), o);
    return { ttlSeconds: num(res.TTL), grantedTtlSeconds: num(res.grantedTTL), keys: res.keys.filter((k) => this.space.contains(k)).map((k) => this.space.strip(k)) };
  }

  /** Stop keep-alives and revoke the lease: its keys are deleted. A lease already gone counts as revoked. */
  async revoke(o: CallOptions = {}): Promise<void> {
    this.stop();
    try {
      await this.rpc.call('idempotent', 'lease revoke', (s, md, co, cb) => s.lease.LeaseRevoke({ ID: String(this.id) }, md, co, cb), o);
    } catch (e) {
      if (!(e instanceof FulcrumClientError && e.code === 'LEASE_NOT_FOUND')) throw e;
    } finally {
      this.lose('revoked', `fulcrum client: lease ${this.id} was revoked`);
      this.onClosed(this);
    }
  }

  /** Revoke (best effort, bounded) and release everything; never throws. */
  async close(): Promise<void> {
    if (this.stopped && this.lostError !== undefined) {
      this.onClosed(this);
      return;
    }
    await this.revoke({ timeoutMs: CLOSE_REVOKE_TIMEOUT_MS }).catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Stop keep-alives without revoking (the client is closing, or the lease was lost). */
  stop(): void {
    this.stopped = true;
    this.stream?.cancel();
  }

  private throwIfLost(): void {
    if (this.lostError !== undefined) throw this.lostError;
  }

  private async keepAliveLoop(): Promise<void> {
    let failures = 0;
    const tried = new Set<Endpoint>();
    while (!this.stopped) {
      if (tried.size >= this.rpc.pool.endpoints.length) tried.clear();
      const endpoint = this.rpc.pool.pick(tried);
      tried.add(endpoint);
      const answered = await this.runStream(endpoint);
      if (this.stopped) return;
      if (answered) failures = 0;
      else this.rpc.pool.avoid(endpoint);
      await sleep(Math.min(STREAM_RETRY_MAX_MS, STREAM_RETRY_FIRST_MS * 2 ** failures++));
    }
  }

  /**
   * One keep-alive stream on one member until it fails, stops answering, or the lease is done. Resolves whether
   * it got any answer (a member that answered is not to blame for the stream's end).
   */
  private runStream(endpoint: Endpoint): Promise<boolean> {
    const intervalMs = Math.max(KEEPALIVE_INTERVAL_MIN_MS, (this.ttlSeconds * 1000) / 3);
    // An answer later than this means the member is stuck or cut off: move on while the lease is still valid.
    // At most half an interval (a stuck member costs at most half of the two intervals of slack a TTL leaves),
    // and, once answers were timed, a few round trips but at least ANSWER_TIMEOUT_MIN_MS (lease-clock.ts).
    const capMs = Math.max(KEEPALIVE_INTERVAL_MIN_MS, Math.min(this.rpc.options.attemptTimeoutMs, intervalMs / 2));
    const answerTimeoutMs = this.clock.answerTimeoutMs(Math.min(ANSWER_TIMEOUT_MIN_MS, capMs), capMs);
    return new Promise((resolve) => {
      let answered = false;
      const stream = endpoint.services.lease.LeaseKeepAlive(Rpc.streamMetadata()) as unknown as KeepAliveStream;
      this.stream = stream;
      let lastSentAt = -Infinity;
      // Ticks at the answer timeout's pace to notice a silent member; sends once per interval.
      const send = (): void => {
        const now = performance.now();
        const oldest = this.clock.oldestUnansweredMs;
        if (oldest !== undefined && now - oldest > answerTimeoutMs) {
          this.clock.answerTimedOut();
          return finish();
        }
        if (now - lastSentAt < intervalMs) return;
        if (!this.clock.sent(now)) return finish();
        lastSentAt = now;
        stream.write({ ID: String(this.id) });
      };
      const ticker = setInterval(send, answerTimeoutMs);
      const onAvoided = (e: Endpoint): void => {
        if (e === endpoint) finish();
      };
      const finish = (): void => {
        clearInterval(ticker);
        this.rpc.pool.off('avoided', onAvoided);
        this.clock.streamLost();
        stream.removeAllListeners();
        stream.on('error', () => undefined);
        stream.cancel();
        if (this.stream === stream) this.stream = undefined;
        resolve(answered);
      };
      this.rpc.pool.on('avoided', onAvoided);
      stream.on('data', (res: LeaseKeepAliveResponse) => {
        answered = true;
        this.onAnswer(this.clock.answered(num(res.TTL), performance.now()));
        if (this.lostError !== undefined) finish();
      });
      stream.on('error', finish);
      stream.on('end', finish);
      // The first keep-alive goes at once: a stream opened after a failover renews without waiting.
      send();
    });
  }

  private onAnswer(r: number | 'expired' | 'unexpected'): void {
    if (r === 'unexpected') return;
    if (r === 'expired') {
      this.lose('expired', `fulcrum client: lease ${this.id} expired on the server (or was revoked elsewhere)`);
      return;
    }
    this.armLossTimer();
    this.emit('renewed', r);
  }

  private armLossTimer(): void {
    if (this.lostError !== undefined) return;
    if (this.lossTimer !== undefined) clearTimeout(this.lossTimer);
    const check = (): void => {
      const left = this.clock.validUntilMs - performance.now();
      // A timer may fire a little early; re-arm for what is left rather than lose a lease that is still valid.
      if (left > 0) {
        this.lossTimer = setTimeout(check, left);
        this.lossTimer.unref();
        return;
      }
      const revoke = this.revokeOnLoss && this.lostError === undefined;
      this.lose('deadline', `fulcrum client: lease ${this.id} was not renewed in time; the server may expire it from ${this.clock.marginMs} ms from now`);
      if (revoke) {
        void this.rpc.call('idempotent', 'lease revoke', (s, md, co, cb) => s.lease.LeaseRevoke({ ID: String(this.id) }, md, co, cb), { timeoutMs: CLOSE_REVOKE_TIMEOUT_MS }).catch(() => undefined);
      }
    };
    this.lossTimer = setTimeout(check, Math.max(0, this.clock.validUntilMs - performance.now()));
    this.lossTimer.unref();
  }

  private lose(reason: LeaseLostError['reason'], message: string): void {
    if (this.lostError !== undefined) return;
    this.lostError = new LeaseLostError(message, this.id, reason);
    if (this.lossTimer !== undefined) clearTimeout(this.lossTimer);
    this.stop();
    this.controller.abort(this.lostError);
    this.emit('lost', this.lostError);
  }

  /** The client is closing: stop without revoking, and release waiting code with 'closed'. */
  shutdown(): void {
    this.stop();
    this.lose('closed', `fulcrum client: the client holding lease ${this.id} was closed`);
  }
}

/** Grant a lease, idempotently (see the top of this file). `sentAt` is taken before the first attempt. */
export async function grantLease(rpc: Rpc, space: KeySpace, ttlSeconds: number, o: GrantOptions, onClosed: (l: Lease) => void): Promise<Lease> {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) throw new InvalidArgumentError(`fulcrum client: a lease TTL is a positive whole number of seconds, got ${String(ttlSeconds)}`);
  const id = o.id ?? randomLeaseId();
  if (id <= 0n || id >= 1n << 63n) throw new InvalidArgumentError(`fulcrum client: a lease id is a positive int64, got ${id}`);
  const sentAt = performance.now();
  let granted: number;
  try {
    const res = await rpc.call<LeaseGrantResponse>('idempotent', 'lease grant', (s, md, co, cb) => s.lease.LeaseGrant({ ID: String(id), TTL: ttlSeconds }, md, co, cb), o);
    granted = num(res.TTL);
  } catch (e) {
    // Our own random id already exists: an earlier attempt of this very call was applied (see above).
    if (!(e instanceof FulcrumClientError && e.code === 'LEASE_EXISTS' && o.id === undefined)) throw e;
    const ttl = await rpc.call<LeaseTimeToLiveResponse>('read', 'lease time-to-live', (s, md, co, cb) => s.lease.LeaseTimeToLive({ ID: String(id), keys: false }, md, co, cb), o);
    granted = num(ttl.grantedTTL);
  }
  const lease = new Lease(id, granted, new LeaseClock(sentAt, granted, o.marginMs ?? defaultLeaseMarginMs(granted)), rpc, space, onClosed, o.revokeOnLoss ?? true);
  if (o.keepAlive ?? true) lease.startKeepAlive();
  return lease;
}

function randomLeaseId(): bigint {
  for (;;) {
    const id = randomBytes(8).readBigUInt64BE() & ((1n << 63n) - 1n);
    if (id !== 0n) return id;
  }
}

/** A single keep-alive over the bidirectional stream, as a unary call (for Rpc's retries and deadlines). */
function unaryKeepAlive(
  stream: grpc.ClientDuplexStream<LeaseKeepAliveRequest | { ID: string }, LeaseKeepAliveResponse>,
  id: bigint,
  cb: grpc.requestCallback<LeaseKeepAliveResponse>,
): grpc.ClientUnaryCall {
  let done = false;
  const once = (err: grpc.ServiceError | null, res?: LeaseKeepAliveResponse): void => {
    if (done) return;
    done = true;
    stream.removeAllListeners();
    stream.on('error', () => undefined);
    stream.cancel();
    cb(err, res);
  };
  stream.on('data', (res: LeaseKeepAliveResponse) => once(null, res));
  stream.on('error', (e: grpc.ServiceError) => once(e));
  stream.on('end', () => once(Object.assign(new Error('fulcrum client: keep-alive stream ended without an answer'), { code: 14, details: 'keep-alive stream ended without an answer', metadata: undefined as never })));
  stream.write({ ID: String(id) });
  return stream as unknown as grpc.ClientUnaryCall;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
