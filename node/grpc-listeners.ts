// What grpc-js does not offer on its server, done on the HTTP/2 servers it created for its bound addresses: bound
// how many connections each keeps open, refuse client certificates after the handshake (revoked, wrong name), and
// widen the HTTP/2 flow-control windows.
//
// grpc-js keeps those servers in a private map (`http2Servers`). Both the fast path (api/fast-path.ts) and the
// connection limit below need them; if a grpc-js upgrade moves them, boundHttp2Servers throws at start-up rather
// than let the member serve without its limit or its fast path.
import type * as http2 from 'node:http2';
import { Server as TlsServer, type DetailedPeerCertificate, type TLSSocket } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';

/** The HTTP/2 servers `server` has bound so far (one per bound address). */
export function boundHttp2Servers(server: grpc.Server): http2.Http2Server[] {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) {
    throw new Error('fulcrum: grpc-js has no bound HTTP/2 servers where expected (did a grpc-js upgrade change its internals?)');
  }
  return [...(servers.keys() as Iterable<http2.Http2Server>)];
}

/** Who was refused: the remote address of a connection dropped at the limit. */
export interface DroppedConnection {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
}

/**
 * Accept at most `max` connections at once on each of `server`'s listeners. Past it, a new connection is closed as
 * soon as it is accepted (Node's net.Server `maxConnections`), before TLS or HTTP/2 start on it, so it costs the
 * member a file descriptor for an instant and nothing else; the client sees the connection reset and retries
 * with its back-off. The ones already open are untouched.
 */
export function limitConnections(server: grpc.Server, max: number, onDropped: (c: DroppedConnection) => void): void {
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`connection limit must be a positive integer, got ${String(max)}`);
  for (const listener of boundHttp2Servers(server)) {
    listener.maxConnections = max;
    listener.on('drop', (d?: { remoteAddress?: string; remotePort?: number }) => onDropped({ remoteAddress: d?.remoteAddress, remotePort: d?.remotePort }));
  }
}

/**
 * Grant `bytes` of HTTP/2 flow-control window to each connection and each stream on `server`'s listeners, in place
 * of HTTP/2's 64 KiB: the stream window through the SETTINGS a new session starts with, the connection's as soon as
 * it opens. grpc-js offers no option for its server's windows.
 */
export function widenReceiveWindows(server: grpc.Server, bytes: number): void {
  for (const listener of boundHttp2Servers(server)) {
    listener.updateSettings({ initialWindowSize: bytes });
    listener.on('session', (session: http2.ServerHttp2Session) => {
      // A connection already gone has no window to widen, and a throw from this listener would take the member down.
      if (!session.destroyed) session.setLocalWindowSize(bytes);
    });
  }
}

/**
 * Close every TLS connection whose client certificate `refusal` finds fault with, as soon as its handshake is done
 * and before any request on it is read (etcd fails the handshake itself; Node offers no hook inside it). Plaintext
 * listeners have no certificate to check and are left alone.
 */
export function checkClientCertificates(server: grpc.Server, refusal: (cert: DetailedPeerCertificate) => string | undefined, onRefused: (reason: string, c: DroppedConnection) => void): void {
  for (const listener of boundHttp2Servers(server)) {
    if (!(listener instanceof TlsServer)) continue;
    listener.on('secureConnection', (socket: TLSSocket) => {
      const reason = refusal(socket.getPeerCertificate(true));
      if (reason === undefined) return;
      onRefused(reason, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
      socket.destroy();
    });
  }
}

/** Stop taking new calls, let in-flight ones finish for up to graceMs, then cut them off. */
export function shutdownGrpc(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(t);
      resolve();
    });
  });
}
