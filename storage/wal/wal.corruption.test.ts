// Damage the log on disk the way disks and operators do, then open it: a torn tail above the commit index is
// cut off and logged; anything that would lose committed entries fails with a typed error that names the
// index and says how to recover.
import { cp, open, readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { entryKey, HARD_STATE_KEY } from './codec.js';
import { RESTORE_ADVICE, WalError, type WalErrorCode } from './errors.js';
import { snapshotFileName } from './snapshot.js';
import { WriteAheadLog } from './wal.js';
import { captureLogger, makeEntries, tempDir, writeSnapshotFile } from './testutil.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('wal-corrupt'));
});
afterEach(() => cleanup());

const logDir = (): string => join(dir, 'log');

/** A closed log with entries 1..last at term 1 and the given commit index. */
async function seed(last: number, commit: number): Promise<void> {
  const wal = await WriteAheadLog.open(dir, { logger: captureLogger() });
  await wal.save({ term: 1, vote: 1, commit }, makeEntries(1, last, 1));
  await wal.close();
}

/** Tamper with the log through classic-level directly, as a failing disk would. */
async function tamper(fn: (db: ClassicLevel<Uint8Array, Uint8Array>) => Promise<void>): Promise<void> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(logDir(), { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  await fn(db);
  await db.close();
}

async function flipByte(index: number, offset: number): Promise<void> {
  await tamper(async (db) => {
    const v = Uint8Array.from((await db.get(entryKey(index)))!);
    v[offset]! ^= 0x01;
    await db.put(entryKey(index), v, { sync: true });
  });
}

async function openError(): Promise<WalError> {
  const err = await WriteAheadLog.open(dir, { logger: captureLogger() }).then(
    async (w) => {
      await w.close();
      return new Error('opened, but should have failed');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WalError);
  return err as WalError;
}

function expectFatal(err: WalError, code: WalErrorCode, index?: number): void {
  expect(err.code).toBe(code);
  expect(err.message).toContain(RESTORE_ADVICE);
  if (index !== undefined) {
    expect(err.index).toBe(index);
    expect(err.message).toMatch(new RegExp(`entry ${index}\\b`));
  }
}

describe('WAL corruption at or below the commit index is never dropped', () => {
  it('a flipped byte in a committed entry\'s data fails open with WAL_CORRUPT naming the index', async () => {
    await seed(20, 10);
    await flipByte(5, 20);
    expectFatal(await openError(), 'WAL_CORRUPT', 5);
  });

  it('a flipped byte in a committed entry\'s term fails too (the checksum covers position and header)', async () => {
    await seed(20, 10);
    await flipByte(10, 11);
    expectFatal(await openError(), 'WAL_CORRUPT', 10);
  });

  it('a committed entry stored under the wrong key fails (the checksum covers the index)', async () => {
    await seed(20, 10);
    await tamper(async (db) => db.put(entryKey(4), (await db.get(entryKey(3)))!, { sync: true }));
    expectFatal(await openError(), 'WAL_CORRUPT', 4);
  });

  it('a missing committed entry (a gap) fails with WAL_MISSING_ENTRIES naming the index', async () => {
    await seed(20, 10);
    await tamper((db) => db.del(entryKey(7), { sync: true }));
    const err = await openError();
    expectFatal(err, 'WAL_MISSING_ENTRIES', 7);
    expect(err.message).toMatch(/next entry on disk is 8/);
  });

  it('a commit index beyond the last entry present fails with WAL_MISSING_ENTRIES', async () => {
    await seed(20, 15);
    await tamper(async (db) => {
      for (let i = 12; i <= 20; i++) await db.del(entryKey(i));
    });
    const err = await openError();
    expectFatal(err, 'WAL_MISSING_ENTRIES', 12);
    expect(err.message).toMatch(/commit index is 15 but the log ends at 11/);
  });

  it('a corrupt hard state fails with WAL_CORRUPT', async () => {
    await seed(5, 5);
    await tamper(async (db) => {
      const v = Uint8Array.from((await db.get(HARD_STATE_KEY))!);
      v[27]! ^= 0x80;
      await db.put(HARD_STATE_KEY, v, { sync: true });
    });
    const err = await openError();
    expectFatal(err, 'WAL_CORRUPT');
    expect(err.message).toMatch(/hard state/);
  });
});

describe('WAL torn tail above the commit index is cut off and logged', () => {
  it('a bad checksum above commit: the entry and everything after it are cut', async () => {
    await seed(20, 10);
    await flipByte(15, 30);
    const logger = captureLogger();
    const wal = await WriteAheadLog.open(dir, { logger });
    expect(wal.recovery.tailCut).toEqual({ from: 15, entries: 6, reason: 'entry 15: checksum mismatch' });
    expect(wal.storage.lastIndex()).toBe(14);
    expect(wal.storage.entries(1, 15, Infinity)).toEqual(makeEntries(1, 14, 1));
    expect(logger.lines.some((l) => l.level === 'warn' && /torn tail/.test(l.msg))).toBe(true);
    // The log keeps working after the cut, and the cut was made durable: the next open is clean.
    await wal.save({ term: 1, vote: 1, commit: 10 }, makeEntries(15, 1, 1));
    await wal.close();
    const again = await WriteAheadLog.open(dir, { logger: captureLogger() });
    expect(again.recovery.tailCut).toBeUndefined();
    expect(again.storage.lastIndex()).toBe(15);
    await again.close();
  });

  it('a truncated last entry (half-written value) is cut', async () => {
    await seed(12, 10);
    await tamper(async (db) => {
      const v = (await db.get(entryKey(12)))!;
      await db.put(entryKey(12), v.subarray(0, 9), { sync: true });
    });
    const wal = await WriteAheadLog.open(dir, { logger: captureLogger() });
    expect(wal.recovery.tailCut).toMatchObject({ from: 12, entries: 1, reason: expect.stringMatching(/short record/) });
    expect(wal.storage.lastIndex()).toBe(11);
    await wal.close();
  });

  it('a gap above commit cuts the tail from the gap', async () => {
    await seed(20, 10);
    await tamper((db) => db.del(entryKey(13), { sync: true }));
    const wal = await WriteAheadLog.open(dir, { logger: captureLogger() });
    expect(wal.recovery.tailCut).toMatchObject({ from: 14, entries: 7, reason: expect.stringMatching(/gap: entry 13 is missing/) });
    expect(wal.storage.lastIndex()).toBe(12);
    await wal.close();
  });
});

describe('WAL with LevelDB files missing', () => {
  /** Entries 1..10 end up in an .ldb table (LevelDB flushes its .log into a table when it reopens). */
  async function seedIntoTable(): Promise<void> {
    await seed(10, 10);
    const w = await WriteAheadLog.open(dir, { logger: captureLogger() });
    await w.close();
  }

  it('a deleted .ldb table fails with WAL_MISSING_FILE naming the file', async () => {
    await seedIntoTable();
    const tables = (await readdir(logDir())).filter((f) => f.endsWith('.ldb'));
    expect(tables.length).toBeGreaterThan(0);
    await unlink(join(logDir(), tables[0]!));
    const err = await openError();
    expectFatal(err, 'WAL_MISSING_FILE');
    expect(err.message).toContain(tables[0]!);
  });

  it('a deleted CURRENT file fails with WAL_MISSING_FILE (LevelDB is never re-created over old files)', async () => {
    await seedIntoTable();
    await unlink(join(logDir(), 'CURRENT'));
    const err = await openError();
    expectFatal(err, 'WAL_MISSING_FILE');
    expect(err.message).toMatch(/CURRENT/);
  });

  it('a deleted .log file (LevelDB silently rolls back) fails with WAL_MISSING_FILE via the fence', async () => {
    await seedIntoTable(); // 1..10 and commit 10 now live in an .ldb table
    const w = await WriteAheadLog.open(dir, { logger: captureLogger() });
    await w.save({ term: 2, vote: 1, commit: 20 }, makeEntries(11, 10, 2)); // only in the .log
    await w.close();
    for (const f of (await readdir(logDir())).filter((f) => f.endsWith('.log'))) await unlink(join(logDir(), f));
    const err = await openError();
    expectFatal(err, 'WAL_MISSING_FILE');
    expect(err.message).toMatch(/went back in time: its hard state has term 1 commit 10, but at the last open\/close it had term 2 commit 20/);
  });

  it('a .log lost after a crash (no clean close) is caught by the fence refreshed while running', async () => {
    await seedIntoTable();
    const w = await WriteAheadLog.open(dir, { logger: captureLogger(), fenceIntervalMs: 0 });
    await w.save({ term: 2, vote: 1, commit: 20 }, makeEntries(11, 10, 2));
    // The save started a background fence refresh; wait (boundedly) until the file shows commit 20.
    const fenceCommit = async (): Promise<number> => new DataView((await readFile(join(dir, 'wal.fence'))).buffer).getUint32(16);
    for (let i = 0; i < 500 && (await fenceCommit()) !== 20; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await fenceCommit()).toBe(20);
    // A crash image: the directory as the disk holds it while the member runs, then the .log goes missing.
    const { dir: image, cleanup: removeImage } = await tempDir('wal-crash-image');
    try {
      await cp(dir, image, { recursive: true });
      await w.close();
      for (const f of (await readdir(join(image, 'log'))).filter((f) => f.endsWith('.log'))) await unlink(join(image, 'log', f));
      const err = await WriteAheadLog.open(image, { logger: captureLogger() }).catch((e: unknown) => e as WalError);
      expectFatal(err as WalError, 'WAL_MISSING_FILE');
      expect((err as WalError).message).toMatch(/went back in time: its hard state has term 1 commit 10, but .* term 2 commit 20/);
    } finally {
      await removeImage();
    }
  });

  it('a deleted .log file of a new log (metadata lost) fails with WAL_MISSING_FILE', async () => {
    await seed(10, 10);
    for (const f of (await readdir(logDir())).filter((f) => f.endsWith('.log'))) await unlink(join(logDir(), f));
    expectFatal(await openError(), 'WAL_MISSING_FILE');
  });

  it('a deleted log directory (fence left behind) fails with WAL_MISSING_FILE', async () => {
    await seed(3, 3);
    await rm(logDir(), { recursive: true });
    const err = await openError();
    expectFatal(err, 'WAL_MISSING_FILE');
    expect(err.message).toMatch(/log directory .* is missing/);
  });
});

describe('WAL with damaged snapshot files', () => {
  async function corruptSnapshot(index: number, term: number): Promise<void> {
    const file = join(dir, 'snap', snapshotFileName(index, term));
    const fh = await open(file, 'r+');
    await fh.write(Uint8Array.of(0xde, 0xad), 0, 2, (await stat(file)).size - 3);
    await fh.close();
  }

  it('starts from the previous good snapshot when the newest is corrupt and the entries after it remain', async () => {
    const wal = await WriteAheadLog.open(dir, { logger: captureLogger() });
    await wal.save({ term: 1, vote: 1, commit: 30 }, makeEntries(1, 30, 1));
    await wal.markSnapshot(await writeSnapshotFile(wal.snapshots, 10, 1));
    await wal.markSnapshot(await writeSnapshotFile(wal.snapshots, 20, 1));
    await wal.compact(8);
    await wal.close();
    await corruptSnapshot(20, 1);
    const logger = captureLogger();
    const again = await WriteAheadLog.open(dir, { logger });
    expect(again.recovery.snapshot?.index).toBe(10);
    expect(again.storage.entries(11, 31, Infinity)).toEqual(makeEntries(11, 20, 1));
    expect(logger.lines.some((l) => l.level === 'error' && /corrupt snapshot/.test(l.msg))).toBe(true);
    await again.close();
  });

  it('fails with SNAPSHOT_MISSING when no good snapshot covers the compacted log', async () => {
    const wal = await WriteAheadLog.open(dir, { logger: captureLogger() });
    await wal.save({ term: 1, vote: 1, commit: 30 }, makeEntries(1, 30, 1));
    await wal.markSnapshot(await writeSnapshotFile(wal.snapshots, 20, 1));
    await wal.compact(20);
    await wal.close();
    await corruptSnapshot(20, 1);
    const err = await openError();
    expectFatal(err, 'SNAPSHOT_MISSING');
    expect(err.message).toMatch(/first entry on disk: 21/);
  });
});
