// The same operations on the same starting state give byte-identical backend content, on MemoryBackend and on
// LevelBackend, and equal HashKV; different operations give a different hash.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { LevelBackend, type Backend } from '../backend.js';
import { Harness, b, dumpBackend } from './testing/harness.js';

type Step = { t: 'put'; k: string; v: string; lease: bigint } | { t: 'del'; k: string; end?: string } | { t: 'txn'; k: string; v: string } | { t: 'compact'; back: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('put' as const), k: fc.constantFrom('a', 'b', 'c', 'd'), v: fc.string({ maxLength: 4 }), lease: fc.constantFrom(0n, 3n) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), k: fc.constantFrom('a', 'b'), end: fc.constantFrom('c', undefined) }).map((s) => (s.end === undefined ? { t: s.t, k: s.k } : s)) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('txn' as const), k: fc.constantFrom('a', 'c'), v: fc.string({ maxLength: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('compact' as const), back: fc.integer({ min: 0, max: 3 }) }) },
);

async function apply(h: Harness, steps: readonly Step[]): Promise<void> {
  for (const step of steps) {
    switch (step.t) {
      case 'put':
        await h.put(step.k, step.v, step.lease);
        break;
      case 'del':
        await h.del(step.k, step.end);
        break;
      case 'txn':
        await h.write((st, batch) =>
          st.txn(
            {
              compare: [{ key: b(step.k), target: 'VERSION', result: 'GREATER', version: 1 }],
              success: [{ requestDeleteRange: { key: b(step.k) } }, { requestPut: { key: b(`${step.k}x`), value: b(step.v) } }],
              failure: [{ requestPut: { key: b(step.k), value: b(step.v) } }],
            },
            batch,
          ),
        );
        break;
      case 'compact': {
        const at = h.store.revision - step.back;
        if (at > h.store.compactRevision && at >= 1) await h.compact(at);
      }
    }
  }
}

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function levelBackend(): Promise<Backend> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-mvcc-'));
  dirs.push(dir);
  return LevelBackend.open(dir);
}

describe('determinism', () => {
  it('same operations give byte-identical backends and equal HashKV', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 40 }), async (steps) => {
        const one = await Harness.open({ compactionChunkRevisions: 2 });
        const two = await Harness.open({ compactionChunkRevisions: 5 });
        await apply(one, steps);
        await apply(two, steps);
        expect(await dumpBackend(two.backend)).toEqual(await dumpBackend(one.backend));
        expect(await two.store.hashKV(0)).toEqual(await one.store.hashKV(0));
        const rev = Math.max(one.store.compactRevision, 1);
        expect(await two.store.hashKV(rev)).toEqual(await one.store.hashKV(rev));
      }),
      { numRuns: 100 },
    );
  });

  it('is byte-identical across MemoryBackend and LevelBackend, before and after reopen', async () => {
    const steps = fc.sample(fc.array(stepArb, { minLength: 30, maxLength: 30 }), { numRuns: 1, seed: 42 })[0]!;
    const mem = await Harness.open();
    const level = await Harness.open({}, await levelBackend());
    await apply(mem, steps);
    await apply(level, steps);
    expect(await dumpBackend(level.backend)).toEqual(await dumpBackend(mem.backend));
    await level.reopen();
    expect(await level.store.hashKV(0)).toEqual(await mem.store.hashKV(0));
    await level.backend.close();
  });

  it('HashKV differs when the operations differ, and ignores how far physical compaction got', async () => {
    const one = await Harness.open({ compactionChunkRevisions: 1 });
    const two = await Harness.open({ compactionChunkRevisions: 1 });
    for (const h of [one, two]) {
      await h.put('a', '1');
      await h.put('a', '2');
      await h.put('b', '1');
    }
    await one.put('c', 'x');
    await two.put('c', 'y');
    expect((await one.store.hashKV(0)).hash).not.toBe((await two.store.hashKV(0)).hash);
    expect((await one.store.hashKV(4)).hash).toBe((await two.store.hashKV(4)).hash);
    // Same compaction, one member has finished deleting rows and the other has not started.
    await one.compact(4, true);
    await two.compact(4, false);
    expect(two.store.compactionPending).toBe(true);
    expect(await one.store.hashKV(4)).toEqual(await two.store.hashKV(4));
  });
});
