import { describe, expect, it } from 'vitest';
import { MemoryBackend, prefixEnd } from '../backend.js';
import { MvccError, MVCC_ERROR_MESSAGES } from './errors.js';
import { Harness, b, kvView, s } from './testing/harness.js';
import type { RangeRequest, TxnRequest } from './types.js';

async function expectMvccError(p: Promise<unknown> | (() => unknown), code: string, message?: string): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(MvccError);
  expect((err as MvccError).code).toBe(code);
  if (message !== undefined) expect((err as MvccError).message).toBe(message);
}

async function keys(h: Harness, req: Partial<RangeRequest> & { key: Uint8Array }): Promise<string[]> {
  return (await h.store.range(req)).kvs.map((kv) => s(kv.key));
}

describe('revisions and put', () => {
  it('starts at revision 1 and bumps the main revision per write', async () => {
    const h = await Harness.open();
    expect(h.store.revision).toBe(1);
    expect((await h.store.range({ key: b('a') })).header.revision).toBe(1);
    expect(await h.put('a', '1')).toBe(2);
    expect(await h.put('a', '2')).toBe(3);
    expect(await h.put('b', '1')).toBe(4);
    const r = await h.store.range({ key: b('a') });
    expect(r.kvs.map(kvView)).toEqual([{ key: 'a', value: '2', create: 2, mod: 3, version: 2, lease: 0n }]);
    expect(r.count).toBe(1);
    expect(r.header.revision).toBe(4);
  });

  it('restarts version and create revision after a delete', async () => {
    const h = await Harness.open();
    await h.put('a', '1');
    await h.put('a', '2');
    await h.del('a');
    await h.put('a', '3');
    const [kv] = (await h.store.range({ key: b('a') })).kvs;
    expect(kvView(kv!)).toMatchObject({ value: '3', create: 5, mod: 5, version: 1 });
  });

  it('returns prev_kv and honours ignore_value / ignore_lease', async () => {
    const h = await Harness.open();
    await h.put('a', 'x', 7n);
    const r = await h.write((st, batch) => st.put({ key: b('a'), value: b(''), ignoreValue: true, prevKv: true }, batch));
    expect(kvView(r.response.prevKv!)).toMatchObject({ value: 'x', lease: 7n });
    const [kv] = (await h.store.range({ key: b('a') })).kvs;
    expect(kvView(kv!)).toMatchObject({ value: 'x', lease: 0n, version: 2 });
    await h.write((st, batch) => st.put({ key: b('a'), value: b('y'), lease: 9n }, batch));
    await h.write((st, batch) => st.put({ key: b('a'), value: b('z'), ignoreLease: true }, batch));
    expect(kvView((await h.store.range({ key: b('a') })).kvs[0]!)).toMatchObject({ value: 'z', lease: 9n });
  });

  it('keeps no reference to the request\'s bytes: its event and later reads see the value as put', async () => {
    // A request's value is a view into the whole decoded command; the store copies it once, into the row.
    const h = await Harness.open();
    const command = b('..key..value..');
    const req = { key: command.subarray(2, 5), value: command.subarray(7, 12) };
    const r = await h.write((st, batch) => st.put(req, batch));
    command.fill(0x21);
    const event = r.events[0]!;
    expect(s(event.kv.key)).toBe('key');
    expect(s(event.kv.value)).toBe('value');
    expect(event.kv.value.buffer).not.toBe(command.buffer);
    expect((await h.store.range({ key: b('key') })).kvs.map(kvView)).toMatchObject([{ key: 'key', value: 'value' }]);
  });

  it('rejects bad puts with etcd errors', async () => {
    const h = await Harness.open({ valueBytesMax: 4 });
    const batch = h.backend.batch();
    await expectMvccError(h.store.put({ key: b(''), value: b('v') }, batch), 'EMPTY_KEY', 'etcdserver: key is not provided');
    await expectMvccError(h.store.put({ key: b('k'), value: b('v'), ignoreValue: true }, batch), 'VALUE_PROVIDED', 'etcdserver: value is provided');
    await expectMvccError(h.store.put({ key: b('k'), value: b(''), lease: 1n, ignoreLease: true }, batch), 'LEASE_PROVIDED');
    await expectMvccError(h.store.put({ key: b('k'), value: b(''), ignoreValue: true }, batch), 'KEY_NOT_FOUND', 'etcdserver: key not found');
    await expectMvccError(h.store.put({ key: b('k'), value: b(''), ignoreLease: true }, batch), 'KEY_NOT_FOUND');
    await expectMvccError(h.store.put({ key: b('k'), value: b('12345') }, batch), 'REQUEST_TOO_LARGE');
    expect(batch.length).toBe(0);
    expect(h.store.revision).toBe(1);
  });

  it('checks lease existence through the lease module hook', async () => {
    const { MvccStore } = await import('./store.js');
    const { MemoryBackend } = await import('../backend.js');
    const backend = new MemoryBackend();
    const store = await MvccStore.open(backend, { leaseExists: (id) => id === 5n });
    await expectMvccError(store.put({ key: b('k'), value: b('v'), lease: 6n }, backend.batch()), 'LEASE_NOT_FOUND');
    expect((await store.put({ key: b('k'), value: b('v'), lease: 5n }, backend.batch())).revision).toBe(2);
  });
});

