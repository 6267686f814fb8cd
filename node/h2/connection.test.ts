// Transcript tests of the server side of an HTTP/2 connection: a scripted client sends frames (built with
// FrameWriter and HpackEncoder, or by hand when they must be malformed), and each step's expectations are the
// server's frames, read back into a readable transcript, and the events the layer above heard.
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import fc from 'fast-check';
import { assert, describe, expect, it } from 'vitest';
import { type ConnectionLimits, CONNECTION_DEFAULTS, type H2Stream, ServerConnection, type StreamListener, validateLimits } from './connection.js';
import {
  CLIENT_PREFACE,
  DEFAULT_INITIAL_WINDOW_SIZE,
  ErrorCode,
  errorCodeName,
  Flag,
  FrameType,
  FrameWriter,
  MAX_WINDOW_SIZE,
  SettingId,
} from './frames.js';
import { rawFrame, Transcript } from './frames.testutil.js';
import { type HeaderField, HpackEncoder } from './hpack.js';


function fields(...pairs: [string, string][]): HeaderField[] {
  return pairs.map(([name, value]) => ({ name, value }));
}

const REQUEST = fields(
  [':method', 'POST'],
  [':scheme', 'http'],
  [':path', '/etcdserverpb.KV/Range'],
  [':authority', 'localhost'],
  ['content-type', 'application/grpc'],
  ['te', 'trailers'],
);
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

/** What the tests may do on the server's side of a stream. */
interface Hooks {
  stream?(stream: H2Stream, headers: Record<string, string>, endStream: boolean): void;
  data?(stream: H2Stream, bytes: Buffer, endStream: boolean): void;
  writable?(stream: H2Stream): void;
  /** The listener's answer to closed(): true when the stream's work goes on (until stream.done()). */
  closed?(stream: H2Stream, code: number): boolean | void;
}

/**
 * A scripted client in front of one ServerConnection, with a fake clock. Client frames are queued and sent with
 * send(); frames() is the transcript of what the server wrote since the last call; events() what the layer above
 * heard.
 */
class Client {
  readonly conn: ServerConnection;
  clockMs = 1_000_000;
  outputSignals = 0;
  hooks: Hooks = {};
  readonly streams = new Map<number, H2Stream>();
  readonly headersOf = new Map<number, Record<string, string>>();
  /** Request bodies as the layer above received them (response bodies as the client received them: responseBodies). */
  readonly requestBodies = new Map<number, Buffer[]>();
  readonly closedCount = new Map<number, number>();
  connectionClosed = 0;
  readonly writer = new FrameWriter();
  readonly encoder = new HpackEncoder();
  private readonly transcript = new Transcript();
  private pending: Buffer[] = [];
  private log: string[] = [];

  constructor(options: { limits?: Partial<ConnectionLimits>; hooks?: Hooks } = {}) {
    this.hooks = options.hooks ?? {};
    this.conn = new ServerConnection(
      {
        stream: (stream, headers, endStream) => this.onStream(stream, headers, endStream),
        output: () => this.outputSignals++,
        closed: (error) => {
          this.connectionClosed++;
          this.log.push(`connection closed${error === undefined ? '' : ` ${errorCodeName(error.code)}`}`);
        },
        pingAcknowledged: (data) => this.log.push(`ping acknowledged ${data.toString('hex')}`),
      },
      { limits: options.limits, now: () => this.clockMs },
    );
  }

  private onStream(stream: H2Stream, headers: Record<string, string>, endStream: boolean): StreamListener {
    const id = stream.id;
    this.streams.set(id, stream);
    this.headersOf.set(id, headers);
    this.requestBodies.set(id, []);
    this.log.push(`stream ${id} ${headers[':method']} ${headers[':path']}${endStream ? ' end_stream' : ''}`);
    this.hooks.stream?.(stream, headers, endStream);
    return {
      data: (chunk, end) => {
        this.log.push(`data ${id} ${chunk.length}${end ? ' end_stream' : ''}`);
        this.requestBodies.get(id)!.push(Buffer.from(chunk));
        this.hooks.data?.(stream, chunk, end);
      },
      writable: () => {
        this.log.push(`writable ${id}`);
        this.hooks.writable?.(stream);
      },
      closed: (code) => {
        const n = (this.closedCount.get(id) ?? 0) + 1;
        this.closedCount.set(id, n);
        if (n > 1) throw new Error(`stream ${id} closed twice`);
        this.log.push(`closed ${id} ${errorCodeName(code)}`);
        return this.hooks.closed?.(stream, code);
      },
    };
  }

  // ---- the client's frames

  private flushWriter(): this {
    this.pending.push(...this.writer.take());
    return this;
  }

  raw(type: number, flags: number, streamId: number, payload?: Uint8Array): this {
    this.pending.push(rawFrame(type, flags, streamId, payload));
    return this;
  }

  preface(entries: [number, number][] = []): this {
    this.pending.push(CLIENT_PREFACE);
    this.writer.settings(entries);
    return this.flushWriter();
  }

  settings(entries: [number, number][]): this {
    this.writer.settings(entries);
    return this.flushWriter();
  }

  settingsAck(): this {
    this.writer.settingsAck();
    return this.flushWriter();
  }

  headers(streamId: number, list: HeaderField[] = REQUEST, endStream = false, maxFrameBytes = 16_384): this {
    this.writer.headers(streamId, this.encoder.encode(list), endStream, maxFrameBytes);
    return this.flushWriter();
  }

  data(streamId: number, body: Buffer | number, endStream = false): this {
    this.writer.data(streamId, typeof body === 'number' ? bytes(body) : body, endStream);
    return this.flushWriter();
  }

