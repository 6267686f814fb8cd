// Property tests: histories produced by running a sequential model with random real-time overlaps (generate.ts)
// are always linearizable; corrupting one read makes them not, and the checker must say so (negative controls).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HistoryEvent } from '../history.js';
import { generateHistory, type GenerateOptions } from './generate.js';
import { checkHistory, type Model } from './index.js';

const arbitraryOptions = (model: Model): fc.Arbitrary<GenerateOptions> =>
  fc.record({
    model: fc.constant(model),
    seed: fc.integer({ min: 0, max: 0x7fffffff }),
    operations: fc.integer({ min: 1, max: 80 }),
    keys: fc.integer({ min: 1, max: 3 }),
    processes: fc.integer({ min: 1, max: 6 }),
    infoRate: fc.constantFrom(0, 0.1, 0.3),
    failRate: fc.constantFrom(0, 0.1),
    valueDomain: fc.constantFrom(undefined, 2, 4),
  });

/** Positions of `ok` reads (register) or gets (kv) in the history. */
function okReads(events: readonly HistoryEvent[]): number[] {
  return events.flatMap((e, i) => (e.type === 'ok' && (e.f === 'read' || e.f === 'get') ? [i] : []));
}

function withValue(events: readonly HistoryEvent[], at: number, value: unknown): HistoryEvent[] {
  const copy = [...events];
  copy[at] = { ...events[at]!, value };
  return copy;
}

describe('generated histories', () => {
  for (const model of ['register', 'kv'] as const) {
    it(`are linearizable (${model})`, () => {
      fc.assert(
        fc.property(arbitraryOptions(model), (options) => {
          const result = checkHistory(generateHistory(options), { model });
          expect(result.verdict).toBe('linearizable');
        }),
        { numRuns: 300 },
      );
    });

    it(`with one read changed to a value never written are caught (${model})`, () => {
      fc.assert(
        fc.property(arbitraryOptions(model), fc.nat(), (options, pick) => {
          const events = generateHistory(options);
          const reads = okReads(events);
          fc.pre(reads.length > 0);
          const corrupted = withValue(events, reads[pick % reads.length]!, 'never-written');
          const result = checkHistory(corrupted, { model });
          expect(result.verdict).toBe('not-linearizable');
        }),
        { numRuns: 300 },
      );
    });
  }

  it('with one read changed to a value written only after it completed are caught (a read from the future)', () => {
    // Unique values: the read names exactly one write, which started after the read had returned.
    fc.assert(
      fc.property(arbitraryOptions('register'), fc.nat(), (options, pick) => {
        const events = generateHistory({ ...options, valueDomain: undefined, keys: 1 });
        const candidates = okReads(events).flatMap((at) => {
          const later = events.findIndex((e, i) => i > at && e.type === 'invoke' && e.f === 'write');
          return later < 0 ? [] : [[at, events[later]!.value] as const];
        });
        fc.pre(candidates.length > 0);
        const [at, future] = candidates[pick % candidates.length]!;
        expect(checkHistory(withValue(events, at, future), { model: 'register' }).verdict).toBe('not-linearizable');
      }),
      { numRuns: 300 },
    );
  });

  it('the blocking operation of a caught corruption is the corrupted read or one that overlaps it', () => {
    const events = generateHistory({ model: 'register', seed: 42, operations: 200, keys: 1, processes: 5 });
    const at = okReads(events)[20]!;
    const result = checkHistory(withValue(events, at, 'never-written'), { model: 'register' });
    const v = result.violation!;
    const corrupted = result.history.find((op) => op.returnIndex === at)!;
    expect([v.blocking.id, ...v.pending.map((op) => op.id)]).toContain(corrupted.id);
  });
});

describe('scale', () => {
  it('decides 10,000+ operations over 5 to 10 keys (printed, not asserted: the machine is shared)', () => {
    // register: Jepsen's shape (values 0..4); kv: unique values with appends; then the chaos harness's shape
    // (get/put/cas with unique values, refused swaps recorded as ok false, 5 keys, 20,000 operations).
    const shapes = [
      { model: 'register', valueDomain: 5, keys: 10, operations: 10_000, appends: true },
      { model: 'kv', valueDomain: undefined, keys: 10, operations: 10_000, appends: true },
      { model: 'kv', valueDomain: undefined, keys: 5, operations: 20_000, appends: false },
    ] as const;
    for (const { model, valueDomain, keys, operations, appends } of shapes) {
      const events = generateHistory({
        model,
        seed: 2026,
        operations,
        keys,
        processes: 20,
        infoRate: 0.05,
        failRate: 0.05,
        valueDomain,
        appends,
      });
      const ok = checkHistory(events, { model });
      const reads = okReads(events);
      const bad = checkHistory(withValue(events, reads[Math.floor(reads.length * 0.7)]!, 'never-written'), { model });
      console.log(
        `${model}: ${ok.operations} operations over ${ok.keys} keys: ${ok.verdict} in ${ok.elapsedMs.toFixed(0)} ms; ` +
          `with one corrupted read: ${bad.verdict} in ${bad.elapsedMs.toFixed(0)} ms`,
      );
      expect(ok.verdict).toBe('linearizable');
      expect(bad.verdict).toBe('not-linearizable');
    }
  });

  it('gives up with unknown, not a wrong answer, when the time or memory budget runs out', () => {
    const events = generateHistory({ model: 'register', seed: 7, operations: 4000, keys: 1, processes: 10, infoRate: 0.05, valueDomain: 5 });
    const corrupted = withValue(events, okReads(events)[1000]!, 'never-written');
    const timed = checkHistory(corrupted, { model: 'register', timeLimitMs: 1 });
    expect(timed.verdict).toBe('unknown');
    expect(['time-limit', 'not-started']).toContain(timed.perKey[0]!.reason);
    const starved = checkHistory(corrupted, { model: 'register', memoBytesMax: 64 * 1024 });
    expect(starved.verdict).toBe('unknown');
    expect(starved.perKey[0]!.reason).toBe('memory-limit');
  });
});
