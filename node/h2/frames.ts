// HTTP/2 framing (RFC 9113 sections 4 and 6) for the pure-JavaScript HTTP/2 engine behind the client API: the
// constants of the protocol, an incremental reader that cuts a socket's bytes into frames, a parser per frame type
// that checks what the RFC says about that frame on its own, and a writer that packs outgoing frames into few
// buffers so the connection writes each event-loop turn's frames with one socket write.
//
// What needs the connection's state is left to the connection: stream states (idle, open, closed), that
// CONTINUATION follows the HEADERS it continues, that SETTINGS is the first frame after the preface, flow-control
// windows, stream id parity and ordering, and HPACK (node/h2/hpack.ts).

/** Frame types (RFC 9113 section 6). Any other type is an extension frame, which the connection ignores (4.1). */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags. Their meaning depends on the frame type; flags a type does not define are ignored (4.1). */
export const Flag = {
  /** DATA, HEADERS: the sender's last frame on the stream. */
  END_STREAM: 0x1,
  /** SETTINGS, PING: an acknowledgement. */
  ACK: 0x1,
  /** HEADERS, PUSH_PROMISE, CONTINUATION: the field block ends in this frame. */
  END_HEADERS: 0x4,
  /** DATA, HEADERS, PUSH_PROMISE: a Pad Length octet comes first and that much padding last. */
  PADDED: 0x8,
  /** HEADERS: the (deprecated) priority fields follow the padding length. */
  PRIORITY: 0x20,
} as const;

/** Error codes of RST_STREAM and GOAWAY (RFC 9113 section 7). */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

/** SETTINGS parameters (RFC 9113 section 6.5.2; ENABLE_CONNECT_PROTOCOL is RFC 8441's). */
export const SettingId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  ENABLE_CONNECT_PROTOCOL: 0x8,
} as const;

/** What a client sends before its first frame (3.4); a server reads it first, or answers PROTOCOL_ERROR. */
export const CLIENT_PREFACE: Buffer = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Length (24 bits), type, flags, reserved bit and stream id (31 bits). */
export const FRAME_HEADER_BYTES = 9;
/** SETTINGS_INITIAL_WINDOW_SIZE until the peer says otherwise, and every connection window's start (6.9.2). */
export const DEFAULT_INITIAL_WINDOW_SIZE = 65_535;
/** SETTINGS_MAX_FRAME_SIZE until the peer says otherwise; also the least an endpoint may announce (6.5.2). */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
/** The most SETTINGS_MAX_FRAME_SIZE may be: the largest number the 24-bit length field holds (6.5.2). */
export const MAX_FRAME_SIZE_LIMIT = 2 ** 24 - 1;
/** The largest flow-control window, and so the largest SETTINGS_INITIAL_WINDOW_SIZE (6.9.1). */
export const MAX_WINDOW_SIZE = 2 ** 31 - 1;
/** Stream ids have 31 bits; the 32nd (reserved) bit is ignored on receipt and sent as 0 (4.1). */
export const STREAM_ID_MAX = 2 ** 31 - 1;
/** SETTINGS_HEADER_TABLE_SIZE until the peer says otherwise (6.5.2). */
export const DEFAULT_HEADER_TABLE_SIZE = 4096;

/** Identifier and value of one SETTINGS parameter. */
const SETTING_BYTES = 6;
/** Opaque data of a PING. */
const PING_BYTES = 8;
/** RST_STREAM's error code. */
const RST_STREAM_BYTES = 4;
/** WINDOW_UPDATE's reserved bit and 31-bit increment. */
const WINDOW_UPDATE_BYTES = 4;
/** PRIORITY's exclusive bit, stream dependency and weight; the same fields HEADERS carries under its PRIORITY flag. */
const PRIORITY_BYTES = 5;
/** GOAWAY's last stream id and error code, before the optional debug data. */
const GOAWAY_FIXED_BYTES = 8;
/** The Pad Length octet of a PADDED frame. */
const PAD_LENGTH_BYTES = 1;
const RESERVED_BIT_MASK = 0x7fff_ffff;

const FRAME_TYPE_NAMES = invert(FrameType);
const ERROR_CODE_NAMES = invert(ErrorCode);
const KNOWN_SETTINGS = new Set<number>(Object.values(SettingId));

function invert(table: Readonly<Record<string, number>>): Map<number, string> {
  return new Map(Object.entries(table).map(([name, value]) => [value, name]));
}

