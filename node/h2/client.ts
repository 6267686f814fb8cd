// The client side of one HTTP/2 connection (RFC 9113) as a pure state machine, the mirror of connection.ts's
// server: bytes in (receive), frames out (take), and events to the layer above. It exists for the peer transport's
// Send stream (node/transport/engine-send.ts), where node:http2's client cost a leader a tenth of a put's CPU at
// one put in flight (docs/performance.md, thirty-third and thirty-fourth sessions), so it does what a long-lived
// gRPC call needs and no more: streams we open, each sending a request body for as long as it lasts and reading a
// response (headers, DATA, trailers); flow control both ways; SETTINGS, PING, GOAWAY; no server push (we announce
// SETTINGS_ENABLE_PUSH 0), no priorities, no padding on what we send.
//
// Flood limits: the PINGs and SETTINGS we must answer are budgeted (each makes us write); other frames that carry
// nothing (empty DATA, PRIORITY, frames on closed streams) cost only their reading, and the peer is a member of the
// cluster (over TLS, one whose certificate we trust), so they are not counted as the server counts a client's.
//
// It does no I/O and sets no timers: the socket glue writes the preface-led output of take() whenever output() is
// signalled, pushes what it reads into receive(), and runs the connect timeout and keepalive PINGs (ping()).
//
// Worked example, one Send call (our frames on the left, the peer's on the right):
//
//   preface, SETTINGS (queued at construction)   SETTINGS, WINDOW_UPDATE 0 (a peer granting 1 MiB windows)
//   request(): HEADERS 1 end_headers             SETTINGS ACK
//   write(): DATA 1 (a batch)                    HEADERS 1 (:status 200), DATA 1 (an ack)
//   SETTINGS ACK                                 ... HEADERS 1 end_stream (trailers: the call's status)
//   reset(CANCEL): RST_STREAM 1                  -> listener.closed(CANCEL)
//
// A stream we reset may still receive what the peer sent before reading our RST_STREAM: header blocks are
// decoded (HPACK's table must stay in step) and dropped, DATA is credited back to the connection and dropped.

import { checkBudget, checkInteger, COLON, type ConnectionError, INVALID_NAME_CHAR, mergeLimits, type RateBudget, TokenBucket } from './connection.js';
import { ConnectionCreditQueue, ConnectionReceiveWindow, HeaderBlockAssembler, moveSendWindows } from './both-ends.js';
import {
  CLIENT_PREFACE,
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
  parseRstStream,
  parseSettings,
  parseWindowUpdate,
  rejectPushPromise,
  SettingId,
  STREAM_ID_MAX,
  streamError,
} from './frames.js';
import { type HeaderField, HpackDecoder, HpackEncoder, HpackError } from './hpack.js';

/** Our side's settings and what the peer may make us hold. Every field has a default (CLIENT_DEFAULTS). */
export interface ClientLimits {
  /** SETTINGS_INITIAL_WINDOW_SIZE: response bytes a stream may receive before we credit more. */
  readonly streamWindowBytes: number;
  /** The connection's receive window, raised from 65,535 right after our SETTINGS when larger. */
  readonly connectionWindowBytes: number;
  /** SETTINGS_MAX_FRAME_SIZE: the largest frame payload we accept. */
  readonly frameBytesMax: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: a response's decoded headers (or trailers); past it the stream is reset. */
  readonly headerListBytesMax: number;
  /** A header block's encoded bytes across HEADERS and its CONTINUATIONs; past it the connection fails. */
  readonly headerBlockBytesMax: number;
  /** CONTINUATION frames one header block may take; past it the connection fails (ENHANCE_YOUR_CALM). */
  readonly continuationFramesMax: number;
  /** Streams we keep open at once, further held to the peer's SETTINGS_MAX_CONCURRENT_STREAMS. */
  readonly concurrentStreamsMax: number;
  /** Request bytes a stream may have queued (waiting for the peer's credit) before write() returns false. */
  readonly streamSendQueueBytes: number;
  /** PING and SETTINGS frames we must answer, as a token bucket: past it the connection fails (ENHANCE_YOUR_CALM). */
  readonly controlBudget: RateBudget;
}

