// Three real Members in one process, each with a GrpcPeerTransport and its own grpc-js server on loopback.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { loadEtcdApi, type SendAck } from '../../proto/index.js';
import { MessageType, message } from '../../raft/types.js';
import { clusterIdFor } from '../ids.js';
import { PEER_PROTOCOL_VERSION, REFUSAL } from './grpc-util.js';
import { dump, memoryLogger, put, TestCluster, waitFor } from './testkit.js';
import { GrpcPeerTransport } from './transport.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

describe('GrpcPeerTransport: three members over gRPC', () => {
  it('elects a leader, replicates writes from leader and follower, survives the leader, refuses another cluster', async () => {
    const c = (cluster = await TestCluster.start(3));
    const leader = await c.waitLeader();
    const follower = c.nodes.find((n) => n !== leader)!;

    // 200 writes, half through the leader, half through a follower (forwarded to the leader over gRPC).
    for (let i = 0; i < 200; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, (_, j) => {
          const k = i + j;
          return put(k % 2 === 0 ? leader.member! : follower.member!, `k/${String(k).padStart(3, '0')}`, `v${k}`);
        }),
      );
    }
    await c.waitRevision(201);
    const expected = Object.fromEntries(Array.from({ length: 200 }, (_, k) => [`k/${String(k).padStart(3, '0')}`, `v${k}`]));
    for (const n of c.nodes) expect(await dump(n.member!, 'k/')).toEqual(expected);
    // A linearizable read on the follower: MsgReadIndex to the leader and its answer cross the wire too.
    await follower.member!.linearizableBarrier();
    expect(follower.member!.stateMachine.revision).toBe(201);
    const ls = leader.transport!.stats();
    expect(ls.messagesSent).toBeGreaterThan(0);
    expect(ls.messagesReceived).toBeGreaterThan(0);
    expect(ls.peers.map((p) => p.connected)).toEqual([true, true]);

    // The leader goes away: the other two elect a new one and writes continue.
    await c.stopMember(leader);
    const next = await c.waitLeader([leader.id]);
    expect(next.id).not.toBe(leader.id);
    for (let i = 0; i < 20; i++) await put(next.member!, `after/${i}`, `w${i}`);
    await c.waitRevision(221);
    for (const n of c.running()) expect(Object.keys(await dump(n.member!, 'after/'))).toHaveLength(20);
    // The survivors noticed the old leader is unreachable.
    await waitFor('survivor reports the stopped leader disconnected', () => next.transport!.stats().peers.some((p) => p.id === leader.id && !p.connected));

    // A member of another cluster pointed at a survivor is refused, loudly, on both sides.
    const strangerLogs: string[] = [];
    const stranger = new GrpcPeerTransport({
      selfId: 4242,
      clusterId: clusterIdFor([4242], 'another-cluster'),
      peers: new Map([[next.id, [next.url]]]),
      logger: memoryLogger(strangerLogs),
    });
    const delivered: unknown[] = [];
    stranger.start({ deliver: (m) => delivered.push(m), reportUnreachable: () => {}, reportSnapshot: () => {}, snapshots: next.member!.wal.snapshots });
    const beforeRefused = next.transport!.stats().peersRefused;
    stranger.send([message({ type: MessageType.Heartbeat, from: 4242, to: next.id, term: 10_000 })]);
    await waitFor('the stranger is refused', () => stranger.stats().peersRefused > 0);
    expect(next.transport!.stats().peersRefused).toBeGreaterThan(beforeRefused);
    expect(strangerLogs.some((l) => l.includes('"level":50') && l.includes(REFUSAL.clusterMismatch))).toBe(true);
    expect(next.logs.some((l) => l.includes('"level":50') && l.includes(REFUSAL.clusterMismatch))).toBe(true);
    await stranger.close();
    // Its term-10000 heartbeat never reached Raft.
    expect(next.member!.term()).toBeLessThan(10_000);

    // The raw protocol: Handshake and a Send stream with a foreign hello both end in FAILED_PRECONDITION.
    const client = new (loadEtcdApi().fulcrum.raftpb.RaftTransport)(`127.0.0.1:${next.port}`, grpc.credentials.createInsecure());
    const hello = { cluster_id: 1, member_id: 4242, protocol_version: PEER_PROTOCOL_VERSION };
    const hs = await new Promise<grpc.ServiceError | null>((resolve) => client.Handshake({ from: hello, to_member_id: next.id }, (err) => resolve(err)));
    expect(hs?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(hs?.details).toBe(REFUSAL.clusterMismatch);
    const stream = client.Send();
    const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    stream.on('data', (_: SendAck) => {});
    stream.write({ hello, seq: 1, messages: [] });
    const err = await ended;
    expect([err.code, err.details]).toEqual([grpc.status.FAILED_PRECONDITION, REFUSAL.clusterMismatch]);
    client.close();
  });
});
