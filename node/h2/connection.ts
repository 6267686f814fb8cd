// The server side of one HTTP/2 connection (RFC 9113) as a pure state machine: bytes in (receive), frames out
// (take), and events to the layer above (the gRPC calls). It owns everything about the connection that needs
// state: the preface and the SETTINGS exchange, stream states and id rules, HPACK's two tables, flow control both
// ways, PING, GOAWAY, and the limits that keep one peer from taking more than its share (flood limits).
//
// It does no I/O and sets no timers: the socket glue (node/h2/server.ts) pushes what the socket reads, writes what
// take() returns whenever output() is signalled, and runs the timers (keepalive PINGs, the SETTINGS ACK deadline)
// by calling ping() and fail(). Time enters only through `now`, for the flood limits' rates, so a transcript test
// can drive every path with a clock of its own.
//
// Worked example, a unary gRPC call (client frames on the left, ours on the right):
//
//   preface, SETTINGS                          SETTINGS (ours, queued at construction), WINDOW_UPDATE 0
//                                              SETTINGS ACK
//   HEADERS 1 end_headers                      -> events.stream(stream 1): open
//   DATA 1 end_stream                          -> listener.data(body, true): half-closed (remote)
//                                              respond(): HEADERS 1; write(): DATA 1; end(trailers): HEADERS 1
//                                              end_stream -> both sides ended: listener.closed(NO_ERROR)
//
// Closed streams are not kept: a stream id at or below the highest the client used that is not open is closed
// (RFC 9113 5.1.1: using an id closes every idle one below it). Streams never linger half-closed (local): once our
// END_STREAM is out, the stream closes, with RST_STREAM NO_ERROR if the request had not ended (8.1). Only the ids
// of the last streams we sent RST_STREAM for are remembered, because the client may have sent more on them before
// reading it: that DATA and those trailers are dropped (5.1, "closed"), where on any other closed stream they are
// a STREAM_CLOSED error.

import {
  connectionError,
  DEFAULT_HEADER_TABLE_SIZE,
  DEFAULT_INITIAL_WINDOW_SIZE,
  DEFAULT_MAX_FRAME_SIZE,
  ErrorCode,
  Flag,
  type Frame,
  FrameReader,
  FrameType,
  frameTypeName,
  FrameWriter,
  H2Error,
  MAX_FRAME_SIZE_LIMIT,
  MAX_WINDOW_SIZE,
  parseData,
  parseGoaway,
  parseHeaders,
  parsePing,
  parsePriority,
  parseRstStream,
  parseSettings,
  parseWindowUpdate,
  type PriorityFields,
  rejectPushPromise,
  SettingId,
  STREAM_ID_MAX,
  streamError,
} from './frames.js';
import { fieldBytes, type HeaderField, HpackDecoder, HpackEncoder, HpackError } from './hpack.js';
import { ConnectionCreditQueue, ConnectionReceiveWindow, HeaderBlockAssembler, moveSendWindows } from './both-ends.js';

/** Our side's settings and the limits on what a peer may make us hold. Every field has a default (CONNECTION_DEFAULTS). */
export interface ConnectionLimits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams the peer may have open at once; a stream beyond is refused (REFUSED_STREAM). */
  readonly concurrentStreamsMax: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE: request bytes a stream may send before we give credit. At least 65,535. */
  readonly streamWindowBytes: number;
  /** The connection's receive window, raised from 65,535 by a WINDOW_UPDATE right after our SETTINGS. At least 65,535. */
  readonly connectionWindowBytes: number;
  /** SETTINGS_MAX_FRAME_SIZE: the largest frame payload we accept. */
  readonly frameBytesMax: number;
  /** SETTINGS_HEADER_TABLE_SIZE: our HPACK decoder's dynamic table. */
  readonly headerTableBytes: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: a request's decoded header list; beyond it the stream is refused. */
  readonly headerListBytesMax: number;
  /** A header block's encoded bytes across HEADERS and its CONTINUATIONs; beyond it the connection fails (ENHANCE_YOUR_CALM). */
  readonly headerBlockBytesMax: number;
  /** CONTINUATION frames one header block may take; beyond it the connection fails (ENHANCE_YOUR_CALM). */
  readonly continuationFramesMax: number;
  /** Response bytes a stream may have queued (waiting for flow-control credit) before write() returns false. */
  readonly streamSendQueueBytes: number;
  // Flood limits: token buckets of `burst` tokens refilled at `perSecond`; a frame without a token fails the
  // connection with GOAWAY ENHANCE_YOUR_CALM.
  /**
   * Rapid reset (CVE-2023-44487): streams the peer reset whose work was still going on when the next bytes arrived
   * (their listener's closed() returned true and done() had not come yet), and streams we refuse or reset for an
   * error. A reset whose work stops at once costs nothing, as a finished call costs nothing.
   */
  readonly resetBudget: RateBudget;
  /** PING and SETTINGS frames we must answer (CVE-2019-9512, CVE-2019-9515). */
  readonly controlBudget: RateBudget;
  /**
   * Frames that carry nothing: empty DATA without END_STREAM, empty CONTINUATION, PRIORITY, WINDOW_UPDATE to closed
   * streams, header blocks on streams we reset (CVE-2019-9518).
   */
  readonly emptyFrameBudget: RateBudget;
}

export interface RateBudget {
  readonly burst: number;
  readonly perSecond: number;
}

export interface ConnectionOptions {
  readonly limits?: Partial<ConnectionLimits>;
  /** Milliseconds, for the flood limits' rates: Date.now by default, a test's own clock in transcript tests. */
  readonly now?: () => number;
}

/** How shutdown() ends the connection. */
export interface ShutdownOptions {
  /**
   * RFC 9113 6.8's graceful shutdown in two steps, for a client that may be opening streams as we decide to go:
   * first GOAWAY NO_ERROR with the last stream id 2^31-1 (no stream is refused yet, but the client opens no
   * more) and a PING; then, on the PING's ACK (a round trip later, so every stream the client opened before it
   * read the first GOAWAY has arrived), the real GOAWAY with the last stream processed, after which the
   * connection drains as with a plain shutdown(). The state machine sets no timers: for a client that never
   * answers, the caller calls shutdown() without twoStep after a timeout, which sends the real GOAWAY at once.
   * Without twoStep (the default) the real GOAWAY goes at once.
   */
  readonly twoStep?: boolean;
}

/** What the layer above is told about the connection. */
export interface ConnectionEvents {
  /**
   * A request's header block arrived and opened a stream. `headers` has no prototype and follows Node's
   * IncomingHttpHeaders: pseudo-headers included, repeated names joined with ', ' (cookie with '; ').
   * `endStream`: the request has no body (no data() follows). Returns the stream's listener.
   */
  stream(stream: H2Stream, headers: Record<string, string>, endStream: boolean): StreamListener;
  /** There are frames to take(): signalled once until the next take(). */
  output(): void;
  /**
   * The connection is over: a connection error (GOAWAY sent, `error` set), the peer's GOAWAY or our shutdown() with
   * no stream left, or terminate(). Called once, after every stream's closed(). Take the last output, write it and
   * end the socket.
   */
  closed(error: ConnectionError | undefined): void;
  /** The ACK of a PING we sent with ping(). */
  pingAcknowledged?(opaqueData: Buffer): void;
}

/** What a stream's owner is told. */
export interface StreamListener {
  /** Request body bytes, in order; `endStream` on the last (which may be empty). Only valid during the call. */
  data(bytes: Buffer, endStream: boolean): void;
  /** Credit arrived and the stream's send queue fell below streamSendQueueBytes after write() returned false. */
  writable(): void;
  /**
   * The stream closed, once: NO_ERROR when both sides ended it, else the RST_STREAM code (the peer's, or ours on a
   * stream error) or the connection's error code. Nothing written afterwards is sent.
   *
   * Return true when work for the stream goes on after it closed (a handler still running that will learn of the
   * close later): the stream then keeps counting against concurrentStreamsMax until H2Stream.done(). The client no
   * longer counts it, so it may open a stream we refuse (REFUSED_STREAM); that is what bounds the work a client
   * can leave running by resetting streams and opening new ones (rapid reset).
   */
  closed(code: number): boolean | void;
}

