// The client listener's resource limits that are not a single service's business: the gRPC server options
// (message sizes, streams per connection, keepalive), the per-member budget of calls in flight, and the shape
// checks of a Txn that must run before any recursive code touches it. docs/limits.md lists every limit of the
// server, with its default, its flag and the error beyond it; keep the two in step.
//
// Why these and not others:
// - grpc-js bounds streams per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: a client's extra streams
//   wait in its own queue) but not connections per member, nor the ping rate of a client (it has no
//   min-ping-interval enforcement on the server side). Connections are bounded by the operating system (ulimit
//   -n) or a proxy in front; ping floods are bounded by nghttp2, which ends a session whose unanswered PING
//   acknowledgements pile up (ENHANCE_YOUR_CALM).
// - Calls in flight are bounded per member by CallBudget below (its interceptor for calls grpc-js serves, tryAcquire
//   for those the fast path serves, fast-call.ts), so that a flood of connections each
//   using all its streams cannot grow the member's memory without bound: a unary call holds its slot until
//   its stream is closed (its response written out, or the client gone), so a client that never reads its
//   responses holds at most unaryCallsPerMemberMax of them, each at most responseBytesMax.
import * as grpc from '@grpc/grpc-js';
import type { TxnRequest } from '../../proto/index.js';
import { MvccError, type ReadOptions } from '../../storage/mvcc/index.js';
import type { ApiLimits } from './context.js';
import { apiError } from './errors.js';

/** gRPC framing and field overhead allowed on top of --max-request-bytes (etcd's grpcOverheadBytes). */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;
/** etcd's --grpc-keepalive-interval: the server pings a connection that has been quiet this long. */
export const KEEPALIVE_TIME_MS = 2 * 60 * 60 * 1000;
/** etcd's --grpc-keepalive-timeout: a connection that does not answer the ping within this is closed. */
export const KEEPALIVE_TIMEOUT_MS = 20_000;

export const LIMIT_ERRORS = {
  tooManyUnaryCalls: 'etcdserver: too many requests',
  tooManyStreams: 'fulcrum: too many streams on this member',
  txnTooDeep: (max: number): string => `fulcrum: txn nested too deeply: at most ${max} levels`,
  txnTooManyOps: (max: number): string => `fulcrum: too many operations in txn request: at most ${max} across all nested txns`,
  responseTooLarge: (max: number): string => `fulcrum: response is larger than ${max} bytes (--max-response-bytes); read it in pages with limit`,
} as const;

/** The options of the client gRPC server, from the member's limits; `interceptors` are run in order. */
export function clientServerOptions(limits: ApiLimits, interceptors: readonly grpc.ServerInterceptor[]): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': limits.requestBytesMax + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': limits.responseBytesMax,
    'grpc.max_concurrent_streams': limits.concurrentStreamsMax,
    'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
    // Leave grpc.enable_channelz on: grpc-js 1.14's forceShutdown destroys only the sessions its channelz session
    // handler recorded, so without channelz a stopped server's open connections keep answering (tried twice).
    interceptors: [...interceptors],
  };
}

/** The message limits of the fast path (api/fast-path.ts): the same as the grpc-js server's above. */
export function fastPathLimits(limits: ApiLimits): { receiveMessageBytesMax: number; sendMessageBytesMax: number } {
  return { receiveMessageBytesMax: limits.requestBytesMax + GRPC_OVERHEAD_BYTES, sendMessageBytesMax: limits.responseBytesMax };
}

/** Bounds that must hold between the limits (checked once, when the server is built). */
export function checkApiLimits(l: ApiLimits): void {
  for (const [name, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`api limit ${name} must be a positive integer, got ${String(v)}`);
  }
  // A response must be able to carry the largest value a request could write.
  if (l.responseBytesMax < l.requestBytesMax + GRPC_OVERHEAD_BYTES) {
    throw new RangeError(`--max-response-bytes (${l.responseBytesMax}) must be at least --max-request-bytes + ${GRPC_OVERHEAD_BYTES}`);
  }
  // A flat txn may fill its compares and both branches (etcd's rule bounds each list, not their sum).
  if (l.txnOpsTotalMax < 3 * l.txnOpsMax) throw new RangeError('api limit txnOpsTotalMax must be at least 3 * txnOpsMax');
}

// ---------------------------------------------------------------------------------------------------------
// Calls in flight per member
// ---------------------------------------------------------------------------------------------------------

/**
 * Counts the member's calls in flight, unary calls and streams apart (a watch stream lives for hours, a unary
 * call for milliseconds, so one budget would let either starve the other), and refuses a call beyond its budget
 * before its handler runs: RESOURCE_EXHAUSTED, etcd's "too many requests" for a unary call.
 */
export class CallBudget {
  private unary = 0;
  private streams = 0;

