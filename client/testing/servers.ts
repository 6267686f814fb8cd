// Test servers for the client's tests: an in-process member serving gRPC, a 3-member cluster of real processes,
// and a real etcd. Ports come from the client tests' own range, 19000-21999 (below Linux's ephemeral range),
// in blocks of 20 chosen by pid; a taken port moves to another block. Test code only: the library imports
// nothing from node/.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseServerConfig } from '../../node/config.js';
import { startMember, type EmbeddedMember } from '../../node/embedded.js';
import { startServer } from '../../node/server.js';
import { eventually } from '../../node/testing/eventually.js';
import { freeConsecutivePorts, portFree } from '../../node/testing/ports.js';
import { ProcessCluster } from '../../node/testing/process-cluster.js';
import { Client, type ClientOptions } from '../index.js';

/** `count` free consecutive ports from this process's block of 20 in 19000-21999 (`slot` separates several users). */
/** Tries at starting a member before a port race (another process took one of its ports) fails the test. */
const ATTEMPTS = 8;

export function freePorts(count: number, slot: number): Promise<number[]> {
  return freeConsecutivePorts(count, { first: 19_000, size: 3_000, align: 20 }, slot);
}

export { portFree };

export interface TestMember {
  readonly member: EmbeddedMember;
  readonly endpoint: string;
  client(options?: Partial<ClientOptions>): Client;
  close(): Promise<void>;
}

