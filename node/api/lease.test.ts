import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseTimeToLiveResponse } from '../../proto/index.js';
import type { CommandResult } from '../../storage/state-machine.js';
import { LeaseManager, type LeaseMember } from '../lease/manager.js';
import { enc, eventually, sleep, startHarness, unaryCall, type Harness } from '../lease/testing.js';

const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

async function start(manager: NonNullable<Parameters<typeof startHarness>[0]>['manager'] = {}): Promise<Harness> {
  const h = await startHarness({ manager });
  harnesses.push(h);
  return h;
}

const grant = (h: Harness, TTL: number, ID: number | bigint = 0): Promise<LeaseGrantResponse> => unaryCall((cb) => h.lease.LeaseGrant({ TTL, ID }, cb));
const ttlOf = (h: Harness, ID: string | bigint, keys = false): Promise<LeaseTimeToLiveResponse> => unaryCall((cb) => h.lease.LeaseTimeToLive({ ID, keys }, cb));
const putWithLease = (h: Harness, key: string, lease: string): Promise<CommandResult> =>
  h.member.propose({ put: { key: enc(key), value: enc('v'), lease: BigInt(lease) } });

/** One keep-alive over a fresh stream. */
function keepAliveOnce(h: Harness, ID: string | bigint): Promise<LeaseKeepAliveResponse> {
  return new Promise((resolve, reject) => {
    const call = h.lease.LeaseKeepAlive();
    call.on('data', (res: LeaseKeepAliveResponse) => {
      resolve(res);
      call.end();
    });
    call.on('error', reject);
    call.write({ ID });
  });
}

async function expectGrpcError(p: Promise<unknown>, code: grpc.status, details: string): Promise<void> {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as grpc.ServiceError | undefined;
  expect(err, 'expected the call to fail').toBeDefined();
  expect([err!.code, err!.details]).toEqual([code, details]);
}

