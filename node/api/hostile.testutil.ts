// Test helpers for the hostile-input tests: a whole in-process server (every service, the real limits and
// interceptor) on loopback ports from the hostile tests' own range, a raw grpc-js client that sends whatever
// bytes it is given, and the list of answers a member may give to bad input. Test code only.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { portFree } from '../../client/testing/servers.js';
import { loadEtcdApi } from '../../proto/index.js';
import { parseServerConfig } from '../config.js';
import { startServer, type FulcrumServer } from '../server.js';

/** grpc-js's own answer to a message it cannot decode (server-interceptors.js): the one INTERNAL that is not ours. */
export const GRPC_DECODE_ERROR = 'Error deserializing request';

export interface HostileMember {
  readonly server: FulcrumServer;
  readonly endpoint: string;
  close(): Promise<void>;
}

/** `count` free consecutive ports from [first, last], scanning from a pid-based start so parallel runs differ. */
export async function pickPorts(first: number, last: number, count: number): Promise<number[]> {
  const span = last - first + 1 - count;
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = first + ((process.pid * 7 + attempt * 37) % span);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return ports;
  }
  throw new Error(`no ${count} free ports in ${first}-${last}`);
}

/** One member with the real server composition, started with extra flags (limits to test). */
export async function startHostileMember(portRange: [number, number], flags: readonly string[] = []): Promise<HostileMember> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-hostile-'));
  const [clientPort, peerPort] = await pickPorts(portRange[0], portRange[1], 2);
  const config = parseServerConfig(
    [
      '--name', 'h1',
      '--data-dir', join(dir, 'h1'),
      '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--heartbeat-interval', '20',
      '--election-timeout', '200',
      '--log-level', 'error',
      ...flags,
    ],
    {},
  );
  const server = await startServer(config);
  await waitForLeader(server);
  return {
    server,
    endpoint: `127.0.0.1:${clientPort}`,
    close: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitForLeader(server: FulcrumServer): Promise<void> {
  const until = Date.now() + 10_000;
  while (server.member.leaderId() === 0) {
    if (Date.now() > until) throw new Error('no leader after 10 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A method of the client API as grpc-js describes it. */
export interface MethodInfo {
  readonly service: string;
  readonly name: string;
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** Every method the client listener serves (Auth is left out: not served by this build's server). */
export function clientMethods(): MethodInfo[] {
  const api = loadEtcdApi();
  const services: Record<string, grpc.ServiceDefinition> = {
    KV: api.etcdserverpb.KV.service,
    Watch: api.etcdserverpb.Watch.service,
    Lease: api.etcdserverpb.Lease.service,
    Cluster: api.etcdserverpb.Cluster.service,
    Maintenance: api.etcdserverpb.Maintenance.service,
    Election: api.v3electionpb.Election.service,
    Lock: api.v3lockpb.Lock.service,
    Fulcrum: api.fulcrum.v1.Fulcrum.service,
  };
  return Object.entries(services).flatMap(([service, def]) =>
    Object.entries(def).map(([name, m]) => ({ service, name, path: m.path, requestStream: m.requestStream, responseStream: m.responseStream })),
  );
}

const identity = (b: Buffer): Buffer => b;

export interface Outcome {
  readonly code: number;
  readonly details: string;
}

/** Send raw bytes as the request of a unary or server-streaming method; resolves with the final status. */
export function sendRaw(client: grpc.Client, m: MethodInfo, payloads: readonly Buffer[], deadlineMs = 5_000): Promise<Outcome> {
  const deadline = Date.now() + deadlineMs;
  return new Promise((resolve) => {
    if (!m.requestStream && !m.responseStream) {
      client.makeUnaryRequest(m.path, identity, identity, payloads[0]!, new grpc.Metadata(), { deadline }, (err) =>
        resolve(err === null ? { code: grpc.status.OK, details: '' } : { code: err.code, details: err.details }),
      );
      return;
    }
    const done = (s: grpc.StatusObject): void => resolve({ code: s.code, details: s.details });
    if (!m.requestStream) {
      const call = client.makeServerStreamRequest(m.path, identity, identity, payloads[0]!, new grpc.Metadata(), { deadline });
      call.on('data', () => {});
      call.on('error', () => {});
      call.on('status', done);
      return;
    }
    const call = client.makeBidiStreamRequest(m.path, identity, identity, new grpc.Metadata(), { deadline });
    call.on('data', () => {});
    call.on('error', () => {});
    call.on('status', done);
    for (const p of payloads) call.write(p);
    call.end();
  });
}

/**
 * Whether a status is an answer a member may give to bad input: anything but INTERNAL (a handler that failed
 * unexpectedly: a defect) and UNKNOWN (an error nobody mapped), except grpc-js's own decoding error and the
 * election errors etcd itself sends as UNKNOWN.
 */
export function isCleanAnswer(o: Outcome): boolean {
  if (o.code === grpc.status.INTERNAL) return o.details === GRPC_DECODE_ERROR;
  if (o.code === grpc.status.UNKNOWN) return /^election: |"leader" field must be provided/.test(o.details);
  return true;
}

export function randomBytes(rand: () => number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Resident set size of this process in MiB (the members under test live in it). */
export function rssMiB(): number {
  return process.memoryUsage().rss / (1024 * 1024);
}

export function rawClient(endpoint: string, options: grpc.ChannelOptions = {}): grpc.Client {
  return new grpc.Client(endpoint, grpc.credentials.createInsecure(), options);
}
