// Real Fulcrum servers (startServer: every service, the auth gate, real gRPC) for the auth tests, on ports from the
// auth tests' range 4000-4899, in blocks of 10 chosen by pid and slot; a taken port moves to another block.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  loadEtcdApi,
  type AuthMethods,
  type ClusterMethods,
  type KVMethods,
  type LeaseMethods,
  type LockMethods,
  type MaintenanceMethods,
  type TypedClient,
  type WatchMethods,
} from '../../proto/index.js';
import { parseServerConfig } from '../config.js';
import { startServer, type FulcrumServer } from '../server.js';
import { eventually } from '../testing/eventually.js';
import { freeConsecutivePorts } from '../testing/ports.js';

/** `count` free ports in 4000-4899, from blocks of 10 (`slot` separates several clusters in one file). */
export function freePorts(count: number, slot: number): Promise<number[]> {
  return freeConsecutivePorts(count, { first: 4000, size: 900, align: 10 }, slot);
}

export interface AuthClients {
  readonly auth: TypedClient<AuthMethods>;
  readonly kv: TypedClient<KVMethods>;
  readonly watch: TypedClient<WatchMethods>;
  readonly lease: TypedClient<LeaseMethods>;
  readonly maintenance: TypedClient<MaintenanceMethods>;
  readonly cluster: TypedClient<ClusterMethods>;
  readonly lock: TypedClient<LockMethods>;
}

export interface AuthCluster {
  readonly servers: FulcrumServer[];
  readonly endpoints: string[];
  clients(i?: number): AuthClients;
  /** Stop member i (its data dir stays). */
  stop(i: number): Promise<void>;
  /** Start member i again on its data dir. */
  start(i: number): Promise<FulcrumServer>;
  close(): Promise<void>;
}

/** `size` members serving on loopback; resolves once one of them leads. */
export async function startAuthCluster(size: number, slot: number, extraFlags: readonly string[] = []): Promise<AuthCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-auth-'));
  const ports = await freePorts(2 * size, slot);
  const names = Array.from({ length: size }, (_, i) => `a${i}`);
  const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${ports[2 * i + 1]}`).join(',');
  const configs = names.map((name, i) =>
    parseServerConfig(
      [
        '--name', name, '--data-dir', join(dir, name),
        '--listen-client-urls', `http://127.0.0.1:${ports[2 * i]}`,
        '--listen-peer-urls', `http://127.0.0.1:${ports[2 * i + 1]}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${ports[2 * i + 1]}`,
        '--initial-cluster', initialCluster,
        '--heartbeat-interval', '20', '--election-timeout', '200', '--log-level', 'error',
        ...extraFlags,
      ],
      {},
    ),
  );
  const servers = await Promise.all(configs.map((c) => startServer(c)));
  await eventually('a leader', async () => (servers.some((s) => s.member.isLeader()) ? true : undefined), 20_000, 20);
  const endpoints = servers.map((_, i) => `127.0.0.1:${ports[2 * i]}`);
  const api = loadEtcdApi();
  const made: Array<{ close(): void }> = [];
  return {
    servers,
    endpoints,
    clients(i = 0) {
      const creds = grpc.credentials.createInsecure();
      const c = {
        auth: new api.etcdserverpb.Auth(endpoints[i]!, creds),
        kv: new api.etcdserverpb.KV(endpoints[i]!, creds),
        watch: new api.etcdserverpb.Watch(endpoints[i]!, creds),
        lease: new api.etcdserverpb.Lease(endpoints[i]!, creds),
        maintenance: new api.etcdserverpb.Maintenance(endpoints[i]!, creds),
        cluster: new api.etcdserverpb.Cluster(endpoints[i]!, creds),
        lock: new api.v3lockpb.Lock(endpoints[i]!, creds),
      };
      made.push(...Object.values(c));
      return c;
    },
    async stop(i) {
      await servers[i]!.close();
    },
    async start(i) {
      servers[i] = await startServer(configs[i]!);
      return servers[i];
    },
    async close() {
      for (const c of made) c.close();
      await Promise.all(servers.map((s) => s.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function withToken(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('token', token);
  return md;
}
