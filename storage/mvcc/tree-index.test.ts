import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TreeIndex } from './tree-index.js';

describe('TreeIndex', () => {
  it('agrees with a sorted array across leaf splits and removals', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3000 })), { minLength: 500, maxLength: 4000 }), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 3000 }), (ops, lo, hi) => {
        const tree = new TreeIndex();
        const model = new Set<string>();
        const key = (n: number): string => `k${n.toString(36)}`;
        for (const [insert, n] of ops) {
          if (insert) {
            tree.getOrCreate(key(n));
            model.add(key(n));
          } else if (model.has(key(n))) {
            tree.remove(key(n));
            model.delete(key(n));
          }
        }
        const sorted = [...model].sort();
        expect(tree.size).toBe(sorted.length);
        expect([...tree.all()].map((ki) => ki.key)).toEqual(sorted);
        const [from, to] = [key(Math.min(lo, hi)), key(Math.max(lo, hi))];
        expect([...tree.range(from, to)].map((ki) => ki.key)).toEqual(sorted.filter((k) => k >= from && k < to));
        expect([...tree.range(from, undefined)].map((ki) => ki.key)).toEqual(sorted.filter((k) => k >= from));
        for (const k of sorted.slice(0, 50)) expect(tree.get(k)?.key).toBe(k);
        expect(tree.get('zzz')).toBeUndefined();
      }),
      { numRuns: 30 },
    );
  });
});
