// Shared by the seed-sweep test files: run a range of seeds in chunks small enough for one test each, and fail
// with every failing seed's replay line. Two files split the range so that vitest's two workers share it.
import { describe, expect, it } from 'vitest';
import { describeFailure, sweep } from './runner.js';

/** Ticks per seed in CI: the full length the simulator is meant to run. */
export const CI_TICKS = 10_000;
/** Seeds per test: about ten seconds of work, well inside the test timeout. */
const SEEDS_PER_TEST = 25;
const CHUNK_TIMEOUT_MS = 120_000;

export function describeSeedRange(title: string, firstSeed: number, seeds: number): void {
  describe(title, () => {
    for (let start = firstSeed; start < firstSeed + seeds; start += SEEDS_PER_TEST) {
      const count = Math.min(SEEDS_PER_TEST, firstSeed + seeds - start);
      it(
        `seeds ${start}..${start + count - 1} (3 and 5 members, ${CI_TICKS} ticks) keep every safety and liveness check`,
        () => {
          const s = sweep({ firstSeed: start, seeds: count, ticks: CI_TICKS, nodes: undefined });
          expect(s.failed.map(describeFailure)).toEqual([]);
          expect(s.passed).toBe(count);
        },
        CHUNK_TIMEOUT_MS,
      );
    }
  });
}
