// One unary call, from the caller's point of view: it goes to a healthy member, moves to another when that
// member cannot serve it, and is retried only when retrying is safe.
//
//   kind 'read'        no effect on the store: retried on any failure that is not the answer itself.
//   kind 'idempotent'  applying it twice is applying it once (a keep-alive, a grant with the client's own id):
//                      retried like a read.
//   kind 'write'       Put, DeleteRange, Txn, Compact. Tagged with an exactly-once identity (write-lanes.ts).
//                      Retried freely while it was certainly not sent (no connection, "no leader" from the
//                      hasleader check, which the server runs before proposing anything). Once it may have been
//                      sent, retried only on members that apply tagged writes exactly once (Fulcrum); against
//                      etcd it fails with OutcomeUnknownError instead, and so does any write that runs out of
//                      time or is aborted after it may have been sent.
import * as grpc from '@grpc/grpc-js';
import { isStaleTokenRefusal, type TokenSource } from './auth.js';
import {
  AbortedError,
  ClientClosedError,
  classifyServiceError,
  DeadlineExceededError,
  FulcrumClientError,
  fromServiceError,
  isServiceError,
  OutcomeUnknownError,
  UnavailableError,
} from './errors.js';
import type { ResolvedClientOptions } from './options.js';
import { REQUIRE_LEADER_KEY, type Endpoint, type EndpointPool, type Services } from './pool.js';
import type { WriteLanes } from './write-lanes.js';

/** Fulcrum's exactly-once header (node/api/convert.ts REQUEST_ID_KEY): `<client-id>:<seq>`. */
export const REQUEST_ID_KEY = 'fulcrum-request-id';
/** The ServerInfo feature that promises exactly-once application of tagged writes. */
const EXACTLY_ONCE_FEATURE = 'exactly-once';
/** Pause between rounds when every member failed: doubles from the first to the last. */
const RETRY_BACKOFF_FIRST_MS = 25;
const RETRY_BACKOFF_MAX_MS = 1_000;
/** Answers to the auth token that end a call at once, whatever it was (client/auth.ts ends calls with them). */
const AUTH_REFUSALS: ReadonlySet<string> = new Set(['AUTH_FAILED', 'PERMISSION_DENIED', 'AUTH_NOT_ENABLED']);
/** A new attempt starts only with at least this much of the call's deadline left (or a tenth of an attempt's). */
const ATTEMPT_TIME_MIN_MS = 100;

export type CallKind = 'read' | 'idempotent' | 'write';

/** Every call takes these. */
export interface CallOptions {
  /** Abort the call. A write that may already have been sent then fails with OutcomeUnknownError. */
  readonly signal?: AbortSignal;
  /** Deadline of the whole call, retries included (default: the client's requestTimeoutMs). */
  readonly timeoutMs?: number;
}

export type Invoke<R> = (services: Services, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<R>) => grpc.ClientUnaryCall;

const WITHOUT_TOKEN = Symbol('fulcrum.rpc.withoutToken');

/** Marks the one call that runs before there is a token: Authenticate itself. */
export function withoutToken<R>(invoke: Invoke<R>): Invoke<R> {
  return Object.assign(((...args: Parameters<Invoke<R>>) => invoke(...args)) as Invoke<R>, { [WITHOUT_TOKEN]: true });
}

type AttemptResult<R> =
  | { readonly ok: true; readonly value: R }
  | { readonly ok: false; readonly error: FulcrumClientError; readonly sent: boolean; readonly avoid: boolean; readonly retry: boolean; readonly aborted: boolean };

export class Rpc {
  private closed = false;

  constructor(
    readonly pool: EndpointPool,
    readonly options: ResolvedClientOptions,
    private readonly lanes: WriteLanes,
    /** With auth: the token is had before an attempt is sent, so that failing to get one is "not sent". */
    private readonly tokens?: TokenSource,
  ) {}

  close(): void {
    this.closed = true;
  }

  /** Run one unary call with failover and the retry rules of its kind. */
  async call<R>(kind: CallKind, what: string, invoke: Invoke<R>, opts: CallOptions = {}): Promise<R> {
    if (this.closed) throw new ClientClosedError();
    if (opts.signal?.aborted) throw new AbortedError();
    const deadline = performance.now() + (opts.timeoutMs ?? this.options.requestTimeoutMs);
    if (kind !== 'write') return this.attempts(kind, what, invoke, opts.signal, deadline, undefined);
    const { identity, release } = await this.lanes.acquire(opts.signal);
    try {
      return await this.attempts(kind, what, invoke, opts.signal, deadline, identity.header);
    } finally {
      release();
    }
  }

