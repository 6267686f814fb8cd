// Client-side authentication and the Auth management API, against every server in AUTH_TARGETS (etcd 3.4 and a
// Fulcrum member): the same test bodies run against each; where Fulcrum deliberately differs, per target.
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Credentials } from './auth.js';
import { AuthenticationError, AuthManagementError, Client, PermissionDeniedError, type ClientOptions, type WatchEvent } from './index.js';
import { AUTH_TARGETS, type AuthServer } from './testing/auth-targets.js';
import { failure } from './testing/failure.js';

const ROOT = { username: 'root', password: 'root-secret-1' };
const ALICE = { username: 'alice', password: 'alice-secret-1' };


describe.each(AUTH_TARGETS.map((t) => [t.name, t] as const))('auth against %s', (_name, target) => {
  const clients: Client[] = [];
  let server: AuthServer;
  const client = (o: Partial<ClientOptions> = {}): Client => {
    const c = new Client({ endpoints: [server.endpoint], requestTimeoutMs: 10_000, ...o });
    clients.push(c);
    return c;
  };

  /** AuthStatus where the server has it; etcd 3.4 has not, and says so with NOT_SUPPORTED. */
  const expectAuthEnabled = async (c: Client, enabled: boolean): Promise<void> => {
    if (target.hasAuthStatus) expect((await c.auth.status()).enabled).toBe(enabled);
    else expect((await failure(c.auth.status())).code).toBe('NOT_SUPPORTED');
  };

  beforeAll(async () => {
    if (target.unavailable === undefined) server = await target.start();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server?.close();
  }, 30_000);

  it.skipIf(target.unavailable !== undefined)('manages users, roles and permissions; its mistakes have stable codes', async () => {
    const admin = client();
    await expectAuthEnabled(admin, false);
    await admin.auth.roleAdd('app-rw');
    await admin.auth.roleGrantPermission('app-rw', 'readwrite', { prefix: 'app/' });
    await admin.auth.roleGrantPermission('app-rw', 'read', 'shared');
    await admin.auth.roleGrantPermission('app-rw', 'write', { start: 'z' });
    const perms = (await admin.auth.roleGet('app-rw')).map((p) => ({ kind: p.kind, key: p.key.toString(), rangeEnd: p.rangeEnd.toString('latin1') }));
    expect(perms).toEqual(
      expect.arrayContaining([
        { kind: 'readwrite', key: 'app/', rangeEnd: 'app0' },
        { kind: 'read', key: 'shared', rangeEnd: '' },
        { kind: 'write', key: 'z', rangeEnd: '\0' },
      ]),
    );
    expect(await admin.auth.roleList()).toContain('app-rw');
    await admin.auth.userAdd(ALICE.username, ALICE.password);
    await admin.auth.userGrantRole(ALICE.username, 'app-rw');
    expect(await admin.auth.userGet(ALICE.username)).toEqual(['app-rw']);
    expect(await admin.auth.userList()).toContain(ALICE.username);

    const mistakes: Array<[() => Promise<unknown>, string, string]> = [
      [() => admin.auth.userGet('nobody'), 'USER_NOT_FOUND', 'etcdserver: user name not found'],
      [() => admin.auth.userAdd(ALICE.username, 'x'), 'USER_EXISTS', 'etcdserver: user name already exists'],
      [() => admin.auth.roleAdd('app-rw'), 'ROLE_EXISTS', 'etcdserver: role name already exists'],
      [() => admin.auth.roleGet('no-role'), 'ROLE_NOT_FOUND', 'etcdserver: role name not found'],
      [() => admin.auth.userRevokeRole(ALICE.username, 'no-role'), 'ROLE_NOT_GRANTED', 'etcdserver: role is not granted to the user'],
      [() => admin.auth.roleRevokePermission('app-rw', 'not-granted'), 'PERMISSION_NOT_GRANTED', 'etcdserver: permission is not granted to the role'],
      [() => admin.auth.enable(), 'ROOT_USER_MISSING', 'etcdserver: root user does not exist'],
    ];
    for (const [call, code, message] of mistakes) {
      const e = await failure(call());
      expect([e.code, e.message, e]).toEqual([code, message, expect.any(AuthManagementError)]);
    }
  }, 30_000);

  it.skipIf(target.unavailable !== undefined)('with auth on: the token goes with calls and streams; what the roles do not allow is refused', async () => {
    const admin = client();
    await admin.auth.userAdd(ROOT.username, ROOT.password);
    await admin.auth.userGrantRole(ROOT.username, 'root');
    await admin.auth.enable();
    const root = client({ auth: ROOT });
    await expectAuthEnabled(root, true);

    const alice = client({ auth: ALICE });
    const events: WatchEvent[] = [];
    const watch = alice.watch({ prefix: 'app/' });
    const seen = (async () => {
      for await (const e of watch) {
        events.push(e);
        if (events.length === 2) break;
      }
    })();
    await watch.ready;
    await alice.put('app/x', '1');
    const lease = await alice.grantLease(30);
    await alice.put('app/with-lease', '2', { lease });
    expect((await alice.get('app/x'))?.value.toString()).toBe('1');
    expect(await alice.get('shared')).toBeUndefined();
    await seen;
    expect(events.map((e) => [e.type, e.kv.key.toString()])).toEqual([
      ['put', 'app/x'],
      ['put', 'app/with-lease'],
    ]);
    // A key alice may not read put on her lease by root: TimeToLive with keys would name it.
    await root.put('other/on-alice-lease', 'x', { lease: lease.id });
    expect((await lease.timeToLive()).keys).toEqual([]);
    if (target.leaseKeysUnchecked) {
      expect((await lease.timeToLive({ keys: true })).keys.map((k) => k.toString()).sort()).toEqual(['app/with-lease', 'other/on-alice-lease']);
    } else {
      const e = await failure(lease.timeToLive({ keys: true }));
      expect([e.code, e.message]).toEqual(['PERMISSION_DENIED', 'etcdserver: permission denied']);
    }
    // Revoking would delete that key too, which alice may not: refused on both.
    expect((await failure(lease.revoke())).code).toBe('PERMISSION_DENIED');
    await root.delete('other/on-alice-lease');
    await lease.revoke();

    for (const call of [() => alice.put('other/x', '1'), () => alice.get('other/x'), () => alice.put('shared', '1'), () => alice.delete({ prefix: '' })]) {
      const e = await failure(call());
      expect([e.code, e.message, e]).toEqual(['PERMISSION_DENIED', 'etcdserver: permission denied', expect.any(PermissionDeniedError)]);
    }
    // No credentials at all: etcd answers as for an empty user name.
    const anonymous = client();
    expect((await failure(anonymous.get('app/x'))).message).toBe('etcdserver: user name is empty');
    // etcd 3.4 lets such a caller grant a lease and compact; Fulcrum is stricter there (docs/security.md).
    if (target.anonymousLeaseAndCompact) {
      const anonymousLease = await anonymous.grantLease(30);
      await anonymousLease.revoke();
      await anonymous.compact(1);
    } else {
      for (const call of [() => anonymous.grantLease(30), () => anonymous.compact(1)]) {
        const e = await failure(call());
        expect([e.code, e.message]).toEqual(['INVALID_ARGUMENT', 'etcdserver: user name is empty']);
      }
    }
    // Managing users takes the root role.
    expect((await failure(alice.auth.userList())).code).toBe('PERMISSION_DENIED');
    expect(await root.auth.userList()).toEqual(expect.arrayContaining([ROOT.username, ALICE.username]));
  }, 30_000);

  it.skipIf(target.unavailable !== undefined)('a wrong password fails with AUTH_FAILED, and the password shows nowhere', async () => {
    const wrong = { username: ALICE.username, password: 'not-alice-pw-42' };
    const c = client({ auth: wrong });
    const e = await failure(c.get('app/x'));
    expect([e.code, e.message, e]).toEqual(['AUTH_FAILED', 'etcdserver: authentication failed, invalid user ID or password', expect.any(AuthenticationError)]);
    const creds = Credentials.from(wrong);
    for (const text of [inspect(creds), JSON.stringify(creds), JSON.stringify({ auth: creds }), inspect(e, { depth: 8 }), String(e.stack), Object.keys(creds).join()]) {
      expect(text).not.toContain(wrong.password);
    }
    expect(creds.password).toBe(wrong.password);
  }, 30_000);

  it.skipIf(target.unavailable !== undefined)('a changed password: the old one stops working, the new one works', async () => {
    const root = client({ auth: ROOT });
    const before = client({ auth: ALICE });
    await before.put('app/pw', 'before');
    await root.auth.userChangePassword(ALICE.username, 'alice-secret-2');
    // The server dropped alice's tokens; the client authenticates again with what it has, which is now wrong.
    expect((await failure(before.get('app/pw'))).code).toBe('AUTH_FAILED');
    const after = client({ auth: { username: ALICE.username, password: 'alice-secret-2' } });
    expect((await after.get('app/pw'))?.value.toString()).toBe('before');
  }, 30_000);

  it.skipIf(target.unavailable !== undefined)('auth off again: a client with credentials keeps working (no token is needed)', async () => {
    const root = client({ auth: ROOT });
    await root.auth.disable();
    await expectAuthEnabled(client(), false);
    const fresh = client({ auth: { username: ALICE.username, password: 'alice-secret-2' } });
    await fresh.put('other/x', 'anyone may');
    expect((await client().get('other/x'))?.value.toString()).toBe('anyone may');
  }, 30_000);
});