describe('uncommitted batches', () => {
  it('a later write in the same batch reads what an earlier one wrote before the batch is committed', async () => {
    const h = await Harness.open();
    const batch = h.backend.batch();
    await h.store.put({ key: b('a'), value: b('1') }, batch);
    const r = await h.store.txn(
      { compare: [{ key: b('a'), target: 'VALUE', result: 'EQUAL', value: b('1') }], success: [{ requestPut: { key: b('a'), value: b('2'), prevKv: true } }] },
      batch,
    );
    expect(r.response.succeeded).toBe(true);
    expect((await h.store.range({ key: b('a'), revision: 2 })).kvs.map((kv) => s(kv.value))).toEqual(['1']);
    expect(await h.backend.get(new Uint8Array([0x6b, 0x2f]))).toBeUndefined();
    await batch.write({ sync: false });
    h.store.committed(r.revision);
    await h.reopen();
    expect((await h.store.range({ key: b('a') })).kvs.map(kvView)).toEqual([{ key: 'a', value: '2', create: 2, mod: 3, version: 2, lease: 0n }]);
  });

  it('asserts that writes are applied one at a time', async () => {
    // Without the row cache, so the first put's previous row is not in memory.
    const h = await Harness.open({ rowCacheBytes: 0 });
    await h.put('a', '1');
    const batch = h.backend.batch();
    const first = h.store.put({ key: b('a'), value: b('2') }, batch); // reads prev kv: awaits the backend
    await expect(h.store.put({ key: b('b'), value: b('2') }, batch)).rejects.toThrow(/one at a time/);
    await first;
  });
});