  private async attempts<R>(kind: CallKind, what: string, invoke: Invoke<R>, signal: AbortSignal | undefined, deadline: number, requestId: string | undefined): Promise<R> {
    let maybeSent = false;
    let lastError: FulcrumClientError | undefined;
    // One fresh token per call: a refused token is dropped by the interceptor (client/auth.ts), and the member
    // refused the call before applying anything, so even a write is retried once. A second refusal is the answer.
    let reauthenticated = this.options.auth === undefined;
    const tried = new Set<Endpoint>();
    for (let round = 0; ; ) {
      if (this.closed) {
        if (kind === 'write' && maybeSent) throw this.outcomeUnknown(what, undefined, 'the client was closed before an answer came', new ClientClosedError());
        throw new ClientClosedError();
      }
      // An attempt with almost no time left would mostly turn "not sent" into "outcome unknown": stop instead.
      // (The first attempt always goes: a caller may give a short deadline on purpose.)
      const left = deadline - performance.now();
      if (left <= 0 || (lastError !== undefined && left < Math.min(ATTEMPT_TIME_MIN_MS, this.options.attemptTimeoutMs / 10))) break;
      const endpoint = this.pool.pick(tried);
      tried.add(endpoint);
      const r = await this.attempt(kind, invoke, endpoint, signal, deadline, requestId);
      if (r.ok) {
        this.pool.markHealthy(endpoint);
        return r.value;
      }
      lastError = r.error;
      if (!reauthenticated && isStaleTokenRefusal({ code: r.error.grpcCode ?? -1, details: r.error.message })) {
        reauthenticated = true;
        tried.delete(endpoint);
        continue;
      }
      maybeSent ||= r.sent;
      if (r.aborted) {
        if (kind === 'write' && maybeSent) throw this.outcomeUnknown(what, endpoint, 'the call was aborted', new AbortedError());
        throw new AbortedError(undefined, { cause: r.error });
      }
      if (r.avoid) this.pool.avoid(endpoint);
      if (!r.retry) throw r.error;
      if (kind === 'write' && r.sent && endpoint.exactlyOnce !== true) throw this.outcomeUnknown(what, endpoint, 'the member does not apply retried writes exactly once', r.error);
      if (tried.size >= this.pool.endpoints.length) {
        // Every member was tried this round: wait a little before the next one (a leader election, typically).
        tried.clear();
        await sleep(Math.min(RETRY_BACKOFF_MAX_MS, RETRY_BACKOFF_FIRST_MS * 2 ** round++) * (0.5 + Math.random() / 2), deadline, signal);
        if (signal?.aborted) {
          if (kind === 'write' && maybeSent) throw this.outcomeUnknown(what, endpoint, 'the call was aborted', new AbortedError());
          throw new AbortedError();
        }
      }
    }
    if (kind === 'write' && maybeSent) throw this.outcomeUnknown(what, undefined, 'its deadline passed before an answer came', lastError);
    if (lastError !== undefined && lastError.code !== 'DEADLINE_EXCEEDED') {
      throw new UnavailableError(`fulcrum client: ${what} failed on every member until its deadline; last: ${lastError.message}`, { cause: lastError }, lastError.code);
    }
    throw new DeadlineExceededError(`fulcrum client: ${what} did not complete before its deadline`, { cause: lastError });
  }

  private outcomeUnknown(what: string, endpoint: Endpoint | undefined, why: string, cause: unknown): OutcomeUnknownError {
    return new OutcomeUnknownError(`fulcrum client: ${what} may or may not have been applied: ${why}`, { cause, ...(endpoint ? { endpoint: endpoint.address } : {}) });
  }

