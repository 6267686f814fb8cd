// What a fast-path call (fast-call.ts and its kinds) needs from the HTTP/2 stream it answers on, so that the same
// calls can run over Node's http2 (NodeCallTransport, below) and over Fulcrum's own engine (node/h2/), whose
// H2Stream and StreamListener (node/h2/connection.ts) this interface maps onto one to one:
//
//   CallTransport                        NodeCallTransport (http2.ServerHttp2Stream)     over an H2Stream
//   attach(sink)                         listeners on the stream                         the StreamListener returned to the connection forwards to sink
//   respond(metadata)                    respond(headers, { waitForTrailers })           respond(fields, false)
//   write(bytes) -> boolean              write(bytes)                                    write(bytes)
//   end(status, data?)                   end(data) + trailers (joined when it can)       write(data); end(trailers)
//   endTrailersOnly(status)              respond(headers + status, { endStream })        respond(fields + status, true)
//   pause(), resume()                    pause(), resume()                               pause(), resume()
//   bufferedBytes                        writableLength                                  queuedBytes
//   open                                 !destroyed && !closed                           !closed
//   peerSocket                           session.socket                                  the connection's socket, from the server glue
//   sink.onRequestData / onRequestEnd    'data' / 'end'                                  data(bytes, endStream)
//   sink.onWritable                      'drain'                                         writable()
//   sink.onTransportClose(code)          'close' (rstCode)                               closed(code)
//
// Events reach the call through a sink the call passes in: the call object itself, not closures made per call.
// Why: Node 20 keeps a closed HTTP/2 stream through every young-generation collection until the next full one, and
// whatever that stream still references is promoted with it (ignoreStreamError, below). The Node transport's
// listeners are module-level functions that find the sink through one property on the stream, which detach()
// clears; so a call costs one small transport object on top of itself, and a closed stream reaches nothing of it.
import type * as http2 from 'node:http2';
import type * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';

export const CONTENT_TYPE = 'application/grpc+proto';
/** The response headers grpc-js sends before a call's first message. */
export const RESPONSE_HEADERS = { ':status': 200, 'content-type': CONTENT_TYPE, 'grpc-accept-encoding': 'identity,deflate,gzip', 'grpc-encoding': 'identity' } as const;

/** How a call ends: grpc-status, grpc-message (sent percent-encoded) and the trailing metadata. */
export interface CallStatus {
  readonly code: grpc.status;
  readonly details: string;
  readonly metadata?: grpc.Metadata | null | undefined;
}

/** The status of a call that succeeded without trailing metadata: nearly every call's. */
export const OK_STATUS: CallStatus = Object.freeze({ code: grpc.status.OK, details: 'OK', metadata: undefined });

/**
 * What a call hears from its transport; the call implements it. No event is delivered during attach() itself, and
 * none after onTransportClose() or detach().
 */
export interface CallSink {
  /** Request body bytes, in order, as they arrive (gRPC frames may be split or packed any way). */
  onRequestData(chunk: Buffer): void;
  /**
   * The request side ended: no request bytes follow. Over Node's http2 this also comes when the stream is reset,
   * with the transport no longer open; onTransportClose follows then.
   */
  onRequestEnd(): void;
  /** After write() returned false, the transport has written out what it held (or enough of it). */
  onWritable(): void;
  /**
   * The exchange is over, once: `resetCode` 0 (NO_ERROR) when both sides ended it, else the RST_STREAM code. True
   * when the handler is still running (it will call handlerDone() when it returns).
   */
  onTransportClose(resetCode: number): boolean;
}

/** One gRPC exchange's HTTP/2 stream, as the fast path's calls use it. Operations after it closed do nothing. */
export interface CallTransport {
  /** Start delivering the exchange's events to `sink` (and reading the request). Once per transport. */
  attach(sink: CallSink): void;
  /** Stop delivering events and drop every reference from the stream to the sink (the call is over). */
  detach(): void;
  /**
   * The handler that was still running when the transport closed has returned. Fulcrum's engine counts the stream
   * against the connection's stream limit until then (rapid reset: node/h2/connection.ts); Node's http2 does not.
   */
  handlerDone(): void;
  /** The response headers (RESPONSE_HEADERS after `metadata`), once, before any data; trailers will follow. */
  respond(metadata: grpc.Metadata | undefined): void;
  /**
   * Queue response bytes (whole gRPC frames). false when the caller should wait for onWritable(); a transport
   * returns false at least whenever bufferedBytes is WRITE_BUFFER_BYTES_MAX (fast-stream.ts) or more afterwards.
   */
  write(bytes: Buffer): boolean;
  /** End the response after what was written and `data` (if any), with trailers carrying `status`. After respond(). */
  end(status: CallStatus, data?: Buffer): void;
  /** A trailers-only response carrying `status`: the call failed before sending anything. Instead of respond(). */
  endTrailersOnly(status: CallStatus): void;
  /** Stop reading the request (HTTP/2 flow control then holds the client) until resume(). */
  pause(): void;
  resume(): void;
  /** Response bytes written and not yet handed to the network. */
  readonly bufferedBytes: number;
  /** Whether anything sent can still reach the client. */
  readonly open: boolean;
  /** The connection's socket (a TLSSocket over TLS), for the call's peer address and TLS identity. */
  readonly peerSocket: net.Socket | undefined;
}

