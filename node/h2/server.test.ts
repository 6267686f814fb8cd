// The socket glue over real sockets: node:http2 clients over TCP and TLS, and raw clients that misbehave (say
// nothing, answer no PING, read nothing) to reach the timers and the back-pressure.
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestPki, type IssuedCert } from '../testing/certs.js';
import type { H2Stream, StreamListener } from './connection.js';
import { CLIENT_PREFACE, DEFAULT_INITIAL_WINDOW_SIZE, ErrorCode, MAX_FRAME_SIZE_LIMIT, MAX_WINDOW_SIZE, Flag, type Frame, FrameReader, FrameType, FrameWriter, parseGoaway, parsePing, parseSettings, SettingId, STREAM_ID_MAX } from './frames.js';
import { type HeaderField, HpackEncoder } from './hpack.js';
import { H2Server, SHUTDOWN_ACK_TIMEOUT_MS, type H2ServerOptions } from './server.js';

const OK_HEADERS: HeaderField[] = [
  { name: ':status', value: '200' },
  { name: 'content-type', value: 'application/octet-stream' },
];

/** Answers each request with its body reversed and a trailer, as soon as the request has ended. */
function echoReversed(stream: H2Stream, _headers: Record<string, string>, endStream: boolean): StreamListener {
  const parts: Buffer[] = [];
  const answer = (): void => {
    const body = Buffer.concat(parts).reverse();
    stream.respond(OK_HEADERS, false);
    stream.write(body);
    stream.end([{ name: 'x-bytes', value: String(body.length) }]);
  };
  if (endStream) answer();
  return {
    data(bytes, end) {
      parts.push(Buffer.from(bytes));
      if (end) answer();
    },
    writable() {},
    closed() {},
  };
}

const servers: { h2: H2Server; listener: net.Server }[] = [];

async function start(options: Partial<H2ServerOptions> & { tls?: tls.TlsOptions } = {}): Promise<{ h2: H2Server; port: number; listener: net.Server }> {
  const h2 = new H2Server({ onStream: echoReversed, ...options });
  const listener = options.tls === undefined ? net.createServer() : tls.createServer({ ...options.tls, ALPNProtocols: ['h2'] });
  h2.attach(listener);
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  servers.push({ h2, listener });
  return { h2, port: (listener.address() as net.AddressInfo).port, listener };
}

afterEach(async () => {
  for (const { h2 } of servers.splice(0)) await h2.close(0);
});

/** One request through a node:http2 client session: the response's status, body and trailers. */
async function request(session: http2.ClientHttp2Session, body: Buffer): Promise<{ status: number; body: Buffer; trailers: http2.IncomingHttpHeaders }> {
  const req = session.request({ ':method': 'POST', ':path': '/echo' });
  req.end(body);
  const chunks: Buffer[] = [];
  let status = 0;
  let trailers: http2.IncomingHttpHeaders = {};
  req.on('response', (h) => (status = Number(h[':status'])));
  req.on('trailers', (t) => (trailers = t));
  req.on('data', (c: Buffer) => chunks.push(c));
  await once(req, 'end');
  return { status, body: Buffer.concat(chunks), trailers };
}

/** A hand-driven client: sends frames of its choosing and reads the server's. */
class RawClient {
  readonly frames: Frame[] = [];
  /** DATA payload bytes received, all streams. */
  dataBytes = 0;
  readonly writer = new FrameWriter();
  readonly encoder = new HpackEncoder();
  private readonly reader = new FrameReader({ maxFrameBytes: MAX_FRAME_SIZE_LIMIT });
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      // DATA payloads are not kept (a test may move megabytes); every other frame's is, copied out of the chunk.
      for (let f = this.reader.next(); f !== undefined; f = this.reader.next()) {
        if (f.type === FrameType.DATA) this.dataBytes += f.payload.length;
        this.frames.push({ ...f, payload: f.type === FrameType.DATA ? Buffer.alloc(0) : Buffer.from(f.payload) });
      }
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  /** The preface, our SETTINGS and the ACK of the server's; with `largestWindows`, every window at its maximum. */
  handshake(largestWindows = false): void {
    this.socket.write(CLIENT_PREFACE);
    this.writer.settings(largestWindows ? [[SettingId.INITIAL_WINDOW_SIZE, MAX_WINDOW_SIZE]] : []);
    this.writer.settingsAck();
    if (largestWindows) this.writer.windowUpdate(0, MAX_WINDOW_SIZE - DEFAULT_INITIAL_WINDOW_SIZE);
    this.send();
  }