describe('row cache', () => {
  /** A MemoryBackend that counts the rows it is asked for. */
  function countingBackend(): { backend: MemoryBackend; reads: () => number } {
    const backend = new MemoryBackend();
    let reads = 0;
    const get = backend.get.bind(backend);
    const getMany = backend.getMany.bind(backend);
    backend.get = (k) => ((reads += 1), get(k));
    backend.getMany = (ks) => ((reads += ks.length), getMany(ks));
    return { backend, reads: () => reads };
  }

  const overwrite = async (h: Harness): Promise<string> => {
    const r = await h.write((st, batch) => st.put({ key: b('a'), value: b('2'), prevKv: true }, batch));
    return s(r.response.prevKv!.value);
  };

  it('keeps committed rows, so overwriting a key (prev_kv) and reading it back ask the backend for nothing', async () => {
    const { backend, reads } = countingBackend();
    const h = await Harness.open({}, backend);
    await h.put('a', '1');
    const before = reads();
    expect(await overwrite(h)).toBe('1');
    expect((await h.store.range({ key: b('a') })).kvs.map((kv) => s(kv.value))).toEqual(['2']);
    expect(reads() - before).toBe(0);
  });

  it('holds current rows only: an overwritten or deleted revision leaves the cache, and is still read from the backend', async () => {
    const { backend, reads } = countingBackend();
    const h = await Harness.open({}, backend);
    for (let i = 0; i < 50; i++) await h.put('a', `v${i}`);
    await h.put('b', '1');
    await h.write((st, batch) => st.deleteRange({ key: b('b') }, batch));
    // 'a' at its current revision, and the tombstone of 'b' (a delete's row is current until the key is written again)
    expect(h.store.rowCache.size).toBe(2);
    const before = reads();
    expect((await h.store.range({ key: b('a'), revision: 10 })).kvs.map((kv) => s(kv.value))).toEqual(['v8']);
    expect(reads() - before).toBe(1);
  });

  it('leaves out of the cache a row overwritten before its batch was committed', async () => {
    const h = await Harness.open();
    const batch = h.backend.batch();
    const first = await h.store.put({ key: b('a'), value: b('1') }, batch);
    const second = await h.store.put({ key: b('a'), value: b('2'), prevKv: true }, batch);
    expect(s(second.response.prevKv!.value)).toBe('1');
    await batch.write({ sync: false });
    h.store.committed(second.revision);
    expect(h.store.rowCache.size).toBe(1);
    expect((await h.store.range({ key: b('a'), revision: first.revision })).kvs.map((kv) => s(kv.value))).toEqual(['1']);
  });

  it('without the cache the same overwrite reads the previous row from the backend (control)', async () => {
    const { backend, reads } = countingBackend();
    const h = await Harness.open({ rowCacheBytes: 0 }, backend);
    await h.put('a', '1');
    const before = reads();
    expect(await overwrite(h)).toBe('1');
    expect(reads() - before).toBeGreaterThan(0);
  });
});

describe('putFromMemory', () => {
  it('puts at once what put() would, when the previous row is in memory, and does nothing when it is not', async () => {
    // The same history on two stores: one keeps rows in memory, the other must read them from the backend.
    const cached = await Harness.open();
    const uncached = await Harness.open({ rowCacheBytes: 0 });
    for (const h of [cached, uncached]) {
      await h.put('a', '1', 0n);
      await h.put('b', '1');
    }
    const req = { key: b('a'), value: b('2'), prevKv: true };
    const batch = uncached.backend.batch();
    expect(uncached.store.putFromMemory(req, batch)).toBeUndefined();
    expect([batch.length, uncached.store.revision]).toEqual([0, 3]);
    const viaRead = await uncached.write((st, wb) => st.put(req, wb, 5n << 16n));
    const atOnce = await cached.write(async (st, wb) => st.putFromMemory(req, wb, 5n << 16n)!);
    expect(atOnce).toEqual(viaRead);
    expect(atOnce.response.prevKv?.value).toEqual(b('1'));
    // A new key and a put that reads nothing need no row at all, cache or not.
    expect(uncached.store.putFromMemory({ key: b('new'), value: b('x') }, uncached.backend.batch())?.revision).toBe(5);
  });

  it('refuses what put() refuses, before it looks for a row', async () => {
    const h = await Harness.open({ rowCacheBytes: 0 });
    expect(() => h.store.putFromMemory({ key: new Uint8Array(0), value: b('x') }, h.backend.batch())).toThrow(expect.objectContaining({ code: 'EMPTY_KEY' }));
    expect(() => h.store.putFromMemory({ key: b('missing'), value: new Uint8Array(0), ignoreValue: true }, h.backend.batch())).toThrow(expect.objectContaining({ code: 'KEY_NOT_FOUND' }));
    expect(h.store.revision).toBe(1);
  });
});

