// Transcript tests of the client side of an HTTP/2 connection: a scripted server sends frames (built with
// FrameWriter and HpackEncoder, or by hand when they must be malformed), and each step's expectations are the
// client's frames, read back into a readable transcript, and what its streams' listeners heard.
import { describe, expect, it } from 'vitest';
import { CLIENT_DEFAULTS, type ClientLimits, ClientConnection, type ClientStream, responseHeaders, validateClientLimits } from './client.js';
import { CLIENT_PREFACE, ErrorCode, errorCodeName, Flag, FrameType, FrameWriter, SettingId } from './frames.js';
import { rawFrame, Transcript } from './frames.testutil.js';
import { type HeaderField, HpackEncoder } from './hpack.js';

function fields(...pairs: [string, string][]): HeaderField[] {
  return pairs.map(([name, value]) => ({ name, value }));
}

const REQUEST = fields([':method', 'POST'], [':scheme', 'http'], [':path', '/fulcrum.raft.RaftTransport/Send'], [':authority', 'peer:2380'], ['content-type', 'application/grpc'], ['te', 'trailers']);
const RESPONSE = fields([':status', '200'], ['content-type', 'application/grpc']);
const TRAILERS = fields(['grpc-status', '0']);

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

function bytes(n: number, seed = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (seed + i * 7) & 0xff;
  return b;
}

/**
 * A scripted server in front of one ClientConnection, with a fake clock. Server frames are queued and sent with
 * send(); frames() is the transcript of what the client wrote since the last call; events() what the client's
 * listeners and connection events heard.
 */
class Server {
  readonly conn: ClientConnection;
  clockMs = 1_000_000;
  readonly writer = new FrameWriter();
  readonly encoder = new HpackEncoder();
  readonly transcript = new Transcript({ expectPreface: true });
  connectionClosed = 0;
  private pending: Buffer[] = [];
  private log: string[] = [];
  private readonly closedCount = new Map<number, number>();

  constructor(limits: Partial<ClientLimits> = {}) {
    this.conn = new ClientConnection(
      {
        output: () => {},
        closed: (error) => {
          this.connectionClosed++;
          this.log.push(`connection closed${error === undefined ? '' : ` ${errorCodeName(error.code)}`}`);
        },
        pingAcknowledged: (data) => this.log.push(`ping acknowledged ${data.toString('hex')}`),
      },
      { limits, now: () => this.clockMs },
    );
  }

  /** Opens a stream whose listener writes what it hears into the event log. */
  open(onData?: (stream: ClientStream, chunk: Buffer) => void): ClientStream {
    const stream: ClientStream = this.conn.request(REQUEST, {
      headers: (h, end) => this.log.push(`headers ${stream.id} ${Object.entries(h).map(([k, v]) => `${k}=${v}`).join(' ')}${end ? ' end_stream' : ''}`),
      data: (chunk, end) => {
        this.log.push(`data ${stream.id} ${chunk.length}${end ? ' end_stream' : ''}`);
        onData?.(stream, chunk);
      },
      drained: () => this.log.push(`drained ${stream.id}`),
      closed: (code) => {
        const n = (this.closedCount.get(stream.id) ?? 0) + 1;
        this.closedCount.set(stream.id, n);
        if (n > 1) throw new Error(`stream ${stream.id} closed twice`);
        this.log.push(`closed ${stream.id} ${errorCodeName(code)}`);
      },
    });
    return stream;
  }

  // ---- the server's frames

  private flushWriter(): this {
    this.pending.push(...this.writer.take());
    return this;
  }

  raw(type: number, flags: number, streamId: number, payload?: Uint8Array): this {
    this.pending.push(rawFrame(type, flags, streamId, payload));
    return this;
  }

  settings(entries: [number, number][] = []): this {
    this.writer.settings(entries);
    return this.flushWriter();
  }

  settingsAck(): this {
    this.writer.settingsAck();
    return this.flushWriter();
  }

  headers(streamId: number, list: HeaderField[], endStream = false, maxFrameBytes = 16_384): this {
    this.writer.headers(streamId, this.encoder.encode(list), endStream, maxFrameBytes);
    return this.flushWriter();
  }

