// A 3-member Fulcrum cluster inside the test process, for the interoperability tests (node/interop*.test.ts):
// startServer three times with the same --initial-cluster, each member with its own ports and data dir, as an
// operator would start three `fulcrum` processes. Ports come from a pid-derived base (advertised URLs may not use
// port 0), so parallel test files do not collide.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseServerConfig } from '../config.js';
import { idToHex } from '../ids.js';
import { createLogger } from '../log.js';
import { createMetricsRegistry } from '../metrics.js';
import { startServer, type FulcrumServer } from '../server.js';
import { eventually } from './eventually.js';

export interface InteropMember {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  /** `127.0.0.1:port`: what etcdctl's --endpoints and etcd3's hosts take. */
  readonly endpoint: string;
  /** The running server, or undefined once stopped. */
  server: FulcrumServer | undefined;
  /** Member id (decimal, as etcd's JSON prints it) and in hex (as etcdctl's tables print it). */
  readonly id: number;
  readonly idHex: string;
}

export interface InteropClusterOptions {
  /** Offset added to the pid-derived base, so two clusters in one process do not share ports. */
  readonly portOffset?: number;
  readonly heartbeatMs?: number;
  readonly electionMs?: number;
  readonly token?: string;
  readonly logLevel?: 'debug' | 'info' | 'warn' | 'error';
}

/** Port blocks tried before giving up on EADDRINUSE. */
const START_ATTEMPTS = 5;

/** The first port of this process's block: 20 ports per pid slot, 300 slots from 26000; each retry another slot. */
export function interopBasePort(attempt = 0): number {
  return 26_000 + ((process.pid + attempt * 101) % 300) * 20; // 26000-31999: below the ephemeral range (32768+)
}

export class InteropCluster {
  readonly members: InteropMember[];
  readonly dir: string;
  private readonly registry = createMetricsRegistry({ processMetrics: false });

  private constructor(
    readonly options: InteropClusterOptions,
    members: InteropMember[],
    dir: string,
  ) {
    this.members = members;
    this.dir = dir;
  }

  /**
   * Start three members and wait until they agree on a leader and every member has published its name. The ports
   * lie in Linux's ephemeral range (outgoing connections take local ports there too), so a port found taken
   * (EADDRINUSE) moves the whole cluster to another pid slot and starts again, up to START_ATTEMPTS times.
   */
  static async start(options: InteropClusterOptions = {}): Promise<InteropCluster> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await InteropCluster.startAt(interopBasePort(attempt) + (options.portOffset ?? 0), options);
      } catch (e) {
        if (attempt + 1 >= START_ATTEMPTS || !String(e).includes('EADDRINUSE')) throw e;
      }
    }
  }

  private static async startAt(base: number, options: InteropClusterOptions): Promise<InteropCluster> {
    // startServer does not release what it started when a later bind fails, so look before leaping.
    const ports = Array.from({ length: 6 }, (_, i) => base + i);
    for (const port of ports) if (!(await portFree(port))) throw new Error(`EADDRINUSE: 127.0.0.1:${port} is taken`);
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-interop-'));
    const specs = [0, 1, 2].map((i) => ({ name: `i${i + 1}`, clientPort: base + 2 * i, peerPort: base + 2 * i + 1, dataDir: join(dir, `i${i + 1}`) }));
    const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(',');
    const configs = specs.map((s) =>
      parseServerConfig(
        [
          '--name', s.name,
          '--data-dir', s.dataDir,
          '--listen-client-urls', `http://127.0.0.1:${s.clientPort}`,
          '--listen-peer-urls', `http://127.0.0.1:${s.peerPort}`,
          '--initial-cluster', initialCluster,
          '--initial-cluster-token', options.token ?? 'fulcrum-interop',
          '--heartbeat-interval', String(options.heartbeatMs ?? 50),
          '--election-timeout', String(options.electionMs ?? 500),
          '--log-level', options.logLevel ?? 'error',
          // FULCRUM_HTTP2_ENGINE=node runs the interop tests on node:http2 with grpc-js (the default is the engine).
          ...(process.env.FULCRUM_HTTP2_ENGINE === undefined ? [] : ['--http2-engine', process.env.FULCRUM_HTTP2_ENGINE]),
        ],
        {},
      ),
    );
    const members: InteropMember[] = specs.map((s, i) => ({
      ...s,
      endpoint: `127.0.0.1:${s.clientPort}`,
      server: undefined,
      id: configs[i]!.memberId,
      idHex: idToHex(configs[i]!.memberId),
    }));
    const cluster = new InteropCluster(options, members, dir);
    const started = await Promise.allSettled(
      members.map(async (m, i) => {
        m.server = await startServer(configs[i]!, { registry: cluster.registry, logger: createLogger({ level: options.logLevel ?? 'error', memberId: m.id }) });
      }),
    );
    try {
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
      await cluster.leader();
      await eventually('every member published', async () => (members.every((m) => m.server!.member.members().filter((x) => x.name !== '' && x.clientUrls.length > 0).length === members.length) ? true : undefined));
    } catch (e) {
      await cluster.close();
      throw e;
    }
    return cluster;
  }

  get running(): InteropMember[] {
    return this.members.filter((m) => m.server !== undefined);
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.endpoint);
  }

  /** The member every running member agrees leads (polls until they agree). */
  leader(timeoutMs = 20_000): Promise<InteropMember> {
    return eventually(
      'a leader all running members agree on',
      async () => {
        const running = this.running;
        const ids = new Set(running.map((m) => m.server!.member.leaderId()));
        if (ids.size !== 1 || ids.has(0)) return undefined;
        const [id] = ids;
        return running.find((m) => m.id === id);
      },
      timeoutMs,
    );
  }

  /** Stop one member (the server's own close(): clients see its port go away). */
  async stop(m: InteropMember): Promise<void> {
    const s = m.server;
    m.server = undefined;
    await s?.close();
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => this.stop(m).catch(() => undefined)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Whether 127.0.0.1:port can be bound right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export { eventually };
