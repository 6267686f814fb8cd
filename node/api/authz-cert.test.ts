// --client-cert-auth: over mutual TLS, the common name of a verified client certificate stands for the user when a
// call carries no token. A real member and real grpc-js TLS (certificates made by openssl at run time); the server
// wiring from the --client-cert-auth flag is the TLS work's, so the gate is built here with clientCertAuth on.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdApi, type AuthMethods, type KVMethods, type TypedClient } from '../../proto/index.js';
import { AuthGate } from '../auth/index.js';
import { Member } from '../member.js';
import { createAuthService } from './auth.js';
import { freePorts } from './auth.testutil.js';
import { AUTH_GATE_KEY } from './authz.js';
import { API_LIMITS_DEFAULTS, type ApiContext } from './context.js';
import { b, failsWith, rpc } from './harness.testutil.js';
import { createKvService } from './kv.js';

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, a server certificate for 127.0.0.1, and client certificates with the given common names. */
function makePki(dir: string, clients: readonly string[]): void {
  openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=test-ca', '-days', '2');
  const sign = (name: string, cn: string, ext: string): void => {
    openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    execFileSync('sh', ['-c', `printf '%s\\n' '${ext}' > ${name}.ext`], { cwd: dir });
    openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  };
  sign('server', 'fulcrum', 'subjectAltName=IP:127.0.0.1');
  for (const cn of clients) sign(cn, cn, 'extendedKeyUsage=clientAuth');
}

describe('client certificate common name as the user', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-authz-cert-'));
  let member: Member;
  let server: grpc.Server;
  let endpoint: string;
  const made: Array<{ close(): void }> = [];
  const read = (f: string): Buffer => readFileSync(join(dir, f));
  const clientsAs = (cn: string): { kv: TypedClient<KVMethods>; auth: TypedClient<AuthMethods> } => {
    const creds = grpc.credentials.createSsl(read('ca.crt'), read(`${cn}.key`), read(`${cn}.crt`));
    const api = loadEtcdApi();
    const c = { kv: new api.etcdserverpb.KV(endpoint, creds), auth: new api.etcdserverpb.Auth(endpoint, creds) };
    made.push(c.kv, c.auth);
    return c;
  };

  beforeAll(async () => {
    makePki(dir, ['root', 'alice', 'mallory']);
    const [port, peerPort] = await freePorts(2, 3);
    member = await Member.start({
      id: 1,
      dataDir: join(dir, 'data'),
      initialVoters: [1],
      heartbeatMs: 20,
      initialMembers: new Map([[1, { name: 'one', peerUrls: [`http://127.0.0.1:${peerPort}`] }]]),
    });
    const gate = new AuthGate(member, { tokenTtlMs: 60_000, clientCertAuth: true });
    gate.start();
    const ctx: ApiContext = {
      member,
      logger: pino({ level: 'silent' }),
      limits: API_LIMITS_DEFAULTS,
      self: { name: 'one', clientUrls: [], peerUrls: [] },
      registry: new Map([[AUTH_GATE_KEY, gate]]),
    };
    server = new grpc.Server();
    const api = loadEtcdApi();
    server.addService(api.etcdserverpb.KV.service, createKvService(ctx) as unknown as grpc.UntypedServiceImplementation);
    server.addService(api.etcdserverpb.Auth.service, createAuthService(ctx) as unknown as grpc.UntypedServiceImplementation);
    const creds = grpc.ServerCredentials.createSsl(read('ca.crt'), [{ private_key: read('server.key'), cert_chain: read('server.crt') }], true);
    await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, creds, (err) => (err ? reject(err) : resolve())));
    endpoint = `127.0.0.1:${port}`;
  });

  afterAll(async () => {
    for (const c of made) c.close();
    server?.forceShutdown();
    await member?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes the certificate CN as the user when no token is sent', async () => {
    const root = clientsAs('root');
    await rpc(root.auth, 'UserAdd', { name: 'root', options: { no_password: true } });
    await rpc(root.auth, 'UserGrantRole', { user: 'root', role: 'root' });
    await rpc(root.auth, 'UserAdd', { name: 'alice', options: { no_password: true } });
    await rpc(root.auth, 'RoleAdd', { name: 'app' });
    await rpc(root.auth, 'RoleGrantPermission', { name: 'app', perm: { permType: 'READWRITE', key: b('app/'), range_end: b('app0') } });
    await rpc(root.auth, 'UserGrantRole', { user: 'alice', role: 'app' });
    await rpc(root.auth, 'AuthEnable', {});

    await rpc(root.kv, 'Put', { key: b('anything'), value: b('1') }); // root by certificate
    const alice = clientsAs('alice');
    await rpc(alice.kv, 'Put', { key: b('app/x'), value: b('1') });
    expect(await failsWith(rpc(alice.kv, 'Put', { key: b('other'), value: b('1') }))).toEqual([grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied']);
    expect(await failsWith(rpc(alice.auth, 'UserList', {}))).toEqual([grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied']);
    // A certificate for a name that is no user gets nothing; a no-password user cannot log in with a password.
    expect(await failsWith(rpc(clientsAs('mallory').kv, 'Range', { key: b('app/x') }))).toEqual([grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied']);
    expect(await failsWith(rpc(alice.auth, 'Authenticate', { name: 'alice', password: '' }))).toEqual([
      grpc.status.INVALID_ARGUMENT,
      'etcdserver: authentication failed, invalid user ID or password',
    ]);
  });
});
