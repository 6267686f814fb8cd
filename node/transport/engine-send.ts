// The sending side of RaftTransport/Send over Fulcrum's own HTTP/2 client (node/h2/client.ts): a socket, the
// client state machine, and the timers it has none of.
//
// Why: at one put in flight, node:http2's client stream was the largest cost left on the peer path. A scratch
// build that carried the same batches over bare TCP took 11 % off the single put's latency and 13 % off its CPU,
// and moving only the receiving half (the peer listener) gained nothing measurable, so the cost was on the
// sending side (docs/performance.md, thirty-third session). The bytes on the wire are still gRPC's over HTTP/2: a
// member's peer server (grpc-js or the engine) serves these streams as it serves any other client's.
//
//   EnginePeerSendChannel: one connection to a peer's URL (TCP, or TLS with ALPN h2), reconnecting on the next
//                          openSend() once it has gone; a connect timeout and keepalive PINGs.
//   EngineSendStream:      one Send call on it, with the SendStream surface peer.ts uses (h2-send.ts).
//
// Writes: the machine signals output whenever it has frames (a batch framed, credit or an ack answered), and the
// connection writes them in a microtask, so the HEADERS of a new call and its first batch leave in one write
// without waiting for the next turn of the event loop. A batch's `written` callback runs once the socket has taken
// the write that carried the batch's last byte: one batch at a time waits in user space per peer, as before.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls, { type SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { ClientConnection, type ClientStream, type ClientStreamListener } from '../h2/client.js';
import { ErrorCode } from '../h2/frames.js';
import type { HeaderField } from '../h2/hpack.js';
import { statusError } from './grpc-util.js';
import { type ConnectionTiming, grpcMessageHeader, Keepalive, SendCallResponse, sendMethod, type SendStream } from './h2-send.js';
import { PEER_KEEPALIVE_MS, PEER_KEEPALIVE_TIMEOUT_MS } from './limits.js';

/**
 * How long a closing connection waits for the peer to read our GOAWAY and close its end before the socket is
 * destroyed: the peer's close is the clean end, the timer bounds a peer that never does.
 */
const CLOSE_LINGER_MS = 1_000;
/** PING payloads are 8 bytes; ours carry a counter, so a late ACK of an older PING is not taken for the current. */
const PING_BYTES = 8;

/** One HTTP/2 connection of our own to a peer for its Send streams; reconnects on the next openSend() once gone. */
export class EnginePeerSendChannel {
  private connection: PeerConnection | undefined;
  private closed = false;
  private readonly url: URL;
  private readonly timing: ConnectionTiming;
  private readonly request: readonly HeaderField[];

  constructor(
    url: string,
    /** TLS for https URLs (node/tls.ts DialCredentials.secureContext); undefined for http. */
    private readonly tls: SecureContextOptions | undefined,
    timing: Partial<ConnectionTiming> & Pick<ConnectionTiming, 'connectTimeoutMs'>,
  ) {
    this.url = new URL(url);
    this.timing = { keepaliveMs: PEER_KEEPALIVE_MS, keepaliveTimeoutMs: PEER_KEEPALIVE_TIMEOUT_MS, ...timing };
    this.request = [
      { name: ':method', value: 'POST' },
      { name: ':scheme', value: this.url.protocol === 'https:' ? 'https' : 'http' },
      { name: ':path', value: sendMethod().path },
      { name: ':authority', value: this.url.host },
      { name: 'content-type', value: 'application/grpc' },
      { name: 'te', value: 'trailers' },
      { name: 'user-agent', value: 'fulcrum-peer' },
    ];
  }

  openSend(): SendStream {
    if (this.closed) throw new Error('fulcrum: send channel closed');
    return new EngineSendStream(this.connected(), this.request);
  }

  close(): void {
    this.closed = true;
    this.connection?.close('send channel closed');
    this.connection = undefined;
  }

  private connected(): PeerConnection {
    if (this.connection !== undefined && this.connection.canOpen) return this.connection;
    // One that can open no more streams (gone, GOAWAY, ids used up) is closed, not left to its keepalive: peer.ts
    // opens a Send stream only once the last has ended, so nothing on it is still in use. A new one takes over.
    this.connection?.close('replaced by a new connection');
    this.connection = new PeerConnection(this.url, this.tls, this.timing);
    return this.connection;
  }
}

