import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AssertionError } from '../../raft/errors.js';
import type { Entry, HardState } from '../../raft/types.js';
import { crc32c } from '../crc32c.js';
import { decodeMeta, encodeHardState, encodeMarker, encodeMeta, entryKey, markerKey, HARD_STATE_KEY, HARD_STATE_KEY_V1, indexOfKey, isBad, KEY_ENTRY, META_KEY, WAL_FORMAT_V1, WAL_FORMAT_VERSION } from './codec.js';
import { WalError } from './errors.js';
import { COMPACT_BATCH_ENTRIES_MAX, WriteAheadLog, type WalOptions } from './wal.js';
import { captureLogger, CONF, makeEntries, tempDir, writeSnapshotFile } from './testutil.js';

const SNAPSHOT_AHEAD_WRITER = fileURLToPath(new URL('./testdata/snapshot-ahead-writer.ts', import.meta.url));

let dir: string;
let cleanup: () => Promise<void>;
let wal: WriteAheadLog | undefined;
const opts = (): WalOptions => ({ logger: captureLogger() });

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('wal'));
});
afterEach(async () => {
  await wal?.close();
  wal = undefined;
  await cleanup();
});

async function reopen(): Promise<WriteAheadLog> {
  await wal?.close();
  wal = await WriteAheadLog.open(dir, opts());
  return wal;
}

function logOf(w: WriteAheadLog): Entry[] {
  const s = w.storage;
  return s.lastIndex() < s.firstIndex() ? [] : s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity);
}

/** The entry indexes that really are on disk, read with classic-level directly. */
async function diskIndexes(): Promise<number[]> {
  await wal?.close();
  wal = undefined;
  const db = new ClassicLevel<Uint8Array, Uint8Array>(join(dir, 'log'), { keyEncoding: 'view', valueEncoding: 'view' });
  const keys = await db.keys({ gte: entryKey(0), lt: Uint8Array.of(KEY_ENTRY + 1) }).all();
  await db.close();
  return keys.map((k) => indexOfKey(KEY_ENTRY, k)!);
}

const hs = (term: number, commit: number): HardState => ({ term, vote: 1, commit });