  /** DATA frames of at most `maxFrameBytes` each, END_STREAM on the last. */
  data(streamId: number, body: Buffer | number, endStream = false, maxFrameBytes = 16_384): this {
    const all = typeof body === 'number' ? bytes(body) : body;
    let at = 0;
    do {
      const n = Math.min(maxFrameBytes, all.length - at);
      this.writer.data(streamId, all.subarray(at, at + n), endStream && at + n === all.length);
      at += n;
    } while (at < all.length);
    return this.flushWriter();
  }

  /** A header block cut into a HEADERS and CONTINUATIONs of `pieceBytes` (below any SETTINGS_MAX_FRAME_SIZE). */
  piecewiseHeaders(streamId: number, list: HeaderField[], pieceBytes: number): this {
    const block = this.encoder.encode(list);
    for (let at = 0; at < block.length; at += pieceBytes) {
      const last = at + pieceBytes >= block.length;
      this.raw(at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, last ? Flag.END_HEADERS : 0, streamId, block.subarray(at, at + pieceBytes));
    }
    return this;
  }

  windowUpdate(streamId: number, increment: number): this {
    return this.raw(FrameType.WINDOW_UPDATE, 0, streamId, u32(increment));
  }

  rst(streamId: number, code: number): this {
    return this.raw(FrameType.RST_STREAM, 0, streamId, u32(code));
  }

  ping(data = '0102030405060708', ack = false): this {
    return this.raw(FrameType.PING, ack ? Flag.ACK : 0, 0, Buffer.from(data, 'hex'));
  }

  goaway(lastStreamId: number, code: number = ErrorCode.NO_ERROR, debug = ''): this {
    this.writer.goaway(lastStreamId, code, Buffer.from(debug));
    return this.flushWriter();
  }

  send(): this {
    this.conn.receive(Buffer.concat(this.pending));
    this.pending = [];
    return this;
  }

  /** The server's SETTINGS and its ACK of ours; the client's answers are read and dropped. */
  handshake(entries: [number, number][] = []): this {
    this.settings(entries).settingsAck().send();
    this.frames();
    this.events();
    return this;
  }

  // ---- the client's side

  frames(): string[] {
    return this.transcript.read(Buffer.concat(this.conn.take()));
  }

  events(): string[] {
    const out = this.log;
    this.log = [];
    return out;
  }
}

describe('ClientConnection: the preface and SETTINGS', () => {
  it('opens with the client preface and SETTINGS that turn push off, before anything else', () => {
    const s = new Server();
    const out = Buffer.concat(s.conn.take());
    expect(out.subarray(0, CLIENT_PREFACE.length)).toEqual(CLIENT_PREFACE);
    expect(s.transcript.read(out)).toEqual(['SETTINGS ENABLE_PUSH=0 INITIAL_WINDOW_SIZE=65535 MAX_FRAME_SIZE=16384 MAX_HEADER_LIST_SIZE=16384']);
    // The preface goes once: later output is frames alone.
    expect(s.settings().ping('0000000000000001', false).send().frames()).toEqual(['SETTINGS ack', 'PING ack 0000000000000001']);
  });

  it('raises its connection window right after SETTINGS when asked for more than 65,535', () => {
    const s = new Server({ connectionWindowBytes: 1 << 20, streamWindowBytes: 1 << 18 });
    expect(s.frames()).toEqual(['SETTINGS ENABLE_PUSH=0 INITIAL_WINDOW_SIZE=262144 MAX_FRAME_SIZE=16384 MAX_HEADER_LIST_SIZE=16384', `WINDOW_UPDATE 0 +${(1 << 20) - 65_535}`]);
  });

  it("acknowledges the server's SETTINGS, and a server whose first frame is not SETTINGS fails the connection", () => {
    const s = new Server();
    s.frames();
    expect(s.settings([[SettingId.MAX_CONCURRENT_STREAMS, 10]]).send().frames()).toEqual(['SETTINGS ack']);
    const t = new Server();
    t.frames();
    expect(t.ping().send().frames()).toEqual(['GOAWAY 0 PROTOCOL_ERROR']);
    expect(t.events()).toEqual(['connection closed PROTOCOL_ERROR']);
    expect(t.conn.closed).toBe(true);
  });

  it('a server that sends SETTINGS_ENABLE_PUSH 1, a PUSH_PROMISE, or a second SETTINGS ACK breaks the protocol', () => {
    const push = new Server().settings([[SettingId.ENABLE_PUSH, 1]]);
    expect(push.send().frames()).toContain('GOAWAY 0 PROTOCOL_ERROR');
    const promise = new Server().handshake();
    promise.open();
    promise.frames();
    promise.raw(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, Buffer.concat([u32(2), Buffer.from([0x88])]));
    expect(promise.send().frames()).toEqual(['GOAWAY 0 PROTOCOL_ERROR']);
    expect(promise.events()).toEqual(['closed 1 PROTOCOL_ERROR', 'connection closed PROTOCOL_ERROR']);
    const acks = new Server().handshake();
    expect(acks.settingsAck().send().frames()).toEqual(['GOAWAY 0 PROTOCOL_ERROR']);
  });

  it('refuses limits the protocol cannot carry', () => {
    expect(validateClientLimits()).toEqual(CLIENT_DEFAULTS);
    expect(() => validateClientLimits({ streamWindowBytes: 100 })).toThrow(/streamWindowBytes/);
    expect(() => validateClientLimits({ frameBytesMax: 2 ** 24 })).toThrow(/frameBytesMax/);
    expect(() => validateClientLimits({ concurrentStreamsMax: 0 })).toThrow(/concurrentStreamsMax/);
    expect(() => validateClientLimits({ controlBudget: { burst: 0, perSecond: 1 } })).toThrow(/controlBudget/);
    expect(() => validateClientLimits({ controlBudget: { burst: 1, perSecond: -1 } })).toThrow(/controlBudget.perSecond/);
    expect(() => validateClientLimits({ streamWindow: 1 } as Partial<ClientLimits>)).toThrow(/unknown h2 client limit streamWindow/);
  });
});

