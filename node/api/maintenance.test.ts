// The Maintenance service against a real single-voter Member: Status, Hash, HashKV, Alarm, Snapshot (the stream's
// bytes load back into an empty backend), Defragment, MoveLeader and its etcd errors.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SnapshotResponse } from '../../proto/index.js';
import { LevelBackend } from '../../storage/backend.js';
import { installStateMachineImage, StateMachine } from '../../storage/state-machine.js';
import { b, failsWith, metadata, rpc, startHarness, type Harness } from './harness.testutil.js';
import { snapshotImage, STATUS_VERSION } from './maintenance.js';

describe('Maintenance service', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
    for (let i = 0; i < 20; i++) await rpc(h.kv, 'Put', { key: b(`m/${i}`), value: b(`value-${i}`) });
  });
  afterAll(async () => h.close());

  it('Status: version, db size, leader, raft index/term/applied, learner flag, no errors', async () => {
    const s = await rpc(h.maintenance, 'Status', {});
    expect(s.version).toBe(STATUS_VERSION);
    expect(s.version.startsWith('3.5.0')).toBe(true);
    expect(Number(s.dbSize)).toBeGreaterThan(0);
    expect(s.leader).toBe('1');
    expect(s.header!.member_id).toBe('1');
    const st = h.member.status();
    expect(Number(s.raftIndex)).toBeGreaterThanOrEqual(st.appliedState);
    expect(Number(s.raftAppliedIndex)).toBeGreaterThan(0);
    expect(s.raftTerm).toBe(String(h.member.term()));
    expect([s.isLearner, s.errors]).toEqual([false, []]);
  });

  it('Hash and HashKV agree with the store, HashKV at a revision and its errors', async () => {
    const hash = await rpc(h.maintenance, 'Hash', {});
    const kv = await rpc(h.maintenance, 'HashKV', { revision: 0 });
    const mine = await h.member.stateMachine.mvcc.hashKV(0);
    expect([hash.hash, kv.hash]).toEqual([mine.hash, mine.hash]);
    expect([kv.compact_revision, kv.hash_revision, kv.header!.revision]).toEqual([String(mine.compactRevision), String(mine.revision), String(mine.revision)]);
    const older = await rpc(h.maintenance, 'HashKV', { revision: 5 });
    expect([older.hash_revision, older.hash === kv.hash]).toEqual(['5', false]);
    expect(await failsWith(rpc(h.maintenance, 'HashKV', { revision: 10_000 }))).toEqual([
      status.OUT_OF_RANGE,
      'etcdserver: mvcc: required revision is a future revision',
    ]);
  });

  it('Alarm: activate, list (all and by type), writes refused under NOSPACE, deactivate', async () => {
    const act = await rpc(h.maintenance, 'Alarm', { action: 'ACTIVATE', memberID: 1, alarm: 'NOSPACE' });
    expect(act.alarms).toEqual([{ memberID: '1', alarm: 'NOSPACE' }]);
    expect((await rpc(h.maintenance, 'Alarm', { action: 'GET' })).alarms).toEqual([{ memberID: '1', alarm: 'NOSPACE' }]);
    expect((await rpc(h.maintenance, 'Alarm', { action: 'GET', alarm: 'CORRUPT' })).alarms).toEqual([]);
    expect((await rpc(h.maintenance, 'Status', {})).errors).toEqual(['memberID:1 alarm:NOSPACE ']);
    expect(await failsWith(rpc(h.kv, 'Put', { key: b('x'), value: b('y') }))).toEqual([status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded']);
    const off = await rpc(h.maintenance, 'Alarm', { action: 'DEACTIVATE', memberID: 1, alarm: 'NOSPACE' });
    expect(off.alarms).toEqual([{ memberID: '1', alarm: 'NOSPACE' }]);
    expect((await rpc(h.maintenance, 'Alarm', { action: 'DEACTIVATE', memberID: 1, alarm: 'NOSPACE' })).alarms).toEqual([]);
    expect((await rpc(h.maintenance, 'Alarm', { action: 'GET' })).alarms).toEqual([]);
    await rpc(h.kv, 'Put', { key: b('x'), value: b('y') });
    expect(await failsWith(rpc(h.maintenance, 'Alarm', { action: 'ACTIVATE', alarm: 9 }))).toEqual([status.INVALID_ARGUMENT, 'etcdserver: unknown alarm type 9']);
  });

  it('Snapshot streams the state machine image with exact remaining_bytes and a SHA-256 trailer', async () => {
    const messages: SnapshotResponse[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = h.maintenance.Snapshot({});
      stream.on('data', (m: SnapshotResponse) => messages.push(m));
      stream.on('error', reject);
      stream.on('end', resolve);
    });
    const blobs = messages.map((m) => m.blob);
    const total = blobs.reduce((n, x) => n + x.byteLength, 0);
    let left = total;
    for (const m of messages) {
      left -= m.blob.byteLength;
      expect(m.remaining_bytes).toBe(String(left));
    }
    const file = Buffer.concat(blobs);
    expect(file.byteLength % 512).toBe(32); // what etcdctl snapshot save checks
    expect(blobs.at(-1)).toEqual(createHash('sha256').update(file.subarray(0, file.byteLength - 32)).digest());
    const image = snapshotImage(file);
    expect(() => snapshotImage(Buffer.concat([file.subarray(0, 40), Buffer.from('x'), file.subarray(41)]))).toThrow('checksum mismatch');
    expect(messages[0]!.header!.member_id).toBe('1');
    // The image loads into an empty backend and holds the same keys.
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-snap-load-'));
    const backend = await LevelBackend.open(dir);
    try {
      await installStateMachineImage(backend, (async function* () {
        yield image;
      })());
      const sm = await StateMachine.open(backend);
      const r = await sm.mvcc.range({ key: b('m/'), rangeEnd: b('m0') });
      expect(r.count).toBe(20);
      expect((await sm.mvcc.hashKV(0)).hash).toBe((await h.member.stateMachine.mvcc.hashKV(0)).hash);
    } finally {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Defragment gives back the space of compacted revisions', async () => {
    const value = randomBytes(4096); // incompressible: LevelDB compresses its tables
    for (let i = 0; i < 1500; i++) await rpc(h.kv, 'Put', { key: b(`defrag/${i}`), value });
    const del = await rpc(h.kv, 'DeleteRange', { key: b('defrag/'), range_end: b('defrag0') });
    await rpc(h.kv, 'Compact', { revision: del.header!.revision, physical: true });
    expect(h.member.stateMachine.mvcc.compactionPending).toBe(false); // physical: the rows are gone when it answers
    const before = await h.member.backend.sizeBytes();
    expect((await rpc(h.maintenance, 'Defragment', {})).header!.member_id).toBe('1');
    const after = await h.member.backend.sizeBytes();
    // 6 MB of values went through the files (more than LevelDB's 4 MB write buffer, so some reached a table file)
    expect(before).toBeGreaterThan(1500 * 4096 / 2);
    expect(after).toBeLessThan(1500 * 4096 / 8); // and after Defragment they are not on disk any more
  });

  it("MoveLeader: to itself succeeds at once (as etcd), to a non-member is etcd's bad transferee", async () => {
    await rpc(h.maintenance, 'MoveLeader', { targetID: 1 });
    expect(await failsWith(rpc(h.maintenance, 'MoveLeader', { targetID: 12345 }))).toEqual([status.FAILED_PRECONDITION, 'etcdserver: bad leader transferee']);
  });

  it('Downgrade is not offered', async () => {
    expect((await failsWith(rpc(h.maintenance, 'Downgrade', { action: 'VALIDATE', version: '3.4.0' })))[0]).toBe(status.UNIMPLEMENTED);
  });
});

