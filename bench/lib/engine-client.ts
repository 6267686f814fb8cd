// The load generator's unary etcd v3 calls over Fulcrum's own HTTP/2 client machine (node/h2/client.ts) instead
// of grpc-js: the same gRPC bytes on the wire, a small part of the CPU.
//
// Why: the generator is one Node process on the same two cores as the six members it measures. With grpc-js it
// spent ~0.17 ms of CPU per put (0.8 of a core at 100 in flight) and its event loop ran 15-23 ms late at the
// median, so at 100 in flight the rates were its own limit and most of each latency was its own queueing (a
// response waits in the socket until the loop has answered the ninety-nine before it). `npm run bench:tail`
// against both systems, thirty-fifth session: ~0.012-0.016 ms per put with this client. docs/performance.md.
//
//   EngineChannel    one endpoint: a TCP connection at a time, dialled again once the last has gone; calls past
//                    the streams it may open wait in a bounded queue; one timer sweeps the deadlines.
//   UnaryCall        one call: its request framed as gRPC's length-prefixed message, its answer or its status.
//
// Plain TCP only (the benchmark's clusters listen without TLS). Errors carry `code` and `details` as grpc-js's
// ServiceError does, so the phases count them by kind the same way (clients.ts errorKey).
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { ClientConnection, type ClientStream } from '../../node/h2/client.js';
import { ErrorCode } from '../../node/h2/frames.js';
import type { HeaderField } from '../../node/h2/hpack.js';
import { writeCorked } from '../../node/transport/engine-send.js';

export const ENGINE_CHANNEL_LIMITS = Object.freeze({
  /** Streams we open at once on one connection (the server's SETTINGS may lower it): above any workload's calls per connection. */
  streamsMax: 1_024,
  /** Calls waiting for a stream; past it a call fails RESOURCE_EXHAUSTED at once. */
  waitingCallsMax: 100_000,
  /** A response message's bytes (grpc-js's default receive limit is the same 4 MiB). */
  responseBytesMax: 4 * 1024 * 1024,
  /** Receive windows: 1 MiB per stream, 16 MiB per connection, so that a Range answer is never held on credit. */
  streamWindowBytes: 1024 * 1024,
  connectionWindowBytes: 16 * 1024 * 1024,
  /** How often the deadlines are checked: a late call fails at most this much after its deadline. */
  deadlineSweepMs: 50,
});

/**
 * PING and SETTINGS frames the server may make us answer. grpc-go's server (etcd) sends a PING to estimate the
 * bandwidth-delay product whenever data arrives and none is outstanding, so many per second under load; the
 * budget is there against a hostile peer, which a benchmark's own cluster is not.
 */
const CONTROL_BUDGET = Object.freeze({ burst: 1_000_000, perSecond: 1_000_000 });
const GRPC_HEADER_BYTES = 5;

/** A method as grpc-js's service definitions give it (proto/index.ts): its path and its codecs. */
export interface UnaryMethod<Q, R> {
  readonly path: string;
  readonly requestSerialize: (request: Q) => Buffer;
  readonly responseDeserialize: (bytes: Buffer) => R;
}

/** A failed call, shaped like grpc-js's ServiceError (code, details). */
export class CallError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(`${code} ${grpc.status[code] ?? ''}: ${details}`);
    this.name = 'CallError';
  }
}

/** One unary call: request out, then the response message and the status in the trailers. */
class UnaryCall {
  stream: ClientStream | undefined;
  private readonly parts: Buffer[] = [];
  private received = 0;
  private status: string | undefined;
  private message = '';
  done = false;

  constructor(
    readonly body: Buffer,
    readonly deadline: number,
    private readonly resolve: (message: Buffer) => void,
    private readonly reject: (error: CallError) => void,
  ) {}

  headers(fields: Record<string, string>, endStream: boolean): void {
    const status = fields['grpc-status'];
    if (status !== undefined) {
      this.status = status;
      this.message = decodeMessage(fields['grpc-message'] ?? '');
    }
    if (endStream) this.end();
  }

  data(bytes: Buffer, endStream: boolean): void {
    if (bytes.length > 0 && !this.done) {
      this.received += bytes.length;
      if (this.received > ENGINE_CHANNEL_LIMITS.responseBytesMax + GRPC_HEADER_BYTES) {
        // Failed first: the reset closes the stream at once, and its closed() would fail the call as UNAVAILABLE.
        this.fail(grpc.status.RESOURCE_EXHAUSTED, `response larger than ${ENGINE_CHANNEL_LIMITS.responseBytesMax} bytes`);
        this.stream?.reset(ErrorCode.CANCEL);
        return;
      }
      // Only valid during the call: kept, so copied.
      this.parts.push(Buffer.from(bytes));
    }
    if (endStream) this.end();
  }

