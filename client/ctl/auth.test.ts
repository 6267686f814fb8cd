// fulcrumctl's --user and its auth, user and role commands, against every server in AUTH_TARGETS (etcd 3.4 and a
// Fulcrum member). Where etcdctl is installed, `role get` and `user get` print what
// etcdctl prints for the same server.
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_TARGETS, type AuthServer } from '../testing/auth-targets.js';
import { findEtcdctl } from '../../node/testing/interop-etcdctl.js';
import { resolveGlobals, UsageError } from './context.js';
import { ctl } from './testing.js';

const haveEtcdctl = findEtcdctl() !== undefined;

function etcdctl(endpoint: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('etcdctl', ['--endpoints', endpoint, ...args], { env: { ...process.env, ETCDCTL_API: '3' } }, (e, stdout, stderr) => (e ? reject(new Error(stderr)) : resolve(stdout))),
  );
}

describe('--user parsing (no server)', () => {
  const base = { dialTimeout: '2s', commandTimeout: '5s', writeOut: 'table' };
  const auth = (flags: Record<string, string>, env: Record<string, string> = {}): unknown => resolveGlobals({ ...base, ...flags }, env).auth;
  const usage = (flags: Record<string, string>, env: Record<string, string> = {}): string => {
    try {
      resolveGlobals({ ...base, ...flags }, env);
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      return (e as Error).message;
    }
    throw new Error('expected a usage error');
  };

  it('splits at the first colon, as etcdctl does; falls back to --password, then $FULCRUM_PASSWORD', () => {
    expect(auth({ user: 'alice:pa:ss' })).toEqual({ username: 'alice', password: 'pa:ss' });
    expect(auth({ user: 'alice:' })).toEqual({ username: 'alice', password: '' });
    expect(auth({ user: 'alice', password: 'pw' })).toEqual({ username: 'alice', password: 'pw' });
    expect(auth({ user: 'alice' }, { FULCRUM_PASSWORD: 'from-env' })).toEqual({ username: 'alice', password: 'from-env' });
    expect(auth({}, { ETCDCTL_USER: 'bob:pw' })).toEqual({ username: 'bob', password: 'pw' });
    expect(auth({})).toBeUndefined();
  });

  it('refuses what it cannot use, without prompting', () => {
    expect(usage({ user: ':pw' })).toBe('--user needs a user name: --user name[:password]');
    expect(usage({ user: 'alice:pw', password: 'other' })).toBe('give the password in --user name:password or in --password, not both');
    expect(usage({ password: 'pw' })).toBe('--password needs --user');
    expect(usage({ user: 'alice' })).toBe('--user alice has no password: use --user alice:<password>, --password or $FULCRUM_PASSWORD');
  });
});

