// The client server's unary calls (KV, Lease grants, Cluster, Maintenance, Auth ...) served straight from their
// HTTP/2 stream, in front of grpc-js's own stream handler on the same listener. Streaming calls, calls whose
// request is compressed, and anything this path does not recognise go on to grpc-js unchanged.
//
// Why: grpc-js builds for every call an interceptor chain, a stream decoder, a metadata copy, a
// per-call listener object and several closures and promises; on a leader taking a few thousand puts a second
// that was the largest single item of its CPU profile besides Raft itself (docs/performance.md). A unary call
// needs none of it: its request is one length-prefixed message, its answer one message and a status.
//
// What it keeps of grpc-js's behaviour, so a client cannot tell the two paths apart:
//   - the same handlers, called with a call object of grpc-js's ServerUnaryCall shape (request, metadata,
//     deadline, peer, TLS auth context, 'cancelled' when the client goes away or the deadline passes);
//   - the same limits: --max-request-bytes + gRPC overhead per request, --max-response-bytes per response,
//     unary calls in flight per member (CallBudget), each with the same status code and message;
//   - the same wire answer: headers, one message and trailers, or a trailers-only response for an error, with
//     grpc-message percent-encoded as grpc-js does;
//   - grpc-timeout: the call fails with DEADLINE_EXCEEDED "Deadline exceeded" when it passes.
// It differs from grpc-js where grpc-js differs from etcd: a message flagged compressed without a
// grpc-encoding is refused (INTERNAL) as grpc-go does, where grpc-js would read it as uncompressed.
//
// How it gets in front: grpc-js keeps the HTTP/2 servers it creates in a private map and registers one 'stream'
// listener on each. install() replaces that listener with one that tries this path first. grpc-js keeps
// everything else (sessions, keepalive, GOAWAY on shutdown). If a grpc-js upgrade changes those internals,
// install() throws at start-up rather than serving without the path or twice.
import { EventEmitter } from 'node:events';
import * as http2 from 'node:http2';
import { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { LIMIT_ERRORS, type CallBudget } from './limits.js';

/** [u8 compressed flag][u32 big-endian length], then the message. */
const FRAME_HEADER_BYTES = 5;
/** grpc-js's grpc-timeout syntax (digits and a unit), which it matches anywhere in the value. */
const GRPC_TIMEOUT = /(\d{1,8})\s*([HMSmun])/;
const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };
/** The longest delay setTimeout honours (2^31 - 1 ms); longer ones fire at once. */
const TIMER_MS_MAX = 2 ** 31 - 1;
/** Request headers that belong to the transport, not to the handler's metadata (grpc-js drops the same). */
const TRANSPORT_HEADERS = ['grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', 'te', 'content-type'] as const;
const CONTENT_TYPE = 'application/grpc+proto';

type AuthContext = ReturnType<grpc.ServerUnaryCall<unknown, unknown>['getAuthContext']>;
type MetricsRecorder = ReturnType<grpc.ServerUnaryCall<unknown, unknown>['getMetricsRecorder']>;
type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => void;

export interface FastUnaryLimits {
  /** Largest request message, framing excluded (grpc.max_receive_message_length of the grpc-js server). */
  readonly receiveMessageBytesMax: number;
  /** Largest response message (grpc.max_send_message_length). */
  readonly sendMessageBytesMax: number;
}

interface UnaryMethod {
  readonly path: string;
  readonly handler: grpc.handleUnaryCall<unknown, unknown>;
  readonly deserialize: (bytes: Buffer) => unknown;
  readonly serialize: (value: unknown) => Buffer;
}

export class FastUnaryPath {
  private readonly methods = new Map<string, UnaryMethod>();
  private readonly installed = new WeakSet<object>();
  /** Calls this path answered (tests check that calls really went this way). */
  served = 0;

  constructor(
    private readonly limits: FastUnaryLimits,
    private readonly budget: CallBudget,
  ) {}

  /** Add a service to the grpc-js server, and take its unary methods (grpc-js still answers the rest). */
  addService(server: grpc.Server, service: grpc.ServiceDefinition, impl: Readonly<Record<string, unknown>>): void {
    server.addService(service, impl as grpc.UntypedServiceImplementation);
    for (const [name, def] of Object.entries(service)) {
      if (def.requestStream || def.responseStream) continue;
      const handler = impl[name] ?? (def.originalName === undefined ? undefined : impl[def.originalName]);
      if (typeof handler !== 'function') continue;
      this.methods.set(def.path, {
        path: def.path,
        handler: handler as grpc.handleUnaryCall<unknown, unknown>,
        deserialize: def.requestDeserialize as (bytes: Buffer) => unknown,
        serialize: def.responseSerialize as (value: unknown) => Buffer,
      });
    }
  }

