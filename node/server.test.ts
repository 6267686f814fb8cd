import { once } from 'node:events';
import { createServer } from 'node:net';
import * as http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { loadEtcdApi } from '../proto/index.js';
import { parseServerConfig } from './config.js';
import { createLogger } from './log.js';
import { startServer } from './server.js';
import { CONNECTION_DEFAULTS } from './h2/connection.js';
import { PEER_RECEIVE_WINDOW_BYTES } from './transport/index.js';
import { TestPki } from './testing/certs.js';

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-server-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const base = 24_000 + (process.pid % 190) * 4; // below the ephemeral range (32768+)
const ENGINES = ['node', 'fulcrum'] as const;

describe('startServer', () => {
  it('leaves nothing running when the client port is taken, and the data dir can be opened again', async () => {
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(base, '127.0.0.1', () => r()));
    const flags = (clientPort: number): string[] => [
      '--name', 's1', '--data-dir', join(dir, 's1'),
      '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${base + 1}`,
      '--initial-cluster', `s1=http://127.0.0.1:${base + 1}`,
      '--heartbeat-interval', '20', '--election-timeout', '200', '--log-level', 'error',
    ];
    await expect(startServer(parseServerConfig(flags(base), {}))).rejects.toThrow(/EADDRINUSE|address already in use|No address added/i);
    squatter.close();
    // The WAL and the state machine were closed (LevelDB would refuse a second open), and the peer port is free.
    const server = await startServer(parseServerConfig(flags(base + 2), {}));
    expect(server.member.status().softState.role).toBe('leader');
    await server.close();
  });

  it("prints each line's component and member once: the WAL's and the transport's loggers do not repeat their parents'", async () => {
    // pino appends a child logger's bindings to its parent's, so a child naming its component again printed two
    // "component" keys ("raft", then "wal"); a JSON reader keeps one of them. Raw lines, not parsed ones.
    const raw: string[] = [];
    const logger = createLogger({ level: 'info', memberId: 0x5e, destination: { write: (line: string) => void raw.push(line) } });
    const flags = [
      '--name', 'logs', '--data-dir', join(dir, 'logs'),
      '--listen-client-urls', `http://127.0.0.1:${base + 2}`,
      '--listen-peer-urls', `http://127.0.0.1:${base + 1}`,
      // A second member that never starts: the transport adds it and says so.
      '--initial-cluster', `logs=http://127.0.0.1:${base + 1},absent=http://127.0.0.1:${base + 3}`,
      '--heartbeat-interval', '20', '--election-timeout', '200',
    ];
    const server = await startServer(parseServerConfig(flags, {}), { logger });
    await server.close();
    const count = (line: string, key: string): number => line.split(`"${key}":`).length - 1;
    const components = raw.map((line) => /"component":"([^"]+)"/.exec(line)?.[1]);
    expect(components).toEqual(expect.arrayContaining(['wal', 'transport', 'raft']));
    for (const line of raw) {
      expect(count(line, 'component'), line).toBeLessThanOrEqual(1);
      expect(count(line, 'member'), line).toBe(1);
    }
  });

  it('reports WAL fsync and apply durations in /metrics after writes', async () => {
    const flags = [
      '--name', 's2', '--data-dir', join(dir, 's2'),
      '--listen-client-urls', `http://127.0.0.1:${base + 3}`,
      '--listen-peer-urls', `http://127.0.0.1:${base + 4}`,
      '--initial-cluster', `s2=http://127.0.0.1:${base + 4}`,
      '--listen-metrics-urls', 'http://127.0.0.1:0',
      '--heartbeat-interval', '20', '--election-timeout', '200', '--log-level', 'error',
    ];
    const server = await startServer(parseServerConfig(flags, {}));
    try {
      for (let i = 0; i < 5; i++) await server.member.propose({ put: { key: new TextEncoder().encode(`k${i}`), value: new Uint8Array(8) } });
      const text = await (await fetch(`${server.metricsUrls[0]}/metrics`)).text();
      const count = (name: string): number => Number(new RegExp(`^${name}_count\\{[^}]*\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
      expect(count('fulcrum_disk_wal_fsync_duration_seconds')).toBeGreaterThanOrEqual(5);
      expect(count('fulcrum_server_apply_duration_seconds')).toBeGreaterThanOrEqual(5);
    } finally {
      await server.close();
    }
  });

  it('serves unary calls and watches on the fast path unless --grpc-fast-path=false, and grpc-js then answers them', async () => {
    // The one request the two paths answer differently: a message flagged compressed without a grpc-encoding
    // header. grpc-go (etcd) and the fast path refuse it; grpc-js reads it as uncompressed.
    // [flag 1 = compressed][length 3] RangeRequest { key: "\0" }
    const rangeAll = Buffer.from([1, 0, 0, 0, 3, 0x0a, 0x01, 0x00]);
    const statusOf = async (clientUrl: string, path: string, body: Buffer): Promise<string> => {
      const session = http2.connect(clientUrl);
      try {
        return await new Promise<string>((resolve, reject) => {
          const req = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
          let status = '';
          req.on('response', (h) => (status = String(h['grpc-status'] ?? status)));
          req.on('trailers', (t) => (status = String(t['grpc-status'])));
          req.on('data', () => {});
          req.on('end', () => resolve(status));
          req.on('error', reject);
          req.end(body);
        });
      } finally {
        session.close();
      }
    };
    // Fulcrum's engine serves every call on the fast path, so it answers as the fast path does.
    for (const [fast, engine, expected] of [['true', 'node', '13'], ['false', 'node', '0'], ['true', 'fulcrum', '13']] as const) {
      const server = await startServer(
        parseServerConfig([
          '--name', 's3', '--data-dir', join(dir, `s3-${fast}-${engine}`), '--http2-engine', engine,
          '--listen-client-urls', 'http://127.0.0.1:0', '--advertise-client-urls', `http://127.0.0.1:${base + 2}`,
          '--listen-peer-urls', `http://127.0.0.1:${base + 1}`,
          '--initial-cluster', `s3=http://127.0.0.1:${base + 1}`,
          '--heartbeat-interval', '20', '--election-timeout', '200', '--log-level', 'error',
          `--grpc-fast-path=${fast}`,
        ], {}),
      );
      try {
        // A Watch stream whose one request is an empty message flagged compressed (grpc-js: an empty request, which
        // is ignored, and the stream ends OK when the client does).
        const url = server.clientUrls[0]!;
        const watchStatus = await statusOf(url, '/etcdserverpb.Watch/Watch', Buffer.from([1, 0, 0, 0, 0]));
        expect([fast, engine, await statusOf(url, '/etcdserverpb.KV/Range', rangeAll), watchStatus]).toEqual([fast, engine, expected, expected]);
      } finally {
        await server.close();
      }
    }
  });

  it("answers on Fulcrum's engine what grpc-js would have: UNIMPLEMENTED for an unknown method or a compressed request, HTTP 415 for a request that is not gRPC", async () => {
    const server = await startServer(
      parseServerConfig([
        '--name', 's6', '--data-dir', join(dir, 's6'), '--http2-engine', 'fulcrum',
        '--listen-client-urls', 'http://127.0.0.1:0', '--advertise-client-urls', `http://127.0.0.1:${base + 2}`,
        '--listen-peer-urls', `http://127.0.0.1:${base + 1}`,
        '--initial-cluster', `s6=http://127.0.0.1:${base + 1}`,
        '--heartbeat-interval', '20', '--election-timeout', '200', '--log-level', 'error',
      ], {}),
    );
    const session = http2.connect(server.clientUrls[0]!);
    // [status, grpc-status, grpc-message] of one request (grpc-status from the headers of a trailers-only answer).
    const answer = (headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<[number, string, string]> =>
      new Promise((resolve, reject) => {
        const req = session.request({ ':method': 'POST', te: 'trailers', ...headers });
        const got: [number, string, string] = [0, '', ''];
        const take = (h: http2.IncomingHttpHeaders): void => {
          if (h[':status'] !== undefined) got[0] = Number(h[':status']);
          if (h['grpc-status'] !== undefined) got[1] = String(h['grpc-status']);
          if (h['grpc-message'] !== undefined) got[2] = decodeURIComponent(String(h['grpc-message']));
        };
        req.on('response', take);
        req.on('trailers', take);
        req.on('data', () => {});
        req.on('end', () => resolve(got));
        req.on('error', reject);
        req.end(body);
      });
    const rangeA = Buffer.from([0, 0, 0, 0, 3, 0x0a, 0x01, 0x61]);
    try {
      expect(await answer({ ':path': '/etcdserverpb.KV/Range', 'content-type': 'application/grpc' }, rangeA)).toEqual([200, '0', 'OK']);
      expect(await answer({ ':path': '/etcdserverpb.KV/Nothing', 'content-type': 'application/grpc' }, rangeA)).toEqual([200, '12', 'The server does not implement the method /etcdserverpb.KV/Nothing']);
      expect(await answer({ ':path': '/etcdserverpb.KV/Range', 'content-type': 'application/grpc', 'grpc-encoding': 'gzip' }, rangeA)).toEqual([200, '12', 'grpc: Decompressor is not installed for grpc-encoding "gzip"']);
      expect(await answer({ ':path': '/etcdserverpb.KV/Range', 'content-type': 'text/plain' }, rangeA)).toEqual([415, '', '']);
    } finally {
      session.close();
      await server.close();
    }
  });

  it.each(ENGINES)('closes client connections past --max-client-connections as they are accepted, counts them, and serves again once one closes (--http2-engine=%s)', async (engine) => {
    const server = await startServer(
      parseServerConfig([
        '--name', 's4', '--data-dir', join(dir, `s4-${engine}`), '--http2-engine', engine,
        '--listen-client-urls', 'http://127.0.0.1:0', '--advertise-client-urls', `http://127.0.0.1:${base + 2}`,
        '--listen-peer-urls', `http://127.0.0.1:${base + 1}`,
        '--initial-cluster', `s4=http://127.0.0.1:${base + 1}`,
        '--listen-metrics-urls', 'http://127.0.0.1:0',
        '--max-client-connections', '2',
        '--heartbeat-interval', '20', '--election-timeout', '200', '--log-level', 'error',
      ], {}),
    );
    const sessions: http2.ClientHttp2Session[] = [];
    // A session is served once the server's SETTINGS arrive; a dropped connection closes before they do.
    const open = (): Promise<{ session: http2.ClientHttp2Session; served: boolean }> =>
      new Promise((resolve) => {
        const session = http2.connect(server.clientUrls[0]!);
        sessions.push(session);
        session.on('error', () => {});
        session.once('remoteSettings', () => resolve({ session, served: true }));
        session.once('close', () => resolve({ session, served: false }));
      });
    // A real call: Range of key "a" (uncompressed frame), answered with grpc-status 0.
    const rangeStatus = (session: http2.ClientHttp2Session): Promise<string> =>
      new Promise((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Range', 'content-type': 'application/grpc', te: 'trailers' });
        let status = '';
        req.on('trailers', (t) => (status = String(t['grpc-status'])));
        req.on('data', () => {});
        req.on('end', () => resolve(status));
        req.on('error', reject);
        req.end(Buffer.from([0, 0, 0, 0, 3, 0x0a, 0x01, 0x61]));
      });
    const dropped = async (listener: string): Promise<number> => {
      const text = await (await fetch(`${server.metricsUrls[0]}/metrics`)).text();
      return Number(new RegExp(`^fulcrum_server_connections_dropped_total\\{[^}]*listener="${listener}"[^}]*\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    };
    try {
      const first = await open();
      const second = await open();
      expect([first.served, second.served]).toEqual([true, true]);
      expect((await open()).served).toBe(false);
      expect(await dropped('client')).toBe(1);
      expect(await dropped('peer')).toBe(0);
      // The connections already open go on serving.
      expect(await Promise.all([rangeStatus(first.session), rangeStatus(second.session)])).toEqual(['0', '0']);
      // One closes: the next connection is served once the server has seen it go.
      await new Promise<void>((resolve) => first.session.close(() => resolve()));
      let next: { session: http2.ClientHttp2Session; served: boolean } | undefined;
      for (let attempt = 0; attempt < 50 && next?.served !== true; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, 20));
        next = await open();
      }
      expect(next?.served).toBe(true);
      expect(await rangeStatus(next!.session)).toBe('0');
    } finally {
      for (const session of sessions) session.destroy();
      await server.close();
    }
  });

  it.each(['node:http2', 'engine'])('grants peers a flow-control window of PEER_RECEIVE_WINDOW_BYTES per connection and per stream, not HTTP/2\'s 64 KiB (peer listener on %s)', async (on) => {
    const server = await startServer(
      parseServerConfig([
        '--name', 's5', '--data-dir', join(dir, `s5-${on}`),
        '--listen-client-urls', 'http://127.0.0.1:0', '--advertise-client-urls', `http://127.0.0.1:${base + 2}`,
        '--listen-peer-urls', `http://127.0.0.1:${base + 1}`,
        '--initial-cluster', `s5=http://127.0.0.1:${base + 1}`,
        '--heartbeat-interval', '20', '--election-timeout', '200', '--log-level', 'error',
      ], {}),
      { env: on === 'engine' ? {} : { FULCRUM_PEER_RECV: 'fast-path' } },
    );
    const session = http2.connect(server.peerUrls[0]!);
    session.on('error', () => {});
    try {
      await once(session, 'remoteSettings');
      // The stream window comes with the listener's first SETTINGS; the connection's in a WINDOW_UPDATE just after.
      expect(session.remoteSettings.initialWindowSize).toBe(PEER_RECEIVE_WINDOW_BYTES);
      for (let i = 0; i < 50 && session.state.remoteWindowSize !== PEER_RECEIVE_WINDOW_BYTES; i++) await new Promise((r) => setTimeout(r, 20));
      expect(session.state.remoteWindowSize).toBe(PEER_RECEIVE_WINDOW_BYTES);
      // Which HTTP/2 answered: the engine announces its stream limit, Node's (under grpc-js) none of its own.
      if (on === 'engine') expect(session.remoteSettings.maxConcurrentStreams).toBe(CONNECTION_DEFAULTS.concurrentStreamsMax);
      else expect(session.remoteSettings.maxConcurrentStreams).not.toBe(CONNECTION_DEFAULTS.concurrentStreamsMax);
    } finally {
      session.destroy();
      await server.close();
    }
  });

  it.each(ENGINES)('closes client connections whose certificate fails --client-cert-allowed-hostname, and serves the ones that pass (--http2-engine=%s)', async (engine) => {
    const pki = await TestPki.create();
    try {
      const ca = await pki.ca('ca');
      const [member, app, other] = await Promise.all([
        pki.issue(ca, 'member'),
        pki.issue(ca, 'app', { sans: ['DNS:app.fulcrum.example'] }),
        pki.issue(ca, 'other', { sans: ['DNS:other.fulcrum.example'] }),
      ]);
      const server = await startServer(
        parseServerConfig([
          '--name', 's5', '--data-dir', join(dir, `s5-${engine}`), '--http2-engine', engine,
          '--listen-client-urls', 'https://127.0.0.1:0', '--advertise-client-urls', `https://127.0.0.1:${base + 2}`,
          '--listen-peer-urls', `http://127.0.0.1:${base + 1}`,
          '--initial-cluster', `s5=http://127.0.0.1:${base + 1}`,
          '--cert-file', member.certFile, '--key-file', member.keyFile, '--trusted-ca-file', ca.certFile, '--client-cert-auth',
          '--client-cert-allowed-hostname', 'app.fulcrum.example',
          '--heartbeat-interval', '20', '--election-timeout', '200', '--log-level', 'error',
        ], {}),
      );
      const caPem = await readFile(ca.certFile);
      const rangeAs = async (cert: typeof app): Promise<void> => {
        const creds = grpc.credentials.createSsl(caPem, await readFile(cert.keyFile), await readFile(cert.certFile));
        const kv = new (loadEtcdApi().etcdserverpb.KV)(server.clientUrls[0]!.replace('https://', ''), creds);
        try {
          await new Promise<void>((resolve, reject) =>
            kv.Range({ key: Buffer.from('k') } as never, new grpc.Metadata(), { deadline: Date.now() + 3_000 }, ((e: grpc.ServiceError | null) => (e ? reject(e) : resolve())) as never),
          );
        } finally {
          kv.close();
        }
      };
      try {
        await rangeAs(app);
        await expect(rangeAs(other)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
        await rangeAs(app);
      } finally {
        await server.close();
      }
    } finally {
      await pki.cleanup();
    }
  });
});