export const CLIENT_DEFAULTS: ClientLimits = Object.freeze({
  /** 64 KiB, the protocol's default: the responses this client reads (acks of a few bytes) never fill it. */
  streamWindowBytes: DEFAULT_INITIAL_WINDOW_SIZE,
  connectionWindowBytes: DEFAULT_INITIAL_WINDOW_SIZE,
  /** 16 KiB, the protocol's default, and the most the reader buffers for one frame. */
  frameBytesMax: DEFAULT_MAX_FRAME_SIZE,
  /** 16 KiB: a gRPC status and its message are far smaller. */
  headerListBytesMax: 16 * 1024,
  /** 32 KiB: twice the decoded limit (an encoded block exceeds its list only by length prefixes). */
  headerBlockBytesMax: 32 * 1024,
  /** 8: a 32 KiB block needs two CONTINUATIONs of 16 KiB; more means tiny frames (the CONTINUATION flood). */
  continuationFramesMax: 8,
  /** 16: a Send connection carries one call at a time, plus those still closing after a reconnect of the stream. */
  concurrentStreamsMax: 16,
  /** 4 MiB: a few of the largest batches (peer limits' batchBytesMax) waiting for a peer's credit. */
  streamSendQueueBytes: 4 * 1024 * 1024,
  /** 1000 at once, 100 a second, as the server's: keepalive PINGs come every few seconds at most. */
  controlBudget: Object.freeze({ burst: 1000, perSecond: 100 }),
});

export interface ClientConnectionOptions {
  readonly limits?: Partial<ClientLimits>;
  /** Milliseconds, for the control budget's rate: Date.now by default, a test's own clock in transcript tests. */
  readonly now?: () => number;
}

/** What the layer above is told about the connection. */
export interface ClientConnectionEvents {
  /** There are frames to take(): signalled once until the next take(). */
  output(): void;
  /**
   * The connection is over: a connection error (ours, GOAWAY sent; or the peer's GOAWAY with an error code), the
   * peer's GOAWAY NO_ERROR with no stream left, or terminate(). Called once, after every stream's closed(). Take the
   * last output, write it and end the socket.
   */
  closed(error: ConnectionError | undefined): void;
  /** The ACK of a PING we sent with ping(). */
  pingAcknowledged?(opaqueData: Buffer): void;
}

/** What a stream's owner is told. Calls come from inside receive() (or from the stream's own methods). */
export interface ClientStreamListener {
  /**
   * A header block: the response's headers first (`:status` included, 1xx informational ones skipped), then
   * perhaps trailers, which always end the stream. Repeated names are joined with ', '.
   */
  headers(fields: Record<string, string>, endStream: boolean): void;
  /** Response bytes, in order; `endStream` on the last (which may be empty). Only valid during the call. */
  data(bytes: Buffer, endStream: boolean): void;
  /** The queue is empty: every byte written so far is framed and will leave with the next take(). */
  drained(): void;
  /**
   * The stream closed, once: NO_ERROR when both sides ended it, else the RST_STREAM code (the peer's, or ours
   * from reset() or a stream error) or the connection's. `reason` says why in words. Nothing written afterwards
   * is sent.
   */
  closed(code: number, reason: string): void;
}

/** One request we opened. Methods called after the stream closed do nothing (write() returns false). */
export interface ClientStream {
  readonly id: number;
  /**
   * Queue request bytes, the chunks in order as one write; false when the queue holds streamSendQueueBytes or more.
   * The chunks are sent as they are, not copied: they must not change after the call.
   */
  write(chunks: readonly Buffer[]): boolean;
  /** End the request after the queued bytes (an empty DATA with END_STREAM). */
  end(): void;
  /** RST_STREAM with `code`; the stream closes at once. */
  reset(code: number): void;
  /** Request bytes queued and not yet framed (waiting for credit). */
  readonly queuedBytes: number;
  readonly closed: boolean;
}

/** SETTINGS values are 32-bit. */
const SETTING_VALUE_MAX = 2 ** 32 - 1;
/** GOAWAY's debug data we send: enough for a message, never a dump. */
const DEBUG_MESSAGE_BYTES_MAX = 256;
/** The peer's GOAWAY debug data shown in a reason: it is the peer's text, so only a bounded piece of it. */
const PEER_DEBUG_SHOWN_BYTES = 128;
const EMPTY = Buffer.alloc(0);