  /** Put this path in front of grpc-js's stream listener on every HTTP/2 server `server` has bound so far. */
  install(server: grpc.Server): void {
    const internals = server as unknown as { http2Servers?: unknown; onStreamOpened?: (s: http2.ServerHttp2Stream) => void };
    const servers = internals.http2Servers;
    if (!(servers instanceof Map) || servers.size === 0) {
      throw new Error('fulcrum: cannot install the fast unary path: grpc-js has no bound HTTP/2 servers where expected (did a grpc-js upgrade change its internals?)');
    }
    for (const h2 of servers.keys() as Iterable<http2.Http2Server>) {
      if (this.installed.has(h2)) continue;
      const listeners = h2.listeners('stream');
      if (listeners.length !== 1) throw new Error(`fulcrum: cannot install the fast unary path: expected grpc-js's one stream listener, found ${listeners.length}`);
      const grpcListener = listeners[0] as StreamListener;
      h2.removeListener('stream', grpcListener);
      h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
        const method = this.claim(headers);
        if (method === undefined) {
          grpcListener(stream, headers, ...rest);
          return;
        }
        // grpc-js's idle-connection bookkeeping counts every stream (a no-op unless max_connection_idle_ms is set).
        internals.onStreamOpened?.call(server, stream);
        this.served++;
        new FastUnaryCall(stream, headers, method, this.limits, this.budget).start();
      });
      this.installed.add(h2);
    }
  }

  /** The method when this path serves the call: a known unary path, a gRPC content type, an uncompressed body. */
  private claim(headers: http2.IncomingHttpHeaders): UnaryMethod | undefined {
    const method = this.methods.get(headers[':path'] ?? '');
    if (method === undefined) return undefined;
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) return undefined;
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') return undefined;
    return method;
  }
}