  private async attempt<R>(kind: CallKind, invoke: Invoke<R>, endpoint: Endpoint, signal: AbortSignal | undefined, deadline: number, requestId: string | undefined): Promise<AttemptResult<R>> {
    const attemptDeadline = Math.min(deadline, performance.now() + this.options.attemptTimeoutMs);
    const notSent = (error: FulcrumClientError): AttemptResult<R> => ({ ok: false, error, sent: false, avoid: true, retry: true, aborted: false });
    if (!(await endpoint.waitReady(Math.min(attemptDeadline, performance.now() + this.options.connectTimeoutMs)))) {
      return notSent(new UnavailableError(`fulcrum client: cannot connect to ${endpoint.address}`, { endpoint: endpoint.address }));
    }
    // The token before anything that carries it (ServerInfo below too), and no longer than this attempt may take:
    // Authenticate has a deadline of its own, and a slow one must not hold the call past the caller's.
    if (this.tokens !== undefined && !(WITHOUT_TOKEN in invoke)) {
      const failed = await beforeDeadline(this.tokens.token(), attemptDeadline, 'Authenticate').then(
        () => undefined,
        (e: unknown) => e,
      );
      // Wrong credentials are the answer; anything else (no member answered Authenticate) is tried again.
      if (failed instanceof FulcrumClientError && !failed.retryable) return { ok: false, error: failed, sent: false, avoid: false, retry: false, aborted: false };
      if (failed !== undefined) return notSent(new UnavailableError(`fulcrum client: could not authenticate: ${(failed as Error).message}`, { endpoint: endpoint.address, cause: failed }));
    }
    if (kind === 'write' && endpoint.exactlyOnce === undefined && this.options.exactlyOnce === 'auto') {
      const known = await this.learnExactlyOnce(endpoint, attemptDeadline);
      // The credentials were refused on the way (client/auth.ts): that is the answer, and nothing was sent.
      if (known instanceof FulcrumClientError) return { ok: false, error: known, sent: false, avoid: false, retry: false, aborted: false };
      if (!known) return notSent(new UnavailableError(`fulcrum client: ${endpoint.address} did not say whether it applies writes exactly once`, { endpoint: endpoint.address }));
    }
    // Aborted while connecting: nothing was sent.
    if (signal?.aborted) return { ok: false, error: new AbortedError(), sent: false, avoid: false, retry: false, aborted: true };
    const md = new grpc.Metadata();
    md.set(REQUIRE_LEADER_KEY, 'true');
    if (requestId !== undefined) md.set(REQUEST_ID_KEY, requestId);
    return new Promise((resolve) => {
      let aborted = false;
      const onAbort = (): void => {
        aborted = true;
        call.cancel();
      };
      const call = invoke(endpoint.services, md, { deadline: wallDeadline(attemptDeadline) }, (err, value) => {
        signal?.removeEventListener('abort', onAbort);
        if (err === null || err === undefined) resolve({ ok: true, value: value as R });
        else resolve(this.failedAttempt(err, endpoint, aborted));
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private failedAttempt<R>(err: grpc.ServiceError, endpoint: Endpoint, aborted: boolean): AttemptResult<R> {
    const error = fromServiceError(err, endpoint.address);
    if (aborted) return { ok: false, error, sent: true, avoid: false, retry: false, aborted: true };
    const { code } = classifyServiceError(err);
    switch (code) {
      // Refused before anything was proposed: the hasleader check, or a learner that serves no requests.
      case 'NO_LEADER':
        return { ok: false, error, sent: false, avoid: true, retry: true, aborted: false };
      // AUTH_OLD_REVISION: the auth store changed under the request; it was checked again at apply and not applied.
      case 'TOO_MANY_REQUESTS':
      case 'AUTH_OLD_REVISION':
        return { ok: false, error, sent: false, avoid: false, retry: true, aborted: false };
      // May have been proposed (or never reached the member: the client cannot tell).
      case 'UNAVAILABLE':
      case 'TIMEOUT':
      case 'LEADER_CHANGED':
      case 'DEADLINE_EXCEEDED':
        return { ok: false, error, sent: true, avoid: true, retry: true, aborted: false };
      default:
        // CANCELLED without the caller asking: the channel went away under the call.
        if (err.code === grpc.status.CANCELLED) return { ok: false, error, sent: true, avoid: true, retry: true, aborted: false };
        return { ok: false, error, sent: true, avoid: false, retry: false, aborted: false };
    }
  }

  /**
   * Ask the member (once) whether it applies tagged writes exactly once: true once known; false when it did not
   * answer; the error when the client's credentials were refused (the call carries the auth token too).
   */
  private learnExactlyOnce(endpoint: Endpoint, deadline: number): Promise<boolean | FulcrumClientError> {
    return new Promise((resolve) => {
      endpoint.services.fulcrum.ServerInfo({}, new grpc.Metadata(), { deadline: wallDeadline(deadline) }, (err, res) => {
        if (err === null && res !== undefined) endpoint.exactlyOnce = res.features.includes(EXACTLY_ONCE_FEATURE);
        else if (err?.code === grpc.status.UNIMPLEMENTED) endpoint.exactlyOnce = false; // etcd: no fulcrum.v1
        else if (err !== null && AUTH_REFUSALS.has(classifyServiceError(err).code)) return resolve(fromServiceError(err, endpoint.address));
        resolve(endpoint.exactlyOnce !== undefined);
      });
    });
  }

  /** For streams (watch, keep-alive): the metadata every stream carries. */
  static streamMetadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set(REQUIRE_LEADER_KEY, 'true');
    return md;
  }
}

/** grpc-js deadlines are wall-clock Dates; the client keeps time on the monotonic clock and converts at the edge. */
export function wallDeadline(monotonicDeadline: number): Date {
  return new Date(Date.now() + Math.max(0, monotonicDeadline - performance.now()));
}

/** `p`, or a DeadlineExceededError once the monotonic `deadline` passes first (`p` itself goes on). */
function beforeDeadline<T>(p: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceededError(`fulcrum client: ${what} did not complete before the call's deadline`)), Math.max(0, deadline - performance.now()));
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function sleep(ms: number, deadline: number, signal: AbortSignal | undefined): Promise<void> {
  const wait = Math.max(0, Math.min(ms, deadline - performance.now()));
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, wait);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export { isServiceError };
