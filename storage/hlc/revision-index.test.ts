import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemoryBackend } from '../backend.js';
import { hlcOf, type Hlc } from './hlc.js';
import { LEGACY_REVISION_INDEX_PREFIX, REVISION_INDEX_PREFIX, RevisionTimeIndex, revisionIndexImagePairs } from './revision-index.js';
import { concatBytes, readPrefix } from './section.js';

async function dump(backend: MemoryBackend): Promise<string> {
  const pairs = await readPrefix(backend, new Uint8Array([]));
  return pairs.map(([k, v]) => `${Buffer.from(k).toString('hex')}=${Buffer.from(v).toString('hex')}`).join('\n');
}

/** Apply one step to the index through a committed batch. */
async function commit(backend: MemoryBackend, fn: (b: ReturnType<MemoryBackend['batch']>) => void): Promise<void> {
  const batch = backend.batch();
  fn(batch);
  await batch.write({ sync: true });
}

describe('RevisionTimeIndex', () => {
  async function sample(): Promise<{ backend: MemoryBackend; index: RevisionTimeIndex }> {
    const backend = new MemoryBackend();
    const index = await RevisionTimeIndex.open(backend);
    await commit(backend, (b) => {
      index.record(hlcOf(1000, 0), 2, b);
      index.record(hlcOf(1000, 5), 3, b);
      index.record(hlcOf(1007, 0), 4, b);
    });
    return { backend, index };
  }

  it('answers the revision current at a wall time, at the boundaries', async () => {
    const { index } = await sample();
    expect(() => index.revisionAt(999)).toThrow(expect.objectContaining({ code: 'BEFORE_HISTORY' }));
    expect(index.revisionAt(1000)).toBe(3); // both records of millisecond 1000 happened at 1000
    expect(index.revisionAt(1006)).toBe(3);
    expect(index.revisionAt(1007)).toBe(4);
    expect(index.revisionAt(5_000_000)).toBe(4);
  });

  it('ignores a repeated revision and clamps an hlc lower than the last', async () => {
    const { backend, index } = await sample();
    await commit(backend, (b) => {
      index.record(hlcOf(2000, 0), 4, b); // same revision: it became current at 1007
      index.record(hlcOf(1003, 0), 5, b); // a lagging leader's stamp: recorded at 1007.0
    });
    expect(index.revisionAt(1006)).toBe(3);
    expect(index.revisionAt(1007)).toBe(5);
    expect(index.last()).toEqual({ hlc: hlcOf(1007, 0), revision: 5 });
  });

  it('asserts that revisions never go backwards', async () => {
    const { backend, index } = await sample();
    expect(() => index.record(hlcOf(3000, 0), 3, backend.batch())).toThrow(/backwards/);
  });

  it('compaction drops older records and times before them answer COMPACTED', async () => {
    const { backend, index } = await sample();
    await commit(backend, (b) => index.compact(3, b));
    expect(() => index.revisionAt(999)).toThrow(expect.objectContaining({ code: 'COMPACTED', message: 'etcdserver: mvcc: required revision has been compacted' }));
    expect(index.revisionAt(1000)).toBe(3);
    const reopened = await RevisionTimeIndex.open(backend);
    expect(reopened.size).toBe(2);
    expect(() => reopened.revisionAt(999)).toThrow(expect.objectContaining({ code: 'COMPACTED' }));
  });

  it('looks up the hlc recorded for exactly one revision', async () => {
    const { backend, index } = await sample();
    expect([1, 2, 3, 4, 5].map((r) => index.hlcOfRevision(r))).toEqual([undefined, hlcOf(1000, 0), hlcOf(1000, 5), hlcOf(1007, 0), undefined]);
    await commit(backend, (b) => index.compact(3, b));
    expect([2, 3, 4].map((r) => index.hlcOfRevision(r))).toEqual([undefined, hlcOf(1000, 5), hlcOf(1007, 0)]);
  });

  it('moves an index kept under the legacy prefix (hlc/r/) to kt/ at open, pair for pair, leaving other keys alone', async () => {
    const { backend, index } = await sample();
    await commit(backend, (b) => index.compact(3, b)); // so the dropped-through pair moves too
    const current = await readPrefix(backend, REVISION_INDEX_PREFIX);
    expect(current.map(([k]) => Buffer.from(k).toString())).toEqual(['kt/e/\0\0\0\0\0\0\0\x03', 'kt/e/\0\0\0\0\0\0\0\x04', 'kt/m/dropped']);
    // Rewrite the store as one written before the move kept it.
    await commit(backend, (b) => {
      for (const [k, v] of current) {
        b.del(k);
        b.put(concatBytes(LEGACY_REVISION_INDEX_PREFIX, k.subarray(REVISION_INDEX_PREFIX.byteLength)), v);
      }
      b.put(new TextEncoder().encode('k/other'), Uint8Array.of(1));
    });
    expect(await readPrefix(backend, REVISION_INDEX_PREFIX)).toEqual([]);
    const reopened = await RevisionTimeIndex.open(backend);
    expect(reopened.pairs()).toEqual(index.pairs());
    expect(reopened.revisionAt(1000)).toBe(3);
    expect(() => reopened.revisionAt(999)).toThrow(expect.objectContaining({ code: 'COMPACTED' }));
    expect(await readPrefix(backend, LEGACY_REVISION_INDEX_PREFIX)).toEqual([]);
    expect(await readPrefix(backend, REVISION_INDEX_PREFIX)).toEqual(current);
    expect(await readPrefix(backend, new TextEncoder().encode('k/other'))).toHaveLength(1);
  });

  it('is bounded: recording past the limit drops the oldest record', async () => {
    const backend = new MemoryBackend();
    const index = await RevisionTimeIndex.open(backend, { entriesMax: 2 });
    await commit(backend, (b) => {
      for (let rev = 1; rev <= 5; rev++) index.record(hlcOf(100 * rev), rev, b);
    });
    expect(index.size).toBe(2);
    expect(() => index.revisionAt(350)).toThrow(expect.objectContaining({ code: 'COMPACTED' }));
    expect(index.revisionAt(400)).toBe(4);
    expect((await RevisionTimeIndex.open(backend, { entriesMax: 2 })).pairs()).toEqual(index.pairs());
  });

  it('after every record was dropped, a new record still never sorts before the dropped ones', async () => {
    const backend = new MemoryBackend();
    const index = await RevisionTimeIndex.open(backend);
    await commit(backend, (b) => {
      index.record(hlcOf(1000), 5, b);
      index.compact(6, b);
    });
    expect(index.size).toBe(0);
    const reopened = await RevisionTimeIndex.open(backend);
    await commit(backend, (b) => reopened.record(hlcOf(900), 6, b));
    expect(reopened.last()).toEqual({ hlc: hlcOf(1000), revision: 6 });
    expect(() => reopened.revisionAt(950)).toThrow(expect.objectContaining({ code: 'COMPACTED' }));
  });

  it('property: matches a model; reload and snapshot/restore give byte-identical state', async () => {
    type Step =
      | { kind: 'record'; dWall: number; logical: number; dRev: number }
      | { kind: 'records'; n: number }
      | { kind: 'compact'; back: number }
      | { kind: 'reload' }
      | { kind: 'restore' }
      | { kind: 'image' }
      | { kind: 'query'; dWall: number };
    const step: fc.Arbitrary<Step> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('record' as const), dWall: fc.integer({ min: -3, max: 5 }), logical: fc.integer({ min: 0, max: 3 }), dRev: fc.integer({ min: 0, max: 2 }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('records' as const), n: fc.integer({ min: 1, max: 20 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('compact' as const), back: fc.integer({ min: 0, max: 6 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reload' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('restore' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('image' as const) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('query' as const), dWall: fc.integer({ min: -10, max: 40 }) }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 80 }), fc.integer({ min: 1, max: 5 }), async (steps, chunkRecords) => {
        const entriesMax = 8;
        const config = { entriesMax, chunkRecords };
        let backend = new MemoryBackend();
        let index = await RevisionTimeIndex.open(backend, config);
        // The model: every record ever made, plus the lowest revision still answerable.
        const model: Array<{ hlc: Hlc; revision: number }> = [];
        let floorRevision = 0;
        let wall = 1000;
        let revision = 1;
        for (const s of steps) {
          if (s.kind === 'record') {
            wall = Math.max(0, wall + s.dWall);
            revision += s.dRev;
            const hlc = hlcOf(wall, s.logical);
            await commit(backend, (b) => index.record(hlc, revision, b));
            const last = model[model.length - 1];
            if (last === undefined || revision > last.revision) model.push({ hlc: last !== undefined && last.hlc > hlc ? last.hlc : hlc, revision });
          } else if (s.kind === 'records') {
            // As the state machine records an applied batch: the dropped-through pair is written once, at the end.
            await commit(backend, (b) => {
              for (let i = 0; i < s.n; i++) {
                revision++;
                wall += i % 2;
                index.recordDeferred(hlcOf(wall), revision, b);
                const last = model[model.length - 1];
                model.push({ hlc: last !== undefined && last.hlc > hlcOf(wall) ? last.hlc : hlcOf(wall), revision });
              }
              index.writeDropped(b);
            });
          } else if (s.kind === 'compact') {
            const at = Math.max(0, revision - s.back);
            await commit(backend, (b) => index.compact(at, b));
            floorRevision = Math.max(floorRevision, at);
          } else if (s.kind === 'reload') {
            const before = index.pairs();
            index = await RevisionTimeIndex.open(backend, config);
            expect(index.pairs()).toEqual(before);
          } else if (s.kind === 'restore') {
            const fresh = new MemoryBackend();
            // What a snapshot image carries: the index's pairs, loaded by a fresh open.
            await commit(fresh, (b) => {
              for (const [k, v] of index.pairs()) b.put(k, v);
            });
            const restored = await RevisionTimeIndex.open(fresh, config);
            expect(await dump(fresh)).toBe(await dump(backend));
            backend = fresh;
            index = restored;
          } else if (s.kind === 'image') {
            // What a snapshot image carries: one pair per live record, as builds before chunks wrote them.
            const fresh = new MemoryBackend();
            const replace = await revisionIndexImagePairs(backend);
            const stored = await readPrefix(backend, REVISION_INDEX_PREFIX);
            await commit(fresh, (b) => {
              for (const [k, v] of stored) for (const [ik, iv] of replace(k, v) ?? [[k, v]]) b.put(ik, iv);
            });
            const imaged = await readPrefix(fresh, REVISION_INDEX_PREFIX);
            expect(imaged.every(([k]) => Buffer.from(k).toString().startsWith('kt/e/') || Buffer.from(k).toString() === 'kt/m/dropped')).toBe(true);
            const restored = await RevisionTimeIndex.open(fresh, config);
            expect(restored.size).toBe(index.size);
            expect(restored.last()).toEqual(index.last());
            expect(imaged.length).toBe(index.size + (stored.some(([k]) => Buffer.from(k).toString() === 'kt/m/dropped') ? 1 : 0));
            backend = fresh;
            index = restored;
          } else {
            const t = Math.max(0, wall + s.dWall);
            const retained = model.filter((r) => r.revision >= floorRevision).slice(-entriesMax);
            const dropped = retained.length < model.length;
            const hit = retained.filter((r) => r.hlc <= hlcOf(t, 0xffff)).pop();
            if (hit !== undefined) expect(index.revisionAt(t)).toBe(hit.revision);
            else expect(() => index.revisionAt(t)).toThrow(expect.objectContaining({ code: dropped ? 'COMPACTED' : 'BEFORE_HISTORY' }));
          }
          // Memory and disk agree after every committed step.
          expect(await readPrefix(backend, REVISION_INDEX_PREFIX)).toEqual(index.pairs());
        }
        // Determinism: the final state equals a fresh load of the same backend, byte for byte.
        const again = await RevisionTimeIndex.open(backend, config);
        expect(again.pairs()).toEqual(index.pairs());
      }),
      { numRuns: 200 },
    );
  });
});