/** The RFC's name of a frame type, or `UNKNOWN(0x..)` for an extension. */
export function frameTypeName(type: number): string {
  return FRAME_TYPE_NAMES.get(type) ?? `UNKNOWN(0x${type.toString(16)})`;
}

/** The RFC's name of an error code; unknown codes are legal on the wire and must not be treated specially (7). */
export function errorCodeName(code: number): string {
  return ERROR_CODE_NAMES.get(code) ?? `UNKNOWN_ERROR(0x${code.toString(16)})`;
}

/**
 * A protocol violation seen in the peer's frames. The connection answers a connection error with GOAWAY(code) and
 * closes, and a stream error with RST_STREAM(streamId, code) (RFC 9113 5.4).
 */
export class H2Error extends Error {
  constructor(
    readonly code: number,
    readonly scope: 'connection' | 'stream',
    /** The stream a stream error is about; 0 for a connection error. */
    readonly streamId: number,
    message: string,
  ) {
    super(`${errorCodeName(code)}: ${message}`);
    this.name = 'H2Error';
  }
}

export function connectionError(code: number, message: string): H2Error {
  return new H2Error(code, 'connection', 0, message);
}

export function streamError(streamId: number, code: number, message: string): H2Error {
  return new H2Error(code, 'stream', streamId, message);
}

/** One frame as read. The payload is a view of the bytes read (no copy when it arrived within one chunk). */
export interface Frame {
  readonly type: number;
  readonly flags: number;
  /** With the reserved bit masked off. */
  readonly streamId: number;
  readonly payload: Buffer;
}

export interface FrameReaderOptions {
  /** The largest payload accepted: our SETTINGS_MAX_FRAME_SIZE as the peer knows it. */
  maxFrameBytes?: number;
  /** A server's reader: the 24-byte client preface comes before the first frame. */
  expectPreface?: boolean;
}

/** No chunk yet, or the last one consumed. */
const EMPTY = Buffer.alloc(0);
/** `length` while the reader has no complete header of the frame it is reading. */
const NO_HEADER = -1;

/**
 * Cuts bytes arriving in arbitrary chunks into frames. Feed it with `push(chunk)`, then call `next()` until it
 * returns undefined (more bytes needed) before pushing again:
 *
 *     reader.push(chunk);
 *     for (let frame = reader.next(); frame !== undefined; frame = reader.next()) handle(frame);
 *
 * A payload that lies within the chunk is a subarray of it; one that spans chunks is assembled in a buffer of its
 * exact length, allocated once its header is read and the length checked. So besides the chunk being read (the
 * caller's), the reader holds at most one frame's payload and a 9-byte header, whatever the peer sends: a frame
 * longer than maxFrameBytes is refused from its header, before any of its payload is buffered.
 *
 * After it throws an H2Error the reader is broken (it throws the same error again): a connection error ends the
 * connection. Stream errors come from the payload parsers, never from the reader.
 */
export class FrameReader {
  private maxFrameBytes: number;
  /** Bytes of CLIENT_PREFACE still to match; 0 once matched or when not expected. */
  private prefaceLeft: number;
  private chunk: Buffer = EMPTY;
  private pos = 0;
  /** A frame header split across chunks is gathered here. */
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  /** The frame being read, once its header is complete; `length` is NO_HEADER before. */
  private length = NO_HEADER;
  private type = 0;
  private flags = 0;
  private streamId = 0;
  /** A payload split across chunks is assembled here; null when none is. */
  private partial: Buffer | null = null;
  private partialFilled = 0;
  private failure: H2Error | null = null;

  constructor(options: FrameReaderOptions = {}) {
    this.maxFrameBytes = checkMaxFrameBytes(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_SIZE);
    this.prefaceLeft = options.expectPreface === true ? CLIENT_PREFACE.length : 0;
  }

  /**
   * Our SETTINGS_MAX_FRAME_SIZE, from when the peer acknowledged the SETTINGS announcing it: frames it sent before
   * its ACK were bound by the previous value, and the ACK arrives in order with them.
   */
  setMaxFrameBytes(n: number): void {
    this.maxFrameBytes = checkMaxFrameBytes(n);
  }

