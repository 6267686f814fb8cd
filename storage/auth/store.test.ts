// The auth store as the state machine applies it: determinism across members, snapshot images, etcd's rules for
// root and enabling, and the apply-time check that a permission revoked between the API check and the apply
// cannot be used.
import { describe, expect, it } from 'vitest';
import { MemoryBackend, type Backend } from '../backend.js';
import { encodeCommand, type Command, type Op } from '../command.js';
import { installStateMachineImage, StateMachine, stateMachineImage, type AppliedCommand, type CommandResult } from '../state-machine.js';
import { hashPassword, SCRYPT_IN_FLIGHT_MAX, SCRYPT_QUEUE_MAX, verifyPassword } from './password.js';
import type { CommandAuth } from './ops.js';
import { AUTH_NAME_BYTES_MAX, PERMISSION_KEY_BYTES_MAX } from './store.js';

const b = (s: string): Uint8Array => Buffer.from(s);

class Log {
  private index = 0;
  private hlc = 1_000_000n << 16n;
  entry(op: Op, extra: Partial<Command> = {}): AppliedCommand {
    this.hlc += 1n << 16n;
    return { index: ++this.index, term: 1, payload: encodeCommand({ hlc: this.hlc, op, ...extra }) };
  }
}

async function dump(backend: Backend): Promise<string[]> {
  const out: string[] = [];
  for await (const [k, v] of backend.iterate({ gte: new Uint8Array(0), lt: undefined })) out.push(`${Buffer.from(k).toString('hex')}=${Buffer.from(v).toString('hex')}`);
  return out;
}

/** Enable auth with root, and give alice READWRITE on app/. Fixed hashes: apply must not hash anything itself. */
function setup(log: Log): AppliedCommand[] {
  return [
    log.entry({ userAdd: { name: 'root', passwordHash: 'scrypt$16384$8$1$c2FsdA==$aGFzaA==', noPassword: false } }),
    log.entry({ userGrantRole: { user: 'root', role: 'root' } }),
    log.entry({ userAdd: { name: 'alice', passwordHash: 'scrypt$16384$8$1$c2FsdDI=$aGFzaDI=', noPassword: false } }),
    log.entry({ roleAdd: { name: 'app' } }),
    log.entry({ roleGrantPermission: { name: 'app', perm: { type: 'READWRITE', key: b('app/'), rangeEnd: b('app0') } } }),
    log.entry({ userGrantRole: { user: 'alice', role: 'app' } }),
    log.entry({ authEnable: {} }),
  ];
}

const errorOf = (r: CommandResult | undefined): string | undefined => r?.error?.message;

