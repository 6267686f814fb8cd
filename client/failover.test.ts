// Failover and safe retries against a real in-process member, with a TCP proxy making the faults: an answer
// lost after the write was applied, and a member that goes silent with its connections open.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Compare, Op, OutcomeUnknownError, UnavailableError, type LeaseLostError, type WatchEvent } from './index.js';
import { FaultProxy } from './testing/proxy.js';
import { freePorts, startLeaderlessMember, startTestMember, type TestMember } from './testing/servers.js';

let server: TestMember;
const proxies: FaultProxy[] = [];
const clients: Client[] = [];

beforeAll(async () => {
  server = await startTestMember(2);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(proxies.map((p) => p.close()));
  await server.close();
});

async function proxy(slot: number): Promise<FaultProxy> {
  const [port] = await freePorts(1, slot);
  const p = await FaultProxy.start(server.endpoint, port!);
  proxies.push(p);
  return p;
}

function client(endpoints: string[], o: Partial<ConstructorParameters<typeof Client>[0]> = {}): Client {
  const c = new Client({ endpoints, attemptTimeoutMs: 1_000, connectTimeoutMs: 1_000, healthProbeIntervalMs: 200, ...o });
  clients.push(c);
  return c;
}

describe('a write whose answer is lost', () => {
  it('is retried with its request id and applied once: one revision', async () => {
    const p = await proxy(11);
    const c = client([p.endpoint]);
    await c.put('once/warm', 'x'); // connects, and learns that the member applies tagged writes exactly once
    p.dropAnswers(1);
    const put = await c.put('once/k', 'v');
    expect(p.dropped).toBe(1); // the first answer really was lost, and the call still succeeded
    expect(p.connections).toBeGreaterThanOrEqual(2);
    const kv = await c.get('once/k');
    expect([kv?.version, kv?.modRevision]).toEqual([1, put.revision]);
    // Nothing else was written: the next write is the very next revision.
    expect((await c.put('once/next', 'y')).revision).toBe(put.revision + 1);
  });

  it('a retried read-modify-write transaction increments once', async () => {
    const p = await proxy(12);
    const c = client([p.endpoint]);
    await c.put('once/counter', '0');
    const cur = (await c.get('once/counter'))!;
    p.dropAnswers(1);
    const r = await c
      .txn()
      .if(Compare.modRevision('once/counter', '=', cur.modRevision))
      .then(Op.put('once/counter', String(Number(cur.valueText) + 1)))
      .commit();
    // Applied twice, the second run's compare would fail; applied once and answered from the table: succeeded.
    expect(p.dropped).toBe(1);
    expect(r.succeeded).toBe(true);
    expect((await c.get('once/counter'))?.valueText).toBe('1');
  });

  it('negative control: with exactlyOnce off, the same loss is OutcomeUnknownError, and the write did apply', async () => {
    const p = await proxy(13);
    const c = client([p.endpoint], { exactlyOnce: 'off' });
    await c.put('unknown/warm', 'x');
    p.dropAnswers(1);
    const e = await c.put('unknown/k', 'v').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OutcomeUnknownError);
    expect((e as OutcomeUnknownError).code).toBe('OUTCOME_UNKNOWN');
    expect((await c.get('unknown/k'))?.valueText).toBe('v');
  });

  it('reads are retried freely', async () => {
    const p = await proxy(14);
    const c = client([p.endpoint], { exactlyOnce: 'off' });
    await c.put('read/k', 'v');
    p.dropAnswers(1);
    expect((await c.get('read/k'))?.valueText).toBe('v');
    expect(p.dropped).toBe(1);
  });
});

