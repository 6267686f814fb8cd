import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { CampaignResponse, LeaderKey, LeaderResponse, LeaseGrantResponse } from '../../proto/index.js';
import { enc, eventually, sleep, startHarness, unaryCall, type Harness } from '../lease/testing.js';

const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

async function start(dir?: string): Promise<Harness> {
  const h = await startHarness(dir === undefined ? {} : { dir });
  harnesses.push(h);
  return h;
}

async function grant(h: Harness, TTL: number): Promise<string> {
  return (await unaryCall<LeaseGrantResponse>((cb) => h.lease.LeaseGrant({ TTL }, cb))).ID;
}

const campaign = (h: Harness, name: string, lease: string, value: string): Promise<CampaignResponse> =>
  unaryCall((cb) => h.election.Campaign({ name: enc(name), lease, value: enc(value) }, cb));
const resign = (h: Harness, leader: LeaderKey): Promise<unknown> => unaryCall((cb) => h.election.Resign({ leader }, cb));
const leaderOf = (h: Harness, name: string): Promise<LeaderResponse> => unaryCall((cb) => h.election.Leader({ name: enc(name) }, cb));

/** Settles-or-not probe: true when the promise has not settled within `ms`. */
async function stillPending(p: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return !settled;
}

describe('Election service', () => {
  it('grants one leader at a time; resign hands over; observe sees both; fencing tokens increase', async () => {
    const h = await start();
    const [la, lb] = [await grant(h, 30), await grant(h, 30)];
    const observed: LeaderResponse[] = [];
    const observe = h.election.Observe({ name: enc('svc') });
    observe.on('data', (r: LeaderResponse) => observed.push(r));
    observe.on('error', () => undefined); // CANCELLED at the end

    const a = await campaign(h, 'svc', la, 'alpha');
    expect(String(a.leader!.key)).toBe(`svc/${BigInt(la).toString(16)}`);
    expect(a.leader!.lease).toBe(la);
    const bCall = campaign(h, 'svc', lb, 'beta');
    expect(await stillPending(bCall, 300)).toBe(true); // second in line waits

    const current = await leaderOf(h, 'svc');
    expect(String(current.kv!.value)).toBe('alpha');
    await resign(h, a.leader!);
    const b = await bCall;
    expect(BigInt(b.leader!.rev)).toBeGreaterThan(BigInt(a.leader!.rev)); // the fencing token grows
    expect(String((await leaderOf(h, 'svc')).kv!.value)).toBe('beta');

    await unaryCall((cb) => h.election.Proclaim({ leader: b.leader, value: enc('beta-2') }, cb));
    await eventually(() => observed.length >= 3);
    expect(observed.map((r) => String(r.kv!.value))).toEqual(['alpha', 'beta', 'beta-2']);
    expect(observed[1]!.kv!.create_revision).toBe(b.leader!.rev);

    // The old leader key no longer proclaims; resigning it again is harmless, as in etcd.
    const stale = unaryCall((cb) => h.election.Proclaim({ leader: a.leader, value: enc('zombie') }, cb));
    await expect(stale).rejects.toMatchObject({ code: grpc.status.UNKNOWN, details: 'election: not leader' });
    await resign(h, a.leader!);
    expect(String((await leaderOf(h, 'svc')).kv!.value)).toBe('beta-2');

    // A third campaign after B resigns gets a larger token still.
    await resign(h, b.leader!);
    await expect(leaderOf(h, 'svc')).rejects.toMatchObject({ code: grpc.status.UNKNOWN, details: 'election: no leader' });
    const c = await campaign(h, 'svc', la, 'alpha-again');
    expect(BigInt(c.leader!.rev)).toBeGreaterThan(BigInt(b.leader!.rev));
    observe.cancel();
  });

  it('does not grant a campaign whose lease expires while it waits', async () => {
    const h = await start();
    const holder = await grant(h, 60);
    const shortLived = await grant(h, 2);
    const a = await campaign(h, 'job', holder, 'a');
    const started = performance.now();
    const waiting = campaign(h, 'job', shortLived, 'b');
    const err = (await waiting.then(
      () => undefined,
      (e: unknown) => e,
    )) as grpc.ServiceError | undefined;
    expect(err?.code).toBe(grpc.status.NOT_FOUND);
    expect(err?.details).toBe('etcdserver: requested lease not found');
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_500);
    expect(String((await leaderOf(h, 'job')).kv!.value)).toBe('a'); // the holder is untouched
    await resign(h, a.leader!);
    await expect(leaderOf(h, 'job')).rejects.toMatchObject({ code: grpc.status.UNKNOWN, details: 'election: no leader' });
  });

  it('resigns a cancelled campaign, and refuses a campaign with an unknown lease', async () => {
    const h = await start();
    const [la, lb] = [await grant(h, 30), await grant(h, 30)];
    await campaign(h, 'c', la, 'a');
    const call = h.election.Campaign({ name: enc('c'), lease: lb, value: enc('b') }, () => undefined);
    const waiterKey = enc(`c/${BigInt(lb).toString(16)}`);
    await eventually(async () => (await h.member.stateMachine.mvcc.range({ key: waiterKey })).kvs.length === 1);
    call.cancel();
    await eventually(async () => (await h.member.stateMachine.mvcc.range({ key: waiterKey })).kvs.length === 0);
    await expect(campaign(h, 'c', '123456789', 'x')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('fencing tokens keep increasing across a restart', async () => {
    let h = await start();
    const dir = h.dir;
    const first = await campaign(h, 'r', await grant(h, 30), 'one');
    await resign(h, first.leader!);
    harnesses.pop();
    await h.close({ keepDir: true });
    h = await start(dir);
    const second = await campaign(h, 'r', await grant(h, 30), 'two');
    expect(BigInt(second.leader!.rev)).toBeGreaterThan(BigInt(first.leader!.rev));
  });
});
