// Locks and elections against a real member over real gRPC; lock holders in child processes that are killed
// (kill -9) or paused (SIGSTOP) while holding.
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortedError, Client, LeaseLostError, Op } from '../index.js';
import { eventually } from '../../node/testing/eventually.js';
import { Election, fencedTxn, Lock, notLeaderError, OwnershipLostError } from './index.js';
import { listenInRange, spawnScript, startRecipeMember, type ChildScript, type RecipeMember } from './testing/harness.js';

let server: RecipeMember;
const children: ChildScript[] = [];

beforeAll(async () => {
  server = await startRecipeMember(1);
}, 60_000);
afterAll(async () => {
  await Promise.all(children.map((c) => c.kill()));
  await server?.close();
});

function client(): Client {
  return server.client({ attemptTimeoutMs: 2_000 });
}

function holder(name: string, ttlSeconds: number): ChildScript {
  const c = spawnScript(['client/recipes/testdata/lock-holder.ts', server.endpoint, name, String(ttlSeconds)]);
  children.push(c);
  return c;
}

describe('Lock', () => {
  it('serves waiters first come, first served, each with a greater token; tryLock does not wait', async () => {
    const c = client();
    const lock = new Lock(c, 'locks/fifo', { ttlSeconds: 5 });
    const first = await lock.lock();
    expect(await lock.tryLock()).toBeUndefined();
    const order: number[] = [];
    const waiters = [1, 2, 3].map(async (i) => {
      const h = await new Lock(client(), 'locks/fifo', { ttlSeconds: 5 }).lock();
      order.push(i);
      await new Promise((r) => setTimeout(r, 20));
      await h.release();
      return h.token;
    });
    // Each waiter is in line (its key exists) before the next one joins: that fixes the order.
    await eventually('three waiters in line', async () => ((await c.count({ prefix: 'locks/fifo/' })) === 4 ? true : undefined));
    await first.release();
    const tokens = await Promise.all(waiters);
    expect(order).toEqual([1, 2, 3]);
    expect(tokens[0]).toBeGreaterThan(first.token);
    expect(tokens[1]).toBeGreaterThan(tokens[0]!);
    expect(tokens[2]).toBeGreaterThan(tokens[1]!);
    const again = await lock.tryLock();
    expect(again?.token).toBeGreaterThan(tokens[2]!);
    await again!.release();
    expect(await c.count({ prefix: 'locks/fifo/' })).toBe(0); // tryLock that failed left nothing behind
  });

  it('await using releases; a cancelled wait leaves the line and the next waiter is not blocked by it', async () => {
    const c = client();
    const lock = new Lock(c, 'locks/cancel', { ttlSeconds: 5 });
    let token: number;
    {
      await using held = await lock.lock();
      token = held.token;
      expect(await c.count({ prefix: 'locks/cancel/' })).toBe(1);
    }
    expect(await c.count({ prefix: 'locks/cancel/' })).toBe(0);
    const held = await lock.lock();
    const ac = new AbortController();
    const cancelled = new Lock(c, 'locks/cancel', { ttlSeconds: 5 }).lock({ signal: ac.signal });
    const third = new Lock(client(), 'locks/cancel', { ttlSeconds: 5 }).lock();
    await eventually('two waiters', async () => ((await c.count({ prefix: 'locks/cancel/' })) === 3 ? true : undefined));
    ac.abort();
    await expect(cancelled).rejects.toBeInstanceOf(AbortedError);
    await eventually('the cancelled waiter to leave', async () => ((await c.count({ prefix: 'locks/cancel/' })) === 2 ? true : undefined));
    await held.release();
    const t = await third;
    expect(t.token).toBeGreaterThan(held.token);
    expect(held.token).toBeGreaterThan(token);
    await t.release();
  });

  it('a fenced transaction succeeds while held and fails once the key is gone; the holder hears lost', async () => {
    const c = client();
    const lock = new Lock(c, 'locks/fence', { ttlSeconds: 5 });
    const held = await lock.lock();
    expect((await held.txn().then(Op.put('fence/v', '1')).commit()).succeeded).toBe(true);
    expect((await lock.fencedTxn(held.token).then(Op.put('fence/v', '2')).commit()).succeeded).toBe(true);
    const lost = new Promise<OwnershipLostError>((r) => held.once('lost', r));
    await c.delete(held.key); // an operator breaks the lock
    expect((await lost).reason).toBe('key-deleted');
    expect(held.signal.aborted).toBe(true);
    expect((await fencedTxn(c, held.fence).then(Op.put('fence/v', '3')).commit()).succeeded).toBe(false);
    expect((await c.get('fence/v'))?.valueText).toBe('2');
    await held.release();
  });

  it('kill -9 of the holder process: the waiter gets the lock only after the lease expires, with a greater token', async () => {
    const ttlSeconds = 3;
    const child = holder('locks/crash', ttlSeconds);
    const [token, leaseHex] = (await child.line('held')).split(' ');
    const c = client();
    const waiting = new Lock(c, 'locks/crash', { ttlSeconds: 5 }).lock();
    await eventually('the waiter in line', async () => ((await c.count({ prefix: 'locks/crash/' })) === 2 ? true : undefined));
    const killedAt = performance.now();
    await child.kill();
    const held = await waiting;
    const waitedMs = performance.now() - killedAt;
    // The server keeps a lease at least its TTL after the last keep-alive it got, and keep-alives go every TTL/3.
    expect(waitedMs).toBeGreaterThan((ttlSeconds * 1000 * 2) / 3 - 200);
    expect(held.token).toBeGreaterThan(Number(token));
    expect(await c.get(`locks/crash/${leaseHex}`)).toBeUndefined();
    expect(await c.leases()).not.toContain(BigInt(`0x${leaseHex}`));
    console.log(`lock after kill -9 of its holder: granted ${Math.round(waitedMs)} ms later (TTL ${ttlSeconds} s), token ${token} -> ${held.token}`);
    await held.release();
  }, 60_000);

  it('SIGSTOP of the holder: the next holder gets a greater token; the stale holder\'s fenced writes fail, unfenced ones land (negative control)', async () => {
    const store = await startTokenStore();
    try {
      const child = holder('locks/pause', 2);
      const staleToken = Number((await child.line('held')).split(' ')[0]);
      const c = client();
      const waiting = new Lock(c, 'locks/pause', { ttlSeconds: 5 }).lock();
      await eventually('the waiter in line', async () => ((await c.count({ prefix: 'locks/pause/' })) === 2 ? true : undefined));
      child.signal('SIGSTOP');
      const held = await waiting;
      expect(held.token).toBeGreaterThan(staleToken);
      // The new holder writes first, through the fence and to the store with its token.
      expect((await held.txn().then(Op.put('fenced/value', 'from-the-new-holder')).commit()).succeeded).toBe(true);
      expect(store.write('fenced', held.token)).toBe(200);
      child.signal('SIGCONT');
      child.send(`write ${store.url}`);
      await child.line('done');
      expect(await child.line('fenced-txn')).toBe('false');
      expect(await child.line('store-fenced')).toBe('409');
      // Negative controls: the same stale holder's writes without a fence are accepted.
      expect(await child.line('unfenced-put')).toBe('ok');
      expect(await child.line('store-naive')).toBe('200');
      expect((await c.get('fenced/value'))?.valueText).toBe('from-the-new-holder');
      expect((await c.get('unfenced/value'))?.valueText).toBe('from-the-stale-holder');
      expect(store.values).toEqual({ fenced: 'from-the-new-holder', naive: 'from-the-stale-holder' });
      // The stale holder's own client noticed too (on its clock, once it ran again).
      expect(await child.line('lost')).toBe('lease-lost');
      await held.release();
      await child.kill();
    } finally {
      await store.close();
    }
  }, 60_000);

  it('a waiter whose lease is lost stops waiting with LeaseLostError', async () => {
    const c = client();
    const holderLock = await new Lock(c, 'locks/lease', { ttlSeconds: 5 }).lock();
    const lease = await c.grantLease(5);
    const waiting = new Lock(c, 'locks/lease', { lease }).lock();
    await eventually('the waiter in line', async () => ((await c.count({ prefix: 'locks/lease/' })) === 2 ? true : undefined));
    await lease.revoke();
    await expect(waiting).rejects.toBeInstanceOf(LeaseLostError);
    await holderLock.release();
  });
});