  /** The next bytes from the socket. The previous chunk must have been read to the end (`next()` undefined). */
  push(chunk: Buffer): void {
    if (this.pos < this.chunk.length) throw new Error('FrameReader.push: the previous chunk was not read to the end');
    this.chunk = chunk;
    this.pos = 0;
  }

  /** True between frames: no part of a preface or frame is waiting for more bytes. */
  get atFrameBoundary(): boolean {
    const prefaceBetween = this.prefaceLeft === 0 || this.prefaceLeft === CLIENT_PREFACE.length;
    return this.pos >= this.chunk.length && this.headerFilled === 0 && this.length === NO_HEADER && prefaceBetween;
  }

  /** The next complete frame, or undefined when the bytes pushed so far end before one does. */
  next(): Frame | undefined {
    if (this.failure !== null) throw this.failure;
    try {
      const frame = this.read();
      // Drained: let go of the chunk so it can be collected unless frames still refer to it.
      if (frame === undefined) this.chunk = EMPTY;
      return frame;
    } catch (e) {
      if (e instanceof H2Error) this.failure = e;
      throw e;
    }
  }

  private read(): Frame | undefined {
    if (this.prefaceLeft > 0 && !this.readPreface()) return undefined;
    if (this.length === NO_HEADER && !this.readHeader()) return undefined;
    return this.readPayload();
  }

  /** Matches the preface byte by byte, so a wrong one (an HTTP/1.1 request, say) fails at its first wrong byte. */
  private readPreface(): boolean {
    const chunk = this.chunk;
    let p = this.pos;
    let i = CLIENT_PREFACE.length - this.prefaceLeft;
    while (i < CLIENT_PREFACE.length && p < chunk.length) {
      if (chunk[p] !== CLIENT_PREFACE[i]) throw connectionError(ErrorCode.PROTOCOL_ERROR, describeBadPreface(chunk, p, i));
      p++;
      i++;
    }
    this.pos = p;
    this.prefaceLeft = CLIENT_PREFACE.length - i;
    return this.prefaceLeft === 0;
  }

  /** Reads the 9-byte header, from the chunk directly when it is all there. False when more bytes are needed. */
  private readHeader(): boolean {
    let src: Buffer = this.chunk;
    let at = this.pos;
    if (this.headerFilled > 0 || this.chunk.length - this.pos < FRAME_HEADER_BYTES) {
      const n = Math.min(FRAME_HEADER_BYTES - this.headerFilled, this.chunk.length - this.pos);
      this.chunk.copy(this.header, this.headerFilled, this.pos, this.pos + n);
      this.headerFilled += n;
      this.pos += n;
      if (this.headerFilled < FRAME_HEADER_BYTES) return false;
      this.headerFilled = 0;
      src = this.header;
      at = 0;
    } else {
      this.pos += FRAME_HEADER_BYTES;
    }
    const length = (src[at]! << 16) | (src[at + 1]! << 8) | src[at + 2]!;
    if (length > this.maxFrameBytes) {
      throw connectionError(
        ErrorCode.FRAME_SIZE_ERROR,
        `${frameTypeName(src[at + 3]!)} frame of ${length} bytes is longer than SETTINGS_MAX_FRAME_SIZE ${this.maxFrameBytes}`,
      );
    }
    this.length = length;
    this.type = src[at + 3]!;
    this.flags = src[at + 4]!;
    this.streamId = src.readUInt32BE(at + 5) & RESERVED_BIT_MASK;
    return true;
  }

  /** The payload as a view of the chunk when it is all there, else assembled across chunks. */
  private readPayload(): Frame | undefined {
    const available = this.chunk.length - this.pos;
    if (this.partial === null) {
      if (available >= this.length) {
        const payload = this.chunk.subarray(this.pos, this.pos + this.length);
        this.pos += this.length;
        return this.emit(payload);
      }
      this.partial = Buffer.allocUnsafe(this.length);
      this.partialFilled = 0;
    }
    const n = Math.min(this.length - this.partialFilled, available);
    this.chunk.copy(this.partial, this.partialFilled, this.pos, this.pos + n);
    this.partialFilled += n;
    this.pos += n;
    if (this.partialFilled < this.length) return undefined;
    const payload = this.partial;
    this.partial = null;
    return this.emit(payload);
  }

  private emit(payload: Buffer): Frame {
    this.length = NO_HEADER;
    return { type: this.type, flags: this.flags, streamId: this.streamId, payload };
  }
}

