// The transport between two bare transports (no Raft): queue bounds, order, reconnects, admission, snapshots.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { loadEtcdApi, type SnapshotAck } from '../../proto/index.js';
import { ConfChangeType, EntryType, MessageType, message, type Message, type NodeId } from '../../raft/types.js';
import { crc32c } from '../../storage/crc32c.js';
import { encodeMemberContext } from '../../storage/state-machine.js';
import { SnapshotStore } from '../../storage/wal/snapshot.js';
import type { TransportHooks } from '../member.js';
import { messageToWire } from './convert.js';
import { PEER_PROTOCOL_VERSION, REFUSAL } from './grpc-util.js';
import { addPeerService, peerReceiveOnFromEnv } from './peer-server.js';
import { bindServer, memoryLogger, waitFor } from './testkit.js';
import { GrpcPeerTransport, type GrpcPeerTransportOptions } from './transport.js';

const CLUSTER = 777;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

interface Recorder extends TransportHooks {
  appliedIndex?: () => number;
  readonly delivered: Message[];
  readonly unreachable: NodeId[];
  readonly snapshotReports: Array<[NodeId, boolean]>;
  removedReports: number;
}

async function recorder(): Promise<Recorder & { dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-transport-unit-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const snapshots = await SnapshotStore.open(dir, { chunkBytes: 4096 });
  const r = {
    dir,
    delivered: [] as Message[],
    unreachable: [] as NodeId[],
    snapshotReports: [] as Array<[NodeId, boolean]>,
    removedReports: 0,
    snapshots,
    deliver: (m: Message) => void r.delivered.push(m),
    reportUnreachable: (id: NodeId) => void r.unreachable.push(id),
    reportSnapshot: (id: NodeId, ok: boolean) => void r.snapshotReports.push([id, ok]),
    reportRemoved: () => void r.removedReports++,
  };
  return r;
}

function transport(opts: Partial<GrpcPeerTransportOptions> & Pick<GrpcPeerTransportOptions, 'selfId' | 'peers'>, logs: string[] = []): GrpcPeerTransport {
  const t = new GrpcPeerTransport({ clusterId: CLUSTER, logger: memoryLogger(logs), ...opts });
  cleanups.push(() => t.close());
  return t;
}

/**
 * A transport with its own server, its service registered as a member's server registers it (receiving on the fast
 * path unless `env` says FULCRUM_PEER_RECV=grpc-js), started with a recorder.
 */
async function node(selfId: NodeId, peers: Map<NodeId, string[]>, opts: Partial<GrpcPeerTransportOptions> = {}, port = 0, env: NodeJS.ProcessEnv = {}) {
  const { server, port: bound } = await bindServer(port);
  cleanups.push(() => server.forceShutdown());
  const t = transport({ selfId, peers, ...opts });
  const service = addPeerService(server, t, peerReceiveOnFromEnv(env));
  service.install(server);
  const hooks = await recorder();
  t.start(hooks);
  return { t, hooks, server, service, url: `http://127.0.0.1:${bound}`, port: bound };
}