  request(streamId: number, body: Buffer): void {
    const block = this.encoder.encode([
      { name: ':method', value: 'POST' },
      { name: ':scheme', value: 'http' },
      { name: ':path', value: '/echo' },
      { name: ':authority', value: 'localhost' },
    ]);
    this.writer.headers(streamId, block, false, 16_384);
    for (let off = 0; off < body.length; off += 16_384) this.writer.data(streamId, body.subarray(off, off + 16_384), false);
    this.writer.data(streamId, Buffer.alloc(0), true);
    this.send();
  }

  send(): void {
    for (const b of this.writer.take()) this.socket.write(b);
  }

  of(type: number): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }

  async until(predicate: () => boolean, ms = 5_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error('RawClient.until: timed out');
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

describe('H2Server over TCP with a node:http2 client', () => {
  it('answers requests with bodies from empty to several windows long, trailers included', async () => {
    const { port } = await start();
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      for (const size of [0, 10, 70_000, 300_000]) {
        const body = Buffer.alloc(size, 0);
        for (let i = 0; i < size; i++) body[i] = i % 251;
        const res = await request(session, body);
        expect(res.status).toBe(200);
        expect(res.body.equals(Buffer.from(body).reverse())).toBe(true);
        expect(res.trailers['x-bytes']).toBe(String(size));
      }
    } finally {
      session.close();
    }
  });

  it('sends the answers made in one turn with one socket write', async () => {
    const waiting: (() => void)[] = [];
    const burst = 50;
    const onStream = (stream: H2Stream): StreamListener => ({
      data(_bytes, end) {
        if (!end) return;
        waiting.push(() => {
          stream.respond(OK_HEADERS, false);
          stream.write(Buffer.from('x'));
          stream.end();
        });
        // The last request answers them all, in the same turn.
        if (waiting.length === burst) for (const answer of waiting.splice(0)) answer();
      },
      writable() {},
      closed() {},
    });
    const { port, listener } = await start({ onStream });
    const writes: number[] = [];
    listener.on('connection', (socket: net.Socket) => {
      const write = socket._write.bind(socket);
      const writev = socket._writev?.bind(socket);
      socket._write = (chunk, encoding, cb) => (writes.push(1), write(chunk, encoding, cb));
      if (writev !== undefined) socket._writev = (chunks, cb) => (writes.push(chunks.length), writev(chunks, cb));
    });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      await once(session, 'remoteSettings');
      await new Promise((r) => setTimeout(r, 50));
      const before = writes.length;
      const answers = await Promise.all(Array.from({ length: burst }, () => request(session, Buffer.from('q'))));
      expect(answers.every((a) => a.body.toString() === 'x')).toBe(true);
      // The burst itself went in one write; window updates for the requests' bytes may add one or two more.
      expect(writes.length - before).toBeGreaterThanOrEqual(1);
      expect(writes.length - before).toBeLessThanOrEqual(3);
    } finally {
      session.close();
    }
  });

  it('close() lets a stream in progress finish, then resolves with every session gone', async () => {
    let answerLater: (() => void) | undefined;
    const onStream = (stream: H2Stream): StreamListener => ({
      data(_bytes, end) {
        if (end) answerLater = () => (stream.respond(OK_HEADERS, false), stream.write(Buffer.from('late')), stream.end());
      },
      writable() {},
      closed() {},
    });
    const { h2, port } = await start({ onStream });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const goaway = once(session, 'goaway');
    const pending = request(session, Buffer.from('q'));
    while (answerLater === undefined) await new Promise((r) => setTimeout(r, 5));
    const closing = h2.close(5_000);
    const [code] = (await goaway) as [number];
    expect(code).toBe(ErrorCode.NO_ERROR);
    expect(h2.sessionCount).toBe(1);
    answerLater();
    expect((await pending).body.toString()).toBe('late');
    await closing;
    expect(h2.sessionCount).toBe(0);
    session.destroy();
  });

  it('close() destroys the sessions still open after the grace period', async () => {
    const onStream = (): StreamListener => ({ data() {}, writable() {}, closed() {} });
    const { h2, port } = await start({ onStream });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    const req = session.request({ ':method': 'POST', ':path': '/never' });
    req.on('error', () => {});
    req.end();
    await once(session, 'remoteSettings');
    await new Promise((r) => setTimeout(r, 50));
    const clientClosed = once(session, 'close');
    const t0 = Date.now();
    await h2.close(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    expect(h2.sessionCount).toBe(0);
    await clientClosed;
  });
});

