// The WAL against an in-memory reference model under random sequences of save, commit, local snapshot,
// compaction, received snapshot and reopen. After every step the Raft core's view (the MemoryStorage) must
// equal the model; after a reopen it must equal what the model says survives on disk.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Entry, HardState, SnapshotMetadata } from '../../raft/types.js';
import { WriteAheadLog } from './wal.js';
import { captureLogger, makeEntries, tempDir, writeSnapshotFile } from './testutil.js';

type Op =
  | { kind: 'append'; at: number; count: number; bump: boolean }
  | { kind: 'commit'; at: number }
  | { kind: 'snapshot'; at: number }
  | { kind: 'compact'; at: number }
  | { kind: 'install'; gap: number; count: number }
  | { kind: 'reopen' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('append' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), count: fc.integer({ min: 1, max: 6 }), bump: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('commit' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('compact' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('install' as const), gap: fc.integer({ min: 1, max: 5 }), count: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'reopen' as const }) },
);

/** Pick an integer in [lo, hi] from a fraction. */
const pick = (f: number, lo: number, hi: number): number => lo + Math.min(hi - lo, Math.floor(f * (hi - lo + 1)));

/** What the Raft core must see: the log (offset, last], the term at offset, the hard state, the snapshot point. */
class Model {
  entries = new Map<number, Entry>();
  offset = 0;
  offsetTerm = 0;
  last = 0;
  term = 1;
  hs: HardState = { term: 0, vote: 0, commit: 0 };
  snapIndex = 0;
  markers: number[] = [];
  termAt(i: number): number {
    return i === this.offset ? this.offsetTerm : this.entries.get(i)!.term;
  }
}

async function step(wal: WriteAheadLog, m: Model, op: Op, reopen: () => Promise<WriteAheadLog>): Promise<WriteAheadLog> {
  switch (op.kind) {
    case 'append': {
      if (op.bump) m.term++;
      const at = pick(op.at, Math.max(m.hs.commit, m.offset) + 1, m.last + 1);
      const ents = makeEntries(at, op.count, m.term, 1 + (at % 40));
      m.hs = { term: m.term, vote: 1, commit: m.hs.commit };
      await wal.save(m.hs, ents);
      for (let i = at; i <= m.last; i++) m.entries.delete(i);
      for (const e of ents) m.entries.set(e.index, e);
      m.last = at + op.count - 1;
      return wal;
    }
    case 'commit': {
      m.hs = { ...m.hs, commit: pick(op.at, m.hs.commit, m.last) };
      await wal.save(m.hs, []);
      return wal;
    }
    case 'snapshot': {
      if (m.hs.commit <= m.snapIndex) return wal;
      const at = pick(op.at, m.snapIndex + 1, m.hs.commit);
      const meta = await writeSnapshotFile(wal.snapshots, at, m.termAt(at));
      await wal.markSnapshot(meta);
      m.snapIndex = at;
      m.markers.push(at);
      return wal;
    }
    case 'compact': {
      const newest = m.markers[m.markers.length - 1] ?? 0;
      if (newest <= m.offset) return wal;
      const at = pick(op.at, m.offset + 1, newest);
      await wal.compact(at);
      m.offsetTerm = m.termAt(at);
      for (let i = m.offset + 1; i <= at; i++) m.entries.delete(i);
      m.offset = at;
      return wal;
    }
    case 'install': {
      const s = m.last + op.gap;
      const meta: SnapshotMetadata = await writeSnapshotFile(wal.snapshots, s, m.term);
      const ents = makeEntries(s + 1, op.count, m.term);
      m.hs = { term: m.term, vote: 1, commit: s };
      await wal.save(m.hs, ents, { metadata: meta, data: new Uint8Array(0) });
      m.entries = new Map(ents.map((e) => [e.index, e]));
      m.offset = s;
      m.offsetTerm = m.term;
      m.snapIndex = s;
      m.markers = [s];
      m.last = s + op.count;
      return wal;
    }
    case 'reopen': {
      const w = await reopen();
      // The disk keeps entries from the newest snapshot on; memory after a reopen starts there.
      if (m.snapIndex > m.offset) {
        m.offsetTerm = m.termAt(m.snapIndex);
        for (let i = m.offset + 1; i <= m.snapIndex; i++) m.entries.delete(i);
        m.offset = m.snapIndex;
      }
      return w;
    }
  }
}

function check(wal: WriteAheadLog, m: Model): void {
  const s = wal.storage;
  expect(s.firstIndex()).toBe(m.offset + 1);
  expect(s.lastIndex()).toBe(m.last);
  expect(s.term(m.offset)).toBe(m.offsetTerm);
  expect(s.initialState().hardState).toEqual(m.hs);
  expect(s.snapshot().metadata.index).toBe(m.snapIndex);
  if (m.last > m.offset) {
    const got = s.entries(m.offset + 1, m.last + 1, Infinity);
    expect(got).toEqual(Array.from({ length: m.last - m.offset }, (_, k) => m.entries.get(m.offset + 1 + k)));
  }
}

describe('WriteAheadLog against a reference model', () => {
  it('matches the model under random save/compact/snapshot/reopen sequences', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
        const { dir, cleanup } = await tempDir('wal-model');
        let wal = await WriteAheadLog.open(dir, { logger: captureLogger(), snapshotRetain: 2 });
        const reopen = async (): Promise<WriteAheadLog> => {
          await wal.close();
          return WriteAheadLog.open(dir, { logger: captureLogger(), snapshotRetain: 2 });
        };
        const m = new Model();
        try {
          for (const op of ops) {
            wal = await step(wal, m, op, reopen);
            check(wal, m);
          }
          wal = await step(wal, m, { kind: 'reopen' }, reopen);
          check(wal, m);
          expect(wal.recovery.tailCut).toBeUndefined();
        } finally {
          await wal.close();
          await cleanup();
        }
      }),
      { numRuns: 60 },
    );
  });
});
