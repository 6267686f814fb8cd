// --client-cert-auth end to end: one member started by the CLI (node/cli.ts as a real process) with an https client
// URL, a trusted CA and --client-cert-auth, auth enabled, and clients that present only a client certificate (no
// user name, no password, no token). The certificate's common name is the user: what its roles allow works,
// anything else is `etcdserver: permission denied`; a certificate whose name is no user gets nothing.
// node/api/authz-cert.test.ts checks the same rule in process with the gate built by hand; this one goes through
// the flags. Certificates are made at run time (node/testing/certs.ts). Ports: 7000-7999 on 127.0.0.1.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, PermissionDeniedError, type ClientOptions, type WatchEvent } from '../client/index.js';
import { TestPki, type IssuedCert, type TestCa } from './testing/certs.js';
import { eventually } from './testing/eventually.js';
import { findEtcdctl, runEtcdctl } from './testing/interop-etcdctl.js';
import { freeConsecutivePorts } from './testing/ports.js';
import { ProcessCluster } from './testing/process-cluster.js';
import { failure } from '../client/testing/failure.js';

const haveEtcdctl = findEtcdctl() !== undefined;
const DENIED = 'etcdserver: permission denied';

const freePorts = (count: number): Promise<number[]> => freeConsecutivePorts(count, { first: 7000, size: 1000 }, 2);


