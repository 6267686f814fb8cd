import fc from 'fast-check';
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HOT_HISTOGRAM_SERIES_MAX, HotHistogram } from './hot-histogram.js';

const BUCKETS = [0.001, 0.002, 0.004, 0.008, 0.016];

/** The same histogram twice: prom-client's in one registry, ours in another. */
function pair(labelNames: readonly string[] = ['member']): { theirs: Histogram<string>; ours: HotHistogram<string>; theirRegistry: Registry; ourRegistry: Registry } {
  const theirRegistry = new Registry();
  const ourRegistry = new Registry();
  const o = { name: 'fulcrum_test_seconds', help: 'A test histogram.', labelNames, buckets: BUCKETS };
  return { theirs: new Histogram({ ...o, registers: [theirRegistry] }), ours: new HotHistogram({ ...o, registers: [ourRegistry] }), theirRegistry, ourRegistry };
}

const value = fc.oneof(fc.constantFrom(0, ...BUCKETS, 0.0160001, 1e9), fc.double({ min: 0, max: 0.05, noNaN: true }));

describe('HotHistogram', () => {
  it('exposes exactly what prom-client\'s Histogram exposes for the same observations (text and JSON)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('a1', 'b2', 'c3'), value), { maxLength: 60 }), async (observations) => {
        const { theirs, ours, theirRegistry, ourRegistry } = pair();
        for (const [member, v] of observations) {
          theirs.observe({ member }, v);
          ours.child({ member }).observe(v);
        }
        expect(await ourRegistry.metrics()).toBe(await theirRegistry.metrics());
        expect(await ourRegistry.getMetricsAsJSON()).toEqual(await theirRegistry.getMetricsAsJSON());
      }),
      { numRuns: 60 },
    );
  });

  it('shows a series at zero from child() on, as zero() does, and forgets it on remove()', async () => {
    const { theirs, ours, theirRegistry, ourRegistry } = pair();
    theirs.zero({ member: 'a1' });
    const series = ours.child({ member: 'a1' });
    expect(await ourRegistry.metrics()).toBe(await theirRegistry.metrics());
    expect(await ourRegistry.metrics()).toContain('fulcrum_test_seconds_count{member="a1"} 0');
    series.observe(0.003);
    expect(await ourRegistry.metrics()).toContain('fulcrum_test_seconds_bucket{le="0.004",member="a1"} 1');
    ours.remove({ member: 'a1' });
    theirs.remove({ member: 'a1' });
    expect(await ourRegistry.metrics()).toBe(await theirRegistry.metrics());
    expect(await ourRegistry.metrics()).not.toContain('member="a1"');
  });

  it('zeroes every series on Registry.resetMetrics, and a series handed out before still counts', async () => {
    const { ours, ourRegistry } = pair();
    const series = ours.child({ member: 'a1' });
    series.observe(0.5);
    ourRegistry.resetMetrics();
    expect(await ourRegistry.metrics()).toContain('fulcrum_test_seconds_count{member="a1"} 0');
    series.observe(0.001);
    expect(await ourRegistry.metrics()).toContain('fulcrum_test_seconds_bucket{le="0.001",member="a1"} 1');
    expect(ours.child({ member: 'a1' })).toBe(series);
  });

  it('refuses what prom-client refuses: values that are not finite, the le label, a missing label', () => {
    const { ours } = pair();
    const series = ours.child({ member: 'a1' });
    for (const bad of [NaN, Infinity, -Infinity]) expect(() => series.observe(bad)).toThrow('Value is not a valid number');
    expect(() => new HotHistogram({ name: 'x', help: 'x', labelNames: ['le'], buckets: [1], registers: [] })).toThrow('le is a reserved label name');
    expect(() => ours.child({} as { member: string })).toThrow('label member is missing');
  });

  it('refuses bounds that are not increasing and finite, and more series than its limit', () => {
    for (const buckets of [[1, 1], [2, 1], [1, Infinity], [NaN]]) {
      expect(() => new HotHistogram({ name: 'x', help: 'x', labelNames: [], buckets, registers: [] })).toThrow('bucket bounds must be finite and increasing');
    }
    const h = new HotHistogram({ name: 'x', help: 'x', labelNames: ['member'], buckets: [1], registers: [] });
    for (let i = 0; i < HOT_HISTOGRAM_SERIES_MAX; i++) h.child({ member: String(i) });
    expect(() => h.child({ member: 'one more' })).toThrow(`more than ${HOT_HISTOGRAM_SERIES_MAX} series`);
  });
});