describe('Election', () => {
  it('two campaigners: one wins, the other waits; resign hands over with a greater token; observe sees each leader in order', async () => {
    const a = new Election(client(), 'elections/e1', { ttlSeconds: 5 });
    const b = new Election(client(), 'elections/e1', { ttlSeconds: 5 });
    expect(await a.leader()).toBeUndefined();
    const seen: string[] = [];
    const ac = new AbortController();
    const observing = (async () => {
      for await (const l of a.observe({ signal: ac.signal })) {
        seen.push(`${l.valueText}@${l.token}`);
      }
    })();
    const la = await a.campaign('a');
    let bWon = false;
    const bCampaign = b.campaign('b').then((l) => {
      bWon = true;
      return l;
    });
    await eventually('b in line', async () => ((await client().count({ prefix: 'elections/e1/' })) === 2 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    expect(bWon).toBe(false);
    expect((await b.leader())?.valueText).toBe('a');
    await la.proclaim('a2');
    await eventually('a2 observed', async () => (seen.includes(`a2@${la.token}`) ? true : undefined));
    await la.resign();
    const lb = await bCampaign;
    expect(lb.token).toBeGreaterThan(la.token);
    await expect(la.proclaim('stale')).rejects.toMatchObject({ message: notLeaderError().message });
    await eventually('b observed', async () => (seen.includes(`b@${lb.token}`) ? true : undefined));
    ac.abort();
    await observing;
    expect(seen).toEqual([`a@${la.token}`, `a2@${la.token}`, `b@${lb.token}`]);
    await lb.resign();
    expect(await a.leader()).toBeUndefined();
  });

  it('a cancelled campaign withdraws; a leader whose lease is revoked hears lost', async () => {
    const c = client();
    const lease = await c.grantLease(5);
    const leader = await new Election(c, 'elections/e2', { lease }).campaign('x');
    const ac = new AbortController();
    const waiting = new Election(client(), 'elections/e2', { ttlSeconds: 5 }).campaign('y', { signal: ac.signal });
    await eventually('the candidate in line', async () => ((await c.count({ prefix: 'elections/e2/' })) === 2 ? true : undefined));
    ac.abort();
    await expect(waiting).rejects.toBeInstanceOf(AbortedError);
    await eventually('the candidate gone', async () => ((await c.count({ prefix: 'elections/e2/' })) === 1 ? true : undefined));
    const lost = new Promise<OwnershipLostError>((r) => leader.once('lost', r));
    await lease.revoke();
    // Either comes first: the revoke's answer (lease lost) or the watch's delete event of the key.
    expect(['lease-lost', 'key-deleted']).toContain((await lost).reason);
    expect(leader.held).toBe(false);
  });
});

/**
 * An external store that protects itself with fencing tokens (the pattern of docs/recipes.md) over HTTP:
 * POST /fenced refuses a token below the highest it has seen (409); POST /naive takes every write.
 */
async function startTokenStore(): Promise<{ url: string; values: Record<string, string>; write: (path: 'fenced', token: number) => number; close: () => Promise<void> }> {
  const values: Record<string, string> = {};
  let highest = 0;
  const write = (path: string, token: number | undefined, value: string): number => {
    if (path === 'fenced') {
      if (token === undefined || token < highest) return 409;
      highest = token;
    }
    values[path] = value;
    return 200;
  };
  const http: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const { value, token } = JSON.parse(body) as { value: string; token?: number };
      res.writeHead(write(req.url!.slice(1), token, value)).end();
    });
  });
  const port = await listenInRange(http, 5);
  return {
    url: `http://127.0.0.1:${port}`,
    values,
    write: (path, token) => write(path, token, 'from-the-new-holder'),
    close: () => new Promise((r) => http.close(() => r())),
  };
}