/** A connection error, as sent in GOAWAY. */
export interface ConnectionError {
  readonly code: number;
  readonly message: string;
}

/** One request/response exchange. Methods called after the stream closed do nothing (write() returns false). */
export interface H2Stream {
  readonly id: number;
  /**
   * Response headers, once, before any data; `endStream` for a trailers-only answer. Headers (or trailers, at
   * end()) past the client's SETTINGS_MAX_HEADER_LIST_SIZE are not sent: the stream is reset with INTERNAL_ERROR.
   */
  respond(fields: readonly HeaderField[], endStream: boolean): void;
  /**
   * Queue response bytes; false when the queue holds streamSendQueueBytes or more (wait for writable()). The
   * bytes are sent as they are, not copied: they must not change after the call.
   */
  write(bytes: Buffer): boolean;
  /** End the response after the queued bytes: with trailers (HEADERS + END_STREAM) or an empty END_STREAM DATA. */
  end(trailers?: readonly HeaderField[]): void;
  /** RST_STREAM with `code`; the stream closes at once. */
  reset(code: number): void;
  /** The work that the listener's closed() said went on is over: the stream stops counting against the limit. */
  done(): void;
  /** Stop giving the peer credit for this stream's data until resume(): at most one window more arrives. */
  pause(): void;
  resume(): void;
  /** Response bytes queued and not yet framed (waiting for credit). */
  readonly queuedBytes: number;
  readonly closed: boolean;
}


/**
 * The defaults, each with its reason. The server passes --max-concurrent-streams for concurrentStreamsMax; the
 * rest are rarely worth changing.
 */
export const CONNECTION_DEFAULTS: ConnectionLimits = Object.freeze({
  /**
   * 1000: far more calls than one client runs at once in practice (etcd clients multiplex everything on one
   * connection, and a watch stream carries many watches), while bounding what one connection can make us hold.
   * A client at the limit waits for a stream to finish (nghttp2 and grpc-js honour the setting).
   */
  concurrentStreamsMax: 1000,
  /** 1 MiB: a large put streams at full speed over a link of 100 ms round trip at 10 MB/s without stalling. */
  streamWindowBytes: 1024 * 1024,
  /** 8 MiB: several large requests at once at full speed; it bounds the request bytes one connection buffers. */
  connectionWindowBytes: 8 * 1024 * 1024,
  /** 16 KiB, the protocol's default: what peers send anyway, and the most the reader buffers for one frame. */
  frameBytesMax: DEFAULT_MAX_FRAME_SIZE,
  /** 4096, the protocol's default: gRPC's repeated metadata fits, and no SETTINGS change can race a block. */
  headerTableBytes: DEFAULT_HEADER_TABLE_SIZE,
  /** 64 KiB: gRPC metadata (tokens, tracing) is far smaller; it bounds one request's decoded headers. */
  headerListBytesMax: 64 * 1024,
  /**
   * 128 KiB: twice the decoded limit, as an encoded block can be larger than its list only by a little (literal
   * length prefixes), so a block past it can only be an attack on the assembly buffer.
   */
  headerBlockBytesMax: 128 * 1024,
  /** 64: a block of 128 KiB needs 8 CONTINUATIONs of 16 KiB; more means tiny frames (the CONTINUATION flood). */
  continuationFramesMax: 64,
  /** 256 KiB: a few frames' worth past the window, so a response streams without waiting on the caller. */
  streamSendQueueBytes: 256 * 1024,
  /**
   * 1000 at once, 100 a second: a client cancelling calls on deadlines stays far below it; rapid reset needs
   * thousands a second to hurt. (nghttp2 allows 1000 at once and 33 a second.)
   */
  resetBudget: Object.freeze({ burst: 1000, perSecond: 100 }),
  /** 1000 at once, 100 a second: keepalive PINGs come every few seconds at most, SETTINGS once or twice. */
  controlBudget: Object.freeze({ burst: 1000, perSecond: 100 }),
  /** 1000 at once, 100 a second: well-behaved clients send next to none of these frames. */
  emptyFrameBudget: Object.freeze({ burst: 1000, perSecond: 100 }),
});

/** SETTINGS values are 32-bit. */
const SETTING_VALUE_MAX = 2 ** 32 - 1;
/** HPACK sizes are held to 31 bits by the codec. */
const HPACK_SIZE_MAX = 2 ** 31 - 1;
/** GOAWAY debug data we send: enough for a sentence, so a peer's logs say why. */
const DEBUG_MESSAGE_BYTES_MAX = 256;
/** Spent entries at the head of a send queue before it is compacted: rare, cheap, and keeps memory bounded. */
const QUEUE_COMPACT_MIN = 64;
/**
 * Streams we sent RST_STREAM for that are remembered, so that what the peer sent before it read our RST_STREAM is
 * dropped rather than answered (RFC 9113 5.1). Twice the default concurrentStreamsMax: every open stream can be
 * ended early at once (a leader change ending every watch) with room for as many refused. Frames arrive within a
 * round trip of the reset, so an id that has left the list is one the peer had plenty of time to stop using.
 */
const RESET_STREAMS_REMEMBERED = 2048;
/**
 * Runs of stream ids a client skipped that are remembered, to answer a HEADERS on one of them with PROTOCOL_ERROR (an
 * unexpected id, RFC 9113 5.1.1) rather than STREAM_CLOSED (a stream that was used and closed). Clients count ids
 * up by two, so there are seldom any; past this many the oldest are forgotten, and a HEADERS on one of those gets
 * STREAM_CLOSED: a connection error either way.
 */
const SKIPPED_ID_RUNS_REMEMBERED = 64;
const EMPTY = Buffer.alloc(0);
/** The opaque data of a two-step shutdown's PING, to know its ACK from those of the layer above's PINGs. */
const SHUTDOWN_PING_DATA = Buffer.from('goaway:2', 'latin1');

/** `defaults` with `partial`'s fields over them; RangeError for a field the defaults do not have. */
export function mergeLimits<T extends object>(defaults: T, partial: Partial<T>, what: string): T {
  const merged: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [key, value] of Object.entries(partial)) {
    if (!(key in defaults)) throw new RangeError(`unknown ${what} ${key}`);
    if (value !== undefined) merged[key] = value;
  }
  return merged as T;
}

/** The limits with defaults filled in, checked and frozen. RangeError for a bad or unknown field. */
export function validateLimits(partial: Partial<ConnectionLimits> = {}): ConnectionLimits {
  const limits = mergeLimits(CONNECTION_DEFAULTS, partial, 'connection limit');
  checkInteger('concurrentStreamsMax', limits.concurrentStreamsMax, 0, SETTING_VALUE_MAX);
  checkInteger('streamWindowBytes', limits.streamWindowBytes, DEFAULT_INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE);
  checkInteger('connectionWindowBytes', limits.connectionWindowBytes, DEFAULT_INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE);
  checkInteger('frameBytesMax', limits.frameBytesMax, DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT);
  checkInteger('headerTableBytes', limits.headerTableBytes, 0, HPACK_SIZE_MAX);
  checkInteger('headerListBytesMax', limits.headerListBytesMax, 0, SETTING_VALUE_MAX);
  checkInteger('headerBlockBytesMax', limits.headerBlockBytesMax, 1, Number.MAX_SAFE_INTEGER);
  checkInteger('continuationFramesMax', limits.continuationFramesMax, 0, Number.MAX_SAFE_INTEGER);
  checkInteger('streamSendQueueBytes', limits.streamSendQueueBytes, 1, Number.MAX_SAFE_INTEGER);
  for (const name of ['resetBudget', 'controlBudget', 'emptyFrameBudget'] as const) checkBudget(name, limits[name]);
  return Object.freeze(limits);
}