  /** DATA with `padding` bytes of padding after `body`. */
  paddedData(streamId: number, body: Buffer, padding: number, endStream = false): this {
    const payload = Buffer.concat([Buffer.from([padding]), body, Buffer.alloc(padding)]);
    return this.raw(FrameType.DATA, Flag.PADDED | (endStream ? Flag.END_STREAM : 0), streamId, payload);
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

  priority(streamId: number, dependency: number): this {
    return this.raw(FrameType.PRIORITY, 0, streamId, Buffer.concat([u32(dependency), Buffer.from([15])]));
  }

  goaway(lastStreamId: number, code = ErrorCode.NO_ERROR): this {
    this.writer.goaway(lastStreamId, code);
    return this.flushWriter();
  }

  /** The bytes queued so far, taken. */
  takeBytes(): Buffer {
    const out = Buffer.concat(this.pending);
    this.pending = [];
    return out;
  }

  send(): this {
    this.conn.receive(this.takeBytes());
    return this;
  }

  /** Preface, SETTINGS, and the ACK of the server's; the server's answers are read and dropped. */
  handshake(entries: [number, number][] = []): this {
    this.preface(entries).settingsAck().send();
    this.frames();
    this.events();
    return this;
  }

  /** Opens stream `id` with a request and reads the transcript away. */
  open(id: number, endStream = false): H2Stream {
    this.headers(id, REQUEST, endStream).send();
    this.frames();
    this.events();
    return this.streams.get(id)!;
  }

  // ---- the server's side

  events(): string[] {
    const out = this.log;
    this.log = [];
    return out;
  }

  frames(): string[] {
    return this.transcript.read(Buffer.concat(this.conn.take()));
  }

  get responseBodies(): Map<number, Buffer[]> {
    return this.transcript.bodies;
  }

  get lastGoawayDebug(): string {
    return this.transcript.lastGoawayDebug;
  }

  get lastHeadersBlock(): Buffer {
    return this.transcript.lastHeadersBlock;
  }
}

/** The layer above answering a call: response headers, the body, trailers. */
function answer(stream: H2Stream, body: Buffer): void {
  stream.respond(RESPONSE, false);
  if (body.length > 0) stream.write(body);
  stream.end(TRAILERS);
}

/** Answers each request with its own body once it has ended. */
function echoHooks(client: () => Client): Hooks {
  return {
    stream(stream, _headers, endStream) {
      if (endStream) answer(stream, Buffer.alloc(0));
    },
    data(stream, _bytes, endStream) {
      if (endStream) answer(stream, Buffer.concat(client().requestBodies.get(stream.id)!));
    },
  };
}

function echoClient(options: { limits?: Partial<ConnectionLimits> } = {}): Client {
  const hooks: Hooks = {};
  const c = new Client({ ...options, hooks });
  Object.assign(hooks, echoHooks(() => c));
  return c;
}

// ---------------------------------------------------------------------------------------------------------------

describe('handshake', () => {
  it('queues our SETTINGS and the connection WINDOW_UPDATE at construction, and signals output once', () => {
    const c = new Client();
    expect(c.outputSignals).toBe(1);
    expect(c.frames()).toEqual([
      'SETTINGS MAX_CONCURRENT_STREAMS=1000 INITIAL_WINDOW_SIZE=1048576 MAX_FRAME_SIZE=16384 MAX_HEADER_LIST_SIZE=65536',
      `WINDOW_UPDATE 0 +${8 * 1024 * 1024 - DEFAULT_INITIAL_WINDOW_SIZE}`,
    ]);
  });

  it('announces HEADER_TABLE_SIZE only when it is not 4096, and no WINDOW_UPDATE for a 65,535-byte connection window', () => {
    const c = new Client({ limits: { headerTableBytes: 8192, connectionWindowBytes: 65_535, concurrentStreamsMax: 7, streamWindowBytes: 65_535 } });
    expect(c.frames()).toEqual(['SETTINGS HEADER_TABLE_SIZE=8192 MAX_CONCURRENT_STREAMS=7 INITIAL_WINDOW_SIZE=65535 MAX_FRAME_SIZE=16384 MAX_HEADER_LIST_SIZE=65536']);
  });

  it('answers the client SETTINGS with an ACK, and counts ours acknowledged on its ACK', () => {
    const c = new Client();
    c.frames();
    c.preface([[SettingId.ENABLE_PUSH, 0]]).send();
    expect(c.frames()).toEqual(['SETTINGS ack']);
    expect(c.conn.settingsAcknowledged).toBe(false);
    c.settingsAck().send();
    expect(c.frames()).toEqual([]);
    expect(c.conn.settingsAcknowledged).toBe(true);
  });

  it('holds the client to 16,384-byte frames until it acknowledges our larger MAX_FRAME_SIZE', () => {
    const before = new Client({ limits: { frameBytesMax: 32_768 } });
    before.frames();
    before.preface().headers(1).data(1, 20_000).send();
    expect(before.frames()).toEqual(['SETTINGS ack', 'GOAWAY 1 FRAME_SIZE_ERROR']);

    const after = new Client({ limits: { frameBytesMax: 32_768 } });
    after.handshake().headers(1).data(1, 20_000, true).send();
    expect(after.frames()).toEqual([]);
    expect(after.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range', 'data 1 20000 end_stream']);
  });

  it('requires SETTINGS as the first frame after the preface', () => {
    for (const first of [(c: Client) => c.ping(), (c: Client) => c.settingsAck(), (c: Client) => c.headers(1)]) {
      const c = new Client();
      c.frames();
      c.conn.receive(CLIENT_PREFACE);
      first(c).send();
      expect(c.frames()).toEqual(['GOAWAY 0 PROTOCOL_ERROR']);
      expect(c.events()).toEqual(['connection closed PROTOCOL_ERROR']);
      expect(c.conn.closed).toBe(true);
    }
  });

  it('answers a wrong preface (an HTTP/1.1 request) with GOAWAY PROTOCOL_ERROR', () => {
    const c = new Client();
    c.frames();
    c.conn.receive(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(c.frames()).toEqual(['GOAWAY 0 PROTOCOL_ERROR']);
    expect(c.lastGoawayDebug).toContain('HTTP/1.1');
  });

  it('takes a second SETTINGS ACK for a confused peer (PROTOCOL_ERROR)', () => {
    const c = new Client().handshake();
    c.settingsAck().send();
    expect(c.frames()).toEqual(['GOAWAY 0 PROTOCOL_ERROR']);
  });

  it('signals output once until take()', () => {
    const c = new Client();
    c.preface().send().ping().send().ping().send();
    expect(c.outputSignals).toBe(1);
    expect(c.frames()).toEqual(['SETTINGS MAX_CONCURRENT_STREAMS=1000 INITIAL_WINDOW_SIZE=1048576 MAX_FRAME_SIZE=16384 MAX_HEADER_LIST_SIZE=65536', 'WINDOW_UPDATE 0 +8323073', 'SETTINGS ack', 'PING ack 0102030405060708', 'PING ack 0102030405060708']);
    c.ping().send();
    expect(c.outputSignals).toBe(2);
    c.settingsAck().send();
    expect(c.outputSignals).toBe(2); // nothing to send: no signal
  });

  it("follows the client's HEADER_TABLE_SIZE in the next block, and its MAX_FRAME_SIZE in DATA and HEADERS", () => {
    const c = new Client({ hooks: { data: (s, _b, end) => end && answer(s, bytes(50_000)) } });
    c.handshake([
      [SettingId.HEADER_TABLE_SIZE, 0],
      [SettingId.MAX_FRAME_SIZE, 20_000],
      [SettingId.INITIAL_WINDOW_SIZE, 1 << 20],
    ]);
    c.windowUpdate(0, 1 << 20).headers(1).data(1, 1, true).send();
    expect(c.frames()).toEqual([
      'HEADERS 1 :status=200 content-type=application/grpc',
      'DATA 1 20000 bytes',
      'DATA 1 20000 bytes',
      'DATA 1 10000 bytes',
      'HEADERS 1 grpc-status=0 end_stream',
    ]);
    // The first block after the change opens with a size update to 0 (RFC 7541 4.2): 0b001_00000.
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range', 'data 1 1 end_stream', 'closed 1 NO_ERROR']);
    const big = new Client({ hooks: { stream: (s) => s.respond([...RESPONSE, { name: 'x-big', value: 'v'.repeat(40_000) }], true) } });
    big.handshake([[SettingId.MAX_FRAME_SIZE, 16_384]]);
    big.headers(1, REQUEST, true).send();
    const [line] = big.frames();
    expect(line!.startsWith('HEADERS 1 +2 CONTINUATION :status=200')).toBe(true);
    expect(line!.endsWith('end_stream')).toBe(true);
  });

  it('sends a size update first when the client shrinks the table', () => {
    const c = new Client({ hooks: { stream: (s) => s.respond(RESPONSE, true) } });
    c.handshake([[SettingId.HEADER_TABLE_SIZE, 0]]);
    c.headers(1, REQUEST, true).send();
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc end_stream']);
    expect(c.lastHeadersBlock[0]).toBe(0x20);
  });
});

// With headerTableBytes below 4096 the decoder held the client to it from the start, while the client encodes for
// the protocol's 4096 bytes until it has read our SETTINGS: a client that sent requests right after its preface
// (as node:http2 and grpc-js do) lost its connection to COMPRESSION_ERROR as soon as it used the table.
describe('a header table smaller than 4096 (RFC 7541 4.2, RFC 9113 6.5.3)', () => {
  const twice = [...REQUEST, ...fields(['x-a', 'one'])];

  it('decodes what the client encoded for 4096 bytes before it read our SETTINGS', () => {
    const c = new Client({ limits: { headerTableBytes: 0 } });
    c.frames();
    c.preface().headers(1, twice, true).headers(3, twice, true).send();
    expect(c.frames()).toEqual(['SETTINGS ack']);
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range end_stream', 'stream 3 POST /etcdserverpb.KV/Range end_stream']);
    expect(c.headersOf.get(3)!['x-a']).toBe('one');
  });

  it('after its ACK, holds the client to the smaller table: the next block opens with a size update', () => {
    const c = new Client({ limits: { headerTableBytes: 0 } });
    c.frames();
    c.preface().headers(1, twice, true).settingsAck().send();
    c.frames();
    c.encoder.setPeerTableBytesMax(0);
    c.headers(3, twice, true).send();
    expect(c.frames()).toEqual([]);
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range end_stream', 'stream 3 POST /etcdserverpb.KV/Range end_stream']);
    // A client that kept its 4096-byte table fails (negative control).
    const d = new Client({ limits: { headerTableBytes: 0 } });
    d.frames();
    d.preface().headers(1, twice, true).settingsAck().headers(3, twice, true).send();
    expect(d.frames()).toEqual(['SETTINGS ack', 'GOAWAY 1 COMPRESSION_ERROR']);
  });
});

describe('a call', () => {
  it('unary: request headers and body in; response headers, data and trailers out; closed NO_ERROR', () => {
    const c = echoClient().handshake();
    c.headers(1).data(1, Buffer.from('hello'), true).send();
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range', 'data 1 5 end_stream', 'closed 1 NO_ERROR']);
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc', 'DATA 1 5 bytes', 'HEADERS 1 grpc-status=0 end_stream']);
    expect(Buffer.concat(c.responseBodies.get(1)!).toString()).toBe('hello');
    expect(c.conn.openStreams).toBe(0);
    expect(c.streams.get(1)!.closed).toBe(true);
  });

  it('gives the headers as an object without prototype, repeated names joined and cookies with "; "', () => {
    const c = new Client().handshake();
    c.headers(1, [...REQUEST, ...fields(['x-a', '1'], ['cookie', 'a=1'], ['x-a', '2'], ['cookie', 'b=2'])]).send();
    const h = c.headersOf.get(1)!;
    expect(Object.getPrototypeOf(h)).toBe(null);
    expect({ ...h }).toEqual({
      ':method': 'POST',
      ':scheme': 'http',
      ':path': '/etcdserverpb.KV/Range',
      ':authority': 'localhost',
      'content-type': 'application/grpc',
      te: 'trailers',
      'x-a': '1, 2',
      cookie: 'a=1; b=2',
    });
  });

  it('a request without a body answered inside stream(): closed is reported once, after stream() returns', () => {
    const c = echoClient().handshake();
    c.headers(1, REQUEST, true).send();
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range end_stream', 'closed 1 NO_ERROR']);
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc', 'HEADERS 1 grpc-status=0 end_stream']);
    expect(c.closedCount.get(1)).toBe(1);
  });

  it('trailers-only: respond(fields, true)', () => {
    const c = new Client({ hooks: { stream: (s) => s.respond(fields([':status', '200'], ['grpc-status', '12']), true) } });
    c.handshake().headers(1, REQUEST, true).send();
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 grpc-status=12 end_stream']);
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range end_stream', 'closed 1 NO_ERROR']);
  });

  it('end() without trailers: an empty END_STREAM DATA, or END_STREAM on the last queued DATA', () => {
    const c = new Client().handshake();
    const s = c.open(1, true);
    s.respond(RESPONSE, false);
    s.write(Buffer.from('abc'));
    s.end();
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc', 'DATA 1 3 bytes', 'DATA 1 0 bytes end_stream']);

    const d = new Client().handshake([[SettingId.INITIAL_WINDOW_SIZE, 2]]);
    const t = d.open(1, true);
    t.respond(RESPONSE, false);
    t.write(Buffer.from('abc'));
    t.end();
    expect(d.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc', 'DATA 1 2 bytes']);
    d.windowUpdate(1, 10).send();
    expect(d.frames()).toEqual(['DATA 1 1 bytes end_stream']);
    expect(d.events()).toEqual(['closed 1 NO_ERROR']);
  });

  it('a response that ends before the request sends RST_STREAM NO_ERROR and closes the stream', () => {
    const c = new Client().handshake();
    const s = c.open(1);
    s.respond(fields([':status', '200'], ['grpc-status', '3']), true);
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 grpc-status=3 end_stream', 'RST_STREAM 1 NO_ERROR']);
    expect(c.events()).toEqual(['closed 1 NO_ERROR']);
    // The client's DATA already in flight is dropped: it was sent before the client read our RST_STREAM (5.1).
    c.data(1, 3).send();
    expect(c.frames()).toEqual([]);
    expect(c.events()).toEqual([]);
  });

  it("the client's trailers end the request: data(empty, true)", () => {
    const c = new Client().handshake();
    c.headers(1).data(1, 4).headers(1, fields(['x-checksum', 'abc']), true).send();
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range', 'data 1 4', 'data 1 0 end_stream']);
    expect(c.frames()).toEqual([]);
  });

  it('trailers without END_STREAM, or with a pseudo-header, are malformed (stream PROTOCOL_ERROR)', () => {
    const c = new Client().handshake();
    c.headers(1).headers(1, fields(['x-a', '1']), false).send();
    expect(c.frames()).toEqual(['RST_STREAM 1 PROTOCOL_ERROR']);
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range', 'closed 1 PROTOCOL_ERROR']);
    c.headers(3).headers(3, fields([':path', '/x']), true).send();
    expect(c.frames()).toEqual(['RST_STREAM 3 PROTOCOL_ERROR']);
    expect(c.events()).toEqual(['stream 3 POST /etcdserverpb.KV/Range', 'closed 3 PROTOCOL_ERROR']);
  });

  it('HEADERS or DATA after the request ended: stream STREAM_CLOSED', () => {
    const c = new Client().handshake();
    c.open(1, true);
    c.headers(1, fields(['x-a', '1']), true).send();
    expect(c.frames()).toEqual(['RST_STREAM 1 STREAM_CLOSED']);
    expect(c.events()).toEqual(['closed 1 STREAM_CLOSED']);
    c.open(3, true);
    c.data(3, 1).send();
    expect(c.frames()).toEqual(['RST_STREAM 3 STREAM_CLOSED']);
    expect(c.events()).toEqual(['closed 3 STREAM_CLOSED']);
  });

  it('reset(): RST_STREAM with the code, closed at once; later calls on the stream do nothing', () => {
    const c = new Client().handshake();
    const s = c.open(1);
    s.reset(ErrorCode.CANCEL);
    expect(c.frames()).toEqual(['RST_STREAM 1 CANCEL']);
    expect(c.events()).toEqual(['closed 1 CANCEL']);
    expect(s.closed).toBe(true);
    s.respond(RESPONSE, false);
    expect(s.write(Buffer.from('x'))).toBe(false);
    s.end(TRAILERS);
    s.reset(ErrorCode.INTERNAL_ERROR);
    s.pause();
    s.resume();
    expect(c.frames()).toEqual([]);
    expect(c.events()).toEqual([]);
  });

  it("the client's RST_STREAM closes the stream with its code and drops what was queued", () => {
    const c = new Client().handshake([[SettingId.INITIAL_WINDOW_SIZE, 0]]);
    const s = c.open(1, true);
    s.respond(RESPONSE, false);
    s.write(bytes(100));
    expect(s.queuedBytes).toBe(100);
    c.rst(1, ErrorCode.CANCEL).send();
    expect(c.events()).toEqual(['closed 1 CANCEL']);
    expect(s.queuedBytes).toBe(0);
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc']);
  });

  it('respond() twice, write() before respond() and after end() are programming errors', () => {
    const c = new Client().handshake();
    const s = c.open(1, true);
    expect(() => s.write(Buffer.from('x'))).toThrow(/before respond/);
    expect(() => s.end()).toThrow(/before respond/);
    s.respond(RESPONSE, false);
    expect(() => s.respond(RESPONSE, false)).toThrow(/twice/);
    const t = c.open(3);
    t.respond(RESPONSE, false);
    t.write(Buffer.from('x'));
    t.end();
    expect(t.closed).toBe(true);
  });
});

describe("the client's SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 6.5.2)", () => {
  // RESPONSE is 102 bytes as the limit counts: ':status' '200' + 32, 'content-type' 'application/grpc' + 32.
  it('response headers past it are not sent: the stream is reset with INTERNAL_ERROR, and HPACK stays in step', () => {
    const c = new Client().handshake([[SettingId.MAX_HEADER_LIST_SIZE, 101]]);
    const s = c.open(1, true);
    s.respond([...RESPONSE, { name: 'x-new', value: 'indexed' }], false);
    expect(c.frames()).toEqual(['RST_STREAM 1 INTERNAL_ERROR']);
    expect(c.events()).toEqual(['closed 1 INTERNAL_ERROR']);
    expect(s.closed).toBe(true);
    // The next response fits: its block decodes (the refused one never reached the encoder's table).
    c.open(3, true).respond(fields([':status', '200'], ['x-new', 'indexed']), true);
    expect(c.frames()).toEqual(['HEADERS 3 :status=200 x-new=indexed end_stream']);
  });

  it('a list exactly at the limit is sent; trailers past it reset the stream after the data', () => {
    const c = new Client().handshake([[SettingId.MAX_HEADER_LIST_SIZE, 102]]);
    const s = c.open(1, true);
    s.respond(RESPONSE, false);
    s.write(bytes(10));
    s.end(fields(['grpc-status', '13'], ['grpc-message', 'x'.repeat(100)]));
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc', 'DATA 1 10 bytes', 'RST_STREAM 1 INTERNAL_ERROR']);
    expect(c.events()).toEqual(['closed 1 INTERNAL_ERROR']);
    // Trailers waiting for credit are checked when they go (negative control: these fit).
    const d = new Client().handshake([[SettingId.MAX_HEADER_LIST_SIZE, 102], [SettingId.INITIAL_WINDOW_SIZE, 5]]);
    const t = d.open(1, true);
    t.respond(RESPONSE, false);
    t.write(bytes(10));
    t.end(TRAILERS);
    d.windowUpdate(1, 5).send();
    expect(d.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc', 'DATA 1 5 bytes', 'DATA 1 5 bytes', 'HEADERS 1 grpc-status=0 end_stream']);
  });
});

describe('malformed requests (RFC 9113 8.2, 8.3): stream PROTOCOL_ERROR, and the connection goes on', () => {
  const without = (name: string): HeaderField[] => REQUEST.filter((f) => f.name !== name);
  const cases: [string, HeaderField[], boolean?][] = [
    ['an uppercase name', [...REQUEST, { name: 'X-Upper', value: '1' }]],
    ['an empty name', [...REQUEST, { name: '', value: '1' }]],
    ['a space in a name', [...REQUEST, { name: 'x y', value: '1' }]],
    ['a colon in a regular name', [...REQUEST, { name: 'x:y', value: '1' }]],
    ['NUL in a value', [...REQUEST, { name: 'x-a', value: 'a\0b' }]],
    ['CR in a value', [...REQUEST, { name: 'x-a', value: 'a\rb' }]],
    ['LF in a value', [...REQUEST, { name: 'x-a', value: 'a\nb' }]],
    ['a value with leading whitespace', [...REQUEST, { name: 'x-a', value: ' a' }]],
    ['a value with trailing whitespace', [...REQUEST, { name: 'x-a', value: 'a\t' }]],
    ['a pseudo-header after a regular field', [...REQUEST, { name: ':authority', value: 'x' }].filter((f, i) => !(f.name === ':authority' && i === 3))],
    ['a response pseudo-header', [{ name: ':status', value: '200' }, ...REQUEST]],
    ['an unknown pseudo-header', [{ name: ':protocol', value: 'websocket' }, ...REQUEST]],
    ['a duplicated pseudo-header', [{ name: ':path', value: '/a' }, ...REQUEST]],
    ['no :method', without(':method')],
    ['no :scheme', without(':scheme')],
    ['no :path', without(':path')],
    ['an empty :path', REQUEST.map((f) => (f.name === ':path' ? { name: ':path', value: '' } : f))],
    ['a :path not starting with /', REQUEST.map((f) => (f.name === ':path' ? { name: ':path', value: 'x/y' } : f))],
    ['CONNECT', fields([':method', 'CONNECT'], [':authority', 'example.com:443'])],
    ['connection', [...REQUEST, { name: 'connection', value: 'close' }]],
    ['keep-alive', [...REQUEST, { name: 'keep-alive', value: '5' }]],
    ['proxy-connection', [...REQUEST, { name: 'proxy-connection', value: 'x' }]],
    ['transfer-encoding', [...REQUEST, { name: 'transfer-encoding', value: 'chunked' }]],
    ['upgrade', [...REQUEST, { name: 'upgrade', value: 'h2c' }]],
    ['te other than trailers', [...without('te'), { name: 'te', value: 'gzip' }]],
    ['a content-length that is not a number', [...REQUEST, { name: 'content-length', value: '5x' }]],
    ['two content-lengths', [...REQUEST, { name: 'content-length', value: '5' }, { name: 'content-length', value: '5' }]],
    ['a content-length with no body', [...REQUEST, { name: 'content-length', value: '5' }], true],
  ];
  for (const [what, list, endStream] of cases) {
    it(`refuses ${what}`, () => {
      const c = new Client().handshake();
      c.headers(1, list, endStream ?? false).send();
      expect(c.frames()).toEqual(['RST_STREAM 1 PROTOCOL_ERROR']);
      expect(c.events()).toEqual([]);
      // HPACK stayed in step: the next request (with fields from the dynamic table) is served.
      c.headers(3, [...REQUEST, { name: 'x-a', value: 'after' }], true).send();
      expect(c.events()).toEqual(['stream 3 POST /etcdserverpb.KV/Range end_stream']);
      expect(c.headersOf.get(3)!['x-a']).toBe('after');
    });
  }

  it('accepts te: trailers, OPTIONS *, and a matching content-length (negative controls)', () => {
    const c = new Client().handshake();
    c.headers(1, REQUEST, true).send();
    c.headers(3, REQUEST.map((f) => (f.name === ':method' ? { name: ':method', value: 'OPTIONS' } : f.name === ':path' ? { name: ':path', value: '*' } : f)), true).send();
    c.headers(5, [...REQUEST, { name: 'content-length', value: '3' }]).data(5, 1).data(5, 2, true).send();
    c.headers(7, [...REQUEST, { name: 'content-length', value: '0' }], true).send();
    expect(c.frames()).toEqual([]);
    expect(c.events()).toEqual([
      'stream 1 POST /etcdserverpb.KV/Range end_stream',
      'stream 3 OPTIONS * end_stream',
      'stream 5 POST /etcdserverpb.KV/Range',
      'data 5 1',
      'data 5 2 end_stream',
      'stream 7 POST /etcdserverpb.KV/Range end_stream',
    ]);
  });

  it('a body longer than content-length fails when it passes it; a shorter one at END_STREAM', () => {
    const c = new Client().handshake();
    c.headers(1, [...REQUEST, { name: 'content-length', value: '3' }]).data(1, 2).data(1, 2).send();
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range', 'data 1 2', 'closed 1 PROTOCOL_ERROR']);
    expect(c.frames()).toEqual(['RST_STREAM 1 PROTOCOL_ERROR']);
    c.headers(3, [...REQUEST, { name: 'content-length', value: '3' }]).data(3, 2, true).send();
    expect(c.events()).toEqual(['stream 3 POST /etcdserverpb.KV/Range', 'closed 3 PROTOCOL_ERROR']);
    expect(c.frames()).toEqual(['RST_STREAM 3 PROTOCOL_ERROR']);
  });

  it('a HEADERS that depends on itself is refused after its block is decoded', () => {
    const c = new Client().handshake();
    const block = c.encoder.encode([...REQUEST, { name: 'x-a', value: 'indexed' }]);
    const payload = Buffer.concat([u32(1), Buffer.from([15]), block]);
    c.raw(FrameType.HEADERS, Flag.END_HEADERS | Flag.PRIORITY, 1, payload).send();
    expect(c.frames()).toEqual(['RST_STREAM 1 PROTOCOL_ERROR']);
    c.headers(3, [...REQUEST, { name: 'x-a', value: 'indexed' }], true).send();
    expect(c.events()).toEqual(['stream 3 POST /etcdserverpb.KV/Range end_stream']);
    // Another dependency is fine.
    c.raw(FrameType.HEADERS, Flag.END_HEADERS | Flag.PRIORITY | Flag.END_STREAM, 5, Buffer.concat([u32(3), Buffer.from([15]), c.encoder.encode(REQUEST)])).send();
    expect(c.events()).toEqual(['stream 5 POST /etcdserverpb.KV/Range end_stream']);
  });

  it('headers past headerListBytesMax: RST_STREAM ENHANCE_YOUR_CALM, and HPACK stays in step', () => {
    const c = new Client({ limits: { headerListBytesMax: 1000 } }).handshake();
    c.headers(1, [...REQUEST, { name: 'x-big', value: 'v'.repeat(200) }, { name: 'x-big2', value: 'w'.repeat(900) }]).send();
    expect(c.frames()).toEqual(['RST_STREAM 1 ENHANCE_YOUR_CALM']);
    c.headers(3, [...REQUEST, { name: 'x-big', value: 'v'.repeat(200) }], true).send();
    expect(c.events()).toEqual(['stream 3 POST /etcdserverpb.KV/Range end_stream']);
  });

  it('a block that is not valid HPACK fails the connection with COMPRESSION_ERROR', () => {
    const c = new Client().handshake();
    c.raw(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])).send();
    expect(c.frames()).toEqual(['GOAWAY 0 COMPRESSION_ERROR']);
    expect(c.events()).toEqual(['connection closed COMPRESSION_ERROR']);
  });
});

describe('stream ids and states', () => {
  it('an even stream id fails the connection (PROTOCOL_ERROR)', () => {
    const c = new Client().handshake();
    c.headers(2).send();
    expect(c.frames()).toEqual(['GOAWAY 0 PROTOCOL_ERROR']);
  });

  it('a HEADERS on a stream that was used and closed fails the connection (STREAM_CLOSED)', () => {
    const c = new Client().handshake();
    c.open(1, true).respond(fields([':status', '200'], ['grpc-status', '0']), true);
    c.frames();
    c.events();
    c.open(3);
    c.headers(1).send();
    expect(c.frames()).toEqual(['GOAWAY 3 STREAM_CLOSED']);
    expect(c.events()).toEqual(['closed 3 STREAM_CLOSED', 'connection closed STREAM_CLOSED']);
  });

  it('a HEADERS on an id the client skipped fails the connection (PROTOCOL_ERROR: an unexpected id, 5.1.1)', () => {
    const c = new Client().handshake();
    c.open(5);
    c.headers(3).send();
    expect(c.frames()).toEqual(['GOAWAY 5 PROTOCOL_ERROR']);
    expect(c.events()).toEqual(['closed 5 PROTOCOL_ERROR', 'connection closed PROTOCOL_ERROR']);
  });

  it('remembers the last SKIPPED_ID_RUNS_REMEMBERED runs of skipped ids; an older one gets STREAM_CLOSED', () => {
    const c = new Client({ limits: { concurrentStreamsMax: 1000 } }).handshake();
    // Open 3, 7, 11, ...: each skips one id (1, 5, 9, ...), 65 runs in all.
    for (let i = 0; i <= 64; i++) c.open(4 * i + 3);
    c.frames();
    c.events();
    c.headers(1).send(); // the first run, forgotten
    expect(c.frames()).toEqual(['GOAWAY 259 STREAM_CLOSED']);
    const d = new Client({ limits: { concurrentStreamsMax: 1000 } }).handshake();
    for (let i = 0; i <= 64; i++) d.open(4 * i + 3);
    d.frames();
    d.headers(5).send(); // the second, still remembered
    expect(d.frames()).toEqual(['GOAWAY 259 PROTOCOL_ERROR']);
  });

  for (const [what, send] of [
    ['DATA', (c: Client) => c.data(7, 1)],
    ['RST_STREAM', (c: Client) => c.rst(7, ErrorCode.CANCEL)],
    ['WINDOW_UPDATE', (c: Client) => c.windowUpdate(7, 1)],
    ['CONTINUATION', (c: Client) => c.raw(FrameType.CONTINUATION, Flag.END_HEADERS, 1)],
    ['DATA on an even stream', (c: Client) => c.data(2, 1)],
  ] as const) {
    it(`${what} on an idle stream fails the connection (PROTOCOL_ERROR)`, () => {
      const c = new Client().handshake();
      c.open(1);
      send(c).send();
      expect(c.frames()).toEqual(['GOAWAY 1 PROTOCOL_ERROR']);
      expect(c.events()).toEqual(['closed 1 PROTOCOL_ERROR', 'connection closed PROTOCOL_ERROR']);
    });
  }

  it('PRIORITY is accepted and ignored anywhere: idle, open, closed; a self-dependency is a stream error', () => {
    const c = new Client().handshake();
    c.priority(9, 0).priority(1, 0).send();
    c.open(1);
    c.streams.get(1)!.reset(ErrorCode.CANCEL);
    c.priority(1, 0).priority(11, 3).send();
    expect(c.frames()).toEqual(['RST_STREAM 1 CANCEL']);
    c.headers(9, REQUEST, true).send();
    expect(c.events()).toEqual(['closed 1 CANCEL', 'stream 9 POST /etcdserverpb.KV/Range end_stream']);
    c.priority(9, 9).send();
    expect(c.frames()).toEqual(['RST_STREAM 9 PROTOCOL_ERROR']);
    expect(c.events()).toEqual(['closed 9 PROTOCOL_ERROR']);
  });

  // RFC 9113 6.4: RST_STREAM must not be sent for an idle stream (the client treats it as a connection error). A
  // malformed PRIORITY on an idle stream got one.
  it('a malformed PRIORITY on an idle stream fails the connection rather than reset a stream that does not exist', () => {
    const selfDependent = (id: number): Buffer => Buffer.concat([u32(id), Buffer.from([15])]);
    const short = (): Buffer => Buffer.alloc(4);
    for (const [payload, code] of [
      [selfDependent, 'PROTOCOL_ERROR'],
      [short, 'FRAME_SIZE_ERROR'],
    ] as const) {
      const c = new Client().handshake();
      c.open(1);
      c.raw(FrameType.PRIORITY, 0, 9, payload(9)).send();
      expect(c.frames()).toEqual([`GOAWAY 1 ${code}`]);
      // On a stream that exists, it stays a stream error (negative control).
      const d = new Client().handshake();
      d.open(1);
      d.raw(FrameType.PRIORITY, 0, 1, payload(1)).send();
      expect(d.frames()).toEqual([`RST_STREAM 1 ${code}`]);
    }
  });

  it('RST_STREAM and WINDOW_UPDATE on closed streams are ignored', () => {
    const c = new Client().handshake();
    c.open(1).reset(ErrorCode.CANCEL);
    c.frames();
    c.rst(1, ErrorCode.CANCEL).windowUpdate(1, 100).send();
    expect(c.frames()).toEqual([]);
    expect(c.conn.closed).toBe(false);
  });

  it('DATA on a stream closed by both END_STREAMs: RST_STREAM STREAM_CLOSED once, and its bytes still count against and credit the connection window', () => {
    const c = new Client({ limits: { connectionWindowBytes: 65_535, streamWindowBytes: 65_535 } }).handshake();
    c.open(1, true).respond(RESPONSE, true);
    c.frames();
    c.data(1, 16_384).data(1, 16_382).send();
    // The second DATA was sent before the client could read our RST_STREAM: dropped.
    expect(c.frames()).toEqual(['RST_STREAM 1 STREAM_CLOSED']);
    // Half the window (32,767) is owed: credited.
    c.data(1, 1).send();
    expect(c.frames()).toEqual(['WINDOW_UPDATE 0 +32767']);
  });

  // RFC 9113 5.1, "closed": after our RST_STREAM the client may still have frames in flight on the stream, which we
  // must drop (DATA still counting for the connection window, header blocks still decoded). Answering each with
  // RST_STREAM STREAM_CLOSED spent the reset budget, so a client whose many streams we ended early (a leader change
  // ending every watch) lost its connection to ENHANCE_YOUR_CALM; its trailers failed the connection (STREAM_CLOSED).
  it('frames the client sent before reading our RST_STREAM are dropped: on streams we ended early, reset or refused', () => {
    const c = new Client({ limits: { resetBudget: { burst: 3, perSecond: 0 }, concurrentStreamsMax: 1 } }).handshake();
    for (let id = 1; id <= 9; id += 2) c.headers(id).send().streams.get(id)!.respond(fields([':status', '200'], ['grpc-status', '3']), true);
    c.headers(11).headers(13).send();
    c.streams.get(11)!.reset(ErrorCode.CANCEL);
    expect(c.frames().filter((f) => f.startsWith('RST_STREAM'))).toEqual([
      'RST_STREAM 1 NO_ERROR',
      'RST_STREAM 3 NO_ERROR',
      'RST_STREAM 5 NO_ERROR',
      'RST_STREAM 7 NO_ERROR',
      'RST_STREAM 9 NO_ERROR',
      'RST_STREAM 13 REFUSED_STREAM',
      'RST_STREAM 11 CANCEL',
    ]);
    c.events();
    // What the client had sent meanwhile: more body, the end of it, trailers.
    for (let id = 1; id <= 13; id += 2) c.data(id, 10).data(id, 0, true);
    c.headers(11, fields(['x-checksum', 'abc']), true).headers(13, fields(['x-checksum', 'def']), true).send();
    expect(c.frames()).toEqual([]);
    expect(c.events()).toEqual([]);
    expect(c.conn.closed).toBe(false);
    // HPACK stayed in step: the trailers' indexed fields decode in the next request.
    c.headers(15, [...REQUEST, ...fields(['x-checksum', 'abc'], ['x-checksum', 'def'])], true).send();
    expect(c.events()).toEqual(['stream 15 POST /etcdserverpb.KV/Range end_stream']);
    expect(c.headersOf.get(15)!['x-checksum']).toBe('abc, def');
  });

  it('trailers whose CONTINUATION arrives after the layer above reset the stream are decoded and dropped', () => {
    const c = new Client().handshake();
    const s = c.open(1);
    const block = c.encoder.encode(fields(['x-t', 'v1']));
    c.raw(FrameType.HEADERS, Flag.END_STREAM, 1, block.subarray(0, 2)).send();
    s.reset(ErrorCode.CANCEL);
    c.raw(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(2)).send();
    // Not taken for a new stream 1 (whose "request" would be malformed): only our RST_STREAM goes out.
    expect(c.frames()).toEqual(['RST_STREAM 1 CANCEL']);
    c.headers(3, [...REQUEST, ...fields(['x-t', 'v1'])], true).send();
    expect(c.headersOf.get(3)!['x-t']).toBe('v1');
  });

  it('remembers the last 2048 streams it reset: DATA on one reset before them is a STREAM_CLOSED error again', () => {
    const c = new Client().handshake();
    for (let i = 0; i <= 2048; i++) c.open(2 * i + 1).reset(ErrorCode.CANCEL);
    c.frames();
    c.data(3, 1).send();
    expect(c.frames()).toEqual([]);
    c.data(1, 1).send();
    expect(c.frames()).toEqual(['RST_STREAM 1 STREAM_CLOSED']);
  });

  it('DATA on stream 0 fails the connection', () => {
    const c = new Client().handshake();
    c.raw(FrameType.DATA, 0, 0, Buffer.from('x')).send();
    expect(c.frames()).toEqual(['GOAWAY 0 PROTOCOL_ERROR']);
  });

  it('PUSH_PROMISE from a client fails the connection', () => {
    const c = new Client().handshake();
    c.open(1);
    c.raw(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, u32(2)).send();
    expect(c.frames()).toEqual(['GOAWAY 1 PROTOCOL_ERROR']);
  });

  it('refuses streams beyond concurrentStreamsMax with REFUSED_STREAM, and takes new ones once some close', () => {
    const c = new Client({ limits: { concurrentStreamsMax: 2 } }).handshake();
    c.headers(1).headers(3).headers(5).send();
    expect(c.frames()).toEqual(['RST_STREAM 5 REFUSED_STREAM']);
    expect(c.conn.openStreams).toBe(2);
    c.rst(1, ErrorCode.CANCEL).headers(7).send();
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range', 'stream 3 POST /etcdserverpb.KV/Range', 'closed 1 CANCEL', 'stream 7 POST /etcdserverpb.KV/Range']);
    expect(c.frames()).toEqual([]);
  });
});

describe('CONTINUATION', () => {
  it('a header block in HEADERS and CONTINUATION frames opens the stream, END_STREAM from the HEADERS', () => {
    const c = new Client().handshake();
    c.headers(1, [...REQUEST, { name: 'x-long', value: 'y'.repeat(40_000) }], true, 16_384).send();
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range end_stream']);
    expect(c.headersOf.get(1)!['x-long']!.length).toBe(40_000);
  });

  it('the block arrives whole even when split across many small reads', () => {
    const c = new Client().handshake();
    c.headers(1, [...REQUEST, { name: 'x-long', value: 'y'.repeat(40_000) }], true, 16_384);
    const all = c.takeBytes();
    for (let i = 0; i < all.length; i += 1000) c.conn.receive(all.subarray(i, i + 1000));
    expect(c.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range end_stream']);
  });

  for (const [what, interloper] of [
    ['a PING', (c: Client) => c.ping()],
    ['a CONTINUATION of another stream', (c: Client) => c.raw(FrameType.CONTINUATION, Flag.END_HEADERS, 3)],
    ['DATA on the same stream', (c: Client) => c.data(1, 1)],
  ] as const) {
    it(`${what} between HEADERS and its CONTINUATION fails the connection (PROTOCOL_ERROR)`, () => {
      const c = new Client().handshake();
      const block = c.encoder.encode(REQUEST);
      c.raw(FrameType.HEADERS, 0, 1, block.subarray(0, 5));
      interloper(c).send();
      expect(c.frames()).toEqual(['GOAWAY 0 PROTOCOL_ERROR']);
    });
  }

  it('a CONTINUATION after END_HEADERS fails the connection', () => {
    const c = new Client().handshake();
    c.headers(1).raw(FrameType.CONTINUATION, Flag.END_HEADERS, 1).send();
    expect(c.frames()).toEqual(['GOAWAY 1 PROTOCOL_ERROR']);
  });

  it('more than continuationFramesMax CONTINUATIONs: ENHANCE_YOUR_CALM', () => {
    const block = new HpackEncoder().encode(REQUEST);
    const run = (continuations: number): string[] => {
      const c = new Client({ limits: { continuationFramesMax: 3 } }).handshake();
      c.raw(FrameType.HEADERS, 0, 1, block.subarray(0, 4));
      const rest = block.subarray(4);
      const step = Math.ceil(rest.length / continuations);
      for (let i = 0; i < continuations; i++) {
        const last = i === continuations - 1;
        c.raw(FrameType.CONTINUATION, last ? Flag.END_HEADERS : 0, 1, rest.subarray(i * step, last ? rest.length : (i + 1) * step));
      }
      c.send();
      return [...c.frames(), ...c.events()];
    };
    expect(run(3)).toEqual(['stream 1 POST /etcdserverpb.KV/Range']);
    expect(run(4)).toEqual(['GOAWAY 0 ENHANCE_YOUR_CALM', 'connection closed ENHANCE_YOUR_CALM']);
  });

  it('a block longer than headerBlockBytesMax: ENHANCE_YOUR_CALM, before it ends', () => {
    const c = new Client({ limits: { headerBlockBytesMax: 20_000 } }).handshake();
    c.raw(FrameType.HEADERS, 0, 1, Buffer.alloc(16_000)).raw(FrameType.CONTINUATION, 0, 1, Buffer.alloc(4_001)).send();
    expect(c.frames()).toEqual(['GOAWAY 0 ENHANCE_YOUR_CALM']);
    expect(c.lastGoawayDebug).toContain('longer than 20000');
  });
});

describe('flow control: receiving', () => {
  const small = { streamWindowBytes: 65_535, connectionWindowBytes: 65_535 };

  it('credits back in batches of half a window, stream and connection, padding included', () => {
    const c = new Client({ limits: small }).handshake();
    c.open(1);
    c.paddedData(1, bytes(16_128), 255).send();
    expect(c.frames()).toEqual([]);
    c.paddedData(1, bytes(16_128), 255).send();
    expect(c.events()).toEqual(['data 1 16128', 'data 1 16128']);
    expect(c.frames()).toEqual(['WINDOW_UPDATE 0 +32768', 'WINDOW_UPDATE 1 +32768']);
  });

  it('no stream WINDOW_UPDATE for a request that has ended; the connection is still credited', () => {
    const c = new Client({ limits: small }).handshake();
    c.open(1);
    c.data(1, 16_384).data(1, 16_384, true).send();
    expect(c.frames()).toEqual(['WINDOW_UPDATE 0 +32768']);
  });

  it('the stream window: DATA past it is a stream FLOW_CONTROL_ERROR', () => {
    const c = new Client({ limits: { streamWindowBytes: 65_535 } }).handshake();
    c.open(1).pause();
    for (let i = 0; i < 4; i++) c.data(1, 16_384);
    c.send();
    expect(c.frames()).toEqual(['RST_STREAM 1 FLOW_CONTROL_ERROR']);
    expect(c.events()).toEqual(['data 1 16384', 'data 1 16384', 'data 1 16384', 'closed 1 FLOW_CONTROL_ERROR']);
    expect(c.conn.closed).toBe(false);
  });

  it('the connection window: DATA past it fails the connection (FLOW_CONTROL_ERROR)', () => {
    const c = new Client({ limits: { connectionWindowBytes: 65_535, frameBytesMax: 70_000 } }).handshake();
    c.open(1);
    c.data(1, 65_536).send();
    expect(c.frames()).toEqual(['GOAWAY 1 FLOW_CONTROL_ERROR']);
    expect(c.events()).toEqual(['closed 1 FLOW_CONTROL_ERROR', 'connection closed FLOW_CONTROL_ERROR']);
  });

  it('a paused stream withholds its credit until resume(); the connection is credited regardless', () => {
    const c = new Client({ limits: small }).handshake();
    const s = c.open(1);
    s.pause();
    c.data(1, 16_384).data(1, 16_384).data(1, 16_384).send();
    expect(c.frames()).toEqual(['WINDOW_UPDATE 0 +32768']);
    s.resume();
    expect(c.frames()).toEqual(['WINDOW_UPDATE 1 +49152']);
    s.resume();
    expect(c.frames()).toEqual([]);
  });

  it('pausing inside data() withholds the credit for that very data', () => {
    const c = new Client({ limits: small, hooks: { data: (s) => s.pause() } }).handshake();
    c.open(1);
    c.data(1, 16_384).data(1, 7_232).data(1, 16_384).send();
    expect(c.frames()).toEqual(['WINDOW_UPDATE 0 +40000']);
  });

  it('10,000 DATA frames of mixed sizes and padding: the credit keeps pace, and no byte of window leaks', () => {
    const c = new Client({ limits: small }).handshake();
    c.open(1);
    // The client's view of its windows, from what it sent and the WINDOW_UPDATEs it read.
    const windows = { stream: 65_535, connection: 65_535 };
    let delivered = 0;
    for (let i = 0; i < 10_000; i++) {
      const body = 1 + ((i * 7919) % 3000);
      const padding = i % 5;
      const cost = body + padding + (padding > 0 ? 1 : 0);
      expect(Math.min(windows.stream, windows.connection)).toBeGreaterThanOrEqual(cost);
      if (padding > 0) c.paddedData(1, bytes(body), padding);
      else c.data(1, body);
      c.send();
      windows.stream -= cost;
      windows.connection -= cost;
      delivered += body;
      for (const f of c.frames()) {
        const [, id, n] = /^WINDOW_UPDATE (\d+) \+(\d+)$/.exec(f)!;
        windows[id === '0' ? 'connection' : 'stream'] += Number(n);
      }
    }
    expect(Buffer.concat(c.requestBodies.get(1)!).length).toBe(delivered);
    // What is not yet credited is less than the batch threshold (half a window): nothing leaked.
    expect(65_535 - windows.stream).toBeLessThan(32_767);
    expect(65_535 - windows.connection).toBeLessThan(32_767);
  });

  it('resume() below the threshold sends nothing: the client still has more than half a window', () => {
    const c = new Client({ limits: small }).handshake();
    const s = c.open(1);
    s.pause();
    c.data(1, 100).send();
    s.resume();
    expect(c.frames()).toEqual([]);
  });
});

describe('flow control: sending', () => {
  it('a stream blocked on its window resumes on its WINDOW_UPDATE; the trailers follow the last byte', () => {
    const c = new Client().handshake([[SettingId.INITIAL_WINDOW_SIZE, 10]]);
    const s = c.open(1, true);
    s.respond(RESPONSE, false);
    expect(s.write(bytes(25))).toBe(true);
    s.end(TRAILERS);
    expect(s.queuedBytes).toBe(15);
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc', 'DATA 1 10 bytes']);
    c.windowUpdate(1, 5).send();
    expect(c.frames()).toEqual(['DATA 1 5 bytes']);
    c.windowUpdate(1, 100).send();
    expect(c.frames()).toEqual(['DATA 1 10 bytes', 'HEADERS 1 grpc-status=0 end_stream']);
    expect(c.events()).toEqual(['closed 1 NO_ERROR']);
    expect(Buffer.concat(c.responseBodies.get(1)!)).toEqual(bytes(25));
  });

  it('streams blocked on the connection window resume in FIFO order on its WINDOW_UPDATE', () => {
    const c = new Client().handshake([[SettingId.INITIAL_WINDOW_SIZE, 1 << 20]]);
    const a = c.open(1, true);
    const b = c.open(3, true);
    const d = c.open(5, true);
    for (const s of [a, b, d]) s.respond(RESPONSE, false);
    c.frames();
    a.write(bytes(40_000));
    b.write(bytes(40_000));
    d.write(bytes(100));
    expect(c.frames()).toEqual(['DATA 1 16384 bytes', 'DATA 1 16384 bytes', 'DATA 1 7232 bytes', 'DATA 3 16384 bytes', 'DATA 3 9151 bytes']);
    c.windowUpdate(0, 20_000).send();
    expect(c.frames()).toEqual(['DATA 3 14465 bytes', 'DATA 5 100 bytes']);
    expect([a.queuedBytes, b.queuedBytes, d.queuedBytes]).toEqual([0, 0, 0]);
    // 20,000 - 14,465 - 100 = 5,435 left over for whoever writes next.
    a.write(bytes(6_000));
    expect(c.frames()).toEqual(['DATA 1 5435 bytes']);
    c.windowUpdate(0, 1000).send();
    expect(c.frames()).toEqual(['DATA 1 565 bytes']);
  });

  it('holdOutput(true) frames no DATA (write() pushes back at the queue bound) while headers still go; release frames the queues in order', () => {
    const c = new Client({ limits: { streamSendQueueBytes: 1000 } }).handshake();
    const [a, b] = [c.open(1, true), c.open(3, true)];
    c.frames();
    c.conn.holdOutput(true);
    a.respond(RESPONSE, false);
    expect(a.write(bytes(600))).toBe(true);
    expect(a.write(bytes(600))).toBe(false);
    b.respond(RESPONSE, false);
    b.write(bytes(10));
    b.end(TRAILERS);
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc', 'HEADERS 3 :status=200 content-type=application/grpc']);
    expect([a.queuedBytes, b.queuedBytes]).toEqual([1200, 10]);
    expect(c.events()).toEqual([]);
    c.conn.holdOutput(false);
    expect(c.frames()).toEqual(['DATA 1 600 bytes', 'DATA 1 600 bytes', 'DATA 3 10 bytes', 'HEADERS 3 grpc-status=0 end_stream']);
    expect(c.events()).toEqual(['writable 1', 'closed 3 NO_ERROR']);
  });

  it('a stream that uses up the window again goes behind those still waiting', () => {
    const c = new Client().handshake([[SettingId.INITIAL_WINDOW_SIZE, 1 << 20]]);
    const [a, b] = [c.open(1, true), c.open(3, true)];
    a.respond(RESPONSE, false);
    b.respond(RESPONSE, false);
    a.write(bytes(65_535));
    c.frames();
    a.write(bytes(50_000));
    b.write(bytes(50_000));
    c.windowUpdate(0, 10_000).send();
    expect(c.frames()).toEqual(['DATA 1 10000 bytes']);
    c.windowUpdate(0, 10_000).send();
    expect(c.frames()).toEqual(['DATA 3 10000 bytes']);
    c.windowUpdate(0, 10_000).send();
    expect(c.frames()).toEqual(['DATA 1 10000 bytes']);
  });

  it('a smaller INITIAL_WINDOW_SIZE makes open windows negative; the stream sends once WINDOW_UPDATEs bring it above zero', () => {
    const c = new Client().handshake();
    c.windowUpdate(0, 1 << 20).send();
    const s = c.open(1, true);
    s.respond(RESPONSE, false);
    s.write(bytes(70_000));
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc', 'DATA 1 16384 bytes', 'DATA 1 16384 bytes', 'DATA 1 16384 bytes', 'DATA 1 16383 bytes']);
    c.settings([[SettingId.INITIAL_WINDOW_SIZE, 1000]]).send();
    expect(c.frames()).toEqual(['SETTINGS ack']);
    c.windowUpdate(1, 64_535).send();
    expect(c.frames()).toEqual([]);
    c.windowUpdate(1, 10).send();
    expect(c.frames()).toEqual(['DATA 1 10 bytes']);
    // A larger INITIAL_WINDOW_SIZE lets the rest go at once.
    c.settings([[SettingId.INITIAL_WINDOW_SIZE, 10_000]]).send();
    expect(c.frames()).toEqual(['SETTINGS ack', 'DATA 1 4455 bytes']);
  });

  it('INITIAL_WINDOW_SIZE taking a window past 2^31-1 fails the connection (FLOW_CONTROL_ERROR)', () => {
    const c = new Client().handshake();
    c.open(1, true);
    c.windowUpdate(1, MAX_WINDOW_SIZE - DEFAULT_INITIAL_WINDOW_SIZE).send();
    expect(c.frames()).toEqual([]);
    c.settings([[SettingId.INITIAL_WINDOW_SIZE, DEFAULT_INITIAL_WINDOW_SIZE + 1]]).send();
    expect(c.frames()).toEqual(['GOAWAY 1 FLOW_CONTROL_ERROR']);
  });

  it('WINDOW_UPDATE past 2^31-1: stream FLOW_CONTROL_ERROR on a stream, connection error on the connection', () => {
    const c = new Client().handshake();
    c.open(1, true);
    c.windowUpdate(1, MAX_WINDOW_SIZE).send();
    expect(c.frames()).toEqual(['RST_STREAM 1 FLOW_CONTROL_ERROR']);
    expect(c.events()).toEqual(['closed 1 FLOW_CONTROL_ERROR']);
    c.windowUpdate(0, MAX_WINDOW_SIZE).send();
    expect(c.frames()).toEqual(['GOAWAY 1 FLOW_CONTROL_ERROR']);
  });

  it('a zero WINDOW_UPDATE: stream PROTOCOL_ERROR on a stream, connection error on the connection', () => {
    const c = new Client().handshake();
    c.open(1, true);
    c.windowUpdate(1, 0).send();
    expect(c.frames()).toEqual(['RST_STREAM 1 PROTOCOL_ERROR']);
    c.windowUpdate(0, 0).send();
    expect(c.frames()).toEqual(['GOAWAY 1 PROTOCOL_ERROR']);
  });

  it('write() returns false at streamSendQueueBytes, and writable() fires once when the queue falls below', () => {
    const c = new Client({ limits: { streamSendQueueBytes: 100 } }).handshake([[SettingId.INITIAL_WINDOW_SIZE, 0]]);
    const s = c.open(1, true);
    s.respond(RESPONSE, false);
    expect(s.write(bytes(60))).toBe(true);
    expect(s.write(bytes(40))).toBe(false);
    expect(s.write(bytes(10))).toBe(false);
    expect(s.queuedBytes).toBe(110);
    c.windowUpdate(1, 10).send();
    expect(s.queuedBytes).toBe(100);
    expect(c.events()).toEqual([]);
    c.windowUpdate(1, 1).send();
    expect(c.events()).toEqual(['writable 1']);
    c.windowUpdate(1, 49).send();
    expect(c.events()).toEqual([]);
    expect(s.queuedBytes).toBe(50);
  });

  it('writable() may write again at once', () => {
    let rounds = 0;
    const c = new Client({ limits: { streamSendQueueBytes: 10 }, hooks: { writable: (s) => rounds++ < 2 && s.write(bytes(20)) } });
    c.handshake([[SettingId.INITIAL_WINDOW_SIZE, 0]]);
    const s = c.open(1, true);
    s.respond(RESPONSE, false);
    expect(s.write(bytes(20))).toBe(false);
    c.frames();
    // Credit for 30: the 20 queued go, writable() writes 20 more, of which 10 go and 10 stay (write() false).
    c.windowUpdate(1, 30).send();
    expect(c.events()).toEqual(['writable 1']);
    expect(c.frames()).toEqual(['DATA 1 20 bytes', 'DATA 1 10 bytes']);
    c.windowUpdate(1, 100).send();
    expect(c.events()).toEqual(['writable 1']);
    expect(c.frames()).toEqual(['DATA 1 10 bytes', 'DATA 1 20 bytes']);
    expect(rounds).toBe(2);
  });
});

describe('PING', () => {
  it('answers a PING with its ACK, and reports the ACK of ours', () => {
    const c = new Client().handshake();
    c.ping('0011223344556677').send();
    expect(c.frames()).toEqual(['PING ack 0011223344556677']);
    c.conn.ping(Buffer.from('aabbccddeeff0011', 'hex'));
    expect(c.frames()).toEqual(['PING aabbccddeeff0011']);
    c.ping('aabbccddeeff0011', true).send();
    expect(c.events()).toEqual(['ping acknowledged aabbccddeeff0011']);
    expect(c.frames()).toEqual([]);
  });
});

describe('the end of a connection', () => {
  it('shutdown(): GOAWAY NO_ERROR, new streams ignored but decoded, closed() after the last open stream', () => {
    const c = new Client().handshake();
    const s = c.open(1, true);
    c.conn.shutdown();
    expect(c.frames()).toEqual(['GOAWAY 1 NO_ERROR']);
    c.headers(3, [...REQUEST, { name: 'x-a', value: 'indexed' }]).data(3, 10).send();
    expect(c.frames()).toEqual([]);
    expect(c.events()).toEqual([]);
    c.conn.shutdown();
    expect(c.frames()).toEqual([]);
    answer(s, Buffer.from('bye'));
    expect(c.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc', 'DATA 1 3 bytes', 'HEADERS 1 grpc-status=0 end_stream']);
    expect(c.events()).toEqual(['closed 1 NO_ERROR', 'connection closed']);
    expect(c.conn.closed).toBe(true);
    c.ping().send();
    expect(c.frames()).toEqual([]);
  });

  describe('shutdown({ twoStep: true }) (RFC 9113 6.8)', () => {
    const SHUTDOWN_PING = Buffer.from('goaway:2').toString('hex');

    it('GOAWAY 2^31-1 and a PING; streams opened meanwhile are processed; the real GOAWAY on the ACK, then it drains', () => {
      const c = echoClient().handshake();
      const s = c.open(1);
      c.conn.shutdown({ twoStep: true });
      expect(c.frames()).toEqual([`GOAWAY ${MAX_WINDOW_SIZE} NO_ERROR`, `PING ${SHUTDOWN_PING}`]);
      // A stream the client opened before it read the GOAWAY: served, and no close while the ACK is awaited.
      c.headers(3, REQUEST, true).send();
      expect(c.events()).toEqual(['stream 3 POST /etcdserverpb.KV/Range end_stream', 'closed 3 NO_ERROR']);
      expect(c.frames()).toEqual(['HEADERS 3 :status=200 content-type=application/grpc', 'HEADERS 3 grpc-status=0 end_stream']);
      c.conn.shutdown({ twoStep: true }); // again: nothing more
      expect(c.frames()).toEqual([]);
      // The ACK: the real last stream id, not reported as the layer above's PING.
      c.ping(SHUTDOWN_PING, true).send();
      expect(c.frames()).toEqual(['GOAWAY 3 NO_ERROR']);
      expect(c.events()).toEqual([]);
      // Now new streams are ignored (but decoded), and the last open one ends the connection.
      c.headers(5, REQUEST, true).send();
      expect(c.events()).toEqual([]);
      s.respond(RESPONSE, true);
      expect(c.frames()).toEqual(['HEADERS 1 :status=200 content-type=application/grpc end_stream', 'RST_STREAM 1 NO_ERROR']);
      expect(c.events()).toEqual(['closed 1 NO_ERROR', 'connection closed']);
    });

    it('with no stream open, the ACK closes the connection; other PING ACKs are still reported', () => {
      const c = new Client().handshake();
      c.conn.shutdown({ twoStep: true });
      c.frames();
      c.ping('0102030405060708', true).send();
      expect(c.events()).toEqual(['ping acknowledged 0102030405060708']);
      expect(c.conn.closed).toBe(false);
      c.ping(SHUTDOWN_PING, true).send();
      expect(c.frames()).toEqual(['GOAWAY 0 NO_ERROR']);
      expect(c.events()).toEqual(['connection closed']);
    });

    it('a plain shutdown() before the ACK (the caller\'s timeout) sends the real GOAWAY at once; a late ACK does nothing', () => {
      const c = new Client().handshake();
      const s = c.open(1, true);
      c.conn.shutdown({ twoStep: true });
      c.frames();
      c.conn.shutdown();
      expect(c.frames()).toEqual(['GOAWAY 1 NO_ERROR']);
      c.ping(SHUTDOWN_PING, true).send();
      expect(c.frames()).toEqual([]);
      expect(c.events()).toEqual([]);
      s.respond(RESPONSE, true);
      expect(c.events()).toEqual(['closed 1 NO_ERROR', 'connection closed']);
    });

    it('fail() after the first step sends the real last stream id', () => {
      const c = new Client().handshake();
      c.open(1);
      c.conn.shutdown({ twoStep: true });
      c.frames();
      c.conn.fail(ErrorCode.INTERNAL_ERROR, 'going');
      expect(c.frames()).toEqual(['GOAWAY 1 INTERNAL_ERROR']);
    });
  });

  it('shutdown() with no stream open closes at once', () => {
    const c = new Client().handshake();
    c.conn.shutdown();
    expect(c.frames()).toEqual(['GOAWAY 0 NO_ERROR']);
    expect(c.events()).toEqual(['connection closed']);
  });

  it("the client's GOAWAY: open streams finish, new ones are refused, then closed()", () => {
    const c = new Client().handshake();
    const s = c.open(1, true);
    c.goaway(0).headers(3, REQUEST).data(3, 4, true).send();
    expect(c.events()).toEqual([]);
    // Refused, not silently ignored: its client would wait on it for as long as stream 1 lasts.
    expect(c.frames()).toEqual(['RST_STREAM 3 REFUSED_STREAM']);
    s.respond(RESPONSE, true);
    expect(c.events()).toEqual(['closed 1 NO_ERROR', 'connection closed']);
    const d = new Client().handshake();
    d.goaway(0).send();
    expect(d.events()).toEqual(['connection closed']);
  });

  it('fail(): GOAWAY with the code and message, every stream closed with it, then closed({code, message})', () => {
    let error: unknown;
    const c = new Client().handshake();
    const [a, b] = [c.open(1), c.open(3)];
    const conn = new ServerConnection({ stream: () => ({ data() {}, writable() {}, closed() {} }), output() {}, closed: (e) => (error = e) });
    conn.fail(ErrorCode.SETTINGS_TIMEOUT, 'no SETTINGS in time');
    expect(error).toEqual({ code: ErrorCode.SETTINGS_TIMEOUT, message: 'no SETTINGS in time' });
    c.conn.fail(ErrorCode.ENHANCE_YOUR_CALM, 'keepalive');
    expect(c.frames()).toEqual(['GOAWAY 3 ENHANCE_YOUR_CALM']);
    expect(c.lastGoawayDebug).toBe('keepalive');
    expect(c.events()).toEqual(['closed 1 ENHANCE_YOUR_CALM', 'closed 3 ENHANCE_YOUR_CALM', 'connection closed ENHANCE_YOUR_CALM']);
    expect(a.write(Buffer.from('x'))).toBe(false);
    b.reset(ErrorCode.CANCEL);
    c.conn.fail(ErrorCode.INTERNAL_ERROR, 'again');
    c.conn.terminate();
    c.conn.shutdown();
    c.conn.ping(Buffer.alloc(8));
    c.ping().send();
    expect(c.frames()).toEqual([]);
    expect(c.events()).toEqual([]);
    expect(c.connectionClosed).toBe(1);
  });

  // ConnectionEvents.closed() is documented to come after every stream's closed(). A connection that ended inside
  // events.stream() reported its closed() first, and the new stream's closed() after it.
  it('a connection that ends inside stream() reports closed() after that stream\'s closed()', () => {
    const drained = new Client({ hooks: { stream: (s) => (drained.conn.shutdown(), s.respond(RESPONSE, true)) } }).handshake();
    drained.headers(1, REQUEST, true).send();
    expect(drained.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range end_stream', 'closed 1 NO_ERROR', 'connection closed']);
    const failed = new Client({ hooks: { stream: () => failed.conn.fail(ErrorCode.INTERNAL_ERROR, 'no') } }).handshake();
    failed.headers(1, REQUEST, true).send();
    expect(failed.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range end_stream', 'closed 1 INTERNAL_ERROR', 'connection closed INTERNAL_ERROR']);
    // A stream() that throws after ending the connection: closed() is still reported, once.
    const thrown = new Client({ hooks: { stream: () => (thrown.conn.terminate(), assert.fail('boom')) } }).handshake();
    expect(() => thrown.headers(1, REQUEST, true).send()).toThrow('boom');
    expect(thrown.events()).toEqual(['stream 1 POST /etcdserverpb.KV/Range end_stream', 'connection closed']);
    expect(thrown.connectionClosed).toBe(1);
  });

  it('terminate(): every stream closed with CANCEL, closed(undefined), nothing sent', () => {
    const c = new Client().handshake();
    c.open(1);
    c.open(3, true);
    c.conn.terminate();
    expect(c.events()).toEqual(['closed 1 CANCEL', 'closed 3 CANCEL', 'connection closed']);
    expect(c.frames()).toEqual([]);
    expect(c.conn.openStreams).toBe(0);
  });

  it('fail() after shutdown() keeps the GOAWAY last stream id', () => {
    const c = new Client().handshake();
    c.open(1);
    c.conn.shutdown();
    c.headers(3).send();
    c.conn.fail(ErrorCode.INTERNAL_ERROR, 'x');
    expect(c.frames()).toEqual(['GOAWAY 1 NO_ERROR', 'GOAWAY 1 INTERNAL_ERROR']);
  });

  it('a listener that throws ends the connection with INTERNAL_ERROR and the error surfaces', () => {
    const c = new Client({
      hooks: {
        stream: () => {
          throw new Error('bug');
        },
      },
    }).handshake();
    expect(() => c.headers(1).send()).toThrow('bug');
    expect(c.frames()).toEqual(['GOAWAY 1 INTERNAL_ERROR']);
    expect(c.conn.closed).toBe(true);
  });
});

describe('flood limits', () => {
  const tight = { burst: 3, perSecond: 1 };

  /** Sends `n` frames made by `make`, `spacingMs` apart on the fake clock; returns the transcript. */
  function flood(c: Client, n: number, spacingMs: number, make: (c: Client, i: number) => void): string[] {
    for (let i = 0; i < n; i++) {
      make(c, i);
      c.send();
      c.clockMs += spacingMs;
    }
    return c.frames().filter((f) => f.startsWith('GOAWAY'));
  }

  const workGoesOn: Hooks = { closed: () => true };

  it('resetBudget: streams the client resets whose work is still going on at the next read', () => {
    const reset = (c: Client, i: number): void => void c.headers(2 * i + 1).rst(2 * i + 1, ErrorCode.CANCEL);
    // Each read charges the resets of the one before: the fifth read finds the fourth reset over the budget.
    expect(flood(new Client({ limits: { resetBudget: tight }, hooks: workGoesOn }).handshake(), 5, 0, reset)).toEqual(['GOAWAY 7 ENHANCE_YOUR_CALM']);
    // The same spread over time pass: the bucket refills (negative control).
    expect(flood(new Client({ limits: { resetBudget: tight }, hooks: workGoesOn }).handshake(), 8, 1000, reset)).toEqual([]);
  });

  it('resetBudget: a reset whose work stops, at once or before the next read, costs nothing (a client cancelling calls)', () => {
    const reset = (c: Client, i: number): void => void c.headers(2 * i + 1).rst(2 * i + 1, ErrorCode.CANCEL);
    expect(flood(new Client({ limits: { resetBudget: tight } }).handshake(), 200, 0, reset)).toEqual([]);
    const c = new Client({ limits: { resetBudget: tight }, hooks: workGoesOn }).handshake();
    const doneBeforeNextRead = (cl: Client, i: number): void => {
      reset(cl, i);
      cl.send();
      cl.streams.get(2 * i + 1)!.done();
    };
    expect(flood(c, 200, 0, doneBeforeNextRead)).toEqual([]);
    expect(c.conn.lingeringStreams).toBe(0);
  });

  it('streams whose work goes on after they closed count against concurrentStreamsMax until done()', () => {
    const c = new Client({ limits: { concurrentStreamsMax: 2 }, hooks: workGoesOn }).handshake();
    c.headers(1).headers(3).rst(1, ErrorCode.CANCEL).send();
    c.streams.get(3)!.respond(RESPONSE, true); // closed normally, its work going on too
    expect(c.conn.openStreams).toBe(0);
    expect(c.conn.lingeringStreams).toBe(2);
    c.headers(5).send();
    expect(c.frames()).toEqual(['HEADERS 3 :status=200 content-type=application/grpc end_stream', 'RST_STREAM 3 NO_ERROR', 'RST_STREAM 5 REFUSED_STREAM']);
    c.streams.get(1)!.done();
    c.streams.get(1)!.done(); // twice: counted once
    expect(c.conn.lingeringStreams).toBe(1);
    c.headers(7).send();
    expect(c.events()).toContain('stream 7 POST /etcdserverpb.KV/Range');
    expect(c.frames()).toEqual([]);
    // Without the listener's true (negative control) nothing lingers: the limit is the open streams alone.
    const plain = new Client({ limits: { concurrentStreamsMax: 1 } }).handshake();
    plain.headers(1).rst(1, ErrorCode.CANCEL).headers(3).send();
    expect(plain.conn.lingeringStreams).toBe(0);
    expect(plain.frames()).toEqual([]);
  });

  it('resetBudget: streams we refuse count too', () => {
    const c = new Client({ limits: { resetBudget: tight, concurrentStreamsMax: 0 } }).handshake();
    c.headers(1).headers(3).headers(5).headers(7).send();
    expect(c.frames()).toEqual(['RST_STREAM 1 REFUSED_STREAM', 'RST_STREAM 3 REFUSED_STREAM', 'RST_STREAM 5 REFUSED_STREAM', 'GOAWAY 0 ENHANCE_YOUR_CALM']);
  });

  it('resetBudget: a RST_STREAM on a closed stream does not count against it', () => {
    const c = new Client({ limits: { resetBudget: tight } }).handshake();
    for (let id = 1; id <= 9; id += 2) {
      c.headers(id, REQUEST, true).send();
      c.streams.get(id)!.respond(RESPONSE, true);
      c.rst(id, ErrorCode.CANCEL).send();
    }
    expect(c.frames().filter((f) => f.startsWith('GOAWAY'))).toEqual([]);
  });

  it('controlBudget: PINGs and SETTINGS (the first SETTINGS takes a token too)', () => {
    const c = new Client({ limits: { controlBudget: tight } }).handshake();
    c.ping().ping().send();
    expect(c.frames()).toEqual(['PING ack 0102030405060708', 'PING ack 0102030405060708']);
    c.ping().send();
    expect(c.frames()).toEqual(['GOAWAY 0 ENHANCE_YOUR_CALM']);
    const d = new Client({ limits: { controlBudget: tight } }).handshake();
    expect(flood(d, 10, 1000, (x, i) => (i % 2 === 0 ? x.ping() : x.settings([])))).toEqual([]);
    const e = new Client({ limits: { controlBudget: tight } }).handshake();
    expect(flood(e, 3, 0, (x) => x.settings([]))).toEqual(['GOAWAY 0 ENHANCE_YOUR_CALM']);
  });

  const emptyKinds: [string, (c: Client, i: number) => void][] = [
    ['empty DATA without END_STREAM', (c) => void c.data(1, 0)],
    ['PRIORITY', (c, i) => void c.priority(101 + 2 * i, 0)],
    ['WINDOW_UPDATE on a closed stream', (c) => void c.windowUpdate(3, 1)],
    ['RST_STREAM on a closed stream', (c) => void c.rst(3, ErrorCode.CANCEL)],
    ['an extension frame', (c) => void c.raw(0x42, 0, 0, Buffer.from('ext'))],
    ['empty DATA on a closed stream', (c) => void c.data(3, 0)],
  ];
  for (const [what, make] of emptyKinds) {
    it(`emptyFrameBudget: ${what}`, () => {
      const setup = (): Client => {
        const c = new Client({ limits: { emptyFrameBudget: tight } }).handshake();
        c.open(1);
        c.open(3).reset(ErrorCode.CANCEL);
        c.frames();
        return c;
      };
      expect(flood(setup(), 4, 0, make)).toEqual(['GOAWAY 3 ENHANCE_YOUR_CALM']);
      expect(flood(setup(), 8, 1000, make)).toEqual([]);
    });
  }

  it('emptyFrameBudget: empty CONTINUATION frames', () => {
    const run = (empties: number): string[] => {
      const c = new Client({ limits: { emptyFrameBudget: tight } }).handshake();
      c.raw(FrameType.HEADERS, 0, 1, c.encoder.encode(REQUEST));
      for (let i = 0; i < empties; i++) c.raw(FrameType.CONTINUATION, 0, 1);
      c.raw(FrameType.CONTINUATION, Flag.END_HEADERS, 1).send();
      return [...c.frames(), ...c.events()];
    };
    expect(run(3)).toEqual(['stream 1 POST /etcdserverpb.KV/Range']);
    expect(run(4)).toEqual(['GOAWAY 0 ENHANCE_YOUR_CALM', 'connection closed ENHANCE_YOUR_CALM']);
  });

  it('non-empty DATA, END_STREAM DATA and WINDOW_UPDATE on open streams are not counted (negative control)', () => {
    const c = new Client({ limits: { emptyFrameBudget: tight } }).handshake();
    for (let id = 1; id <= 21; id += 2) {
      c.headers(id).data(id, 1).data(id, 0, true).windowUpdate(id, 1).send();
    }
    expect(c.frames().filter((f) => f.startsWith('GOAWAY'))).toEqual([]);
    expect(c.conn.openStreams).toBe(11);
  });
});

describe('limits', () => {
  it('has the documented defaults', () => {
    expect(validateLimits()).toEqual(CONNECTION_DEFAULTS);
    expect(Object.isFrozen(CONNECTION_DEFAULTS)).toBe(true);
  });

  it('refuses bad limits with a RangeError', () => {
    const bad: Partial<ConnectionLimits>[] = [
      { streamWindowBytes: 65_534 },
      { streamWindowBytes: 2 ** 31 },
      { connectionWindowBytes: 1000 },
      { frameBytesMax: 16_383 },
      { frameBytesMax: 2 ** 24 },
      { concurrentStreamsMax: -1 },
      { concurrentStreamsMax: 1.5 },
      { headerTableBytes: -1 },
      { headerBlockBytesMax: 0 },
      { streamSendQueueBytes: 0 },
      { resetBudget: { burst: 0, perSecond: 1 } },
      { controlBudget: { burst: 1, perSecond: -1 } },
      { emptyFrameBudget: { burst: 1, perSecond: Number.NaN } },
      { bogus: 1 } as Partial<ConnectionLimits>,
    ];
    for (const limits of bad) expect(() => new ServerConnection({ stream: () => ({ data() {}, writable() {}, closed() {} }), output() {}, closed() {} }, { limits })).toThrow(RangeError);
    expect(validateLimits({ concurrentStreamsMax: 5, streamWindowBytes: undefined }).concurrentStreamsMax).toBe(5);
  });
});

describe('properties', () => {
  /** A client byte stream touching most paths: CONTINUATION, padding, trailers, PING, a reset, credit. */
  function scriptedBytes(c: Client): Buffer {
    c.preface([[SettingId.INITIAL_WINDOW_SIZE, 100_000], [SettingId.MAX_FRAME_SIZE, 20_000]]).settingsAck();
    c.windowUpdate(0, 1 << 20);
    c.headers(1, [...REQUEST, { name: 'x-long', value: 'z'.repeat(30_000) }], false, 16_384).data(1, bytes(16_000)).data(1, bytes(5, 1), true);
    c.headers(3, REQUEST, true).ping('0101010101010101');
    c.headers(5).paddedData(5, bytes(100), 30).headers(5, fields(['x-t', '1']), true);
    c.headers(7).data(7, 10).rst(7, ErrorCode.CANCEL);
    c.headers(9).data(9, bytes(16_000)).data(9, bytes(16_000)).data(9, bytes(16_000)).data(9, 0, true);
    return c.takeBytes();
  }

  function transcript(c: Client): string[] {
    return [...c.frames(), '--', ...c.events()];
  }

  it('any chunking of a valid client byte stream gives the same transcript', () => {
    const whole = echoClient();
    whole.conn.receive(scriptedBytes(whole));
    const expected = transcript(whole);
    expect(expected).toContain('PING ack 0101010101010101');
    expect(expected.filter((l) => l.startsWith('closed')).sort()).toEqual(['closed 1 NO_ERROR', 'closed 3 NO_ERROR', 'closed 5 NO_ERROR', 'closed 7 CANCEL', 'closed 9 NO_ERROR']);
    expect(expected.filter((l) => l.startsWith('GOAWAY') || l.startsWith('RST'))).toEqual([]);
    const all = scriptedBytes(new Client());
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: all.length }), { maxLength: 40 }), (cuts) => {
        const c = echoClient();
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        let start = 0;
        for (const end of [...points, all.length]) {
          c.conn.receive(all.subarray(start, end));
          start = end;
        }
        expect(transcript(c)).toEqual(expected);
      }),
      { numRuns: 150 },
    );
  });

  it('random interleavings of many streams complete, each with its own body, in any chunking', () => {
    const bodiesArb = fc.array(fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 3 }), { minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(bodiesArb, fc.array(fc.nat(), { minLength: 40, maxLength: 40 }), fc.array(fc.nat(), { maxLength: 10 }), (plan, picks, cuts) => {
        const c = echoClient();
        c.preface().settingsAck();
        // Frames left per stream: the HEADERS, then one DATA per chunk (the last with END_STREAM, or END_STREAM on
        // the HEADERS when there is no body). Ids are given in the order the HEADERS go out.
        const left = plan.map((chunks) => 1 + chunks.length);
        const ids = plan.map(() => 0);
        const sent = plan.map(() => [] as Buffer[]);
        let nextId = 1;
        let pick = 0;
        for (let remaining = plan.filter((_, i) => left[i]! > 0); remaining.length > 0; remaining = plan.filter((_, i) => left[i]! > 0)) {
          const candidates = plan.map((_, i) => i).filter((i) => left[i]! > 0);
          const s = candidates[picks[pick++ % picks.length]! % candidates.length]!;
          const chunks = plan[s]!;
          const k = chunks.length + 1 - left[s]!;
          if (k === 0) {
            ids[s] = nextId;
            nextId += 2;
            c.headers(ids[s]!, REQUEST, chunks.length === 0);
          } else {
            const body = bytes(chunks[k - 1]!, ids[s]! + k);
            sent[s]!.push(body);
            c.data(ids[s]!, body, k === chunks.length);
          }
          left[s]!--;
        }
        const all = c.takeBytes();
        let start = 0;
        for (const end of [...new Set(cuts.map((x) => x % (all.length + 1)))].sort((a, b) => a - b).concat(all.length)) {
          c.conn.receive(all.subarray(start, end));
          start = end;
        }
        const frames = c.frames();
        expect(frames.filter((f) => f.startsWith('RST') || f.startsWith('GOAWAY'))).toEqual([]);
        for (let s = 0; s < plan.length; s++) {
          const id = ids[s]!;
          const body = Buffer.concat(sent[s]!);
          expect(Buffer.concat(c.requestBodies.get(id)!)).toEqual(body);
          expect(Buffer.concat(c.responseBodies.get(id) ?? [])).toEqual(body);
          expect(c.closedCount.get(id)).toBe(1);
        }
        expect(c.conn.openStreams).toBe(0);
        expect(c.events().filter((e) => e.startsWith('closed')).every((e) => e.endsWith('NO_ERROR'))).toBe(true);
      }),
      { numRuns: 150 },
    );
  });
});

describe('interop with node:http2', () => {
  /** The least socket glue: socket reads to receive(), output to the socket once per turn. */
  function serve(socket: net.Socket, pings: string[]): ServerConnection {
    let scheduled = false;
    const flush = (): void => {
      scheduled = false;
      for (const chunk of conn.take()) if (!socket.destroyed) socket.write(chunk);
    };
    const conn: ServerConnection = new ServerConnection({
      stream(stream, headers, endStream) {
        const parts: Buffer[] = [];
        const reply = (): void => {
          const body = Buffer.concat(parts).reverse();
          stream.respond(fields([':status', '200'], ['content-type', 'application/octet-stream'], ['x-path', headers[':path']!]), false);
          stream.write(body);
          stream.end(fields(['x-bytes', String(body.length)]));
        };
        if (endStream) reply();
        return {
          data(chunk, end) {
            parts.push(Buffer.from(chunk));
            if (end) reply();
          },
          writable() {},
          closed() {},
        };
      },
      output() {
        if (scheduled) return;
        scheduled = true;
        setImmediate(flush);
      },
      closed() {
        flush();
        socket.end();
      },
      pingAcknowledged: (data) => pings.push(data.toString('hex')),
    });
    socket.on('data', (chunk: Buffer) => conn.receive(chunk));
    socket.on('close', () => conn.terminate());
    socket.on('error', () => {});
    return conn;
  }

  it('serves a node:http2 client: bodies of 0, 10 and 200 KB with trailers, PINGs both ways, graceful close', async () => {
    const pings: string[] = [];
    const conns: ServerConnection[] = [];
    const server = net.createServer((socket) => conns.push(serve(socket, pings)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      for (const size of [0, 10, 200 * 1024]) {
        const body = bytes(size, size);
        const req = session.request({ ':method': 'POST', ':path': `/echo/${size}` });
        req.end(body);
        const chunks: Buffer[] = [];
        let status = 0;
        let path = '';
        let trailers: http2.IncomingHttpHeaders = {};
        req.on('response', (h) => {
          status = Number(h[':status']);
          path = String(h['x-path']);
        });
        req.on('trailers', (t) => (trailers = t));
        req.on('data', (c: Buffer) => chunks.push(c));
        await once(req, 'end');
        expect(status).toBe(200);
        expect(path).toBe(`/echo/${size}`);
        expect(Buffer.concat(chunks).equals(Buffer.from(body).reverse())).toBe(true);
        expect(trailers['x-bytes']).toBe(String(size));
      }
      const rtt = await new Promise<number>((resolve, reject) => session.ping(Buffer.from('12345678'), (err, ms) => (err ? reject(err) : resolve(ms))));
      expect(rtt).toBeGreaterThanOrEqual(0);
      conns[0]!.ping(Buffer.from('abcdefgh'));
      for (let i = 0; i < 200 && pings.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(pings).toEqual([Buffer.from('abcdefgh').toString('hex')]);
      expect(conns[0]!.settingsAcknowledged).toBe(true);
      const goaway = once(session, 'goaway');
      conns[0]!.shutdown();
      const [code] = (await goaway) as [number];
      expect(code).toBe(ErrorCode.NO_ERROR);
      expect(conns[0]!.closed).toBe(true);
    } finally {
      session.destroy();
      server.close();
    }
  });

  it('a two-step shutdown with a node:http2 client: its ACK brings the real GOAWAY, and a call in progress completes', async () => {
    const conns: ServerConnection[] = [];
    const server = net.createServer((socket) => conns.push(serve(socket, [])));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const req = session.request({ ':method': 'POST', ':path': '/late' });
      req.write(Buffer.from('abc'));
      const goaways: number[] = [];
      session.on('goaway', (_code, lastStreamId) => goaways.push(lastStreamId));
      for (let i = 0; i < 200 && conns[0]?.openStreams !== 1; i++) await new Promise((r) => setTimeout(r, 5));
      conns[0]!.shutdown({ twoStep: true });
      for (let i = 0; i < 200 && goaways.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
      expect(goaways).toEqual([2 ** 31 - 1, 1]);
      expect(conns[0]!.closed).toBe(false);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.end(Buffer.from('def'));
      await once(req, 'end');
      expect(Buffer.concat(chunks).toString()).toBe('fedcba');
      for (let i = 0; i < 200 && !conns[0]!.closed; i++) await new Promise((r) => setTimeout(r, 5));
      expect(conns[0]!.closed).toBe(true);
    } finally {
      session.destroy();
      server.close();
    }
  });
});
