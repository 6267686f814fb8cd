// The socket side of the HTTP/2 engine: it feeds what each socket reads into that connection's state machine
// (connection.ts), writes what the machine has to send, and keeps the timers the machine has none of. One
// H2Server serves any number of net or TLS listeners; the layer above (the gRPC calls) sees streams and the
// session they came on, never a socket event.
//
// Writes: a connection signals output() whenever it has frames to send, which can be many times in one turn of
// the event loop (a request read, a commit answered, a credit granted). Sessions with output are flushed together
// once per turn, in the check phase (setImmediate), each as one vectored write, so a burst of answers costs one
// system call per connection rather than one per answer.
//
// Back-pressure: while a socket holds more than writeBufferBytesMax unwritten bytes, the session stops reading
// from it and holds the connection's DATA (ServerConnection.holdOutput). A client that sends requests but does not
// read its answers is then held by TCP, and responses wait on their streams, whose write() pushes back at
// streamSendQueueBytes, however much flow-control credit the client granted. What one client can make the
// member buffer is bounded by this limit plus its open streams' queues.
//
// A bug in the layer above that throws out of a stream's events ends that connection (reported through
// onInternalError), not the member.
import type * as net from 'node:net';
import { Server as TlsServer, TLSSocket } from 'node:tls';
import type { ConnectionError, ConnectionOptions, H2Stream, StreamListener } from './connection.js';
import { ServerConnection } from './connection.js';
import { ErrorCode } from './frames.js';

/** What a session's owner is given for each stream: the request's headers, and the session it arrived on. */
export type StreamHandler = (stream: H2Stream, headers: Record<string, string>, endStream: boolean, session: H2Session) => StreamListener;

export interface H2ServerOptions {
  readonly onStream: StreamHandler;
  readonly connection?: ConnectionOptions;
  /** A connection quiet this long gets a PING (etcd's --grpc-keepalive-interval); 0 sends none. */
  readonly keepaliveTimeMs?: number;
  /** A PING not answered in this long ends the connection (--grpc-keepalive-timeout). */
  readonly keepaliveTimeoutMs?: number;
  /** The client preface, its SETTINGS and its ACK of ours must all arrive within this long. */
  readonly handshakeTimeoutMs?: number;
  /** Unwritten bytes a socket may hold before its session stops reading. */
  readonly writeBufferBytesMax?: number;
  /** A session is over (for logs and metrics): its connection error, if it ended on one. */
  readonly onSessionClosed?: (session: H2Session, error: ConnectionError | undefined) => void;
  /** Something threw out of the connection or the layer above (a bug): the session was destroyed. */
  readonly onInternalError?: (session: H2Session, error: unknown) => void;
}

export const H2_SERVER_DEFAULTS = {
  /** etcd's default --grpc-keepalive-interval: two hours. */
  keepaliveTimeMs: 2 * 60 * 60 * 1000,
  /** etcd's default --grpc-keepalive-timeout. */
  keepaliveTimeoutMs: 20_000,
  /**
   * Ten seconds: a client on any link completes the exchange in a few round trips; one that opens a socket and
   * sends nothing holds a file descriptor until then and no longer.
   */
  handshakeTimeoutMs: 10_000,
  /** 1 MiB: a few hundred answers of typical size, or one large range, before the reading stops. */
  writeBufferBytesMax: 1024 * 1024,
} as const;

/**
 * After our GOAWAY, how long a socket stays open for the peer to read it and close its end. A peer that does
 * neither is cut off then.
 */
const LINGER_AFTER_CLOSE_MS = 2_000;

/**
 * A graceful shutdown goes in two steps (ServerConnection.shutdown({ twoStep: true })): the real GOAWAY follows the
 * client's ACK of our PING, or this long after the first GOAWAY if no ACK comes.
 */
export const SHUTDOWN_ACK_TIMEOUT_MS = 1_000;

/** Sessions with output, flushed together in the next check phase. */
const dirty = new Set<H2Session>();
let flushScheduled = false;

function flushDirty(): void {
  flushScheduled = false;
  for (const session of dirty) session.flush();
  dirty.clear();
}

