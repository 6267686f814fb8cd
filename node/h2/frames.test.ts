import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  ErrorCode,
  Flag,
  type Frame,
  FrameReader,
  FrameType,
  FrameWriter,
  H2Error,
  MAX_FRAME_SIZE_LIMIT,
  MAX_WINDOW_SIZE,
  parseContinuation,
  parseData,
  parseGoaway,
  parseHeaders,
  parsePing,
  parsePriority,
  parseRstStream,
  parseSettings,
  parseWindowUpdate,
  rejectPushPromise,
  SettingId,
} from './frames.js';
import { rawFrame } from './frames.testutil.js';


function frame(type: number, flags: number, streamId: number, payload: number[] | Buffer = []): Frame {
  return { type, flags, streamId, payload: Buffer.from(payload) };
}

function u32(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, 4 * i));
  return b;
}

function settingsPayload(entries: readonly (readonly [number, number])[]): Buffer {
  const b = Buffer.alloc(6 * entries.length);
  entries.forEach(([id, value], i) => {
    b.writeUInt16BE(id, 6 * i);
    b.writeUInt32BE(value, 6 * i + 2);
  });
  return b;
}

function expectH2Error(fn: () => unknown, code: number, scope: 'connection' | 'stream', streamId = 0): H2Error {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(H2Error);
  const error = caught as H2Error;
  expect({ code: error.code, scope: error.scope, streamId: error.streamId }).toEqual({ code, scope, streamId });
  return error;
}

/** Reads `bytes` pushed in pieces cut at `cuts`; also says whether the reader ended between frames. */
function readAll(bytes: Buffer, cuts: readonly number[], reader: FrameReader): { frames: Frame[]; atBoundary: boolean } {
  const frames: Frame[] = [];
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let start = 0;
  for (const end of [...points, bytes.length]) {
    reader.push(bytes.subarray(start, end));
    for (let f = reader.next(); f !== undefined; f = reader.next()) frames.push(f);
    start = end;
  }
  return { frames, atBoundary: reader.atFrameBoundary };
}

function plain(f: Frame): { type: number; flags: number; streamId: number; payload: string } {
  return { type: f.type, flags: f.flags, streamId: f.streamId, payload: f.payload.toString('hex') };
}

// ---------------------------------------------------------------------------------------------------------------
// Round trip: writer operations, what they must produce (encoded independently), and the property.

type Op =
  | { kind: 'data'; streamId: number; bytes: Buffer; endStream: boolean }
  | { kind: 'headers'; streamId: number; block: Buffer; endStream: boolean; maxFrameBytes: number }
  | { kind: 'settings'; entries: [number, number][] }
  | { kind: 'settingsAck' }
  | { kind: 'ping'; opaque: Buffer; ack: boolean }
  | { kind: 'goaway'; lastStreamId: number; code: number; debug: Buffer }
  | { kind: 'rstStream'; streamId: number; code: number }
  | { kind: 'windowUpdate'; streamId: number; increment: number }
  | { kind: 'take' };

/** Bytes of a given length, cheap to generate even when long (a byte arbitrary per byte is slow). */
const bytesArb = (maxLength: number): fc.Arbitrary<Buffer> =>
  fc.tuple(fc.integer({ min: 0, max: maxLength }), fc.integer({ min: 0, max: 255 })).map(([n, seed]) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = (seed + i * 31) & 0xff;
    return b;
  });
const streamIdArb = fc.integer({ min: 1, max: 2 ** 31 - 1 });
const u32Arb = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const validSettingArb: fc.Arbitrary<[number, number]> = fc.oneof(
  fc.tuple(fc.constantFrom(SettingId.HEADER_TABLE_SIZE, SettingId.MAX_CONCURRENT_STREAMS, SettingId.MAX_HEADER_LIST_SIZE), u32Arb),
  fc.tuple(fc.constantFrom(SettingId.ENABLE_PUSH, SettingId.ENABLE_CONNECT_PROTOCOL), fc.integer({ min: 0, max: 1 })),
  fc.tuple(fc.constant(SettingId.INITIAL_WINDOW_SIZE), fc.integer({ min: 0, max: MAX_WINDOW_SIZE })),
  fc.tuple(fc.constant(SettingId.MAX_FRAME_SIZE), fc.integer({ min: DEFAULT_MAX_FRAME_SIZE, max: MAX_FRAME_SIZE_LIMIT })),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('data' as const), streamId: streamIdArb, bytes: fc.oneof(bytesArb(64), bytesArb(70_000)), endStream: fc.boolean() }),
  fc.record({
    kind: fc.constant('headers' as const),
    streamId: streamIdArb,
    block: fc.oneof(bytesArb(64), bytesArb(40_000)),
    endStream: fc.boolean(),
    maxFrameBytes: fc.constantFrom(DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE + 1, 30_000),
  }),
  fc.record({ kind: fc.constant('settings' as const), entries: fc.array(validSettingArb, { maxLength: 8 }) }),
  fc.record({ kind: fc.constant('settingsAck' as const) }),
  fc.record({ kind: fc.constant('ping' as const), opaque: bytesArb(8).filter((b) => b.length === 8), ack: fc.boolean() }),
  fc.record({ kind: fc.constant('goaway' as const), lastStreamId: fc.integer({ min: 0, max: 2 ** 31 - 1 }), code: u32Arb, debug: bytesArb(5000) }),
  fc.record({ kind: fc.constant('rstStream' as const), streamId: streamIdArb, code: u32Arb }),
  fc.record({ kind: fc.constant('windowUpdate' as const), streamId: fc.integer({ min: 0, max: 2 ** 31 - 1 }), increment: fc.integer({ min: 1, max: MAX_WINDOW_SIZE }) }),
  fc.constant({ kind: 'take' as const }),
);

