// What the fast path's calls (fast-unary.ts, fast-stream.ts) share: gRPC framing, the call's metadata, deadline,
// peer and TLS identity in grpc-js's shape, and trailers-only error answers. See fast-path.ts for why the path
// exists and how it is installed.
import { EventEmitter } from 'node:events';
import type * as http2 from 'node:http2';
import { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { LIMIT_ERRORS, type CallBudget } from './limits.js';

/** [u8 compressed flag][u32 big-endian length], then the message. */
export const FRAME_HEADER_BYTES = 5;
/** grpc-js's grpc-timeout syntax (digits and a unit), which it matches anywhere in the value. */
const GRPC_TIMEOUT = /(\d{1,8})\s*([HMSmun])/;
const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };
/** The longest delay setTimeout honours (2^31 - 1 ms); longer ones fire at once. */
const TIMER_MS_MAX = 2 ** 31 - 1;
/** Request headers that belong to the transport, not to the handler's metadata (grpc-js drops the same). */
const TRANSPORT_HEADERS: ReadonlySet<string> = new Set(['grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', 'te', 'content-type']);
/** ':', which starts HTTP/2's pseudo-headers (reserved: never metadata). */
const PSEUDO_HEADER_MARK = 0x3a;
export const CONTENT_TYPE = 'application/grpc+proto';
/** The response headers grpc-js sends before a call's first message. */
export const RESPONSE_HEADERS = { ':status': 200, 'content-type': CONTENT_TYPE, 'grpc-accept-encoding': 'identity,deflate,gzip', 'grpc-encoding': 'identity' } as const;

type AuthContext = ReturnType<grpc.ServerUnaryCall<unknown, unknown>['getAuthContext']>;
type MetricsRecorder = ReturnType<grpc.ServerUnaryCall<unknown, unknown>['getMetricsRecorder']>;

export interface FastLimits {
  /** Largest request message, framing excluded (grpc.max_receive_message_length of the grpc-js server). */
  readonly receiveMessageBytesMax: number;
  /** Largest response message (grpc.max_send_message_length). */
  readonly sendMessageBytesMax: number;
}

/** A method this path serves: the handler grpc-js would call, and the method's codecs. */
export interface FastMethod {
  readonly path: string;
  readonly kind: 'unary' | 'bidi';
  readonly handler: (...args: never[]) => void;
  readonly deserialize: (bytes: Buffer) => unknown;
  readonly serialize: (value: unknown) => Buffer;
}

/** What both kinds of call are given. */
export interface FastCallDeps {
  readonly limits: FastLimits;
  readonly budget: CallBudget;
}

/** The request headers a handler sees as metadata: neither pseudo-headers nor the transport's. */
function applicationHeaders(headers: http2.IncomingHttpHeaders): http2.IncomingHttpHeaders {
  // No prototype, like Node's own headers object: a header named __proto__ stays an entry.
  const out = Object.create(null) as http2.IncomingHttpHeaders;
  for (const key of Object.keys(headers)) {
    if (key.charCodeAt(0) !== PSEUDO_HEADER_MARK && !TRANSPORT_HEADERS.has(key)) out[key] = headers[key];
  }
  return out;
}

/** A message in a gRPC frame. */
function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.byteLength);
  out[0] = 0;
  out.writeUInt32BE(message.byteLength, 1);
  message.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/** Why a frame or a message cannot go through: the status to end the call with. */
export interface Refusal {
  readonly code: grpc.status;
  readonly details: string;
}

/**
 * What is wrong with a request frame's head (its first five bytes), if anything: a length beyond the limit, or a
 * compressed flag (this path only takes calls without grpc-encoding; the answers are grpc-go's, an etcd member's).
 */