  closed(code: number, reason: string): void {
    this.fail(grpc.status.UNAVAILABLE, `stream closed (HTTP/2 code ${code}): ${reason}`);
  }

  fail(code: grpc.status, details: string): void {
    if (this.done) return;
    this.done = true;
    this.reject(new CallError(code, details));
  }

  private end(): void {
    if (this.done) return;
    if (this.status === undefined) return this.fail(grpc.status.UNKNOWN, 'the server ended its response without a status');
    const code = Number(this.status);
    if (code !== grpc.status.OK) return this.fail(Number.isInteger(code) ? code : grpc.status.UNKNOWN, this.message);
    const all = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    if (all.length < GRPC_HEADER_BYTES || all[0] !== 0 || all.readUInt32BE(1) !== all.length - GRPC_HEADER_BYTES) {
      return this.fail(grpc.status.INTERNAL, `not one uncompressed gRPC message (${all.length} bytes)`);
    }
    this.done = true;
    this.resolve(all.subarray(GRPC_HEADER_BYTES));
  }
}

/** gRPC percent-encodes grpc-message; a malformed escape is shown as it came. */
function decodeMessage(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function grpcFrame(body: Buffer): Buffer[] {
  const header = Buffer.allocUnsafe(GRPC_HEADER_BYTES);
  header[0] = 0;
  header.writeUInt32BE(body.length, 1);
  return [header, body];
}

/** A socket and the client machine on it, with the calls it carries. */
class EngineConnection {
  readonly h2: ClientConnection;
  readonly socket: net.Socket;
  readonly calls = new Set<UnaryCall>();
  private flushQueued = false;
  private failure: string | undefined;
  private settingsWaiters: Array<(error?: Error) => void> = [];

  constructor(
    host: string,
    port: number,
    private readonly onIdle: () => void,
    private readonly onGone: () => void,
  ) {
    this.socket = net.connect({ host, port });
    this.socket.setNoDelay(true);
    this.h2 = new ClientConnection(
      { output: () => this.queueFlush(), closed: (error) => this.onMachineClosed(error?.message) },
      {
        limits: {
          concurrentStreamsMax: ENGINE_CHANNEL_LIMITS.streamsMax,
          streamWindowBytes: ENGINE_CHANNEL_LIMITS.streamWindowBytes,
          connectionWindowBytes: ENGINE_CHANNEL_LIMITS.connectionWindowBytes,
          frameBytesMax: 1024 * 1024,
          controlBudget: CONTROL_BUDGET,
        },
      },
    );
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (e: Error) => (this.failure ??= e.message));
    this.socket.once('close', () => this.onSocketClosed());
  }

  /** Resolves once the server's SETTINGS came (its preface), rejects if the connection goes first. */
  settled(): Promise<void> {
    if (this.h2.peerSettingsSeen) return Promise.resolve();
    if (this.h2.closed) return Promise.reject(new Error(this.failure ?? 'connection closed'));
    return new Promise((resolve, reject) => this.settingsWaiters.push((e) => (e ? reject(e) : resolve())));
  }

  start(call: UnaryCall, request: readonly HeaderField[]): void {
    this.calls.add(call);
    call.stream = this.h2.request(request, {
      headers: (f, end) => call.headers(f, end),
      data: (b, end) => call.data(b, end),
      drained: () => {},
      closed: (code, reason) => {
        call.closed(code, reason);
        this.calls.delete(call);
        this.onIdle();
      },
    });
    call.stream.write(grpcFrame(call.body));
    call.stream.end();
  }

  get usable(): boolean {
    return !this.h2.closed && !this.socket.destroyed;
  }

  close(): void {
    this.failure ??= 'channel closed';
    this.h2.fail(ErrorCode.NO_ERROR, 'channel closed');
  }

  private onData(chunk: Buffer): void {
    try {
      this.h2.receive(chunk);
    } catch (e) {
      this.failure ??= `internal error: ${e instanceof Error ? e.message : String(e)}`;
      this.socket.destroy();
      return;
    }
    if (this.h2.peerSettingsSeen) for (const w of this.settingsWaiters.splice(0)) w();
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushQueued = false;
    const chunks = this.h2.take();
    if (chunks.length === 0 || this.socket.destroyed) return;
    writeCorked(this.socket, chunks);
  }

  private onMachineClosed(message: string | undefined): void {
    if (message !== undefined) this.failure ??= message;
    this.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1_000).unref();
  }

  private onSocketClosed(): void {
    this.h2.terminate(this.failure ?? 'connection closed');
    const error = new Error(`connection closed: ${this.failure ?? 'by the server'}`);
    for (const w of this.settingsWaiters.splice(0)) w(error);
    this.onGone();
  }
}