describe.each(AUTH_TARGETS.map((t) => [t.name, t] as const))('token expiry against %s', (_name, target) => {
  it.skipIf(target.unavailable !== undefined)('an expired token is replaced once, transparently, for unary calls and new streams', async () => {
    const server = await target.start({ tokenTtlSeconds: 1 });
    const admin = new Client({ endpoints: [server.endpoint] });
    const root = new Client({ endpoints: [server.endpoint], auth: ROOT });
    try {
      await admin.auth.userAdd(ROOT.username, ROOT.password);
      await admin.auth.userGrantRole(ROOT.username, 'root');
      await admin.auth.enable();
      await root.put('k', 'v1');
      await new Promise((r) => setTimeout(r, 2_500)); // the token is gone on the server now
      await root.put('k', 'v2');
      await new Promise((r) => setTimeout(r, 2_500));
      const watch = root.watch('k');
      await new Promise((r) => setTimeout(r, 2_500));
      await root.put('k', 'v3');
      for await (const e of watch) {
        expect(e.kv.value.toString()).toBe('v3');
        break;
      }
      expect((await root.get('k'))?.value.toString()).toBe('v3');
    } finally {
      await Promise.all([admin.close(), root.close()]);
      await server.close();
    }
  }, 60_000);
});

describe.each(AUTH_TARGETS.map((t) => [t.name, t] as const))('failed logins against %s', (_name, target) => {
  it.skipIf(target.unavailable !== undefined)('wrong passwords from this address keep neither the right one out nor a call past its deadline', async () => {
    const server = await target.start();
    const clients = [new Client({ endpoints: [server.endpoint] })];
    const make = (o: Partial<ClientOptions>): Client => {
      const c = new Client({ endpoints: [server.endpoint], ...o });
      clients.push(c);
      return c;
    };
    try {
      const admin = clients[0]!;
      await admin.auth.userAdd(ROOT.username, ROOT.password);
      await admin.auth.userGrantRole(ROOT.username, 'root');
      await admin.auth.enable();
      const guesses = Array.from({ length: 8 }, (_, i) => make({ auth: { username: i % 2 === 0 ? ROOT.username : 'nobody', password: `guess-${i}` } }).get('k'));
      for (const e of await Promise.all(guesses.map((g) => failure(g)))) expect(e.code).toBe('AUTH_FAILED');

      // A write whose login takes longer than the whole call may: it ends (Fulcrum holds the login back), not sent.
      const hurried = make({ auth: ROOT, requestTimeoutMs: 500 })
        .put('k', 'hurried')
        .then(
          () => 'written',
          (e: unknown) => e,
        );
      const outcome = await Promise.race([hurried, new Promise((r) => setTimeout(() => r('still waiting after 20 s'), 20_000))]);
      if (target.throttlesLogins) expect(outcome).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('could not authenticate') });
      else expect(outcome).toBe('written');

      // etcdctl's default --command-timeout: the whole call, the login included.
      const root = make({ auth: ROOT, requestTimeoutMs: 5_000 });
      await root.put('k', 'the right password still works');
      expect((await root.get('k'))?.value.toString()).toBe('the right password still works');
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await server.close();
    }
  }, 60_000);
});