describe('ClientConnection: requests', () => {
  it('sends a request as HEADERS and its writes as DATA, a write of several chunks as one frame', () => {
    const s = new Server().handshake();
    const stream = s.open();
    expect(stream.id).toBe(1);
    expect(s.frames()).toEqual(['HEADERS 1 :method=POST :scheme=http :path=/fulcrum.raft.RaftTransport/Send :authority=peer:2380 content-type=application/grpc te=trailers']);
    expect(stream.write([Buffer.from([0, 0, 0, 0, 3]), Buffer.from('abc')])).toBe(true);
    expect(s.events()).toEqual(['drained 1']);
    expect(s.frames()).toEqual(['DATA 1 8 bytes']);
    expect(Buffer.concat(s.transcript.bodies.get(1)!)).toEqual(Buffer.from([0, 0, 0, 0, 3, 0x61, 0x62, 0x63]));
    // The next stream takes the next odd id; its header block is mostly indexes now.
    const second = s.open();
    expect(second.id).toBe(3);
    expect(s.frames()).toEqual([expect.stringMatching(/^HEADERS 3 :method=POST/)]);
    expect(s.transcript.lastHeadersBlock.length).toBeLessThan(10);
  });

  it("splits DATA at the server's SETTINGS_MAX_FRAME_SIZE and waits for credit, stream and connection", () => {
    const s = new Server().handshake([[SettingId.INITIAL_WINDOW_SIZE, 20_000]]);
    const stream = s.open();
    s.frames();
    expect(stream.write([bytes(50_000, 1)])).toBe(true);
    expect(s.frames()).toEqual(['DATA 1 16384 bytes', 'DATA 1 3616 bytes']);
    expect(stream.queuedBytes).toBe(30_000);
    expect(s.events()).toEqual([]);
    // Stream credit beyond the connection's: the connection window (65,535, 20,000 used) bounds the next frames.
    expect(s.windowUpdate(1, 100_000).send().frames()).toEqual(['DATA 1 16384 bytes', 'DATA 1 13616 bytes']);
    expect(s.events()).toEqual(['drained 1']);
    expect(Buffer.concat(s.transcript.bodies.get(1)!)).toEqual(bytes(50_000, 1));
    // 15,535 left on the connection: a larger write stops there until WINDOW_UPDATE 0.
    stream.write([bytes(20_000, 2)]);
    expect(s.frames()).toEqual(['DATA 1 15535 bytes']);
    expect(s.windowUpdate(0, 10_000).send().frames()).toEqual(['DATA 1 4465 bytes']);
    expect(s.events()).toEqual(['drained 1']);
  });

  it('a larger SETTINGS_MAX_FRAME_SIZE and INITIAL_WINDOW_SIZE from the server let queued bytes go at once', () => {
    const s = new Server().handshake([[SettingId.INITIAL_WINDOW_SIZE, 10]]);
    const stream = s.open();
    s.frames();
    stream.write([bytes(40)]);
    expect(s.frames()).toEqual(['DATA 1 10 bytes']);
    // The window moves by the difference (6.9.2): 10 used of 10, now of 100.
    expect(s.settings([[SettingId.INITIAL_WINDOW_SIZE, 100], [SettingId.MAX_FRAME_SIZE, 20_000]]).send().frames()).toEqual(['SETTINGS ack', 'DATA 1 30 bytes']);
    expect(s.events()).toEqual(['drained 1']);
    // A smaller one takes the window below zero: nothing goes until credit brings it back above.
    s.settings([[SettingId.INITIAL_WINDOW_SIZE, 0]]).send();
    stream.write([bytes(5)]);
    expect(s.frames()).toEqual(['SETTINGS ack']);
    // 60 of 100 were left, so the window is now -40: +40 brings it to zero, +5 lets the bytes go.
    expect(s.windowUpdate(1, 40).send().frames()).toEqual([]);
    expect(s.windowUpdate(1, 5).send().frames()).toEqual(['DATA 1 5 bytes']);
  });

  it('write() returns false past streamSendQueueBytes; end() sends END_STREAM after the queue', () => {
    const s = new Server({ streamSendQueueBytes: 1000 }).handshake([[SettingId.INITIAL_WINDOW_SIZE, 0]]);
    const stream = s.open();
    s.frames();
    expect(stream.write([bytes(999)])).toBe(true);
    expect(stream.write([bytes(1)])).toBe(false);
    stream.end();
    expect(s.frames()).toEqual([]);
    expect(s.windowUpdate(1, 1000).send().frames()).toEqual(['DATA 1 1000 bytes end_stream']);
    expect(() => stream.write([bytes(1)])).toThrow(/after end/);
    // The response completes the exchange: the stream closes with NO_ERROR.
    s.headers(1, RESPONSE).headers(1, TRAILERS, true).send();
    expect(s.events()).toEqual(['headers 1 :status=200 content-type=application/grpc', 'headers 1 grpc-status=0 end_stream', 'closed 1 NO_ERROR']);
    expect(s.conn.openStreams).toBe(0);
  });

  it("honours the server's SETTINGS_MAX_CONCURRENT_STREAMS and its own concurrentStreamsMax", () => {
    const s = new Server({ concurrentStreamsMax: 3 }).handshake([[SettingId.MAX_CONCURRENT_STREAMS, 2]]);
    s.open();
    expect(s.conn.canOpen).toBe(true);
    s.open();
    expect(s.conn.canOpen).toBe(false);
    expect(() => s.open()).toThrow(/no more streams/);
    s.settings([[SettingId.MAX_CONCURRENT_STREAMS, 100]]).send();
    s.open();
    expect(s.conn.canOpen).toBe(false);
  });
});

