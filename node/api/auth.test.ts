// The Auth service and permission enforcement on real servers (startServer, real gRPC): the whole lifecycle, every
// etcd error with its code and message, txn branches, watches, leases, maintenance, and tokens across members.
import { status } from '@grpc/grpc-js';
import type * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WatchResponse } from '../../proto/index.js';
import { b, failsWith, rpc } from './harness.testutil.js';
import { eventually } from '../testing/eventually.js';
import { startAuthCluster, withToken, type AuthClients, type AuthCluster } from './auth.testutil.js';

const FP = status.FAILED_PRECONDITION;
const IA = status.INVALID_ARGUMENT;

async function login(c: AuthClients, name: string, password: string): Promise<grpc.Metadata> {
  const r = await rpc(c.auth, 'Authenticate', { name, password });
  expect(r.token).toMatch(/^[A-Za-z]{16}\.\d+$/);
  return withToken(r.token);
}

/** The first answer of a watch stream for one create request. */
function firstWatchAnswer(c: AuthClients, md: grpc.Metadata, key: string, rangeEnd: string): Promise<WatchResponse> {
  return new Promise((resolve, reject) => {
    const stream = c.watch.Watch(md);
    stream.on('data', (r: WatchResponse) => {
      resolve(r);
      stream.cancel();
    });
    stream.on('error', (e: grpc.ServiceError) => (e.code === status.CANCELLED ? undefined : reject(e)));
    stream.write({ create_request: { key: b(key), range_end: b(rangeEnd) } });
  });
}