  constructor(private readonly limits: Pick<ApiLimits, 'unaryCallsPerMemberMax' | 'streamsPerMemberMax'>) {}

  get inFlight(): { readonly unary: number; readonly streams: number } {
    return { unary: this.unary, streams: this.streams };
  }

  /** A grpc-js server interceptor that holds one slot per call from its metadata until its stream closes. */
  readonly interceptor: grpc.ServerInterceptor = (method, call) => {
    const streaming = method.requestStream || method.responseStream;
    let held = false;
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((md, next) => {
        if (!this.tryAcquire(streaming)) {
          const details = streaming ? LIMIT_ERRORS.tooManyStreams : LIMIT_ERRORS.tooManyUnaryCalls;
          call.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details });
          return;
        }
        held = true;
        next(md);
      })
      // grpc-js notifies a cancel once for every call when its stream closes, whatever ended it (status sent,
      // client gone, deadline): the one place a slot is given back.
      .withOnCancel(() => {
        if (!held) return;
        held = false;
        this.release(streaming);
      })
      .build();
    const responder = new grpc.ResponderBuilder().withStart((next) => next(listener)).build();
    return new grpc.ServerInterceptingCall(call, responder);
  };

  /** Take a slot for a call (the fast unary path's interceptor-free equivalent); false when the budget is spent. */
  tryAcquire(streaming: boolean): boolean {
    if (streaming) {
      if (this.streams >= this.limits.streamsPerMemberMax) return false;
      this.streams++;
      return true;
    }
    if (this.unary >= this.limits.unaryCallsPerMemberMax) return false;
    this.unary++;
    return true;
  }

  /** Give back a slot taken with tryAcquire. */
  release(streaming: boolean): void {
    if (streaming) this.streams--;
    else this.unary--;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Txn shape
// ---------------------------------------------------------------------------------------------------------

/**
 * The nesting depth and the operations of a Txn as decoded from the wire, counted without recursion: a
 * 1.5 MiB request can nest thousands of levels, deeper than the recursive checks, conversions and the command
 * codec (storage/command.ts, NESTING_MAX) can go. etcd's own limit (each nested txn gets what its parent's
 * widest list left of --max-txn-ops) still applies after this; this adds a depth limit and a total, so that a
 * txn of nested txns cannot multiply its operations (64 ops of 64 ops of ... within etcd's rule).
 */
export function checkTxnShape(req: TxnRequest, limits: Pick<ApiLimits, 'txnNestingMax' | 'txnOpsTotalMax'>): void {
  let ops = 0;
  const stack: Array<{ txn: TxnRequest; depth: number }> = [{ txn: req, depth: 1 }];
  while (stack.length > 0) {
    const { txn, depth } = stack.pop()!;
    if (depth > limits.txnNestingMax) throw apiError('INVALID_ARGUMENT', LIMIT_ERRORS.txnTooDeep(limits.txnNestingMax));
    ops += txn.compare.length + txn.success.length + txn.failure.length;
    if (ops > limits.txnOpsTotalMax) throw apiError('INVALID_ARGUMENT', LIMIT_ERRORS.txnTooManyOps(limits.txnOpsTotalMax));
    for (const op of [...txn.success, ...txn.failure]) {
      if (op.request === 'request_txn' && op.request_txn !== null) stack.push({ txn: op.request_txn, depth: depth + 1 });
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Server streams
// ---------------------------------------------------------------------------------------------------------

/**
 * Until a server stream has room for more answers ('drain'), or is gone. A stream that answers requests or
 * events waits here when write() returns false, so that a client that does not read holds its answers in HTTP/2
 * flow control and in the stream's own bounded queue, never in a write buffer that grows with every request.
 */
export function untilWritable(call: Pick<NodeJS.EventEmitter, 'once' | 'removeListener'>): Promise<void> {
  const events = ['drain', 'close', 'error', 'cancelled'] as const;
  return new Promise((resolve) => {
    const done = (): void => {
      for (const e of events) call.removeListener(e, done);
      resolve();
    };
    for (const e of events) call.once(e, done);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Response size
// ---------------------------------------------------------------------------------------------------------

/**
 * A client read with the member's response budget: the store stops reading once the key-values it holds
 * exceed responseBytesMax, and the client hears which limit it hit and what to do about it.
 */
export async function boundedRead<T>(limits: Pick<ApiLimits, 'responseBytesMax'>, read: (opts: ReadOptions) => Promise<T>): Promise<T> {
  try {
    return await read({ responseBytesMax: limits.responseBytesMax });
  } catch (e) {
    if (e instanceof MvccError && e.code === 'RESPONSE_TOO_LARGE') throw apiError('RESPONSE_TOO_LARGE', LIMIT_ERRORS.responseTooLarge(limits.responseBytesMax));
    throw e;
  }
}
