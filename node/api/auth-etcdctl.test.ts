// etcd's own etcdctl (3.4) and the etcd3 npm client against Fulcrum's auth: users, roles, prefix permissions,
// enabling (etcdctl adds the root role itself when told "root user does not have root role"), allowed and refused
// calls with etcd's messages, and disabling. Skipped, with a message, when etcdctl is not installed.
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETCDCTL, etcdctl, etcdctlAvailable, type EtcdctlResult } from './harness.testutil.js';
import { startAuthCluster, type AuthCluster } from './auth.testutil.js';

const haveEtcdctl = etcdctlAvailable();
if (!haveEtcdctl) console.warn(`node/api/auth-etcdctl.test.ts: etcdctl not found (${ETCDCTL}); skipping the etcdctl auth tests.`);

describe.skipIf(!haveEtcdctl)('etcdctl auth against Fulcrum', () => {
  let cl: AuthCluster;
  let endpoint: string;
  const run = async (...args: string[]): Promise<string> => {
    const r = await etcdctl(endpoint, args);
    if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const fail = async (...args: string[]): Promise<EtcdctlResult> => {
    const r = await etcdctl(endpoint, args);
    expect(r.code).not.toBe(0);
    return r;
  };

  beforeAll(async () => {
    cl = await startAuthCluster(1, 2);
    endpoint = cl.endpoints[0]!;
  });
  afterAll(async () => cl?.close());

  it('sets up users, roles and a prefix permission, then enables auth', async () => {
    expect(await fail('auth', 'enable')).toMatchObject({ stderr: expect.stringContaining('Error: etcdserver: root user does not exist') });
    expect(await run('user', 'add', 'root:rootpw')).toBe('User root created\n');
    expect(await run('user', 'add', 'alice:alicepw')).toBe('User alice created\n');
    expect(await run('role', 'add', 'app')).toBe('Role app created\n');
    expect(await run('role', 'grant-permission', '--prefix', 'app', 'readwrite', 'app/')).toBe('Role app updated\n');
    expect(await run('user', 'grant-role', 'alice', 'app')).toBe('Role app is granted to user alice\n');
    expect(await run('auth', 'enable')).toBe('Authentication Enabled\n');
  });

  it('lets alice use her prefix and refuses the rest with etcd\'s messages', async () => {
    expect(await run('--user', 'alice:alicepw', 'put', 'app/x', '1')).toBe('OK\n');
    expect(await run('--user', 'alice:alicepw', 'get', 'app/x')).toBe('app/x\n1\n');
    expect((await fail('--user', 'alice:alicepw', 'put', 'other', '1')).stderr).toContain('Error: etcdserver: permission denied');
    expect((await fail('--user', 'alice:alicepw', 'get', '', '--from-key')).stderr).toContain('Error: etcdserver: permission denied');
    expect((await fail('--user', 'alice:alicepw', 'user', 'list')).stderr).toContain('Error: etcdserver: permission denied');
    expect((await fail('--user', 'alice:alicepw', 'snapshot', 'save', '/dev/null')).stderr).toContain('auth: permission denied');
    expect((await fail('put', 'app/x', '2')).stderr).toContain('Error: etcdserver: user name is empty');
    expect((await fail('--user', 'alice:wrong', 'get', 'app/x')).stderr).toContain('Error: etcdserver: authentication failed, invalid user ID or password');
    const watch = await etcdctl(endpoint, ['--user', 'alice:alicepw', 'watch', 'other']);
    expect(watch.stdout + watch.stderr).toContain('etcdserver: permission denied');
  });

  it('shows users and roles to root as etcd does', async () => {
    expect(await run('--user', 'root:rootpw', 'user', 'list')).toBe('alice\nroot\n');
    expect(await run('--user', 'root:rootpw', 'role', 'list')).toBe('app\nroot\n');
    expect(await run('--user', 'root:rootpw', 'user', 'get', 'alice')).toBe('User: alice\nRoles: app\n');
    expect(await run('--user', 'root:rootpw', 'role', 'get', 'app')).toBe('Role app\nKV Read:\n\t[app/, app0) (prefix app/)\nKV Write:\n\t[app/, app0) (prefix app/)\n');
    expect((await fail('--user', 'root:rootpw', 'user', 'delete', 'root')).stderr).toContain('Error: etcdserver: invalid auth management');
    expect((await fail('--user', 'root:rootpw', 'role', 'revoke-permission', 'app', 'zz')).stderr).toContain('Error: etcdserver: permission is not granted to the role');
  });

  it('works with the etcd3 npm client and its credentials', async () => {
    const alice = new Etcd3({ hosts: endpoint, auth: { username: 'alice', password: 'alicepw' } });
    try {
      await alice.put('app/npm').value('v');
      expect(await alice.get('app/npm').string()).toBe('v');
      await expect(alice.put('elsewhere').value('v')).rejects.toThrow(/permission denied/);
    } finally {
      alice.close();
    }
    const wrong = new Etcd3({ hosts: endpoint, auth: { username: 'alice', password: 'nope' } });
    try {
      await expect(wrong.get('app/npm').string()).rejects.toThrow(/authentication failed/);
    } finally {
      wrong.close();
    }
  });

  it('disables auth as root; then no user is needed', async () => {
    expect((await fail('--user', 'alice:alicepw', 'auth', 'disable')).stderr).toContain('Error: etcdserver: permission denied');
    expect(await run('--user', 'root:rootpw', 'auth', 'disable')).toBe('Authentication Disabled\n');
    expect(await run('put', 'other', '1')).toBe('OK\n');
  });
});
