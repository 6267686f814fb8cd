import { afterEach, describe, expect, it } from 'vitest';
import type { LeaseGrantResponse, LockResponse } from '../../proto/index.js';
import { enc, eventually, sleep, startHarness, unaryCall, type Harness } from '../lease/testing.js';

const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

async function start(): Promise<Harness> {
  const h = await startHarness();
  harnesses.push(h);
  return h;
}

async function grant(h: Harness, TTL: number): Promise<string> {
  return (await unaryCall<LeaseGrantResponse>((cb) => h.lease.LeaseGrant({ TTL }, cb))).ID;
}
const lock = (h: Harness, name: string, lease: string | number): Promise<LockResponse> => unaryCall((cb) => h.lock.Lock({ name: enc(name), lease }, cb));
const unlock = (h: Harness, key: Buffer): Promise<unknown> => unaryCall((cb) => h.lock.Unlock({ key }, cb));
const exists = async (h: Harness, key: Uint8Array): Promise<boolean> => (await h.member.stateMachine.mvcc.range({ key })).kvs.length === 1;

describe('Lock service', () => {
  it('excludes: five concurrent lockers keep a non-atomic counter correct', async () => {
    const h = await start();
    const ROUNDS = 4;
    let counter = 0;
    let inside = 0;
    let maxInside = 0;
    const tokens: bigint[] = [];
    const worker = async (): Promise<void> => {
      const lease = await grant(h, 30);
      for (let i = 0; i < ROUNDS; i++) {
        const { key, header } = await lock(h, 'counter', lease);
        inside++;
        maxInside = Math.max(maxInside, inside);
        const seen = counter; // read ...
        await sleep(Math.floor(Math.random() * 15)); // ... let others run ...
        counter = seen + 1; // ... write: lost updates if two were inside
        const kv = (await h.member.stateMachine.mvcc.range({ key })).kvs[0]!;
        tokens.push(BigInt(kv.createRevision));
        expect(BigInt(header!.revision)).toBeGreaterThanOrEqual(BigInt(kv.createRevision));
        inside--;
        await unlock(h, key);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker(), worker()]);
    expect(counter).toBe(5 * ROUNDS);
    expect(maxInside).toBe(1);
    // Each grant's key was created after the previous holder's: the fencing tokens strictly increase.
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
  });

  it('removes the key of a waiting Lock call that is cancelled, so the next locker is not blocked', async () => {
    const h = await start();
    const [holderLease, waiterLease, laterLease] = [await grant(h, 30), await grant(h, 30), await grant(h, 30)];
    const held = await lock(h, 'q', holderLease);
    const call = h.lock.Lock({ name: enc('q'), lease: waiterLease }, () => undefined);
    const waiterKey = enc(`q/${BigInt(waiterLease).toString(16)}`);
    await eventually(() => exists(h, waiterKey));
    call.cancel();
    await eventually(async () => !(await exists(h, waiterKey)));
    await unlock(h, held.key);
    const next = await lock(h, 'q', laterLease);
    expect(String(next.key)).toBe(`q/${BigInt(laterLease).toString(16)}`);
  });

  it('Unlock releases; the holder locking again returns at once; lease 0 gets a session lease', async () => {
    const h = await start();
    const lease = await grant(h, 30);
    const first = await lock(h, 'u', lease);
    const again = await lock(h, 'u', lease); // same session: the key is reused, the lock is already held
    expect(String(again.key)).toBe(String(first.key));
    await unlock(h, first.key);
    expect(await exists(h, first.key)).toBe(false);
    const session = await lock(h, 'u', 0);
    const kv = (await h.member.stateMachine.mvcc.range({ key: session.key })).kvs[0]!;
    expect(kv.lease).toBeGreaterThan(0n);
    expect(h.member.stateMachine.leases.get(kv.lease)?.ttlSeconds).toBe(60);
  });

  it('a waiter whose lease expires is refused and leaves the line', async () => {
    const h = await start();
    const held = await lock(h, 'x', await grant(h, 30));
    const waiter = lock(h, 'x', await grant(h, 2));
    await expect(waiter).rejects.toMatchObject({ details: 'etcdserver: requested lease not found' });
    const after = lock(h, 'x', await grant(h, 30));
    await sleep(100);
    await unlock(h, held.key);
    await expect(after).resolves.toBeDefined();
  });
});