describe('--client-cert-auth: a client certificate common name is the user (a real member started by the CLI)', () => {
  let pki: TestPki;
  let ca: TestCa;
  const certs: Record<'root' | 'alice' | 'mallory', IssuedCert> = {} as never;
  let cluster: ProcessCluster | undefined;
  let endpoint: string;
  const clients: Client[] = [];

  /** A client that identifies itself only by the certificate issued for `cn`: no `auth` option, so no token. */
  const clientAs = async (cn: keyof typeof certs, o: Partial<ClientOptions> = {}): Promise<Client> => {
    const tls = { ca: await readFile(ca.certFile), cert: await readFile(certs[cn].certFile), key: await readFile(certs[cn].keyFile) };
    const c = new Client({ endpoints: [endpoint], tls, requestTimeoutMs: 10_000, ...o });
    clients.push(c);
    return c;
  };
  const etcdctl = (cn: keyof typeof certs, args: readonly string[]): ReturnType<typeof runEtcdctl> =>
    runEtcdctl([endpoint], ['--cacert', ca.certFile, '--cert', certs[cn].certFile, '--key', certs[cn].keyFile, ...args], { timeoutMs: 20_000 });

  beforeAll(async () => {
    pki = await TestPki.create();
    ca = await pki.ca('client-ca');
    const server = await pki.issue(ca, 'member');
    for (const cn of ['root', 'alice', 'mallory'] as const) certs[cn] = await pki.issue(ca, `user-${cn}`, { commonName: cn });
    const [clientPort, peerPort] = await freePorts(2);
    cluster = new ProcessCluster({
      members: [
        {
          name: 'c1',
          clientPort: clientPort!,
          peerPort: peerPort!,
          dataDir: join(pki.dir, 'c1'),
          extraArgs: ['--cert-file', server.certFile, '--key-file', server.keyFile, '--trusted-ca-file', ca.certFile, '--client-cert-auth', '--log-level', 'warn'],
        },
      ],
      clientScheme: 'https',
      heartbeatMs: 50,
      electionMs: 500,
    });
    cluster.start();
    const member = cluster.members[0]!;
    endpoint = member.clientUrl;
    const probe = await clientAs('root', { attemptTimeoutMs: 1_000, requestTimeoutMs: 2_000 });
    try {
      await eventually('the member to lead and serve over https', async () => {
        const [s] = await probe.memberStatuses({ timeoutMs: 1_000 });
        return s !== undefined && s.leaderId !== '0' && s.leaderId === s.memberId ? true : undefined;
      }, 60_000, 200);
    } catch (e) {
      throw new Error(`${String(e)}\n${member.output.slice(-10).join('\n')}`);
    }
  }, 90_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cluster?.kill();
    await pki?.cleanup();
  }, 30_000);

  it('with auth enabled, the certificate alone authenticates: allowed operations work, others are refused', async () => {
    // Auth is off: any client with a certificate from the CA may set it up. Users without a password can come
    // in only through a certificate.
    const setup = await clientAs('root');
    await setup.auth.userAdd('root', '', { noPassword: true });
    await setup.auth.userGrantRole('root', 'root');
    await setup.auth.roleAdd('app');
    await setup.auth.roleGrantPermission('app', 'readwrite', { prefix: 'app/' });
    await setup.auth.roleGrantPermission('app', 'read', 'shared');
    await setup.auth.userAdd('alice', '', { noPassword: true });
    await setup.auth.userGrantRole('alice', 'app');
    await setup.auth.enable();

    const root = await clientAs('root');
    expect((await root.auth.status()).enabled).toBe(true);
    await root.put('shared', 'from root'); // root by its certificate: anything goes
    expect(await root.auth.userList()).toEqual(['alice', 'root']);

    const alice = await clientAs('alice');
    const events: WatchEvent[] = [];
    const watch = alice.watch({ prefix: 'app/' });
    const seen = (async () => {
      for await (const e of watch) {
        events.push(e);
        break;
      }
    })();
    await watch.ready;
    await alice.put('app/x', '1');
    expect((await alice.get('app/x'))?.value.toString()).toBe('1');
    expect((await alice.get('shared'))?.value.toString()).toBe('from root');
    const lease = await alice.grantLease(30);
    await alice.put('app/leased', '2', { lease });
    await lease.revoke();
    expect(await alice.auth.userGet('alice')).toEqual(['app']); // its own record
    await seen;
    expect(events.map((e) => [e.type, e.kv.key.toString()])).toEqual([['put', 'app/x']]);

    const refused: Array<[string, () => Promise<unknown>]> = [
      ['put outside its prefix', () => alice.put('other/x', '1')],
      ['get outside its prefix', () => alice.get('other/x')],
      ['write a read-only key', () => alice.put('shared', '1')],
      ['delete every key', () => alice.delete({ prefix: '' })],
      ['list users', () => alice.auth.userList()],
      ['add a user', () => alice.auth.userAdd('eve', 'eve-password')],
    ];
    for (const [what, call] of refused) {
      const e = await failure(call());
      expect([what, e.code, e.message, e]).toEqual([what, 'PERMISSION_DENIED', DENIED, expect.any(PermissionDeniedError)]);
    }
    expect(await alice.get('app/x')).toBeDefined(); // nothing above changed anything
    expect(await root.get('other/x')).toBeUndefined();

    // A certificate from the same CA whose name is no user may connect, but may do nothing.
    const mallory = await clientAs('mallory');
    for (const call of [() => mallory.get('app/x'), () => mallory.put('app/x', 'mine')]) {
      const e = await failure(call());
      expect([e.code, e.message]).toEqual(['PERMISSION_DENIED', DENIED]);
    }
  }, 60_000);

  it.skipIf(!haveEtcdctl)('etcdctl 3.4 with only --cacert/--cert/--key: the same answers', async () => {
    const put = await etcdctl('alice', ['put', 'app/etcdctl', 'v']);
    expect([put.code, put.stdout]).toEqual([0, 'OK\n']);
    const get = await etcdctl('alice', ['get', 'app/etcdctl', '--print-value-only']);
    expect([get.code, get.stdout]).toEqual([0, 'v\n']);
    for (const args of [['put', 'other/etcdctl', 'v'], ['get', 'other/etcdctl'], ['user', 'list']]) {
      const r = await etcdctl('alice', args);
      expect([args.join(' '), r.code, r.stderr.trim().split('\n').at(-1)]).toEqual([args.join(' '), 1, `Error: ${DENIED}`]);
    }
    const rootList = await etcdctl('root', ['user', 'list']);
    expect([rootList.code, rootList.stdout]).toEqual([0, 'alice\nroot\n']);
  }, 60_000);
});