/** One client connection: its socket, its connection state machine and its timers. */
export class H2Session {
  readonly connection: ServerConnection;
  private readonly keepaliveTimeMs: number;
  private readonly keepaliveTimeoutMs: number;
  private readonly writeBufferBytesMax: number;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private shutdownTimer: NodeJS.Timeout | undefined;
  /** Bytes read since the keepalive timer last started: a connection that talks needs no PING. */
  private readSinceKeepalive = false;
  private readingPaused = false;
  private ended = false;

  constructor(
    readonly socket: net.Socket,
    private readonly options: H2ServerOptions,
    private readonly onEnded: (session: H2Session) => void,
  ) {
    this.keepaliveTimeMs = options.keepaliveTimeMs ?? H2_SERVER_DEFAULTS.keepaliveTimeMs;
    this.keepaliveTimeoutMs = options.keepaliveTimeoutMs ?? H2_SERVER_DEFAULTS.keepaliveTimeoutMs;
    this.writeBufferBytesMax = options.writeBufferBytesMax ?? H2_SERVER_DEFAULTS.writeBufferBytesMax;
    this.connection = new ServerConnection(
      {
        stream: (stream, headers, endStream) => this.options.onStream(stream, headers, endStream, this),
        output: () => this.scheduleFlush(),
        closed: (error) => this.onConnectionClosed(error),
        pingAcknowledged: () => this.onPingAcknowledged(),
      },
      options.connection,
    );
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', () => this.connection.terminate());
    socket.on('close', () => this.onSocketClose());
    const handshakeMs = options.handshakeTimeoutMs ?? H2_SERVER_DEFAULTS.handshakeTimeoutMs;
    this.handshakeTimer = setTimeout(() => this.onHandshakeTimeout(), handshakeMs);
    this.handshakeTimer.unref();
    this.startKeepalive();
  }

  /** The TLS socket when the session is over TLS (for the peer's certificate). */
  get tlsSocket(): TLSSocket | undefined {
    return this.socket instanceof TLSSocket ? this.socket : undefined;
  }

  /**
   * Graceful: GOAWAY, no new streams, the socket closes once the open streams are done. In two steps, so that a
   * stream the client opened before it read the first GOAWAY is still served rather than refused.
   */
  shutdown(): void {
    if (this.shutdownTimer !== undefined || this.ended) return;
    this.connection.shutdown({ twoStep: true });
    this.shutdownTimer = setTimeout(() => this.connection.shutdown(), SHUTDOWN_ACK_TIMEOUT_MS);
    this.shutdownTimer.unref();
  }

  /** Now: every open stream is cancelled and the socket destroyed. */
  destroy(): void {
    this.connection.terminate();
    this.socket.destroy();
  }

  /** Write everything the connection has queued, as one vectored write. */
  flush(): void {
    const chunks = this.connection.take();
    if (chunks.length === 0 || this.socket.destroyed) return;
    const socket = this.socket;
    if (chunks.length === 1) {
      socket.write(chunks[0]!);
    } else {
      socket.cork();
      for (const chunk of chunks) socket.write(chunk);
      socket.uncork();
    }
    if (!this.readingPaused && socket.writableLength > this.writeBufferBytesMax) {
      this.readingPaused = true;
      socket.pause();
      this.connection.holdOutput(true);
    }
  }

  private scheduleFlush(): void {
    dirty.add(this);
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(flushDirty);
  }

  private onData(chunk: Buffer): void {
    this.readSinceKeepalive = true;
    try {
      this.connection.receive(chunk);
    } catch (e) {
      this.options.onInternalError?.(this, e);
      this.destroy();
      return;
    }
    if (this.handshakeTimer !== undefined && this.connection.settingsAcknowledged) {
      clearTimeout(this.handshakeTimer);
      this.handshakeTimer = undefined;
    }
  }

  private onDrain(): void {
    if (!this.readingPaused || this.ended) return;
    this.readingPaused = false;
    this.connection.holdOutput(false);
    this.socket.resume();
  }

  private onHandshakeTimeout(): void {
    this.handshakeTimer = undefined;
    if (!this.connection.settingsAcknowledged) this.connection.fail(ErrorCode.SETTINGS_TIMEOUT, 'no SETTINGS acknowledgement in time');
  }

  // ---- keepalive: a PING after keepaliveTimeMs without a byte read, and the end if it is not answered in time.