function apply(writer: FrameWriter, op: Op): void {
  switch (op.kind) {
    case 'data': return writer.data(op.streamId, op.bytes, op.endStream);
    case 'headers': return writer.headers(op.streamId, op.block, op.endStream, op.maxFrameBytes);
    case 'settings': return writer.settings(op.entries);
    case 'settingsAck': return writer.settingsAck();
    case 'ping': return writer.ping(op.opaque, op.ack);
    case 'goaway': return writer.goaway(op.lastStreamId, op.code, op.debug);
    case 'rstStream': return writer.rstStream(op.streamId, op.code);
    case 'windowUpdate': return writer.windowUpdate(op.streamId, op.increment);
    case 'take': return;
  }
}

/** The frames an operation must produce, worked out without FrameWriter. */
function expected(op: Op): Frame[] {
  switch (op.kind) {
    case 'data': return [frame(FrameType.DATA, op.endStream ? Flag.END_STREAM : 0, op.streamId, op.bytes)];
    case 'headers': {
      const frames: Frame[] = [];
      for (let off = 0; off === 0 || off < op.block.length; off += op.maxFrameBytes) {
        const last = off + op.maxFrameBytes >= op.block.length;
        const flags = (last ? Flag.END_HEADERS : 0) | (off === 0 && op.endStream ? Flag.END_STREAM : 0);
        frames.push(frame(off === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, flags, op.streamId, op.block.subarray(off, off + op.maxFrameBytes)));
      }
      return frames;
    }
    case 'settings': return [frame(FrameType.SETTINGS, 0, 0, settingsPayload(op.entries))];
    case 'settingsAck': return [frame(FrameType.SETTINGS, Flag.ACK, 0)];
    case 'ping': return [frame(FrameType.PING, op.ack ? Flag.ACK : 0, 0, op.opaque)];
    case 'goaway': return [frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(op.lastStreamId, op.code), op.debug]))];
    case 'rstStream': return [frame(FrameType.RST_STREAM, 0, op.streamId, u32(op.code))];
    case 'windowUpdate': return [frame(FrameType.WINDOW_UPDATE, 0, op.streamId, u32(op.increment))];
    case 'take': return [];
  }
}

/** Every frame the writer produced from valid input must pass its parser. */
function parse(f: Frame): unknown {
  switch (f.type) {
    case FrameType.DATA: return parseData(f);
    case FrameType.HEADERS: return parseHeaders(f);
    case FrameType.CONTINUATION: return parseContinuation(f);
    case FrameType.SETTINGS: return parseSettings(f);
    case FrameType.PING: return parsePing(f);
    case FrameType.GOAWAY: return parseGoaway(f);
    case FrameType.RST_STREAM: return parseRstStream(f);
    case FrameType.WINDOW_UPDATE: return parseWindowUpdate(f);
    default: throw new Error(`unexpected frame type ${f.type}`);
  }
}

/** Large enough for every frame the operations above produce. */
const ROUND_TRIP_MAX_FRAME_BYTES = 1 << 20;

function writeAll(ops: readonly Op[], slabBytes?: number): Buffer {
  const writer = new FrameWriter(slabBytes === undefined ? {} : { slabBytes });
  const out: Buffer[] = [];
  for (const op of ops) {
    apply(writer, op);
    if (op.kind === 'take') out.push(...writer.take());
  }
  out.push(...writer.take());
  expect(writer.pendingBytes).toBe(0);
  return Buffer.concat(out);
}

const roundTripArb = fc.record({
  ops: fc.array(opArb, { minLength: 1, maxLength: 30 }),
  cuts: fc.oneof(fc.array(fc.nat(), { maxLength: 40 }), fc.constant(null)),
  preface: fc.boolean(),
  /** Small slabs fill up within a sequence; the default one rarely does. */
  slabBytes: fc.option(fc.integer({ min: 1, max: 8192 }), { nil: undefined }),
});

function cutsFor(cuts: number[] | null, length: number): number[] {
  return cuts ?? Array.from({ length }, (_, i) => i); // null: one byte at a time
}