/** Unary calls to one endpoint ('host:port') over Fulcrum's HTTP/2 client. */
export class EngineChannel {
  private connection: EngineConnection | undefined;
  private readonly waiting: UnaryCall[] = [];
  private readonly host: string;
  private readonly port: number;
  private readonly requests = new Map<string, readonly HeaderField[]>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(readonly endpoint: string) {
    const colon = endpoint.lastIndexOf(':');
    this.host = endpoint.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    this.port = Number(endpoint.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(this.port) || this.port <= 0 || this.port > 65_535) throw new Error(`EngineChannel: bad endpoint ${endpoint}`);
    this.sweeper = setInterval(() => this.sweepDeadlines(), ENGINE_CHANNEL_LIMITS.deadlineSweepMs);
    this.sweeper.unref();
  }

  /** Connects now and waits for the server's SETTINGS (so that connection setup is not measured). */
  async ready(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.endpoint}: no HTTP/2 SETTINGS within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.connected().settled(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  unary<Q, R>(method: UnaryMethod<Q, R>, request: Q, timeoutMs: number): Promise<R> {
    if (this.closed) return Promise.reject(new CallError(grpc.status.CANCELLED, 'channel closed'));
    return new Promise<Buffer>((resolve, reject) => {
      const call = new UnaryCall(method.requestSerialize(request), Date.now() + timeoutMs, resolve, reject);
      if (this.waiting.length > 0 || !this.tryStart(call, method.path)) this.wait(call, method.path);
    }).then((bytes) => method.responseDeserialize(bytes));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const call of this.waiting.splice(0)) call.fail(grpc.status.CANCELLED, 'channel closed');
    this.connection?.close();
    this.connection = undefined;
  }

  /** Calls waiting for a stream, with the path each will use. */
  private readonly waitingPaths = new WeakMap<UnaryCall, string>();

  private wait(call: UnaryCall, path: string): void {
    if (this.waiting.length >= ENGINE_CHANNEL_LIMITS.waitingCallsMax) {
      return call.fail(grpc.status.RESOURCE_EXHAUSTED, `more than ${ENGINE_CHANNEL_LIMITS.waitingCallsMax} calls waiting for a stream`);
    }
    this.waitingPaths.set(call, path);
    this.waiting.push(call);
  }

  private tryStart(call: UnaryCall, path: string): boolean {
    const connection = this.connected();
    if (!connection.h2.canOpen) return false;
    connection.start(call, this.requestFields(path));
    return true;
  }

  /** The live connection, or a new one when there is none or the last can open no more streams and carries none. */
  private connected(): EngineConnection {
    const c = this.connection;
    if (c !== undefined && c.usable && (c.h2.canOpen || c.calls.size > 0)) return c;
    c?.close();
    const next: EngineConnection = new EngineConnection(
      this.host,
      this.port,
      () => this.startWaiting(),
      () => {
        for (const call of next.calls) call.fail(grpc.status.UNAVAILABLE, 'connection closed');
        next.calls.clear();
        if (this.connection === next) this.connection = undefined;
        if (!this.closed) this.startWaiting();
      },
    );
    this.connection = next;
    return next;
  }

  /** A stream closed (or a connection went): start as many waiting calls as there are streams for. */
  private startWaiting(): void {
    while (this.waiting.length > 0) {
      const call = this.waiting[0]!;
      if (call.done) {
        this.waiting.shift();
        continue;
      }
      if (!this.tryStart(call, this.waitingPaths.get(call)!)) return;
      this.waiting.shift();
    }
  }

  private sweepDeadlines(): void {
    const now = Date.now();
    for (const call of this.waiting) if (now >= call.deadline) call.fail(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded');
    for (const call of this.connection?.calls ?? []) {
      if (now < call.deadline) continue;
      call.fail(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded');
      call.stream?.reset(ErrorCode.CANCEL);
    }
  }

  private requestFields(path: string): readonly HeaderField[] {
    let fields = this.requests.get(path);
    if (fields === undefined) {
      fields = Object.freeze([
        { name: ':method', value: 'POST' },
        { name: ':scheme', value: 'http' },
        { name: ':path', value: path },
        { name: ':authority', value: this.endpoint },
        { name: 'content-type', value: 'application/grpc' },
        { name: 'te', value: 'trailers' },
        { name: 'user-agent', value: 'fulcrum-bench' },
      ]);
      this.requests.set(path, fields);
    }
    return fields;
  }
}