describe('range', () => {
  async function abc(): Promise<Harness> {
    const h = await Harness.open();
    for (const k of ['a', 'ab', 'abc', 'b', 'c']) await h.put(k, `v-${k}`);
    return h;
  }

  it('reads one key, a range, a prefix and everything from a key', async () => {
    const h = await abc();
    expect(await keys(h, { key: b('ab') })).toEqual(['ab']);
    expect(await keys(h, { key: b('a'), rangeEnd: b('b') })).toEqual(['a', 'ab', 'abc']);
    expect(await keys(h, { key: b('ab'), rangeEnd: prefixEnd(b('ab')) })).toEqual(['ab', 'abc']);
    expect(await keys(h, { key: b('abc'), rangeEnd: new Uint8Array([0]) })).toEqual(['abc', 'b', 'c']);
    expect(await keys(h, { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) })).toEqual(['a', 'ab', 'abc', 'b', 'c']);
    expect(await keys(h, { key: b('c'), rangeEnd: b('a') })).toEqual([]);
    expect(await keys(h, { key: b('zz') })).toEqual([]);
  });

  it('applies limit with more and count as etcd', async () => {
    const h = await abc();
    const r = await h.store.range({ key: b('a'), rangeEnd: b('z'), limit: 2 });
    expect(r.kvs.map((kv) => s(kv.key))).toEqual(['a', 'ab']);
    expect(r.more).toBe(true);
    expect(r.count).toBe(5);
    const all = await h.store.range({ key: b('a'), rangeEnd: b('z'), limit: 5 });
    expect(all.more).toBe(false);
  });

  it('sorts by every target, both orders', async () => {
    const h = await Harness.open();
    await h.put('a', 'z');
    await h.put('b', 'y');
    await h.put('b', 'y2');
    await h.put('c', 'x');
    const all = { key: b('a'), rangeEnd: b('z') };
    expect(await keys(h, { ...all, sortTarget: 'KEY', sortOrder: 'DESCEND' })).toEqual(['c', 'b', 'a']);
    expect(await keys(h, { ...all, sortTarget: 'VALUE' })).toEqual(['c', 'b', 'a']);
    expect(await keys(h, { ...all, sortTarget: 'VALUE', sortOrder: 'DESCEND' })).toEqual(['a', 'b', 'c']);
    expect(await keys(h, { ...all, sortTarget: 'VERSION', sortOrder: 'DESCEND' })).toEqual(['b', 'a', 'c']);
    expect(await keys(h, { ...all, sortTarget: 'MOD', sortOrder: 'DESCEND' })).toEqual(['c', 'b', 'a']);
    expect(await keys(h, { ...all, sortTarget: 'CREATE', sortOrder: 'DESCEND' })).toEqual(['c', 'b', 'a']);
    const top = await h.store.range({ ...all, sortTarget: 'MOD', sortOrder: 'DESCEND', limit: 1 });
    expect(top.kvs.map((kv) => s(kv.key))).toEqual(['c']);
    expect(top.more).toBe(true);
    expect(top.count).toBe(3);
  });

  it('filters by mod and create revision, counting before the filter', async () => {
    const h = await abc(); // a@2 ab@3 abc@4 b@5 c@6
    const r = await h.store.range({ key: b('a'), rangeEnd: b('z'), minModRevision: 3, maxModRevision: 5 });
    expect(r.kvs.map((kv) => s(kv.key))).toEqual(['ab', 'abc', 'b']);
    expect(r.count).toBe(5);
    expect(await keys(h, { key: b('a'), rangeEnd: b('z'), minCreateRevision: 5 })).toEqual(['b', 'c']);
    expect(await keys(h, { key: b('a'), rangeEnd: b('z'), maxCreateRevision: 2 })).toEqual(['a']);
  });

  it('keys_only drops values, count_only drops kvs', async () => {
    const h = await abc();
    const ko = await h.store.range({ key: b('a'), keysOnly: true });
    expect(kvView(ko.kvs[0]!)).toMatchObject({ key: 'a', value: '', version: 1, mod: 2 });
    const co = await h.store.range({ key: b('a'), rangeEnd: b('z'), countOnly: true, limit: 1 });
    expect(co).toEqual({ header: { revision: 6 }, kvs: [], more: false, count: 5 });
  });

  it('reads the past and refuses the future and the compacted', async () => {
    const h = await Harness.open();
    await h.put('a', '1'); // 2
    await h.put('a', '2'); // 3
    await h.del('a'); // 4
    expect((await h.store.range({ key: b('a'), revision: 2 })).kvs.map(kvView)[0]).toMatchObject({ value: '1' });
    expect((await h.store.range({ key: b('a'), revision: 3 })).kvs.map(kvView)[0]).toMatchObject({ value: '2' });
    expect((await h.store.range({ key: b('a'), revision: 4 })).kvs).toEqual([]);
    expect((await h.store.range({ key: b('a'), revision: 3 })).header.revision).toBe(4);
    await expectMvccError(h.store.range({ key: b('a'), revision: 5 }), 'FUTURE_REVISION', MVCC_ERROR_MESSAGES.FUTURE_REVISION);
    await h.compact(3);
    await expectMvccError(h.store.range({ key: b('a'), revision: 2 }), 'COMPACTED', 'etcdserver: mvcc: required revision has been compacted');
    expect((await h.store.range({ key: b('a'), revision: 3 })).kvs.map(kvView)[0]).toMatchObject({ value: '2' });
    await expectMvccError(h.store.range({ key: b('') }), 'EMPTY_KEY');
  });
});