export function checkBudget(name: string, budget: RateBudget | undefined): void {
  checkInteger(`${name}.burst`, budget?.burst, 1, Number.MAX_SAFE_INTEGER);
  const perSecond = budget!.perSecond;
  if (typeof perSecond !== 'number' || !Number.isFinite(perSecond) || perSecond < 0) {
    throw new RangeError(`${name}.perSecond must be a finite number >= 0, got ${perSecond}`);
  }
}

export function checkInteger(name: string, value: unknown, min: number, max: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
}

/** The runs of odd ids a client skipped when it opened a stream above the next one, the last `capacity` of them. */
class SkippedIds {
  private readonly runs: Array<readonly [number, number]> = [];

  constructor(private readonly capacity: number) {}

  /** The client opened `opened` when the highest id it had used was `highest`. */
  opened(highest: number, opened: number): void {
    const next = highest === 0 ? 1 : highest + 2;
    if (opened <= next) return;
    if (this.runs.length === this.capacity) this.runs.shift();
    this.runs.push([next, opened - 2]);
  }

  has(id: number): boolean {
    return this.runs.some(([from, to]) => id >= from && id <= to);
  }
}

/**
 * The last `capacity` ids added, in a ring: adding and looking up are O(1), and memory stays bounded whatever
 * the peer does.
 */
class RecentIds {
  private readonly ids = new Set<number>();
  /** Grown up to `capacity` as ids arrive, then overwritten oldest first: most connections reset few streams. */
  private readonly ring: number[] = [];
  private next = 0;

  constructor(private readonly capacity: number) {}

  add(id: number): void {
    if (this.ids.has(id)) return;
    if (this.ring.length < this.capacity) {
      this.ring.push(id);
    } else {
      this.ids.delete(this.ring[this.next]!);
      this.ring[this.next] = id;
      this.next = (this.next + 1) % this.capacity;
    }
    this.ids.add(id);
  }

  has(id: number): boolean {
    return this.ids.has(id);
  }
}

/**
 * A flood limit: `burst` tokens, refilled continuously at `perSecond`; each counted frame takes one. Time comes
 * from the caller, so a test's clock drives it.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(
    private readonly budget: RateBudget,
    nowMs: number,
  ) {
    this.tokens = budget.burst;
    this.lastMs = nowMs;
  }

  take(nowMs: number): boolean {
    const elapsedMs = nowMs - this.lastMs;
    // A clock that steps back refills nothing, and the bucket waits for it to pass the last reading again.
    if (elapsedMs > 0) {
      this.tokens = Math.min(this.budget.burst, this.tokens + (elapsedMs * this.budget.perSecond) / 1000);
      this.lastMs = nowMs;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Request validation (RFC 9113 8.2 and 8.3): pure functions of the decoded fields.

export const COLON = 0x3a;
const REQUEST_PSEUDO_HEADERS = new Set([':method', ':scheme', ':path', ':authority']);
/** Fields that belong to HTTP/1.1 connections and have no meaning in HTTP/2 (8.2.2). */
const CONNECTION_SPECIFIC_FIELDS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
/** A regular field name may hold visible ASCII except uppercase and the colon (8.2.1). */
export const INVALID_NAME_CHAR = /[^\x21-\x39\x3b-\x40\x5b-\x7e]/;
/** A value may not hold NUL, CR or LF, nor start or end with whitespace (8.2.1). */
const INVALID_VALUE = /[\0\r\n]|^[ \t]|[ \t]$/;
/** content-length: digits only, and few enough that the number is exact. */
const CONTENT_LENGTH = /^[0-9]{1,15}$/;
/** No content-length field. */
const NO_CONTENT_LENGTH = -1;

/**
 * A request's headers as the layer above sees them (no prototype, pseudo-headers included, repeated names joined
 * with ', ', cookie with '; '), or why the request is malformed.
 */
export function requestHeaders(fields: readonly HeaderField[]): Record<string, string> | string {
  const headers = Object.create(null) as Record<string, string>;
  let regularSeen = false;
  for (const { name, value } of fields) {
    if (name.length === 0) return 'a field with an empty name';
    if (INVALID_VALUE.test(value)) return `the value of ${name} holds NUL, CR or LF, or starts or ends with whitespace`;
    if (name.charCodeAt(0) === COLON) {
      if (regularSeen) return `pseudo-header ${name} after a regular field`;
      if (!REQUEST_PSEUDO_HEADERS.has(name)) return `${name} is not a request pseudo-header`;
      if (headers[name] !== undefined) return `${name} appears twice`;
      headers[name] = value;
      continue;
    }
    regularSeen = true;
    const problem = regularFieldProblem(name, value);
    if (problem !== undefined) return problem;
    const previous = headers[name];
    headers[name] = previous === undefined ? value : previous + (name === 'cookie' ? '; ' : ', ') + value;
  }
  return pseudoHeadersProblem(headers) ?? headers;
}

function regularFieldProblem(name: string, value: string): string | undefined {
  if (INVALID_NAME_CHAR.test(name)) return `field name ${JSON.stringify(name)} has uppercase, a colon or a character outside visible ASCII`;
  if (CONNECTION_SPECIFIC_FIELDS.has(name)) return `connection-specific field ${name}`;
  if (name === 'te' && value !== 'trailers') return `te: ${JSON.stringify(value)}, where only "trailers" is allowed`;
  return undefined;
}

function pseudoHeadersProblem(headers: Record<string, string>): string | undefined {
  const method = headers[':method'];
  if (method === undefined) return 'no :method';
  // CONNECT (8.5) turns the stream into a tunnel; a coordination store has nothing to tunnel to.
  if (method === 'CONNECT') return 'CONNECT is not supported';
  if (headers[':scheme'] === undefined) return 'no :scheme';
  const path = headers[':path'];
  if (path === undefined) return 'no :path';
  if (path === '') return 'an empty :path';
  // Origin form starts with '/'; '*' is OPTIONS' asterisk form (8.3.1).
  if (path.charCodeAt(0) !== 0x2f && !(path === '*' && method === 'OPTIONS')) return `:path ${JSON.stringify(path)} does not start with '/'`;
  return undefined;
}