/** The limits with defaults filled in, checked and frozen. RangeError for a bad or unknown field. */
export function validateClientLimits(partial: Partial<ClientLimits> = {}): ClientLimits {
  const limits = mergeLimits(CLIENT_DEFAULTS, partial, 'h2 client limit');
  checkInteger('streamWindowBytes', limits.streamWindowBytes, DEFAULT_INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE);
  checkInteger('connectionWindowBytes', limits.connectionWindowBytes, DEFAULT_INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE);
  checkInteger('frameBytesMax', limits.frameBytesMax, DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT);
  checkInteger('headerListBytesMax', limits.headerListBytesMax, 1, SETTING_VALUE_MAX);
  checkInteger('headerBlockBytesMax', limits.headerBlockBytesMax, 1, Number.MAX_SAFE_INTEGER);
  checkInteger('continuationFramesMax', limits.continuationFramesMax, 0, Number.MAX_SAFE_INTEGER);
  checkInteger('concurrentStreamsMax', limits.concurrentStreamsMax, 1, SETTING_VALUE_MAX);
  checkInteger('streamSendQueueBytes', limits.streamSendQueueBytes, 1, Number.MAX_SAFE_INTEGER);
  checkBudget('controlBudget', limits.controlBudget);
  return Object.freeze(limits);
}

/** A response's header block as the listener sees it (no prototype), or why it is malformed (8.3.2). */
export function responseHeaders(fields: readonly HeaderField[], trailers: boolean): Record<string, string> | string {
  const headers = Object.create(null) as Record<string, string>;
  let regularSeen = false;
  for (const { name, value } of fields) {
    if (name.length === 0) return 'a field with an empty name';
    if (/[\0\r\n]/.test(value)) return `the value of ${name} holds NUL, CR or LF`;
    if (name.charCodeAt(0) === COLON) {
      if (trailers) return `pseudo-header ${name} in trailers`;
      if (name !== ':status') return `${name} is not a response pseudo-header`;
      if (regularSeen) return `${name} after a regular field`;
      if (headers[name] !== undefined) return `${name} appears twice`;
      headers[name] = value;
      continue;
    }
    regularSeen = true;
    if (INVALID_NAME_CHAR.test(name)) return `field name ${JSON.stringify(name)} has uppercase, a colon or a character outside visible ASCII`;
    const previous = headers[name];
    headers[name] = previous === undefined ? value : `${previous}, ${value}`;
  }
  if (!trailers && !/^[1-5][0-9][0-9]$/.test(headers[':status'] ?? '')) return `:status ${JSON.stringify(headers[':status'] ?? null)} is not a status code`;
  return headers;
}

/** One stream's state; the ClientStream the layer above holds. Its methods hand over to the connection. */
class Stream implements ClientStream {
  closed = false;
  // Receiving.
  /** The final (non-1xx) response headers arrived: DATA may follow, and a later block is trailers. */
  responded = false;
  /** END_STREAM received: half-closed (remote). */
  remoteEnded = false;
  recvWindow: number;
  creditOwed = 0;
  // Sending.
  /** END_STREAM sent: half-closed (local). */
  localEnded = false;
  /** end() was called: END_STREAM goes out once the queue is empty. */
  ending = false;
  sendWindow: number;
  /** Request bytes waiting for credit: queue[0] from headOffset, then the rest. */
  readonly queue: Buffer[] = [];
  headOffset = 0;
  queuedBytes = 0;
  waitingForConnection = false;

  constructor(
    private readonly connection: Connection,
    readonly id: number,
    readonly listener: ClientStreamListener,
    recvWindow: number,
    sendWindow: number,
  ) {
    this.recvWindow = recvWindow;
    this.sendWindow = sendWindow;
  }

  write(chunks: readonly Buffer[]): boolean {
    return this.connection.write(this, chunks);
  }

  end(): void {
    this.connection.end(this);
  }

  reset(code: number): void {
    this.connection.reset(this, code, `reset by us (${code})`);
  }
}