describe('AuthStore applied from the log', () => {
  it('reaches byte-identical state on two members applying the same log, and survives a snapshot image', async () => {
    const log = new Log();
    const entries = [...setup(log), log.entry({ userRevokeRole: { name: 'alice', role: 'app' } }), log.entry({ roleAdd: { name: 'ops' } })];
    const [ba, bb] = [new MemoryBackend(), new MemoryBackend()];
    const [a, bm] = [await StateMachine.open(ba), await StateMachine.open(bb)];
    await a.apply(entries.slice(0, 3));
    await a.apply(entries.slice(3));
    for (const e of entries) await bm.apply([e]); // other batching, same log
    await Promise.all([a.settled(), bm.settled()]); // applied batches reach the backend behind apply
    expect((await dump(ba)).length).toBeGreaterThan(0);
    expect(await dump(ba)).toEqual(await dump(bb));
    expect(a.auth.revision).toBe(bm.auth.revision);

    const restored = new MemoryBackend();
    await installStateMachineImage(restored, stateMachineImage(ba));
    const c = await StateMachine.open(restored);
    expect(c.auth.enabled).toBe(true);
    expect(c.auth.revision).toBe(a.auth.revision);
    expect(c.auth.userNames()).toEqual(['alice', 'root']);
    expect(c.auth.roleNames()).toEqual(['app', 'ops']);
    expect(c.auth.user('alice')).toEqual(a.auth.user('alice'));
    expect(c.auth.role('app')!.perms.map((p) => [p.type, Buffer.from(p.key).toString(), Buffer.from(p.rangeEnd).toString()])).toEqual([['READWRITE', 'app/', 'app0']]);
  });

  it('enables auth only with a root user holding the root role, and guards root while enabled', async () => {
    const log = new Log();
    const sm = await StateMachine.open(new MemoryBackend());
    expect(errorOf((await sm.apply([log.entry({ authEnable: {} })]))[0])).toBe('etcdserver: root user does not exist');
    await sm.apply([log.entry({ userAdd: { name: 'root', passwordHash: 'x', noPassword: false } })]);
    expect(errorOf((await sm.apply([log.entry({ authEnable: {} })]))[0])).toBe('etcdserver: root user does not have root role');
    await sm.apply([log.entry({ userGrantRole: { user: 'root', role: 'root' } }), log.entry({ authEnable: {} })]);
    expect(sm.auth.enabled).toBe(true);
    const root: CommandAuth = { user: 'root', revision: sm.auth.revision };
    const refused = await sm.apply([
      log.entry({ userDelete: { name: 'root' } }, { auth: root }),
      log.entry({ userRevokeRole: { name: 'root', role: 'root' } }, { auth: root }),
      log.entry({ roleDelete: { role: 'root' } }, { auth: root }),
    ]);
    expect(refused.map(errorOf)).toEqual(Array(3).fill('etcdserver: invalid auth management'));
  });

  it('refuses at apply a write checked before a permission was revoked (revision of auth store is old)', async () => {
    const log = new Log();
    const sm = await StateMachine.open(new MemoryBackend());
    await sm.apply(setup(log));
    const checkedAt: CommandAuth = { user: 'alice', revision: sm.auth.revision }; // the API allowed app/x here
    const rootNow: CommandAuth = { user: 'root', revision: sm.auth.revision };
    const [revoke, write] = await sm.apply([
      log.entry({ roleRevokePermission: { role: 'app', key: b('app/'), rangeEnd: b('app0') } }, { auth: rootNow }),
      log.entry({ put: { key: b('app/x'), value: b('1') } }, { auth: checkedAt }),
    ]);
    expect(revoke!.error).toBeUndefined();
    expect(write!.error).toEqual({ code: 'AUTH_OLD_REVISION', message: 'etcdserver: revision of auth store is old' });
    // Checked again at the new revision, the put is refused for what it is.
    const [again] = await sm.apply([log.entry({ put: { key: b('app/x'), value: b('1') } }, { auth: { user: 'alice', revision: sm.auth.revision } })]);
    expect(again!.error).toEqual({ code: 'PERMISSION_DENIED', message: 'etcdserver: permission denied' });
    expect((await sm.mvcc.range({ key: b('app/x') })).kvs).toEqual([]);
  });

  it('refuses a client write checked while auth was off once auth is on, but not the members\' own commands', async () => {
    const log = new Log();
    const sm = await StateMachine.open(new MemoryBackend());
    const before: CommandAuth = { user: '', revision: sm.auth.revision };
    const results = await sm.apply([
      ...setup(log),
      log.entry({ put: { key: b('k'), value: b('v') } }, { auth: before }),
      log.entry({ leaseGrant: { id: 5n, ttlSeconds: 10 } }), // e.g. a session lease the Lock service grants
    ]);
    expect(results.at(-2)!.error?.message).toBe('etcdserver: user name is empty');
    expect(results.at(-1)!.error).toBeUndefined();
  });

  it('checks a txn at apply: a forbidden key in the branch not taken still refuses it', async () => {
    const log = new Log();
    const sm = await StateMachine.open(new MemoryBackend());
    await sm.apply(setup(log));
    const alice: CommandAuth = { user: 'alice', revision: sm.auth.revision };
    const [r] = await sm.apply([
      log.entry({ txn: { success: [{ requestPut: { key: b('app/a'), value: b('1') } }], failure: [{ requestPut: { key: b('secret'), value: b('1') } }] } }, { auth: alice }),
    ]);
    expect(r!.error?.message).toBe('etcdserver: permission denied');
  });

  it('hands out tokens only while enabled, and only for existing users at the checked revision', async () => {
    const log = new Log();
    const sm = await StateMachine.open(new MemoryBackend());
    expect(errorOf((await sm.apply([log.entry({ authenticate: { name: 'root', nonce: 'n', revision: 0 } })]))[0])).toBe('etcdserver: authentication is not enabled');
    await sm.apply(setup(log));
    const rev = sm.auth.revision;
    const [ok, unknown, stale] = await sm.apply([
      log.entry({ authenticate: { name: 'alice', nonce: 'abc', revision: rev } }),
      log.entry({ authenticate: { name: 'bob', nonce: 'abc', revision: rev } }),
      log.entry({ authenticate: { name: 'alice', nonce: 'abc', revision: rev - 1 } }),
    ]);
    expect(ok!.response).toEqual({ name: 'alice', token: `abc.${ok!.index}` });
    expect(errorOf(unknown)).toBe('etcdserver: authentication failed, invalid user ID or password');
    expect(errorOf(stale)).toBe('etcdserver: revision of auth store is old');
  });
});