describe('ClientConnection: responses', () => {
  it('delivers headers, data and trailers, skipping 1xx, and credits what it reads', () => {
    const s = new Server().handshake();
    s.open();
    s.frames();
    s.headers(1, fields([':status', '103'])).headers(1, RESPONSE).data(1, 40_000).headers(1, TRAILERS, true).send();
    expect(s.events()).toEqual(['headers 1 :status=200 content-type=application/grpc', 'data 1 16384', 'data 1 16384', 'data 1 7232', 'headers 1 grpc-status=0 end_stream']);
    // Credit goes back once half of each 65,535 window is owed: after the second frame.
    expect(s.frames()).toEqual(['WINDOW_UPDATE 0 +32768', 'WINDOW_UPDATE 1 +32768']);
  });

  it('a trailers-only response (status in the headers, END_STREAM) is one headers event', () => {
    const s = new Server().handshake();
    s.open();
    s.headers(1, fields([':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '9'], ['grpc-message', 'refused']), true).send();
    expect(s.events()).toEqual(['headers 1 :status=200 content-type=application/grpc grpc-status=9 grpc-message=refused end_stream']);
  });

  it.each([
    ['trailers without END_STREAM', (s: Server) => s.headers(1, RESPONSE).headers(1, TRAILERS, false), 'PROTOCOL_ERROR'],
    ['DATA before the response headers', (s: Server) => s.data(1, 5), 'PROTOCOL_ERROR'],
    ['DATA after END_STREAM', (s: Server) => s.headers(1, RESPONSE).data(1, 5, true).data(1, 5), 'STREAM_CLOSED'],
    ['a response without :status', (s: Server) => s.headers(1, fields(['content-type', 'application/grpc'])), 'PROTOCOL_ERROR'],
    ['a request pseudo-header in a response', (s: Server) => s.headers(1, fields([':status', '200'], [':path', '/'])), 'PROTOCOL_ERROR'],
    ['an uppercase field name', (s: Server) => s.headers(1, fields([':status', '200'], ['Content-Type', 'x'])), 'PROTOCOL_ERROR'],
    ['a 1xx response that ends the stream', (s: Server) => s.headers(1, fields([':status', '100']), true), 'PROTOCOL_ERROR'],
    // One frame larger than the window: credit goes back as data is read, so smaller frames never overrun it.
    ['DATA beyond the stream window', (s: Server) => s.headers(1, RESPONSE).data(1, 70_000, false, 70_000), 'FLOW_CONTROL_ERROR'],
  ])('%s resets the stream, and the connection goes on', (_name, script, code) => {
    const s = new Server({ frameBytesMax: 100_000, connectionWindowBytes: 1 << 20 }).handshake();
    s.open();
    s.frames();
    script(s).send();
    expect(s.frames()).toContain(`RST_STREAM 1 ${code}`);
    expect(s.events().at(-1)).toBe(`closed 1 ${code}`);
    expect(s.conn.closed).toBe(false);
    expect(s.conn.canOpen).toBe(true);
  });

  it('a stream error leaves the header tables in step: the next stream decodes an entry added on the reset one', () => {
    const s = new Server().handshake();
    s.open();
    s.open();
    s.frames();
    // The bad block adds x-trace to the server's dynamic table; stream 3's block then refers to it by index.
    s.headers(1, fields([':status', '200'], ['x-trace', 'abc'], ['Bad', 'y'])).headers(3, fields([':status', '200'], ['x-trace', 'abc'])).send();
    expect(s.events()).toEqual(['closed 1 PROTOCOL_ERROR', 'headers 3 :status=200 x-trace=abc']);
  });

  it("what the server sent on a stream we reset is dropped, and its DATA still credited to the connection", () => {
    const s = new Server().handshake();
    const stream = s.open();
    stream.reset(ErrorCode.CANCEL);
    expect(s.events()).toEqual(['closed 1 CANCEL']);
    expect(s.frames()).toEqual([expect.stringMatching(/^HEADERS 1/), 'RST_STREAM 1 CANCEL']);
    s.headers(1, RESPONSE).data(1, 16_384).data(1, 16_384).data(1, 16_384).headers(1, TRAILERS, true).send();
    expect(s.events()).toEqual([]);
    expect(s.frames()).toEqual(['WINDOW_UPDATE 0 +32768']);
    expect(s.conn.closed).toBe(false);
    // A WINDOW_UPDATE or RST_STREAM on it is dropped too.
    expect(s.windowUpdate(1, 10).rst(1, ErrorCode.NO_ERROR).send().frames()).toEqual([]);
  });

  it.each([
    ['HEADERS on an even (server-initiated) stream', (s: Server) => s.headers(2, RESPONSE), 'PROTOCOL_ERROR'],
    ['HEADERS on a stream we never opened', (s: Server) => s.headers(5, RESPONSE), 'PROTOCOL_ERROR'],
    ['DATA on an idle stream', (s: Server) => s.data(3, 1), 'PROTOCOL_ERROR'],
    ['RST_STREAM on an idle stream', (s: Server) => s.rst(3, ErrorCode.CANCEL), 'PROTOCOL_ERROR'],
    ['WINDOW_UPDATE on an idle stream', (s: Server) => s.windowUpdate(7, 1), 'PROTOCOL_ERROR'],
    ['DATA beyond the connection window', (s: Server) => s.headers(1, RESPONSE).data(1, 70_000, false, 70_000), 'FLOW_CONTROL_ERROR'],
    ['a connection window past 2^31-1', (s: Server) => s.windowUpdate(0, 2 ** 31 - 1), 'FLOW_CONTROL_ERROR'],
    ['an HPACK block that does not decode', (s: Server) => s.raw(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), 'COMPRESSION_ERROR'],
    ['a frame inside a header block', (s: Server) => s.raw(FrameType.HEADERS, 0, 1, Buffer.from([0x88])).ping(), 'PROTOCOL_ERROR'],
    ['CONTINUATION with no block open', (s: Server) => s.raw(FrameType.CONTINUATION, Flag.END_HEADERS, 1, Buffer.from([0x88])), 'PROTOCOL_ERROR'],
  ])('%s fails the connection with GOAWAY, and every stream closes', (_name, script, code) => {
    const s = new Server({ streamWindowBytes: 1 << 20, frameBytesMax: 100_000 }).handshake();
    s.open();
    s.frames();
    script(s).send();
    expect(s.frames()).toEqual([`GOAWAY 0 ${code}`]);
    expect(s.events().slice(-2)).toEqual([`closed 1 ${code}`, `connection closed ${code}`]);
    expect(s.conn.canOpen).toBe(false);
    // Nothing more is read or sent.
    expect(s.ping().send().frames()).toEqual([]);
  });

  it('bounds a header block: CONTINUATION frames and bytes', () => {
    const s = new Server({ continuationFramesMax: 2 }).handshake();
    s.open();
    s.frames();
    s.piecewiseHeaders(1, fields([':status', '200'], ['x-big', 'v'.repeat(100)]), 30);
    expect(s.send().frames()).toEqual(['GOAWAY 0 ENHANCE_YOUR_CALM']);
    const t = new Server({ headerBlockBytesMax: 50 }).handshake();
    t.open();
    t.frames();
    t.piecewiseHeaders(1, fields([':status', '200'], ['x-big', 'v'.repeat(100)]), 30);
    expect(t.send().frames()).toEqual(['GOAWAY 0 ENHANCE_YOUR_CALM']);
    // Within both, a block in CONTINUATIONs is assembled and delivered.
    const u = new Server().handshake();
    u.open();
    u.piecewiseHeaders(1, fields([':status', '200'], ['x-big', 'v'.repeat(100)]), 30).send();
    expect(u.events()).toEqual([`headers 1 :status=200 x-big=${'v'.repeat(100)}`]);
  });

  it('a header list past headerListBytesMax resets the stream (ENHANCE_YOUR_CALM)', () => {
    const s = new Server({ headerListBytesMax: 100 }).handshake();
    s.open();
    s.frames();
    expect(s.headers(1, fields([':status', '200'], ['x-big', 'v'.repeat(200)])).send().frames()).toEqual(['RST_STREAM 1 ENHANCE_YOUR_CALM']);
  });

  it('responseHeaders joins repeated fields and says what is wrong with a malformed block', () => {
    expect(responseHeaders(fields([':status', '200'], ['a', '1'], ['a', '2']), false)).toEqual({ ':status': '200', a: '1, 2' });
    expect(responseHeaders(fields(['a', '1'], [':status', '200']), false)).toMatch(/after a regular field/);
    expect(responseHeaders(fields([':status', '200'], [':status', '200']), false)).toMatch(/twice/);
    expect(responseHeaders(fields([':status', '2000']), false)).toMatch(/not a status code/);
    expect(responseHeaders(fields([':status', '200']), true)).toMatch(/in trailers/);
    expect(responseHeaders(fields(['grpc-message', 'a\nb']), true)).toMatch(/NUL, CR or LF/);
  });
});

describe('ClientConnection: the connection', () => {
  it('answers PINGs, reports the ACKs of its own, and fails a PING flood', () => {
    const s = new Server({ controlBudget: { burst: 3, perSecond: 1 } }).handshake();
    expect(s.ping('0102030405060708').send().frames()).toEqual(['PING ack 0102030405060708']);
    s.conn.ping(Buffer.from('0000000000000009', 'hex'));
    expect(s.frames()).toEqual(['PING 0000000000000009']);
    expect(s.ping('0000000000000009', true).send().events()).toEqual(['ping acknowledged 0000000000000009']);
    // The handshake's SETTINGS and one PING spent two of three tokens; the next two PINGs, at the same instant, flood.
    expect(s.ping().ping().send().frames()).toEqual(['PING ack 0102030405060708', 'GOAWAY 0 ENHANCE_YOUR_CALM']);
    // Given time, the budget refills.
    const t = new Server({ controlBudget: { burst: 1, perSecond: 1 } });
    t.settings().send();
    t.clockMs += 1000;
    expect(t.ping().send().frames()).toContain('PING ack 0102030405060708');
  });

  it("the server's GOAWAY refuses the streams above its last id, lets the rest finish, then the connection closes", () => {
    const s = new Server().handshake();
    s.open();
    s.open();
    s.frames();
    s.goaway(1, ErrorCode.NO_ERROR, 'shutting down').send();
    expect(s.events()).toEqual(['closed 3 REFUSED_STREAM']);
    expect(s.conn.canOpen).toBe(false);
    expect(() => s.open()).toThrow(/no more streams/);
    s.headers(1, RESPONSE).headers(1, TRAILERS, true).rst(1, ErrorCode.NO_ERROR).send();
    expect(s.events()).toEqual(['headers 1 :status=200 content-type=application/grpc', 'headers 1 grpc-status=0 end_stream', 'closed 1 NO_ERROR', 'connection closed']);
    expect(s.conn.closed).toBe(true);
  });

  it('a GOAWAY with an error code closes everything at once; with no stream open a NO_ERROR one closes the connection', () => {
    const s = new Server().handshake();
    s.open();
    s.goaway(1, ErrorCode.INTERNAL_ERROR, 'broken').send();
    expect(s.events()).toEqual(['closed 1 INTERNAL_ERROR', 'connection closed INTERNAL_ERROR']);
    const t = new Server().handshake();
    t.goaway(0).send();
    expect(t.events()).toEqual(['connection closed']);
  });

  it('fail() sends GOAWAY and closes every stream; terminate() closes them with CANCEL and sends nothing', () => {
    const s = new Server().handshake();
    s.open();
    s.frames();
    s.conn.fail(ErrorCode.NO_ERROR, 'closing');
    expect(s.frames()).toEqual(['GOAWAY 0 NO_ERROR']);
    expect(s.transcript.lastGoawayDebug).toBe('closing');
    expect(s.events()).toEqual(['closed 1 NO_ERROR', 'connection closed NO_ERROR']);
    const t = new Server().handshake();
    const stream = t.open();
    t.frames();
    t.conn.terminate('socket closed');
    expect(t.frames()).toEqual([]);
    expect(t.events()).toEqual(['closed 1 CANCEL', 'connection closed']);
    expect(stream.write([bytes(1)])).toBe(false);
  });

  it('a stream whose request and response have both ended closes with NO_ERROR, the response first or last', () => {
    const s = new Server().handshake();
    const early = s.open();
    s.headers(1, RESPONSE).headers(1, TRAILERS, true).send();
    s.events();
    expect(s.conn.openStreams).toBe(1);
    early.end();
    expect(s.events()).toEqual(['closed 1 NO_ERROR']);
    expect(s.frames()).toEqual([expect.stringMatching(/^HEADERS 1/), 'DATA 1 0 bytes end_stream']);
  });

  it('a bug in a listener fails the connection (INTERNAL_ERROR) and is thrown to the glue', () => {
    const s = new Server().handshake();
    s.open(() => {
      throw new Error('listener bug');
    });
    s.frames();
    expect(() => s.headers(1, RESPONSE).data(1, 1).send()).toThrow('listener bug');
    expect(s.frames()).toEqual(['GOAWAY 0 INTERNAL_ERROR']);
    expect(s.conn.closed).toBe(true);
  });
});