function checkMaxFrameBytes(n: number): number {
  if (!Number.isInteger(n) || n < DEFAULT_MAX_FRAME_SIZE || n > MAX_FRAME_SIZE_LIMIT) {
    throw new RangeError(`max frame size ${n} is outside [${DEFAULT_MAX_FRAME_SIZE}, ${MAX_FRAME_SIZE_LIMIT}]`);
  }
  return n;
}

/** How many of the bad bytes a preface error quotes: enough to recognise an HTTP/1.1 request line. */
const BAD_PREFACE_QUOTE_BYTES = 24;

function describeBadPreface(chunk: Buffer, at: number, matched: number): string {
  const start = Math.max(0, at - matched);
  const quoted = JSON.stringify(chunk.toString('latin1', start, Math.min(chunk.length, start + BAD_PREFACE_QUOTE_BYTES)));
  const http1 = /^[A-Z]+ \S+ HTTP\/1\.[01]/.test(chunk.toString('latin1', start, start + BAD_PREFACE_QUOTE_BYTES));
  return `expected the HTTP/2 client preface at byte ${matched}, got ${quoted}${http1 ? ' (an HTTP/1.1 request)' : ''}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Payload parsers. Each checks what RFC 9113 section 6 says about its frame type on its own, throwing H2Error with
// the scope the RFC gives. The caller has dispatched on frame.type.

export interface DataFrame {
  /** The data, without padding: a view of the payload. */
  readonly data: Buffer;
  /** What the frame counts against the flow-control windows: the whole payload, padding included (6.9.1). */
  readonly flowControlledLength: number;
  readonly endStream: boolean;
}

/** DATA (6.1). */
export function parseData(frame: Frame): DataFrame {
  requireStream(frame);
  const { start, end } = unpad(frame, 0);
  return {
    data: start === 0 && end === frame.payload.length ? frame.payload : frame.payload.subarray(start, end),
    flowControlledLength: frame.payload.length,
    endStream: (frame.flags & Flag.END_STREAM) !== 0,
  };
}

/** The stream a HEADERS frame's PRIORITY fields name, when it has them (they are deprecated but still sent). */
export interface PriorityFields {
  readonly exclusive: boolean;
  readonly dependency: number;
  /** 1..256: the octet on the wire plus one. */
  readonly weight: number;
}

export interface HeadersFrame {
  /** The field block fragment, without padding or priority fields: a view of the payload. */
  readonly fragment: Buffer;
  readonly endStream: boolean;
  readonly endHeaders: boolean;
  /**
   * Present when the PRIORITY flag is. A stream depending on itself is a stream error (5.3.1), which the connection
   * raises only after decoding the field block: skipping the block would desynchronise HPACK for the whole
   * connection, so the parser cannot throw it.
   */
  readonly priority: PriorityFields | undefined;
}

/** HEADERS (6.2). */
export function parseHeaders(frame: Frame): HeadersFrame {
  requireStream(frame);
  const hasPriority = (frame.flags & Flag.PRIORITY) !== 0;
  const { start, end } = unpad(frame, hasPriority ? PRIORITY_BYTES : 0);
  const fragmentStart = hasPriority ? start + PRIORITY_BYTES : start;
  return {
    fragment: fragmentStart === 0 && end === frame.payload.length ? frame.payload : frame.payload.subarray(fragmentStart, end),
    endStream: (frame.flags & Flag.END_STREAM) !== 0,
    endHeaders: (frame.flags & Flag.END_HEADERS) !== 0,
    priority: hasPriority ? priorityFields(frame.payload, start) : undefined,
  };
}

/** PRIORITY (6.3). Only parsed to be checked: the RFC deprecates the signal and we do not prioritise. */
export function parsePriority(frame: Frame): PriorityFields {
  requireStream(frame);
  if (frame.payload.length !== PRIORITY_BYTES) {
    throw streamError(frame.streamId, ErrorCode.FRAME_SIZE_ERROR, `PRIORITY payload of ${frame.payload.length} bytes, not ${PRIORITY_BYTES}`);
  }
  const priority = priorityFields(frame.payload, 0);
  if (priority.dependency === frame.streamId) {
    throw streamError(frame.streamId, ErrorCode.PROTOCOL_ERROR, `stream ${frame.streamId} depends on itself`);
  }
  return priority;
}

/** RST_STREAM (6.4): the error code. */
export function parseRstStream(frame: Frame): number {
  requireStream(frame);
  requireLength(frame, RST_STREAM_BYTES);
  return frame.payload.readUInt32BE(0);
}

export interface SettingsFrame {
  readonly ack: boolean;
  /** [identifier, value] in the order sent (a later value for the same id wins); unknown ids left out (6.5.2). */
  readonly entries: [id: number, value: number][];
}

/** SETTINGS (6.5). */
export function parseSettings(frame: Frame): SettingsFrame {
  requireConnection(frame);
  const payload = frame.payload;
  if ((frame.flags & Flag.ACK) !== 0) {
    if (payload.length !== 0) throw connectionError(ErrorCode.FRAME_SIZE_ERROR, `SETTINGS ACK with a ${payload.length}-byte payload`);
    return { ack: true, entries: [] };
  }
  if (payload.length % SETTING_BYTES !== 0) {
    throw connectionError(ErrorCode.FRAME_SIZE_ERROR, `SETTINGS payload of ${payload.length} bytes is not a multiple of ${SETTING_BYTES}`);
  }
  const entries: [number, number][] = [];
  for (let p = 0; p < payload.length; p += SETTING_BYTES) {
    const id = payload.readUInt16BE(p);
    const value = payload.readUInt32BE(p + 2);
    if (!KNOWN_SETTINGS.has(id)) continue;
    checkSetting(id, value);
    entries.push([id, value]);
  }
  return { ack: false, entries };
}

function checkSetting(id: number, value: number): void {
  if ((id === SettingId.ENABLE_PUSH || id === SettingId.ENABLE_CONNECT_PROTOCOL) && value > 1) {
    throw connectionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS ${id === SettingId.ENABLE_PUSH ? 'ENABLE_PUSH' : 'ENABLE_CONNECT_PROTOCOL'} = ${value}, not 0 or 1`);
  }
  if (id === SettingId.INITIAL_WINDOW_SIZE && value > MAX_WINDOW_SIZE) {
    throw connectionError(ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value} is above ${MAX_WINDOW_SIZE}`);
  }
  if (id === SettingId.MAX_FRAME_SIZE && (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT)) {
    throw connectionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} is outside [${DEFAULT_MAX_FRAME_SIZE}, ${MAX_FRAME_SIZE_LIMIT}]`);
  }
}

