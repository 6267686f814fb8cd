// Membership changes across real processes: remove a member (it stops itself), add a learner that joins with
// --initial-cluster-state existing and catches up, promote it, and hand it the leadership; then replace the removed
// member the way operators replace a failed machine (same peer URLs, empty data dir).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdTestClient } from './testing/etcd-client.js';
import { eventually } from './testing/eventually.js';
import { memberArgs, ProcessCluster, ProcessMember } from './testing/process-cluster.js';

// Test ports stay below Linux's ephemeral range (32768+), where outgoing connections could take them.
const BASE_PORT = 16_000 + (process.pid % 190) * 10;
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-membership-'));
const timing = { heartbeatMs: 50, electionMs: 500 };
const specs = [0, 1, 2, 3].map((i) => ({ name: `q${i + 1}`, clientPort: BASE_PORT + 2 * i, peerPort: BASE_PORT + 2 * i + 1, dataDir: join(dir, `q${i + 1}`) }));
const cluster = new ProcessCluster({ members: specs.slice(0, 3), ...timing });
const peerUrl = (i: number): string => `http://127.0.0.1:${specs[i]!.peerPort}`;
const q4 = new ProcessMember(specs[3]!, memberArgs(specs[3]!, [0, 1, 3].map((i) => `${specs[i]!.name}=${peerUrl(i)}`).join(','), timing, 'existing'), undefined);
const client = (i: number): EtcdTestClient => new EtcdTestClient(`127.0.0.1:${specs[i]!.clientPort}`, 3_000);

/** q3's id before its removal: added back, it is a new member with a new id. */
let removedQ3Id = '';
const q3again = new ProcessMember(specs[2]!, memberArgs(specs[2]!, [0, 1, 3, 2].map((i) => `${specs[i]!.name}=${peerUrl(i)}`).join(','), timing, 'existing'), undefined);

afterAll(async () => {
  await cluster.kill();
  await q4.kill();
  await q3again.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe('membership changes with real processes', () => {
  it('removes a member, adds and promotes a learner, and moves the leadership to it', async () => {
    cluster.start();
    const c1 = client(0);
    await eventually('a leader', async () => ((await c1.status()).leader !== '0' ? true : undefined));
    for (let i = 0; i < 20; i++) await eventually('a write', () => c1.put(`before-${i}`, 'x'));

    // Remove q3 while it follows: the cluster goes on with two voters; q3 notices its removal and exits.
    const members = await c1.memberList();
    const q3 = members.find((m) => m.name === 'q3')!;
    removedQ3Id = q3.ID;
    await eventually('a leader other than q3', async () => {
      const st = await c1.status();
      if (st.leader !== '0' && st.leader !== q3.ID) return true;
      if (st.leader === q3.ID) {
        const c = client(2);
        await c.moveLeader(members.find((m) => m.name === 'q1')!.ID).finally(() => c.close());
      }
      return undefined;
    });
    await c1.memberRemove(q3.ID);
    // q3 may never see its own removal committed (the leader stops sending to it); its peers' refusal of its
    // streams tells it. Before they refused streams already open, it could stay up for good (a CI failure).
    const exit = await Promise.race([cluster.member('q3').waitExit(), new Promise<string>((r) => setTimeout(() => r('still running after 20 s'), 20_000))]);
    expect(exit).toBe(0);
    expect((await c1.memberList()).map((m) => m.name).sort()).toEqual(['q1', 'q2']);
    await c1.put('after-remove', 'ok');

    // Add q4 as a learner; it joins the running cluster and catches up without voting.
    const q4Id = await c1.memberAdd([peerUrl(3)], true);
    q4.start();
    const c4 = client(3);
    await eventually('the learner to catch up', async () => ((await c4.count('before-', true)) === 20 && (await c4.get('after-remove', true)) === 'ok' ? true : undefined));
    expect((await c4.status()).isLearner).toBe(true);

    // Promote it, then hand it the leadership.
    await eventually('the promotion', async () => {
      await c1.memberPromote(q4Id);
      return true;
    });
    expect((await c1.memberList()).find((m) => m.ID === q4Id)!.isLearner).toBe(false);
    const leaderClient = (await c1.status()).leader === (await c1.status()).memberId ? c1 : client(1);
    await leaderClient.moveLeader(q4Id);
    await eventually('q4 to lead', async () => ((await c4.status()).leader === q4Id ? true : undefined));
    await c4.put('after-transfer', 'ok');
    expect(await c1.get('after-transfer')).toBe('ok');
    c1.close();
    c4.close();
  }, 120_000);

  it('re-adds a removed member with the same peer URLs and an empty data dir: a new id; it replays the old removal and stays', async () => {
    const c1 = client(0);
    const id = await eventually('the re-add', () => c1.memberAdd([peerUrl(2)], false));
    rmSync(specs[2]!.dataDir, { recursive: true, force: true });
    q3again.start();
    const c3 = client(2);
    await eventually('the replacement to catch up', async () => ((await c3.count('before-', true)) === 20 && (await c3.get('after-transfer', true)) === 'ok' ? true : undefined));
    // Its log holds its own removal before the entry that adds it back; it must not stop on the way.
    await new Promise((r) => setTimeout(r, 4 * timing.electionMs));
    expect(q3again.running).toBe(true);
    expect((await c1.memberList()).find((m) => m.ID === id)?.name).toBe('q3');
    // A new id, which the replacement learnt from the cluster (its flags give only the old one), and answers with.
    expect(id).not.toBe(removedQ3Id);
    expect((await c3.status()).memberId).toBe(id);
    await c3.put('after-replace', 'ok');
    expect(await c1.get('after-replace')).toBe('ok');
    // Restarted, it is still that member: the id comes from its data dir, not from its flags.
    await q3again.kill();
    q3again.start();
    await eventually('the replacement to serve again', async () => ((await c3.get('after-replace', true)) === 'ok' ? true : undefined));
    expect((await c3.status()).memberId).toBe(id);
    c1.close();
    c3.close();
  }, 120_000);

  it('a leader stopped with SIGTERM hands the leadership to a follower before it exits', async () => {
    const byName = new Map<string, ProcessMember>([['q1', cluster.member('q1')], ['q2', cluster.member('q2')], ['q4', q4], ['q3', q3again]]);
    const c1 = client(0);
    const leaderId = await eventually('a leader', async () => ((await c1.status()).leader !== '0' ? (await c1.status()).leader : undefined));
    const leaderName = (await c1.memberList()).find((m) => m.ID === leaderId)!.name;
    const leader = byName.get(leaderName)!;
    expect(await leader.stop()).toBe(0);
    expect(leader.output.some((l) => l.includes('handed the leadership over before stopping'))).toBe(true);
    const survivor = [...byName.entries()].find(([n, m]) => n !== leaderName && m.running)!;
    const cs = new EtcdTestClient(survivor[1].clientEndpoint, 3_000);
    const next = await eventually('a new leader', async () => {
      const st = await cs.status();
      return st.leader !== '0' && st.leader !== leaderId ? st.leader : undefined;
    });
    expect(next).not.toBe(leaderId);
    await cs.put('after-handover', 'ok');
    c1.close();
    cs.close();
  }, 120_000);
});