/** A socket and the client state machine on it, with the connect timeout and keepalive the machine has none of. */
class PeerConnection {
  readonly h2: ClientConnection;
  private readonly socket: net.Socket;
  private flushQueued = false;
  /** Callbacks for the next flush: each runs once the socket has taken that flush's last write (or has gone). */
  private flushWaiters: (() => void)[] = [];
  /** Why the socket went, for the streams' status: its error, or a timer's verdict. */
  private failure: string | undefined;
  private readonly connectTimer: NodeJS.Timeout;
  private readonly keepalive: Keepalive;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** The PING in flight: its data (a counter, so a late ACK of an older PING is not taken for it) and its answer. */
  private pingOutstanding: { data: Buffer; answered: () => void } | undefined;
  private pingsSent = 0;

  constructor(url: URL, secure: SecureContextOptions | undefined, timing: ConnectionTiming) {
    this.socket = dial(url, secure);
    this.socket.setNoDelay(true);
    this.h2 = new ClientConnection({
      output: () => this.queueFlush(),
      closed: (error) => this.onMachineClosed(error?.message),
      pingAcknowledged: (data) => this.onPingAcknowledged(data),
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (e: Error) => (this.failure ??= e.message));
    this.socket.once('close', () => this.onSocketClosed());
    this.socket.once(secure === undefined ? 'connect' : 'secureConnect', () => this.onConnected(secure !== undefined));
    this.connectTimer = setTimeout(() => this.destroy(`connect timed out after ${timing.connectTimeoutMs} ms`), timing.connectTimeoutMs);
    this.keepalive = new Keepalive(timing, (answered) => this.ping(answered), (reason) => this.destroy(reason));
  }

  private onData(chunk: Buffer): void {
    try {
      this.h2.receive(chunk);
    } catch (e) {
      // A bug (in the machine or a stream's listener): this connection ends, the member goes on, the stream's
      // status says why and peer.ts reconnects.
      this.destroy(`internal error: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    // The peer's SETTINGS is its preface: from then on it is a peer speaking HTTP/2, and the connect timer is done.
    if (this.h2.peerSettingsSeen) clearTimeout(this.connectTimer);
  }

  get canOpen(): boolean {
    return this.h2.canOpen && !this.socket.destroyed;
  }

  /** Run `callback` once the frames now queued have been handed to the socket (or the socket has gone). */
  afterFlush(callback: () => void): void {
    this.flushWaiters.push(callback);
    this.queueFlush();
  }

  /** Polite end: GOAWAY NO_ERROR, then the socket ends once written (the peer's close, or the linger timer, finishes it). */
  close(reason: string): void {
    this.failure ??= reason;
    this.h2.fail(ErrorCode.NO_ERROR, reason);
  }

  private onConnected(secure: boolean): void {
    // A TLS peer that did not agree to h2 is not a member's peer port (or not one we can speak to).
    const protocol = secure ? (this.socket as tls.TLSSocket).alpnProtocol : 'h2';
    if (protocol !== 'h2') this.destroy(`peer did not negotiate HTTP/2 over TLS (ALPN ${String(protocol)})`);
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushQueued = false;
    const chunks = this.h2.take();
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    if (chunks.length === 0 || this.socket.destroyed) return runAll(waiters);
    writeCorked(this.socket, chunks, () => runAll(waiters));
  }

  /** The keepalive's PING (h2-send.ts Keepalive, as grpc-util's channel keeps one), once the socket is connected. */
  private ping(answered: () => void): boolean {
    if (this.h2.closed || this.socket.connecting) return false;
    const data = Buffer.alloc(PING_BYTES);
    data.writeUInt32BE(++this.pingsSent, 4);
    this.pingOutstanding = { data, answered };
    this.h2.ping(data);
    return true;
  }

  private onPingAcknowledged(data: Buffer): void {
    const outstanding = this.pingOutstanding;
    if (outstanding === undefined || !outstanding.data.equals(data)) return;
    this.pingOutstanding = undefined;
    outstanding.answered();
  }

  /** The machine is done (GOAWAY either way, or terminate): write what is left, then end the socket. */
  private onMachineClosed(message: string | undefined): void {
    if (message !== undefined) this.failure ??= message;
    this.flush();
    if (this.socket.destroyed) return;
    this.socket.end();
    this.lingerTimer = setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS);
    this.lingerTimer.unref();
  }

  private destroy(reason: string): void {
    this.failure ??= reason;
    this.socket.destroy();
  }

  private onSocketClosed(): void {
    clearTimeout(this.connectTimer);
    this.keepalive.stop();
    clearTimeout(this.lingerTimer);
    this.h2.terminate(this.failure ?? 'connection closed');
    runAll(this.flushWaiters.splice(0));
  }

  openStream(request: readonly HeaderField[], listener: ClientStreamListener): ClientStream {
    return this.h2.request(request, listener);
  }
}

function dial(url: URL, secure: SecureContextOptions | undefined): net.Socket {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = Number(url.port || (secure === undefined ? 80 : 443));
  if (secure === undefined) return net.connect({ host, port });
  // SNI carries names only (RFC 6066 3); an IP address is checked against the certificate's IP SANs by `host`.
  return tls.connect({ host, port, ...secure, ALPNProtocols: ['h2'], ...(net.isIP(host) === 0 ? { servername: host } : {}) });
}

/**
 * Frames the client machine had ready (ClientConnection.take(), at least one), in one corked write: one writev.
 * `written` runs once the socket has taken the last of them.
 */
export function writeCorked(socket: net.Socket, chunks: readonly Buffer[], written?: () => void): void {
  socket.cork();
  for (let i = 0; i < chunks.length - 1; i++) socket.write(chunks[i]!);
  socket.write(chunks[chunks.length - 1]!, written);
  socket.uncork();
}

function runAll(callbacks: readonly (() => void)[]): void {
  for (const callback of callbacks) callback();
}

/** One Send call on a PeerConnection: gRPC-framed writes, acks decoded, the status as grpc-js would give it. */
class EngineSendStream extends EventEmitter implements SendStream, ClientStreamListener {
  private readonly response = new SendCallResponse(this, sendMethod(), () => this.cancel());
  private readonly stream: ClientStream;
  /** The written callback of a batch still queued in the stream (waiting for the peer's credit). */
  private waitingForCredit: (() => void) | undefined;

  constructor(
    private readonly connection: PeerConnection,
    request: readonly HeaderField[],
  ) {
    super();
    this.stream = connection.openStream(request, this);
  }

  write(frame: Buffer, written: () => void): void {
    const stream = this.stream;
    if (stream.closed || this.response.done) return void queueMicrotask(written);
    stream.write([grpcMessageHeader(frame.length), frame]);
    if (stream.queuedBytes === 0) this.connection.afterFlush(written);
    else this.waitingForCredit = written;
  }

  /** As grpc-js's cancel(): the call ends with CANCELLED, which is what wakes a pump waiting on it (peer.ts). */
  cancel(): void {
    this.response.fail(statusError(grpc.status.CANCELLED, 'Cancelled on client'));
    this.stream.reset(ErrorCode.CANCEL);
  }

  // ---- ClientStreamListener: what the connection tells this stream

  headers(fields: Record<string, string>, endStream: boolean): void {
    this.response.onHeaders(fields);
    if (endStream) this.ended();
  }

  data(bytes: Buffer, endStream: boolean): void {
    this.response.onData(bytes);
    if (endStream) this.ended();
  }

  /** The response is over: a status came with it, or the call fails as node:http2's stream closing would fail it. */
  private ended(): void {
    if (!this.response.done) this.response.fail(statusError(grpc.status.UNAVAILABLE, 'stream closed: the peer ended its response without a status'));
    this.stream.reset(ErrorCode.CANCEL);
  }

  drained(): void {
    const written = this.waitingForCredit;
    this.waitingForCredit = undefined;
    if (written !== undefined) this.connection.afterFlush(written);
  }

  closed(code: number, reason: string): void {
    this.response.fail(statusError(grpc.status.UNAVAILABLE, `stream closed (HTTP/2 code ${code}): ${reason}`));
    const written = this.waitingForCredit;
    this.waitingForCredit = undefined;
    if (written !== undefined) queueMicrotask(written);
  }
}