/**
 * The client side of one HTTP/2 connection. Bytes go in through receive(), frames come out through take(), and
 * request() opens streams. See the top of this file.
 */
export class ClientConnection {
  readonly #connection: Connection;

  constructor(events: ClientConnectionEvents, options: ClientConnectionOptions = {}) {
    this.#connection = new Connection(events, options);
  }

  /** Feed bytes read from the socket. */
  receive(chunk: Buffer): void {
    this.#connection.receive(chunk);
  }

  /** Everything to write since the last take(), the preface first. */
  take(): Buffer[] {
    return this.#connection.take();
  }

  /**
   * Open a stream with a request's header block (pseudo-headers first). Throws when canOpen is false: the glue
   * dials a new connection instead.
   */
  request(fields: readonly HeaderField[], listener: ClientStreamListener): ClientStream {
    return this.#connection.request(fields, listener);
  }

  /** Whether request() may open a stream now: not closed, no GOAWAY either way, below both stream limits. */
  get canOpen(): boolean {
    return this.#connection.canOpen;
  }

  ping(opaqueData: Buffer): void {
    this.#connection.ping(opaqueData);
  }

  /** End the connection with GOAWAY `code`: every stream closes with it. */
  fail(code: number, message: string): void {
    this.#connection.fail(code, message);
  }

  /** The socket is gone: every stream closes with CANCEL and `reason`, nothing more is sent. */
  terminate(reason: string): void {
    this.#connection.terminate(reason);
  }

  /** The peer's SETTINGS arrived (the server's preface): the connection is known to speak HTTP/2. */
  get peerSettingsSeen(): boolean {
    return this.#connection.peerSettingsSeen;
  }

  get openStreams(): number {
    return this.#connection.streams.size;
  }

  get closed(): boolean {
    return this.#connection.closed;
  }
}

/** The state machine behind ClientConnection, with its state open to the Stream objects. */
class Connection {
  private readonly limits: ClientLimits;
  private readonly now: () => number;
  private readonly reader: FrameReader;
  private readonly writer = new FrameWriter();
  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
  private readonly controlBucket: TokenBucket;
  private readonly streamCreditThreshold: number;

  readonly streams = new Map<number, Stream>();
  /** The id the next stream takes: odd, growing (5.1.1). */
  private nextStreamId = 1;
  /** The block being assembled from HEADERS and CONTINUATION frames; no other frame may come between them. */
  private readonly blocks: HeaderBlockAssembler<undefined>;

  peerSettingsSeen = false;
  private settingsAcknowledged = false;
  private peerInitialWindow = DEFAULT_INITIAL_WINDOW_SIZE;
  private peerMaxFrameBytes = DEFAULT_MAX_FRAME_SIZE;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS: unlimited until it sets one (6.5.2). */
  private peerConcurrentStreamsMax = Number.POSITIVE_INFINITY;
  private connectionSendWindow = DEFAULT_INITIAL_WINDOW_SIZE;
  private readonly connectionRecvWindow: ConnectionReceiveWindow;
  /** Streams with queued bytes and stream credit but no connection credit, served in order of arrival. */
  private readonly blocked = new ConnectionCreditQueue<Stream>();

  private goawaySent = false;
  private goawayReceived = false;
  closed = false;
  private outputSignalled = false;
  /** The magic octets went out with the first take(). */
  private prefaceSent = false;

  constructor(
    private readonly events: ClientConnectionEvents,
    options: ClientConnectionOptions,
  ) {
    const limits = validateClientLimits(options.limits);
    this.limits = limits;
    this.now = options.now ?? Date.now;
    // The server's frames are bound by the protocol's 16 KiB until it acknowledges our SETTINGS (6.5.3).
    this.reader = new FrameReader({ maxFrameBytes: DEFAULT_MAX_FRAME_SIZE });
    this.decoder = new HpackDecoder({ tableBytesMax: DEFAULT_HEADER_TABLE_SIZE, headerListBytesMax: limits.headerListBytesMax });
    this.controlBucket = new TokenBucket(limits.controlBudget, this.now());
    this.blocks = new HeaderBlockAssembler(limits);
    this.streamCreditThreshold = Math.floor(limits.streamWindowBytes / 2);
    this.connectionRecvWindow = new ConnectionReceiveWindow(limits.connectionWindowBytes);
    this.sendPreface();
    this.signalOutput();
  }

