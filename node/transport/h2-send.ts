// The sending side of RaftTransport/Send over node:http2 itself, without grpc-js.
//
// Why: a batch written through grpc-js's client cost the sending process 60-70 µs more CPU than the same bytes
// written on a bare HTTP/2 stream when the process had been idle in between (one put in flight: the leader writes
// two batches per put, each follower one), and 5-7 µs more when busy (docs/performance.md, nineteenth session).
// The bytes on the wire are gRPC's, so the receiving side is unchanged: a member's grpc-js peer server serves these
// streams as it serves grpc-js's. Handshake and SendSnapshot, once per connection and per snapshot, stay on
// grpc-js (peer.ts).
//
//   PeerSendChannel: one HTTP/2 connection to a peer's URL, with keepalive pings and a connect timeout.
//   H2SendStream:    one Send call on it: gRPC-framed writes, acks decoded, the call's status turned into the
//                    same ServiceError grpc-js would give (a refusal's FAILED_PRECONDITION and its details).
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import type { SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { SendAck } from '../../proto/index.js';
import { peerTransportService, statusError } from './grpc-util.js';
import { PEER_KEEPALIVE_MS, PEER_KEEPALIVE_TIMEOUT_MS } from './limits.js';

/** What peer.ts needs of a Send call; grpc-js's ClientDuplexStream offers the same. */
export interface SendStream {
  /** `written` runs once the frame has left for the socket (or the call has failed): one frame buffered at a time. */
  write(frame: Buffer, written: () => void): void;
  cancel(): void;
  on(event: 'data', listener: (ack: SendAck) => void): this;
  on(event: 'error', listener: (e: Error) => void): this;
  on(event: 'end', listener: () => void): this;
}

/** An ack is a sequence number: a larger message is a broken or hostile peer, not an ack. */
export const ACK_MESSAGE_BYTES_MAX = 64;
/** gRPC's message header: a compressed flag and a big-endian u32 length. */
const GRPC_HEADER_BYTES = 5;

export const sendMethod = (): grpc.MethodDefinition<unknown, SendAck> => peerTransportService()['Send'] as grpc.MethodDefinition<unknown, SendAck>;

/** One HTTP/2 connection to a peer for its Send streams; reconnects on the next open() once it has gone. */
export class PeerSendChannel {
  private session: http2.ClientHttp2Session | undefined;
  private closed = false;

  private readonly timing: ConnectionTiming;

  constructor(
    private readonly url: string,
    /** TLS for https URLs (node/tls.ts DialCredentials.secureContext); undefined for http. */
    private readonly tls: SecureContextOptions | undefined,
    timing: Partial<ConnectionTiming> & Pick<ConnectionTiming, 'connectTimeoutMs'>,
  ) {
    this.timing = { keepaliveMs: PEER_KEEPALIVE_MS, keepaliveTimeoutMs: PEER_KEEPALIVE_TIMEOUT_MS, ...timing };
  }

  openSend(): SendStream {
    if (this.closed) throw new Error('fulcrum: send channel closed');
    return new H2SendStream(this.connected(), sendMethod());
  }

  close(): void {
    this.closed = true;
    this.session?.destroy();
    this.session = undefined;
  }

  private connected(): http2.ClientHttp2Session {
    if (this.session !== undefined && !this.session.closed && !this.session.destroyed) return this.session;
    const session = http2.connect(this.url, { ...this.tls, settings: { enablePush: false } });
    this.session = session;
    // Errors reach the streams on the session (each fails its call); the session's own must not go unhandled.
    session.on('error', () => {});
    session.once('close', () => {
      if (this.session === session) this.session = undefined;
    });
    watchConnection(session, this.timing);
    return session;
  }
}

export interface ConnectionTiming {
  readonly connectTimeoutMs: number;
  /** Quiet or not, a ping this often (PEER_KEEPALIVE_MS by default)... */
  readonly keepaliveMs: number;
  /** ...that must be answered within this (PEER_KEEPALIVE_TIMEOUT_MS). */
  readonly keepaliveTimeoutMs: number;
}

/**
 * A connection that does not come up within connectTimeoutMs, or stops answering pings, is destroyed, so a peer
 * behind a silent network is noticed in seconds rather than at TCP's timeout: the bounds grpc-js's channel has
 * (grpc-util.ts).
 */
function watchConnection(session: http2.ClientHttp2Session, timing: ConnectionTiming): void {
  const { connectTimeoutMs } = timing;
  const connectTimer = setTimeout(() => session.destroy(new Error(`connect timed out after ${connectTimeoutMs} ms`)), connectTimeoutMs);
  const keepalive = new Keepalive(
    timing,
    (answered) => !session.closed && !session.destroyed && !session.connecting && session.ping(answered),
    (reason) => session.destroy(new Error(reason)),
  );
  session.once('connect', () => clearTimeout(connectTimer));
  session.once('close', () => {
    clearTimeout(connectTimer);
    keepalive.stop();
  });
}

/**
 * Quiet or not, a PING every keepaliveMs, one at a time, that must be answered within keepaliveTimeoutMs, else the
 * connection is given up (`expire`). `send` sends one if the connection can (true), with the callback its answer
 * must run. Both Send connections (node:http2's here, Fulcrum's client in engine-send.ts) keep theirs this way.
 */
export class Keepalive {
  private readonly interval: NodeJS.Timeout;
  private unanswered: NodeJS.Timeout | undefined;

  constructor(
    { keepaliveMs, keepaliveTimeoutMs }: Pick<ConnectionTiming, 'keepaliveMs' | 'keepaliveTimeoutMs'>,
    send: (answered: () => void) => boolean,
    expire: (reason: string) => void,
  ) {
    const answered = (): void => {
      clearTimeout(this.unanswered);
      this.unanswered = undefined;
    };
    this.interval = setInterval(() => {
      if (this.unanswered !== undefined || !send(answered)) return;
      this.unanswered = setTimeout(() => expire(`keepalive ping unanswered for ${keepaliveTimeoutMs} ms`), keepaliveTimeoutMs);
    }, keepaliveMs);
    this.interval.unref();
  }

  stop(): void {
    clearInterval(this.interval);
    clearTimeout(this.unanswered);
  }
}

/** One Send call over node:http2: writes gRPC-framed batches; what comes back is read by SendCallResponse. */
export class H2SendStream extends EventEmitter implements SendStream {
  private readonly stream: http2.ClientHttp2Stream;
  private readonly response: SendCallResponse;

  constructor(session: http2.ClientHttp2Session, method: grpc.MethodDefinition<unknown, SendAck>) {
    super();
    this.response = new SendCallResponse(this, method, () => this.cancel());
    this.stream = session.request(
      { ':method': 'POST', ':path': method.path, 'content-type': 'application/grpc', te: 'trailers', 'user-agent': 'fulcrum-peer' },
      { endStream: false },
    );
    this.stream.on('response', (headers) => this.response.onHeaders(headers));
    this.stream.on('trailers', (trailers) => this.response.onHeaders(trailers));
    this.stream.on('data', (chunk: Buffer) => this.response.onData(chunk));
    this.stream.on('error', (e: Error) => this.response.fail(statusError(grpc.status.UNAVAILABLE, e.message)));
    this.stream.on('close', () => this.response.fail(statusError(grpc.status.UNAVAILABLE, `stream closed (HTTP/2 code ${this.stream.rstCode ?? 'none'})`)));
    // The request side is never ended by us: the call lasts until cancel(), a failure, or the peer's status.
  }

  write(frame: Buffer, written: () => void): void {
    if (this.stream.destroyed) return void queueMicrotask(written);
    // Header and frame leave in one write (cork: the stream's writev) without copying the frame behind a header
    // of its own: an append of 100 puts is ~41 KB, and each copy was one more large buffer per peer per Ready.
    this.stream.cork();
    this.stream.write(grpcMessageHeader(frame.length));
    this.stream.write(frame, () => written());
    this.stream.uncork();
  }

  /** As grpc-js's cancel(): the call ends with CANCELLED, which is what wakes a pump waiting on it (peer.ts). */
  cancel(): void {
    this.response.fail(statusError(grpc.status.CANCELLED, 'Cancelled on client'));
    if (!this.stream.closed && !this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }
}

/** gRPC's 5-byte message header: not compressed, then the length (big-endian u32). */
export function grpcMessageHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(GRPC_HEADER_BYTES);
  header[0] = 0;
  header.writeUInt32BE(length, 1);
  return header;
}

/** Header fields as either HTTP/2 client gives them: node:http2's IncomingHttpHeaders, or the engine's record. */
type ResponseFields = Readonly<Record<string, string | string[] | number | undefined>>;

/**
 * The response half of a Send call, whatever carries it: the response headers checked, acks reassembled and
 * decoded, and the call's status turned into the ServiceError grpc-js would give. The first outcome stands: the
 * owner's 'end' or 'error' is emitted once.
 */
export class SendCallResponse {
  private pending: Buffer | undefined;
  private responded = false;
  done = false;

  constructor(
    private readonly owner: EventEmitter,
    private readonly method: grpc.MethodDefinition<unknown, SendAck>,
    /** Ends the call from our side (RST_STREAM CANCEL) when the peer broke the protocol. */
    private readonly cancel: () => void,
  ) {}

  /** A header block: the response's headers first (a trailers-only answer carries the status), then trailers. */
  onHeaders(fields: ResponseFields): void {
    if (this.responded) return this.onStatus(fields);
    this.responded = true;
    const status = Number(fields[':status']);
    if (status !== 200) return this.refuse(statusError(grpc.status.UNAVAILABLE, `peer answered HTTP status ${status}`));
    if (!String(fields['content-type'] ?? '').startsWith('application/grpc')) return this.refuse(statusError(grpc.status.UNKNOWN, `peer answered content-type ${String(fields['content-type'])}`));
    // Trailers-only: the status came with the headers (a refusal before any message).
    if (fields['grpc-status'] !== undefined) this.onStatus(fields);
  }

  private onStatus(fields: ResponseFields): void {
    const code = Number(fields['grpc-status']);
    if (code === grpc.status.OK) return this.finish();
    const raw = fields['grpc-message'];
    this.fail(statusError(Number.isInteger(code) ? code : grpc.status.UNKNOWN, typeof raw === 'string' ? decodeGrpcMessage(raw) : ''));
  }

  /** Acks, reassembled from however the DATA frames cut them. `chunk` may be a view valid only during the call. */
  onData(chunk: Buffer): void {
    let buf = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    while (!this.done && buf.length >= GRPC_HEADER_BYTES) {
      const length = buf.readUInt32BE(1);
      if (buf[0] !== 0) return this.refuse(statusError(grpc.status.INTERNAL, 'peer sent a compressed ack; none was offered'));
      if (length > ACK_MESSAGE_BYTES_MAX) return this.refuse(statusError(grpc.status.RESOURCE_EXHAUSTED, `ack of ${length} bytes exceeds ${ACK_MESSAGE_BYTES_MAX}`));
      if (buf.length < GRPC_HEADER_BYTES + length) break;
      const ack = this.decodeAck(buf.subarray(GRPC_HEADER_BYTES, GRPC_HEADER_BYTES + length));
      if (ack === undefined) return;
      buf = buf.subarray(GRPC_HEADER_BYTES + length);
      this.owner.emit('data', ack);
    }
    this.pending = buf.length > 0 ? Buffer.from(buf) : undefined;
  }

  private decodeAck(bytes: Buffer): SendAck | undefined {
    try {
      return this.method.responseDeserialize(bytes);
    } catch (e) {
      this.refuse(statusError(grpc.status.INTERNAL, `undecodable ack: ${e instanceof Error ? e.message : String(e)}`));
      return undefined;
    }
  }

  /** The peer broke the protocol: end the call from our side too (the first status stands). */
  private refuse(e: grpc.ServiceError): void {
    this.fail(e);
    this.cancel();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.owner.emit('end');
  }

  fail(e: grpc.ServiceError): void {
    if (this.done) return;
    this.done = true;
    this.owner.emit('error', e);
  }
}

/** grpc-message is percent-encoded (gRPC over HTTP/2); a malformed one is shown as it came. */
function decodeGrpcMessage(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
