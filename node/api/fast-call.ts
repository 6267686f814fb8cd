// What the fast path's calls (fast-unary.ts, fast-stream.ts, fast-server-stream.ts) share: gRPC framing, the call's metadata, deadline,
// peer and TLS identity in grpc-js's shape, and trailers-only error answers. See fast-path.ts for why the path
// exists and how it is installed, and call-transport.ts for the HTTP/2 stream under a call.
import { EventEmitter } from 'node:events';
import type * as http2 from 'node:http2';
import { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { CallSink, CallTransport } from './call-transport.js';
import { LIMIT_ERRORS, type CallBudget } from './limits.js';
import { HeaderMetadata, type MetadataReader } from './metadata.js';
import { assert } from '../../raft/errors.js';

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
  /** 'serverStream': one request, many responses (grpc-js's name for the type). */
  readonly kind: 'unary' | 'bidi' | 'serverStream' | 'clientStream';
  readonly handler: (...args: never[]) => void;
  readonly deserialize: (bytes: Buffer) => unknown;
  readonly serialize: (value: unknown) => Buffer;
}

/** What every kind of call is given. */
export interface FastCallDeps {
  readonly limits: FastLimits;
  readonly budget: CallBudget;
}

/** A header that is not the handler's metadata: a pseudo-header or the transport's. */
function isTransportHeader(key: string): boolean {
  return key.charCodeAt(0) === PSEUDO_HEADER_MARK || TRANSPORT_HEADERS.has(key);
}

/** The request headers a handler sees as metadata: neither pseudo-headers nor the transport's. */
function applicationHeaders(headers: http2.IncomingHttpHeaders): http2.IncomingHttpHeaders {
  // No prototype, like Node's own headers object: a header named __proto__ stays an entry.
  const out = Object.create(null) as http2.IncomingHttpHeaders;
  for (const key of Object.keys(headers)) {
    if (!isTransportHeader(key)) out[key] = headers[key];
  }
  return out;
}

/** A message in a gRPC frame. */
function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.byteLength);
  putFrame(out, 0, message);
  return out;
}

/**
 * Messages in gRPC frames, one after another in one buffer of `bytes` (their lengths plus a frame head each): a
 * stream's responses of one turn are copied once, not framed one by one and then joined.
 */
export function frameAll(messages: readonly Buffer[], bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (const m of messages) at = putFrame(out, at, m);
  assert(at === bytes, () => `framed ${at} bytes where ${bytes} were counted`);
  return out;
}

/** `message` framed into `out` at `at`; where the next frame goes. */
function putFrame(out: Buffer, at: number, message: Buffer): number {
  out[at] = 0;
  out.writeUInt32BE(message.byteLength, at + 1);
  message.copy(out, at + FRAME_HEADER_BYTES);
  return at + FRAME_HEADER_BYTES + message.byteLength;
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

/** How grpc-js names a method's kind in its refusals. */
const KIND_NAMES: Readonly<Record<FastMethod['kind'], string>> = { unary: 'unary', serverStream: 'server streaming', clientStream: 'client streaming', bidi: 'bidirectional streaming' };

/**
 * What is wrong, if anything, with the request so far (`chunks`, `bytes` in all) of a call that takes exactly one
 * message (unary, server-streaming): a frame head refused, or bytes beyond the one message (grpc-js's answers).
 */
export function oneMessageRefusal(chunks: readonly Buffer[], bytes: number, method: FastMethod, limits: FastLimits): Refusal | undefined {
  if (bytes < FRAME_HEADER_BYTES) return undefined;
  const first = chunks[0]!;
  const head = first.byteLength >= FRAME_HEADER_BYTES ? first : Buffer.concat(chunks, bytes);
  const refusal = frameHeadRefusal(head, limits);
  if (refusal !== undefined) return refusal;
  if (bytes <= FRAME_HEADER_BYTES + head.readUInt32BE(1)) return undefined;
  return { code: grpc.status.UNIMPLEMENTED, details: `Received a second request message for ${KIND_NAMES[method.kind]} method ${method.path}` };
}

/** The one request message of an ended request (its head checked by oneMessageRefusal), decoded; or the refusal. */
export function oneMessage(chunks: readonly Buffer[], bytes: number, method: FastMethod): { request: unknown } | Refusal {
  const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes);
  if (body.byteLength < FRAME_HEADER_BYTES || body.byteLength !== FRAME_HEADER_BYTES + body.readUInt32BE(1)) {
    return { code: grpc.status.UNIMPLEMENTED, details: `Received no request message for ${KIND_NAMES[method.kind]} method ${method.path}` };
  }
  return decodeRequest(method, body.subarray(FRAME_HEADER_BYTES));
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
  const message = encodeMessage(method, value, limits);
  return 'code' in message ? message : frame(message);
}