/** The content-length's value, NO_CONTENT_LENGTH when absent, or undefined when it is not one number. */
function contentLength(headers: Record<string, string>): number | undefined {
  const value = headers['content-length'];
  if (value === undefined) return NO_CONTENT_LENGTH;
  return CONTENT_LENGTH.test(value) ? Number(value) : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Streams.

/** One stream's state; the H2Stream the layer above holds. Its methods hand over to the connection. */
class Stream implements H2Stream {
  /** Null while events.stream() runs; a close meanwhile is reported when it returns. */
  listener: StreamListener | null = null;
  closed = false;
  closeCode: number = ErrorCode.NO_ERROR;
  // Receiving.
  /** END_STREAM received: half-closed (remote). */
  remoteEnded: boolean;
  /** content-length, or NO_CONTENT_LENGTH. */
  readonly contentLength: number;
  bodyBytes = 0;
  /** What the peer may still send before we credit it. */
  recvWindow: number;
  /** Bytes delivered and not yet credited back with WINDOW_UPDATE. */
  creditOwed = 0;
  paused = false;
  // Sending.
  responded = false;
  /** end() was called: END_STREAM goes out once the queue is empty. */
  ending = false;
  trailers: readonly HeaderField[] | null = null;
  sendWindow: number;
  /** Response bytes waiting for credit: queue[queueHead] from headOffset, then the rest. Null until needed. */
  queue: Buffer[] | null = null;
  queueHead = 0;
  headOffset = 0;
  queuedBytes = 0;
  /** write() returned false: writable() is owed once the queue falls below the limit. */
  writableOwed = false;
  /** In the connection's FIFO of streams waiting for connection-window credit. */
  waitingForConnection = false;
  /** Closed, with work going on until done() (the listener's closed() returned true). */
  lingering = false;

  constructor(
    private readonly connection: Connection,
    readonly id: number,
    endStream: boolean,
    contentLength: number,
    recvWindow: number,
    sendWindow: number,
  ) {
    this.remoteEnded = endStream;
    this.contentLength = contentLength;
    this.recvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }

  respond(fields: readonly HeaderField[], endStream: boolean): void {
    this.connection.respond(this, fields, endStream);
  }

  write(bytes: Buffer): boolean {
    return this.connection.write(this, bytes);
  }

  end(trailers?: readonly HeaderField[]): void {
    this.connection.end(this, trailers);
  }

  reset(code: number): void {
    this.connection.reset(this, code);
  }

  done(): void {
    this.connection.lingeringDone(this);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.connection.resume(this);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The connection.

/**
 * The server side of one HTTP/2 connection. Bytes go in through receive(), frames come out through take(), and
 * the layer above hears of streams through `events`. See the top of this file.
 */
export class ServerConnection {
  readonly #connection: Connection;

  /** Queues our SETTINGS and the connection WINDOW_UPDATE, and signals output(). RangeError for bad limits. */
  constructor(events: ConnectionEvents, options: ConnectionOptions = {}) {
    this.#connection = new Connection(events, options);
  }

  /** Bytes the socket read. Protocol errors become RST_STREAM or GOAWAY; after closed, input is ignored. */
  receive(chunk: Buffer): void {
    this.#connection.receive(chunk);
  }

  /** Frames queued since the last take(), to write in order. */
  take(): Buffer[] {
    return this.#connection.take();
  }

  /** A PING with 8 bytes of opaque data; events.pingAcknowledged() on its ACK. */
  ping(opaqueData: Buffer): void {
    this.#connection.ping(opaqueData);
  }

  /**
   * Graceful: GOAWAY NO_ERROR, no new streams, closed() when the last open stream ends. With `twoStep`, a first
   * GOAWAY announces it and the real one follows the ACK of a PING (see ShutdownOptions); calling shutdown()
   * without it meanwhile sends the real one at once.
   */
  shutdown(options: ShutdownOptions = {}): void {
    this.#connection.shutdown(options);
  }

  /** A connection error we decide (SETTINGS_TIMEOUT, keepalive): GOAWAY, every stream closed with `code`. */
  fail(code: number, message: string): void {
    this.#connection.fail(code, message);
  }

  /** The socket is gone: every stream closed with CANCEL, then closed(undefined). Nothing more is sent. */
  terminate(): void {
    this.#connection.terminate();
  }

  /**
   * Hold (or release) the framing of response DATA, for while the socket has too much unwritten: responses queue
   * on their streams and write() returns false as if the client had granted no credit.
   */
  holdOutput(held: boolean): void {
    this.#connection.holdOutput(held);
  }

  /** The peer acknowledged our SETTINGS. */
  get settingsAcknowledged(): boolean {
    return this.#connection.settingsAcknowledged;
  }

  get openStreams(): number {
    return this.#connection.streams.size;
  }

  /** Closed streams whose work goes on (their listener's closed() returned true, done() has not come). */
  get lingeringStreams(): number {
    return this.#connection.lingeringStreams;
  }

  get closed(): boolean {
    return this.#connection.closed;
  }
}

/** The state machine behind ServerConnection, with its state open to the Stream objects. */
class Connection {
  private readonly limits: ConnectionLimits;
  private readonly now: () => number;
  private readonly reader = new FrameReader({ expectPreface: true });
  private readonly writer = new FrameWriter();
  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
  private readonly resetBucket: TokenBucket;
  private readonly controlBucket: TokenBucket;
  private readonly emptyFrameBucket: TokenBucket;
  /** Credit is returned once this much is owed: half the window, so the peer never runs dry at full speed. */
  private readonly streamCreditThreshold: number;

  readonly streams = new Map<number, Stream>();
  /** Closed streams whose work goes on; they count against concurrentStreamsMax with the open ones. */
  lingeringStreams = 0;
  /** Streams the peer reset whose work went on; the next receive() charges those still lingering to the reset budget. */
  private resetWhileWorking: Stream[] = [];
  /** Highest stream id the client used: ids at or below it that are not open are closed. */
  private highestStreamId = 0;
  /** Highest stream handed to the layer above: GOAWAY's last stream id. */
  private lastProcessedId = 0;
  /** The block being assembled from HEADERS and CONTINUATION frames; no other frame may come between them. */
  private readonly blocks: HeaderBlockAssembler<PriorityFields | undefined>;
  /** Closed streams we sent RST_STREAM for: the peer's frames already in flight on them are dropped. */
  private readonly resetStreams = new RecentIds(RESET_STREAMS_REMEMBERED);
  private readonly skippedIds = new SkippedIds(SKIPPED_ID_RUNS_REMEMBERED);

  private peerSettingsSeen = false;
  settingsAcknowledged = false;
  private peerInitialWindow = DEFAULT_INITIAL_WINDOW_SIZE;
  private peerMaxFrameBytes = DEFAULT_MAX_FRAME_SIZE;
  /** The client's SETTINGS_MAX_HEADER_LIST_SIZE: unlimited until it sets one (6.5.2). */
  private peerHeaderListBytesMax = Number.POSITIVE_INFINITY;
  private connectionSendWindow = DEFAULT_INITIAL_WINDOW_SIZE;
  private readonly connectionRecvWindow: ConnectionReceiveWindow;
  /** Streams with queued bytes and stream credit but no connection credit, served in order of arrival. */
  private readonly blocked = new ConnectionCreditQueue<Stream>();

  /** The GOAWAY with the real last stream id is out: no new stream is processed. */
  private goawaySent = false;
  /** A two-step shutdown's first GOAWAY (last stream id 2^31-1) and PING are out; the real GOAWAY waits for the ACK. */
  private shutdownAnnounced = false;
  private goawayReceived = false;
  closed = false;
  private outputSignalled = false;
  /** holdOutput(true): no DATA framed until holdOutput(false). */
  private outputHeld = false;
  /** Inside events.stream(): the new stream's closed() can only be reported once it returns its listener. */
  private streamOpening = false;
  /** The connection closed inside events.stream(): closed() is reported after that stream's closed(). */
  private closeReportOwed: { error: ConnectionError | undefined } | null = null;

  constructor(
    private readonly events: ConnectionEvents,
    options: ConnectionOptions,
  ) {
    const limits = validateLimits(options.limits);
    this.limits = limits;
    this.now = options.now ?? Date.now;
    // Until it has read our SETTINGS the client encodes for the protocol's 4096 bytes; a smaller table holds it
    // from its ACK on (onSettings).
    const tableBytesMax = Math.max(limits.headerTableBytes, DEFAULT_HEADER_TABLE_SIZE);
    this.decoder = new HpackDecoder({ tableBytesMax, headerListBytesMax: limits.headerListBytesMax });
    const nowMs = this.now();
    this.resetBucket = new TokenBucket(limits.resetBudget, nowMs);
    this.controlBucket = new TokenBucket(limits.controlBudget, nowMs);
    this.emptyFrameBucket = new TokenBucket(limits.emptyFrameBudget, nowMs);
    this.blocks = new HeaderBlockAssembler(limits);
    this.streamCreditThreshold = Math.floor(limits.streamWindowBytes / 2);
    this.connectionRecvWindow = new ConnectionReceiveWindow(limits.connectionWindowBytes);
    this.sendSettings();
    this.signalOutput();
  }

  /**
   * Our SETTINGS, and the connection window raised to its size at once (it has no setting: every connection
   * window starts at 65,535). ENABLE_PUSH is a client's setting, so a server does not send it.
   */
  private sendSettings(): void {
    const l = this.limits;
    const entries: [number, number][] = [
      [SettingId.MAX_CONCURRENT_STREAMS, l.concurrentStreamsMax],
      [SettingId.INITIAL_WINDOW_SIZE, l.streamWindowBytes],
      [SettingId.MAX_FRAME_SIZE, l.frameBytesMax],
      [SettingId.MAX_HEADER_LIST_SIZE, l.headerListBytesMax],
    ];
    if (l.headerTableBytes !== DEFAULT_HEADER_TABLE_SIZE) entries.unshift([SettingId.HEADER_TABLE_SIZE, l.headerTableBytes]);
    this.writer.settings(entries);
    const raise = l.connectionWindowBytes - DEFAULT_INITIAL_WINDOW_SIZE;
    if (raise > 0) this.writer.windowUpdate(0, raise);
  }

  // ---- the public operations

  receive(chunk: Buffer): void {
    if (this.closed) return;
    if (this.resetWhileWorking.length > 0) this.chargeResetsWhileWorking();
    if (this.closed) return;
    this.reader.push(chunk);
    for (;;) {
      try {
        const frame = this.reader.next();
        if (frame === undefined) break;
        this.onFrame(frame);
      } catch (e) {
        this.onReceiveError(e);
      }
      // A connection error, the last stream of a draining connection, or the layer above may have closed it.
      if (this.closed) return;
    }
    this.signalOutput();
  }

  take(): Buffer[] {
    this.outputSignalled = false;
    return this.writer.take();
  }

  ping(opaqueData: Buffer): void {
    if (this.closed) return;
    this.writer.ping(opaqueData, false);
    this.signalOutput();
  }

  shutdown(options: ShutdownOptions): void {
    if (this.closed || this.goawaySent) return;
    if (options.twoStep === true) {
      if (!this.shutdownAnnounced) this.announceShutdown();
      return;
    }
    this.goawaySent = true;
    this.writer.goaway(this.lastProcessedId, ErrorCode.NO_ERROR);
    if (this.streams.size === 0) this.close(ErrorCode.NO_ERROR, undefined);
    else this.signalOutput();
  }

  /**
   * A two-step shutdown's first step: GOAWAY with the largest stream id says the client may open no more streams
   * while refusing none, and the PING's ACK tells when the client has read it (RFC 9113 6.8).
   */
  private announceShutdown(): void {
    this.shutdownAnnounced = true;
    this.writer.goaway(STREAM_ID_MAX, ErrorCode.NO_ERROR);
    this.writer.ping(SHUTDOWN_PING_DATA, false);
    this.signalOutput();
  }

  fail(code: number, message: string): void {
    if (this.closed) return;
    const debugData = Buffer.from(message, 'utf8').subarray(0, DEBUG_MESSAGE_BYTES_MAX);
    // After a shutdown no stream above lastProcessedId was processed either, so the id never rises.
    this.writer.goaway(this.lastProcessedId, code, debugData);
    this.close(code, { code, message });
  }

  terminate(): void {
    if (this.closed) return;
    this.close(ErrorCode.CANCEL, undefined);
  }

  /** The end of the connection: every open stream closed with `streamCode`, then events.closed(). */
  private close(streamCode: number, error: ConnectionError | undefined): void {
    this.closed = true;
    this.blocks.clear();
    this.blocked.clear();
    for (const stream of [...this.streams.values()]) this.closeStream(stream, streamCode);
    this.signalOutput();
    if (this.streamOpening) this.closeReportOwed = { error };
    else this.events.closed(error);
  }

  /** The closed() that close() held back while a stream was being opened. */
  private reportOwedClose(): void {
    const owed = this.closeReportOwed;
    if (owed === null) return;
    this.closeReportOwed = null;
    this.events.closed(owed.error);
  }

  private signalOutput(): void {
    if (this.outputSignalled || this.writer.pendingBytes === 0) return;
    this.outputSignalled = true;
    this.events.output();
  }

  /**
   * A stream error becomes RST_STREAM, a connection error GOAWAY; an HPACK error leaves the tables out of step,
   * so it ends the connection (COMPRESSION_ERROR). Anything else is a bug: the connection ends and it is thrown.
   */
  private onReceiveError(e: unknown): void {
    if (e instanceof H2Error) {
      if (e.scope === 'stream') this.streamFailed(e.streamId, e.code, e.message);
      else this.fail(e.code, e.message);
      return;
    }
    if (e instanceof HpackError) {
      this.fail(ErrorCode.COMPRESSION_ERROR, e.message);
      return;
    }
    this.fail(ErrorCode.INTERNAL_ERROR, 'internal error');
    throw e;
  }

  /**
   * RST_STREAM for a stream error the peer caused; these count against the reset budget like its own resets. On an
   * idle stream (a PRIORITY frame, the one frame allowed there, that is malformed) there is nothing to reset, and
   * RST_STREAM is forbidden (6.4): the peer would fail the connection on it, so we do (5.4.1 allows it).
   */
  private streamFailed(streamId: number, code: number, message: string): void {
    if (this.isIdle(streamId)) {
      this.fail(code, message);
      return;
    }
    if (!this.resetBucket.take(this.now())) {
      this.fail(ErrorCode.ENHANCE_YOUR_CALM, `too many streams reset or refused (last: ${message})`);
      return;
    }
    this.sendRstStream(streamId, code);
    const stream = this.streams.get(streamId);
    if (stream !== undefined) this.closeStream(stream, code);
  }

  /**
   * Our RST_STREAM. The peer may have sent frames on the stream before it reads it: those are dropped when they
   * arrive, not answered (RFC 9113 5.1, "closed"), so the stream is remembered.
   */
  private sendRstStream(streamId: number, code: number): void {
    this.writer.rstStream(streamId, code);
    this.resetStreams.add(streamId);
  }

  /** A frame counted by a flood limit; without a token the connection fails with ENHANCE_YOUR_CALM. */
  private spend(bucket: TokenBucket, what: string): void {
    if (!bucket.take(this.now())) throw connectionError(ErrorCode.ENHANCE_YOUR_CALM, `too many ${what}`);
  }

  /** Ids the client has not used yet (or, being even, never can): frames other than HEADERS and PRIORITY are errors. */
  private isIdle(streamId: number): boolean {
    return (streamId & 1) === 0 || streamId > this.highestStreamId;
  }

  // ---- receiving: dispatch

  private onFrame(frame: Frame): void {
    this.blocks.checkInterleaving(frame);
    if (!this.peerSettingsSeen) {
      if (frame.type !== FrameType.SETTINGS || (frame.flags & Flag.ACK) !== 0) {
        throw connectionError(ErrorCode.PROTOCOL_ERROR, `the first frame after the preface is ${frameTypeName(frame.type)}, not SETTINGS`);
      }
      this.peerSettingsSeen = true;
    }
    switch (frame.type) {
      case FrameType.DATA:
        return this.onData(frame);
      case FrameType.HEADERS:
        return this.onHeaders(frame);
      case FrameType.PRIORITY:
        // Deprecated (5.3.2) and ignored, once checked; it carries nothing we use.
        parsePriority(frame);
        return this.spend(this.emptyFrameBucket, 'PRIORITY frames');
      case FrameType.RST_STREAM:
        return this.onRstStream(frame);
      case FrameType.SETTINGS:
        return this.onSettings(frame);
      case FrameType.PUSH_PROMISE:
        return rejectPushPromise(frame);
      case FrameType.PING:
        return this.onPing(frame);
      case FrameType.GOAWAY:
        return this.onGoaway(frame);
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(frame);
      case FrameType.CONTINUATION:
        return this.onContinuation(frame);
      default:
        // Extension frames are ignored (4.1), but they cost us a read each, like any other empty frame.
        return this.spend(this.emptyFrameBucket, 'extension frames');
    }
  }

  // ---- receiving: connection-level frames

  private onSettings(frame: Frame): void {
    const settings = parseSettings(frame);
    if (settings.ack) {
      // We send one SETTINGS, so there is one ACK; another is a peer confused about the exchange (as nghttp2 holds).
      if (this.settingsAcknowledged) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS ACK with no SETTINGS unacknowledged');
      // Frames the peer sent before its ACK were bound by the default; from here on, by ours (6.5.3).
      this.reader.setMaxFrameBytes(this.limits.frameBytesMax);
      if (this.limits.headerTableBytes < DEFAULT_HEADER_TABLE_SIZE) this.decoder.lowerTableBytesMax(this.limits.headerTableBytes);
      this.settingsAcknowledged = true;
      return;
    }
    this.spend(this.controlBucket, 'SETTINGS frames');
    let windowGrew = false;
    for (const [id, value] of settings.entries) {
      if (id === SettingId.HEADER_TABLE_SIZE) this.encoder.setPeerTableBytesMax(value);
      else if (id === SettingId.INITIAL_WINDOW_SIZE) windowGrew = this.setPeerInitialWindow(value) || windowGrew;
      else if (id === SettingId.MAX_FRAME_SIZE) this.peerMaxFrameBytes = value;
      else if (id === SettingId.MAX_HEADER_LIST_SIZE) this.peerHeaderListBytesMax = value;
      // MAX_CONCURRENT_STREAMS and ENABLE_PUSH limit streams we would open, and we open none.
    }
    this.writer.settingsAck();
    if (windowGrew) for (const stream of [...this.streams.values()]) if (stream.queuedBytes > 0) this.flushStream(stream);
  }

  /** A new SETTINGS_INITIAL_WINDOW_SIZE moves every open stream's send window (both-ends.ts). True when they grew. */
  private setPeerInitialWindow(value: number): boolean {
    const grew = moveSendWindows(this.streams.values(), this.peerInitialWindow, value);
    this.peerInitialWindow = value;
    return grew;
  }

  private onPing(frame: Frame): void {
    const ping = parsePing(frame);
    if (ping.ack) {
      // Our two-step shutdown's PING is ours alone: the layer above did not send it.
      if (this.shutdownAnnounced && ping.opaqueData.equals(SHUTDOWN_PING_DATA)) return this.shutdown({});
      this.events.pingAcknowledged?.(Buffer.from(ping.opaqueData));
      return;
    }
    this.spend(this.controlBucket, 'PING frames');
    this.writer.ping(ping.opaqueData, true);
  }

  /**
   * The client opens no more streams. A server has none of its own for it to refuse, so the open ones run to
   * their end and then the connection closes.
   */
  private onGoaway(frame: Frame): void {
    parseGoaway(frame);
    this.goawayReceived = true;
    if (this.streams.size === 0) this.close(ErrorCode.NO_ERROR, undefined);
  }

  private onWindowUpdate(frame: Frame): void {
    const streamId = frame.streamId;
    if (streamId !== 0 && this.isIdle(streamId)) throw connectionError(ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${streamId}`);
    const increment = parseWindowUpdate(frame);
    if (streamId === 0) {
      this.connectionSendWindow += increment;
      if (this.connectionSendWindow > MAX_WINDOW_SIZE) throw connectionError(ErrorCode.FLOW_CONTROL_ERROR, `connection window past ${MAX_WINDOW_SIZE}`);
      this.blocked.serve(() => this.connectionSendWindow, (stream) => this.flushStream(stream));
      return;
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined) return this.spend(this.emptyFrameBucket, 'WINDOW_UPDATE frames on closed streams');
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW_SIZE) throw streamError(streamId, ErrorCode.FLOW_CONTROL_ERROR, `stream ${streamId}'s window past ${MAX_WINDOW_SIZE}`);
    if (stream.queuedBytes > 0) this.flushStream(stream);
  }

  private onRstStream(frame: Frame): void {
    const code = parseRstStream(frame);
    const stream = this.streams.get(frame.streamId);
    if (stream === undefined) {
      if (this.isIdle(frame.streamId)) throw connectionError(ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${frame.streamId}`);
      return this.spend(this.emptyFrameBucket, 'RST_STREAM frames on closed streams');
    }
    this.closeStream(stream, code);
    // Rapid reset's harm is the work a reset stream leaves running while the client opens the next. A handler
    // hears of the close synchronously but may finish a few microtasks later (a rejected promise), which this
    // call cannot see: the stream is charged at the next receive() if its work is still going on then.
    if (stream.lingering) this.resetWhileWorking.push(stream);
  }

  /**
   * The reset budget's charge for the peer's resets since the last read whose work has not stopped. Past the
   * budget: GOAWAY ENHANCE_YOUR_CALM, as for any flood.
   */
  private chargeResetsWhileWorking(): void {
    const streams = this.resetWhileWorking;
    this.resetWhileWorking = [];
    for (const stream of streams) {
      if (stream.lingering && !this.resetBucket.take(this.now())) {
        this.fail(ErrorCode.ENHANCE_YOUR_CALM, 'too many streams reset by the client while their work went on');
        return;
      }
    }
  }

  // ---- receiving: header blocks

  private onHeaders(frame: Frame): void {
    const headers = parseHeaders(frame);
    const streamId = frame.streamId;
    if (!this.streams.has(streamId) && !this.resetStreams.has(streamId)) this.checkNewStreamId(streamId);
    if (headers.endHeaders) {
      this.onHeaderBlock(streamId, headers.fragment, headers.endStream, headers.priority);
      return;
    }
    this.blocks.begin(streamId, headers.fragment, headers.endStream, headers.priority);
  }

  /**
   * A HEADERS that does not belong to an open stream must open a new one: an odd id above every id used so far
   * (5.1.1). An id at or below is a stream that closed (STREAM_CLOSED), or one the client skipped, an unexpected id
   * (PROTOCOL_ERROR).
   */
  private checkNewStreamId(streamId: number): void {
    if ((streamId & 1) === 0) throw connectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${streamId}: a client's streams are odd`);
    if (streamId > this.highestStreamId) return;
    if (this.skippedIds.has(streamId)) throw connectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${streamId}, an id the client skipped: new streams' ids must grow`);
    throw connectionError(ErrorCode.STREAM_CLOSED, `HEADERS on stream ${streamId}, which is closed`);
  }

  private onContinuation(frame: Frame): void {
    const complete = this.blocks.continue(frame, () => this.spend(this.emptyFrameBucket, 'empty CONTINUATION frames'));
    if (complete !== undefined) this.onHeaderBlock(complete.streamId, complete.block, complete.endStream, complete.extra);
  }

  /**
   * A complete header block. It is decoded whatever becomes of its stream, so that our HPACK table stays in step
   * with the peer's; only then may the stream be refused.
   */
  private onHeaderBlock(streamId: number, block: Buffer, endStream: boolean, priority: PriorityFields | undefined): void {
    const decoded = this.decoder.decode(block);
    const stream = this.streams.get(streamId);
    if (stream !== undefined) return this.onTrailers(stream, decoded.fields, endStream, priority);
    // Trailers the client sent before it read our RST_STREAM (or the stream was reset while its block arrived):
    // decoded for HPACK's sake, then dropped (RFC 9113 5.1).
    if (streamId <= this.highestStreamId) return this.spend(this.emptyFrameBucket, 'header blocks on streams we reset');
    this.skippedIds.opened(this.highestStreamId, streamId);
    this.highestStreamId = streamId;
    // After our GOAWAY no new stream is processed, and the GOAWAY told the client so (6.8).
    if (this.goawaySent) return;
    // After the client's, none either, as the connection closes with its last stream; the client heard nothing
    // from us, so it is told: ignored, its stream would hang while other streams (a watch) keep the connection.
    if (this.goawayReceived) throw streamError(streamId, ErrorCode.REFUSED_STREAM, `stream ${streamId} opened after the client's GOAWAY`);
    if (priority !== undefined && priority.dependency === streamId) throw streamError(streamId, ErrorCode.PROTOCOL_ERROR, `stream ${streamId} depends on itself`);
    // Past SETTINGS_MAX_HEADER_LIST_SIZE: ENHANCE_YOUR_CALM, as Node's HTTP/2 (over nghttp2) answers. Not
    // REFUSED_STREAM, which invites the client to retry the same request, nor PROTOCOL_ERROR, as the request is
    // well formed, just more than we take.
    if (decoded.oversized) throw streamError(streamId, ErrorCode.ENHANCE_YOUR_CALM, `headers of stream ${streamId} past ${this.limits.headerListBytesMax} bytes`);
    if (this.streams.size + this.lingeringStreams >= this.limits.concurrentStreamsMax) {
      const lingering = this.lingeringStreams === 0 ? '' : ` (${this.lingeringStreams} of them closed, their work still going on)`;
      throw streamError(streamId, ErrorCode.REFUSED_STREAM, `stream ${streamId} beyond ${this.limits.concurrentStreamsMax} open streams${lingering}`);
    }
    const headers = requestHeaders(decoded.fields);
    if (typeof headers === 'string') throw streamError(streamId, ErrorCode.PROTOCOL_ERROR, `malformed request on stream ${streamId}: ${headers}`);
    const length = contentLength(headers);
    if (length === undefined) throw streamError(streamId, ErrorCode.PROTOCOL_ERROR, `malformed request on stream ${streamId}: content-length is not a number`);
    if (endStream && length > 0) throw streamError(streamId, ErrorCode.PROTOCOL_ERROR, `stream ${streamId} has content-length ${length} and no body`);
    this.openStream(streamId, headers, endStream, length);
  }

  private openStream(streamId: number, headers: Record<string, string>, endStream: boolean, length: number): void {
    const stream = new Stream(this, streamId, endStream, length, this.limits.streamWindowBytes, this.peerInitialWindow);
    this.streams.set(streamId, stream);
    this.lastProcessedId = streamId;
    // The layer above may end the stream, or the whole connection, before it returns the listener: the stream's
    // closed() then waits for the listener, and the connection's closed() for the stream's (as documented).
    let listener: StreamListener | undefined;
    this.streamOpening = true;
    try {
      listener = this.events.stream(stream, headers, endStream);
    } finally {
      this.streamOpening = false;
      // stream() threw: there is no listener to tell, and the connection fails on the throw.
      if (listener === undefined) this.reportOwedClose();
    }
    stream.listener = listener;
    if (stream.closed) this.tellClosed(stream);
    this.reportOwedClose();
  }

  /**
   * A second header block on an open stream: trailers, which end the request and carry no pseudo-headers (8.1).
   * gRPC clients send none, so their fields are dropped and the listener hears of the end alone.
   */
  private onTrailers(stream: Stream, fields: readonly HeaderField[], endStream: boolean, priority: PriorityFields | undefined): void {
    const id = stream.id;
    if (stream.remoteEnded) throw streamError(id, ErrorCode.STREAM_CLOSED, `HEADERS on stream ${id} after its END_STREAM`);
    if (priority !== undefined && priority.dependency === id) throw streamError(id, ErrorCode.PROTOCOL_ERROR, `stream ${id} depends on itself`);
    if (!endStream) throw streamError(id, ErrorCode.PROTOCOL_ERROR, `trailers on stream ${id} without END_STREAM`);
    for (const field of fields) {
      if (field.name.charCodeAt(0) === COLON) throw streamError(id, ErrorCode.PROTOCOL_ERROR, `pseudo-header ${field.name} in the trailers of stream ${id}`);
    }
    if (stream.contentLength !== NO_CONTENT_LENGTH && stream.bodyBytes !== stream.contentLength) this.contentLengthMismatch(stream);
    stream.remoteEnded = true;
    stream.listener!.data(EMPTY, true);
  }

  private contentLengthMismatch(stream: Stream): never {
    throw streamError(stream.id, ErrorCode.PROTOCOL_ERROR, `stream ${stream.id} has content-length ${stream.contentLength} and ${stream.bodyBytes}+ bytes of body`);
  }

  // ---- receiving: DATA and flow control

  private onData(frame: Frame): void {
    const data = parseData(frame);
    const length = data.flowControlledLength;
    const stream = this.streams.get(frame.streamId);
    if (stream === undefined) return this.onDataWithoutStream(frame.streamId, length, data.endStream);
    this.consumeConnectionWindow(length);
    if (stream.remoteEnded) {
      this.creditConnection(length);
      throw streamError(stream.id, ErrorCode.STREAM_CLOSED, `DATA on stream ${stream.id} after its END_STREAM`);
    }
    stream.recvWindow -= length;
    if (stream.recvWindow < 0) {
      this.creditConnection(length);
      throw streamError(stream.id, ErrorCode.FLOW_CONTROL_ERROR, `DATA on stream ${stream.id} beyond its window`);
    }
    if (length === 0 && !data.endStream) this.spend(this.emptyFrameBucket, 'empty DATA frames');
    stream.bodyBytes += data.data.length;
    if (stream.contentLength !== NO_CONTENT_LENGTH && (stream.bodyBytes > stream.contentLength || (data.endStream && stream.bodyBytes !== stream.contentLength))) {
      this.creditConnection(length);
      this.contentLengthMismatch(stream);
    }
    if (data.endStream) stream.remoteEnded = true;
    stream.listener!.data(data.data, data.endStream);
    this.creditConnection(length);
    // Credit after delivery, so that a listener that pauses on this data withholds its credit too.
    if (!stream.closed && !stream.remoteEnded && length > 0) this.creditStream(stream, length);
  }

  /**
   * DATA for a stream that is not open. Its bytes still count against the connection window, and are credited
   * back at once, so the two sides keep the same account (6.9).
   */
  private onDataWithoutStream(streamId: number, length: number, endStream: boolean): void {
    if (this.isIdle(streamId)) throw connectionError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
    this.consumeConnectionWindow(length);
    this.creditConnection(length);
    if (length === 0 && !endStream) this.spend(this.emptyFrameBucket, 'empty DATA frames');
    // A stream our GOAWAY told the client we ignore: its frames are dropped without a word (6.8).
    if (this.goawaySent && streamId > this.lastProcessedId) return;
    // DATA the client sent before it read our RST_STREAM (or our END_STREAM and RST_STREAM NO_ERROR).
    if (this.resetStreams.has(streamId)) return;
    throw streamError(streamId, ErrorCode.STREAM_CLOSED, `DATA on closed stream ${streamId}`);
  }

  private consumeConnectionWindow(length: number): void {
    this.connectionRecvWindow.consume(length);
  }

  /** Connection credit, batched: one WINDOW_UPDATE per half window consumed (both-ends.ts). */
  private creditConnection(length: number): void {
    this.connectionRecvWindow.credit(length, this.writer);
  }

  private creditStream(stream: Stream, length: number): void {
    stream.creditOwed += length;
    if (!stream.paused && stream.creditOwed >= this.streamCreditThreshold) this.sendStreamCredit(stream);
  }

  private sendStreamCredit(stream: Stream): void {
    this.writer.windowUpdate(stream.id, stream.creditOwed);
    stream.recvWindow += stream.creditOwed;
    stream.creditOwed = 0;
  }

  resume(stream: Stream): void {
    stream.paused = false;
    if (stream.closed || stream.remoteEnded || stream.creditOwed < this.streamCreditThreshold) return;
    this.sendStreamCredit(stream);
    this.signalOutput();
  }

  // ---- sending

  respond(stream: Stream, fields: readonly HeaderField[], endStream: boolean): void {
    if (stream.closed) return;
    if (stream.responded) throw new Error(`stream ${stream.id}: respond() called twice`);
    stream.responded = true;
    if (!this.fitsPeerHeaderList(fields)) return this.reset(stream, ErrorCode.INTERNAL_ERROR);
    this.writer.headers(stream.id, this.encoder.encode(fields), endStream, this.peerMaxFrameBytes);
    if (endStream) this.endedLocally(stream);
    this.signalOutput();
  }

  write(stream: Stream, bytes: Buffer): boolean {
    if (stream.closed) return false;
    if (!stream.responded || stream.ending) throw new Error(`stream ${stream.id}: write() ${stream.ending ? 'after end()' : 'before respond()'}`);
    const n = bytes.length;
    if (n > 0) {
      // The common case, framed at once: nothing queued before it and credit enough.
      if (stream.queuedBytes === 0 && !this.outputHeld && n <= stream.sendWindow && n <= this.connectionSendWindow && n <= this.peerMaxFrameBytes) {
        this.writer.data(stream.id, bytes, false);
        stream.sendWindow -= n;
        this.connectionSendWindow -= n;
      } else {
        if (stream.queue === null) stream.queue = [];
        stream.queue.push(bytes);
        stream.queuedBytes += n;
        this.flushStream(stream);
      }
      this.signalOutput();
    }
    if (stream.queuedBytes < this.limits.streamSendQueueBytes) return true;
    stream.writableOwed = true;
    return false;
  }

  end(stream: Stream, trailers: readonly HeaderField[] | undefined): void {
    if (stream.closed) return;
    if (!stream.responded || stream.ending) throw new Error(`stream ${stream.id}: end() ${stream.ending ? 'called twice' : 'before respond()'}`);
    stream.ending = true;
    stream.trailers = trailers ?? null;
    if (stream.queuedBytes === 0) this.sendEndStream(stream);
    this.signalOutput();
  }

  reset(stream: Stream, code: number): void {
    if (stream.closed) return;
    this.sendRstStream(stream.id, code);
    this.closeStream(stream, code);
    this.signalOutput();
  }

  /**
   * Frames what the stream has queued, as far as both windows and the peer's frame size allow. A stream out of
   * connection credit (but not its own) joins the FIFO that the next connection WINDOW_UPDATE serves. With no
   * trailers to follow, END_STREAM rides on the last DATA frame.
   */
  private flushStream(stream: Stream): void {
    // Held: the queue waits for release(), which flushes every stream.
    if (this.outputHeld) return;
    const queue = stream.queue!;
    while (stream.queuedBytes > 0) {
      const head = queue[stream.queueHead]!;
      const n = Math.min(head.length - stream.headOffset, this.peerMaxFrameBytes, stream.sendWindow, this.connectionSendWindow);
      if (n <= 0) {
        if (stream.sendWindow > 0) this.blocked.add(stream);
        break;
      }
      const last = n === stream.queuedBytes && stream.ending && stream.trailers === null;
      this.writer.data(stream.id, n === head.length ? head : head.subarray(stream.headOffset, stream.headOffset + n), last);
      stream.sendWindow -= n;
      this.connectionSendWindow -= n;
      stream.queuedBytes -= n;
      stream.headOffset += n;
      if (stream.headOffset === head.length) this.dropQueueHead(stream, queue);
      if (last) return this.endedLocally(stream);
    }
    if (stream.queuedBytes === 0 && stream.ending) return this.sendEndStream(stream);
    if (stream.writableOwed && stream.queuedBytes < this.limits.streamSendQueueBytes) {
      stream.writableOwed = false;
      stream.listener?.writable();
    }
  }

  private dropQueueHead(stream: Stream, queue: Buffer[]): void {
    stream.headOffset = 0;
    stream.queueHead++;
    if (stream.queueHead === queue.length) {
      queue.length = 0;
      stream.queueHead = 0;
    } else if (stream.queueHead >= QUEUE_COMPACT_MIN && stream.queueHead * 2 >= queue.length) {
      queue.splice(0, stream.queueHead);
      stream.queueHead = 0;
    }
  }

  /**
   * While held, no DATA is framed: responses queue on their streams, whose write() then returns false at
   * streamSendQueueBytes, as if the client's windows were empty. The socket glue holds output while the socket
   * has more unwritten than it allows, so a client that grants large windows and reads nothing cannot make us
   * buffer more than the queues' bounds. Header blocks and control frames still go out.
   */
  holdOutput(held: boolean): void {
    if (this.outputHeld === held || this.closed) return;
    this.outputHeld = held;
    if (held) return;
    for (const stream of [...this.streams.values()]) if (stream.queuedBytes > 0) this.flushStream(stream);
    this.signalOutput();
  }

  /**
   * Whether a header list is within the client's SETTINGS_MAX_HEADER_LIST_SIZE, counted as RFC 9113 6.5.2 does
   * (name and value bytes plus 32 per field; names and values are latin1, a byte a char). A list past it is
   * never sent: the client would refuse it, most likely by failing the whole connection. The check comes before
   * encoding, as a block encoded and not sent would leave HPACK's tables out of step.
   */
  private fitsPeerHeaderList(fields: readonly HeaderField[]): boolean {
    if (this.peerHeaderListBytesMax === Number.POSITIVE_INFINITY) return true;
    let bytes = 0;
    for (const field of fields) bytes += fieldBytes(field.name, field.value);
    return bytes <= this.peerHeaderListBytesMax;
  }

  /**
   * END_STREAM after the queue: trailers as HEADERS, or an empty DATA (it needs no credit). Trailers past the
   * client's header list limit reset the stream (INTERNAL_ERROR) instead, as response headers do.
   */
  private sendEndStream(stream: Stream): void {
    const trailers = stream.trailers;
    stream.trailers = null;
    if (trailers !== null && !this.fitsPeerHeaderList(trailers)) return this.reset(stream, ErrorCode.INTERNAL_ERROR);
    if (trailers !== null) this.writer.headers(stream.id, this.encoder.encode(trailers), true, this.peerMaxFrameBytes);
    else this.writer.data(stream.id, EMPTY, true);
    this.endedLocally(stream);
  }

  /**
   * Our END_STREAM is out. With the request ended too, the stream is done. Otherwise the response came first,
   * and RST_STREAM NO_ERROR tells the client to stop sending the body (8.1).
   */
  private endedLocally(stream: Stream): void {
    if (!stream.remoteEnded) this.sendRstStream(stream.id, ErrorCode.NO_ERROR);
    this.closeStream(stream, ErrorCode.NO_ERROR);
  }

  /** The listener hears of the close; if its work goes on, the stream lingers until done(). */
  private tellClosed(stream: Stream): void {
    if (stream.listener!.closed(stream.closeCode) !== true || this.closed) return;
    stream.lingering = true;
    this.lingeringStreams++;
  }

  lingeringDone(stream: Stream): void {
    if (!stream.lingering) return;
    stream.lingering = false;
    this.lingeringStreams--;
  }

  /** Closes a stream once: it leaves the map, drops its queue, and its listener hears `code`. */
  private closeStream(stream: Stream, code: number): void {
    if (stream.closed) return;
    stream.closed = true;
    stream.closeCode = code;
    this.streams.delete(stream.id);
    stream.queue = null;
    stream.queuedBytes = 0;
    stream.writableOwed = false;
    if (stream.listener !== null) this.tellClosed(stream);
    if (!this.closed && (this.goawaySent || this.goawayReceived) && this.streams.size === 0) this.close(ErrorCode.NO_ERROR, undefined);
  }
}