describe('Lease service (single voter over gRPC)', () => {
  it("grants, revokes, lists and answers time-to-live with etcd's errors", async () => {
    const h = await start();
    const a = await grant(h, 30);
    expect(BigInt(a.ID)).toBeGreaterThan(0n);
    expect(a.TTL).toBe('30');
    const b = await grant(h, 1, 7777);
    expect([b.ID, b.TTL]).toEqual(['7777', '2']); // raised to the minimum TTL
    await expectGrpcError(grant(h, 10, 7777), grpc.status.FAILED_PRECONDITION, 'etcdserver: lease already exists');
    await expectGrpcError(grant(h, 9_000_000_001), grpc.status.OUT_OF_RANGE, 'etcdserver: too large lease TTL');

    await putWithLease(h, 'k1', a.ID);
    await putWithLease(h, 'k2', a.ID);
    const t = await ttlOf(h, a.ID, true);
    expect(t.grantedTTL).toBe('30');
    expect(Number(t.TTL)).toBeGreaterThanOrEqual(28);
    expect(Number(t.TTL)).toBeLessThanOrEqual(30);
    expect(t.keys.map(String)).toEqual(['k1', 'k2']);

    const list = await unaryCall<LeaseLeasesResponse>((cb) => h.lease.LeaseLeases({}, cb));
    expect(list.leases.map((l) => l.ID).sort()).toEqual([a.ID, '7777'].sort());

    const revoked = await unaryCall((cb) => h.lease.LeaseRevoke({ ID: a.ID }, cb));
    expect(revoked).toBeDefined();
    expect((await h.member.stateMachine.mvcc.range({ key: enc('k1') })).kvs).toEqual([]);
    await expectGrpcError(unaryCall((cb) => h.lease.LeaseRevoke({ ID: a.ID }, cb)), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
    expect((await ttlOf(h, a.ID)).TTL).toBe('-1'); // etcd: an unknown lease has TTL -1
  });

  it('answers keep-alives in order with the TTL, and TTL 0 for an unknown lease', async () => {
    const h = await start();
    const a = await grant(h, 20);
    const call = h.lease.LeaseKeepAlive();
    const answers: LeaseKeepAliveResponse[] = [];
    call.on('data', (r: LeaseKeepAliveResponse) => answers.push(r));
    call.on('error', () => undefined); // CANCELLED when the harness closes
    call.write({ ID: a.ID });
    call.write({ ID: 424242 });
    call.write({ ID: a.ID });
    await eventually(() => answers.length === 3);
    expect(answers.map((r) => [r.ID, r.TTL])).toEqual([
      [a.ID, '20'],
      ['424242', '0'],
      [a.ID, '20'],
    ]);
    expect(answers[0]!.header?.member_id).toBe('1');
    call.end();
  });

  it('expires a lease without keep-alives after its TTL and deletes its keys in one revision', async () => {
    const h = await start();
    const revokes: CommandResult[] = [];
    h.member.subscribeApplied((rs) => revokes.push(...rs.filter((r) => r.events.length > 0 && r.events.every((e) => e.type === 'DELETE'))));
    const granted = await grant(h, 2);
    const grantedAt = performance.now();
    for (const k of ['a', 'b', 'c']) await putWithLease(h, k, granted.ID);
    await eventually(() => revokes.length > 0, 10_000, 10); // the applied result, not the table (updated mid-apply)
    const expiredAfter = performance.now() - grantedAt;
    expect(expiredAfter).toBeGreaterThanOrEqual(2_000);
    expect(expiredAfter).toBeLessThan(2_000 + 1_000); // tick 50 ms + commit; generous for a loaded machine
    expect(revokes).toHaveLength(1);
    const deleteRevisions = new Set(revokes[0]!.events.map((e) => e.kv.modRevision));
    expect(revokes[0]!.events.map((e) => String(Buffer.from(e.kv.key)))).toEqual(['a', 'b', 'c']);
    expect(deleteRevisions.size).toBe(1);
    expect((await ttlOf(h, granted.ID)).TTL).toBe('-1');
    expect((await keepAliveOnce(h, granted.ID)).TTL).toBe('0');
  });

  it('keeps a lease alive while keep-alives arrive, then expires it no sooner than TTL after the last one', async () => {
    const h = await start();
    const { ID } = await grant(h, 2);
    let lastAckSentAt = 0;
    for (let i = 0; i < 8; i++) {
      lastAckSentAt = performance.now(); // the client counts from when it sent the keep-alive
      expect((await keepAliveOnce(h, ID)).TTL).toBe('2');
      await sleep(400);
    }
    expect(h.member.stateMachine.leases.has(BigInt(ID))).toBe(true); // 3.2 s > TTL: only keep-alives held it
    await eventually(() => !h.member.stateMachine.leases.has(BigInt(ID)), 10_000, 10);
    const after = performance.now() - lastAckSentAt;
    expect(after).toBeGreaterThanOrEqual(2_000);
    expect(after).toBeLessThan(3_000);
  });

  it('a keep-alive is on the log before it is answered, and concurrent keep-alives share one entry', async () => {
    const h = await start({ renewalCoalesceMs: 0 }); // every renewal logged: coalescing has its own test below
    const leases = await Promise.all([grant(h, 5), grant(h, 6), grant(h, 7)]);
    const ids = leases.map((l) => BigInt(l.ID));
    for (const id of ids) expect(h.member.stateMachine.leases.get(id)!.remainingTtlMs).toBeUndefined(); // a grant
    const checkpointEntries: bigint[][] = [];
    const unsubscribe = h.member.subscribeApplied((results) => {
      for (const r of results) if (r.op === 'leaseCheckpoint') checkpointEntries.push([...((r.response as { leases: bigint[] }).leases)]);
    });
    try {
      await keepAliveOnce(h, leases[0]!.ID);
      // The renewal is in the log by the time the keep-alive is answered (a new leader could not undo it).
      expect(h.member.stateMachine.leases.get(ids[0]!)!.remainingTtlMs).toBe(5_000);
      checkpointEntries.length = 0;
      // Into the next millisecond: a renewal in the same whole millisecond as the lease's last logged one moves no
      // deadline, so even with renewalCoalesceMs 0 it is acknowledged without an entry (a fast round trip did that).
      await new Promise((r) => setTimeout(r, 2));
      await Promise.all(ids.map((id) => h.leases.renew(id)));
      const renewed = checkpointEntries.flat().sort();
      expect(renewed).toEqual([...ids].sort());
      // The first renewal goes out alone; the two that arrived while it committed travel together.
      expect(checkpointEntries.length).toBeLessThanOrEqual(2);
      for (const [i, id] of ids.entries()) expect(h.member.stateMachine.leases.get(id)!.remainingTtlMs).toBe((5 + i) * 1000);
    } finally {
      unsubscribe();
    }
  });

  it('keep-alives on one stream are renewed together but answered in request order', async () => {
    const h = await start({ renewalCoalesceMs: 0 });
    const a = (await grant(h, 20)).ID;
    const b = (await grant(h, 30)).ID;
    let entries = 0;
    const unsubscribe = h.member.subscribeApplied((results) => {
      for (const r of results) if (r.op === 'leaseCheckpoint') entries++;
    });
    try {
      // The unknown lease is answered at once (TTL 0) while a and b wait for their entry: order must still hold.
      const order = [a, '999999', b, a, b];
      const answers = await new Promise<LeaseKeepAliveResponse[]>((resolve, reject) => {
        const got: LeaseKeepAliveResponse[] = [];
        const call = h.lease.LeaseKeepAlive();
        call.on('data', (res: LeaseKeepAliveResponse) => {
          got.push(res);
          if (got.length === order.length) {
            call.end();
            resolve(got);
          }
        });
        call.on('error', reject);
        for (const ID of order) call.write({ ID });
      });
      expect(answers.map((r) => [String(r.ID), Number(r.TTL)])).toEqual([[a, 20], ['999999', 0], [b, 30], [a, 20], [b, 30]]);
      expect(entries).toBeLessThan(4); // renewals that arrived together shared entries
    } finally {
      unsubscribe();
    }
  });

  it('a renewal right after a logged one is acknowledged without an entry (coalescing)', async () => {
    const h = await start({ renewalCoalesceMs: 60_000 });
    const id = BigInt((await grant(h, 30)).ID);
    let entries = 0;
    const unsubscribe = h.member.subscribeApplied((results) => {
      for (const r of results) if (r.op === 'leaseCheckpoint') entries++;
    });
    try {
      expect(await h.leases.renew(id)).toBe(30);
      expect(entries).toBe(1);
      expect(await h.leases.renew(id)).toBe(30);
      expect(await h.leases.renew(id)).toBe(30);
      expect(entries).toBe(1); // within the window: no further entries
    } finally {
      unsubscribe();
    }
  });

  it('refuses to acknowledge a keep-alive for a lease revoked while its renewal was committing', async () => {
    const h = await start();
    const { ID } = await grant(h, 5);
    const id = BigInt(ID);
    const revoked = h.leases.revoke(id); // proposed first: applied before the renewal entry
    await expect(h.leases.renew(id)).rejects.toMatchObject({ code: 'LEASE_NOT_FOUND' });
    expect((await revoked).error).toBeUndefined();
  });

  it('a follower forwards keep-alives and time-to-live to the leader over gRPC and returns its answers', async () => {
    const h = await start();
    const { ID } = await grant(h, 15);
    const m = h.member;
    // A follower view of the same cluster: it is not the leader and knows the leader's client URL.
    const follower: LeaseMember = {
      id: 2,
      propose: (op) => m.propose(op),
      subscribeApplied: (fn) => m.subscribeApplied(fn),
      subscribeSoftState: () => () => undefined,
      subscribeRestored: () => () => undefined,
      isLeader: () => false,
      leaderId: () => 1,
      members: () => m.members(),
      linearizableBarrier: () => m.linearizableBarrier(),
      stateMachine: m.stateMachine,
    };
    const remote = new LeaseManager(follower, { ticker: { every: () => () => undefined } });
    remote.start();
    try {
      expect(await remote.renew(BigInt(ID))).toBe(15);
      await expect(remote.renew(999_999n)).rejects.toMatchObject({ code: 'LEASE_NOT_FOUND' });
      const ttl = await remote.timeToLive(BigInt(ID), false);
      expect(ttl?.grantedTtlSeconds).toBe(15);
      expect(await remote.timeToLive(999_999n, false)).toBeUndefined();
      // A forwarded call that reaches a non-leader is refused, never forwarded again.
      await expect(remote.renew(BigInt(ID), { forwarded: true })).rejects.toMatchObject({ code: 'NOT_LEADER' });
    } finally {
      remote.stop();
    }
  });
});
