// Test harness for the client-facing services: a real single-voter Member on a temporary data dir, the KV,
// Maintenance, Cluster and Fulcrum services on 127.0.0.1:0, and typed clients. Used by the node/api tests only.
//
// The calls are served as a member serves them by default: on Fulcrum's own HTTP/2 engine (node/h2/), with no
// grpc-js server behind the fast path. FULCRUM_HTTP2_ENGINE=node serves them on Node's http2 under grpc-js with
// the fast path installed (--http2-engine=node); `npm test` runs node/api both ways:
//
//   FULCRUM_HTTP2_ENGINE=node npx vitest run node/api
import { execFile, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import {
  loadEtcdApi,
  type ClusterMethods,
  type Encodable,
  type FulcrumMethods,
  type KVMethods,
  type MaintenanceMethods,
  type MethodMap,
  type TypedClient,
  type Unary,
} from '../../proto/index.js';
import { Member, type MemberOptions } from '../member.js';
import { createClusterService } from './cluster.js';
import { FastPath } from './fast-path.js';
import { CallBudget, fastPathLimits } from './limits.js';
import { API_LIMITS_DEFAULTS, type ApiContext, type ApiLimits } from './context.js';
import { createFulcrumService } from './fulcrum.js';
import { createKvService } from './kv.js';
import { createMaintenanceService } from './maintenance.js';
import { H2Server } from '../h2/server.js';

export const PEER_URL = 'http://127.0.0.1:12380';
/** Which HTTP/2 engine serves the harness: Fulcrum's own (a member's default), or Node's with grpc-js. */
export const HARNESS_ENGINE: 'node' | 'fulcrum' = process.env.FULCRUM_HTTP2_ENGINE === 'node' ? 'node' : 'fulcrum';
/** The harness's streaming methods served by the fast path (the rest of the streams go to grpc-js). */
const FAST_STREAMS: ReadonlySet<string> = new Set(['/etcdserverpb.Maintenance/Snapshot']);

export interface Harness {
  readonly member: Member;
  readonly ctx: ApiContext;
  readonly port: number;
  readonly endpoint: string;
  /** The server's fast path: `served` counts the calls it answered. */
  readonly fast: FastPath;
  readonly kv: TypedClient<KVMethods>;
  readonly maintenance: TypedClient<MaintenanceMethods>;
  readonly cluster: TypedClient<ClusterMethods>;
  readonly fulcrum: TypedClient<FulcrumMethods>;
  close(): Promise<void>;
}

export async function startHarness(
  options: { limits?: Partial<ApiLimits>; member?: Partial<MemberOptions>; publish?: boolean } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-api-'));
  const member = await Member.start({
    id: 1,
    dataDir: dir,
    initialVoters: [1],
    heartbeatMs: 20,
    initialMembers: new Map([[1, { name: 'one', peerUrls: [PEER_URL] }]]),
    ...options.member,
  });
  const server = new grpc.Server();
  const api = loadEtcdApi();
  const ctx: ApiContext = {
    member,
    logger: pino({ level: 'silent' }),
    limits: { ...API_LIMITS_DEFAULTS, ...options.limits },
    self: { name: 'one', clientUrls: [], peerUrls: [PEER_URL] },
    registry: new Map(),
  };
  // Unary calls take the server's fast path (api/fast-path.ts), as in a real member.
  const fast = new FastPath(fastPathLimits(ctx.limits), new CallBudget(ctx.limits), FAST_STREAMS);
  fast.addService(server, api.etcdserverpb.KV.service, createKvService(ctx));
  fast.addService(server, api.etcdserverpb.Maintenance.service, createMaintenanceService(ctx));
  fast.addService(server, api.etcdserverpb.Cluster.service, createClusterService(ctx));
  fast.addService(server, api.fulcrum.v1.Fulcrum.service, createFulcrumService(ctx));
  const { port, stop } = HARNESS_ENGINE === 'fulcrum' ? await serveOnEngine(fast) : await serveOnGrpcJs(server, fast);
  const endpoint = `127.0.0.1:${port}`;
  if (options.publish !== false) await member.publishAttributes('one', [`http://${endpoint}`]);
  const creds = grpc.credentials.createInsecure();
  const clients = {
    kv: new api.etcdserverpb.KV(endpoint, creds),
    maintenance: new api.etcdserverpb.Maintenance(endpoint, creds),
    cluster: new api.etcdserverpb.Cluster(endpoint, creds),
    fulcrum: new api.fulcrum.v1.Fulcrum(endpoint, creds),
  };
  return {
    member,
    ctx,
    port,
    endpoint,
    fast,
    ...clients,
    async close() {
      for (const c of Object.values(clients)) c.close();
      await stop();
      await member.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function serveOnGrpcJs(server: grpc.Server, fast: FastPath): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  fast.install(server);
  return { port, stop: async () => server.forceShutdown() };
}

async function serveOnEngine(fast: FastPath): Promise<{ port: number; stop: () => Promise<void> }> {
  const engine = new H2Server({ onStream: fast.engineStreamHandler });
  const listener = net.createServer();
  engine.attach(listener);
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  return { port: (listener.address() as net.AddressInfo).port, stop: () => engine.close(0) };
}

type ReqOf<M> = M extends Unary<infer Q, unknown> ? Encodable<Q> : never;
type ResOf<M> = M extends Unary<unknown, infer R> ? R : never;

/** Call a unary method and await its answer: `await rpc(h.kv, 'Put', { key, value })`. */
export function rpc<Ms extends MethodMap, K extends keyof Ms & string>(
  client: TypedClient<Ms>,
  method: K,
  request: ReqOf<Ms[K]>,
  md: grpc.Metadata = new grpc.Metadata(),
  options: Partial<grpc.CallOptions> = {},
): Promise<ResOf<Ms[K]>> {
  const fn = client[method] as unknown as (q: unknown, md: grpc.Metadata, o: Partial<grpc.CallOptions>, cb: grpc.requestCallback<ResOf<Ms[K]>>) => unknown;
  return new Promise((resolve, reject) => {
    fn.call(client, request, md, options, (err, res) => (err !== null ? reject(err) : res === undefined ? reject(new Error('no response')) : resolve(res)));
  });
}

/** The status a call fails with, as [code, details]. */
export async function failsWith(pending: Promise<unknown>): Promise<[number, string]> {
  try {
    await pending;
  } catch (e) {
    const err = e as grpc.ServiceError;
    return [err.code, err.details];
  }
  throw new Error('expected the call to fail');
}

export const b = (s: string): Buffer => Buffer.from(s);

export function metadata(pairs: Record<string, string>): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(pairs)) md.set(k, v);
  return md;
}

// ---------------------------------------------------------------------------------------------------------
// etcdctl
// ---------------------------------------------------------------------------------------------------------

export const ETCDCTL = process.env.ETCDCTL_BIN ?? 'etcdctl';

/** Synchronous probe at collection time, so that skipIf can use the answer. */
export function etcdctlAvailable(): boolean {
  try {
    execFileSync(ETCDCTL, ['version'], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

const execFileAsync = promisify(execFile);

export interface EtcdctlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run etcdctl against an endpoint; never throws on a non-zero exit (tests assert on it). */
export async function etcdctl(endpoint: string, args: readonly string[], input?: string): Promise<EtcdctlResult> {
  const argv = ['--endpoints', endpoint, '--dial-timeout', '5s', '--command-timeout', '10s', ...args];
  const env = { ...process.env, ETCDCTL_API: '3' };
  if (input === undefined) {
    try {
      const { stdout, stderr } = await execFileAsync(ETCDCTL, argv, { env, timeout: 30_000 });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
    }
  }
  return new Promise((resolve) => {
    const child = execFile(ETCDCTL, argv, { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}
