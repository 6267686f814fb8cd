import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemoryBackend, type BackendBatch } from '../backend.js';
import { readPrefix } from '../hlc/section.js';
import { LEASE_PREFIX, LeaseTable, type LeaseId, type LeaseTableConfig } from './lease-table.js';

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

describe('LeaseTable', () => {
  it('grants with a chosen id and rejects a duplicate with etcd’s message', async () => {
    const backend = new MemoryBackend();
    const table = await LeaseTable.open(backend);
    await commit(backend, (b) => table.grant(42n, 10, b));
    expect(table.get(42n)).toEqual({ id: 42n, ttlSeconds: 10, remainingTtlMs: undefined });
    expect(() => table.grant(42n, 10, backend.batch())).toThrow(
      expect.objectContaining({ code: 'LEASE_EXISTS', message: 'etcdserver: lease already exists' }),
    );
  });

  it('picks ids deterministically for id 0, skipping ids already taken', async () => {
    const backend = new MemoryBackend();
    const table = await LeaseTable.open(backend);
    const ids = await commit(backend, (b) => {
      table.grant(2n, 10, b);
      return [table.grant(0n, 10, b).id, table.grant(0n, 10, b).id, table.grant(0n, 10, b).id];
    });
    expect(ids).toEqual([1n, 3n, 4n]);
    const reopened = await LeaseTable.open(backend);
    expect(await commit(backend, (b) => reopened.grant(0n, 10, b).id)).toBe(5n);
  });

  it('raises a short TTL to the minimum and rejects a TTL above the maximum', async () => {
    const table = LeaseTable.empty({ minTtlSeconds: 3, maxTtlSeconds: 100 });
    const b = new MemoryBackend().batch();
    expect(table.grant(1n, 1, b).ttlSeconds).toBe(3);
    expect(table.grant(2n, -5, b).ttlSeconds).toBe(3);
    expect(table.grant(3n, 100, b).ttlSeconds).toBe(100);
    expect(() => table.grant(4n, 101, b)).toThrow(expect.objectContaining({ code: 'LEASE_TTL_TOO_LARGE', message: 'etcdserver: too large lease TTL' }));
    expect(() => table.grant(5n, 1.5, b)).toThrow(expect.objectContaining({ code: 'INVALID_LEASE' }));
    expect(() => table.grant(-1n, 10, b)).toThrow(expect.objectContaining({ code: 'INVALID_LEASE' }));
  });

  it('uses etcd’s maximum TTL by default', () => {
    const b = new MemoryBackend().batch();
    const table = LeaseTable.empty();
    expect(table.grant(1n, 9_000_000_000, b).ttlSeconds).toBe(9_000_000_000);
    expect(() => table.grant(2n, 9_000_000_001, b)).toThrow(expect.objectContaining({ code: 'LEASE_TTL_TOO_LARGE' }));
  });

  it('is bounded by leasesMax', () => {
    const table = LeaseTable.empty({ leasesMax: 2 });
    const b = new MemoryBackend().batch();
    table.grant(0n, 10, b);
    table.grant(0n, 10, b);
    expect(() => table.grant(0n, 10, b)).toThrow(expect.objectContaining({ code: 'TOO_MANY_LEASES' }));
    table.revoke(1n, b);
    expect(table.grant(0n, 10, b).id).toBe(3n);
  });

  it('revoke removes every trace; revoking again is LEASE_NOT_FOUND', async () => {
    const backend = new MemoryBackend();
    const table = await LeaseTable.open(backend);
    await commit(backend, (b) => table.grant(7n, 10, b));
    await commit(backend, (b) => table.revoke(7n, b));
    expect(table.has(7n)).toBe(false);
    expect(await dump(backend)).toBe('');
    expect(() => table.revoke(7n, backend.batch())).toThrow(expect.objectContaining({ code: 'LEASE_NOT_FOUND', message: 'etcdserver: requested lease not found' }));
  });

  it('records checkpoints, clamps them to the TTL, and ignores checkpoints of revoked leases', async () => {
    const backend = new MemoryBackend();
    const table = await LeaseTable.open(backend);
    await commit(backend, (b) => {
      table.grant(1n, 60, b);
      expect(table.checkpoint(1n, 45_000, b)).toBe(true);
    });
    expect((await LeaseTable.open(backend)).get(1n)?.remainingTtlMs).toBe(45_000);
    await commit(backend, (b) => table.checkpoint(1n, 90_000, b));
    expect(table.get(1n)?.remainingTtlMs).toBe(60_000);
    expect(table.checkpoint(2n, 1000, backend.batch())).toBe(false);
  });

  it('get and list report the replicated state', async () => {
    const table = LeaseTable.empty();
    const b = new MemoryBackend().batch();
    table.grant(5n, 20, b);
    table.grant(3n, 10, b);
    expect(table.list().map((l) => l.id)).toEqual([3n, 5n]);
    expect(table.get(5n)?.ttlSeconds).toBe(20);
    expect(table.get(6n)).toBeUndefined();
  });

  it('property: matches a model; reload and snapshot/restore give byte-identical state', async () => {
    type Op =
      | { kind: 'grant'; id: number; ttl: number }
      | { kind: 'revoke'; id: number }
      | { kind: 'checkpoint'; id: number; remaining: number }
      | { kind: 'reload' }
      | { kind: 'restore' };
    const id = fc.integer({ min: 0, max: 6 });
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('grant' as const), id, ttl: fc.integer({ min: -2, max: 120 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('revoke' as const), id }) },
      // A few values recur (as a renewal's "full TTL left" does), so a checkpoint often repeats the stored one.
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('checkpoint' as const), id, remaining: fc.oneof(fc.integer({ min: 0, max: 200_000 }), fc.constantFrom(0, 7_000, 200_000)) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reload' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('restore' as const) }) },
    );
    const config: Partial<LeaseTableConfig> = { minTtlSeconds: 5, maxTtlSeconds: 100, leasesMax: 5 };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        let backend = new MemoryBackend();
        let table = await LeaseTable.open(backend, config);
        const model = new Map<LeaseId, { ttl: number; remaining: number | undefined }>();
        let next = 1n;
        const outcome = (fn: () => unknown): string => {
          try {
            fn();
            return 'ok';
          } catch (e) {
            return (e as { code?: string }).code ?? String(e);
          }
        };
        for (const o of ops) {
          const lid = BigInt((o as { id?: number }).id ?? 0);
          if (o.kind === 'grant') {
            const expected = o.ttl > 100 ? 'LEASE_TTL_TOO_LARGE' : lid !== 0n && model.has(lid) ? 'LEASE_EXISTS' : model.size >= 5 ? 'TOO_MANY_LEASES' : 'ok';
            const got = await commit(backend, (b) => outcome(() => table.grant(lid, o.ttl, b)));
            expect(got).toBe(expected);
            if (got === 'ok') {
              let chosen = lid;
              if (chosen === 0n) {
                chosen = next;
                while (model.has(chosen)) chosen++;
                next = chosen + 1n;
              }
              model.set(chosen, { ttl: Math.max(5, o.ttl), remaining: undefined });
            }
          } else if (o.kind === 'revoke') {
            const got = await commit(backend, (b) => outcome(() => table.revoke(lid, b)));
            expect(got).toBe(model.has(lid) ? 'ok' : 'LEASE_NOT_FOUND');
            model.delete(lid);
          } else if (o.kind === 'checkpoint') {
            const got = await commit(backend, (b) => table.checkpoint(lid, o.remaining, b));
            const m = model.get(lid);
            expect(got).toBe(m !== undefined);
            if (m !== undefined) m.remaining = Math.min(o.remaining, m.ttl * 1000);
          } else if (o.kind === 'reload') {
            table = await LeaseTable.open(backend, config);
          } else {
            const fresh = new MemoryBackend();
            // What a snapshot image carries: the table's pairs, loaded by a fresh open.
            await commit(fresh, (b) => {
              for (const [k, v] of table.pairs()) b.put(k, v);
            });
            const restored = await LeaseTable.open(fresh, config);
            expect(await dump(fresh)).toBe(await dump(backend));
            backend = fresh;
            table = restored;
          }
          // Memory matches the model, and disk matches memory byte for byte.
          expect(table.list().map((l) => [l.id, l.ttlSeconds, l.remainingTtlMs])).toEqual(
            [...model.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([i, m]) => [i, m.ttl, m.remaining]),
          );
          expect(await readPrefix(backend, LEASE_PREFIX)).toEqual(table.pairs());
        }
      }),
      { numRuns: 200 },
    );
  });
});