describe.each(AUTH_TARGETS.map((t) => [t.name, t] as const))('fulcrumctl auth against %s', (_name, target) => {
  let server: AuthServer;
  const run = (argv: readonly string[], o: { env?: Record<string, string>; stdin?: string } = {}): ReturnType<typeof ctl> =>
    ctl(['--endpoints', server.endpoint, '--command-timeout', '5s', ...argv], { ...o, env: o.env ?? {} });
  const ok = async (argv: readonly string[], o: { env?: Record<string, string>; stdin?: string } = {}): Promise<string> => {
    const r = await run(argv, o);
    if (r.code !== 0) throw new Error(`fulcrumctl ${argv.join(' ')} exited ${r.code}: ${r.err}`);
    return r.out;
  };

  beforeAll(async () => {
    if (target.unavailable === undefined) server = await target.start();
  }, 60_000);
  afterAll(() => server?.close(), 30_000);

  it.skipIf(target.unavailable !== undefined)('user and role commands speak etcdctl\'s words; -w json and table too', async () => {
    expect(await ok(['-w', 'simple', 'user', 'add', 'root:root-pw'])).toBe('User root created\n');
    expect(await ok(['-w', 'simple', 'user', 'grant-role', 'root', 'root'])).toBe('Role root is granted to user root\n');
    expect(await ok(['-w', 'simple', 'role', 'add', 'app'])).toBe('Role app created\n');
    expect(await ok(['-w', 'simple', 'role', 'grant-permission', 'app', 'readwrite', 'app/', '--prefix'])).toBe('Role app updated\n');
    expect(await ok(['-w', 'simple', 'role', 'grant-permission', 'app', 'read', 'shared'])).toBe('Role app updated\n');
    expect(await ok(['-w', 'simple', 'role', 'grant-permission', 'app', 'write', 'z', '--from-key'])).toBe('Role app updated\n');
    expect(await ok(['-w', 'simple', 'role', 'grant-permission', 'app', 'write', 'a', 'c'])).toBe('Role app updated\n');
    expect(await ok(['-w', 'simple', 'role', 'get', 'app'])).toBe(
      'Role app\nKV Read:\n\t[app/, app0) (prefix app/)\n\tshared\nKV Write:\n\t[a, c)\n\t[app/, app0) (prefix app/)\n\t[z, <open ended>\n',
    );
    expect(await ok(['-w', 'simple', 'user', 'add', 'alice', '--new-user-password', 'alice-pw'])).toBe('User alice created\n');
    expect(await ok(['-w', 'simple', 'user', 'grant-role', 'alice', 'app'])).toBe('Role app is granted to user alice\n');
    expect(await ok(['-w', 'simple', 'user', 'get', 'alice'])).toBe('User: alice\nRoles: app\n');
    expect(await ok(['-w', 'simple', 'user', 'list'])).toBe('alice\nroot\n');
    // The root role is built in; etcd lists it once auth has been enabled.
    expect(await ok(['-w', 'simple', 'role', 'list'])).toBe('app\n');
    expect(JSON.parse(await ok(['-w', 'json', 'user', 'get', 'alice']))).toEqual({ user: 'alice', roles: ['app'] });
    expect(await ok(['user', 'list'])).toMatch(/USER.*\n.*alice.*\n.*root/s);
    expect(JSON.parse(await ok(['-w', 'json', 'role', 'get', 'app'])).permissions).toContainEqual({ kind: 'readwrite', key: 'app/', rangeEnd: 'app0' });
    if (haveEtcdctl) {
      // etcdctl sorts a role's permissions its own way; the lines are the same.
      const theirs = await etcdctl(server.endpoint, ['role', 'get', 'app']);
      const ours = await ok(['-w', 'simple', 'role', 'get', 'app']);
      expect(ours.split('\n').sort()).toEqual(theirs.split('\n').sort());
      expect(await ok(['-w', 'simple', 'user', 'get', 'alice'])).toBe(await etcdctl(server.endpoint, ['user', 'get', 'alice']));
    }
  }, 60_000);

  it.skipIf(target.unavailable !== undefined)('--user: a password inline, from --password or $FULCRUM_PASSWORD; refusals in one line', async () => {
    expect(await ok(['-w', 'simple', 'auth', 'enable'])).toBe('Authentication Enabled\n');
    expect(await ok(['--user', 'root:root-pw', 'put', 'app/k', 'v'])).toBe('OK\n');
    expect(await ok(['--user', 'alice', '--password', 'alice-pw', 'get', 'app/k', '--print-value-only'])).toBe('v\n');
    expect(await ok(['--user', 'alice', 'get', 'app/k', '--print-value-only'], { env: { FULCRUM_PASSWORD: 'alice-pw' } })).toBe('v\n');

    const noPassword = await run(['--user', 'alice', 'get', 'app/k']);
    expect([noPassword.code, noPassword.err]).toEqual([2, 'Error: --user alice has no password: use --user alice:<password>, --password or $FULCRUM_PASSWORD\n']);
    const wrong = await run(['--user', 'alice:not-it', 'get', 'app/k']);
    expect([wrong.code, wrong.err]).toEqual([1, 'Error: etcdserver: authentication failed, invalid user ID or password (AUTH_FAILED)\n']);
    expect(wrong.err).not.toContain('not-it');
    const denied = await run(['--user', 'alice:alice-pw', 'put', 'other/k', 'v']);
    expect([denied.code, denied.err]).toEqual([1, 'Error: etcdserver: permission denied (PERMISSION_DENIED)\n']);
    const anonymous = await run(['get', 'app/k']);
    expect([anonymous.code, anonymous.err]).toEqual([1, 'Error: etcdserver: user name is empty (INVALID_ARGUMENT)\n']);
  }, 60_000);

  it.skipIf(target.unavailable !== undefined)('passwd from stdin; revoke; delete; auth disable', async () => {
    const root = ['--user', 'root:root-pw', '-w', 'simple'];
    expect(await ok([...root, 'user', 'passwd', 'alice'], { stdin: 'alice-pw-2\n' })).toBe('Password updated\n');
    expect((await run(['--user', 'alice:alice-pw', 'get', 'app/k'])).code).toBe(1);
    expect(await ok(['--user', 'alice:alice-pw-2', 'get', 'app/k', '--print-value-only'])).toBe('v\n');
    expect(await ok([...root, 'role', 'revoke-permission', 'app', 'shared'])).toBe('Permission of key shared is revoked from role app\n');
    expect(await ok([...root, 'role', 'revoke-permission', 'app', 'app/', '--prefix'])).toBe('Permission of range [app/, app0) is revoked from role app\n');
    expect(await ok([...root, 'user', 'revoke-role', 'alice', 'app'])).toBe('Role app is revoked from user alice\n');
    const notGranted = await run([...root, 'user', 'revoke-role', 'alice', 'app']);
    expect([notGranted.code, notGranted.err]).toEqual([1, 'Error: etcdserver: role is not granted to the user (ROLE_NOT_GRANTED)\n']);
    expect(await ok([...root, 'role', 'delete', 'app'])).toBe('Role app deleted\n');
    expect(await ok([...root, 'user', 'delete', 'alice'])).toBe('User alice deleted\n');
    const status = await run([...root, 'auth', 'status']);
    // etcdctl 3.5's two lines; the auth revision moves with every change, disabling included.
    const authStatus = /^Authentication Status: (true|false)\nAuthRevision: (\d+)\n$/;
    let revision = 0;
    if (target.hasAuthStatus) {
      expect([status.code, status.out]).toEqual([0, expect.stringMatching(authStatus)]);
      const [, enabled, rev] = authStatus.exec(status.out)!;
      expect(enabled).toBe('true');
      revision = Number(rev);
    } else expect([status.code, status.err]).toEqual([1, 'Error: unknown method AuthStatus for service etcdserverpb.Auth (NOT_SUPPORTED)\n']);
    expect(await ok([...root, 'auth', 'disable'])).toBe('Authentication Disabled\n');
    if (target.hasAuthStatus) expect(await ok(['-w', 'simple', 'auth', 'status'])).toBe(`Authentication Status: false\nAuthRevision: ${revision + 1}\n`);
    expect(await ok(['put', 'other/k', 'anyone'])).toBe('OK\n');
    const usage = await run(['user', 'add', 'bob']);
    expect([usage.code, usage.err]).toEqual([2, 'Error: user add: no password on stdin; give it with --new-user-password\n']);
  }, 60_000);
});