/** One in-process Fulcrum member serving the etcd API on loopback, on ports from `allocate` (this range by default). */
export async function startTestMember(slot = 0, allocate: (count: number, slot: number) => Promise<number[]> = freePorts): Promise<TestMember> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-client-'));
  for (let attempt = 0; ; attempt++) {
    const [clientPort, peerPort] = await allocate(2, slot + attempt * 7);
    try {
      const member = await startMember({ dataDir: dir, listen: { clientPort, peerPort }, heartbeatMs: 20, electionMs: 200, logLevel: 'error' });
      const endpoint = member.endpoints[0]!;
      const clients: Client[] = [];
      return {
        member,
        endpoint,
        client: (o = {}) => {
          const c = new Client({ endpoints: [endpoint], ...o });
          clients.push(c);
          return c;
        },
        close: async () => {
          await Promise.all(clients.map((c) => c.close()));
          await member.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      if (attempt + 1 >= ATTEMPTS || !/EADDRINUSE|address already in use|No address added/i.test(String(e))) throw e;
    }
  }
}

/**
 * A member that never has a leader: its cluster has a second voter that never starts, so it cannot win an
 * election, and answers hasleader calls with "etcdserver: no leader" (as a member cut off from its majority).
 */
export async function startLeaderlessMember(slot: number): Promise<{ endpoint: string; close(): Promise<void> }> {
  const [clientPort, peerPort, ghostPort] = await freePorts(3, slot);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-client-leaderless-'));
  const config = parseServerConfig(
    [
      '--name', 'lonely',
      '--data-dir', join(dir, 'lonely'),
      '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', `lonely=http://127.0.0.1:${peerPort},ghost=http://127.0.0.1:${ghostPort}`,
      '--heartbeat-interval', '20',
      '--election-timeout', '200',
      '--log-level', 'error',
    ],
    {},
  );
  const server = await startServer(config);
  return {
    endpoint: `127.0.0.1:${clientPort}`,
    close: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestCluster {
  readonly cluster: ProcessCluster;
  readonly endpoints: string[];
  /** The member every running member agrees leads, by its index in cluster.members. */
  leaderIndex(): Promise<number>;
  close(): Promise<void>;
}

/** Three real member processes (kill -9, SIGSTOP and restart them through `cluster.members[i]`). */
export async function startTestCluster(slot: number, timing: { heartbeatMs?: number; electionMs?: number } = {}): Promise<TestCluster> {
  const ports = await freePorts(6, slot);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-client-cluster-'));
  const cluster = new ProcessCluster({
    members: [0, 1, 2].map((i) => ({ name: `c${i + 1}`, clientPort: ports[2 * i]!, peerPort: ports[2 * i + 1]!, dataDir: join(dir, `c${i + 1}`), extraArgs: ['--log-level', 'warn'] })),
    heartbeatMs: timing.heartbeatMs ?? 100,
    electionMs: timing.electionMs ?? 1000,
  });
  cluster.start();
  const probe = cluster.members.map((m) => new Client({ endpoints: [m.clientEndpoint], attemptTimeoutMs: 1_000, requestTimeoutMs: 2_000 }));
  const leaderIndex = async (): Promise<number> =>
    eventually('one leader that every running member agrees on', async () => {
      const views = await Promise.all(
        cluster.members.map(async (m, i) => {
          if (!m.running) return undefined;
          const [s] = await probe[i]!.memberStatuses({ timeoutMs: 1_000 });
          return s;
        }),
      );
      const running = views.filter((v) => v !== undefined);
      const leaders = new Set(running.map((v) => v.leaderId));
      if (running.length === 0 || leaders.size !== 1 || leaders.has('0')) return undefined;
      const idx = views.findIndex((v) => v !== undefined && v.memberId === v.leaderId);
      return idx >= 0 ? idx : undefined;
    }, 60_000, 200);
  try {
    await leaderIndex();
  } catch (e) {
    await cluster.kill();
    throw new Error(`${String(e)}\n${cluster.members.map((m) => `${m.spec.name}: ${m.output.slice(-5).join('\n')}`).join('\n')}`);
  }
  return {
    cluster,
    endpoints: cluster.endpoints,
    leaderIndex,
    close: async () => {
      await Promise.all(probe.map((c) => c.close()));
      await cluster.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';
export const haveEtcd = existsSync(ETCD_BIN);

export interface TestEtcd {
  readonly endpoint: string;
  /** With `tls`: the PEM files a client needs (the CA, and a client certificate the server requires). */
  readonly tls?: { readonly ca: Buffer; readonly cert: Buffer; readonly key: Buffer };
  close(): Promise<void>;
}

/**
 * A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl (EC P-256,
 * valid one day), in `dir`.
 */
function makeCertificates(dir: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const f = (name: string): string => join(dir, name);
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'ignore' });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=fulcrum-test-ca');
  for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    writeFileSync(f(`${name}.ext`), ext);
    ssl('req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${name === 'server' ? '127.0.0.1' : 'fulcrum-test-client'}`);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '1', '-extfile', f(`${name}.ext`));
  }
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

/**
 * A single real etcd (3.4 here) on loopback, for the plain-etcd interoperability tests; `tls` serves https with
 * client certificates required. `ports` (client, peer) overrides this file's range; `extraArgs` go to etcd as they are.
 */
export async function startTestEtcd(
  slot: number,
  options: { tls?: boolean; ports?: readonly [number, number]; extraArgs?: readonly string[] } = {},
): Promise<TestEtcd> {
  const [clientPort, peerPort] = options.ports ?? (await freePorts(2, slot));
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-client-etcd-'));
  const certs = options.tls ? makeCertificates(dir) : undefined;
  const scheme = certs ? 'https' : 'http';
  const child: ChildProcess = spawn(
    ETCD_BIN,
    [
      '--name', 'e1',
      '--data-dir', join(dir, 'data'),
      '--listen-client-urls', `${scheme}://127.0.0.1:${clientPort}`,
      '--advertise-client-urls', `${scheme}://127.0.0.1:${clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', `e1=http://127.0.0.1:${peerPort}`,
      '--log-level', 'error',
      ...(certs ? ['--cert-file', certs.serverCert, '--key-file', certs.serverKey, '--trusted-ca-file', certs.ca, '--client-cert-auth'] : []),
      ...(options.extraArgs ?? []),
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const endpoint = certs ? `https://127.0.0.1:${clientPort}` : `127.0.0.1:${clientPort}`;
  const tls = certs ? { ca: readFileSync(certs.ca), cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) } : undefined;
  const probe = new Client({ endpoints: [endpoint], attemptTimeoutMs: 1_000, requestTimeoutMs: 2_000, ...(tls ? { tls } : {}) });
  try {
    await eventually('etcd to serve', async () => ((await probe.memberStatuses({ timeoutMs: 1_000 })).length === 1 ? true : undefined), 30_000, 200);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  } finally {
    await probe.close();
  }
  return {
    endpoint,
    ...(tls ? { tls } : {}),
    close: async () => {
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