/**
 * PUSH_PROMISE (6.6) is what a server sends; a client cannot, since SETTINGS_ENABLE_PUSH does not apply to it
 * (8.4). A server therefore always answers it with this connection error.
 */
export function rejectPushPromise(frame: Frame): never {
  throw connectionError(ErrorCode.PROTOCOL_ERROR, `PUSH_PROMISE received on stream ${frame.streamId}: a client cannot push`);
}

export interface PingFrame {
  readonly ack: boolean;
  /** 8 bytes, echoed in the ACK: a view of the payload. */
  readonly opaqueData: Buffer;
}

/** PING (6.7). */
export function parsePing(frame: Frame): PingFrame {
  requireConnection(frame);
  requireLength(frame, PING_BYTES);
  return { ack: (frame.flags & Flag.ACK) !== 0, opaqueData: frame.payload };
}

export interface GoawayFrame {
  readonly lastStreamId: number;
  readonly errorCode: number;
  /** A view of the payload; diagnostic only. */
  readonly debugData: Buffer;
}

/** GOAWAY (6.8). */
export function parseGoaway(frame: Frame): GoawayFrame {
  requireConnection(frame);
  if (frame.payload.length < GOAWAY_FIXED_BYTES) {
    throw connectionError(ErrorCode.FRAME_SIZE_ERROR, `GOAWAY payload of ${frame.payload.length} bytes, shorter than ${GOAWAY_FIXED_BYTES}`);
  }
  return {
    lastStreamId: frame.payload.readUInt32BE(0) & RESERVED_BIT_MASK,
    errorCode: frame.payload.readUInt32BE(4),
    debugData: frame.payload.subarray(GOAWAY_FIXED_BYTES),
  };
}

/** WINDOW_UPDATE (6.9): the increment, 1..2^31-1. Applies to the connection window when on stream 0. */
export function parseWindowUpdate(frame: Frame): number {
  requireLength(frame, WINDOW_UPDATE_BYTES);
  const increment = frame.payload.readUInt32BE(0) & RESERVED_BIT_MASK;
  if (increment === 0) {
    const message = `WINDOW_UPDATE with increment 0 on stream ${frame.streamId}`;
    throw frame.streamId === 0 ? connectionError(ErrorCode.PROTOCOL_ERROR, message) : streamError(frame.streamId, ErrorCode.PROTOCOL_ERROR, message);
  }
  return increment;
}