/** A response encoded (not yet framed), or grpc-js's refusal of one that does not encode or is beyond the limit. */
export function encodeMessage(method: FastMethod, value: unknown, limits: FastLimits): Buffer | Refusal {
  let bytes: Buffer;
  try {
    bytes = method.serialize(value);
  } catch {
    return { code: grpc.status.INTERNAL, details: 'Error serializing response' };
  }
  if (bytes.byteLength > limits.sendMessageBytesMax) {
    return { code: grpc.status.RESOURCE_EXHAUSTED, details: `Sent message larger than max (${bytes.byteLength} vs. ${limits.sendMessageBytesMax})` };
  }
  return bytes;
}

/** The details of a handler's error as grpc-js reads them (serverErrorToStatus). */
export function statusOf(err: grpc.ServerErrorResponse | Partial<grpc.StatusObject>): { code: grpc.status; details: string; metadata: grpc.Metadata | undefined } {
  const code = typeof err.code === 'number' && Number.isInteger(err.code) ? err.code : grpc.status.UNKNOWN;
  const details = code === err.code && typeof err.details === 'string' ? err.details : 'message' in err ? String(err.message) : 'Unknown Error';
  return { code, details, metadata: err.metadata ?? undefined };
}

/**
 * grpc-js's ServerSurfaceCall over one gRPC exchange (a CallTransport): metadata (built on first use), deadline,
 * peer, host, TLS identity; and the parts of answering every call shares: the deadline timer and trailers-only
 * errors. The call is its transport's sink (CallSink): the transport's events come to its on... methods, which
 * are not for handlers.
 */
export abstract class FastCallBase extends EventEmitter implements CallSink {
  cancelled = false;
  /** A status has been sent, or there is no one left to send it to. */
  protected answered = false;
  /** Unary calls and streams are counted apart in the member's CallBudget. */
  protected abstract readonly streaming: boolean;
  /**
   * A unary handler has been called and has not called back. Streaming handlers stop on 'cancelled' and are
   * over when the transport closes.
   */
  protected handlerRunning = false;
  private holdsSlot = false;
  private deadline = Infinity;
  private timer: NodeJS.Timeout | undefined;
  private md: grpc.Metadata | undefined;
  private reader: MetadataReader | undefined;

  constructor(
    protected readonly transport: CallTransport,
    private readonly headers: http2.IncomingHttpHeaders,
    protected readonly method: FastMethod,
    protected readonly deps: FastCallDeps,
  ) {
    super();
  }

  /**
   * Start hearing the transport's events, take the call's slot and start its deadline; false (and the call
   * answered) when the budget is spent or the deadline malformed. The transport's close gives the slot back
   * (onTransportClose).
   */
  protected admit(): boolean {
    const transport = this.transport;
    transport.attach(this);
    if (!this.deps.budget.tryAcquire(this.streaming)) {
      this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, this.streaming ? LIMIT_ERRORS.tooManyStreams : LIMIT_ERRORS.tooManyUnaryCalls);
      transport.resume(); // the rest of the request is read and dropped
      return false;
    }
    this.holdsSlot = true;
    if (!this.startDeadline()) {
      transport.resume();
      return false;
    }
    return true;
  }

  abstract onRequestData(chunk: Buffer): void;
  abstract onRequestEnd(): void;

  onWritable(): void {
    // Only calls that write with back-pressure (streams) wait for it.
  }

  /**
   * The exchange is over: give back the call's slot, and tell the handler if it never answered. True when the
   * handler is still running (a unary handler that has not called back yet).
   */
  onTransportClose(_resetCode: number): boolean {
    this.transport.detach();
    if (this.holdsSlot) {
      this.holdsSlot = false;
      this.deps.budget.release(this.streaming);
    }
    clearTimeout(this.timer);
    if (!this.answered) {
      this.answered = true;
      this.notifyCancelled();
    }
    return this.handlerRunning;
  }

  /** The handler returned (called back, or threw): the transport stops counting its stream. */
  protected handlerReturned(): void {
    if (!this.handlerRunning) return;
    this.handlerRunning = false;
    this.transport.handlerDone();
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
    return this.transport.open;
  }

  /** A trailers-only answer: the call failed before any message. */
  protected sendStatus(code: grpc.status, details: string, metadata?: grpc.Metadata | null): void {
    if (!this.beginAnswer()) return;
    this.transport.endTrailersOnly({ code, details, metadata });
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

  /** One key at a time, without `metadata` (node/api/metadata.ts): what the handlers' own checks read. */
  get metadataReader(): MetadataReader {
    this.reader ??= new HeaderMetadata(this.headers, isTransportHeader, () => this.metadata);
    return this.reader;
  }

  getPeer(): string {
    const socket = this.transport.peerSocket;
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
    const socket = this.transport.peerSocket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
    const cert = socket.getPeerCertificate();
    return { transportSecurityType: 'ssl', sslPeerCertificate: cert.raw === undefined ? undefined : cert };
  }

  getMetricsRecorder(): MetricsRecorder {
    // ORCA per-request metrics: no Fulcrum handler records any, and the server does not enable them.
    throw new Error('fulcrum: per-request metric recording is not available to Fulcrum handlers');
  }
}
