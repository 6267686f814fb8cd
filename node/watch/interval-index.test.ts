import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeyRangeIndex } from './interval-index.js';
import { isEmptyRange, keyRangeOf, rangeContains, type KeyRange } from './key-range.js';
import { enc } from './testdata/harness.js';

describe('KeyRangeIndex', () => {
  it('finds exact, prefix, range and unbounded watchers', () => {
    const idx = new KeyRangeIndex<string>();
    idx.add('exact-foo', keyRangeOf(enc('foo'), undefined));
    idx.add('prefix-fo', keyRangeOf(enc('fo'), enc('fp')));
    idx.add('range-a-g', keyRangeOf(enc('a'), enc('g')));
    idx.add('from-m', keyRangeOf(enc('m'), Uint8Array.of(0)));
    const at = (k: string): string[] => {
      const out: string[] = [];
      idx.forEachMatch(k, (x) => out.push(x));
      return out.sort();
    };
    expect(at('foo')).toEqual(['exact-foo', 'prefix-fo', 'range-a-g']);
    expect(at('fox')).toEqual(['prefix-fo', 'range-a-g']);
    expect(at('g')).toEqual([]);
    expect(at('zzz')).toEqual(['from-m']);
    idx.remove('prefix-fo');
    idx.remove('exact-foo');
    expect(at('foo')).toEqual(['range-a-g']);
    expect(idx.size).toBe(2);
  });

  it('agrees with a linear scan (random ranges, adds and removes)', () => {
    const key = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '\u0000', '\u00ff'), minLength: 0, maxLength: 3 });
    const range = fc.record({ from: key, kind: fc.constantFrom('single', 'end', 'open'), to: key });
    fc.assert(
      fc.property(fc.array(range, { maxLength: 40 }), fc.array(fc.nat(), { maxLength: 10 }), fc.array(key, { maxLength: 20 }), (specs, removals, probes) => {
        const idx = new KeyRangeIndex<number>();
        const live = new Map<number, KeyRange>();
        specs.forEach((s, i) => {
          const r: KeyRange = s.kind === 'single' ? { from: s.from, to: s.from, single: true } : { from: s.from, to: s.kind === 'open' ? undefined : s.to, single: false };
          if (isEmptyRange(r)) return;
          idx.add(i, r);
          live.set(i, r);
        });
        for (const r of removals) {
          const id = [...live.keys()][r % Math.max(1, live.size)];
          if (id === undefined) continue;
          idx.remove(id);
          live.delete(id);
        }
        for (const p of probes) {
          const got: number[] = [];
          idx.forEachMatch(p, (x) => got.push(x));
          const want = [...live].filter(([, r]) => rangeContains(r, p)).map(([i]) => i);
          expect(got.sort((a, b) => a - b)).toEqual(want.sort((a, b) => a - b));
        }
      }),
      { numRuns: 300 },
    );
  });
});