/** A loopback port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const { server, port } = await bindServer();
  server.forceShutdown();
  return port;
}

const app = (from: NodeId, to: NodeId, index: number, bytes = 8): Message =>
  message({ type: MessageType.App, from, to, term: 1, index, entries: [{ term: 1, index: index + 1, type: EntryType.Normal, data: new Uint8Array(bytes) }] });

describe('outbound queue', () => {
  it('a peer that is down keeps its queue at the limit and counts drops', async () => {
    const port = await freePort();
    const hooks = await recorder();
    const t = transport({ selfId: 1, peers: new Map([[2, [`http://127.0.0.1:${port}`]]]), limits: { queueMessagesMax: 100, queueBytesMax: 1 << 20 } });
    t.start(hooks);
    for (let round = 0; round < 20; round++) {
      t.send(Array.from({ length: 1000 }, (_, i) => app(1, 2, round * 1000 + i)));
      const peer = t.stats().peers[0]!;
      // send() is synchronous and this loop never yields, so nothing can have drained the queue in between.
      expect(peer.queuedMessages).toBe(100);
      expect(peer.connected).toBe(false);
    }
    const s = t.stats();
    // 20,000 sent into a queue of 100.
    expect(s.messagesDropped).toBe(19_900);
    expect(s.messagesSent).toBe(0);
    await waitFor('the dead peer reported unreachable', () => hooks.unreachable.includes(2));
  });

  it('the byte bound holds too (one oversized message still fits an empty queue)', async () => {
    const port = await freePort();
    const t = transport({ selfId: 1, peers: new Map([[2, [`http://127.0.0.1:${port}`]]]), limits: { queueMessagesMax: 10_000, queueBytesMax: 64 * 1024 } });
    t.start(await recorder());
    t.send(Array.from({ length: 200 }, (_, i) => app(1, 2, i, 4096)));
    expect(t.stats().peers[0]!.queuedBytes).toBeLessThanOrEqual(64 * 1024);
    expect(t.stats().peers[0]!.queuedMessages).toBeLessThan(20);
  });

  it('close() resolves while a peer is backing off, dropping what was queued', async () => {
    const port = await freePort();
    const hooks = await recorder();
    const t = new GrpcPeerTransport({ selfId: 1, clusterId: CLUSTER, peers: new Map([[2, [`http://127.0.0.1:${port}`]]]), logger: memoryLogger([]), limits: { reconnectMinMs: 30_000, reconnectMaxMs: 60_000 } });
    t.start(hooks);
    await waitFor('first attempt failed', () => hooks.unreachable.length > 0);
    t.send([app(1, 2, 0), app(1, 2, 1)]);
    expect(t.stats().peers[0]!.queuedMessages).toBe(2);
    // The next attempt is 15-30 s away; close() must not wait for it (the test timeout would catch that).
    await t.close();
    expect(t.stats()).toMatchObject({ peers: [], messagesDropped: 2, messagesSent: 0 });
  });
});

describe('streams between two members', () => {
  it.each<[string, NodeJS.ProcessEnv]>([
    ['the fast path', {}],
    ['grpc-js (FULCRUM_PEER_RECV=grpc-js)', { FULCRUM_PEER_RECV: 'grpc-js' }],
  ])('received on %s: delivers every message in order across many send() calls, and reconnects after the peer starts late', async (_path, env) => {
    const portB = await freePort();
    const a = await node(1, new Map([[2, [`http://127.0.0.1:${portB}`]]]), { limits: { reconnectMinMs: 10, reconnectMaxMs: 100 } });
    a.t.send([app(1, 2, 0)]); // goes nowhere: B is not up yet
    await waitFor('A reports B unreachable', () => a.hooks.unreachable.includes(2));
    const b = await node(2, new Map([[1, [a.url]]]), {}, portB, env);
    await waitFor('A connects to B', () => a.t.stats().peers[0]!.connected);
    for (let i = 1; i <= 3000; i++) a.t.send([app(1, 2, i)]);
    await waitFor('B receives 3000 messages', () => b.hooks.delivered.filter((m) => m.index >= 1).length >= 3000);
    const indexes = b.hooks.delivered.map((m) => m.index).filter((i) => i >= 1);
    expect(indexes).toEqual(Array.from({ length: 3000 }, (_, i) => i + 1));
    expect(b.t.stats().messagesReceived).toBeGreaterThanOrEqual(3000);
    expect(a.t.stats().messagesSent).toBeGreaterThanOrEqual(3000);
    // The Send stream (and the handshake, if any) went the way asked for.
    if (env.FULCRUM_PEER_RECV === undefined) expect(b.service.served).toBeGreaterThanOrEqual(1);
    else expect(b.service.served).toBe(0);
  });

  it('a peer that dials us cuts our back-off towards it short: a restarted member hears from us at once', async () => {
    const portB = await freePort();
    // A's back-off after its first failure is 4-8 s: without the cut, A would not reach B within the 3.5 s below.
    const a = await node(1, new Map([[2, [`http://127.0.0.1:${portB}`]]]), { limits: { reconnectMinMs: 8_000, reconnectMaxMs: 16_000 } });
    await waitFor('A reports B unreachable', () => a.hooks.unreachable.includes(2));
    a.t.send([app(1, 2, 7)]); // dropped with the failed attempt's queue or sent once connected; not asserted
    const b = await node(2, new Map([[1, [a.url]]]), {}, portB);
    await waitFor('A connects to B', () => a.t.stats().peers[0]!.connected, 3_500);
    expect(a.t.stats().reconnectsOnPeerUp).toBe(1);
    a.t.send([app(1, 2, 8)]);
    await waitFor('B receives from A', () => b.hooks.delivered.some((m) => m.index === 8), 10_000);
    // B connected on its first attempt: it never backed off, so nothing was cut short on its side.
    expect(b.t.stats().reconnectsOnPeerUp).toBe(0);
  });

  it('drops messages not addressed to this member, not from the stream\'s sender, or not understood', async () => {
    const b = await node(2, new Map());
    const client = new (loadEtcdApi().fulcrum.raftpb.RaftTransport)(`127.0.0.1:${b.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const stream = client.Send();
    const acks: number[] = [];
    stream.on('data', (ack: { seq: string }) => acks.push(Number(ack.seq)));
    stream.on('error', () => {});
    const hello = { cluster_id: CLUSTER, member_id: 1, protocol_version: PEER_PROTOCOL_VERSION, peer_urls: ['http://127.0.0.1:1'] };
    const msgs = [app(1, 3, 10), app(1, 2, 11), app(5, 2, 12), message({ type: MessageType.Hup, from: 1, to: 2 })].map(messageToWire);
    const unknownType = { ...messageToWire(app(1, 2, 13)), type: 99 as MessageType }; // from a newer build, say
    stream.write({ hello, seq: 1, messages: [...msgs, unknownType] });
    await waitFor('the batch is acknowledged', () => acks.includes(1));
    expect(b.hooks.delivered.map((m) => m.index)).toEqual([11]);
    expect(b.t.stats().messagesRejected).toBe(4);
    // The unknown sender told us its URL in the hello: B can now answer it.
    expect(b.t.stats().peers.map((p) => p.id)).toEqual([1]);
    stream.end();
  });

  it('refuses a removed member and a caller that thinks it is calling someone else', async () => {
    const b = await node(2, new Map());
    b.t.onConfChange({ type: ConfChangeType.AddVoter, nodeId: 9, context: encodeMemberContext({ peerUrls: ['http://127.0.0.1:9'] }) }, { voters: [2, 9], learners: [] });
    expect(b.t.stats().peers.map((p) => p.id)).toEqual([9]);
    b.t.onConfChange({ type: ConfChangeType.RemoveNode, nodeId: 9, context: new Uint8Array(0) }, { voters: [2], learners: [] });
    expect(b.t.stats().peers).toEqual([]);
    const client = new (loadEtcdApi().fulcrum.raftpb.RaftTransport)(`127.0.0.1:${b.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const handshake = (from: number | string, to: number) =>
      new Promise<grpc.ServiceError | null>((resolve) => client.Handshake({ from: { cluster_id: CLUSTER, member_id: from, protocol_version: PEER_PROTOCOL_VERSION }, to_member_id: to }, (e) => resolve(e)));
    expect((await handshake(9, 2))?.details).toBe(REFUSAL.memberRemoved);
    expect((await handshake(8, 3))?.details).toBe(REFUSAL.memberMismatch);
    expect(await handshake(8, 2)).toBeNull();
    // A build of another peer protocol (a mixed-version cluster): refused, so the two versions act as partitioned.
    const other = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.Handshake({ from: { cluster_id: CLUSTER, member_id: 8, protocol_version: PEER_PROTOCOL_VERSION + 1 }, to_member_id: 2 }, (e) => resolve(e)),
    );
    expect([other?.code, other?.details]).toEqual([grpc.status.FAILED_PRECONDITION, `${REFUSAL.protocolVersion} ${PEER_PROTOCOL_VERSION + 1}`]);
    // An id beyond 2^53 cannot be a Fulcrum member id: refused as an argument error, never rounded.
    expect((await handshake('18446744073709551615', 2))?.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('admits a member it recorded as removed when that member has applied more of the log (ids are reused)', async () => {
    // A member still replaying the log holds the removal of a member that was added back later with the same id (the
    // same peer URLs): refusing it would refuse, say, the leader whose entries carry the re-add, and stop it.
    const b = await node(2, new Map());
    b.hooks.appliedIndex = () => 100;
    b.t.onConfChange({ type: ConfChangeType.RemoveNode, nodeId: 9, context: new Uint8Array(0) }, { voters: [2], learners: [] });
    const client = new (loadEtcdApi().fulcrum.raftpb.RaftTransport)(`127.0.0.1:${b.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const handshake = (applied: number | undefined) =>
      new Promise<grpc.ServiceError | null>((resolve) =>
        client.Handshake({ from: { cluster_id: CLUSTER, member_id: 9, protocol_version: PEER_PROTOCOL_VERSION, applied_index: applied }, to_member_id: 2 }, (e) => resolve(e)),
      );
    expect(await handshake(101)).toBeNull();
    // Not ahead of us: we have applied its removal and it has not (or an older build that does not say).
    expect((await handshake(100))?.details).toBe(REFUSAL.memberRemoved);
    expect((await handshake(3))?.details).toBe(REFUSAL.memberRemoved);
    expect((await handshake(undefined))?.details).toBe(REFUSAL.memberRemoved);
  });

  it('keeps the stream of a member it recorded as removed while that member is ahead of it, and ends it otherwise', async () => {
    const b = await node(2, new Map());
    b.hooks.appliedIndex = () => 100;
    b.t.onConfChange({ type: ConfChangeType.RemoveNode, nodeId: 1, context: new Uint8Array(0) }, { voters: [2], learners: [] });
    // B is made A's peer only once A's applied index is set, so that no hello leaves without it.
    const toB = { type: ConfChangeType.AddVoter, nodeId: 2, context: encodeMemberContext({ peerUrls: [b.url] }) };
    const a = await node(1, new Map());
    a.hooks.appliedIndex = () => 500;
    a.t.onConfChange(toB, { voters: [1, 2], learners: [] });
    a.t.send([app(1, 2, 1)]);
    a.t.send([app(1, 2, 2)]);
    await waitFor('B steps both batches of A, which is ahead of it', () => b.hooks.delivered.filter((m) => m.from === 1).length === 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(a.hooks.removedReports).toBe(0);
    expect(b.t.stats().peersRefused).toBe(0);
    // A peer whose hello says it is behind us is ended as before (negative control: same streams, another index).
    b.t.onConfChange({ type: ConfChangeType.RemoveNode, nodeId: 3, context: new Uint8Array(0) }, { voters: [2], learners: [] });
    const c = await node(3, new Map());
    c.hooks.appliedIndex = () => 40;
    c.t.onConfChange(toB, { voters: [2, 3], learners: [] });
    c.t.send([app(3, 2, 1)]);
    await waitFor('C hears that it was removed', () => c.hooks.removedReports > 0, 5_000);
  });

  it('ends the stream a member already had open once it is removed: it learns so even if nothing reconnects', async () => {
    // The leader stops sending to a member it removed, which may then never see the removal committed in its
    // own log. Its streams to the others stay up, so only their refusal on those streams can tell it.
    const b = await node(2, new Map());
    const a = await node(1, new Map([[2, [b.url]]]));
    b.t.onConfChange({ type: ConfChangeType.AddVoter, nodeId: 1, context: encodeMemberContext({ peerUrls: [a.url] }) }, { voters: [1, 2], learners: [] });
    a.t.send([app(1, 2, 1)]);
    await waitFor('B receives from A', () => b.hooks.delivered.some((m) => m.index === 1));
    b.t.onConfChange({ type: ConfChangeType.RemoveNode, nodeId: 1, context: new Uint8Array(0) }, { voters: [2], learners: [] });
    // The next batch is still stepped (a leader that removed itself sends its successor MsgTimeoutNow), then refused.
    a.t.send([app(1, 2, 2)]);
    await waitFor('A hears that it was removed', () => a.hooks.removedReports > 0, 5_000);
    expect(b.hooks.delivered.some((m) => m.index === 2)).toBe(true);
    a.t.send([app(1, 2, 3)]);
    await new Promise((r) => setTimeout(r, 300));
    expect(b.hooks.delivered.some((m) => m.index === 3)).toBe(false);
  });
});

describe('stale address book', () => {
  it('a member dialling the wrong member at an address is refused and says so loudly', async () => {
    const b = await node(2, new Map());
    const logs: string[] = [];
    const a = transport({ selfId: 1, peers: new Map([[3, [b.url]]]) }, logs);
    const hooks = await recorder();
    a.start(hooks);
    await waitFor('A is refused', () => a.stats().peersRefused > 0);
    expect(logs.some((l) => l.includes('"level":50') && l.includes(REFUSAL.memberMismatch))).toBe(true);
    a.send([app(1, 3, 1)]);
    expect(b.hooks.delivered).toEqual([]);
  });
});

describe('snapshots over SendSnapshot', () => {
  const metadata = { index: 500, term: 3, confState: { voters: [1, 2], learners: [] } };

  async function writeImage(store: SnapshotStore, bytes: number): Promise<Uint8Array> {
    const image = new Uint8Array(bytes).map((_, i) => (i * 7 + 3) & 0xff);
    const w = await store.create(metadata);
    await w.write(image);
    await w.commit();
    return image;
  }

  async function readImage(store: SnapshotStore): Promise<Uint8Array> {
    const info = (await store.list()).find((i) => i.index === metadata.index)!;
    const parts: Uint8Array[] = [];
    for await (const c of (await store.reader(info)).chunks()) parts.push(c);
    return Buffer.concat(parts);
  }

  it('streams the image in chunks, commits it on the receiver before delivering MsgSnap, reports success', async () => {
    const b = await node(2, new Map());
    const a = await node(1, new Map([[2, [b.url]]]), { limits: { snapshotChunkBytesMax: 1000 } });
    const image = await writeImage(a.hooks.snapshots, 100_000);
    let listedAtDelivery: number[] = [];
    const deliver = b.hooks.deliver;
    b.hooks.deliver = (m) => {
      // The receiver's store must already hold the committed file when Raft hears of the snapshot.
      void b.hooks.snapshots.list().then((l) => (listedAtDelivery = l.map((i) => i.index)));
      deliver(m);
    };
    a.t.send([message({ type: MessageType.Snap, from: 1, to: 2, term: 3, snapshot: { metadata, data: new Uint8Array(0) } })]);
    await waitFor('A reports the snapshot', () => a.hooks.snapshotReports.length > 0);
    expect(a.hooks.snapshotReports).toEqual([[2, true]]);
    expect(b.hooks.delivered).toHaveLength(1);
    const snap = b.hooks.delivered[0]!;
    expect([snap.type, snap.from, snap.to, snap.snapshot?.metadata, snap.snapshot?.data.byteLength]).toEqual([MessageType.Snap, 1, 2, metadata, 0]);
    await waitFor('listing at delivery', () => listedAtDelivery.length > 0);
    expect(listedAtDelivery).toEqual([500]);
    expect(Buffer.from(await readImage(b.hooks.snapshots)).equals(Buffer.from(image))).toBe(true);
    expect(a.t.stats()).toMatchObject({ snapshotsSent: 1, snapshotBytesSent: 100_000 });
    expect(b.t.stats()).toMatchObject({ snapshotsReceived: 1, snapshotBytesReceived: 100_000 });
  });

  it('reports failure when the receiver refuses the image mid-way (over its size limit), keeping nothing', async () => {
    const b = await node(2, new Map(), { limits: { snapshotBytesMax: 10_000 } });
    const a = await node(1, new Map([[2, [b.url]]]), { limits: { snapshotChunkBytesMax: 1000 } });
    await writeImage(a.hooks.snapshots, 100_000);
    a.t.send([message({ type: MessageType.Snap, from: 1, to: 2, term: 3, snapshot: { metadata, data: new Uint8Array(0) } })]);
    await waitFor('A reports the snapshot', () => a.hooks.snapshotReports.length > 0);
    expect(a.hooks.snapshotReports).toEqual([[2, false]]);
    expect(a.hooks.unreachable).toContain(2);
    expect(a.t.stats().snapshotsSendFailed).toBe(1);
    expect(await b.hooks.snapshots.list()).toEqual([]);
    expect(b.hooks.delivered).toEqual([]);
  });

  it('reports failure when the image is not in the sender\'s store', async () => {
    const b = await node(2, new Map());
    const a = await node(1, new Map([[2, [b.url]]]));
    a.t.send([message({ type: MessageType.Snap, from: 1, to: 2, term: 3, snapshot: { metadata, data: new Uint8Array(0) } })]);
    await waitFor('A reports the snapshot', () => a.hooks.snapshotReports.length > 0);
    expect(a.hooks.snapshotReports).toEqual([[2, false]]);
    expect(b.hooks.delivered).toEqual([]);
  });

  async function rawTransfer(port: number, chunks: Array<Record<string, unknown>>, end: 'end' | 'cancel'): Promise<grpc.ServiceError | SnapshotAck> {
    const client = new (loadEtcdApi().fulcrum.raftpb.RaftTransport)(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    return new Promise((resolve) => {
      const call = client.SendSnapshot((err, ack) => resolve(err ?? ack!));
      for (const c of chunks) call.write(c);
      if (end === 'end') call.end();
      else setImmediate(() => call.cancel());
    });
  }

  const first = (data: Uint8Array, total: number, extra: Record<string, unknown> = {}) => ({
    hello: { cluster_id: CLUSTER, member_id: 1, protocol_version: PEER_PROTOCOL_VERSION },
    message: messageToWire(message({ type: MessageType.Snap, from: 1, to: 2, term: 3, snapshot: { metadata, data: new Uint8Array(0) } })),
    offset: 0,
    data,
    total_bytes: total,
    crc32c: crc32c(data),
    ...extra,
  });

  it('refuses a chunk whose CRC-32C does not match, keeps nothing, delivers nothing', async () => {
    const b = await node(2, new Map());
    const data = new Uint8Array([1, 2, 3, 4]);
    const r = (await rawTransfer(b.port, [first(data, 8), { offset: 4, data, total_bytes: 8, crc32c: crc32c(data) ^ 1, last: true }], 'end')) as grpc.ServiceError;
    expect(r.code).toBe(grpc.status.DATA_LOSS);
    expect(r.details).toContain('CRC-32C');
    expect(await b.hooks.snapshots.list()).toEqual([]);
    expect(readdirSync(b.hooks.dir)).toEqual([]); // the temporary file is gone too
    expect(b.hooks.delivered).toEqual([]);
    expect(b.t.stats().snapshotsReceiveFailed).toBe(1);
  });

  it('aborts a transfer that ends early, one with a gap, one over its declared size, and one the sender cancels', async () => {
    const b = await node(2, new Map());
    const d = new Uint8Array([9, 9, 9, 9]);
    const early = (await rawTransfer(b.port, [first(d, 8)], 'end')) as grpc.ServiceError;
    expect(early.code).toBe(grpc.status.ABORTED);
    const gap = (await rawTransfer(b.port, [first(d, 12), { offset: 8, data: d, total_bytes: 12, crc32c: crc32c(d), last: true }], 'end')) as grpc.ServiceError;
    expect(gap.code).toBe(grpc.status.DATA_LOSS);
    const over = (await rawTransfer(b.port, [first(d, 6), { offset: 4, data: d, total_bytes: 6, crc32c: crc32c(d), last: true }], 'end')) as grpc.ServiceError;
    expect(over.code).toBe(grpc.status.DATA_LOSS);
    const cancelled = (await rawTransfer(b.port, [first(d, 8)], 'cancel')) as grpc.ServiceError;
    expect(cancelled.code).toBe(grpc.status.CANCELLED);
    await waitFor('all four transfers counted as failed', () => b.t.stats().snapshotsReceiveFailed === 4);
    expect(readdirSync(b.hooks.dir)).toEqual([]);
    expect(b.hooks.delivered).toEqual([]);
    // A good transfer still works afterwards (the one-at-a-time slot was released).
    const ok = (await rawTransfer(b.port, [first(d, 4, { last: true })], 'end')) as SnapshotAck;
    expect(ok).toMatchObject({ applied: true, received_bytes: '4' });
    expect(b.hooks.delivered.map((m) => m.type)).toEqual([MessageType.Snap]);
  });

  it('refuses a snapshot from another cluster', async () => {
    const b = await node(2, new Map());
    const d = new Uint8Array([1]);
    const r = (await rawTransfer(b.port, [{ ...first(d, 1, { last: true }), hello: { cluster_id: CLUSTER + 1, member_id: 1, protocol_version: PEER_PROTOCOL_VERSION } }], 'end')) as grpc.ServiceError;
    expect([r.code, r.details]).toEqual([grpc.status.FAILED_PRECONDITION, REFUSAL.clusterMismatch]);
    expect(await b.hooks.snapshots.list()).toEqual([]);
  });
});