describe('H2Server: graceful shutdown in two steps', () => {
  const goaways = (c: RawClient): Array<{ lastStreamId: number; errorCode: number }> =>
    c.of(FrameType.GOAWAY).map((f) => {
      const g = parseGoaway(f);
      return { lastStreamId: g.lastStreamId, errorCode: g.errorCode };
    });

  it('a stream opened before the client read the first GOAWAY is still served; the real GOAWAY follows the PING ACK', async () => {
    const { h2, port } = await start();
    const client = await RawClient.connect(port);
    client.handshake();
    client.request(1, Buffer.from('ab'));
    await client.until(() => client.of(FrameType.DATA).length > 0);
    const closing = h2.close(5_000);
    await client.until(() => goaways(client).length === 1 && client.of(FrameType.PING).length === 1);
    expect(goaways(client)).toEqual([{ lastStreamId: STREAM_ID_MAX, errorCode: ErrorCode.NO_ERROR }]);
    // The client had already sent stream 3 when the GOAWAY reached it: it is answered, not refused.
    client.request(3, Buffer.from('cd'));
    await client.until(() => client.of(FrameType.DATA).length === 2);
    expect(client.of(FrameType.RST_STREAM)).toEqual([]);
    client.writer.ping(parsePing(client.of(FrameType.PING)[0]!).opaqueData, true);
    client.send();
    await client.until(() => goaways(client).length === 2);
    expect(goaways(client)[1]).toEqual({ lastStreamId: 3, errorCode: ErrorCode.NO_ERROR });
    await closing;
    expect(h2.sessionCount).toBe(0);
  });

  it(`a client that never answers the PING gets the real GOAWAY after ${SHUTDOWN_ACK_TIMEOUT_MS} ms`, async () => {
    const { h2, port } = await start();
    const client = await RawClient.connect(port);
    client.handshake();
    await client.until(() => client.of(FrameType.SETTINGS).length > 0);
    const t0 = Date.now();
    const closing = h2.close(5_000);
    await client.until(() => goaways(client).length === 2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(SHUTDOWN_ACK_TIMEOUT_MS - 50);
    expect(goaways(client)).toEqual([
      { lastStreamId: STREAM_ID_MAX, errorCode: ErrorCode.NO_ERROR },
      { lastStreamId: 0, errorCode: ErrorCode.NO_ERROR },
    ]);
    await closing;
  });
});

describe('H2Server over TLS', () => {
  let pki: TestPki;
  let cert: IssuedCert;
  let tlsOptions: tls.TlsOptions;
  beforeAll(async () => {
    pki = await TestPki.create();
    cert = await pki.issue(await pki.ca('ca'), 'server');
    tlsOptions = { key: await readFile(cert.keyFile), cert: await readFile(cert.certFile) };
  }, 30_000);
  afterAll(async () => pki?.cleanup());

  it('serves a client that chose h2 by ALPN', async () => {
    const { port } = await start({ tls: tlsOptions });
    const session = http2.connect(`https://localhost:${port}`, { ca: await readFile(cert.caFile) });
    try {
      const res = await request(session, Buffer.from('secure'));
      expect(res.body.toString()).toBe('eruces');
    } finally {
      session.close();
    }
  });

  // Offering only http/1.1 fails in the handshake (Node's TLS server sends no_application_protocol); offering no
  // protocol at all completes it, and the engine itself must then refuse the connection.
  it.each([
    ['offers only http/1.1', ['http/1.1']],
    ['offers no protocol', undefined],
  ])('disconnects a TLS client that %s, before sending it anything', async (_what, alpn) => {
    const { port, h2 } = await start({ tls: tlsOptions });
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: await readFile(cert.caFile), ...(alpn === undefined ? {} : { ALPNProtocols: alpn }) });
    const errors: Error[] = [];
    socket.on('error', (e) => errors.push(e));
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    let handshook = false;
    socket.on('secureConnect', () => {
      handshook = true;
      socket.write(CLIENT_PREFACE);
    });
    await new Promise((resolve) => socket.on('close', resolve));
    expect(handshook).toBe(alpn === undefined);
    if (alpn !== undefined) expect(errors.map((e) => e.message).join()).toMatch(/no application protocol/);
    expect(Buffer.concat(received).length).toBe(0);
    // The client sees the close before the server has handled its own socket's close event.
    await expect.poll(() => h2.sessionCount).toBe(0);
  });
});

