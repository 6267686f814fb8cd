// The Send stream over a bare HTTP/2 connection, node:http2's (h2-send.ts) and Fulcrum's own client
// (engine-send.ts), one suite for both: against a real grpc-js server serving the peer service, as a member's peer
// server does, and against raw HTTP/2 servers that break the protocol in the ways a client must survive: every
// failure has to end the call with a status peer.ts understands, and nothing may hang.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import tls, { type SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type IssuedCert, type TestCa, TestPki } from '../testing/certs.js';
import type { SendAck } from '../../proto/index.js';
import { encodePeerBatch, type PeerBatch } from './batch-codec.js';
import { peerTransportService, REFUSAL, statusError } from './grpc-util.js';
import { EnginePeerSendChannel } from './engine-send.js';
import { ACK_MESSAGE_BYTES_MAX, type ConnectionTiming, PeerSendChannel, type SendStream } from './h2-send.js';
import { plain } from './message-arbitraries.js';
import { EntryType, message, MessageType, type Entry, type Message } from '../../raft/types.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A grpc-js server with the peer service's Send, handled by `onCall`; its URL (https with `credentials`). */
async function grpcPeerServer(onCall: (call: grpc.ServerDuplexStream<PeerBatch, SendAck>) => void, credentials?: grpc.ServerCredentials): Promise<string> {
  const server = new grpc.Server();
  server.addService(peerTransportService(), {
    Send: onCall,
    Handshake: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(statusError(grpc.status.UNIMPLEMENTED, 'not here')),
    SendSnapshot: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(statusError(grpc.status.UNIMPLEMENTED, 'not here')),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials ?? grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  cleanups.push(() => server.forceShutdown());
  return `${credentials === undefined ? 'http' : 'https'}://127.0.0.1:${port}`;
}

/** A raw HTTP/2 server answering every stream with `answer`; its URL. */
async function rawServer(answer: (stream: http2.ServerHttp2Stream) => void): Promise<string> {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    answer(stream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(() => new Promise((r) => server.close(r)));
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

type Channel = { openSend(): SendStream; close(): void };
type ChannelClass = new (url: string, tls: SecureContextOptions | undefined, timing: Partial<ConnectionTiming> & Pick<ConnectionTiming, 'connectTimeoutMs'>) => Channel;

type Outcome = { kind: 'end' } | { kind: 'error'; code: number | undefined; details: string | undefined };

function outcome(stream: SendStream): Promise<Outcome> {
  return new Promise((resolve) => {
    stream.on('end', () => resolve({ kind: 'end' }));
    stream.on('error', (e) => resolve({ kind: 'error', code: (e as grpc.ServiceError).code, details: (e as grpc.ServiceError).details }));
  });
}

const write = (stream: SendStream, frame: Buffer): Promise<void> => new Promise((r) => stream.write(frame, r));

/** gRPC's framing of one message, with a chosen compressed flag. */
function grpcFrame(message: Uint8Array, compressed = 0): Buffer {
  const f = Buffer.alloc(5 + message.length);
  f[0] = compressed;
  f.writeUInt32BE(message.length, 1);
  f.set(message, 5);
  return f;
}

const ackBytes = (seq: number): Buffer => peerTransportService()['Send']!.responseSerialize({ seq });

describe.each<[string, ChannelClass]>([
  ['node:http2', PeerSendChannel],
  ["Fulcrum's HTTP/2 client", EnginePeerSendChannel],
])('the Send stream over %s, against grpc-js and broken servers', (_name, Channel) => {
  function channel(url: string, timing: { keepaliveMs?: number; keepaliveTimeoutMs?: number; connectTimeoutMs?: number } = {}, secure?: SecureContextOptions): Channel {
    const c = new Channel(url, secure, { connectTimeoutMs: 2_000, ...timing });
    cleanups.push(() => c.close());
    return c;
  }

  it('carries batches in order to a grpc-js server, which reads them with the peer codec; its acks come back decoded', async () => {
    const received: number[] = [];
    const url = await grpcPeerServer((call) => {
      call.on('data', (b: PeerBatch) => {
        received.push(b.seq);
        if (b.seq % 3 === 0) call.write({ seq: `${BigInt(b.seq)}` });
      });
    });
    const stream = channel(url).openSend();
    const acks: number[] = [];
    stream.on('data', (a) => acks.push(Number(a.seq)));
    const done = outcome(stream);
    for (let seq = 1; seq <= 30; seq++) await write(stream, encodePeerBatch(null, seq, []));
    await expect.poll(() => acks.length).toBe(10);
    expect(received).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(acks).toEqual([3, 6, 9, 12, 15, 18, 21, 24, 27, 30]);
    stream.cancel();
    expect(await done).toEqual({ kind: 'error', code: grpc.status.CANCELLED, details: 'Cancelled on client' });
  });

  it('an append larger than an HTTP/2 frame and window arrives whole, byte for byte, after smaller ones', async () => {
    const received: PeerBatch[] = [];
    const url = await grpcPeerServer((call) => call.on('data', (b: PeerBatch) => received.push(b)));
    const stream = channel(url).openSend();
    const done = outcome(stream);
    const entries = (count: number, bytes: number, first: number): Entry[] =>
      Array.from({ length: count }, (_, i) => ({ term: 2, index: first + i, type: EntryType.Normal, data: Uint8Array.from({ length: bytes }, (_, j) => (first + i + j) % 251) }));
    const append = (es: Entry[]): Message => message({ type: MessageType.App, from: 1, to: 2, term: 2, logTerm: 2, index: es[0]!.index - 1, entries: es });
    // 100 entries of 400 bytes (~41 KB, as at 100 puts in flight), then 300 of 700 (~210 KB: past the 64 KiB window).
    const sent = [append(entries(3, 10, 1)), append(entries(100, 400, 4)), append(entries(300, 700, 104))];
    for (const [i, m] of sent.entries()) await write(stream, encodePeerBatch(null, i + 1, [m]));
    await expect.poll(() => received.length).toBe(3);
    expect(received.map((b) => b.seq)).toEqual([1, 2, 3]);
    expect(received.map((b) => plain(b.messages[0]!))).toEqual(sent.map(plain));
    stream.cancel();
    expect(await done).toEqual({ kind: 'error', code: grpc.status.CANCELLED, details: 'Cancelled on client' });
  });

  it('a refusal ends the call with the status and details grpc-js would give (percent-encoded on the wire)', async () => {
    const url = await grpcPeerServer((call) => call.once('data', () => call.emit('error', statusError(grpc.status.FAILED_PRECONDITION, REFUSAL.memberRemoved))));
    const stream = channel(url).openSend();
    const done = outcome(stream);
    await write(stream, encodePeerBatch(null, 1, []));
    expect(await done).toEqual({ kind: 'error', code: grpc.status.FAILED_PRECONDITION, details: REFUSAL.memberRemoved });
  });

  it('a trailers-only refusal (no message ever sent back) is read the same way', async () => {
    const url = await rawServer((s) => s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '9', 'grpc-message': 'fulcrum%3A%20cluster%20ID%20mismatch' }, { endStream: true }));
    expect(await outcome(channel(url).openSend())).toEqual({ kind: 'error', code: 9, details: REFUSAL.clusterMismatch });
  });

  it('the peer ending the call with OK is an end, not an error', async () => {
    const url = await grpcPeerServer((call) => call.once('data', () => call.end()));
    const stream = channel(url).openSend();
    const done = outcome(stream);
    await write(stream, encodePeerBatch(null, 1, []));
    expect(await done).toEqual({ kind: 'end' });
  });

  it('acks cut into single bytes across DATA frames are reassembled', async () => {
    const url = await rawServer((s) => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' });
      const bytes = Buffer.concat([1, 2, 300].map((seq) => grpcFrame(ackBytes(seq))));
      let i = 0;
      const drip = (): void => {
        if (i < bytes.length) s.write(bytes.subarray(i, ++i), drip);
      };
      drip();
    });
    const stream = channel(url).openSend();
    const acks: number[] = [];
    stream.on('data', (a) => acks.push(Number(a.seq)));
    const done = outcome(stream);
    await expect.poll(() => acks).toEqual([1, 2, 300]);
    stream.cancel();
    expect(await done).toMatchObject({ kind: 'error', code: grpc.status.CANCELLED });
  });

  it.each([
    ['an HTTP error status', (s: http2.ServerHttp2Stream) => s.respond({ ':status': 503 }, { endStream: true }), grpc.status.UNAVAILABLE, /HTTP status 503/],
    ['a response that is not gRPC', (s: http2.ServerHttp2Stream) => s.respond({ ':status': 200, 'content-type': 'text/html' }, { endStream: true }), grpc.status.UNKNOWN, /content-type text\/html/],
    ['an ack larger than ACK_MESSAGE_BYTES_MAX', (s: http2.ServerHttp2Stream) => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' });
      s.write(grpcFrame(new Uint8Array(ACK_MESSAGE_BYTES_MAX + 1)));
    }, grpc.status.RESOURCE_EXHAUSTED, /exceeds/],
    ['a compressed ack (none was offered)', (s: http2.ServerHttp2Stream) => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' });
      s.write(grpcFrame(ackBytes(1), 1));
    }, grpc.status.INTERNAL, /compressed/],
    ['an ack that is not a SendAck', (s: http2.ServerHttp2Stream) => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' });
      s.write(grpcFrame(Uint8Array.of(0x0a, 0x05, 1)));
    }, grpc.status.INTERNAL, /undecodable/],
    ['a reset stream', (s: http2.ServerHttp2Stream) => s.close(http2.constants.NGHTTP2_INTERNAL_ERROR), grpc.status.UNAVAILABLE, /.+/],
    ['a response that ends without a status', (s: http2.ServerHttp2Stream) => s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { endStream: true }), grpc.status.UNAVAILABLE, /closed/],
    ['DATA that ends the response without trailers', (s: http2.ServerHttp2Stream) => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' });
      s.end(grpcFrame(ackBytes(1)));
    }, grpc.status.UNAVAILABLE, /closed/],
  ])('%s fails the call with a status, and the call is cancelled', async (_name, answer, code, details) => {
    let serverStream: http2.ServerHttp2Stream | undefined;
    const url = await rawServer((s) => {
      serverStream = s;
      answer(s);
    });
    const done = outcome(channel(url).openSend());
    const o = await done;
    expect(o.kind).toBe('error');
    expect(o.kind === 'error' && o.code).toBe(code);
    expect(o.kind === 'error' && o.details).toMatch(details);
    await expect.poll(() => serverStream?.closed).toBe(true);
  });

  it('a peer that accepts the connection and then says nothing is dropped once a keepalive ping goes unanswered', async () => {
    const silent = net.createServer((socket) => socket.on('error', () => {}));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const sockets = new Set<net.Socket>();
    silent.on('connection', (s) => sockets.add(s));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => silent.close(r));
    });
    const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const started = Date.now();
    const o = await outcome(channel(url, { keepaliveMs: 100, keepaliveTimeoutMs: 200 }).openSend());
    expect(o).toMatchObject({ kind: 'error', code: grpc.status.UNAVAILABLE });
    // Bounded by the keepalive, not by TCP: well under a second with these settings.
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('a refused connection fails the call at once, and the next open() dials again', async () => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const c = channel(`http://127.0.0.1:${port}`);
    expect(await outcome(c.openSend())).toMatchObject({ kind: 'error', code: grpc.status.UNAVAILABLE });
    expect(await outcome(c.openSend())).toMatchObject({ kind: 'error', code: grpc.status.UNAVAILABLE });
  });

  it('close() ends the connection: the server sees it go, and the channel opens nothing more', async () => {
    const url = await grpcPeerServer(() => {});
    const c = channel(url);
    const stream = c.openSend();
    const done = outcome(stream);
    await write(stream, encodePeerBatch(null, 1, []));
    c.close();
    expect(await done).toMatchObject({ kind: 'error', code: grpc.status.UNAVAILABLE });
    expect(() => c.openSend()).toThrow(/closed/);
  });
  describe('over TLS', () => {
    let pki: TestPki;
    let ca: TestCa;
    let member: IssuedCert;
    let stranger: IssuedCert;
    beforeAll(async () => {
      pki = await TestPki.create();
      ca = await pki.ca('ca');
      const otherCa = await pki.ca('other-ca');
      [member, stranger] = await Promise.all([pki.issue(ca, 'member'), pki.issue(otherCa, 'stranger')]);
    });
    afterAll(async () => {
      const { rm } = await import('node:fs/promises');
      await rm(pki.dir, { recursive: true, force: true });
    });

    const dialWith = (cert: IssuedCert): SecureContextOptions => ({ cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile), ca: readFileSync(ca.certFile) });
    const serverCredentials = (cert: IssuedCert): grpc.ServerCredentials =>
      grpc.ServerCredentials.createSsl(readFileSync(ca.certFile), [{ cert_chain: readFileSync(cert.certFile), private_key: readFileSync(cert.keyFile) }], false);

    it('carries batches to a grpc-js server with a certificate for 127.0.0.1, and its acks come back', async () => {
      const received: number[] = [];
      const url = await grpcPeerServer((call) => {
        call.on('data', (b: PeerBatch) => {
          received.push(b.seq);
          call.write({ seq: `${BigInt(b.seq)}` });
        });
      }, serverCredentials(member));
      const stream = channel(url, {}, dialWith(member)).openSend();
      const acks: number[] = [];
      stream.on('data', (a) => acks.push(Number(a.seq)));
      const done = outcome(stream);
      for (let seq = 1; seq <= 5; seq++) await write(stream, encodePeerBatch(null, seq, []));
      await expect.poll(() => acks).toEqual([1, 2, 3, 4, 5]);
      expect(received).toEqual([1, 2, 3, 4, 5]);
      stream.cancel();
      expect(await done).toMatchObject({ kind: 'error', code: grpc.status.CANCELLED });
    });

    it('a server whose certificate our CA did not sign fails the call', async () => {
      const url = await grpcPeerServer(() => {}, serverCredentials(stranger));
      expect(await outcome(channel(url, {}, dialWith(member)).openSend())).toMatchObject({ kind: 'error', code: grpc.status.UNAVAILABLE });
    });

    // node:http2's client does not check ALPN: it talks HTTP/2 into the void (and its socket outlives close()).
    it.runIf(Channel === EnginePeerSendChannel)('a TLS server that does not negotiate h2 (no ALPN) fails the call at once', async () => {
      const server = tls.createServer({ cert: readFileSync(member.certFile), key: readFileSync(member.keyFile) }, (socket) => socket.on('error', () => {}));
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      cleanups.push(() => new Promise((r) => server.close(r)));
      const url = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
      const o = await outcome(channel(url, {}, dialWith(member)).openSend());
      expect(o).toMatchObject({ kind: 'error', code: grpc.status.UNAVAILABLE, details: expect.stringMatching(/did not negotiate HTTP\/2/) });
    });
  });
});