describe('FrameWriter → FrameReader round trip', () => {
  it('reads back any sequence of written frames, cut into any chunks', () => {
    fc.assert(
      fc.property(roundTripArb, ({ ops, cuts, preface, slabBytes }) => {
        const written = writeAll(ops, slabBytes);
        const bytes = preface ? Buffer.concat([CLIENT_PREFACE, written]) : written;
        const reader = new FrameReader({ maxFrameBytes: ROUND_TRIP_MAX_FRAME_BYTES, expectPreface: preface });
        const { frames, atBoundary } = readAll(bytes, cutsFor(cuts, Math.min(bytes.length, 2000)), reader);
        expect(frames.map(plain)).toEqual(ops.flatMap(expected).map(plain));
        expect(atBoundary).toBe(true);
        for (const f of frames) parse(f);
      }),
      { numRuns: 200 },
    );
  });

  it('negative control: a frame length off by one never reads back the same frames', () => {
    fc.assert(
      fc.property(roundTripArb, fc.boolean(), ({ ops, cuts }, up) => {
        const bytes = writeAll(ops);
        if (bytes.length === 0) return;
        const original = ops.flatMap(expected).map(plain);
        bytes[2] = up ? bytes[2]! + 1 : bytes[2]! - 1; // the low byte of the first frame's length
        const reader = new FrameReader({ maxFrameBytes: ROUND_TRIP_MAX_FRAME_BYTES });
        let same: boolean;
        try {
          const { frames, atBoundary } = readAll(bytes, cutsFor(cuts, Math.min(bytes.length, 2000)), reader);
          same = atBoundary && JSON.stringify(frames.map(plain)) === JSON.stringify(original);
        } catch (e) {
          expect(e).toBeInstanceOf(H2Error);
          same = false;
        }
        expect(same).toBe(false);
      }),
      { numRuns: 100 },
    );
  });

  it('returns extension frame types as frames, with the reserved bit of the stream id masked off', () => {
    const bytes = Buffer.concat([rawFrame(0xfa, 0xff, 7, Buffer.from('ext')), rawFrame(FrameType.RST_STREAM, 0, 0x8000_0003, u32(8))]);
    const { frames } = readAll(bytes, [], new FrameReader());
    expect(frames.map(plain)).toEqual([
      { type: 0xfa, flags: 0xff, streamId: 7, payload: Buffer.from('ext').toString('hex') },
      { type: FrameType.RST_STREAM, flags: 0, streamId: 3, payload: '00000008' },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('FrameReader', () => {
  it('accepts the client preface split across chunks', () => {
    const bytes = Buffer.concat([CLIENT_PREFACE, rawFrame(FrameType.SETTINGS, 0, 0)]);
    for (const cuts of [[1], [5, 23], [24], [12, 25, 30], Array.from({ length: 33 }, (_, i) => i)]) {
      const { frames, atBoundary } = readAll(bytes, cuts, new FrameReader({ expectPreface: true }));
      expect(frames.map((f) => f.type)).toEqual([FrameType.SETTINGS]);
      expect(atBoundary).toBe(true);
    }
  });

  it('rejects an HTTP/1.1 request in place of the preface, at its first wrong byte', () => {
    const reader = new FrameReader({ expectPreface: true });
    reader.push(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const error = expectH2Error(() => reader.next(), ErrorCode.PROTOCOL_ERROR, 'connection');
    expect(error.message).toMatch(/HTTP\/1\.1 request/);
    // The error stays: the connection is over.
    expectH2Error(() => reader.next(), ErrorCode.PROTOCOL_ERROR, 'connection');
  });

  it('rejects a preface that goes wrong after a correct start, before 24 bytes have arrived', () => {
    const reader = new FrameReader({ expectPreface: true });
    reader.push(CLIENT_PREFACE.subarray(0, 10));
    expect(reader.next()).toBeUndefined();
    reader.push(Buffer.from('X'));
    expectH2Error(() => reader.next(), ErrorCode.PROTOCOL_ERROR, 'connection');
  });

  it('rejects a frame longer than maxFrameBytes from its header, before its payload arrives', () => {
    const reader = new FrameReader({ maxFrameBytes: DEFAULT_MAX_FRAME_SIZE });
    const header = rawFrame(FrameType.DATA, 0, 1, Buffer.alloc(DEFAULT_MAX_FRAME_SIZE + 1)).subarray(0, 9);
    reader.push(header.subarray(0, 4));
    expect(reader.next()).toBeUndefined();
    reader.push(header.subarray(4));
    expectH2Error(() => reader.next(), ErrorCode.FRAME_SIZE_ERROR, 'connection');
  });

  it('accepts frames up to maxFrameBytes, and more once setMaxFrameBytes raises it', () => {
    const atLimit = rawFrame(FrameType.DATA, 0, 1, Buffer.alloc(DEFAULT_MAX_FRAME_SIZE));
    const above = rawFrame(FrameType.DATA, 0, 1, Buffer.alloc(DEFAULT_MAX_FRAME_SIZE + 1));
    const reader = new FrameReader();
    expect(readAll(atLimit, [100], reader).frames).toHaveLength(1);
    reader.setMaxFrameBytes(DEFAULT_MAX_FRAME_SIZE + 1);
    expect(readAll(above, [100], reader).frames[0]!.payload.length).toBe(DEFAULT_MAX_FRAME_SIZE + 1);
    expect(() => reader.setMaxFrameBytes(DEFAULT_MAX_FRAME_SIZE - 1)).toThrow(RangeError);
    expect(() => reader.setMaxFrameBytes(MAX_FRAME_SIZE_LIMIT + 1)).toThrow(RangeError);
    expect(() => new FrameReader({ maxFrameBytes: 0 })).toThrow(RangeError);
  });

  it('returns a payload lying within one chunk as a view of it, not a copy', () => {
    const chunk = Buffer.concat([rawFrame(FrameType.DATA, 0, 1, Buffer.from('abc')), rawFrame(FrameType.DATA, 0, 1, Buffer.from('defg'))]);
    const reader = new FrameReader();
    reader.push(chunk);
    const first = reader.next()!;
    const second = reader.next()!;
    expect(first.payload.buffer).toBe(chunk.buffer);
    expect(second.payload.buffer).toBe(chunk.buffer);
    expect(second.payload.toString()).toBe('defg');
    expect(reader.next()).toBeUndefined();
  });

  it('refuses a push before the previous chunk was read to the end', () => {
    const reader = new FrameReader();
    reader.push(Buffer.concat([rawFrame(FrameType.SETTINGS, Flag.ACK, 0), rawFrame(FrameType.SETTINGS, Flag.ACK, 0)]));
    reader.next();
    expect(() => reader.push(Buffer.alloc(1))).toThrow(/not read to the end/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('payload parsers', () => {
  const { PROTOCOL_ERROR, FRAME_SIZE_ERROR, FLOW_CONTROL_ERROR } = ErrorCode;

  describe('DATA', () => {
    it('strips padding, counting it for flow control', () => {
      const parsed = parseData(frame(FrameType.DATA, Flag.PADDED | Flag.END_STREAM, 1, [2, 0x61, 0x62, 0, 0]));
      expect(parsed.data.toString()).toBe('ab');
      expect(parsed.flowControlledLength).toBe(5);
      expect(parsed.endStream).toBe(true);
      const allPadding = parseData(frame(FrameType.DATA, Flag.PADDED, 1, [2, 0, 0]));
      expect({ data: allPadding.data.length, flow: allPadding.flowControlledLength, end: allPadding.endStream }).toEqual({ data: 0, flow: 3, end: false });
    });
    it('is a connection PROTOCOL_ERROR on stream 0', () => {
      expectH2Error(() => parseData(frame(FrameType.DATA, 0, 0, [1])), PROTOCOL_ERROR, 'connection');
    });
    it('is a connection PROTOCOL_ERROR when the padding is as long as the payload or longer', () => {
      expectH2Error(() => parseData(frame(FrameType.DATA, Flag.PADDED, 1, [3, 0, 0])), PROTOCOL_ERROR, 'connection');
      expectH2Error(() => parseData(frame(FrameType.DATA, Flag.PADDED, 1, [255])), PROTOCOL_ERROR, 'connection');
    });
    it('is a connection FRAME_SIZE_ERROR when PADDED and without its Pad Length', () => {
      expectH2Error(() => parseData(frame(FrameType.DATA, Flag.PADDED, 1, [])), FRAME_SIZE_ERROR, 'connection');
    });
  });

  describe('HEADERS', () => {
    it('strips padding and priority fields, returning the dependency', () => {
      const payload = [1, 0x80, 0, 0, 3, 15, 0x82, 0x84, 0];
      const parsed = parseHeaders(frame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY | Flag.END_HEADERS, 3, payload));
      expect(parsed.fragment).toEqual(Buffer.from([0x82, 0x84]));
      expect(parsed.priority).toEqual({ exclusive: true, dependency: 3, weight: 16 });
      expect({ endStream: parsed.endStream, endHeaders: parsed.endHeaders }).toEqual({ endStream: false, endHeaders: true });
      const bare = parseHeaders(frame(FrameType.HEADERS, Flag.END_STREAM, 5, [0x82]));
      expect(bare.fragment).toEqual(Buffer.from([0x82]));
      expect(bare.priority).toBeUndefined();
      expect({ endStream: bare.endStream, endHeaders: bare.endHeaders }).toEqual({ endStream: true, endHeaders: false });
    });
    it('is a connection PROTOCOL_ERROR on stream 0', () => {
      expectH2Error(() => parseHeaders(frame(FrameType.HEADERS, Flag.END_HEADERS, 0, [0x82])), PROTOCOL_ERROR, 'connection');
    });
    it('is a connection PROTOCOL_ERROR when the padding leaves no room for the priority fields', () => {
      expectH2Error(() => parseHeaders(frame(FrameType.HEADERS, Flag.PADDED, 1, [2, 0x82])), PROTOCOL_ERROR, 'connection');
      expectH2Error(() => parseHeaders(frame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY, 1, [1, 0, 0, 0, 0, 0])), PROTOCOL_ERROR, 'connection');
    });
    it('is a connection FRAME_SIZE_ERROR when too short for its priority fields', () => {
      expectH2Error(() => parseHeaders(frame(FrameType.HEADERS, Flag.PRIORITY, 1, [0, 0, 0, 0])), FRAME_SIZE_ERROR, 'connection');
    });
  });

  describe('PRIORITY', () => {
    it('returns the fields', () => {
      expect(parsePriority(frame(FrameType.PRIORITY, 0, 3, [0, 0, 0, 1, 255]))).toEqual({ exclusive: false, dependency: 1, weight: 256 });
    });
    it('is a connection PROTOCOL_ERROR on stream 0', () => {
      expectH2Error(() => parsePriority(frame(FrameType.PRIORITY, 0, 0, [0, 0, 0, 1, 0])), PROTOCOL_ERROR, 'connection');
    });
    it('is a stream FRAME_SIZE_ERROR when not 5 bytes', () => {
      expectH2Error(() => parsePriority(frame(FrameType.PRIORITY, 0, 3, [0, 0, 0, 1])), FRAME_SIZE_ERROR, 'stream', 3);
      expectH2Error(() => parsePriority(frame(FrameType.PRIORITY, 0, 3, [0, 0, 0, 1, 0, 0])), FRAME_SIZE_ERROR, 'stream', 3);
    });
    it('is a stream PROTOCOL_ERROR when the stream depends on itself', () => {
      expectH2Error(() => parsePriority(frame(FrameType.PRIORITY, 0, 7, [0x80, 0, 0, 7, 0])), PROTOCOL_ERROR, 'stream', 7);
    });
  });

  describe('RST_STREAM', () => {
    it('returns the error code', () => {
      expect(parseRstStream(frame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)))).toBe(ErrorCode.CANCEL);
    });
    it('is a connection PROTOCOL_ERROR on stream 0', () => {
      expectH2Error(() => parseRstStream(frame(FrameType.RST_STREAM, 0, 0, u32(0))), PROTOCOL_ERROR, 'connection');
    });
    it('is a connection FRAME_SIZE_ERROR when not 4 bytes', () => {
      expectH2Error(() => parseRstStream(frame(FrameType.RST_STREAM, 0, 1, [0, 0, 0])), FRAME_SIZE_ERROR, 'connection');
      expectH2Error(() => parseRstStream(frame(FrameType.RST_STREAM, 0, 1, [0, 0, 0, 0, 0])), FRAME_SIZE_ERROR, 'connection');
    });
  });

  describe('SETTINGS', () => {
    const settings = (entries: [number, number][], flags = 0, streamId = 0): Frame => frame(FrameType.SETTINGS, flags, streamId, settingsPayload(entries));
    it('returns the entries in order, leaving unknown identifiers out', () => {
      const entries: [number, number][] = [
        [SettingId.INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE],
        [0x7, 99],
        [SettingId.MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE],
        [0xffff, 2 ** 32 - 1],
        [SettingId.MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT],
        [SettingId.ENABLE_PUSH, 0],
        [SettingId.ENABLE_CONNECT_PROTOCOL, 1],
      ];
      expect(parseSettings(settings(entries))).toEqual({ ack: false, entries: entries.filter(([id]) => id !== 0x7 && id !== 0xffff) });
      expect(parseSettings(settings([], Flag.ACK))).toEqual({ ack: true, entries: [] });
    });
    it('is a connection PROTOCOL_ERROR on a stream', () => {
      expectH2Error(() => parseSettings(settings([], 0, 1)), PROTOCOL_ERROR, 'connection');
    });
    it('is a connection FRAME_SIZE_ERROR when an ACK has a payload or the length is not a multiple of 6', () => {
      expectH2Error(() => parseSettings(settings([[SettingId.ENABLE_PUSH, 0]], Flag.ACK)), FRAME_SIZE_ERROR, 'connection');
      expectH2Error(() => parseSettings(frame(FrameType.SETTINGS, 0, 0, [0, 2, 0, 0, 0, 0, 0])), FRAME_SIZE_ERROR, 'connection');
    });
    it('is a connection PROTOCOL_ERROR when ENABLE_PUSH or ENABLE_CONNECT_PROTOCOL is neither 0 nor 1', () => {
      expectH2Error(() => parseSettings(settings([[SettingId.ENABLE_PUSH, 2]])), PROTOCOL_ERROR, 'connection');
      expectH2Error(() => parseSettings(settings([[SettingId.ENABLE_CONNECT_PROTOCOL, 2 ** 32 - 1]])), PROTOCOL_ERROR, 'connection');
    });
    it('is a connection FLOW_CONTROL_ERROR when INITIAL_WINDOW_SIZE is above 2^31-1', () => {
      expectH2Error(() => parseSettings(settings([[SettingId.INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE + 1]])), FLOW_CONTROL_ERROR, 'connection');
    });
    it('is a connection PROTOCOL_ERROR when MAX_FRAME_SIZE is outside [2^14, 2^24-1]', () => {
      expectH2Error(() => parseSettings(settings([[SettingId.MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE - 1]])), PROTOCOL_ERROR, 'connection');
      expectH2Error(() => parseSettings(settings([[SettingId.MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT + 1]])), PROTOCOL_ERROR, 'connection');
    });
  });

  describe('PUSH_PROMISE', () => {
    it('is always a connection PROTOCOL_ERROR at a server', () => {
      expectH2Error(() => rejectPushPromise(frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, [0, 0, 0, 2])), PROTOCOL_ERROR, 'connection');
    });
  });

  describe('PING', () => {
    it('returns the ACK flag and the opaque data', () => {
      const parsed = parsePing(frame(FrameType.PING, Flag.ACK, 0, [1, 2, 3, 4, 5, 6, 7, 8]));
      expect(parsed.ack).toBe(true);
      expect([...parsed.opaqueData]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    });
    it('is a connection PROTOCOL_ERROR on a stream', () => {
      expectH2Error(() => parsePing(frame(FrameType.PING, 0, 1, Buffer.alloc(8))), PROTOCOL_ERROR, 'connection');
    });
    it('is a connection FRAME_SIZE_ERROR when not 8 bytes', () => {
      expectH2Error(() => parsePing(frame(FrameType.PING, 0, 0, Buffer.alloc(7))), FRAME_SIZE_ERROR, 'connection');
      expectH2Error(() => parsePing(frame(FrameType.PING, 0, 0, Buffer.alloc(9))), FRAME_SIZE_ERROR, 'connection');
    });
  });

  describe('GOAWAY', () => {
    it('returns the last stream id (reserved bit masked), the code and the debug data', () => {
      const parsed = parseGoaway(frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(0x8000_0009, ErrorCode.ENHANCE_YOUR_CALM), Buffer.from('slow down')])));
      expect({ last: parsed.lastStreamId, code: parsed.errorCode, debug: parsed.debugData.toString() }).toEqual({ last: 9, code: ErrorCode.ENHANCE_YOUR_CALM, debug: 'slow down' });
    });
    it('is a connection PROTOCOL_ERROR on a stream', () => {
      expectH2Error(() => parseGoaway(frame(FrameType.GOAWAY, 0, 1, Buffer.alloc(8))), PROTOCOL_ERROR, 'connection');
    });
    it('is a connection FRAME_SIZE_ERROR when shorter than 8 bytes', () => {
      expectH2Error(() => parseGoaway(frame(FrameType.GOAWAY, 0, 0, Buffer.alloc(7))), FRAME_SIZE_ERROR, 'connection');
    });
  });

  describe('WINDOW_UPDATE', () => {
    it('returns the increment, reserved bit masked', () => {
      expect(parseWindowUpdate(frame(FrameType.WINDOW_UPDATE, 0, 0, u32(0x8000_0000 + MAX_WINDOW_SIZE)))).toBe(MAX_WINDOW_SIZE);
      expect(parseWindowUpdate(frame(FrameType.WINDOW_UPDATE, 0, 5, u32(1)))).toBe(1);
    });
    it('is a connection FRAME_SIZE_ERROR when not 4 bytes, on the connection or a stream', () => {
      expectH2Error(() => parseWindowUpdate(frame(FrameType.WINDOW_UPDATE, 0, 0, [0, 0, 1])), FRAME_SIZE_ERROR, 'connection');
      expectH2Error(() => parseWindowUpdate(frame(FrameType.WINDOW_UPDATE, 0, 3, [0, 0, 0, 0, 1])), FRAME_SIZE_ERROR, 'connection');
    });
    it('is a PROTOCOL_ERROR when the increment is 0: of the stream on a stream, of the connection on stream 0', () => {
      expectH2Error(() => parseWindowUpdate(frame(FrameType.WINDOW_UPDATE, 0, 5, u32(0))), PROTOCOL_ERROR, 'stream', 5);
      expectH2Error(() => parseWindowUpdate(frame(FrameType.WINDOW_UPDATE, 0, 0, u32(0))), PROTOCOL_ERROR, 'connection');
      expectH2Error(() => parseWindowUpdate(frame(FrameType.WINDOW_UPDATE, 0, 0, u32(0x8000_0000))), PROTOCOL_ERROR, 'connection');
    });
  });

  describe('CONTINUATION', () => {
    it('returns the fragment and END_HEADERS', () => {
      const parsed = parseContinuation(frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, [0x82]));
      expect({ fragment: [...parsed.fragment], endHeaders: parsed.endHeaders }).toEqual({ fragment: [0x82], endHeaders: true });
    });
    it('is a connection PROTOCOL_ERROR on stream 0', () => {
      expectH2Error(() => parseContinuation(frame(FrameType.CONTINUATION, Flag.END_HEADERS, 0, [0x82])), PROTOCOL_ERROR, 'connection');
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('FrameWriter', () => {
  function framesOf(writer: FrameWriter): Frame[] {
    return readAll(Buffer.concat(writer.take()), [], new FrameReader({ maxFrameBytes: MAX_FRAME_SIZE_LIMIT })).frames;
  }

  it('splits a large header block into HEADERS and CONTINUATION at the max frame size', () => {
    const writer = new FrameWriter();
    const block = Buffer.alloc(40_000, 7);
    writer.headers(3, block, true, DEFAULT_MAX_FRAME_SIZE);
    const frames = framesOf(writer);
    expect(frames.map((f) => [f.type, f.flags, f.streamId, f.payload.length])).toEqual([
      [FrameType.HEADERS, Flag.END_STREAM, 3, 16_384],
      [FrameType.CONTINUATION, 0, 3, 16_384],
      [FrameType.CONTINUATION, Flag.END_HEADERS, 3, 40_000 - 2 * 16_384],
    ]);
    expect(Buffer.concat(frames.map((f) => f.payload))).toEqual(block);
  });

  it('writes a block that fits, or an empty one, as a single HEADERS with END_HEADERS', () => {
    const writer = new FrameWriter();
    writer.headers(1, Buffer.alloc(DEFAULT_MAX_FRAME_SIZE), false, DEFAULT_MAX_FRAME_SIZE);
    writer.headers(1, Buffer.alloc(0), true, DEFAULT_MAX_FRAME_SIZE);
    expect(framesOf(writer).map((f) => [f.type, f.flags, f.payload.length])).toEqual([
      [FrameType.HEADERS, Flag.END_HEADERS, DEFAULT_MAX_FRAME_SIZE],
      [FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 0],
    ]);
  });

  it('packs a turn of small frames into one buffer, and counts pending bytes', () => {
    const writer = new FrameWriter();
    for (let id = 1; id < 200; id += 2) {
      writer.headers(id, Buffer.from([0x88, 0x5f, 0x8b]), false, DEFAULT_MAX_FRAME_SIZE);
      writer.data(id, Buffer.alloc(40, id), false);
      writer.headers(id, Buffer.from([0x40, 0x88, 0x9a, 0xca]), true, DEFAULT_MAX_FRAME_SIZE);
    }
    expect(writer.pendingBytes).toBe(100 * (3 * 9 + 3 + 40 + 4));
    const chunks = writer.take();
    expect(chunks).toHaveLength(1);
    expect(writer.pendingBytes).toBe(0);
    expect(writer.take()).toEqual([]);
  });

  it('hands large payloads over without copying, and never writes over bytes already taken', () => {
    const writer = new FrameWriter();
    const big = Buffer.alloc(100_000, 1);
    writer.data(1, big, true);
    const first = writer.take();
    expect(first).toHaveLength(2);
    expect(first[1]!.buffer).toBe(big.buffer);
    const before = Buffer.concat(first);
    for (let i = 0; i < 10_000; i++) writer.rstStream(i * 2 + 1, ErrorCode.CANCEL); // fills and replaces the slab
    const second = writer.take();
    expect(second.length).toBeGreaterThan(1);
    expect(Buffer.concat(first)).toEqual(before);
    const frames = readAll(Buffer.concat(second), [], new FrameReader()).frames;
    expect(frames.map((f) => f.streamId)).toEqual(Array.from({ length: 10_000 }, (_, i) => i * 2 + 1));
  });

  it('dataOf() writes the same bytes as data() of its parts joined, referencing large parts and copying small ones', () => {
    const part = fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 4096, max: 9000 }).map((n) => Buffer.alloc(n, n & 0xff)));
    fc.assert(
      fc.property(fc.array(part, { maxLength: 5 }), fc.boolean(), fc.integer({ min: 64, max: 512 }), (parts, end, slabBytes) => {
        const joined = new FrameWriter();
        joined.data(7, Buffer.concat(parts), end);
        const separate = new FrameWriter({ slabBytes });
        separate.rstStream(1, ErrorCode.CANCEL); // the frame starts part-way into a slab
        separate.dataOf(7, parts, end);
        const out = separate.take();
        expect(Buffer.concat(out).subarray(13)).toEqual(Buffer.concat(joined.take()));
        for (const p of parts.filter((p) => p.length >= 4096)) expect(out.some((b) => b.buffer === p.buffer && b.byteOffset === p.byteOffset)).toBe(true);
      }),
    );
  });

  it('refuses arguments the protocol cannot carry', () => {
    const writer = new FrameWriter();
    expect(() => writer.data(0, Buffer.alloc(1), false)).toThrow(RangeError);
    expect(() => writer.windowUpdate(1, 0)).toThrow(RangeError);
    expect(() => writer.windowUpdate(1, MAX_WINDOW_SIZE + 1)).toThrow(RangeError);
    expect(() => writer.ping(Buffer.alloc(7), false)).toThrow(RangeError);
    expect(() => writer.headers(1, Buffer.alloc(1), false, 0)).toThrow(RangeError);
    expect(() => writer.data(1, Buffer.alloc(MAX_FRAME_SIZE_LIMIT + 1), false)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------------------------

/** A server that speaks HTTP/2 with nothing but FrameReader and FrameWriter, for a node:http2 client. */
class RawServerConnection {
  readonly frames: Frame[] = [];
  readonly firstBytes: Buffer[] = [];
  private readonly reader = new FrameReader({ expectPreface: true });
  readonly writer = new FrameWriter();
  private waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  error: unknown;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {});
    this.writer.settings([[SettingId.MAX_CONCURRENT_STREAMS, 100]]);
    this.flush();
  }

  flush(): void {
    this.socket.cork();
    for (const b of this.writer.take()) this.socket.write(b);
    this.socket.uncork();
  }

  /** The first frame, already received or to come, that `match` accepts. */
  waitFor(match: (f: Frame) => boolean): Promise<Frame> {
    const seen = this.frames.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  private onData(chunk: Buffer): void {
    if (this.frames.length === 0) this.firstBytes.push(Buffer.from(chunk));
    try {
      this.reader.push(chunk);
      for (let f = this.reader.next(); f !== undefined; f = this.reader.next()) this.onFrame(f);
    } catch (e) {
      this.error = e;
      this.socket.destroy();
    }
    this.flush();
  }

  private onFrame(f: Frame): void {
    this.frames.push(f);
    if (f.type === FrameType.SETTINGS && !parseSettings(f).ack) this.writer.settingsAck();
    if (f.type === FrameType.HEADERS) {
      // The body is larger than the default 65,535-byte windows: open both.
      this.writer.windowUpdate(0, 1 << 20);
      this.writer.windowUpdate(f.streamId, 1 << 20);
    }
    const ready = this.waiters.filter((w) => w.match(f));
    this.waiters = this.waiters.filter((w) => !w.match(f));
    for (const w of ready) w.resolve(f);
  }
}

describe('interoperability with node:http2', () => {
  it('reads a real client request and answers it; PING and GOAWAY go through', async () => {
    let connection: RawServerConnection | undefined;
    let accepted: (c: RawServerConnection) => void = () => {};
    const connected = new Promise<RawServerConnection>((resolve) => {
      accepted = resolve;
    });
    const server = net.createServer((socket) => {
      connection = new RawServerConnection(socket);
      accepted(connection);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const sessionErrors: unknown[] = [];
    session.on('error', (e) => sessionErrors.push(e));
    try {
      const body = Buffer.alloc(100 * 1024);
      for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
      const request = session.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Range', 'content-type': 'application/grpc' });
      const response = collectResponse(request);
      request.end(body);

      const conn = await connected;
      const lastData = await conn.waitFor((f) => f.type === FrameType.DATA && (f.flags & Flag.END_STREAM) !== 0);
      expect(Buffer.concat(conn.firstBytes).subarray(0, CLIENT_PREFACE.length)).toEqual(CLIENT_PREFACE);
      expect(conn.frames[0]!.type).toBe(FrameType.SETTINGS);
      const headers = conn.frames.filter((f) => f.type === FrameType.HEADERS);
      expect(headers).toHaveLength(1);
      expect(parseHeaders(headers[0]!).endHeaders).toBe(true);
      const streamId = headers[0]!.streamId;
      const data = conn.frames.filter((f) => f.type === FrameType.DATA).map(parseData);
      expect(data.every((d, i) => d.endStream === (i === data.length - 1))).toBe(true);
      expect(data.reduce((n, d) => n + d.data.length, 0)).toBe(body.length);
      expect(Buffer.concat(data.map((d) => d.data))).toEqual(body);
      expect(lastData.streamId).toBe(streamId);

      conn.writer.headers(streamId, Buffer.from([0x88]), false, DEFAULT_MAX_FRAME_SIZE); // 0x88: ':status: 200'
      conn.writer.data(streamId, Buffer.from('hello from FrameWriter'), true);
      conn.flush();
      const { status, received } = await response;
      expect(status).toBe(200);
      expect(received.toString()).toBe('hello from FrameWriter');

      const opaque = Buffer.from('fulcrum!');
      conn.writer.ping(opaque, false);
      conn.flush();
      const pong = parsePing(await conn.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0));
      expect(pong.opaqueData).toEqual(opaque);

      const goaway = once(session, 'goaway') as Promise<[number, number, Buffer]>;
      conn.writer.goaway(streamId, ErrorCode.ENHANCE_YOUR_CALM, Buffer.from('bye'));
      conn.flush();
      const [code, lastStreamId] = await goaway;
      expect({ code, lastStreamId }).toEqual({ code: ErrorCode.ENHANCE_YOUR_CALM, lastStreamId: streamId });
      expect(conn.error).toBeUndefined();
    } finally {
      session.destroy();
      connection?.socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 20_000);
});

function collectResponse(request: http2.ClientHttp2Stream): Promise<{ status: number; received: Buffer }> {
  return new Promise((resolve, reject) => {
    let status = 0;
    const chunks: Buffer[] = [];
    request.on('response', (headers) => {
      status = Number(headers[':status']);
    });
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve({ status, received: Buffer.concat(chunks) }));
    request.on('error', reject);
  });
}