  /** The client preface (3.4): the magic octets, our SETTINGS, and the connection window raised if asked. */
  private sendPreface(): void {
    const l = this.limits;
    this.writer.settings([
      [SettingId.ENABLE_PUSH, 0],
      [SettingId.INITIAL_WINDOW_SIZE, l.streamWindowBytes],
      [SettingId.MAX_FRAME_SIZE, l.frameBytesMax],
      [SettingId.MAX_HEADER_LIST_SIZE, l.headerListBytesMax],
    ]);
    const raise = l.connectionWindowBytes - DEFAULT_INITIAL_WINDOW_SIZE;
    if (raise > 0) this.writer.windowUpdate(0, raise);
  }

  // ---- the public operations

  get canOpen(): boolean {
    const open = this.streams.size;
    return !this.closed && !this.goawayReceived && !this.goawaySent && open < this.limits.concurrentStreamsMax && open < this.peerConcurrentStreamsMax && this.nextStreamId <= STREAM_ID_MAX;
  }

  request(fields: readonly HeaderField[], listener: ClientStreamListener): Stream {
    if (!this.canOpen) throw new Error(this.closed ? 'h2 client: the connection is closed' : 'h2 client: the connection opens no more streams (GOAWAY, stream limit or ids used up)');
    const stream = new Stream(this, this.nextStreamId, listener, this.limits.streamWindowBytes, this.peerInitialWindow);
    this.nextStreamId += 2;
    this.streams.set(stream.id, stream);
    this.writer.headers(stream.id, this.encoder.encode(fields), false, this.peerMaxFrameBytes);
    this.signalOutput();
    return stream;
  }