/** One unary call: read the request, run the handler, answer once (or not at all if the client has gone). */
class FastUnaryCall extends EventEmitter implements grpc.ServerUnaryCall<unknown, unknown> {
  cancelled = false;
  request: unknown = undefined;
  private answered = false;
  private holdsSlot = false;
  private deadline = Infinity;
  private timer: NodeJS.Timeout | undefined;
  private chunks: Buffer[] = [];
  private receivedBytes = 0;
  private md: grpc.Metadata | undefined;
  private responseMetadata: grpc.Metadata | undefined;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly method: UnaryMethod,
    private readonly limits: FastUnaryLimits,
    private readonly budget: CallBudget,
  ) {
    super();
  }

  start(): void {
    const stream = this.stream;
    // Errors on the stream (a reset, a write after the peer left) end in 'close', which is handled below.
    stream.on('error', () => {});
    stream.once('close', this.onClose);
    if (!this.budget.tryAcquire(false)) {
      this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, LIMIT_ERRORS.tooManyUnaryCalls);
      stream.resume();
      return;
    }
    this.holdsSlot = true;
    if (!this.startDeadline()) return;
    stream.on('data', this.onData);
    stream.once('end', this.onEnd);
  }

  private readonly onClose = (): void => {
    clearTimeout(this.timer);
    if (this.holdsSlot) {
      this.holdsSlot = false;
      this.budget.release(false);
    }
    if (this.answered) return;
    // The client went away (RST_STREAM, connection closed) before we answered.
    this.answered = true;
    this.notifyCancelled();
  };

  /** grpc-timeout, as grpc-js reads it; false when the header is malformed (the call is answered then). */
  private startDeadline(): boolean {
    const raw = this.headers['grpc-timeout'];
    if (raw === undefined) return true;
    const header = Array.isArray(raw) ? raw.join(',') : raw;
    const match = GRPC_TIMEOUT.exec(header);
    if (match === null) {
      this.sendStatus(grpc.status.INTERNAL, `Invalid grpc-timeout value "${header}"`);
      this.stream.resume();
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

  private readonly onData = (chunk: Buffer): void => {
    if (this.answered) return; // refused already: the rest of the body is read and dropped
    this.receivedBytes += chunk.byteLength;
    this.chunks.push(chunk);
    if (this.receivedBytes < FRAME_HEADER_BYTES) return;
    const declared = this.declaredLength();
    if (declared > this.limits.receiveMessageBytesMax) {
      this.chunks = [];
      this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${declared} vs ${this.limits.receiveMessageBytesMax})`);
    } else if (this.receivedBytes > FRAME_HEADER_BYTES + declared) {
      this.chunks = [];
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received a second request message for unary method ${this.method.path}`);
    }
  };

  /** The length prefix of the request's frame (the first five bytes have arrived). */
  private declaredLength(): number {
    const first = this.chunks[0]!;
    const head = first.byteLength >= FRAME_HEADER_BYTES ? first : Buffer.concat(this.chunks, this.receivedBytes);
    return head.readUInt32BE(1);
  }

  private readonly onEnd = (): void => {
    if (this.answered) return;
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.receivedBytes);
    this.chunks = [];
    if (body.byteLength < FRAME_HEADER_BYTES || body.byteLength !== FRAME_HEADER_BYTES + body.readUInt32BE(1)) {
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received no request message for unary method ${this.method.path}`);
      return;
    }
    const flag = body[0];
    if (flag !== 0) {
      // grpc-go's answers, which is what an etcd member gives: this path only takes calls without grpc-encoding.
      this.sendStatus(grpc.status.INTERNAL, flag === 1 ? 'grpc: compressed flag set with identity or empty encoding' : `grpc: received unexpected payload format ${flag}`);
      return;
    }
    try {
      this.request = this.method.deserialize(body.subarray(FRAME_HEADER_BYTES));
    } catch {
      this.sendStatus(grpc.status.INTERNAL, 'Error deserializing request');
      return;
    }
    try {
      this.method.handler(this, this.respond);
    } catch {
      this.sendStatus(grpc.status.UNKNOWN, 'Unknown error');
    }
  };

  /** The handler's callback: grpc-js's sendUnaryData. */
  private readonly respond = (err: grpc.ServerErrorResponse | Partial<grpc.StatusObject> | null, value?: unknown, trailer?: grpc.Metadata): void => {
    if (this.answered) return;
    if (err !== null && err !== undefined) {
      const code = typeof err.code === 'number' && Number.isInteger(err.code) ? err.code : grpc.status.UNKNOWN;
      const details = code === err.code && typeof err.details === 'string' ? err.details : 'message' in err ? String(err.message) : 'Unknown Error';
      this.sendStatus(code, details, trailer ?? err.metadata);
      return;
    }
    let message: Buffer;
    try {
      message = this.method.serialize(value);
    } catch {
      this.sendStatus(grpc.status.INTERNAL, 'Error serializing response');
      return;
    }
    if (message.byteLength > this.limits.sendMessageBytesMax) {
      this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Sent message larger than max (${message.byteLength} vs. ${this.limits.sendMessageBytesMax})`);
      return;
    }
    this.sendMessage(message, trailer);
  };

  /** Mark the call answered; false when there is no one left to answer. */
  private beginAnswer(): boolean {
    if (this.answered) return false;
    this.answered = true;
    clearTimeout(this.timer);
    return !this.stream.destroyed && !this.stream.closed;
  }

  private sendMessage(message: Buffer, trailer: grpc.Metadata | undefined): void {
    if (!this.beginAnswer()) return;
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.byteLength);
    frame[0] = 0;
    frame.writeUInt32BE(message.byteLength, 1);
    message.copy(frame, FRAME_HEADER_BYTES);
    const stream = this.stream;
    stream.respond({ ...this.responseMetadata?.toHttp2Headers(), ':status': 200, 'content-type': CONTENT_TYPE, 'grpc-accept-encoding': 'identity,deflate,gzip', 'grpc-encoding': 'identity' }, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ ...trailer?.toHttp2Headers(), 'grpc-status': '0', 'grpc-message': 'OK' }));
    stream.end(frame);
  }

  /** A trailers-only answer: the call failed before any message. */
  private sendStatus(code: grpc.status, details: string, metadata?: grpc.Metadata | null): void {
    if (!this.beginAnswer()) return;
    this.stream.respond(
      { ...metadata?.toHttp2Headers(), ':status': 200, 'content-type': CONTENT_TYPE, 'grpc-status': String(code), 'grpc-message': encodeURI(details) },
      { endStream: true },
    );
  }

  private notifyCancelled(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled', 'cancelled');
  }

  // ---- grpc-js's ServerSurfaceCall

  get metadata(): grpc.Metadata {
    if (this.md === undefined) {
      const md = grpc.Metadata.fromHttp2Headers(this.headers);
      for (const h of TRANSPORT_HEADERS) md.remove(h);
      this.md = md;
    }
    return this.md;
  }

  getPeer(): string {
    const socket = this.stream.session?.socket;
    if (socket?.remoteAddress === undefined) return 'unknown';
    return socket.remotePort === undefined ? socket.remoteAddress : `${socket.remoteAddress}:${socket.remotePort}`;
  }

  sendMetadata(responseMetadata: grpc.Metadata): void {
    if (!this.answered) this.responseMetadata = responseMetadata;
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
    throw new Error('fulcrum: per-request metric recording is not available to unary handlers');
  }
}