describe('AuthStore limits', () => {
  it('refuses over-long names and permission keys the same way on every member', async () => {
    const log = new Log();
    const sm = await StateMachine.open(new MemoryBackend());
    const long = 'x'.repeat(AUTH_NAME_BYTES_MAX + 1);
    const [user, role, , perm] = await sm.apply([
      log.entry({ userAdd: { name: long, passwordHash: 'h', noPassword: false } }),
      log.entry({ roleAdd: { name: long } }),
      log.entry({ roleAdd: { name: 'r' } }),
      log.entry({ roleGrantPermission: { name: 'r', perm: { type: 'READ', key: new Uint8Array(PERMISSION_KEY_BYTES_MAX + 1), rangeEnd: new Uint8Array(0) } } }),
    ]);
    for (const r of [user, role, perm]) expect(r!.error?.code).toBe('AUTH_LIMIT');
    expect(sm.auth.userNames()).toEqual([]);
    expect(sm.auth.role('r')!.perms).toEqual([]);
  });
});

describe('password hashes', () => {
  it('verify the right password only, and never store it', async () => {
    const h = await hashPassword('s3cret');
    expect(h).not.toContain('s3cret');
    expect(h.startsWith('scrypt$16384$8$1$')).toBe(true);
    expect(await verifyPassword('s3cret', h)).toBe(true);
    expect(await verifyPassword('s3cret!', h)).toBe(false);
    expect(await verifyPassword('s3cret', 'scrypt$99999999$8$1$AA==$AA==')).toBe(false); // hostile cost: refused
    expect(await hashPassword('s3cret')).not.toBe(h); // a fresh salt each time
  });

  it('run at most SCRYPT_IN_FLIGHT_MAX at once with a bounded queue; beyond it: too many requests', async () => {
    // A deliberately cheap stored hash (N=2) so that 300 checks take milliseconds.
    const cheap = `scrypt$2$1$1$${Buffer.alloc(16).toString('base64')}$${Buffer.alloc(32).toString('base64')}`;
    const results = await Promise.allSettled(Array.from({ length: 300 }, () => verifyPassword('x', cheap)));
    const refused = results.filter((r) => r.status === 'rejected');
    expect(refused).toHaveLength(300 - SCRYPT_IN_FLIGHT_MAX - SCRYPT_QUEUE_MAX);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'TOO_MANY_REQUESTS', message: 'etcdserver: too many requests' });
    expect(await verifyPassword('x', cheap)).toBe(false); // the slots were all given back
  });
});
