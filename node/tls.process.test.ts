// TLS end to end with real processes and real tools: three Fulcrum members with mutual TLS on the client and the
// peer URLs (separate CAs, certificates made at run time by node/testing/certs.ts), then
//   - etcdctl 3.4 with --cacert/--cert/--key: put, get, watch, member list; refused without a client certificate
//     or with one from another CA
//   - a fourth member whose peer certificate is from another CA cannot join, nor even handshake; with a good
//     certificate the same member joins (node/join.ts and the transport dial https peers)
//   - rotation: new certificate files on disk are served to new connections, open connections keep working
//   - Fulcrum's client library, fulcrumctl and the etcd3 npm package against the TLS cluster
//   - /health over https with the client certificate rules (etcd serves https metrics URLs with its client TLS)
// Ports: 3000-3999 on 127.0.0.1.
import { readFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../client/index.js';
import { ctl } from '../client/ctl/testing.js';
import { loadEtcdApi } from '../proto/index.js';
import { daysFromNow, TestPki, type IssuedCert, type TestCa } from './testing/certs.js';
import { eventually } from './testing/eventually.js';
import { BackgroundEtcdctl, findEtcdctl, runEtcdctl, type EtcdctlRun } from './testing/interop-etcdctl.js';
import { freeConsecutivePorts } from './testing/ports.js';
import { ProcessCluster, ProcessMember, memberArgs, type ProcessMemberSpec } from './testing/process-cluster.js';
import { PEER_PROTOCOL_VERSION } from './transport/index.js';

const haveEtcdctl = findEtcdctl() !== undefined;
/** Snapshot and compact the log early, so that a member joining later is sent a snapshot (over TLS). */
const SNAPSHOT_OFTEN = ['--snapshot-count', '20', '--experimental-snapshot-catchup-entries', '5'];
/** Writes before the fourth member joins: several snapshots' worth. */
const WRITES_BEFORE_JOIN = 80;
const NAMES = ['m1', 'm2', 'm3'] as const;

let pki: TestPki;
let clientCa: TestCa;
let peerCa: TestCa;
let rogueCa: TestCa;
let user: IssuedCert;
let intruder: IssuedCert;
const certs = new Map<string, { client: IssuedCert; peer: IssuedCert }>();
let cluster: ProcessCluster;
let endpoints: string[];
let metricsPort: number;
const cleanups: (() => Promise<unknown>)[] = [];

/** `count` consecutive free ports in 3000-3999, from a pid-dependent start so parallel runs spread out. */
const freePorts = (count: number): Promise<number[]> => freeConsecutivePorts(count, { first: 3000, size: 1000 }, 1);

function tlsArgs(name: string): string[] {
  const c = certs.get(name)!;
  return [
    '--cert-file', c.client.certFile, '--key-file', c.client.keyFile, '--trusted-ca-file', clientCa.certFile, '--client-cert-auth',
    '--peer-cert-file', c.peer.certFile, '--peer-key-file', c.peer.keyFile, '--peer-trusted-ca-file', peerCa.certFile, '--peer-client-cert-auth',
    // Every member's peer certificate names localhost (LOOPBACK_SANS): the cluster runs with the name check on.
    '--peer-cert-allowed-hostname', 'localhost',
  ];
}

/** etcdctl's TLS flags for a client certificate (or none: null). */
function etcdctlTls(cert: IssuedCert | null, ca: TestCa = clientCa): string[] {
  return ['--cacert', ca.certFile, ...(cert === null ? [] : ['--cert', cert.certFile, '--key', cert.keyFile])];
}

async function etcdctl(args: readonly string[], cert: IssuedCert | null = user, eps: readonly string[] = endpoints): Promise<EtcdctlRun> {
  return runEtcdctl(eps, [...etcdctlTls(cert), ...args], { timeoutMs: 20_000 });
}

async function ok(args: readonly string[]): Promise<string> {
  const r = await etcdctl(args);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The serial of the certificate a new TLS connection to this port is served (upper-case hex). */
async function servedSerial(port: number): Promise<string> {
  const auth = { cert: await readFile(user.certFile), key: await readFile(user.keyFile) };
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', servername: 'localhost', port, rejectUnauthorized: false, ALPNProtocols: ['h2'], ...auth }, () => {
      resolve(s.getPeerCertificate().serialNumber.toUpperCase());
      s.end();
    });
    s.on('error', reject);
  });
}

