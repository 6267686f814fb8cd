// etcd's own etcdctl (Go, etcd's generated code) against the KV, Maintenance and Cluster services on a real member:
// the proof that etcd tooling works unchanged. Skipped, with a message, when etcdctl is not installed
// (ETCDCTL_BIN overrides the binary; Debian's etcd-client package provides it).
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idToHex, memberIdFor } from '../ids.js';
import { snapshotImage } from './maintenance.js';
import { b, ETCDCTL, etcdctl, etcdctlAvailable, rpc, startHarness, type EtcdctlResult, type Harness } from './harness.testutil.js';

const haveEtcdctl = etcdctlAvailable();
if (!haveEtcdctl) {
  console.warn(`node/api/etcdctl.test.ts: etcdctl not found (${ETCDCTL}); skipping the etcdctl interoperability tests. Install etcd-client to run them.`);
}

describe.skipIf(!haveEtcdctl)('etcdctl against Fulcrum', () => {
  let h: Harness;
  const run = async (...args: string[]): Promise<string> => {
    const r = await etcdctl(h.endpoint, args);
    if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const fail = async (...args: string[]): Promise<EtcdctlResult> => {
    const r = await etcdctl(h.endpoint, args);
    expect(r.code).not.toBe(0);
    return r;
  };

  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => h.close());

  it('put and get: plain, --prefix, --rev, --limit, --sort-by/--order, --keys-only, --count-only, --print-value-only', async () => {
    expect((await run('put', 'foo', 'bar')).trim()).toBe('OK');
    expect(await run('get', 'foo')).toBe('foo\nbar\n');
    for (const [k, v] of [['dir/b', '2'], ['dir/a', '1'], ['dir/c', '3']]) await run('put', k!, v!);
    const rev = JSON.parse(await run('get', 'dir/a', '-w', 'json')).header.revision as number;
    await run('put', 'dir/a', 'one');
    expect(await run('get', '--prefix', 'dir/')).toBe('dir/a\none\ndir/b\n2\ndir/c\n3\n');
    expect(await run('get', 'dir/a', '--rev', String(rev))).toBe('dir/a\n1\n');
    expect(await run('get', '--prefix', 'dir/', '--limit', '2')).toBe('dir/a\none\ndir/b\n2\n');
    expect(await run('get', '--prefix', 'dir/', '--sort-by', 'MODIFY', '--order', 'DESCEND', '--keys-only')).toBe('dir/a\n\ndir/c\n\ndir/b\n\n');
    expect(await run('get', '--prefix', 'dir/', '--order', 'DESCEND', '--print-value-only')).toBe('3\n2\none\n');
    // --count-only arrived in etcdctl 3.5; 3.4 (Debian's) does not know the flag.
    const counted = await etcdctl(h.endpoint, ['get', '--prefix', 'dir/', '--count-only', '-w', 'json']);
    if (!counted.stderr.includes('unknown flag')) expect(JSON.parse(counted.stdout)).toMatchObject({ count: 3 });
    expect(await run('get', 'dir/', '--from-key', '--keys-only', '--limit', '1')).toBe('dir/a\n\n');
    expect(await run('get', 'foo', '--consistency', 's')).toBe('foo\nbar\n');
  });

  it('del --prev-kv and del --prefix', async () => {
    await run('put', 'gone/1', 'x');
    await run('put', 'gone/2', 'y');
    expect(await run('del', 'gone/1', '--prev-kv')).toBe('1\ngone/1\nx\n');
    expect(await run('del', '--prefix', 'gone/')).toBe('1\n');
  });

  it('txn from stdin: compares, success and failure branches', async () => {
    await run('put', 'tx', 'v');
    const input = 'value("tx") = "v"\nversion("tx") > "0"\n\nput tx w\nget tx\n\nput tx never\n\n';
    const ok = await etcdctl(h.endpoint, ['txn'], input);
    expect([ok.code, ok.stdout]).toEqual([0, 'SUCCESS\n\nOK\n\ntx\nw\n']);
    const no = await etcdctl(h.endpoint, ['txn'], 'value("tx") = "v"\n\nput tx x\n\nget tx\n\n');
    expect([no.code, no.stdout]).toEqual([0, 'FAILURE\n\ntx\nw\n']);
  });

  it('compaction (and --physical); reading below it fails with etcd\'s message', async () => {
    const first = JSON.parse(await run('put', 'cmp', '1', '-w', 'json')).header.revision as number;
    const second = JSON.parse(await run('put', 'cmp', '2', '-w', 'json')).header.revision as number;
    expect(await run('compaction', String(first))).toBe(`compacted revision ${first}\n`);
    expect(await run('compaction', '--physical', String(second))).toBe(`compacted revision ${second}\n`);
    const r = await fail('get', 'cmp', '--rev', String(first));
    expect(r.stderr).toContain('etcdserver: mvcc: required revision has been compacted');
  });

  it('endpoint status and endpoint hashkv -w json', async () => {
    const [st] = JSON.parse(await run('endpoint', 'status', '-w', 'json')) as { Status: Record<string, unknown> }[];
    expect(st!.Status).toMatchObject({ version: expect.stringMatching(/^3\.5\.0/), leader: 1, raftTerm: h.member.term() });
    expect(st!.Status.dbSize as number).toBeGreaterThan(0);
    const [hk] = JSON.parse(await run('endpoint', 'hashkv', '-w', 'json')) as { HashKV: { hash: number; header: { revision: number } } }[];
    const mine = await h.member.stateMachine.mvcc.hashKV(0);
    expect([hk!.HashKV.hash, hk!.HashKV.header.revision]).toEqual([mine.hash, mine.revision]);
    const health = await etcdctl(h.endpoint, ['endpoint', 'health']);
    expect([health.code, `${health.stdout}${health.stderr}`.includes(`${h.endpoint} is healthy`)]).toEqual([0, true]);
  });

  it('alarm list and alarm disarm', async () => {
    expect(await run('alarm', 'list')).toBe('');
    await rpc(h.maintenance, 'Alarm', { action: 'ACTIVATE', memberID: 1, alarm: 'NOSPACE' });
    expect(await run('alarm', 'list')).toBe('memberID:1 alarm:NOSPACE \n');
    expect((await fail('put', 'full', 'x')).stderr).toContain('etcdserver: mvcc: database space exceeded');
    expect(await run('alarm', 'disarm')).toBe('memberID:1 alarm:NOSPACE \n');
    expect(await run('alarm', 'list')).toBe('');
  });

  it('member list, add --learner, update, promote (refused: learner not running), remove', async () => {
    expect(await run('member', 'list')).toBe(`1, started, one, http://127.0.0.1:12380, http://${h.endpoint}, false\n`);
    const url = 'http://127.0.0.1:32380';
    const added = await run('member', 'add', 'newbie', '--learner', '--peer-urls', url);
    // A fresh id, as etcd gives: not the one the URLs would give a founding member.
    const hex = /Member +([0-9a-f]+) added to cluster/.exec(added)?.[1] ?? '';
    expect(hex).not.toBe('');
    expect(hex).not.toBe(idToHex(memberIdFor([url], h.member.options.clusterToken)));
    expect(added).toContain('ETCD_INITIAL_CLUSTER_STATE="existing"');
    expect(await run('member', 'list')).toContain(`${hex}, unstarted, , ${url}, , true`);
    expect(await run('member', 'update', hex, '--peer-urls', 'http://127.0.0.1:32381')).toMatch(new RegExp(`Member +${hex} updated in cluster`));
    const promote = await fail('member', 'promote', hex);
    expect(promote.stderr).toContain('etcdserver: can only promote a learner member which is in sync with leader');
    expect((await fail('member', 'promote', '1')).stderr).toContain('etcdserver: can only promote a learner member');
    expect(await run('member', 'remove', hex)).toMatch(new RegExp(`Member +${hex} removed from cluster`));
    expect((await fail('member', 'remove', hex)).stderr).toContain('etcdserver: member not found');
    // etcdctl checks URL syntax itself; a URL already in use is the server's call.
    expect((await fail('member', 'add', 'dup', '--peer-urls', 'http://127.0.0.1:12380')).stderr).toContain('etcdserver: Peer URLs already exists');
  });

  it('snapshot save writes the image and its SHA-256', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-etcdctl-snap-'));
    try {
      const path = join(dir, 'snap.db');
      expect(await run('snapshot', 'save', path)).toContain(`Snapshot saved at ${path}`);
      const bytes = readFileSync(path);
      expect(bytes.byteLength).toBeGreaterThan(32);
      expect(bytes.byteLength % 512).toBe(32);
      expect(bytes.subarray(bytes.byteLength - 32)).toEqual(createHash('sha256').update(bytes.subarray(0, bytes.byteLength - 32)).digest());
      expect(Buffer.from(snapshotImage(bytes)).includes(b('dir/a'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('defrag', async () => {
    expect(await run('defrag')).toContain(`Finished defragmenting etcd member[${h.endpoint}]`);
  });

  it("move-leader: to itself succeeds as in etcd; to a stranger is etcd's bad leader transferee", async () => {
    expect(await run('move-leader', '1')).toContain('Leadership transferred from 1 to 1');
    expect((await fail('move-leader', 'abcdef')).stderr).toContain('etcdserver: bad leader transferee');
  });
});
