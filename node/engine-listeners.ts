// The client listeners of Fulcrum's own HTTP/2 engine (--http2-engine=fulcrum): what bindAll, limitConnections
// and checkClientCertificates (grpc-listeners.ts) do for the servers grpc-js creates, done on listeners of our own.
import { once } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { ListenAddress } from './config.js';
import type { DroppedConnection } from './grpc-listeners.js';
import type { H2Server } from './h2/server.js';
import type { TlsFileWatcher } from './tls.js';

export interface EngineListenOptions {
  readonly addresses: readonly ListenAddress[];
  /** The certificate the https:// addresses serve (kept current: a reload applies to the next handshake). */
  readonly tls: TlsFileWatcher | undefined;
  /** Connections open at once per listener; past it a new one is closed as soon as it is accepted. */
  readonly connectionsMax: number;
  readonly onDropped: (c: DroppedConnection) => void;
  /** Why a client certificate is refused (revoked, wrong name), checked after each handshake; undefined: accepted. */
  readonly certificateRefusal?: (cert: tls.DetailedPeerCertificate) => string | undefined;
  readonly onRefused?: (reason: string, c: DroppedConnection) => void;
}

export interface EngineListeners {
  /** The URLs bound, with the ports the system chose for port 0. */
  readonly urls: string[];
  /** Stop following certificate reloads (the H2Server closes the listeners themselves). */
  close(): void;
}

/** Bind every address and hand the listeners to `engine`. On a failure the listeners bound so far are closed. */
export async function listenEngine(engine: H2Server, o: EngineListenOptions): Promise<EngineListeners> {
  if (!Number.isSafeInteger(o.connectionsMax) || o.connectionsMax < 1) throw new RangeError(`connection limit must be a positive integer, got ${String(o.connectionsMax)}`);
  const urls: string[] = [];
  const listeners: net.Server[] = [];
  const unfollow: (() => void)[] = [];
  try {
    for (const a of o.addresses) {
      const listener = a.secure === true ? tlsListener(a, o, unfollow) : net.createServer();
      listeners.push(listener);
      listener.maxConnections = o.connectionsMax;
      listener.on('drop', (d?: { remoteAddress?: string; remotePort?: number }) => o.onDropped({ remoteAddress: d?.remoteAddress, remotePort: d?.remotePort }));
      // Before the engine's own listener: a refused certificate never gets a session.
      if (listener instanceof tls.Server && o.certificateRefusal !== undefined) refuseCertificates(listener, o.certificateRefusal, o.onRefused);
      engine.attach(listener);
      listener.listen(a.port, a.host);
      await Promise.race([once(listener, 'listening'), once(listener, 'error').then(([e]) => Promise.reject(e as Error))]);
      urls.push(`${a.secure === true ? 'https' : 'http'}://${a.host}:${(listener.address() as net.AddressInfo).port}`);
    }
  } catch (e) {
    for (const u of unfollow) u();
    for (const l of listeners) l.close();
    throw e;
  }
  return { urls, close: () => unfollow.forEach((u) => u()) };
}

function tlsListener(a: ListenAddress, o: EngineListenOptions, unfollow: (() => void)[]): tls.Server {
  const watcher = o.tls;
  if (watcher === undefined) throw new Error(`fulcrum: ${a.url} is https but no certificate is configured for it`);
  const auth = watcher.files.clientCertAuth;
  const listener = tls.createServer({ ...watcher.secureContextOptions(), ALPNProtocols: ['h2'], requestCert: auth, rejectUnauthorized: auth });
  unfollow.push(watcher.onChange(() => listener.setSecureContext(watcher.secureContextOptions())));
  return listener;
}

function refuseCertificates(listener: tls.Server, refusal: (cert: tls.DetailedPeerCertificate) => string | undefined, onRefused: EngineListenOptions['onRefused']): void {
  listener.on('secureConnection', (socket: tls.TLSSocket) => {
    const reason = refusal(socket.getPeerCertificate(true));
    if (reason === undefined) return;
    onRefused?.(reason, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort });
    socket.destroy();
  });
}