describe('auth on one member', () => {
  let cl: AuthCluster;
  let c: AuthClients;
  let root: grpc.Metadata;
  let alice: grpc.Metadata;

  beforeAll(async () => {
    cl = await startAuthCluster(1, 0, ['--auth-token-ttl', '2']);
    c = cl.clients();
  });
  afterAll(async () => cl?.close());

  it('refuses to enable auth until root exists and holds the root role', async () => {
    expect(await failsWith(rpc(c.auth, 'Authenticate', { name: 'root', password: 'x' }))).toEqual([FP, 'etcdserver: authentication is not enabled']);
    expect(await failsWith(rpc(c.auth, 'AuthEnable', {}))).toEqual([FP, 'etcdserver: root user does not exist']);
    await rpc(c.auth, 'UserAdd', { name: 'root', password: 'rootpw' });
    expect(await failsWith(rpc(c.auth, 'AuthEnable', {}))).toEqual([FP, 'etcdserver: root user does not have root role']);
    await rpc(c.auth, 'RoleAdd', { name: 'root' });
    await rpc(c.auth, 'UserGrantRole', { user: 'root', role: 'root' });
    const before = await rpc(c.auth, 'AuthStatus', {});
    await rpc(c.auth, 'AuthEnable', {});
    const after = await rpc(c.auth, 'AuthStatus', {});
    expect(after.enabled).toBe(true);
    expect(Number(after.authRevision)).toBeGreaterThan(Number(before.authRevision));
  });

  it('refuses calls without a user, with a bad token, and logins with a wrong password', async () => {
    expect(await failsWith(rpc(c.kv, 'Put', { key: b('a'), value: b('1') }))).toEqual([IA, 'etcdserver: user name is empty']);
    expect(await failsWith(rpc(c.kv, 'Range', { key: b('a') }, withToken('nope.1')))).toEqual([status.UNAUTHENTICATED, 'etcdserver: invalid auth token']);
    const failed: [number, string] = [IA, 'etcdserver: authentication failed, invalid user ID or password'];
    expect(await failsWith(rpc(c.auth, 'Authenticate', { name: 'root', password: 'wrong' }))).toEqual(failed);
    expect(await failsWith(rpc(c.auth, 'Authenticate', { name: 'nobody', password: 'x' }))).toEqual(failed);
    root = await login(c, 'root', 'rootpw');
    await rpc(c.kv, 'Put', { key: b('a'), value: b('1') }, root);
  });

  it('grants a prefix through a role and refuses everything else', async () => {
    await rpc(c.auth, 'UserAdd', { name: 'alice', password: 'alicepw' }, root);
    await rpc(c.auth, 'RoleAdd', { name: 'app' }, root);
    await rpc(c.auth, 'RoleGrantPermission', { name: 'app', perm: { permType: 'READWRITE', key: b('app/'), range_end: b('app0') } }, root);
    await rpc(c.auth, 'UserGrantRole', { user: 'alice', role: 'app' }, root);
    alice = await login(c, 'alice', 'alicepw');
    await rpc(c.kv, 'Put', { key: b('app/x'), value: b('1') }, alice);
    expect((await rpc(c.kv, 'Range', { key: b('app/'), range_end: b('app0') }, alice)).kvs.map((kv) => kv.key.toString())).toEqual(['app/x']);
    const denied: [number, string] = [status.PERMISSION_DENIED, 'etcdserver: permission denied'];
    expect(await failsWith(rpc(c.kv, 'Put', { key: b('other'), value: b('1') }, alice))).toEqual(denied);
    expect(await failsWith(rpc(c.kv, 'Range', { key: b('app/'), range_end: b('app1') }, alice))).toEqual(denied); // one key too far
    expect(await failsWith(rpc(c.kv, 'Range', { key: b('a'), range_end: Buffer.from([0]) }, alice))).toEqual(denied);
    expect(await failsWith(rpc(c.kv, 'DeleteRange', { key: b('a') }, alice))).toEqual(denied);
    expect(await failsWith(rpc(c.auth, 'UserList', {}, alice))).toEqual(denied);
    expect(await failsWith(rpc(c.auth, 'AuthDisable', {}, alice))).toEqual(denied);
    expect(await failsWith(rpc(c.auth, 'UserChangePassword', { name: 'alice', password: 'x' }, alice))).toEqual(denied);
    // A user reads its own record and the roles it holds (as etcd 3.4).
    expect((await rpc(c.auth, 'UserGet', { name: 'alice' }, alice)).roles).toEqual(['app']);
    expect((await rpc(c.auth, 'RoleGet', { role: 'app' }, alice)).perm).toEqual([{ permType: 'READWRITE', key: b('app/'), range_end: b('app0') }]);
    expect(await failsWith(rpc(c.auth, 'UserGet', { name: 'root' }, alice))).toEqual(denied);
  });

  it('checks every compare and both branches of a txn, nested ones too', async () => {
    const denied: [number, string] = [status.PERMISSION_DENIED, 'etcdserver: permission denied'];
    const allowedPut = { request_put: { key: b('app/t'), value: b('v') } };
    await rpc(c.kv, 'Txn', { compare: [], success: [allowedPut], failure: [allowedPut] }, alice);
    const elseOnly = { compare: [], success: [allowedPut], failure: [{ request_put: { key: b('secret'), value: b('v') } }] };
    expect(await failsWith(rpc(c.kv, 'Txn', elseOnly, alice))).toEqual(denied);
    const nested = { success: [{ request_txn: { failure: [{ request_range: { key: b('secret') } }] } }] };
    expect(await failsWith(rpc(c.kv, 'Txn', nested, alice))).toEqual(denied);
    const compare = { compare: [{ key: b('secret'), target: 'VERSION' as const, result: 'EQUAL' as const, version: 0 }], success: [allowedPut] };
    expect(await failsWith(rpc(c.kv, 'Txn', compare, alice))).toEqual(denied);
    expect((await rpc(c.kv, 'Range', { key: b('secret') }, root)).kvs).toEqual([]);
  });

  it('refuses a watch on a range the user may not read, with etcd\'s cancel reason', async () => {
    const refused = await firstWatchAnswer(c, alice, 'a', '\0');
    expect(refused).toMatchObject({ created: true, canceled: true, watch_id: '-1', cancel_reason: 'rpc error: code = PermissionDenied desc = etcdserver: permission denied' });
    const ok = await firstWatchAnswer(c, alice, 'app/', 'app0');
    expect(ok).toMatchObject({ created: true, canceled: false });
  });

  it('refuses to revoke a lease whose keys the user may not delete, and admin maintenance to non-root users', async () => {
    const lease = await rpc(c.lease, 'LeaseGrant', { TTL: 60 }, alice);
    await rpc(c.kv, 'Put', { key: b('rootkey'), value: b('v'), lease: lease.ID }, root);
    expect(await failsWith(rpc(c.lease, 'LeaseRevoke', { ID: lease.ID }, alice))).toEqual([status.PERMISSION_DENIED, 'etcdserver: permission denied']);
    await rpc(c.lease, 'LeaseRevoke', { ID: lease.ID }, root);
    expect(await failsWith(rpc(c.maintenance, 'Defragment', {}, alice))).toEqual([status.UNKNOWN, 'auth: permission denied']);
    expect(await failsWith(rpc(c.maintenance, 'HashKV', { revision: 0 }, alice))).toEqual([status.UNKNOWN, 'auth: permission denied']);
    await rpc(c.maintenance, 'Status', {}, alice);
  });

  it('checks the Lock recipe on the keys under <name>/, and cluster administration needs root', async () => {
    const locked = await rpc(c.lock, 'Lock', { name: b('app/lock') }, alice);
    expect(locked.key.toString()).toMatch(/^app\/lock\//);
    await rpc(c.lock, 'Unlock', { key: locked.key }, alice);
    const denied: [number, string] = [status.PERMISSION_DENIED, 'etcdserver: permission denied'];
    expect(await failsWith(rpc(c.lock, 'Lock', { name: b('other') }, alice))).toEqual(denied);
    expect(await failsWith(rpc(c.maintenance, 'Alarm', { action: 'ACTIVATE', alarm: 'NOSPACE' }, alice))).toEqual(denied);
    expect(await failsWith(rpc(c.cluster, 'MemberAdd', { peerURLs: ['http://127.0.0.1:4999'], isLearner: true }, alice))).toEqual(denied);
    await rpc(c.cluster, 'MemberList', {}, alice);
  });

  it('refuses a watch with an unknown token with etcd\'s cancel reason', async () => {
    const refused = await firstWatchAnswer(c, withToken('bogus.1'), 'app/', 'app0');
    expect(refused).toMatchObject({ canceled: true, cancel_reason: 'rpc error: code = Unauthenticated desc = etcdserver: invalid auth token' });
  });

  it('answers management errors with etcd\'s codes and messages', async () => {
    const cases: Array<[() => Promise<unknown>, number, string]> = [
      [() => rpc(c.auth, 'UserAdd', { name: 'alice', password: 'x' }, root), FP, 'etcdserver: user name already exists'],
      [() => rpc(c.auth, 'UserAdd', { name: '', password: 'x' }, root), IA, 'etcdserver: user name is empty'],
      [() => rpc(c.auth, 'RoleAdd', { name: 'app' }, root), FP, 'etcdserver: role name already exists'],
      [() => rpc(c.auth, 'RoleAdd', { name: '' }, root), IA, 'etcdserver: role name is empty'],
      [() => rpc(c.auth, 'UserGet', { name: 'bob' }, root), FP, 'etcdserver: user name not found'],
      [() => rpc(c.auth, 'RoleGet', { role: 'nope' }, root), FP, 'etcdserver: role name not found'],
      [() => rpc(c.auth, 'UserGrantRole', { user: 'alice', role: 'nope' }, root), FP, 'etcdserver: role name not found'],
      [() => rpc(c.auth, 'UserGrantRole', { user: 'bob', role: 'app' }, root), FP, 'etcdserver: user name not found'],
      [() => rpc(c.auth, 'UserRevokeRole', { name: 'alice', role: 'root' }, root), FP, 'etcdserver: role is not granted to the user'],
      [() => rpc(c.auth, 'RoleRevokePermission', { role: 'app', key: b('zz') }, root), FP, 'etcdserver: permission is not granted to the role'],
      [() => rpc(c.auth, 'RoleGrantPermission', { name: 'app' }, root), IA, 'etcdserver: permission not given'],
      [() => rpc(c.auth, 'UserDelete', { name: 'root' }, root), IA, 'etcdserver: invalid auth management'],
      [() => rpc(c.auth, 'UserRevokeRole', { name: 'root', role: 'root' }, root), IA, 'etcdserver: invalid auth management'],
      [() => rpc(c.auth, 'RoleDelete', { role: 'root' }, root), IA, 'etcdserver: invalid auth management'],
    ];
    for (const [call, code, message] of cases) expect(await failsWith(call())).toEqual([code, message]);
  });

  it('makes a revoked permission take effect at once, and a deleted user\'s token invalid', async () => {
    await rpc(c.auth, 'RoleRevokePermission', { role: 'app', key: b('app/'), range_end: b('app0') }, root);
    expect(await failsWith(rpc(c.kv, 'Put', { key: b('app/x'), value: b('2') }, alice))).toEqual([status.PERMISSION_DENIED, 'etcdserver: permission denied']);
    await rpc(c.auth, 'RoleGrantPermission', { name: 'app', perm: { permType: 'READ', key: b('app/'), range_end: b('app0') } }, root);
    await rpc(c.kv, 'Range', { key: b('app/x') }, alice);
    expect(await failsWith(rpc(c.kv, 'Put', { key: b('app/x'), value: b('2') }, alice))).toEqual([status.PERMISSION_DENIED, 'etcdserver: permission denied']);
    await rpc(c.auth, 'UserAdd', { name: 'temp', password: 'tpw' }, root);
    const temp = await login(c, 'temp', 'tpw');
    await rpc(c.auth, 'UserDelete', { name: 'temp' }, root);
    expect(await failsWith(rpc(c.kv, 'Range', { key: b('x') }, temp))).toEqual([status.UNAUTHENTICATED, 'etcdserver: invalid auth token']);
  });

  it('expires an unused token after --auth-token-ttl, and renews a used one', async () => {
    const t = await login(c, 'root', 'rootpw');
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      await rpc(c.kv, 'Range', { key: b('a') }, t); // each use renews the 2 s TTL
    }
    await new Promise((r) => setTimeout(r, 2300));
    expect(await failsWith(rpc(c.kv, 'Range', { key: b('a') }, t))).toEqual([status.UNAUTHENTICATED, 'etcdserver: invalid auth token']);
  });

  it('disables auth (root only), after which calls need no user', async () => {
    root = await login(c, 'root', 'rootpw');
    await rpc(c.auth, 'AuthDisable', {}, root);
    await rpc(c.kv, 'Put', { key: b('open'), value: b('1') });
    expect((await rpc(c.auth, 'AuthStatus', {})).enabled).toBe(false);
  });
});