describe('delete range', () => {
  it('deletes a range, returns count and prev kvs, leaves tombstones', async () => {
    const h = await Harness.open();
    for (const k of ['a', 'b', 'c']) await h.put(k, k);
    const r = await h.write((st, batch) => st.deleteRange({ key: b('a'), rangeEnd: b('c'), prevKv: true }, batch));
    expect(r.response.deleted).toBe(2);
    expect(r.response.prevKvs.map((kv) => s(kv.value))).toEqual(['a', 'b']);
    expect(r.events.map((e) => [e.type, s(e.kv.key), e.kv.modRevision])).toEqual([
      ['DELETE', 'a', 5],
      ['DELETE', 'b', 5],
    ]);
    expect(r.revision).toBe(5);
    expect(await keys(h, { key: b('a'), rangeEnd: b('z') })).toEqual(['c']);
    const none = await h.write((st, batch) => st.deleteRange({ key: b('x') }, batch));
    expect(none.response.deleted).toBe(0);
    expect(none.revision).toBe(5);
  });
});

describe('txn', () => {
  it('compares and picks a branch, all writes at one revision', async () => {
    const h = await Harness.open();
    await h.put('a', '1');
    const req: TxnRequest = {
      compare: [{ key: b('a'), target: 'VALUE', result: 'EQUAL', value: b('1') }],
      success: [{ requestPut: { key: b('a'), value: b('2') } }, { requestPut: { key: b('b'), value: b('2') } }, { requestRange: { key: b('a') } }],
      failure: [{ requestPut: { key: b('c'), value: b('3') } }],
    };
    const r = await h.write((st, batch) => st.txn(req, batch));
    expect(r.response.succeeded).toBe(true);
    expect(r.revision).toBe(3);
    expect(r.response.header.revision).toBe(3);
    expect(r.events.map((e) => [s(e.kv.key), e.kv.modRevision])).toEqual([
      ['a', 3],
      ['b', 3],
    ]);
    const inner = r.response.responses[2]!;
    expect('responseRange' in inner && kvView(inner.responseRange.kvs[0]!)).toMatchObject({ value: '2', version: 2 });
    const again = await h.write((st, batch) => st.txn(req, batch));
    expect(again.response.succeeded).toBe(false);
    expect(await keys(h, { key: b('c') })).toEqual(['c']);
  });

  it('compares every target and result, over ranges, and missing keys as zero', async () => {
    const h = await Harness.open();
    await h.put('a', '1', 5n); // 2
    await h.put('b', '2'); // 3
    const ok = async (c: TxnRequest['compare']): Promise<boolean> => (await h.write((st, batch) => st.txn({ compare: c }, batch))).response.succeeded;
    expect(await ok([{ key: b('a'), target: 'VERSION', result: 'EQUAL', version: 1 }])).toBe(true);
    expect(await ok([{ key: b('a'), target: 'CREATE', result: 'LESS', createRevision: 3 }])).toBe(true);
    expect(await ok([{ key: b('a'), target: 'MOD', result: 'GREATER', modRevision: 2 }])).toBe(false);
    expect(await ok([{ key: b('a'), target: 'LEASE', result: 'EQUAL', lease: 5n }])).toBe(true);
    expect(await ok([{ key: b('a'), target: 'VALUE', result: 'NOT_EQUAL', value: b('1') }])).toBe(false);
    expect(await ok([{ key: b('a'), rangeEnd: b('c'), target: 'MOD', result: 'GREATER', modRevision: 1 }])).toBe(true);
    expect(await ok([{ key: b('a'), rangeEnd: b('c'), target: 'MOD', result: 'GREATER', modRevision: 2 }])).toBe(false);
    expect(await ok([{ key: b('zz'), target: 'CREATE', result: 'EQUAL', createRevision: 0 }])).toBe(true);
    expect(await ok([{ key: b('zz'), target: 'VALUE', result: 'EQUAL', value: b('') }])).toBe(false);
    expect(h.store.revision).toBe(3); // read-only txns do not bump the revision
  });

  it('evaluates nested compares against the state before the txn', async () => {
    const h = await Harness.open();
    const r = await h.write((st, batch) =>
      st.txn(
        {
          success: [
            { requestPut: { key: b('a'), value: b('1') } },
            { requestTxn: { compare: [{ key: b('a'), target: 'VERSION', result: 'EQUAL', version: 0 }], success: [{ requestPut: { key: b('b'), value: b('x') } }] } },
          ],
        },
        batch,
      ),
    );
    const nested = r.response.responses[1]!;
    expect('responseTxn' in nested && nested.responseTxn.succeeded).toBe(true);
    expect(r.events.map((e) => [s(e.kv.key), e.kv.modRevision])).toEqual([
      ['a', 2],
      ['b', 2],
    ]);
  });

  it('enforces the operation limit, duplicate keys and path checks', async () => {
    const h = await Harness.open({ txnOpsMax: 3 });
    const batch = h.backend.batch();
    const put = (k: string) => ({ requestPut: { key: b(k), value: b('v') } });
    await expectMvccError(h.store.txn({ success: [put('a'), put('b'), put('c'), put('d')] }, batch), 'TOO_MANY_OPS', 'etcdserver: too many operations in txn request');
    await expectMvccError(h.store.txn({ success: [put('a'), { requestTxn: { success: [put('b'), put('c')] } }] }, batch), 'TOO_MANY_OPS');
    await expectMvccError(h.store.txn({ success: [put('a'), put('a')] }, batch), 'DUPLICATE_KEY', 'etcdserver: duplicate key given in txn request');
    await expectMvccError(h.store.txn({ success: [put('b'), { requestDeleteRange: { key: b('a'), rangeEnd: b('c') } }] }, batch), 'DUPLICATE_KEY');
    await expectMvccError(h.store.txn({ success: [put('a'), { requestTxn: { success: [put('a')] } }] }, batch), 'DUPLICATE_KEY');
    await expectMvccError(h.store.txn({ compare: [{ key: b(''), target: 'VERSION', result: 'EQUAL' }] }, batch), 'EMPTY_KEY');
    // then/else of one nested txn may put the same key; deletes may overlap deletes
    await h.store.txn({ success: [{ requestTxn: { success: [put('a')], failure: [put('a')] } }] }, batch);
    await h.store.txn({ success: [{ requestDeleteRange: { key: b('a') } }, { requestDeleteRange: { key: b('a'), rangeEnd: b('b') } }] }, batch);
    await expectMvccError(h.store.txn({ success: [{ requestPut: { key: b('zz'), value: b(''), ignoreValue: true } }] }, batch), 'KEY_NOT_FOUND');
    await expectMvccError(h.store.txn({ success: [{ requestRange: { key: b('a'), revision: 99 } }] }, batch), 'FUTURE_REVISION');
  });

  it('a txn that writes nothing keeps the revision; delete of nothing too', async () => {
    const h = await Harness.open();
    await h.put('a', '1');
    const r = await h.write((st, batch) => st.txn({ success: [{ requestDeleteRange: { key: b('zz') } }, { requestRange: { key: b('a') } }] }, batch));
    expect(r.revision).toBe(2);
    expect(r.response.header.revision).toBe(2);
    expect(r.events).toEqual([]);
  });
});

