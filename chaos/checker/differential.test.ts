// Differential test: on small random histories, linearizable or not, the search must agree with a brute-force
// enumeration of every order that respects real time (no memo, no reductions). This is what checks that the
// pruning in wgl.ts (memo, dominance, liveness, symmetry) never prunes the only valid order.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HistoryEvent } from '../history.js';
import { generateHistory } from './generate.js';
import { checkHistory, type Model } from './index.js';
import { NO_VALUE, prepareOperation, step, type PreparedOp } from './models.js';
import { toOperations } from './operations.js';

/** Tries every real-time-respecting order of the required operations, with any subset of the optional ones. */
function bruteForce(events: readonly HistoryEvent[], model: Model): boolean {
  const byKey = new Map<string | undefined, PreparedOp[]>();
  for (const op of toOperations(events)) {
    const prepared = prepareOperation(model, op);
    if (prepared === undefined) continue;
    byKey.set(op.key, [...(byKey.get(op.key) ?? []), prepared]);
  }
  return [...byKey.values()].every((ops) => orderExists(ops, new Set(), NO_VALUE));
}

function orderExists(ops: readonly PreparedOp[], placed: Set<PreparedOp>, state: string): boolean {
  const left = ops.filter((p) => !placed.has(p));
  if (left.every((p) => !p.required)) return true;
  const earliestReturn = Math.min(...left.map((p) => p.op.returnTime));
  for (const p of left) {
    if (p.op.callTime > earliestReturn) continue; // something else had already returned before this was invoked
    const after = step(state, p);
    if (after === undefined) continue;
    placed.add(p);
    const found = orderExists(ops, placed, after);
    placed.delete(p);
    if (found) return true;
  }
  return false;
}

/** Changes some completions' values to random small values: most such histories stop being linearizable. */
function mutate(events: readonly HistoryEvent[], seeds: readonly number[]): HistoryEvent[] {
  const copy = [...events];
  const completions = copy.flatMap((e, i) => (e.type === 'ok' && (e.f === 'read' || e.f === 'get') ? [i] : []));
  for (const seed of seeds) {
    if (completions.length === 0) break;
    const at = completions[seed % completions.length]!;
    const value = seed % 4 === 0 ? null : seed % 3;
    copy[at] = { ...copy[at]!, value };
  }
  return copy;
}

describe('the search agrees with brute force', () => {
  for (const model of ['register', 'kv'] as const) {
    it(`on small random histories (${model})`, () => {
      let linearizable = 0;
      let total = 0;
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 0x7fffffff }),
          fc.integer({ min: 1, max: 9 }),
          fc.integer({ min: 1, max: 4 }),
          fc.constantFrom(0, 0.2, 0.4),
          fc.array(fc.nat(), { maxLength: 3 }),
          fc.constantFrom(3, undefined),
          (seed, operations, processes, infoRate, mutations, valueDomain) => {
            const events = mutate(
              generateHistory({ model, seed, operations, keys: model === 'kv' ? 2 : 1, processes, infoRate, failRate: 0.1, valueDomain }),
              mutations,
            );
            const expected = bruteForce(events, model);
            const verdict = checkHistory(events, { model }).verdict;
            expect(verdict).toBe(expected ? 'linearizable' : 'not-linearizable');
            total++;
            if (expected) linearizable++;
          },
        ),
        { numRuns: 1500 },
      );
      // Both verdicts must be well represented, or the comparison proves little.
      expect(linearizable).toBeGreaterThan(total / 10);
      expect(total - linearizable).toBeGreaterThan(total / 10);
    });
  }
});