describe('auth on three members', () => {
  let cl: AuthCluster;
  beforeAll(async () => {
    cl = await startAuthCluster(3, 1);
  });
  afterAll(async () => cl?.close());

  it('authenticates linearizably, and accepts on every member a token issued by another', async () => {
    const leader = cl.servers.findIndex((s) => s.member.isLeader());
    const behind = (leader + 1) % 3;
    // The follower acknowledges appends but does not apply them until released: the leader and the third member
    // still make a quorum, so the auth changes below are acknowledged without it.
    const release = holdApply(cl.servers[behind]!.member.stateMachine);
    const c = cl.clients(leader);
    await rpc(c.auth, 'UserAdd', { name: 'root', password: 'pw' });
    await rpc(c.auth, 'UserGrantRole', { user: 'root', role: 'root' });
    await rpc(c.auth, 'AuthEnable', {});
    // Authenticate there must wait for the acknowledged AuthEnable (etcd's does a ReadIndex first), not answer
    // "authentication is not enabled" from its stale store.
    const pending = login(cl.clients(behind), 'root', 'pw');
    await new Promise((r) => setTimeout(r, 100));
    release();
    const token = await pending;
    // A token issued by a member ahead of this one: the call waits until this member has applied the token's entry
    // (etcd waits for the token's index) instead of refusing it as unknown.
    const third = (leader + 2) % 3;
    const releaseThird = holdApply(cl.servers[third]!.member.stateMachine);
    const fresh = await login(cl.clients(leader), 'root', 'pw');
    const put = rpc(cl.clients(third).kv, 'Put', { key: b('fresh'), value: b('v') }, fresh);
    await new Promise((r) => setTimeout(r, 100));
    releaseThird();
    await put;
    for (let i = 0; i < 3; i++) await rpc(cl.clients(i).kv, 'Put', { key: b(`k${i}`), value: b('v') }, token);
    expect(await failsWith(rpc(cl.clients(2).kv, 'Put', { key: b('k'), value: b('v') }))).toEqual([IA, 'etcdserver: user name is empty']);
  });
});

