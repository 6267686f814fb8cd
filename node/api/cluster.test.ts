// The Cluster service against a real single-voter Member: list, add (learner and voter), update, promote (refused
// for a learner that is not running, and for a voter), remove, with etcd's codes and messages.
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memberIdFor } from '../ids.js';
import { failsWith, PEER_URL, rpc, startHarness, type Harness } from './harness.testutil.js';

const LEARNER_URL = 'http://127.0.0.1:22380';
/** The id MemberAdd gave the learner: the tests below go on with that member. */
let learnerId = '';

describe('Cluster service', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => h.close());

  it('MemberList: this member with its name, URLs and id, serializable and linearizable', async () => {
    const expected = [{ ID: '1', name: 'one', peerURLs: [PEER_URL], clientURLs: [`http://${h.endpoint}`], isLearner: false }];
    expect((await rpc(h.cluster, 'MemberList', {})).members).toEqual(expected);
    const lin = await rpc(h.cluster, 'MemberList', { linearizable: true });
    expect(lin.members).toEqual(expected);
    expect(lin.header!.cluster_id).toBe(String(h.member.clusterId));
  });

  it('MemberAdd a learner: a fresh id (not the one its peer URLs give a founding member), the new member and the list', async () => {
    const res = await rpc(h.cluster, 'MemberAdd', { peerURLs: [LEARNER_URL], isLearner: true });
    const id = res.member!.ID;
    learnerId = id;
    expect(Number(id)).toBeGreaterThan(1);
    expect(Number(id)).toBeLessThan(2 ** 52); // the Raft core keeps ids as numbers
    expect(id).not.toBe(String(memberIdFor([LEARNER_URL], h.member.options.clusterToken)));
    expect(res.member).toEqual({ ID: id, name: '', peerURLs: [LEARNER_URL], clientURLs: [], isLearner: true });
    expect(res.members.map((m) => m.ID)).toEqual(['1', id]);
    expect(h.member.node.status().confState.learners).toEqual([Number(id)]);
  });

  it('MemberAdd refuses bad and taken peer URLs with etcd messages', async () => {
    const bad: [number, string] = [status.INVALID_ARGUMENT, 'etcdserver: given member URLs are invalid'];
    for (const urls of [[], ['not a url'], ['http://127.0.0.1'], ['ftp://127.0.0.1:1'], ['http://127.0.0.1:1/path']]) {
      expect(await failsWith(rpc(h.cluster, 'MemberAdd', { peerURLs: urls }))).toEqual(bad);
    }
    expect(await failsWith(rpc(h.cluster, 'MemberAdd', { peerURLs: [LEARNER_URL], isLearner: true }))).toEqual([
      status.FAILED_PRECONDITION,
      'etcdserver: Peer URLs already exists',
    ]);
  });

  it('MemberUpdate changes peer URLs; unknown ids and taken URLs are refused', async () => {
    const id = learnerId;
    const moved = 'http://127.0.0.1:22381';
    const res = await rpc(h.cluster, 'MemberUpdate', { ID: id, peerURLs: [moved] });
    expect(res.members.find((m) => m.ID === String(id))?.peerURLs).toEqual([moved]);
    expect(await failsWith(rpc(h.cluster, 'MemberUpdate', { ID: 999, peerURLs: ['http://127.0.0.1:1'] }))).toEqual([
      status.NOT_FOUND,
      'etcdserver: member not found',
    ]);
    expect(await failsWith(rpc(h.cluster, 'MemberUpdate', { ID: id, peerURLs: [PEER_URL] }))).toEqual([
      status.FAILED_PRECONDITION,
      'etcdserver: Peer URLs already exists',
    ]);
    await rpc(h.cluster, 'MemberUpdate', { ID: id, peerURLs: [LEARNER_URL] });
  });

  it('MemberPromote: a learner that is not running is not ready; a voter is not a learner; unknown is not found', async () => {
    const id = learnerId;
    expect(await failsWith(rpc(h.cluster, 'MemberPromote', { ID: id }))).toEqual([
      status.FAILED_PRECONDITION,
      'etcdserver: can only promote a learner member which is in sync with leader',
    ]);
    expect(await failsWith(rpc(h.cluster, 'MemberPromote', { ID: 1 }))).toEqual([status.FAILED_PRECONDITION, 'etcdserver: can only promote a learner member']);
    expect(await failsWith(rpc(h.cluster, 'MemberPromote', { ID: '18446744073709551615' }))).toEqual([status.NOT_FOUND, 'etcdserver: member not found']);
  });

  it('MemberRemove: the learner goes; removing it again is not found', async () => {
    const id = learnerId;
    const res = await rpc(h.cluster, 'MemberRemove', { ID: id });
    expect(res.members.map((m) => m.ID)).toEqual(['1']);
    expect(await failsWith(rpc(h.cluster, 'MemberRemove', { ID: id }))).toEqual([status.NOT_FOUND, 'etcdserver: member not found']);
  });

  it('MemberAdd of the same peer URLs again: a new member with a new id, as etcd does (the old id stays removed)', async () => {
    const res = await rpc(h.cluster, 'MemberAdd', { peerURLs: [LEARNER_URL], isLearner: true });
    expect(res.member!.ID).not.toBe(learnerId);
    expect(res.members.map((m) => m.ID)).toEqual(['1', res.member!.ID]);
    await rpc(h.cluster, 'MemberRemove', { ID: res.member!.ID });
  });

  it('strict reconfiguration: with one unstarted voter added, another voter is refused', async () => {
    // 1 -> 2 voters is allowed even though the new one has not started (etcd's special case).
    const res = await rpc(h.cluster, 'MemberAdd', { peerURLs: ['http://127.0.0.1:22390'] });
    expect(res.member!.isLearner).toBe(false);
    expect(await failsWith(rpc(h.cluster, 'MemberAdd', { peerURLs: ['http://127.0.0.1:22391'] }))).toEqual([
      status.FAILED_PRECONDITION,
      'etcdserver: re-configuration failed due to not enough started members',
    ]);
  });
});
