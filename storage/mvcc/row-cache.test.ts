import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RowCache } from './row-cache.js';

const row = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);

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
});