describe('auth state in snapshots', () => {
  let cl: AuthCluster;
  beforeAll(async () => {
    cl = await startAuthCluster(3, 4, ['--snapshot-count', '20', '--experimental-snapshot-catchup-entries', '5']);
  });
  afterAll(async () => cl?.close());

  it('reaches a member that catches up by snapshot: users, roles, permissions and the enabled flag', async () => {
    const c0 = cl.clients(0);
    await rpc(c0.auth, 'UserAdd', { name: 'root', password: 'pw' });
    await rpc(c0.auth, 'UserGrantRole', { user: 'root', role: 'root' });
    await rpc(c0.auth, 'AuthEnable', {});
    const root = await login(c0, 'root', 'pw');
    await cl.stop(2);
    const behind = cl.servers[2]!.member.status().appliedState;
    // While member 2 is down: a new user with a role, and more writes than the leader keeps in its log.
    await rpc(c0.auth, 'UserAdd', { name: 'bob', password: 'bobpw' }, root);
    await rpc(c0.auth, 'RoleAdd', { name: 'logs' }, root);
    await rpc(c0.auth, 'RoleGrantPermission', { name: 'logs', perm: { permType: 'READ', key: b('logs/'), range_end: b('logs0') } }, root);
    await rpc(c0.auth, 'UserGrantRole', { user: 'bob', role: 'logs' }, root);
    for (let i = 0; i < 60; i++) await rpc(c0.kv, 'Put', { key: b(`logs/${i}`), value: b('v') }, root);
    // Neither live member still holds the entries member 2 lacks: it can only catch up by snapshot.
    await eventually('the live members to compact their logs past member 2', async () =>
      Math.min(...[0, 1].map((i) => cl.servers[i]!.member.wal.storage.firstIndex())) > behind + 1 ? true : undefined,
    );
    const restarted = await cl.start(2);
    const leaderAuth = cl.servers[0]!.member.stateMachine.auth;
    await eventually('member 2 to catch up', async () => (restarted.member.stateMachine.auth.revision === leaderAuth.revision ? true : undefined), 20_000, 50);
    const sm = restarted.member.stateMachine.auth;
    expect([sm.enabled, sm.userNames(), sm.roleNames(), sm.user('bob')!.roles]).toEqual([true, ['bob', 'root'], ['logs'], ['logs']]);
    const c2 = cl.clients(2);
    const bob = await login(c2, 'bob', 'bobpw');
    expect((await rpc(c2.kv, 'Range', { key: b('logs/'), range_end: b('logs0'), count_only: true }, bob)).count).toBe('60');
    expect(await failsWith(rpc(c2.kv, 'Put', { key: b('logs/x'), value: b('v') }, bob))).toEqual([status.PERMISSION_DENIED, 'etcdserver: permission denied']);
  });
});

/** Hold back a member's state machine: apply waits until the returned function is called. */
function holdApply(sm: { apply(commands: readonly never[]): Promise<unknown> }): () => void {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const apply = sm.apply.bind(sm);
  sm.apply = async (commands) => {
    await gate;
    return apply(commands);
  };
  return () => {
    sm.apply = apply;
    open();
  };
}
