import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfChangeType } from '../raft/types.js';
import { backendReferenceIndex } from '../storage/state-machine.js';
import { Member, type MemberTransport, type TransportHooks } from './member.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const dirs: string[] = [];
const members: Member[] = [];
afterEach(async () => {
  for (const m of members.splice(0)) await m.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function start(dir: string, extra: Partial<Parameters<typeof Member.start>[0]> = {}): Promise<Member> {
  const m = await Member.start({ id: 1, dataDir: dir, initialVoters: [1], heartbeatMs: 20, ...extra });
  members.push(m);
  return m;
}

async function get(m: Member, key: string): Promise<string | undefined> {
  await m.linearizableBarrier();
  const r = await m.stateMachine.mvcc.range({ key: enc(key) });
  return r.kvs[0] === undefined ? undefined : dec(r.kvs[0].value);
}

describe('Member (single voter, on disk)', () => {
  it('starts as leader at once, applies writes, and keeps them across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-member-'));
    dirs.push(dir);
    let m = await start(dir);
    expect(m.status().softState.role).toBe('leader');
    const r1 = await m.propose({ put: { key: enc('a'), value: enc('1') } });
    const r2 = await m.propose({ put: { key: enc('a'), value: enc('2') } });
    expect([r1.revision, r2.revision]).toEqual([2, 3]);
    expect(await get(m, 'a')).toBe('2');
    await m.close();
    members.length = 0;
    m = await start(dir);
    expect(await get(m, 'a')).toBe('2');
    const r3 = await m.propose({ put: { key: enc('b'), value: enc('x') } });
    expect(r3.revision).toBe(4); // revisions continue, never repeat
  });

  it('snapshots and compacts its WAL, and restarts from the snapshot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-member-'));
    dirs.push(dir);
    let m = await start(dir, { snapshotCount: 50, snapshotCatchUpEntries: 10 });
    for (let i = 0; i < 180; i++) await m.propose({ put: { key: enc(`k${i % 20}`), value: enc(`v${i}`) } });
    expect(m.wal.storage.firstIndex()).toBeGreaterThan(100); // compacted behind a snapshot
    const snaps = await m.wal.snapshots.list();
    expect(snaps.length).toBeGreaterThan(0);
    // Each snapshot holds only a reference to the backend, which is durable past it: no image is copied.
    for (const info of snaps) {
      const chunks: Uint8Array[] = [];
      for await (const c of (await m.wal.snapshots.reader(info)).chunks()) chunks.push(c);
      expect(backendReferenceIndex(Buffer.concat(chunks))).toBeGreaterThanOrEqual(info.index);
    }
    await m.close();
    members.length = 0;
    m = await start(dir, { snapshotCount: 50, snapshotCatchUpEntries: 10 });
    expect(await get(m, 'k19')).toBe('v179');
    expect(m.stateMachine.revision).toBe(181);
  });

  it('refuses to start when its backend lost the state a snapshot refers to', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-member-'));
    dirs.push(dir);
    const m = await start(dir, { snapshotCount: 50, snapshotCatchUpEntries: 10 });
    for (let i = 0; i < 120; i++) await m.propose({ put: { key: enc(`k${i % 20}`), value: enc(`v${i}`) } });
    expect(m.wal.storage.firstIndex()).toBeGreaterThan(50);
    await m.close();
    members.length = 0;
    rmSync(join(dir, 'kv'), { recursive: true }); // the state machine's LevelDB, gone
    await expect(start(dir)).rejects.toThrow(/whose state lives in this member's own backend: the backend lost synced writes/);
  });

  it('refuses a request larger than --max-request-bytes with etcd\'s message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-member-'));
    dirs.push(dir);
    const m = await start(dir, { maxRequestBytes: 1024 });
    await expect(m.propose({ put: { key: enc('big'), value: new Uint8Array(2048) } })).rejects.toThrow('etcdserver: request is too large');
    expect((await m.propose({ put: { key: enc('small'), value: enc('ok') } })).revision).toBe(2);
  });

  it('records membership changes with names and URLs in the replicated registry', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-member-'));
    dirs.push(dir);
    const m = await start(dir, { initialMembers: new Map([[1, { name: 'one', peerUrls: ['http://127.0.0.1:2380'] }]]) });
    await m.publishAttributes('one', ['http://127.0.0.1:2379']);
    expect(m.members()).toEqual([{ id: 1, name: 'one', peerUrls: ['http://127.0.0.1:2380'], clientUrls: ['http://127.0.0.1:2379'], isLearner: false }]);
    const cs = await m.changeMembership(ConfChangeType.AddLearner, 77, { peerUrls: ['http://127.0.0.1:3380'] });
    expect(cs).toEqual({ voters: [1], learners: [77] });
    expect(m.members().find((x) => x.id === 77)).toMatchObject({ isLearner: true, peerUrls: ['http://127.0.0.1:3380'] });
    await expect(m.changeMembership(ConfChangeType.AddLearner, 77)).rejects.toThrow('etcdserver: member ID already exist');
    await m.changeMembership(ConfChangeType.RemoveNode, 77);
    expect(m.members().map((x) => x.id)).toEqual([1]);
    await expect(m.changeMembership(ConfChangeType.RemoveNode, 12345)).rejects.toThrow('etcdserver: member not found');
  });

  it('tells its transport how far it has applied the log, as it goes (peers weigh a removal against it)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-member-'));
    dirs.push(dir);
    let hooks: TransportHooks | undefined;
    const transport: MemberTransport = { start: (h) => void (hooks = h), send: () => {}, close: async () => {} };
    const m = await start(dir, { transport });
    const appliedIndex = hooks?.appliedIndex;
    if (appliedIndex === undefined) throw new Error('the member gave its transport no appliedIndex hook');
    const before = appliedIndex();
    expect(before).toBe(m.status().applied);
    for (let i = 0; i < 3; i++) await m.propose({ put: { key: enc(`k${i}`), value: enc('v') } });
    // Each put is an entry applied before its proposer is answered (the new leader's own entries come on top):
    // the hook reads the live figure, not a copy taken at start.
    expect(appliedIndex()).toBeGreaterThanOrEqual(before + 3);
    expect(appliedIndex()).toBe(m.status().applied);
  });

  it('a membership change dropped for want of a leader fails at once and leaves no timer to reject later', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-member-'));
    dirs.push(dir);
    // Voter 2 never starts: no leader can be elected, so the conf change is dropped when proposed.
    const m = await start(dir, { initialVoters: [1, 2], confChangeTimeoutMs: 50 });
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      await expect(m.changeMembership(ConfChangeType.AddLearner, 77, { peerUrls: ['http://127.0.0.1:3380'] })).rejects.toMatchObject({ code: 'NO_LEADER' });
      await new Promise((r) => setTimeout(r, 300)); // well past the 50 ms timeout that used to stay armed
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