describe('compaction', () => {
  it('drops history below the revision, keeps the latest, drops tombstones', async () => {
    const h = await Harness.open({ compactionChunkRevisions: 2 });
    await h.put('a', '1'); // 2
    await h.put('a', '2'); // 3
    await h.put('b', '1'); // 4
    await h.del('b'); // 5
    await h.put('c', '1'); // 6
    await h.compact(5);
    expect(h.store.compactRevision).toBe(5);
    expect((await h.store.range({ key: b('a'), rangeEnd: b('z'), revision: 5 })).kvs.map((kv) => s(kv.value))).toEqual(['2']);
    await expectMvccError(h.store.range({ key: b('a'), revision: 4 }), 'COMPACTED');
    await expectMvccError(() => h.store.compact(5, h.backend.batch()), 'COMPACTED');
    await expectMvccError(() => h.store.compact(7, h.backend.batch()), 'FUTURE_REVISION');
    expect(h.store.indexedKeys).toBe(2); // b had only history
    const rows: number[] = [];
    for await (const [k] of h.backend.iterate({ gte: b('k/'), lt: b('k0') })) rows.push(k[9]! + (k[8]! << 8));
    expect(rows).toEqual([3, 6]);
    await h.reopen();
    expect(h.store.compactRevision).toBe(5);
    expect(h.store.revision).toBe(6);
    expect(h.store.compactionPending).toBe(false);
  });

  it('keeps serving while physical deletion runs and resumes it after reopen', async () => {
    const h = await Harness.open({ compactionChunkRevisions: 1 });
    for (let i = 0; i < 6; i++) await h.put('k', String(i)); // 2..7
    await h.compact(6, false);
    const batch = h.backend.batch();
    const step = await h.store.compactionStep(batch);
    await batch.write({ sync: false });
    expect(step).toEqual({ done: false, deletedRevisions: 1 });
    expect(await h.put('k', 'x')).toBe(8);
    expect((await h.store.range({ key: b('k'), revision: 6 })).kvs.map((kv) => s(kv.value))).toEqual(['4']);
    await h.reopen();
    expect(h.store.compactionPending).toBe(true);
    expect((await h.store.range({ key: b('k') })).kvs.map(kvView)[0]).toMatchObject({ value: 'x', version: 7, create: 2 });
    await h.finishCompaction();
    expect(h.store.compactionPending).toBe(false);
    await h.reopen();
    expect((await h.store.range({ key: b('k'), revision: 6 })).kvs.map(kvView)[0]).toMatchObject({ value: '4', version: 5 });
  });

  it('a revision of nothing but tombstones survives reopen', async () => {
    const h = await Harness.open();
    await h.put('a', '1');
    await h.del('a');
    await h.compact(3);
    await h.reopen();
    expect(h.store.revision).toBe(3);
    expect(await h.put('b', '1')).toBe(4);
  });
});

