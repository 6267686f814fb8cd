import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemoryBackend, type BackendBatch } from '../backend.js';
import { concatBytes, readPrefix } from '../hlc/section.js';
import { DEDUP_PREFIX, DedupTable, LEGACY_DEDUP_PREFIX, type DedupTableConfig } from './dedup-table.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

async function commit<T>(backend: MemoryBackend, fn: (b: BackendBatch) => T): Promise<T> {
  const batch = backend.batch();
  const out = fn(batch);
  await batch.write({ sync: true });
  return out;
}

async function dump(backend: MemoryBackend): Promise<string> {
  const pairs = await readPrefix(backend, new Uint8Array([]));
  return pairs.map(([k, v]) => `${Buffer.from(k).toString('hex')}=${Buffer.from(v).toString('hex')}`).join('\n');
}

describe('DedupTable', () => {
  it('applies a new request, returns the stored response for a retry, and rejects a stale one', async () => {
    const backend = new MemoryBackend();
    const table = await DedupTable.open(backend);
    expect(table.check('c1', 1)).toEqual({ kind: 'apply' });
    await commit(backend, (b) => table.record('c1', 1, bytes('resp-1'), 1000, b));
    expect(table.check('c1', 1)).toEqual({ kind: 'duplicate', response: bytes('resp-1') });
    expect(table.check('c1', 5)).toEqual({ kind: 'apply' }); // gaps are fine: a higher sequence applies
    await commit(backend, (b) => table.record('c1', 5, bytes('resp-5'), 1001, b));
    expect(() => table.check('c1', 4)).toThrow(expect.objectContaining({ code: 'STALE_SEQUENCE' }));
    expect(() => table.check('c1', 1)).toThrow(expect.objectContaining({ code: 'STALE_SEQUENCE' }));
    const reopened = await DedupTable.open(backend);
    expect(reopened.check('c1', 5)).toEqual({ kind: 'duplicate', response: bytes('resp-5') });
  });

  it('opens a table kept under the legacy prefix (dedup/), moved to once/ with the same clients and answers', async () => {
    const backend = new MemoryBackend();
    const table = await DedupTable.open(backend);
    await commit(backend, (b) => {
      table.record('c1', 3, bytes('resp-3'), 1000, b);
      table.record('c2', 7, bytes('resp-7'), 1001, b);
    });
    const pairs = table.pairs();
    expect(await readPrefix(backend, DEDUP_PREFIX)).toEqual(pairs);
    // Rewrite the store as one written before the move kept it.
    await commit(backend, (b) => {
      for (const [k, v] of pairs) {
        b.del(k);
        b.put(concatBytes(LEGACY_DEDUP_PREFIX, k.subarray(DEDUP_PREFIX.byteLength)), v);
      }
    });
    expect(await readPrefix(backend, DEDUP_PREFIX)).toEqual([]);
    const reopened = await DedupTable.open(backend);
    expect(reopened.check('c1', 3)).toEqual({ kind: 'duplicate', response: bytes('resp-3') });
    expect(() => reopened.check('c2', 6)).toThrow(expect.objectContaining({ code: 'STALE_SEQUENCE' }));
    expect(reopened.pairs()).toEqual(pairs);
    expect(await readPrefix(backend, DEDUP_PREFIX)).toEqual(pairs);
    expect(await readPrefix(backend, LEGACY_DEDUP_PREFIX)).toEqual([]);
  });

  it('asserts that record() follows check(): the sequence must be newer', () => {
    const table = DedupTable.empty();
    const b = new MemoryBackend().batch();
    table.record('c', 3, bytes('x'), 0, b);
    expect(() => table.record('c', 3, bytes('x'), 0, b)).toThrow(/not newer/);
  });

  it('validates client ids, sequences and response sizes', () => {
    const table = DedupTable.empty({ clientIdBytesMax: 4, responseBytesMax: 3 });
    const b = new MemoryBackend().batch();
    const invalid = expect.objectContaining({ code: 'INVALID_DEDUP_REQUEST' });
    expect(() => table.check('', 1)).toThrow(invalid);
    expect(() => table.check('12345', 1)).toThrow(invalid);
    expect(() => table.check('\ud800', 1)).toThrow(invalid);
    expect(() => table.check('ok', -1)).toThrow(invalid);
    expect(() => table.check('ok', 1.5)).toThrow(invalid);
    expect(() => table.record('ok', 1, bytes('long'), 0, b)).toThrow(invalid);
    expect(table.size).toBe(0);
  });

  it('accepts exactly the client ids that survive UTF-8 and fit the bound (random strings, lone surrogates too)', () => {
    const table = DedupTable.empty({ clientIdBytesMax: 12 });
    const id = fc.oneof(fc.string({ maxLength: 14 }), fc.string({ unit: 'binary', maxLength: 8 }), fc.string({ unit: 'grapheme', maxLength: 6 }), fc.constantFrom('\ud800', 'a\udfff', '\u00e9', ''));
    fc.assert(
      fc.property(id, (clientId) => {
        const encoded = new TextEncoder().encode(clientId);
        const valid = new TextDecoder('utf-8', { fatal: true }).decode(encoded) === clientId && encoded.byteLength >= 1 && encoded.byteLength <= 12;
        if (valid) expect(table.check(clientId, 1)).toEqual({ kind: 'apply' });
        else expect(() => table.check(clientId, 1)).toThrow(expect.objectContaining({ code: 'INVALID_DEDUP_REQUEST' }));
      }),
      { numRuns: 2000 },
    );
  });

  it('expires idle clients by log time, oldest first', async () => {
    const backend = new MemoryBackend();
    const table = await DedupTable.open(backend, { clientIdleMs: 100 });
    await commit(backend, (b) => {
      table.record('b', 1, bytes(''), 1000, b);
      table.record('a', 1, bytes(''), 1000, b);
      table.record('c', 1, bytes(''), 1050, b);
    });
    expect(await commit(backend, (b) => table.expireIdle(1099, b))).toEqual([]);
    expect(await commit(backend, (b) => table.expireIdle(1100, b))).toEqual(['a', 'b']);
    await commit(backend, (b) => table.record('c', 2, bytes(''), 1120, b)); // activity keeps it
    expect(await commit(backend, (b) => table.expireIdle(1200, b))).toEqual([]);
    expect(await commit(backend, (b) => table.expireIdle(1220, b))).toEqual(['c']);
    expect(await dump(backend)).toBe('');
  });

  it('a log time that steps back does not make a client younger or older', () => {
    const table = DedupTable.empty({ clientIdleMs: 100 });
    const b = new MemoryBackend().batch();
    table.record('a', 1, bytes(''), 1000, b);
    table.record('a', 2, bytes(''), 900, b); // a lagging leader's stamp
    expect(table.get('a')?.lastSeenMs).toBe(1000);
  });

  it('when full, a new client evicts the least recently seen, ties broken by client id', () => {
    const table = DedupTable.empty({ clientsMax: 3 });
    const b = new MemoryBackend().batch();
    table.record('z', 1, bytes(''), 10, b);
    table.record('y', 1, bytes(''), 10, b);
    table.record('x', 1, bytes(''), 20, b);
    table.record('new', 1, bytes(''), 30, b);
    expect(table.get('y')).toBeUndefined();
    expect(table.get('z')).toBeDefined();
    table.record('newer', 1, bytes(''), 30, b);
    expect(table.get('z')).toBeUndefined();
    expect(table.size).toBe(3);
  });

  it('keeps the eviction order through many touches (the age heap is rebuilt on the way)', () => {
    const table = DedupTable.empty({ clientsMax: 5 });
    const b = new MemoryBackend().batch();
    const ids = ['a', 'b', 'c', 'd', 'e'];
    for (let i = 0; i < 500; i++) table.record(ids[i % 5]!, Math.floor(i / 5) + 1, bytes(''), i, b);
    // Last touches: a at 495, b 496, c 497, d 498, e 499. The oldest is a.
    table.record('f', 1, bytes(''), 600, b);
    expect(table.get('a')).toBeUndefined();
    table.record('g', 1, bytes(''), 600, b);
    expect(table.get('b')).toBeUndefined();
    expect(table.size).toBe(5);
  });

  it('expiry is bounded per call', () => {
    const table = DedupTable.empty({ clientIdleMs: 10, expiriesPerCallMax: 2 });
    const b = new MemoryBackend().batch();
    for (const id of ['a', 'b', 'c']) table.record(id, 1, bytes(''), 0, b);
    expect(table.expireIdle(100, b)).toEqual(['a', 'b']);
    expect(table.expireIdle(100, b)).toEqual(['c']);
  });

  it('property: matches a model; reload and snapshot/restore give byte-identical state', async () => {
    type Op =
      | { kind: 'request'; client: string; seqStep: number; dt: number; response: string }
      | { kind: 'expire'; dt: number }
      | { kind: 'reload' }
      | { kind: 'restore' };
    const client = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'é', 'a/b');
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('request' as const), client, seqStep: fc.integer({ min: -2, max: 3 }), dt: fc.integer({ min: -20, max: 60 }), response: fc.string({ maxLength: 4 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('expire' as const), dt: fc.integer({ min: 0, max: 200 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reload' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('restore' as const) }) },
    );
    const config: Partial<DedupTableConfig> = { clientsMax: 4, clientIdleMs: 150, expiriesPerCallMax: 2 };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 80 }), async (ops) => {
        let backend = new MemoryBackend();
        let table = await DedupTable.open(backend, config);
        const model = new Map<string, { seq: number; seen: number; response: string }>();
        const byAge = (): string[] =>
          [...model.entries()].sort(([ia, a], [ib, b]) => a.seen - b.seen || (ia < ib ? -1 : ia > ib ? 1 : 0)).map(([id]) => id);
        let now = 1000;
        for (const o of ops) {
          if (o.kind === 'request') {
            now = Math.max(0, now + o.dt);
            const m = model.get(o.client);
            const seq = Math.max(0, (m?.seq ?? 0) + o.seqStep);
            let verdict: string;
            try {
              const v = table.check(o.client, seq);
              verdict = v.kind === 'apply' ? 'apply' : `dup:${new TextDecoder().decode(v.response)}`;
            } catch (e) {
              verdict = (e as { code: string }).code;
            }
            const expected = m === undefined || seq > m.seq ? 'apply' : seq === m.seq ? `dup:${m.response}` : 'STALE_SEQUENCE';
            expect(verdict).toBe(expected);
            if (verdict === 'apply') {
              await commit(backend, (b) => table.record(o.client, seq, bytes(o.response), now, b));
              if (m === undefined && model.size >= 4) model.delete(byAge()[0]!);
              model.set(o.client, { seq, seen: Math.max(m?.seen ?? 0, now), response: o.response });
            }
          } else if (o.kind === 'expire') {
            now += o.dt;
            const expected = byAge().filter((id) => model.get(id)!.seen + 150 <= now).slice(0, 2);
            expect(await commit(backend, (b) => table.expireIdle(now, b))).toEqual(expected);
            for (const id of expected) model.delete(id);
          } else if (o.kind === 'reload') {
            table = await DedupTable.open(backend, config);
          } else {
            const fresh = new MemoryBackend();
            // What a snapshot image carries: the table's pairs, loaded by a fresh open.
            await commit(fresh, (b) => {
              for (const [k, v] of table.pairs()) b.put(k, v);
            });
            const restored = await DedupTable.open(fresh, config);
            expect(await dump(fresh)).toBe(await dump(backend));
            backend = fresh;
            table = restored;
          }
          expect(table.size).toBe(model.size);
          for (const [id, m] of model) expect(table.get(id)).toMatchObject({ lastSeq: m.seq, lastSeenMs: m.seen, response: bytes(m.response) });
          expect(await readPrefix(backend, DEDUP_PREFIX)).toEqual(table.pairs());
        }
      }),
      { numRuns: 300 },
    );
  });
});