  private startKeepalive(): void {
    if (this.keepaliveTimeMs <= 0 || this.ended) return;
    this.readSinceKeepalive = false;
    this.keepaliveTimer = setTimeout(() => this.onKeepaliveDue(), this.keepaliveTimeMs);
    this.keepaliveTimer.unref();
  }

  private onKeepaliveDue(): void {
    this.keepaliveTimer = undefined;
    if (this.ended) return;
    if (this.readSinceKeepalive) {
      this.startKeepalive();
      return;
    }
    this.connection.ping(Buffer.alloc(8));
    this.pingTimer = setTimeout(() => this.connection.fail(ErrorCode.NO_ERROR, 'keepalive PING not answered'), this.keepaliveTimeoutMs);
    this.pingTimer.unref();
  }

  private onPingAcknowledged(): void {
    if (this.pingTimer === undefined) return;
    clearTimeout(this.pingTimer);
    this.pingTimer = undefined;
    this.startKeepalive();
  }

  // ---- the end

  private onConnectionClosed(error: ConnectionError | undefined): void {
    this.clearTimers();
    dirty.delete(this);
    this.flush();
    const socket = this.socket;
    if (!socket.destroyed) {
      socket.end();
      setTimeout(() => socket.destroy(), LINGER_AFTER_CLOSE_MS).unref();
      // Reading goes on (and is ignored) so the peer's FIN is seen and the socket can close.
      if (this.readingPaused) socket.resume();
    }
    this.options.onSessionClosed?.(this, error);
  }

  private onSocketClose(): void {
    this.connection.terminate();
    this.clearTimers();
    dirty.delete(this);
    if (this.ended) return;
    this.ended = true;
    this.onEnded(this);
  }

  private clearTimers(): void {
    clearTimeout(this.handshakeTimer);
    clearTimeout(this.keepaliveTimer);
    clearTimeout(this.pingTimer);
    clearTimeout(this.shutdownTimer);
    this.handshakeTimer = this.keepaliveTimer = this.pingTimer = this.shutdownTimer = undefined;
  }
}

/**
 * Serves HTTP/2 on the listeners attached to it. A TLS listener must offer ALPN 'h2' (tls.createServer with
 * ALPNProtocols: ['h2']); a TLS client that did not choose it is disconnected, as HTTP/2 over TLS requires (RFC
 * 9113 3.2).
 */
export class H2Server {
  private readonly sessions = new Set<H2Session>();
  private readonly listeners: net.Server[] = [];
  /** close() waiting for the last session to end. */
  private onEmpty: (() => void) | undefined;

  constructor(private readonly options: H2ServerOptions) {}

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Serve each connection `listener` accepts: plaintext ('connection') or TLS ('secureConnection'). */
  attach(listener: net.Server): void {
    this.listeners.push(listener);
    if (listener instanceof TlsServer) listener.on('secureConnection', (socket: TLSSocket) => this.serveTls(socket));
    else listener.on('connection', (socket: net.Socket) => this.serve(socket));
  }

  /** Serve one connected socket whose first bytes are the client preface. */
  serve(socket: net.Socket): H2Session {
    const session = new H2Session(socket, this.options, (s) => this.forget(s));
    this.sessions.add(session);
    return session;
  }

  /**
   * Stop accepting, ask every session to finish (GOAWAY), and destroy what is left after `graceMs`. Resolves once
   * every socket has closed.
   */
  async close(graceMs: number): Promise<void> {
    // A listener's close() calls back only once its connections have ended, so it is waited for last.
    const unbound = Promise.all(this.listeners.map((l) => new Promise<void>((resolve) => (l.listening ? l.close(() => resolve()) : resolve()))));
    if (this.sessions.size > 0) {
      const empty = new Promise<void>((resolve) => (this.onEmpty = resolve));
      for (const s of this.sessions) s.shutdown();
      const deadline = setTimeout(() => {
        for (const s of this.sessions) s.destroy();
      }, graceMs);
      await empty;
      clearTimeout(deadline);
    }
    await unbound;
  }

  private forget(session: H2Session): void {
    this.sessions.delete(session);
    if (this.sessions.size === 0) this.onEmpty?.();
  }

  private serveTls(socket: TLSSocket): void {
    // An earlier 'secureConnection' listener may have refused the client's certificate.
    if (socket.destroyed) return;
    if (socket.alpnProtocol !== 'h2') {
      socket.destroy();
      return;
    }
    this.serve(socket);
  }
}