export interface ContinuationFrame {
  /** The next piece of the field block: the whole payload (CONTINUATION has no padding). */
  readonly fragment: Buffer;
  readonly endHeaders: boolean;
}

/** CONTINUATION (6.10). That it follows a HEADERS on the same stream without END_HEADERS is the connection's check. */
export function parseContinuation(frame: Frame): ContinuationFrame {
  requireStream(frame);
  return { fragment: frame.payload, endHeaders: (frame.flags & Flag.END_HEADERS) !== 0 };
}

/** DATA, HEADERS, PRIORITY, RST_STREAM, CONTINUATION belong to a stream: on stream 0 they are a connection error. */
function requireStream(frame: Frame): void {
  if (frame.streamId === 0) throw connectionError(ErrorCode.PROTOCOL_ERROR, `${frameTypeName(frame.type)} frame on stream 0`);
}

/** SETTINGS, PING, GOAWAY belong to the connection: on any other stream they are a connection error. */
function requireConnection(frame: Frame): void {
  if (frame.streamId !== 0) {
    throw connectionError(ErrorCode.PROTOCOL_ERROR, `${frameTypeName(frame.type)} frame on stream ${frame.streamId}, not 0`);
  }
}

/** A fixed-size payload of the wrong size: a connection error for every type that has one except PRIORITY. */
function requireLength(frame: Frame, bytes: number): void {
  if (frame.payload.length !== bytes) {
    throw connectionError(ErrorCode.FRAME_SIZE_ERROR, `${frameTypeName(frame.type)} payload of ${frame.payload.length} bytes, not ${bytes}`);
  }
}

/**
 * Where the content of a DATA or HEADERS payload lies once the Pad Length octet and the padding are set aside, the
 * content starting with `fixedBytes` of mandatory fields. Padding that leaves no room for them is a connection
 * PROTOCOL_ERROR (6.1, 6.2); a payload too short for its mandatory fields is a FRAME_SIZE_ERROR (4.2).
 */
function unpad(frame: Frame, fixedBytes: number): { start: number; end: number } {
  const payload = frame.payload;
  const start = (frame.flags & Flag.PADDED) !== 0 ? PAD_LENGTH_BYTES : 0;
  if (payload.length < start + fixedBytes) {
    throw connectionError(ErrorCode.FRAME_SIZE_ERROR, `${frameTypeName(frame.type)} payload of ${payload.length} bytes is too short for its fields`);
  }
  const padding = start === 0 ? 0 : payload[0]!;
  if (padding > payload.length - start - fixedBytes) {
    throw connectionError(
      ErrorCode.PROTOCOL_ERROR,
      `${frameTypeName(frame.type)} padding of ${padding} bytes exceeds the ${payload.length - start - fixedBytes} bytes of content`,
    );
  }
  return { start, end: payload.length - padding };
}

function priorityFields(payload: Buffer, at: number): PriorityFields {
  const word = payload.readUInt32BE(at);
  return { exclusive: word >>> 31 === 1, dependency: word & RESERVED_BIT_MASK, weight: payload[at + 4]! + 1 };
}

// ---------------------------------------------------------------------------------------------------------------
// Writer.

/**
 * Size of the buffers small frames are packed into. A turn's typical output (HEADERS, DATA and trailers for up to
 * a hundred calls, some 100 bytes each) fits in one, so the connection writes one buffer rather than hundreds.
 */
const SLAB_BYTES = 64 * 1024;
/**
 * Payloads at least this long are handed to the socket as they are, not copied into the slab: the copy would cost
 * more than the extra buffer in the write. Below it, copying is cheaper than a separate write entry.
 */
const REFERENCE_MIN_BYTES = 4096;

/**
 * Builds outgoing frames. Each method appends one frame (headers() may append several); take() returns everything
 * appended since the last take(), for the connection to write at once (socket.cork(), write each, uncork()).
 *
 * Small frames are packed together into a shared slab, and take() returns views of it; the slab is never written
 * over once taken, a new one is started when it is full. A payload of REFERENCE_MIN_BYTES or more is returned as
 * the caller's buffer rather than copied: it must not change until written.
 */