describe('Maintenance service on a member that is not the leader', () => {
  let h: Harness;
  beforeAll(async () => {
    // Two founding voters, the second never started: nobody becomes leader.
    h = await startHarness({ member: { initialVoters: [1, 2] }, publish: false });
  });
  afterAll(async () => h.close());

  it('MoveLeader is "etcdserver: not leader"; Status lists "etcdserver: no leader"', async () => {
    expect(await failsWith(rpc(h.maintenance, 'MoveLeader', { targetID: 2 }))).toEqual([status.FAILED_PRECONDITION, 'etcdserver: not leader']);
    const s = await rpc(h.maintenance, 'Status', {});
    expect([s.leader, s.errors]).toEqual(['0', ['etcdserver: no leader']]);
  });

  it('a Snapshot stream with hasleader fails with "etcdserver: no leader"', async () => {
    const err = await new Promise<ServiceError>((resolve, reject) => {
      const stream = h.maintenance.Snapshot({}, metadata({ hasleader: 'true' }));
      stream.on('data', () => reject(new Error('unexpected data')));
      stream.on('error', resolve);
      stream.on('end', () => reject(new Error('unexpected end')));
    });
    expect([err.code, err.details]).toEqual([status.UNAVAILABLE, 'etcdserver: no leader']);
  });
});
