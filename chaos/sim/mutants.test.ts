// Negative controls: each deliberate protocol bug in mutants.ts must be caught by a safety check within a few
// seeds. A failure here means the simulator has gone blind to a class of bug, not that the core is wrong.
import { describe, expect, it } from 'vitest';
import { runSeed, type SimResult } from './cluster.js';
import { MUTANTS, type MutantName } from './mutants.js';
import { nodesForSeed } from './runner.js';
import type { CheckName } from './violation.js';

/** Seeds a negative control may take before it counts as missed. */
const SEEDS_MAX = 40;
const TICKS = 10_000;
/** Liveness failures and the core's own assertions do not count: the simulator's safety checks must see it. */
const NOT_SAFETY: readonly CheckName[] = ['liveness', 'core-panic'];

async function firstCaught(name: MutantName): Promise<SimResult | undefined> {
  for (let seed = 1; seed <= SEEDS_MAX; seed++) {
    await new Promise((resolve) => setImmediate(resolve)); // let vitest's worker answer its runner
    const r = runSeed({ seed, ticks: TICKS, nodes: nodesForSeed(seed, undefined), makeCore: MUTANTS[name] });
    if (!r.ok && !NOT_SAFETY.includes(r.violation!.check)) return r;
  }
  return undefined;
}

const EXPECTED: Record<MutantName, readonly CheckName[]> = {
  'commit-any-term': ['commit-own-term', 'leader-completeness', 'state-machine-safety', 'log-matching'],
  'double-vote': ['single-vote', 'election-safety', 'vote-from-voter'],
  'no-truncate': ['log-matching', 'state-machine-safety', 'leader-completeness', 'apply-order'],
  'unconfirmed-read': ['read-linearizable'],
};

describe('negative controls', () => {
  for (const name of Object.keys(MUTANTS) as MutantName[]) {
    it(`catches ${name}`, async () => {
      const r = await firstCaught(name);
      expect(r, `${name} was not caught within ${SEEDS_MAX} seeds`).toBeDefined();
      expect(EXPECTED[name]).toContain(r!.violation!.check);
    }, 300_000);
  }
});
