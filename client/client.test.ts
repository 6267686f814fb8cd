// The client against a real in-process Fulcrum member over real gRPC on loopback: KV, ranges and paging,
// transactions, compaction, leases, watches, the HLC fields and reads "as of" a time, namespaces, errors.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, CompactedError, Compare, InvalidArgumentError, LeaseLostError, Op, type WatchEvent } from './index.js';
import { hlcWallMs } from './types.js';
import { eventually } from '../node/testing/eventually.js';
import { startTestMember, type TestMember } from './testing/servers.js';

let server: TestMember;
let client: Client;

beforeAll(async () => {
  server = await startTestMember(1);
  client = server.client();
});
afterAll(async () => {
  await server.close();
});

const texts = (kvs: { keyText: string; valueText: string }[]): string[] => kvs.map((kv) => `${kv.keyText}=${kv.valueText}`);

describe('KV', () => {
  it('puts, gets, deletes, with revisions, versions and prev values', async () => {
    const first = await client.put('kv/a', 'one');
    expect(first.revision).toBeGreaterThan(0);
    const second = await client.put('kv/a', Buffer.from('two'), { prevKv: true });
    expect(second.revision).toBe(first.revision + 1);
    expect(second.prevKv?.valueText).toBe('one');
    const kv = await client.get('kv/a');
    expect([kv?.valueText, kv?.version, kv?.createRevision, kv?.modRevision]).toEqual(['two', 2, first.revision, second.revision]);
    expect((await client.get('kv/a', { revision: first.revision }))?.valueText).toBe('one');
    expect(await client.get('kv/missing')).toBeUndefined();
    const del = await client.delete('kv/a', { prevKv: true });
    expect([del.deleted, del.prevKvs[0]?.valueText]).toEqual([1, 'two']);
    expect(await client.get('kv/a')).toBeUndefined();
  });

  it('reads prefixes and ranges, with limit, sort and count', async () => {
    for (const k of ['r/a', 'r/b', 'r/c', 'r/d', 'rz']) await client.put(k, k.toUpperCase());
    expect(texts(await client.getPrefix('r/'))).toEqual(['r/a=R/A', 'r/b=R/B', 'r/c=R/C', 'r/d=R/D']);
    expect(texts((await client.range({ start: 'r/b', end: 'r/d' })).kvs)).toEqual(['r/b=R/B', 'r/c=R/C']);
    const limited = await client.range({ prefix: 'r/' }, { limit: 2, sort: { order: 'descend' } });
    expect([texts(limited.kvs), limited.more, limited.count]).toEqual([['r/d=R/D', 'r/c=R/C'], true, 4]);
    expect(await client.count({ prefix: 'r/' })).toBe(4);
    expect((await client.range({ start: 'r/c' })).kvs.map((kv) => kv.keyText)).toEqual(['r/c', 'r/d', 'rz']);
    expect((await client.delete({ prefix: 'r/' })).deleted).toBe(4);
  });

  it('iterates a large range in pages, all at the revision of the first page', async () => {
    const n = 250;
    await Promise.all(Array.from({ length: n }, (_, i) => client.put(`big/${String(i).padStart(4, '0')}`, `v${i}`)));
    const seen: string[] = [];
    for await (const kv of client.iterate({ prefix: 'big/' }, { pageSize: 40 })) {
      if (seen.length === 10) await client.put('big/0005', 'changed during iteration'); // must not show up
      if (seen.length === 20) await client.put('big/9999', 'added during iteration');
      seen.push(`${kv.keyText}=${kv.valueText}`);
    }
    expect(seen).toHaveLength(n);
    expect(seen[5]).toBe('big/0005=v5');
    expect(seen).toEqual([...seen].sort());
    expect(seen.at(-1)).toBe(`big/0249=v249`);
  });

  it('runs transactions: if/then/else on value, version, revisions and lease', async () => {
    const { revision } = await client.put('t/k', 'v1');
    const ok = await client
      .txn()
      .if(Compare.value('t/k', '=', 'v1'), Compare.version('t/k', '=', 1), Compare.modRevision('t/k', '=', revision), Compare.createRevision('t/k', '=', revision), Compare.lease('t/k', '=', 0n))
      .then(Op.put('t/k', 'v2'), Op.get('t/k'), Op.put('t/other', 'x', { prevKv: true }))
      .else(Op.get('t/k'))
      .commit();
    expect(ok.succeeded).toBe(true);
    expect(ok.results.map((r) => r.type)).toEqual(['put', 'get', 'put']);
    expect(ok.results[1]!.type === 'get' && ok.results[1]!.kvs[0]!.valueText).toBe('v2');
    const no = await client.txn().if(Compare.value('t/k', '=', 'v1')).then(Op.delete('t/k')).else(Op.get('t/k'), Op.delete({ prefix: 't/o' })).commit();
    expect(no.succeeded).toBe(false);
    expect(no.results[0]!.type === 'get' && no.results[0]!.kvs[0]!.valueText).toBe('v2');
    expect(no.results[1]!.type === 'delete' && no.results[1]!.deleted).toBe(1);
    const missing = await client.txn().if(Compare.missing('t/nope'), Compare.exists('t/k')).then(Op.txn({ compare: [], success: [Op.put('t/nested', 'n')], failure: [] })).commit();
    expect(missing.succeeded).toBe(true);
    expect((await client.get('t/nested'))?.valueText).toBe('n');
    // The builder refuses a misuse: then after else.
    expect(() => client.txn().else(Op.get('x')).then(Op.get('y'))).toThrow(InvalidArgumentError);
  });

  it('exposes each version\'s HLC and reads what was current at a wall-clock time', async () => {
    const before = await client.put('hlc/k', 'old');
    const kvOld = (await client.get('hlc/k'))!;
    expect(kvOld.modHlc).toBe(before.hlc);
    expect(kvOld.modHlc).toBeGreaterThan(0n);
    expect(Math.abs(hlcWallMs(kvOld.modHlc) - Date.now())).toBeLessThan(60_000);
    expect(kvOld.modTime).toBeInstanceOf(Date);
    await new Promise((r) => setTimeout(r, 30));
    const between = new Date();
    await new Promise((r) => setTimeout(r, 30));
    const after = await client.put('hlc/k', 'new');
    expect(after.hlc).toBeGreaterThan(before.hlc);
    expect((await client.get('hlc/k', { at: between }))?.valueText).toBe('old');
    expect((await client.get('hlc/k'))?.valueText).toBe('new');
    const at = await client.revisionAt(between);
    expect(at.revision).toBeGreaterThanOrEqual(before.revision);
    expect(at.revision).toBeLessThan(after.revision);
  });

  it('compacts; reads below the compaction are CompactedError', async () => {
    const { revision } = await client.put('c/k', '1');
    await client.put('c/k', '2');
    await client.compact(revision + 1);
    const e = await client.get('c/k', { revision }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CompactedError);
    expect((e as CompactedError).code).toBe('COMPACTED');
  });

  it('refuses bad input with InvalidArgumentError before a round trip', async () => {
    await expect(client.put('', 'x')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(client.get('k', { revision: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(() => new Client({ endpoints: [] })).toThrow(/endpoints/);
    expect(() => new Client({ endpoints: ['nonsense'] })).toThrow(/bad endpoint/);
    await expect(client.put('k', 'v', { lease: 424242n })).rejects.toMatchObject({ code: 'LEASE_NOT_FOUND', retryable: false });
  });

  it('honours an AbortSignal and a deadline', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(client.get('k', { signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    // A key that will not come: a watch-free way to make a call wait is a txn on a far-future revision read.
    await expect(client.get('k', { revision: 1e12, timeoutMs: 500 })).rejects.toMatchObject({ code: 'FUTURE_REVISION' });
  });
});

describe('exactly-once identities under concurrency', () => {
  it('many concurrent writes over few lanes all apply, none refused as stale', async () => {
    const c = server.client({ writesInFlightMax: 4 });
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => c.put(`lanes/${i}`, String(i))));
    expect(new Set(results.map((r) => r.revision)).size).toBe(200);
    expect(await c.count({ prefix: 'lanes/' })).toBe(200);
  });

  it('negative control: one identity with two writes out of order — the server refuses the older (why lanes exist)', async () => {
    const id = `${client.clientId}-manual`;
    const put = (seq: number, key: string): Promise<unknown> =>
      client.unary('read', 'raw put', (s, md, o, cb) => {
        md.set('fulcrum-request-id', `${id}:${seq}`);
        return s.kv.Put({ key: Buffer.from(key), value: Buffer.from('v') }, md, o, cb);
      });
    await put(2, 'lanes/second');
    await expect(put(1, 'lanes/first')).rejects.toMatchObject({ code: 'STALE_SEQUENCE' });
    expect(await client.get('lanes/first')).toBeUndefined();
  });
});

describe('namespaces', () => {
  it('prefixes keys, ranges, txns and watches, and strips the prefix from what comes back', async () => {
    const app = client.namespace('app1/');
    const watch = app.watch({ prefix: '' });
    await watch.ready;
    await app.put('a', '1');
    await app.put('b', '2');
    await client.put('app10', 'outside'); // shares a prefix string, not the namespace
    expect((await client.get('app1/a'))?.valueText).toBe('1');
    expect(texts(await app.getPrefix(''))).toEqual(['a=1', 'b=2']);
    expect(texts((await app.range({ start: 'b' })).kvs)).toEqual(['b=2']);
    const t = await app.txn().if(Compare.value('a', '=', '1')).then(Op.get({ prefix: '' }), Op.delete('b')).commit();
    expect(t.results[0]!.type === 'get' && t.results[0]!.kvs.map((kv) => kv.keyText)).toEqual(['a', 'b']);
    // A lease's keys, seen from a namespace: only those inside it.
    const lease = await app.grantLease(30);
    await app.put('leased', 'v', { lease });
    await client.put('outside-ns', 'v', { lease });
    expect((await lease.timeToLive({ keys: true })).keys.map(String)).toEqual(['leased']);
    await lease.close();
    const nested = app.namespace('deep/');
    await nested.put('x', 'y');
    expect((await client.get('app1/deep/x'))?.valueText).toBe('y');
    const events: string[] = [];
    for await (const e of watch) {
      events.push(`${e.type} ${e.kv.keyText}`);
      if (events.length === 6) break;
    }
    expect(events).toEqual(['put a', 'put b', 'delete b', 'put leased', 'delete leased', 'put deep/x']);
  });
});

describe('leases', () => {
  it('grants, keeps alive past the TTL, binds keys, revokes on close', async () => {
    const lease = await client.grantLease(2);
    expect(lease.ttlSeconds).toBe(2);
    expect(lease.validUntil).toBeGreaterThan(performance.now());
    await client.put('l/k', 'v', { lease });
    await new Promise((r) => setTimeout(r, 3_000)); // longer than the TTL: only keep-alives keep it
    expect((await client.get('l/k'))?.lease).toBe(lease.id);
    expect(lease.lost).toBeUndefined();
    expect(lease.remainingMs).toBeGreaterThan(0);
    const ttl = await lease.timeToLive({ keys: true });
    expect(ttl.keys.map((k) => k.toString())).toEqual(['l/k']);
    await lease.close();
    expect(await client.get('l/k')).toBeUndefined();
    expect(lease.signal.aborted).toBe(true);
    expect(lease.lost?.reason).toBe('revoked');
  });

  it('reports a lease revoked elsewhere as lost (expired), through the event and the signal', async () => {
    const lease = await client.grantLease(5);
    const lost = new Promise<LeaseLostError>((r) => lease.once('lost', r));
    const other = server.client();
    await other.unary('write', 'revoke', (s, md, o, cb) => s.lease.LeaseRevoke({ ID: String(lease.id) }, md, o, cb));
    const e = await lost;
    expect(e.reason).toBe('expired');
    expect(lease.signal.aborted).toBe(true);
    expect(lease.signal.reason).toBe(e);
  });

  it('without keep-alive, fires lost at its deadline, before the server expires it', async () => {
    const lease = await client.grantLease(2, { keepAlive: false, marginMs: 500, revokeOnLoss: false });
    await client.put('l/short', 'v', { lease });
    const e = await new Promise<LeaseLostError>((r) => lease.once('lost', r));
    expect(e.reason).toBe('deadline');
    // The client gave the lease up while the server still held it ...
    expect((await client.get('l/short'))?.lease).toBe(lease.id);
    // ... and the server expires it afterwards on its own.
    await eventually('the server to expire the lease', async () => ((await client.get('l/short')) === undefined ? true : undefined), 10_000, 50);
  });

  it('after a missed deadline, revokes the lease itself (revokeOnLoss)', async () => {
    const lease = await client.grantLease(3, { keepAlive: false, marginMs: 1_000 });
    await client.put('l/revoked', 'v', { lease });
    await new Promise<LeaseLostError>((r) => lease.once('lost', r));
    await eventually('the client to revoke the lease', async () => ((await client.get('l/revoked')) === undefined ? true : undefined), 10_000, 20);
  });
});

describe('watches', () => {
  it('delivers puts and deletes in order, with prev values, from a past revision, and progress', async () => {
    const { revision } = await client.put('w/a', '1');
    await client.put('w/a', '2');
    await client.delete('w/a');
    const watch = client.watch({ prefix: 'w/' }, { startRevision: revision, prevKv: true });
    const got: WatchEvent[] = [];
    for await (const e of watch) {
      got.push(e);
      if (got.length === 3) break;
    }
    expect(got.map((e) => `${e.type} ${e.kv.keyText} ${e.kv.valueText} prev=${e.prevKv?.valueText ?? '-'} @${e.revision - revision}`)).toEqual([
      'put w/a 1 prev=- @0',
      'put w/a 2 prev=1 @1',
      'delete w/a  prev=2 @2',
    ]);
    expect(watch.closed).toBe(true);
    const live = client.watch('w/b');
    await live.ready;
    const p = await live.requestProgress();
    expect(p).toBeGreaterThanOrEqual(revision + 2);
    live.cancel();
  });

  it('joins a revision the server sent in fragments (bigger than its response limit) into one group', async () => {
    const big = (c: string): string => c.repeat(700 * 1024); // two of them fit one request (1.5 MiB), not one response with prev values
    await client.put('wf/a', big('a'));
    await client.put('wf/b', big('b'));
    const watch = client.watch({ prefix: 'wf/' }, { prevKv: true });
    await watch.ready;
    const t = await client.txn().then(Op.put('wf/a', big('c')), Op.put('wf/b', big('d'))).commit();
    const got: WatchEvent[] = [];
    for await (const e of watch) {
      got.push(e);
      if (got.length === 2) break;
    }
    expect(got.map((e) => [e.kv.keyText, e.revision, e.kv.value.length, e.prevKv?.value.length])).toEqual([
      ['wf/a', t.revision, 700 * 1024, 700 * 1024],
      ['wf/b', t.revision, 700 * 1024, 700 * 1024],
    ]);
  });

  it('a compacted start is an explicit CompactedError', async () => {
    const { revision } = await client.put('wc/a', '1');
    await client.put('wc/a', '2');
    await client.compact(revision + 1);
    const watch = client.watch('wc/a', { startRevision: revision });
    const e = await (async () => {
      for await (const _ of watch) void _;
    })().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CompactedError);
    expect((e as CompactedError).compactRevision).toBe(revision + 1);
  });

  it('events through listeners, and cancel via an AbortSignal', async () => {
    const ac = new AbortController();
    const watch = client.watch('wl/k', { signal: ac.signal });
    const seen: string[] = [];
    watch.on('event', (e) => seen.push(e.kv.valueText));
    await watch.ready;
    await client.put('wl/k', 'x');
    await client.put('wl/k', 'y');
    await watch.requestProgress();
    ac.abort();
    expect(seen).toEqual(['x', 'y']);
    expect(watch.closed).toBe(true);
  });
});
