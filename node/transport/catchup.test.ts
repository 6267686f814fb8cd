// Members that fall behind: a restarted follower caught up by a snapshot streamed over gRPC, and a fourth
// member that joins as a learner, is promoted, and then counts in an election.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Member } from '../member.js';
import { ConfChangeType } from '../../raft/types.js';
import { dump, put, TestCluster, waitFor } from './testkit.js';

let cluster: TestCluster | undefined;

/** The files in a member's snapshot store: published snapshots with their sizes, and leftover spools. */
async function snapshotFiles(m: Member): Promise<{ snaps: Array<{ file: string; bytes: number }>; spools: string[] }> {
  const dir = m.wal.snapshots.dir;
  const files = await readdir(dir);
  const snaps = await Promise.all(files.filter((f) => f.endsWith('.snap')).map(async (file) => ({ file, bytes: (await stat(join(dir, file))).size })));
  return { snaps, spools: files.filter((f) => f.endsWith('.spool')) };
}
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

describe('GrpcPeerTransport: catching up', () => {
  it('a restarted follower behind the leader\'s compacted log receives a snapshot over gRPC and catches up', async () => {
    const c = (cluster = await TestCluster.start(3, { snapshotCount: 50, snapshotCatchUpEntries: 10 }));
    const leader = await c.waitLeader();
    for (let i = 0; i < 20; i++) await put(leader.member!, `s/${i}`, 'before');
    await c.waitRevision(21);
    const lagger = c.nodes.find((n) => n !== leader)!;
    const laggerApplied = lagger.member!.status().appliedState;
    await c.stopMember(lagger);

    // A few hundred writes: the leader snapshots every 50 and compacts its log past the stopped member.
    for (let i = 0; i < 300; i += 30) await Promise.all(Array.from({ length: 30 }, (_, j) => put(leader.member!, `s/${i + j}`, `v${i + j}`)));
    expect(leader.member!.wal.storage.firstIndex()).toBeGreaterThan(laggerApplied + 1);

    await c.startMember(lagger);
    await c.waitRevision(leader.member!.stateMachine.revision);
    expect(await dump(lagger.member!, 's/')).toEqual(await dump(leader.member!, 's/'));
    expect((await lagger.member!.stateMachine.mvcc.range({ key: new TextEncoder().encode('s/299') })).kvs[0]?.value).toEqual(new TextEncoder().encode('v299'));
    // It was the snapshot path, over SendSnapshot, not a log replay.
    const sent = leader.transport!.stats();
    const got = lagger.transport!.stats();
    expect(sent.snapshotsSent).toBeGreaterThanOrEqual(1);
    expect(got.snapshotsReceived).toBeGreaterThanOrEqual(1);
    expect(got.snapshotBytesReceived).toBeGreaterThan(0);
    expect(sent.snapshotBytesSent).toBeGreaterThanOrEqual(got.snapshotBytesReceived);
    expect(lagger.member!.wal.storage.firstIndex()).toBeGreaterThan(laggerApplied + 1);
    // The leader's own snapshots are references to its backend: what went over the wire was an image made for the
    // transfer (far larger than a reference), whose spool file is gone again; the lagger keeps it as its base.
    const leaderFiles = await snapshotFiles(leader.member!);
    expect(leaderFiles.spools).toEqual([]);
    expect(leaderFiles.snaps.every((f) => f.bytes < 1024)).toBe(true);
    expect(got.snapshotBytesReceived).toBeGreaterThan(20 * 300);
    expect((await snapshotFiles(lagger.member!)).snaps.some((f) => f.bytes > 20 * 300)).toBe(true);
    // And it keeps up afterwards through ordinary appends.
    await put(leader.member!, 's/after', 'x');
    await waitFor('lagger applies a write after the snapshot', async () => (await dump(lagger.member!, 's/after'))['s/after'] === 'x');
  });

  it('a fourth member joins as a learner, catches up, is promoted, and votes in a later election', async () => {
    const c = (cluster = await TestCluster.start(3));
    const leader = await c.waitLeader();
    for (let i = 0; i < 50; i++) await put(leader.member!, `j/${i}`, `v${i}`);

    const joiner = await c.reserve();
    c.contexts.set(joiner.id, { name: 'joiner', peerUrls: [joiner.url] });
    const cs = await leader.member!.changeMembership(ConfChangeType.AddLearner, joiner.id, { name: 'joiner', peerUrls: [joiner.url] });
    expect(cs.learners).toEqual([joiner.id]);
    await c.startMember(joiner);
    for (let i = 50; i < 100; i++) await put(leader.member!, `j/${i}`, `v${i}`);
    await c.waitRevision(leader.member!.stateMachine.revision);
    expect(await dump(joiner.member!, 'j/')).toEqual(await dump(leader.member!, 'j/'));

    const promoted = await leader.member!.changeMembership(ConfChangeType.AddVoter, joiner.id);
    expect([...promoted.voters].sort()).toEqual([...c.founders, joiner.id].sort());
    expect(promoted.learners).toEqual([]);
    await waitFor('the joiner knows it is a voter', () => joiner.member!.status().confState.voters.includes(joiner.id));

    // With four voters a quorum is three: once the leader stops, no leader can be elected without the joiner.
    const oldTerm = leader.member!.term();
    await c.stopMember(leader);
    const next = await c.waitLeader([leader.id]);
    const term = next.member!.term();
    expect(term).toBeGreaterThan(oldTerm);
    // The joiner voted for the winner in the winning term (or won itself).
    await waitFor('the joiner at the new term', () => joiner.member!.term() === term);
    expect(joiner.member!.status().hardState.vote).toBe(next.id);
    await put(next.member!, 'j/after', 'ok');
    await waitFor('the joiner applies a write of the new leader', async () => (await dump(joiner.member!, 'j/after'))['j/after'] === 'ok');
  });
});
