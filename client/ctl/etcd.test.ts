// fulcrumctl against a real etcd (3.4, when installed): everything that is plain etcd v3 works the same, and what
// only Fulcrum has (reads "as of" a time) fails in one clear line instead of misbehaving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctl, type CtlEtcd, type CtlResult, haveEtcd, startCtl, startCtlEtcd } from './testing.js';

let etcd: CtlEtcd;
let env: Record<string, string>;

describe.skipIf(!haveEtcd)('fulcrumctl against etcd', () => {
  beforeAll(async () => {
    etcd = await startCtlEtcd();
    env = { ETCDCTL_ENDPOINTS: etcd.endpoint };
  });
  afterAll(async () => {
    await etcd?.close();
  });

  const run = (...argv: string[]): Promise<CtlResult> => ctl(argv, { env });

  it('puts, gets (no HLC time from etcd), runs a txn, and watches', async () => {
    expect((await run('put', 'e/k', 'v1')).out).toBe('OK\n');
    const got = JSON.parse((await run('get', 'e/k', '-w', 'json')).out) as { kvs: Array<{ value: string; modTime: string | null }> };
    expect(got.kvs[0]).toMatchObject({ value: 'v1', modTime: null });
    const w = startCtl(['watch', 'e/', '--prefix', '-w', 'simple'], { env });
    await w.waitFor(/watching/);
    const t = await run('txn', '--if', 'value("e/k") = "v1"', '--then', 'put e/k v2', '-w', 'simple');
    expect(t.out).toBe('SUCCESS\nOK\n');
    await w.waitFor(/v2/);
    expect((await w.interrupt()).out).toBe('PUT\ne/k\nv2\n');
  });

  it('grants and revokes leases, lists members and endpoint status, takes a lock', async () => {
    const lease = (await run('lease', 'grant', '30', '-w', 'simple')).out.trim();
    expect((await run('put', 'e/l', 'x', '--lease', lease)).code).toBe(0);
    expect((await run('lease', 'timetolive', lease, '--keys')).out).toMatch(/attached keys\(\[e\/l\]\)/);
    expect((await run('lease', 'revoke', lease)).code).toBe(0);
    const members = JSON.parse((await run('member', 'list', '-w', 'json')).out) as { members: Array<{ name: string }> };
    expect(members.members.map((m) => m.name)).toEqual(['e1']);
    const status = JSON.parse((await run('endpoint', 'status', '-w', 'json')).out) as { endpoints: Array<{ version: string; isLeader: boolean }> };
    expect(status.endpoints[0]).toMatchObject({ version: expect.stringMatching(/^3\.4\./), isLeader: true });
    const r = await run('lock', 'e/lock', '--', process.execPath, '-e', 'console.log(process.env.FULCRUM_LOCK_TOKEN)');
    expect(r.code).toBe(0);
    expect(Number(r.out.trim())).toBeGreaterThan(0);
  });

  it('says NOT_SUPPORTED for a read "as of" a time', async () => {
    const r = await run('get', 'e/k', '--at', new Date().toISOString());
    expect([r.code, r.out]).toEqual([1, '']);
    expect(r.err).toMatch(/^Error: --at needs Fulcrum's hybrid-clock reads, which this member does not serve \(.*\) \(NOT_SUPPORTED\)\n$/);
  });
});