/** A call's status as headers (trailers, or a trailers-only answer): the metadata, grpc-status, grpc-message. */
export function statusHeaders(status: CallStatus): http2.OutgoingHttpHeaders {
  return { ...status.metadata?.toHttp2Headers(), 'grpc-status': String(status.code), 'grpc-message': encodeURI(status.details) };
}

// ---------------------------------------------------------------------------------------------------------
// Over Node's http2
// ---------------------------------------------------------------------------------------------------------

/** The sink of the call a Node stream serves, on the stream itself; null once the call has detached. */
const kSink = Symbol('fulcrum.callSink');

interface SinkCarrier extends http2.ServerHttp2Stream {
  [kSink]?: CallSink | null;
}

/**
 * The calls' 'error' listener, at module level on purpose. Node 20 keeps each HTTP/2 stream alive through every
 * scavenge until the next mark-compact (a modified wrapper object behind a weak handle, which V8 reclaims only in a
 * full collection), so everything a closed stream references is copied and promoted to the old generation. A
 * closure made inside a call's method shares that method's context, and with it the call, its request and its
 * answer: such a listener, never removed, promoted whole calls. Measured at 100 puts in flight (docs/performance.md):
 * the leader promoted about a fifth of what it allocated before this and detach(), about an eighth after.
 * Errors on the stream (a reset, a write after the peer left) end in 'close', which is handled there.
 */
const ignoreStreamError = (): void => {};

// The other listeners, at module level for the same reason: `this` is the stream, which carries the sink.
function onNodeData(this: SinkCarrier, chunk: Buffer): void {
  this[kSink]?.onRequestData(chunk);
}

function onNodeEnd(this: SinkCarrier): void {
  this[kSink]?.onRequestEnd();
}

function onNodeDrain(this: SinkCarrier): void {
  this[kSink]?.onWritable();
}

function onNodeClose(this: SinkCarrier): void {
  this[kSink]?.onTransportClose(this.rstCode ?? 0);
}

/** A call's exchange over one of Node's HTTP/2 streams. */
export class NodeCallTransport implements CallTransport {
  /** 'drain' is listened to from the first write() that returned false: unary calls never write that way. */
  private drainListened = false;

  constructor(readonly stream: http2.ServerHttp2Stream) {}

  attach(sink: CallSink): void {
    const stream = this.stream as SinkCarrier;
    stream[kSink] = sink;
    stream.on('error', ignoreStreamError);
    stream.on('close', onNodeClose);
    stream.on('data', onNodeData);
    stream.on('end', onNodeEnd);
  }

  /**
   * Remove the call's listeners and its sink from the stream. Why: Node keeps a closed HTTP/2 stream reachable
   * through every young-generation collection until the next full one (see ignoreStreamError), so whatever the
   * stream still references is copied and promoted with it. (The 'error' and 'close' listeners stay: module-level
   * functions that reach nothing once the sink is gone.)
   */
  detach(): void {
    const stream = this.stream as SinkCarrier;
    stream[kSink] = null;
    stream.removeListener('data', onNodeData);
    stream.removeListener('end', onNodeEnd);
    if (this.drainListened) stream.removeListener('drain', onNodeDrain);
  }

  handlerDone(): void {
    // Node's http2 forgets a stream when it closes; nothing counts the handler's work.
  }

  respond(metadata: grpc.Metadata | undefined): void {
    this.stream.respond({ ...metadata?.toHttp2Headers(), ...RESPONSE_HEADERS }, { waitForTrailers: true });
  }

  write(bytes: Buffer): boolean {
    if (this.stream.write(bytes)) return true;
    if (!this.drainListened) {
      this.drainListened = true;
      this.stream.on('drain', onNodeDrain);
    }
    return false;
  }

  end(status: CallStatus, data?: Buffer): void {
    const stream = this.stream;
    if (status.code === grpc.status.OK && status.details === 'OK' && (status.metadata === undefined || status.metadata === null) && endJoinedWithOk(stream, data)) return;
    stream.once('wantTrailers', () => stream.sendTrailers(statusHeaders(status)));
    if (data === undefined) stream.end();
    else stream.end(data);
  }

  endTrailersOnly(status: CallStatus): void {
    this.stream.respond({ ...statusHeaders(status), ':status': 200, 'content-type': CONTENT_TYPE }, { endStream: true });
  }

  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }

  get bufferedBytes(): number {
    return this.stream.writableLength;
  }

  get open(): boolean {
    return !this.stream.destroyed && !this.stream.closed;
  }

  get peerSocket(): net.Socket | undefined {
    return this.stream.session?.socket;
  }
}

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