export function frameHeadRefusal(head: Buffer, limits: FastLimits): Refusal | undefined {
  const length = head.readUInt32BE(1);
  if (length > limits.receiveMessageBytesMax) {
    return { code: grpc.status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${length} vs ${limits.receiveMessageBytesMax})` };
  }
  const flag = head[0];
  if (flag === 0) return undefined;
  return { code: grpc.status.INTERNAL, details: flag === 1 ? 'grpc: compressed flag set with identity or empty encoding' : `grpc: received unexpected payload format ${flag}` };
}

/** A request message decoded, or grpc-js's refusal of one that does not decode. */
export function decodeRequest(method: FastMethod, message: Buffer): { request: unknown } | Refusal {
  try {
    return { request: method.deserialize(message) };
  } catch {
    return { code: grpc.status.INTERNAL, details: 'Error deserializing request' };
  }
}

/** A response encoded and framed, or grpc-js's refusal of one that does not encode or is beyond the limit. */
export function encodeResponse(method: FastMethod, value: unknown, limits: FastLimits): Buffer | Refusal {
  let bytes: Buffer;
  try {
    bytes = method.serialize(value);
  } catch {
    return { code: grpc.status.INTERNAL, details: 'Error serializing response' };
  }
  if (bytes.byteLength > limits.sendMessageBytesMax) {
    return { code: grpc.status.RESOURCE_EXHAUSTED, details: `Sent message larger than max (${bytes.byteLength} vs. ${limits.sendMessageBytesMax})` };
  }
  return frame(bytes);
}

/** A call's status as headers (trailers, or a trailers-only answer): the metadata, grpc-status, grpc-message. */
function statusHeaders(code: grpc.status, details: string, metadata: grpc.Metadata | null | undefined): http2.OutgoingHttpHeaders {
  return { ...metadata?.toHttp2Headers(), 'grpc-status': String(code), 'grpc-message': encodeURI(details) };
}

/** The details of a handler's error as grpc-js reads them (serverErrorToStatus). */
export function statusOf(err: grpc.ServerErrorResponse | Partial<grpc.StatusObject>): { code: grpc.status; details: string; metadata: grpc.Metadata | undefined } {
  const code = typeof err.code === 'number' && Number.isInteger(err.code) ? err.code : grpc.status.UNKNOWN;
  const details = code === err.code && typeof err.details === 'string' ? err.details : 'message' in err ? String(err.message) : 'Unknown Error';
  return { code, details, metadata: err.metadata ?? undefined };
}

/**
 * The calls' 'error' listener, at module level on purpose. Node 20 keeps each HTTP/2 stream alive through every
 * scavenge until the next mark-compact (a modified wrapper object behind a weak handle, which V8 reclaims only in a
 * full collection), so everything a closed stream references is copied and promoted to the old generation. A
 * closure made inside a call's method shares that method's context, and with it the call, its request and its
 * answer: such a listener, never removed, promoted whole calls. Measured at 100 puts in flight (docs/performance.md):
 * the leader promoted about a fifth of what it allocated before this and detach(), about an eighth after.
 */
const ignoreStreamError = (): void => {};

/** A stream's native side, as far as endJoinedWithOk uses it. */
interface NativeStream {
  /** Submit trailers; the argument is Node 20's header list, [name\0value\0flags... , count]; < 0 on failure. */
  trailers(list: readonly [string, number]): number;
}

/** The trailers of a call that succeeded without trailing metadata, as Node 20's header list. */
const OK_TRAILER_LIST = ['grpc-status\x000\x00\x00grpc-message\x00OK\x00\x00', 2] as const;
/** The Node major whose native trailers(list) endJoinedWithOk was written against and tested on. */
const JOINED_TRAILERS_NODE_MAJOR = '20';
const joinedTrailersAvailable = process.versions.node.split('.')[0] === JOINED_TRAILERS_NODE_MAJOR;
/** Node's Symbol(kHandle) on its HTTP/2 streams, found on first use; null when a stream has none. */
let handleSymbol: symbol | null | undefined;

function nativeStream(stream: http2.ServerHttp2Stream): NativeStream | undefined {
  if (!joinedTrailersAvailable) return undefined;
  handleSymbol ??= Object.getOwnPropertySymbols(stream).find((s) => s.description === 'kHandle') ?? null;
  if (handleSymbol === null) return undefined;
  const handle = (stream as unknown as Record<symbol, unknown>)[handleSymbol];
  if (typeof handle !== 'object' || handle === null || typeof (handle as Partial<NativeStream>).trailers !== 'function') return undefined;
  return handle as NativeStream;
}

/**
 * End a successful call with `data` (if any) and OK trailers in one write; false (nothing done) where this Node
 * does not allow it, and the caller answers the documented way.
 *
 * Why: Node's HTTP/2 lets a server send trailers only once the stream's data has been written (its write
 * callback) and its writable side has shut down, and then defers them once more (sendTrailers uses setImmediate).
 * So a unary answer left as a write of HEADERS and DATA and, one or two event-loop turns later, a write of the
 * trailers: the client woke twice per call and waited for the second. etcd's server sends all three at once.
 *
 * How: the writable side is shut down as soon as the data is queued (stream._final, which Node's own end() would
 * call later, finding it done). nghttp2 then reaches the data's end in the same send as the data and asks for
 * trailers: 'wantTrailers' is emitted from nghttp2's data source callback, inside which nghttp2's documentation
 * allows nghttp2_submit_trailer, so trailers submitted there leave in the same write. Node's sendTrailers would
 * defer them, so they go to the native handle directly: Symbol(kHandle) and its trailers(list) are Node internals,
 * used only on the major they were tested on (fast-path.test.ts reads what the client receives, chunk by chunk).
 */
function endJoinedWithOk(stream: http2.ServerHttp2Stream, data: Buffer | undefined): boolean {
  // end(data) must hand the data to the native side at once (no write in progress, not corked): the shutdown
  // below would otherwise overtake it. A stream's earlier messages still being written go the documented way.
  if (stream.writableLength !== 0 || stream.writableCorked !== 0) return false;
  const handle = nativeStream(stream);
  if (handle === undefined) return false;
  stream.once('wantTrailers', () => {
    if (handle.trailers(OK_TRAILER_LIST) < 0) stream.destroy(new Error('fulcrum: HTTP/2 refused the trailers of an answer'));
  });
  if (data !== undefined) holdCloseUntilWritten(stream);
  if (data === undefined) stream.end();
  else stream.end(data);
  stream._final(ignoreShutdownResult);
  return true;
}

/**
 * Let the destroy that closing `stream` brings wait for the check phase, so that its answer's write callback runs
 * first.
 *
 * Why: nghttp2 closes a joined answer's stream inside the very send that carries its data, and Node destroys the
 * stream right there, before the write's callback. That callback then finds the stream destroyed, and Node 20's
 * Writable builds an ERR_STREAM_DESTROYED error, stack trace and all, that nobody receives (errorBuffer): about
 * 4 % of a leader's CPU at 100 puts in flight (docs/performance.md). The write completes in the same native send,
 * so by the check phase it has; if it has not, the destroy goes ahead anyway and only the error is back.
 *
 * Only the first destroy() without an error, of a stream HTTP/2 has closed, waits, once: a destroy with an error
 * (a failed write, a reset), one of a stream still open (a session going down) and any later call go through at
 * once.
 */
function holdCloseUntilWritten(stream: http2.ServerHttp2Stream): void {
  const destroy = stream.destroy;
  let held = false;
  stream.destroy = function holdOnce(this: http2.ServerHttp2Stream, error?: Error) {
    if (held || (error !== undefined && error !== null) || !this.closed) return destroy.call(this, error);
    held = true;
    setImmediate(() => destroy.call(this));
    return this;
  };
}

function ignoreShutdownResult(): void {
  // The shutdown's outcome reaches the stream through its own 'error' and 'close'.
}

/**
 * grpc-js's ServerSurfaceCall over one HTTP/2 stream: metadata (built on first use), deadline, peer, host, TLS
 * identity; and the parts of answering every call shares: the deadline timer and trailers-only errors.
 */
export abstract class FastCallBase extends EventEmitter {
  cancelled = false;
  /** A status has been sent, or there is no one left to send it to. */
  protected answered = false;
  /** Unary calls and streams are counted apart in the member's CallBudget. */
  protected abstract readonly streaming: boolean;
  private holdsSlot = false;
  private deadline = Infinity;
  private timer: NodeJS.Timeout | undefined;
  private md: grpc.Metadata | undefined;

  constructor(
    protected readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    protected readonly method: FastMethod,
    protected readonly deps: FastCallDeps,
  ) {
    super();
  }

  /**
   * Take the call's slot and start its deadline; false (and the call answered) when the budget is spent or the
   * deadline malformed. The stream's close gives the slot back (onStreamClose).
   */
  protected admit(): boolean {
    const stream = this.stream;
    // Errors on the stream (a reset, a write after the peer left) end in 'close', which is handled there.
    stream.on('error', ignoreStreamError);
    stream.once('close', () => this.onStreamClose());
    if (!this.deps.budget.tryAcquire(this.streaming)) {
      this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, this.streaming ? LIMIT_ERRORS.tooManyStreams : LIMIT_ERRORS.tooManyUnaryCalls);
      stream.resume();
      return false;
    }
    this.holdsSlot = true;
    if (!this.startDeadline()) {
      stream.resume();
      return false;
    }
    return true;
  }

  /**
   * Remove every listener of the call's own from its stream. Why: Node keeps a closed HTTP/2 stream reachable
   * through every young-generation collection until the next full one (see ignoreStreamError), so whatever the
   * stream still references is copied and promoted with it.
   */
  protected abstract detach(): void;

  /** The stream closed: give back the call's slot, and tell the handler if it never answered. */
  protected onStreamClose(): void {
    this.detach();
    if (this.holdsSlot) {
      this.holdsSlot = false;
      this.deps.budget.release(this.streaming);
    }
    clearTimeout(this.timer);
    if (this.answered) return;
    this.answered = true;
    this.notifyCancelled();
  }

  /** grpc-timeout, as grpc-js reads it; false when the header is malformed (the call is answered then). */
  private startDeadline(): boolean {
    const raw = this.headers['grpc-timeout'];
    if (raw === undefined) return true;
    const header = Array.isArray(raw) ? raw.join(',') : raw;
    const match = GRPC_TIMEOUT.exec(header);
    if (match === null) {
      this.sendStatus(grpc.status.INTERNAL, `Invalid grpc-timeout value "${header}"`);
      return false;
    }
    const timeoutMs = Math.floor(Number(match[1]) * TIMEOUT_UNIT_MS[match[2]!]!);
    this.deadline = Date.now() + timeoutMs;
    // Beyond a timer's range (~24.8 days) the deadline is as good as none. (grpc-js truncates the value to 32 bits,
    // so a client's 30-day deadline fails there at once.)
    if (timeoutMs > TIMER_MS_MAX) return true;
    this.timer = setTimeout(() => {
      if (this.answered) return;
      this.sendStatus(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded');
      this.notifyCancelled();
    }, timeoutMs);
    return true;
  }

  /** Mark the call answered; false when there is no one left to answer. */
  protected beginAnswer(): boolean {
    if (this.answered) return false;
    this.answered = true;
    clearTimeout(this.timer);
    return !this.stream.destroyed && !this.stream.closed;
  }

  /** A trailers-only answer: the call failed before any message. */
  protected sendStatus(code: grpc.status, details: string, metadata?: grpc.Metadata | null): void {
    if (!this.beginAnswer()) return;
    this.stream.respond({ ...statusHeaders(code, details, metadata), ':status': 200, 'content-type': CONTENT_TYPE }, { endStream: true });
  }

  /** End the stream after `data` (if any) with trailers carrying the status; the caller has called beginAnswer(). */
  protected endWithTrailers(code: grpc.status, details: string, metadata: grpc.Metadata | null | undefined, data?: Buffer): void {
    const stream = this.stream;
    if (code === grpc.status.OK && details === 'OK' && (metadata === undefined || metadata === null) && endJoinedWithOk(stream, data)) return;
    stream.once('wantTrailers', () => stream.sendTrailers(statusHeaders(code, details, metadata)));
    if (data === undefined) stream.end();
    else stream.end(data);
  }

  protected notifyCancelled(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled', 'cancelled');
  }

  // ---- grpc-js's ServerSurfaceCall

  get metadata(): grpc.Metadata {
    // Built from the application's headers only: every call reads its metadata (hasleader, token, request id),
    // and converting the transport's headers only to remove them again was a twentieth of a put's allocation.
    this.md ??= grpc.Metadata.fromHttp2Headers(applicationHeaders(this.headers));
    return this.md;
  }

  getPeer(): string {
    const socket = this.stream.session?.socket;
    if (socket?.remoteAddress === undefined) return 'unknown';
    return socket.remotePort === undefined ? socket.remoteAddress : `${socket.remoteAddress}:${socket.remotePort}`;
  }

  getDeadline(): grpc.Deadline {
    return this.deadline;
  }

  getPath(): string {
    return this.method.path;
  }

  getHost(): string {
    return this.headers[':authority'] ?? this.headers.host ?? '';
  }

  getAuthContext(): AuthContext {
    const socket = this.stream.session?.socket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
    const cert = socket.getPeerCertificate();
    return { transportSecurityType: 'ssl', sslPeerCertificate: cert.raw === undefined ? undefined : cert };
  }

  getMetricsRecorder(): MetricsRecorder {
    // ORCA per-request metrics: no Fulcrum handler records any, and the server does not enable them.
    throw new Error('fulcrum: per-request metric recording is not available to Fulcrum handlers');
  }
}