describe('leases', () => {
  it('indexes keys by lease and follows overwrites and deletes', async () => {
    const h = await Harness.open();
    await h.put('a', '1', 7n);
    await h.put('b', '1', 7n);
    await h.put('c', '1', 8n);
    expect(h.store.keysWithLease(7n).map(s)).toEqual(['a', 'b']);
    await h.put('a', '2', 8n);
    await h.del('b');
    expect(h.store.keysWithLease(7n)).toEqual([]);
    expect(h.store.keysWithLease(8n).map(s)).toEqual(['a', 'c']);
    expect(h.store.leaseOf(b('a'))).toBe(8n);
    await h.reopen();
    expect(h.store.keysWithLease(8n).map(s)).toEqual(['a', 'c']);
    expect(h.store.leaseOf(b('b'))).toBe(0n);
  });
});

describe('events', () => {
  it('write results carry events with prev kv', async () => {
    const h = await Harness.open();
    await h.put('a', '1');
    const r = await h.write((st, batch) => st.put({ key: b('a'), value: b('2') }, batch));
    expect(r.events).toHaveLength(1);
    expect(r.events[0]!.type).toBe('PUT');
    expect(kvView(r.events[0]!.kv)).toMatchObject({ value: '2', mod: 3 });
    expect(kvView(r.events[0]!.prevKv!)).toMatchObject({ value: '1', mod: 2 });
  });

  it('a key written twice in one txn (nested txns): both events carry the key as it was before the txn, as etcd and history replay give it', async () => {
    const h = await Harness.open();
    await h.put('a', 'old'); // 2
    const missing = { key: b('zz'), target: 'VERSION' as const, result: 'EQUAL' as const, version: 1 };
    const r = await h.write((st, batch) =>
      st.txn(
        {
          success: [
            { requestTxn: { success: [{ requestPut: { key: b('a'), value: b('new') } }, { requestPut: { key: b('n'), value: b('1') } }] } },
            { requestTxn: { compare: [missing], failure: [{ requestDeleteRange: { key: b('a'), prevKv: true } }, { requestDeleteRange: { key: b('n') } }] } },
          ],
        },
        batch,
      ),
    );
    const view = (e: (typeof r.events)[number]): string => `${e.type} ${s(e.kv.key)} prev=${e.prevKv === undefined ? '-' : `${s(e.prevKv.value)}@${e.prevKv.modRevision}`}`;
    expect(r.events.map(view)).toEqual(['PUT a prev=old@2', 'PUT n prev=-', 'DELETE a prev=old@2', 'DELETE n prev=-']);
    // The delete's own answer sees the put before it in the txn (etcd's prev_kvs do too).
    const second = r.response.responses[1]!;
    const deleted = 'responseTxn' in second ? second.responseTxn.responses[0] : undefined;
    expect(deleted !== undefined && 'responseDeleteRange' in deleted ? deleted.responseDeleteRange.prevKvs.map((kv) => s(kv.value)) : []).toEqual(['new']);
    // What a watch replaying history gives (node/watch/hub.ts reads each event's key at its revision - 1) agrees.
    const replayed: string[] = [];
    for await (const evs of h.store.events(3, { key: b('a'), rangeEnd: b('z') })) {
      for (const e of evs) replayed.push(view({ ...e, prevKv: (await h.store.range({ key: e.kv.key, revision: e.kv.modRevision - 1 })).kvs[0] }));
    }
    expect(replayed).toEqual(r.events.map(view));
  });

  it('replays history from a revision for a range, in bounded batches, including uncommitted rows', async () => {
    const h = await Harness.open({ eventBatchMax: 2 });
    await h.put('a', '1'); // 2
    await h.put('b', '1'); // 3
    await h.put('a', '2'); // 4
    await h.del('a'); // 5
    // a write whose batch is not committed yet is still visible to history
    const pending = h.backend.batch();
    await h.store.put({ key: b('a'), value: b('3') }, pending);
    const batches: string[][] = [];
    for await (const evs of h.store.events(3, { key: b('a') })) batches.push(evs.map((e) => `${e.type}:${s(e.kv.key)}@${e.kv.modRevision}`));
    expect(batches).toEqual([['PUT:a@4', 'DELETE:a@5'], ['PUT:a@6']]);
    await h.compact(4);
    await expectMvccError(async () => {
      for await (const _ of h.store.events(3, { key: b('a') })) void _;
    }, 'COMPACTED');
  });
});

describe('hashKV', () => {
  it('hashes up to a revision and refuses the compacted and the future', async () => {
    const h = await Harness.open();
    await h.put('a', '1');
    const h2 = await h.store.hashKV(0);
    await h.put('a', '2');
    expect((await h.store.hashKV(2)).hash).toBe(h2.hash);
    expect((await h.store.hashKV(0)).hash).not.toBe(h2.hash);
    await expectMvccError(h.store.hashKV(9), 'FUTURE_REVISION');
    await h.compact(3);
    await expectMvccError(h.store.hashKV(2), 'COMPACTED');
    expect((await h.store.hashKV(0)).compactRevision).toBe(3);
  });
});