export class FrameWriter {
  private readonly slabBytes: number;
  private slab: Buffer;
  /** Where the slab's bytes not yet taken begin, and where the next byte goes. */
  private segmentStart = 0;
  private len = 0;
  /** Buffers finished since the last take(), in order; the open slab segment comes after them. */
  private chunks: Buffer[] = [];
  private chunkBytes = 0;

  /** `slabBytes` is for tests, which make it small so that slabs fill up often. */
  constructor(options: { slabBytes?: number } = {}) {
    this.slabBytes = options.slabBytes ?? SLAB_BYTES;
    this.slab = Buffer.allocUnsafe(this.slabBytes);
  }

  /** Bytes appended and not yet taken. */
  get pendingBytes(): number {
    return this.chunkBytes + this.len - this.segmentStart;
  }

  /** Everything appended since the last take(), in order. */
  take(): Buffer[] {
    this.closeSegment();
    const out = this.chunks;
    this.chunks = [];
    this.chunkBytes = 0;
    return out;
  }

  /** One DATA frame. Splitting by the peer's SETTINGS_MAX_FRAME_SIZE and flow-control windows is the caller's. */
  data(streamId: number, bytes: Uint8Array, endStream: boolean): void {
    checkStreamId(streamId, 1);
    this.frame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, bytes, 0, bytes.length);
  }

  /**
   * One DATA frame whose payload is `parts` in order (a gRPC message's header and body, or a window's worth of
   * queued chunks), without joining them first: small parts are copied into the slab, large ones referenced.
   */
  dataOf(streamId: number, parts: readonly Uint8Array[], endStream: boolean): void {
    checkStreamId(streamId, 1);
    let length = 0;
    let inline = 0;
    for (const part of parts) {
      length += part.length;
      if (part.length < REFERENCE_MIN_BYTES) inline += part.length;
    }
    this.header(length, FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, inline);
    for (const part of parts) this.payload(part, 0, part.length);
  }

  /**
   * A field block as HEADERS followed by CONTINUATION frames, each at most `maxFrameBytes` (the peer's
   * SETTINGS_MAX_FRAME_SIZE). END_STREAM goes on the HEADERS frame only (6.2) and END_HEADERS on the last frame.
   */
  headers(streamId: number, block: Uint8Array, endStream: boolean, maxFrameBytes: number): void {
    checkStreamId(streamId, 1);
    checkMaxFrameBytes(maxFrameBytes);
    let off = 0;
    let type: number = FrameType.HEADERS;
    let flags: number = endStream ? Flag.END_STREAM : 0;
    do {
      const n = Math.min(block.length - off, maxFrameBytes);
      const last = off + n === block.length;
      this.frame(type, last ? flags | Flag.END_HEADERS : flags, streamId, block, off, n);
      off += n;
      type = FrameType.CONTINUATION;
      flags = 0;
    } while (off < block.length);
  }

  /** SETTINGS with the given [identifier, value] pairs, in order. */
  settings(entries: readonly (readonly [id: number, value: number])[]): void {
    this.header(entries.length * SETTING_BYTES, FrameType.SETTINGS, 0, 0);
    for (const [id, value] of entries) {
      this.slab.writeUInt16BE(id, this.len);
      this.slab.writeUInt32BE(value, this.len + 2);
      this.len += SETTING_BYTES;
    }
  }

  settingsAck(): void {
    this.header(0, FrameType.SETTINGS, Flag.ACK, 0);
  }

  /** PING carrying 8 bytes of opaque data; an ACK echoes the data of the PING it answers. */
  ping(opaqueData: Uint8Array, ack: boolean): void {
    if (opaqueData.length !== PING_BYTES) throw new RangeError(`PING opaque data is ${opaqueData.length} bytes, not ${PING_BYTES}`);
    this.frame(FrameType.PING, ack ? Flag.ACK : 0, 0, opaqueData, 0, PING_BYTES);
  }

  /** GOAWAY: streams above lastStreamId were not and will not be processed. debugData is diagnostic only. */
  goaway(lastStreamId: number, code: number, debugData: Uint8Array = EMPTY): void {
    checkStreamId(lastStreamId, 0);
    const length = GOAWAY_FIXED_BYTES + debugData.length;
    this.header(length, FrameType.GOAWAY, 0, 0, debugData.length < REFERENCE_MIN_BYTES ? length : GOAWAY_FIXED_BYTES);
    this.slab.writeUInt32BE(lastStreamId, this.len);
    this.slab.writeUInt32BE(code, this.len + 4);
    this.len += GOAWAY_FIXED_BYTES;
    this.payload(debugData, 0, debugData.length);
  }

  rstStream(streamId: number, code: number): void {
    checkStreamId(streamId, 1);
    this.uint32Frame(FrameType.RST_STREAM, streamId, code);
  }

  /** WINDOW_UPDATE of the connection window (stream 0) or a stream's; increment 1..2^31-1 (6.9). */
  windowUpdate(streamId: number, increment: number): void {
    checkStreamId(streamId, 0);
    if (!Number.isInteger(increment) || increment < 1 || increment > MAX_WINDOW_SIZE) {
      throw new RangeError(`WINDOW_UPDATE increment ${increment} is outside [1, ${MAX_WINDOW_SIZE}]`);
    }
    this.uint32Frame(FrameType.WINDOW_UPDATE, streamId, increment);
  }

  private uint32Frame(type: number, streamId: number, value: number): void {
    this.header(4, type, 0, streamId);
    this.slab.writeUInt32BE(value, this.len);
    this.len += 4;
  }

  private frame(type: number, flags: number, streamId: number, src: Uint8Array, start: number, length: number): void {
    this.header(length, type, flags, streamId, length < REFERENCE_MIN_BYTES ? length : 0);
    this.payload(src, start, length);
  }

  /** Frame bytes that follow a header: copied into the slab when small, else referenced. */
  private payload(src: Uint8Array, start: number, length: number): void {
    if (length < REFERENCE_MIN_BYTES) {
      this.reserve(length);
      this.slab.set(length === src.length ? src : src.subarray(start, start + length), this.len);
      this.len += length;
      return;
    }
    this.closeSegment();
    this.chunks.push(asBuffer(src, start, length));
    this.chunkBytes += length;
  }

  /**
   * A frame header, with room reserved after it for the `inlineBytes` of the payload that will be copied into the
   * slab (all of it unless a part is referenced), so that a frame's slab bytes are contiguous.
   */
  private header(length: number, type: number, flags: number, streamId: number, inlineBytes = length): void {
    this.reserve(FRAME_HEADER_BYTES + inlineBytes);
    const s = this.slab;
    const p = this.len;
    writeLength(s, p, length);
    s[p + 3] = type;
    s[p + 4] = flags;
    s[p + 5] = streamId >>> 24;
    s[p + 6] = (streamId >>> 16) & 0xff;
    s[p + 7] = (streamId >>> 8) & 0xff;
    s[p + 8] = streamId & 0xff;
    this.len = p + FRAME_HEADER_BYTES;
  }

  /** Makes room for `n` contiguous bytes: a full slab is closed (it may already be taken) and a new one begun. */
  private reserve(n: number): void {
    if (this.len + n <= this.slab.length) return;
    this.closeSegment();
    this.slab = Buffer.allocUnsafe(Math.max(this.slabBytes, n));
    this.segmentStart = 0;
    this.len = 0;
  }

  private closeSegment(): void {
    if (this.len === this.segmentStart) return;
    this.chunks.push(this.slab.subarray(this.segmentStart, this.len));
    this.chunkBytes += this.len - this.segmentStart;
    this.segmentStart = this.len;
  }
}

/** `src[start, start + length)` as a Buffer sharing its memory. */
function asBuffer(src: Uint8Array, start: number, length: number): Buffer {
  if (Buffer.isBuffer(src)) return start === 0 && length === src.length ? src : src.subarray(start, start + length);
  return Buffer.from(src.buffer, src.byteOffset + start, length);
}

function writeLength(buf: Buffer, at: number, length: number): void {
  if (length > MAX_FRAME_SIZE_LIMIT) throw new RangeError(`frame payload of ${length} bytes does not fit the 24-bit length`);
  buf[at] = length >>> 16;
  buf[at + 1] = (length >>> 8) & 0xff;
  buf[at + 2] = length & 0xff;
}

function checkStreamId(streamId: number, min: number): void {
  if (!Number.isInteger(streamId) || streamId < min || streamId > STREAM_ID_MAX) {
    throw new RangeError(`stream id ${streamId} is outside [${min}, ${STREAM_ID_MAX}]`);
  }
}