async function clientTlsOptions(cert: IssuedCert): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  return { ca: await readFile(clientCa.certFile), cert: await readFile(cert.certFile), key: await readFile(cert.keyFile) };
}

describe.skipIf(!haveEtcdctl)('a 3-member cluster with mutual TLS on client and peer URLs', () => {
  beforeAll(async () => {
    pki = await TestPki.create();
    cleanups.push(() => pki.cleanup());
    [clientCa, peerCa, rogueCa] = await Promise.all([pki.ca('client-ca'), pki.ca('peer-ca'), pki.ca('rogue-ca')]);
    for (const name of [...NAMES, 'm4']) {
      certs.set(name, { client: await pki.issue(clientCa, `${name}-client`), peer: await pki.issue(peerCa, `${name}-peer`) });
    }
    user = await pki.issue(clientCa, 'user');
    intruder = await pki.issue(rogueCa, 'intruder');

    const ports = await freePorts(9);
    metricsPort = ports[8]!;
    const specs: ProcessMemberSpec[] = NAMES.map((name, i) => ({
      name,
      clientPort: ports[2 * i]!,
      peerPort: ports[2 * i + 1]!,
      dataDir: join(pki.dir, name),
      extraArgs: [...tlsArgs(name), ...SNAPSHOT_OFTEN, '--log-level', 'warn', ...(i === 0 ? ['--listen-metrics-urls', `https://127.0.0.1:${metricsPort}`] : [])],
    }));
    cluster = new ProcessCluster({ members: specs, clientScheme: 'https', peerScheme: 'https', heartbeatMs: 50, electionMs: 500 });
    cleanups.push(() => cluster.kill());
    cluster.start();
    endpoints = cluster.members.map((m) => m.clientUrl);
    await eventually('the TLS cluster serves a linearizable read on every member', async () => {
      const r = await etcdctl(['endpoint', 'health']);
      return r.code === 0 && (r.stdout + r.stderr).split('is healthy').length === 4 ? true : undefined;
    }, 45_000, 300);
  }, 90_000);

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }, 30_000);

  it('etcdctl 3.4 with --cacert/--cert/--key: put, get, watch, member list', async () => {
    const watch = new BackgroundEtcdctl(endpoints, [...etcdctlTls(user), 'watch', 'tls/watched']);
    cleanups.push(() => watch.stop());
    await new Promise((r) => setTimeout(r, 500));
    expect(await ok(['put', 'tls/watched', 'v1'])).toBe('OK\n');
    expect(await ok(['get', 'tls/watched', '--print-value-only'])).toBe('v1\n');
    await eventually('the watch sees the put', async () => (watch.stdout.includes('PUT\ntls/watched\nv1') ? true : undefined), 10_000);
    const members = await ok(['member', 'list']);
    for (const m of cluster.members) expect(members).toContain(`${m.spec.name}, https://127.0.0.1:${m.spec.peerPort}, https://127.0.0.1:${m.spec.clientPort}`);
  }, 30_000);

  it('followers forward lease keep-alives to the leader over https with their client certificate', async () => {
    const granted = /lease ([0-9a-f]+) granted/.exec(await ok(['lease', 'grant', '30']))?.[1];
    expect(granted).toBeDefined();
    // Each member in turn: the followers' answers come from the leader, over its https client URL with mutual TLS.
    for (const m of cluster.members) {
      const r = await etcdctl(['lease', 'keep-alive', '--once', granted!], user, [m.clientUrl]);
      expect([r.code, r.stdout]).toEqual([0, expect.stringContaining(`lease ${granted} keepalived with TTL(`) as unknown as string]);
      const ttl = await etcdctl(['lease', 'timetolive', granted!], user, [m.clientUrl]);
      expect(ttl.stdout).toMatch(new RegExp(`lease ${granted} granted with TTL\\(30s\\), remaining\\(\\d+s\\)`));
    }
  }, 30_000);

  it('etcdctl is refused without a client certificate, with one from another CA, or with the wrong CA', async () => {
    const quick = ['--dial-timeout', '2s', '--command-timeout', '3s', 'get', 'tls/watched'];
    for (const r of [await etcdctl(quick, null), await etcdctl(quick, intruder)]) {
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/context deadline exceeded|certificate|handshake|connection closed|Unavailable/i);
    }
    const wrongCa = await runEtcdctl(endpoints, [...etcdctlTls(user, rogueCa), ...quick], { timeoutMs: 20_000 });
    expect(wrongCa.code).not.toBe(0);
    expect(wrongCa.stderr).toMatch(/certificate signed by unknown authority|context deadline exceeded/);
  }, 60_000);

  it('a peer certificate from another CA is refused at the handshake; its messages never reach the member', async () => {
    const m1 = cluster.member('m1');
    const handshake = async (cert: IssuedCert): Promise<unknown> => {
      const creds = grpc.credentials.createSsl(await readFile(peerCa.certFile), await readFile(cert.keyFile), await readFile(cert.certFile));
      const c = new (loadEtcdApi().fulcrum.raftpb.RaftTransport)(`127.0.0.1:${m1.spec.peerPort}`, creds);
      try {
        return await new Promise((resolve, reject) =>
          c.Handshake(
            { from: { cluster_id: '0', member_id: '1', name: 'probe', peer_urls: [], version: '', protocol_version: PEER_PROTOCOL_VERSION }, to_member_id: '0' } as never,
            new grpc.Metadata(),
            { deadline: Date.now() + 3_000 },
            ((e: grpc.ServiceError | null, r: unknown) => (e ? reject(e) : resolve(r))) as never,
          ),
        );
      } finally {
        c.close();
      }
    };
    // Control: a certificate from the peer CA reaches the transport, which answers (here with its cluster id).
    expect(await handshake(certs.get('m4')!.peer)).toMatchObject({ member: { name: 'm1' } });
    // From another CA (or the client CA): the TLS handshake fails, so no hello, no Send stream, no Raft message.
    await expect(handshake(intruder)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await expect(handshake(user)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    // From the peer CA but not for the allowed host name (--peer-cert-allowed-hostname localhost): closed as the
    // handshake ends, and the member says why.
    const misnamed = await pki.issue(peerCa, 'misnamed-peer', { sans: ['DNS:elsewhere.example'] });
    await expect(handshake(misnamed)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await eventually('m1 logs the refusal', async () => (m1.output.some((l) => l.includes('hostname authentication failed')) ? true : undefined), 5_000, 100);
  }, 30_000);

  it('a member with a wrong-CA peer certificate cannot join; with a good one it joins over TLS, from a snapshot', async () => {
    const [clientPort, peerPort] = await freePorts(2);
    const peerUrl = `https://127.0.0.1:${peerPort!}`;
    expect(await ok(['member', 'add', 'm4', `--peer-urls=${peerUrl}`])).toContain('Member');
    // Written after the add, so that the snapshots taken meanwhile know m4. (A snapshot taken before the add is
    // sent over and over and never installed: a bug outside TLS, reproduced over http too; see the report.)
    const writer = new Client({ endpoints, tls: await clientTlsOptions(user) });
    try {
      for (let i = 0; i < WRITES_BEFORE_JOIN; i++) await writer.put(`tls/before-join/${i}`, String(i));
    } finally {
      await writer.close();
    }
    const initialCluster = [...cluster.members.map((m) => `${m.spec.name}=https://127.0.0.1:${m.spec.peerPort}`), `m4=${peerUrl}`].join(',');
    const spec = (peerCert: IssuedCert, dataDir: string): ProcessMemberSpec => ({
      name: 'm4',
      clientPort: clientPort!,
      peerPort: peerPort!,
      dataDir,
      extraArgs: [
        ...tlsArgs('m4').map((a) => (a === certs.get('m4')!.peer.certFile ? peerCert.certFile : a === certs.get('m4')!.peer.keyFile ? peerCert.keyFile : a)),
        ...SNAPSHOT_OFTEN,
      ],
    });
    const o = { clientScheme: 'https', peerScheme: 'https', heartbeatMs: 50, electionMs: 500 } as const;
    const rogueSpec = spec(await pki.issue(rogueCa, 'm4-rogue-peer'), join(pki.dir, 'm4-rogue'));
    const rogue = new ProcessMember(rogueSpec, memberArgs(rogueSpec, initialCluster, o, 'existing'), undefined, false, 'https');
    cleanups.push(() => rogue.kill());
    rogue.start();
    expect(await rogue.waitExit()).not.toBe(0);
    expect(rogue.output.join('\n')).toContain('could not learn the cluster id from any member of --initial-cluster');

    const goodSpec = spec(certs.get('m4')!.peer, join(pki.dir, 'm4'));
    const good = new ProcessMember(goodSpec, memberArgs(goodSpec, initialCluster, o, 'existing'), undefined, false, 'https');
    cleanups.push(() => good.kill());
    good.start();
    await eventually('m4 joins and serves', async () => {
      const r = await etcdctl(['get', 'tls/before-join/0', '--print-value-only', '--consistency=s'], user, [good.clientUrl]);
      return r.code === 0 && r.stdout === '0\n' ? true : undefined;
    }, 30_000, 300);
    // The log behind the first write was compacted long ago: m4 can only have it from a snapshot, sent over TLS.
    const onM4 = new Client({ endpoints: [good.clientUrl], tls: await clientTlsOptions(user) });
    try {
      expect(await onM4.count({ prefix: 'tls/before-join/' }, { serializable: true })).toBe(WRITES_BEFORE_JOIN);
    } finally {
      await onM4.close();
    }
    expect(good.output.some((l) => l.includes('received snapshot from peer'))).toBe(true);
    // Publishing its name and client URLs is a proposal of its own, a moment after it starts serving.
    await eventually('m4 is listed as started', async () => (/started, m4, https:\/\/127\.0\.0\.1:\d+, https:\/\/127\.0\.0\.1:\d+/.test(await ok(['member', 'list'])) ? true : undefined), 10_000, 300);
  }, 90_000);

  it('rotation: new files are served to new connections; an open connection keeps working; peers too', async () => {
    const m1 = cluster.member('m1');
    const old = certs.get('m1')!.client;
    expect(await servedSerial(m1.spec.clientPort)).toBe(old.serial);
    const client = new Client({ endpoints: [m1.clientUrl], tls: await clientTlsOptions(user) });
    try {
      await client.put('tls/rotation', 'before');
      const renewed = await pki.issue(clientCa, 'm1-client-renewed', { certFile: old.certFile, keyFile: old.keyFile });
      await eventually('m1 serves the renewed certificate', async () => ((await servedSerial(m1.spec.clientPort)) === renewed.serial ? true : undefined), 10_000, 200);
      expect(renewed.serial).not.toBe(old.serial);
      // The client's connection was opened before the rotation and is still the one in use.
      expect((await client.get('tls/rotation'))?.value.toString()).toBe('before');
      await client.put('tls/rotation', 'after');
      expect(await ok(['get', 'tls/rotation', '--print-value-only'])).toBe('after\n');
    } finally {
      await client.close();
    }
    // The peer certificate too: m2's peer port serves the new one, and the cluster keeps committing.
    const m2 = cluster.member('m2');
    const oldPeer = certs.get('m2')!.peer;
    const renewedPeer = await pki.issue(peerCa, 'm2-peer-renewed', { certFile: oldPeer.certFile, keyFile: oldPeer.keyFile });
    await eventually('m2 serves the renewed peer certificate', async () => ((await servedSerial(m2.spec.peerPort)) === renewedPeer.serial ? true : undefined), 10_000, 200);
    expect(await ok(['put', 'tls/rotation', 'after peer rotation'])).toBe('OK\n');
    const r = await etcdctl(['get', 'tls/rotation', '--print-value-only'], user, [m2.clientUrl]);
    expect(r.stdout).toBe('after peer rotation\n');
  }, 30_000);

  it('Fulcrum\'s client library and fulcrumctl', async () => {
    const client = new Client({ endpoints, tls: await clientTlsOptions(user) });
    try {
      await client.put('tls/lib', 'from the library');
      expect((await client.get('tls/lib'))?.value.toString()).toBe('from the library');
      expect((await client.memberStatuses()).length).toBeGreaterThanOrEqual(3);
    } finally {
      await client.close();
    }
    const flags = ['--endpoints', endpoints.join(','), '--cacert', clientCa.certFile, '--cert', user.certFile, '--key', user.keyFile];
    expect((await ctl([...flags, 'put', 'tls/ctl', 'from fulcrumctl'])).out).toBe('OK\n');
    expect((await ctl([...flags, 'get', 'tls/lib', '--print-value-only'])).out).toBe('from the library\n');
    const refused = await ctl(['--endpoints', endpoints[0]!, '--cacert', clientCa.certFile, '--dial-timeout', '1s', '--command-timeout', '3s', 'get', 'tls/lib']);
    expect(refused.code).toBe(1);
  }, 30_000);

  it('the etcd3 npm package with TLS credentials', async () => {
    const etcd = new Etcd3({
      hosts: endpoints,
      credentials: { rootCertificate: await readFile(clientCa.certFile), certChain: await readFile(user.certFile), privateKey: await readFile(user.keyFile) },
    });
    try {
      await etcd.put('tls/etcd3').value('from etcd3');
      expect(await etcd.get('tls/etcd3').string()).toBe('from etcd3');
      expect(await etcd.get('tls/ctl').string()).toBe('from fulcrumctl');
    } finally {
      etcd.close();
    }
  }, 30_000);

  it('/health over https: with a client certificate 200, without one the handshake is refused', async () => {
    const get = (cert?: IssuedCert): Promise<{ status: number; body: string }> =>
      (async () => {
        const ca = await readFile(clientCa.certFile);
        const extra = cert === undefined ? {} : { cert: await readFile(cert.certFile), key: await readFile(cert.keyFile) };
        return new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = httpsGet({ host: '127.0.0.1', port: metricsPort, path: '/health', ca, servername: 'localhost', ...extra }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on('error', reject);
        });
      })();
    expect(await get(user)).toEqual({ status: 200, body: expect.stringContaining('"health":"true"') as unknown as string });
    await expect(get()).rejects.toThrow();
  }, 20_000);
});

