// Shared by the seed-sweep test files: one test per seed, failing with the seed's replay line. Two files split
// the range so that vitest's two workers share it.
import { describe, expect, it } from 'vitest';
import { runSeed } from './cluster.js';
import { describeFailure, nodesForSeed } from './runner.js';

/** Ticks per seed in CI: the full length the simulator is meant to run. */
export const CI_TICKS = 10_000;
/** One seed takes 0.1-3 s; a generous per-seed limit still catches a run that stopped making progress. */
const SEED_TIMEOUT_MS = 60_000;

export function describeSeedRange(title: string, firstSeed: number, seeds: number): void {
  describe(title, () => {
    // One test per seed, so that a failure names its seed.
    for (let seed = firstSeed; seed < firstSeed + seeds; seed++) {
      const nodes = nodesForSeed(seed, undefined);
      it(
        `seed ${seed}: ${nodes} members, ${CI_TICKS} ticks`,
        async () => {
          await yieldToEventLoop();
          const r = runSeed({ seed, ticks: CI_TICKS, nodes });
          expect(r.ok ? 'ok' : describeFailure(r)).toBe('ok');
        },
        SEED_TIMEOUT_MS,
      );
    }
  });
}

/**
 * Let the worker's event loop turn between seeds. Vitest runs synchronous tests back to back without one, and
 * its worker must answer the runner's calls ("Timeout calling onTaskUpdate" otherwise).
 */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