describe('a member that goes silent', () => {
  it('is avoided: calls move to a healthy member, and come back once it answers again', async () => {
    const p = await proxy(15);
    const c = client([p.endpoint, server.endpoint]);
    for (let i = 0; i < 4; i++) await c.put(`silent/${i}`, 'v');
    p.setSilent(true);
    for (let i = 0; i < 10; i++) expect((await c.put(`silent/${i}`, 'w')).revision).toBeGreaterThan(0);
    expect(c.avoidedEndpoints).toEqual([p.endpoint]);
    p.setSilent(false);
    // The probe brings it back (a fresh connection: the old one may still wait on its stalled stream).
    const until = performance.now() + 30_000;
    while (c.avoidedEndpoints.length > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(c.avoidedEndpoints).toEqual([]);
  });

  it('a watch on it moves to another member and still sees every event once, in order', async () => {
    const p = await proxy(16);
    // The proxy first: the watch's stream goes through it.
    const c = client([p.endpoint, server.endpoint], { watchIdleProbeMs: 300, watchProbeTimeoutMs: 500 });
    const writer = client([server.endpoint]);
    const watch = c.watch({ prefix: 'sw/' });
    const resumed: string[] = [];
    watch.on('resumed', (r) => resumed.push(r.endpoint));
    await watch.ready;
    const got: WatchEvent[] = [];
    const reading = (async () => {
      for await (const e of watch) {
        got.push(e);
        if (got.length === 60) return;
      }
    })();
    for (let i = 0; i < 20; i++) await writer.put(`sw/${i}`, 'a');
    p.setSilent(true);
    for (let i = 20; i < 60; i++) await writer.put(`sw/${i}`, 'b');
    await reading;
    expect(got.map((e) => e.kv.keyText)).toEqual(Array.from({ length: 60 }, (_, i) => `sw/${i}`));
    expect(resumed).toContain(server.endpoint);
    p.setSilent(false);
  });
});

describe('a member without a leader (cut off from its majority)', () => {
  it('refuses at once with "no leader": calls and watches move to a member that has one', async () => {
    const lonely = await startLeaderlessMember(17);
    try {
      // Alone, a write fails as unavailable — never "outcome unknown": nothing was proposed.
      const alone = client([lonely.endpoint], { requestTimeoutMs: 1_500 });
      const e = await alone.put('nl/k', 'v').catch((x: unknown) => x);
      expect(e).toBeInstanceOf(UnavailableError);
      expect((e as UnavailableError).code).toBe('NO_LEADER');

      const c = client([lonely.endpoint, server.endpoint], { watchIdleProbeMs: 300, watchProbeTimeoutMs: 500 });
      const watch = c.watch('nl/w'); // the first pick: the leaderless member
      for (let i = 0; i < 10; i++) await c.put(`nl/${i}`, 'v');
      expect(c.avoidedEndpoints).toEqual([lonely.endpoint]);
      await watch.ready;
      await c.put('nl/w', 'seen');
      for await (const ev of watch) {
        expect(ev.kv.valueText).toBe('seen');
        break;
      }
    } finally {
      await lonely.close();
    }
  });
});

describe('a lease holder cut off from every member', () => {
  it('hears `lost` while the server still holds the lease, and the server expires it only later', async () => {
    const p = await proxy(18);
    const holder = client([p.endpoint]);
    const observer = client([server.endpoint]);
    // A wide margin, so that the observer's reads below land well before the server's earliest expiry.
    const lease = await holder.grantLease(4, { marginMs: 2_000 });
    await holder.put('cut/lock', 'mine', { lease });
    await new Promise((r) => setTimeout(r, 1_200)); // a keep-alive or two go through
    p.setSilent(true); // the holder can no longer renew (nor revoke)
    const lost = await new Promise<LeaseLostError>((r) => lease.once('lost', r));
    expect(lost.reason).toBe('deadline');
    expect(lease.signal.aborted).toBe(true);
    // At that moment the server still holds the lease and its key: the holder stopped first.
    const [ttl, kv] = await Promise.all([
      observer.unary<{ TTL: string }>('read', 'ttl', (s, md, o, cb) => s.lease.LeaseTimeToLive({ ID: String(lease.id) }, md, o, cb)),
      observer.get('cut/lock'),
    ]);
    expect(Number(ttl.TTL)).toBeGreaterThanOrEqual(0); // whole seconds left, rounded down; -1 would mean gone
    expect(kv?.lease).toBe(lease.id);
    // Then the server expires it on its own.
    const until = performance.now() + 20_000;
    while ((await observer.get('cut/lock')) !== undefined && performance.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(await observer.get('cut/lock')).toBeUndefined();
    p.setSilent(false);
  });
});