describe('H2Session timers and back-pressure', () => {
  it('ends a connection that never completes the handshake with SETTINGS_TIMEOUT', async () => {
    const { port, h2 } = await start({ handshakeTimeoutMs: 150 });
    const client = await RawClient.connect(port);
    await client.until(() => client.closed);
    const goaways = client.of(FrameType.GOAWAY).map((f) => parseGoaway(f).errorCode);
    expect(goaways).toEqual([ErrorCode.SETTINGS_TIMEOUT]);
    // The client sees the close before the server has handled its own socket's close event.
    await expect.poll(() => h2.sessionCount).toBe(0);
  });

  it('a completed handshake stops the handshake timer', async () => {
    const { port, h2 } = await start({ handshakeTimeoutMs: 150 });
    const client = await RawClient.connect(port);
    client.handshake();
    await new Promise((r) => setTimeout(r, 400));
    expect(client.closed).toBe(false);
    expect(client.of(FrameType.GOAWAY)).toEqual([]);
    expect(h2.sessionCount).toBe(1);
    client.socket.destroy();
  });

  it('pings a quiet connection and keeps it while the PINGs are answered', async () => {
    const { port, h2 } = await start({ keepaliveTimeMs: 50, keepaliveTimeoutMs: 100 });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    let pings = 0;
    session.on('ping', () => pings++);
    await new Promise((r) => setTimeout(r, 500));
    expect(pings).toBeGreaterThanOrEqual(2);
    expect(session.closed || session.destroyed).toBe(false);
    expect(h2.sessionCount).toBe(1);
    session.close();
  });

  it('ends a connection whose keepalive PING goes unanswered', async () => {
    const { port, h2 } = await start({ keepaliveTimeMs: 50, keepaliveTimeoutMs: 100 });
    const client = await RawClient.connect(port);
    client.handshake();
    await client.until(() => client.closed);
    expect(client.of(FrameType.PING).filter((f) => !parsePing(f).ack).length).toBeGreaterThanOrEqual(1);
    expect(client.of(FrameType.GOAWAY).length).toBe(1);
    // The server's socket may report its close a turn after the client's.
    await expect.poll(() => h2.sessionCount).toBe(0);
  });

  it('stops reading a client that does not read its answers, and reads on once it does', async () => {
    const big = 8 * 1024 * 1024;
    const seen: number[] = [];
    const onStream = (stream: H2Stream): StreamListener => {
      seen.push(stream.id);
      return {
        data(_bytes, end) {
          if (!end) return;
          stream.respond(OK_HEADERS, false);
          stream.write(Buffer.alloc(big));
          stream.end();
        },
        writable() {},
        closed() {},
      };
    };
    const { port } = await start({ onStream, writeBufferBytesMax: 64 * 1024 });
    const client = await RawClient.connect(port);
    client.socket.pause();
    client.handshake(true);
    client.request(1, Buffer.alloc(0));
    await new Promise((r) => setTimeout(r, 300));
    // The first answer fills the socket; the requests that follow are not read while it stays full.
    for (let id = 3; id <= 21; id += 2) client.request(id, Buffer.alloc(0));
    await new Promise((r) => setTimeout(r, 300));
    expect(seen).toEqual([1]);
    client.socket.resume();
    await client.until(() => seen.length === 11, 10_000);
    expect(seen.at(-1)).toBe(21);
    client.socket.destroy();
  });

  it('pushes back on a stream (write() false) while its client grants credit but reads nothing, and goes on once it reads', async () => {
    const total = 16 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 7);
    let written = 0;
    let writtenAtFirstRefusal = -1;
    const onStream = (stream: H2Stream): StreamListener => {
      // One chunk per turn, as a handler fed by events would write; stop on false, go on at writable().
      const pump = (): void => {
        while (written < total) {
          written += chunk.length;
          if (!stream.write(chunk)) {
            if (writtenAtFirstRefusal < 0) writtenAtFirstRefusal = written;
            return;
          }
          if (written < total) return void setImmediate(pump);
        }
        stream.end();
      };
      return {
        data(_bytes, end) {
          if (!end) return;
          stream.respond(OK_HEADERS, false);
          pump();
        },
        writable: pump,
        closed() {},
      };
    };
    const { port } = await start({ onStream, writeBufferBytesMax: 64 * 1024 });
    const client = await RawClient.connect(port);
    client.socket.pause();
    client.handshake(true);
    client.request(1, Buffer.alloc(0));
    await new Promise((r) => setTimeout(r, 500));
    // Held at the socket's and the kernel's buffers plus the stream's queue, far short of the whole response.
    expect(writtenAtFirstRefusal).toBeGreaterThan(0);
    expect(written).toBeLessThan(total / 2);
    client.socket.resume();
    await client.until(() => client.dataBytes === total, 10_000);
    expect(written).toBe(total);
    client.socket.destroy();
  });

  it('answers the client SETTINGS with an ACK and announces its own first', async () => {
    const { port } = await start();
    const client = await RawClient.connect(port);
    client.handshake();
    await client.until(() => client.of(FrameType.SETTINGS).length >= 2);
    const settings = client.of(FrameType.SETTINGS);
    expect(settings[0]!.flags & Flag.ACK).toBe(0);
    expect(parseSettings(settings[0]!).entries.length).toBeGreaterThan(0);
    expect(settings[1]!.flags & Flag.ACK).toBe(Flag.ACK);
    client.socket.destroy();
  });
});