describe('WriteAheadLog', () => {
  it('creates an empty log in a new directory', async () => {
    const w = await reopen();
    expect(w.recovery.created).toBe(true);
    expect(w.storage.firstIndex()).toBe(1);
    expect(w.storage.lastIndex()).toBe(0);
    expect(w.storage.initialState().hardState).toEqual({ term: 0, vote: 0, commit: 0 });
    const again = await reopen();
    expect(again.recovery.created).toBe(false);
  });

  it('round-trips hard state and entries through a reopen', async () => {
    const w = await reopen();
    const ents = makeEntries(1, 50, 1);
    await w.save(hs(1, 20), ents);
    expect(logOf(w)).toEqual(ents);
    const r = await reopen();
    expect(logOf(r)).toEqual(ents);
    expect(r.storage.initialState().hardState).toEqual(hs(1, 20));
    expect(r.recovery.tailCut).toBeUndefined();
  });

  it('writes a commit-only hard state with the next batch, not on its own; close writes one still pending', async () => {
    const w = await reopen();
    await w.save(hs(1, 0), makeEntries(1, 3, 1));
    const db = (w as unknown as { db: ClassicLevel<Uint8Array, Uint8Array> }).db;
    const batches = vi.spyOn(db, 'batch');
    await w.save(hs(1, 2), [], undefined, { sync: false }); // Ready.mustSync false: only the commit moved
    await w.save(hs(1, 3), [], undefined, { sync: false });
    expect(batches).not.toHaveBeenCalled();
    expect(w.storage.initialState().hardState).toEqual(hs(1, 3)); // the core sees it at once
    await w.save(undefined, makeEntries(4, 1, 1)); // the next entries carry it
    expect(batches).toHaveBeenCalledTimes(1);
    const r = await reopen();
    expect(r.storage.initialState().hardState).toEqual(hs(1, 3));
    await r.save(hs(1, 4), [], undefined, { sync: false });
    const again = await reopen(); // close() wrote it
    expect(again.storage.initialState().hardState).toEqual(hs(1, 4));
    // A term or vote change is never deferred.
    const batches2 = vi.spyOn((again as unknown as { db: ClassicLevel<Uint8Array, Uint8Array> }).db, 'batch');
    await again.save({ term: 2, vote: 3, commit: 4 }, [], undefined, { sync: true });
    expect(batches2).toHaveBeenCalledTimes(1);
  });

  it('does not show entries to the Raft core before the synced batch resolves', async () => {
    const w = await reopen();
    const p = w.save(hs(1, 0), makeEntries(1, 3, 1));
    expect(w.storage.lastIndex()).toBe(0);
    await p;
    expect(w.storage.lastIndex()).toBe(3);
  });

  it('truncates a conflicting suffix and deletes the stale keys beyond the new last index', async () => {
    const w = await reopen();
    await w.save(hs(1, 3), makeEntries(1, 10, 1));
    const replacement = makeEntries(6, 2, 2);
    await w.save(hs(2, 3), replacement);
    expect(w.storage.lastIndex()).toBe(7);
    expect(logOf(w)).toEqual([...makeEntries(1, 5, 1), ...replacement]);
    expect(await diskIndexes()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const r = await reopen();
    expect(logOf(r)).toEqual([...makeEntries(1, 5, 1), ...replacement]);
  });

  it('serializes saves issued without waiting, in call order', async () => {
    const w = await reopen();
    await Promise.all([w.save(hs(1, 0), makeEntries(1, 5, 1)), w.save(hs(1, 5), makeEntries(6, 5, 1)), w.save(hs(2, 5), makeEntries(8, 1, 2))]);
    expect(logOf(w).map((e) => [e.index, e.term])).toEqual([[1, 1], [2, 1], [3, 1], [4, 1], [5, 1], [6, 1], [7, 1], [8, 2]]);
    expect(await diskIndexes()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('a snapshot marked at a commit index not yet written carries it: after SIGKILL the log opens at the snapshot', async () => {
    // The child saves entries 1-10 with commit 8, moves the commit to 10 alone (not written by itself), marks a
    // snapshot at 10, and is killed before close() could write the hard state. Before the marker carried the hard
    // state, the disk said commit 8 with a snapshot at 10, and the Raft core refused to start (commit out of range).
    const child = spawn(process.execPath, ['--import', 'tsx', SNAPSHOT_AHEAD_WRITER, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('done')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`the writer exited (${code}) before it was done`)));
    });
    child.kill('SIGKILL');
    await once(child, 'exit');
    const r = await reopen();
    expect(r.recovery.snapshot?.index).toBe(10);
    expect(r.recovery.hardState.commit).toBe(10); // as read from disk
    expect(r.recovery.commitRaisedTo).toBeUndefined();
    expect(r.storage.initialState().hardState.commit).toBe(10);
  });

  it('a log whose commit index on disk is behind its snapshot (an earlier build after a crash) opens with the commit raised to it', async () => {
    const w = await reopen();
    await w.save(hs(1, 8), makeEntries(1, 10, 1));
    const meta = await writeSnapshotFile(w.snapshots, 10, 1);
    await w.close();
    wal = undefined;
    // What such a crash left: a snapshot marker at 10 and the hard state's commit at 8.
    const db = new ClassicLevel<Uint8Array, Uint8Array>(join(dir, 'log'), { keyEncoding: 'view', valueEncoding: 'view' });
    await db.put(markerKey(10), encodeMarker(meta));
    await db.close();
    const logger = captureLogger();
    wal = await WriteAheadLog.open(dir, { logger });
    expect(wal.recovery.hardState.commit).toBe(8);
    expect(wal.recovery.commitRaisedTo).toBe(10);
    expect(wal.storage.initialState().hardState).toEqual(hs(1, 10));
    expect(logger.lines.some((l) => l.level === 'warn' && l.msg.includes('raised'))).toBe(true);
    // Written with the next batch: after a clean close the disk agrees.
    const r = await reopen();
    expect(r.recovery.hardState.commit).toBe(10);
    expect(r.recovery.commitRaisedTo).toBeUndefined();
  });

  it('refuses to mark a snapshot beyond the commit index the core was shown', async () => {
    const w = await reopen();
    await w.save(hs(1, 5), makeEntries(1, 10, 1));
    await expect(w.markSnapshot(await writeSnapshotFile(w.snapshots, 8, 1))).rejects.toThrow(AssertionError);
  });

  it('compacts on disk and in memory after a snapshot marker, and reopens from the snapshot', async () => {
    const w = await reopen();
    await w.save(hs(1, 30), makeEntries(1, 30, 1));
    const meta = await writeSnapshotFile(w.snapshots, 20, 1);
    await w.markSnapshot(meta);
    await w.compact(15);
    expect(w.storage.firstIndex()).toBe(16);
    expect(w.storage.term(15)).toBe(1);
    expect(() => w.storage.entries(15, 16, Infinity)).toThrow(/compaction/);
    expect(await diskIndexes()).toEqual(Array.from({ length: 15 }, (_, i) => 16 + i));
    const r = await reopen();
    // On reopen the in-memory log starts at the snapshot (etcd does the same): 21..30.
    expect(r.recovery.snapshot).toEqual(meta);
    expect(r.storage.firstIndex()).toBe(21);
    expect(r.storage.snapshot().metadata).toEqual(meta);
    expect(logOf(r)).toEqual(makeEntries(21, 10, 1));
    await r.compact(10); // already compacted: a no-op
    expect(r.storage.firstIndex()).toBe(21);
  });

  it('compacts a slice at a time: a save issued meanwhile lands between slices, and the disk stays contiguous', async () => {
    const slices = 5;
    const n = slices * COMPACT_BATCH_ENTRIES_MAX;
    const w = await reopen();
    for (let from = 1; from <= n; from += COMPACT_BATCH_ENTRIES_MAX) await w.save(hs(1, from + COMPACT_BATCH_ENTRIES_MAX - 1), makeEntries(from, COMPACT_BATCH_ENTRIES_MAX, 1, 8));
    await w.markSnapshot(await writeSnapshotFile(w.snapshots, n, 1));
    const order: string[] = [];
    const compacting = w.compact(n).then(() => order.push('compacted'));
    const saving = w.save(hs(1, n + 1), makeEntries(n + 1, 1, 1, 8)).then(() => order.push('saved'));
    await Promise.all([compacting, saving]);
    // One turn of the write queue for all 5,000 deletes would have made the save wait for the last of them.
    expect(order).toEqual(['saved', 'compacted']);
    expect(w.storage.firstIndex()).toBe(n + 1);
    expect(await diskIndexes()).toEqual([n + 1]);
    const r = await reopen();
    expect(logOf(r)).toEqual(makeEntries(n + 1, 1, 1, 8));
  });

  it('refuses to compact past the newest snapshot marker', async () => {
    const w = await reopen();
    await w.save(hs(1, 10), makeEntries(1, 10, 1));
    await expect(w.compact(5)).rejects.toBeInstanceOf(AssertionError);
  });

  it('installs a snapshot received from the leader, replacing the whole log in one batch', async () => {
    const w = await reopen();
    await w.save(hs(1, 5), makeEntries(1, 10, 1));
    const meta = await writeSnapshotFile(w.snapshots, 40, 3);
    await w.save(hs(3, 40), makeEntries(41, 2, 3), { metadata: meta, data: new Uint8Array(0) });
    expect(w.storage.firstIndex()).toBe(41);
    expect(w.storage.term(40)).toBe(3);
    expect(w.storage.initialState().confState).toEqual(CONF);
    expect(await diskIndexes()).toEqual([41, 42]);
    const r = await reopen();
    expect(r.recovery.snapshot).toEqual(meta);
    expect(logOf(r)).toEqual(makeEntries(41, 2, 3));
  });

  it('asserts that a snapshot file is committed before the log records it', async () => {
    const w = await reopen();
    const meta = { index: 9, term: 1, confState: CONF };
    await expect(w.save(hs(1, 9), [], { metadata: meta, data: new Uint8Array(0) })).rejects.toThrow(/must be committed in the snapshot store/);
  });

  it('asserts rather than overwrite a committed entry with a different term', async () => {
    const w = await reopen();
    await w.save(hs(1, 8), makeEntries(1, 10, 1));
    await expect(w.save(hs(2, 8), makeEntries(5, 1, 2))).rejects.toThrow(/would overwrite a committed entry/);
    // An assert in the queue does not wedge it: the log still works and nothing was written.
    await w.save(hs(2, 8), makeEntries(9, 1, 2));
    expect(logOf(w).map((e) => e.term)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 2]);
  });

  it('rejects use after close with WAL_CLOSED', async () => {
    const w = await reopen();
    await w.close();
    await expect(w.save(hs(1, 0), [])).rejects.toMatchObject({ code: 'WAL_CLOSED' });
    wal = undefined;
  });

  it('reports WAL_LOCKED when the log is already open', async () => {
    await reopen();
    const err = await WriteAheadLog.open(dir, opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WalError);
    expect((err as WalError).code).toBe('WAL_LOCKED');
  });

  it('persists a hard state on its own', async () => {
    const w = await reopen();
    await w.save(hs(1, 0), makeEntries(1, 2, 1));
    await w.save({ term: 4, vote: 2, commit: 2 }, []);
    const r = await reopen();
    expect(r.storage.initialState().hardState).toEqual({ term: 4, vote: 2, commit: 2 });
  });

  describe('format 1 logs (hard state at [0x01])', () => {
    /** Rewrite the closed log at `dir` as format 1 wrote it: its hard state at [0x01], sealed for that key. */
    async function downgradeToV1(): Promise<void> {
      await wal?.close();
      wal = undefined;
      const db = new ClassicLevel<Uint8Array, Uint8Array>(join(dir, 'log'), { keyEncoding: 'view', valueEncoding: 'view' });
      const current = await db.get(HARD_STATE_KEY);
      const legacy = Uint8Array.from(current!);
      new DataView(legacy.buffer).setUint32(0, crc32c(legacy, crc32c(HARD_STATE_KEY_V1), 4));
      await db.batch().del(HARD_STATE_KEY).put(HARD_STATE_KEY_V1, legacy).put(META_KEY, encodeMeta(WAL_FORMAT_V1)).write({ sync: true });
      await db.close();
    }

    async function rawRecords(): Promise<{ version: number | undefined; current: boolean; legacy: boolean }> {
      await wal?.close();
      wal = undefined;
      const db = new ClassicLevel<Uint8Array, Uint8Array>(join(dir, 'log'), { keyEncoding: 'view', valueEncoding: 'view' });
      const meta = decodeMeta((await db.get(META_KEY))!);
      const out = { version: isBad(meta) ? undefined : meta.version, current: (await db.get(HARD_STATE_KEY)) !== undefined, legacy: (await db.get(HARD_STATE_KEY_V1)) !== undefined };
      await db.close();
      return out;
    }

    it('opens a format 1 log with its hard state and entries, and moves it to the current format', async () => {
      const w = await reopen();
      const ents = makeEntries(1, 30, 2);
      await w.save({ term: 2, vote: 3, commit: 25 }, ents);
      await downgradeToV1();
      expect(await rawRecords()).toEqual({ version: WAL_FORMAT_V1, current: false, legacy: true });
      const r = await reopen();
      expect(r.storage.initialState().hardState).toEqual({ term: 2, vote: 3, commit: 25 });
      expect(logOf(r)).toEqual(ents);
      expect(await rawRecords()).toEqual({ version: WAL_FORMAT_VERSION, current: true, legacy: false });
      const again = await reopen();
      expect(again.storage.initialState().hardState).toEqual({ term: 2, vote: 3, commit: 25 });
    });

    it('reports a corrupt format 1 hard state instead of moving it', async () => {
      const w = await reopen();
      await w.save({ term: 2, vote: 3, commit: 1 }, makeEntries(1, 2, 2));
      await downgradeToV1();
      const db = new ClassicLevel<Uint8Array, Uint8Array>(join(dir, 'log'), { keyEncoding: 'view', valueEncoding: 'view' });
      // A record sealed for the current key does not verify at [0x01]: the CRC covers the key.
      await db.put(HARD_STATE_KEY_V1, encodeHardState({ term: 2, vote: 3, commit: 1 }), { sync: true });
      await db.close();
      const err = await WriteAheadLog.open(dir, opts()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WalError);
      expect((err as WalError).code).toBe('WAL_CORRUPT');
      expect(await rawRecords()).toEqual({ version: WAL_FORMAT_V1, current: false, legacy: true });
    });

    it('refuses a log of an unknown format version', async () => {
      await (await reopen()).save(hs(1, 0), makeEntries(1, 2, 1));
      await wal!.close();
      wal = undefined;
      const db = new ClassicLevel<Uint8Array, Uint8Array>(join(dir, 'log'), { keyEncoding: 'view', valueEncoding: 'view' });
      await db.put(META_KEY, encodeMeta(WAL_FORMAT_VERSION + 1), { sync: true });
      await db.close();
      const err = await WriteAheadLog.open(dir, opts()).catch((e: unknown) => e);
      expect((err as WalError).code).toBe('WAL_CORRUPT');
      expect(String(err)).toContain(`unknown format version ${WAL_FORMAT_VERSION + 1}`);
    });
  });
});
