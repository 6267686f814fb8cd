import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RowCache } from './row-cache.js';

const row = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);

/** The plainest LRU with the same rules: a Map in recency order, evicted from its front. */
class ReferenceLru {
  readonly rows = new Map<string, Uint8Array>();
  bytes = 0;
  constructor(readonly bytesMax: number) {}
  get(id: string): Uint8Array | undefined {
    const r = this.rows.get(id);
    if (r === undefined) return undefined;
    this.rows.delete(id);
    this.rows.set(id, r);
    return r;
  }
  set(id: string, r: Uint8Array): void {
    const old = this.rows.get(id);
    if (old !== undefined) {
      this.rows.delete(id);
      this.bytes -= old.byteLength + 96;
    }
    if (r.byteLength + 96 > this.bytesMax / 8) return;
    this.rows.set(id, r);
    this.bytes += r.byteLength + 96;
    for (const [oldest, o] of this.rows) {
      if (this.bytes <= this.bytesMax) break;
      this.rows.delete(oldest);
      this.bytes -= o.byteLength + 96;
    }
  }
}

describe('RowCache', () => {
  it('keeps the most recently used rows within its byte budget', () => {
    const ids = 'abcdefghij'.split('');
    const c = new RowCache(ids.length * (100 + 96));
    for (const id of ids) c.set(id, row(100));
    expect(c.get('a')).toBeDefined(); // a is now the most recent
    c.set('k', row(100)); // evicts b, the least recent
    expect(c.get('b')).toBeUndefined();
    expect([...ids.filter((id) => id !== 'b'), 'k'].every((id) => c.get(id) !== undefined)).toBe(true);
    expect(c.byteLength).toBeLessThanOrEqual(c.bytesMax);
  });

  it('does not let one large row push out the rest, and 0 turns it off', () => {
    const c = new RowCache(8 * 1024);
    c.set('small', row(10));
    c.set('large', row(2 * 1024));
    expect(c.get('large')).toBeUndefined();
    expect(c.get('small')).toBeDefined();
    const off = new RowCache(0);
    off.set('x', row(1));
    expect(off.get('x')).toBeUndefined();
    expect(() => new RowCache(-1)).toThrow(RangeError);
  });

  it('never exceeds its budget and always returns what was last set for an id (random operations)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4096 }),
        fc.array(fc.tuple(fc.constantFrom('set', 'get'), fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 600 })), { maxLength: 200 }),
        (budget, ops) => {
          const c = new RowCache(budget);
          const model = new Map<string, number>();
          ops.forEach(([op, k, n], i) => {
            const id = `r${k}`;
            if (op === 'set') {
              c.set(id, row(n, i % 256));
              model.set(id, i % 256);
            } else {
              const got = c.get(id);
              if (got !== undefined) expect(got[0] ?? model.get(id)).toBe(model.get(id));
            }
            expect(c.byteLength).toBeLessThanOrEqual(budget);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps and evicts exactly the rows a plain LRU would (random operations)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 8192 }),
        fc.array(fc.tuple(fc.constantFrom('set', 'get', 'get'), fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 300 })), { maxLength: 300 }),
        (budget, ops) => {
          const c = new RowCache(budget);
          const model = new ReferenceLru(budget);
          for (const [op, k, n] of ops) {
            const id = `r${k}`;
            if (op === 'set') {
              const r = row(n);
              c.set(id, r);
              model.set(id, r);
            } else {
              expect(c.get(id)).toBe(model.get(id));
            }
            expect([c.size, c.byteLength]).toEqual([model.rows.size, model.bytes]);
          }
          c.clear();
          expect([c.size, c.byteLength, c.get('r0')]).toEqual([0, 0, undefined]);
        },
      ),
      { numRuns: 300 },
    );
  });
});