  receive(chunk: Buffer): void {
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
      if (this.closed) return;
    }
    this.signalOutput();
  }

  take(): Buffer[] {
    this.outputSignalled = false;
    const out = this.writer.take();
    if (this.prefaceSent) return out;
    this.prefaceSent = true;
    return [CLIENT_PREFACE, ...out];
  }

  ping(opaqueData: Buffer): void {
    if (this.closed) return;
    this.writer.ping(opaqueData, false);
    this.signalOutput();
  }

  fail(code: number, message: string): void {
    if (this.closed) return;
    this.goawaySent = true;
    // A client's GOAWAY names the last stream the server opened that we processed: servers open none here.
    this.writer.goaway(0, code, Buffer.from(message, 'utf8').subarray(0, DEBUG_MESSAGE_BYTES_MAX));
    this.close(code, `connection error: ${message}`, { code, message });
  }

  terminate(reason: string): void {
    if (this.closed) return;
    this.close(ErrorCode.CANCEL, reason, undefined);
  }

  /** The end of the connection: every open stream closed with `streamCode`, then events.closed(). */
  private close(streamCode: number, reason: string, error: ConnectionError | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.blocks.clear();
    this.blocked.clear();
    for (const stream of [...this.streams.values()]) this.closeStream(stream, streamCode, reason);
    this.signalOutput();
    this.events.closed(error);
  }

  private signalOutput(): void {
    if (this.outputSignalled || this.writer.pendingBytes === 0) return;
    this.outputSignalled = true;
    this.events.output();
  }

  // ---- sending request bytes

  write(stream: Stream, chunks: readonly Buffer[]): boolean {
    if (stream.closed) return false;
    if (stream.ending) throw new Error(`stream ${stream.id}: write() after end()`);
    for (const chunk of chunks) {
      if (chunk.length === 0) continue;
      stream.queue.push(chunk);
      stream.queuedBytes += chunk.length;
    }
    this.flushStream(stream);
    this.signalOutput();
    return stream.queuedBytes < this.limits.streamSendQueueBytes;
  }

  end(stream: Stream): void {
    if (stream.closed || stream.ending) return;
    stream.ending = true;
    if (stream.queuedBytes === 0) this.sendEndStream(stream);
    this.signalOutput();
  }

  reset(stream: Stream, code: number, reason: string): void {
    if (stream.closed) return;
    this.writer.rstStream(stream.id, code);
    this.closeStream(stream, code, reason);
    this.signalOutput();
  }

  /**
   * Frames what the stream has queued, as far as both windows and the peer's frame size allow; one DATA frame may
   * span several queued chunks (a gRPC message's 5-byte header and its body leave as one frame). A stream out of
   * connection credit (but not its own) joins the FIFO that the next connection WINDOW_UPDATE serves.
   */
  private flushStream(stream: Stream): void {
    while (stream.queuedBytes > 0) {
      const n = Math.min(stream.queuedBytes, this.peerMaxFrameBytes, stream.sendWindow, this.connectionSendWindow);
      if (n <= 0) {
        if (stream.sendWindow > 0) this.blocked.add(stream);
        return;
      }
      const last = n === stream.queuedBytes && stream.ending;
      this.writer.dataOf(stream.id, this.dequeue(stream, n), last);
      stream.sendWindow -= n;
      this.connectionSendWindow -= n;
      if (last) return this.endedLocally(stream);
    }
    if (stream.ending) return this.sendEndStream(stream);
    stream.listener.drained();
  }

  /** The next `n` queued bytes as views of the queued chunks. */
  private dequeue(stream: Stream, n: number): Buffer[] {
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const head = stream.queue[0]!;
      const take = Math.min(left, head.length - stream.headOffset);
      parts.push(take === head.length ? head : head.subarray(stream.headOffset, stream.headOffset + take));
      stream.headOffset += take;
      left -= take;
      if (stream.headOffset === head.length) {
        stream.queue.shift();
        stream.headOffset = 0;
      }
    }
    stream.queuedBytes -= n;
    return parts;
  }

  private sendEndStream(stream: Stream): void {
    this.writer.data(stream.id, EMPTY, true);
    this.endedLocally(stream);
  }

  private endedLocally(stream: Stream): void {
    stream.localEnded = true;
    if (stream.remoteEnded) this.closeStream(stream, ErrorCode.NO_ERROR, 'both sides ended the stream');
  }

  /** Closes a stream once: it leaves the map, drops its queue, and its listener hears `code`. */
  private closeStream(stream: Stream, code: number, reason: string): void {
    if (stream.closed) return;
    stream.closed = true;
    this.streams.delete(stream.id);
    stream.queue.length = 0;
    stream.queuedBytes = 0;
    stream.listener.closed(code, reason);
    if (!this.closed && this.goawayReceived && this.streams.size === 0) this.close(ErrorCode.NO_ERROR, 'the peer went away', undefined);
  }

  // ---- receiving

  /**
   * A stream error becomes RST_STREAM, a connection error GOAWAY; an HPACK error leaves the tables out of step, so
   * it ends the connection (COMPRESSION_ERROR). Anything else is a bug: the connection ends and it is thrown.
   */
  private onReceiveError(e: unknown): void {
    if (e instanceof H2Error) {
      if (e.scope === 'connection') return this.fail(e.code, e.message);
      const stream = this.streams.get(e.streamId);
      if (stream !== undefined) return this.reset(stream, e.code, e.message);
      // A stream that closed meanwhile: tell the peer anyway, so it stops sending on it.
      this.writer.rstStream(e.streamId, e.code);
      return;
    }
    if (e instanceof HpackError) return this.fail(ErrorCode.COMPRESSION_ERROR, e.message);
    this.fail(ErrorCode.INTERNAL_ERROR, 'internal error');
    throw e;
  }

  /** Ids we have not opened yet (or, being even, never can: we turned push off): most frames on them are errors. */
  private isIdle(streamId: number): boolean {
    return (streamId & 1) === 0 || streamId >= this.nextStreamId;
  }

  private spendControl(what: string): void {
    if (!this.controlBucket.take(this.now())) throw connectionError(ErrorCode.ENHANCE_YOUR_CALM, `too many ${what}`);
  }

  private onFrame(frame: Frame): void {
    this.blocks.checkInterleaving(frame);
    if (!this.peerSettingsSeen) {
      // The server's preface is a SETTINGS frame (3.4).
      if (frame.type !== FrameType.SETTINGS || (frame.flags & Flag.ACK) !== 0) {
        throw connectionError(ErrorCode.PROTOCOL_ERROR, `the server's first frame is ${frameTypeName(frame.type)}, not SETTINGS`);
      }
      this.peerSettingsSeen = true;
    }
    switch (frame.type) {
      case FrameType.DATA:
        return this.onData(frame);
      case FrameType.HEADERS:
        return this.onHeaders(frame);
      case FrameType.RST_STREAM:
        return this.onRstStream(frame);
      case FrameType.SETTINGS:
        return this.onSettings(frame);
      case FrameType.PUSH_PROMISE:
        // We announced SETTINGS_ENABLE_PUSH 0, so a promise is a protocol error (8.4).
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
        // PRIORITY (deprecated) and extension frames carry nothing we use (4.1, 5.3.2).
        return;
    }
  }

  private onSettings(frame: Frame): void {
    const settings = parseSettings(frame);
    if (settings.ack) {
      if (this.settingsAcknowledged) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS ACK with no SETTINGS unacknowledged');
      this.settingsAcknowledged = true;
      // From the ACK on, the peer's frames are bound by our SETTINGS_MAX_FRAME_SIZE (6.5.3).
      this.reader.setMaxFrameBytes(this.limits.frameBytesMax);
      return;
    }
    this.spendControl('SETTINGS frames');
    let windowGrew = false;
    for (const [id, value] of settings.entries) {
      if (id === SettingId.HEADER_TABLE_SIZE) this.encoder.setPeerTableBytesMax(value);
      else if (id === SettingId.INITIAL_WINDOW_SIZE) windowGrew = this.setPeerInitialWindow(value) || windowGrew;
      else if (id === SettingId.MAX_FRAME_SIZE) this.peerMaxFrameBytes = value;
      else if (id === SettingId.MAX_CONCURRENT_STREAMS) this.peerConcurrentStreamsMax = value;
      // A server may only send ENABLE_PUSH 0 (6.5.2).
      else if (id === SettingId.ENABLE_PUSH && value !== 0) throw connectionError(ErrorCode.PROTOCOL_ERROR, 'a server sent SETTINGS_ENABLE_PUSH 1');
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
      this.events.pingAcknowledged?.(Buffer.from(ping.opaqueData));
      return;
    }
    this.spendControl('PING frames');
    this.writer.ping(ping.opaqueData, true);
  }

  /**
   * The peer processes no stream above lastStreamId: those close with REFUSED_STREAM (never processed, safe to
   * retry). The rest run to their end; with none left, the connection closes. We open nothing more on it.
   */
  private onGoaway(frame: Frame): void {
    const goaway = parseGoaway(frame);
    const debug = goaway.debugData.subarray(0, PEER_DEBUG_SHOWN_BYTES).toString('utf8');
    const reason = `the peer went away (GOAWAY ${goaway.errorCode}${debug === '' ? '' : `: ${debug}`})`;
    // An error: the peer closes the connection next, whatever the last stream id says.
    if (goaway.errorCode !== ErrorCode.NO_ERROR) return this.close(goaway.errorCode, reason, { code: goaway.errorCode, message: reason });
    this.goawayReceived = true;
    for (const stream of [...this.streams.values()]) {
      if (stream.id > goaway.lastStreamId) this.closeStream(stream, ErrorCode.REFUSED_STREAM, reason);
    }
    if (this.streams.size === 0) this.close(ErrorCode.NO_ERROR, reason, undefined);
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
    // A stream that closed: the credit was in flight.
    if (stream === undefined) return;
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW_SIZE) throw streamError(streamId, ErrorCode.FLOW_CONTROL_ERROR, `stream ${streamId}'s window past ${MAX_WINDOW_SIZE}`);
    if (stream.queuedBytes > 0) this.flushStream(stream);
  }

  private onRstStream(frame: Frame): void {
    const code = parseRstStream(frame);
    if (this.isIdle(frame.streamId)) throw connectionError(ErrorCode.PROTOCOL_ERROR, `RST_STREAM on idle stream ${frame.streamId}`);
    const stream = this.streams.get(frame.streamId);
    if (stream !== undefined) this.closeStream(stream, code, `the peer reset the stream (RST_STREAM ${code})`);
  }

  private onHeaders(frame: Frame): void {
    const headers = parseHeaders(frame);
    // A server opens no streams without PUSH_PROMISE, which we turned off (8.4): an id we did not open is an error.
    if (this.isIdle(frame.streamId)) throw connectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${frame.streamId}, which we did not open`);
    if (headers.endHeaders) return this.onHeaderBlock(frame.streamId, headers.fragment, headers.endStream);
    this.blocks.begin(frame.streamId, headers.fragment, headers.endStream, undefined);
  }

  private onContinuation(frame: Frame): void {
    const complete = this.blocks.continue(frame);
    if (complete !== undefined) this.onHeaderBlock(complete.streamId, complete.block, complete.endStream);
  }

  /** A complete header block: decoded whatever becomes of its stream, so that HPACK's tables stay in step. */
  private onHeaderBlock(streamId: number, block: Buffer, endStream: boolean): void {
    const decoded = this.decoder.decode(block);
    const stream = this.streams.get(streamId);
    // A stream we reset: what the peer sent before reading our RST_STREAM is dropped (5.1).
    if (stream === undefined) return;
    if (stream.remoteEnded) throw streamError(streamId, ErrorCode.STREAM_CLOSED, `HEADERS on stream ${streamId} after its END_STREAM`);
    if (decoded.oversized) throw streamError(streamId, ErrorCode.ENHANCE_YOUR_CALM, `headers of stream ${streamId} past ${this.limits.headerListBytesMax} bytes`);
    const trailers = stream.responded;
    const fields = responseHeaders(decoded.fields, trailers);
    if (typeof fields === 'string') throw streamError(streamId, ErrorCode.PROTOCOL_ERROR, `malformed response on stream ${streamId}: ${fields}`);
    if (trailers && !endStream) throw streamError(streamId, ErrorCode.PROTOCOL_ERROR, `trailers on stream ${streamId} without END_STREAM`);
    if (!trailers) {
      const informational = fields[':status']!.charCodeAt(0) === 0x31;
      if (informational && endStream) throw streamError(streamId, ErrorCode.PROTOCOL_ERROR, `an informational response ends stream ${streamId}`);
      // 1xx responses come before the final one and are skipped (8.1).
      if (informational) return;
      stream.responded = true;
    }
    if (endStream) stream.remoteEnded = true;
    stream.listener.headers(fields, endStream);
    if (endStream) this.remoteEnded(stream);
  }

  private onData(frame: Frame): void {
    const data = parseData(frame);
    const length = data.flowControlledLength;
    if (this.isIdle(frame.streamId)) throw connectionError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${frame.streamId}`);
    this.connectionRecvWindow.consume(length);
    // Credited back at once whatever becomes of it, so both sides keep the same account (6.9).
    this.connectionRecvWindow.credit(length, this.writer);
    const stream = this.streams.get(frame.streamId);
    if (stream === undefined) return;
    if (!stream.responded) throw streamError(stream.id, ErrorCode.PROTOCOL_ERROR, `DATA on stream ${stream.id} before its response headers`);
    if (stream.remoteEnded) throw streamError(stream.id, ErrorCode.STREAM_CLOSED, `DATA on stream ${stream.id} after its END_STREAM`);
    stream.recvWindow -= length;
    if (stream.recvWindow < 0) throw streamError(stream.id, ErrorCode.FLOW_CONTROL_ERROR, `DATA on stream ${stream.id} beyond its window`);
    if (data.endStream) stream.remoteEnded = true;
    stream.listener.data(data.data, data.endStream);
    if (data.endStream) return this.remoteEnded(stream);
    if (!stream.closed && length > 0) this.creditStream(stream, length);
  }

  /** The response is complete: with our END_STREAM out too, the stream is done. */
  private remoteEnded(stream: Stream): void {
    if (stream.localEnded) this.closeStream(stream, ErrorCode.NO_ERROR, 'both sides ended the stream');
  }

  private creditStream(stream: Stream, length: number): void {
    stream.creditOwed += length;
    if (stream.creditOwed < this.streamCreditThreshold) return;
    this.writer.windowUpdate(stream.id, stream.creditOwed);
    stream.recvWindow += stream.creditOwed;
    stream.creditOwed = 0;
  }
}
