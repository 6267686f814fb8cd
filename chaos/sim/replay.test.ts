// Determinism: a seed is a complete description of a run. The same seed gives the same trace digest and the
// same verdict; a different seed gives a different trace.
import { describe, expect, it } from 'vitest';
import { runSeed } from './cluster.js';
import { MUTANTS } from './mutants.js';

const TICKS = 3_000;
/** Seeds searched for one on which the double-vote mutant fails. */
const FAILING_SEED_SEARCH = 40;

describe('replay', () => {
  it('the same seed gives the same digest, the same statistics and the same verdict', () => {
    for (const seed of [11, 12]) {
      const a = runSeed({ seed, ticks: TICKS, nodes: seed % 2 === 0 ? 3 : 5 });
      const b = runSeed({ seed, ticks: TICKS, nodes: seed % 2 === 0 ? 3 : 5 });
      expect(b.digest).toBe(a.digest);
      expect(b.stats).toEqual(a.stats);
      expect(b.ok).toBe(a.ok);
    }
  });

  it('different seeds give different traces', () => {
    const digests = new Set([21, 22, 23].map((seed) => runSeed({ seed, ticks: TICKS, nodes: 3 }).digest));
    expect(digests.size).toBe(3);
  });

  it('a failing seed fails again at the same step with the same context', () => {
    const run = (seed: number) => runSeed({ seed, ticks: TICKS, nodes: 5, makeCore: MUTANTS['double-vote'] });
    // Which seed the mutant fails on first depends on the core's course (any change to it moves every trajectory),
    // so it is searched for rather than fixed.
    const seed = Array.from({ length: FAILING_SEED_SEARCH }, (_, i) => i + 1).find((s) => !run(s).ok);
    expect(seed, `the double-vote mutant failed none of seeds 1-${FAILING_SEED_SEARCH}`).toBeDefined();
    const a = run(seed!);
    const b = run(seed!);
    expect(a.ok).toBe(false);
    expect(b.violation?.message).toBe(a.violation?.message);
    expect(b.digest).toBe(a.digest);
    expect(b.context).toEqual(a.context);
  });
});