describe('start-up refuses bad certificate files: one line naming the flag and the file, exit code 2', () => {
  let dir: TestPki;
  let ca: TestCa;
  beforeAll(async () => {
    dir = await TestPki.create();
    ca = await dir.ca('ca');
  }, 30_000);
  afterAll(() => dir.cleanup());

  /** Start `fulcrum` with these flags; its exit code and output (it must exit on its own). */
  async function start(extra: readonly string[]): Promise<{ code: number | null; output: string }> {
    const spec: ProcessMemberSpec = { name: 'bad', clientPort: 3999, peerPort: 3998, dataDir: join(dir.dir, 'bad') };
    const m = new ProcessMember(spec, ['--name', 'bad', '--data-dir', spec.dataDir, '--listen-client-urls', 'https://127.0.0.1:3999', '--listen-peer-urls', 'http://127.0.0.1:3998', ...extra], undefined);
    m.start();
    const code = await m.waitExit();
    return { code, output: m.output.join('\n') };
  }

  it.each([
    ['expired', { notBefore: daysFromNow(-3), notAfter: daysFromNow(-1) }, /^fulcrum: --cert-file \S+expired\.crt: the certificate expired at \d{4}-\d\d-\d\dT[\d:.]+Z$/],
    ['future', { notBefore: daysFromNow(1), notAfter: daysFromNow(3) }, /^fulcrum: --cert-file \S+future\.crt: the certificate is not valid before \d{4}-/],
  ] as const)('%s certificate', async (name, validity, message) => {
    const cert = await dir.issue(ca, name, validity);
    const r = await start(['--cert-file', cert.certFile, '--key-file', cert.keyFile]);
    expect(r).toEqual({ code: 2, output: expect.stringMatching(message) as unknown as string });
  }, 20_000);

  it('a key that does not match, an unreadable file, https without a certificate', async () => {
    const [a, b] = await Promise.all([dir.issue(ca, 'a'), dir.issue(ca, 'b')]);
    expect(await start(['--cert-file', a.certFile, '--key-file', b.keyFile])).toEqual({
      code: 2,
      output: `fulcrum: --key-file ${b.keyFile}: the private key does not match the certificate in --cert-file ${a.certFile}`,
    });
    expect(await start(['--cert-file', a.certFile, '--key-file', a.keyFile, '--trusted-ca-file', '/nonexistent/ca.crt', '--client-cert-auth'])).toEqual({
      code: 2,
      output: 'fulcrum: --trusted-ca-file /nonexistent/ca.crt: cannot read the file (ENOENT)',
    });
    expect(await start([])).toEqual({ code: 2, output: 'fulcrum: --listen-client-urls: "https://127.0.0.1:3999" is https but --cert-file and --key-file are not set' });
  }, 30_000);
});
