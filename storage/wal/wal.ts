// The write-ahead log: the Raft log and hard state of one member, durable in its own LevelDB.
//
// Layout of the directory it is given:
//   <dir>/log/        LevelDB (classic-level, binary keys/values; the key space is described in codec.ts)
//   <dir>/snap/       snapshot files (snapshot.ts)
//   <dir>/wal.fence   term and commit, refreshed at open, close and about once a second, to notice a log
//                     that went back in time
//
// Writes: one Ready = one LevelDB batch written with `{ sync: true }` (group commit): the snapshot marker,
// the new entries, the deletes of a conflicting suffix and the hard state land together or not at all, so the
// disk never holds a hard state whose commit points past entries that were not written with it.
// Reads: the Raft core reads a MemoryStorage. We fill it on open and update it only after a batch is durable,
// so the core never sees (and never acknowledges) an entry that a crash could take back.
//
// Which entries are loaded on open (worked example):
//   markers on disk: 100, 200      snapshot files: 100, 200 (200 corrupt)      entries on disk: 51..260
//   -> base = snapshot 100 (the newest file that passes its checksums and has a marker), entries 101..260.
//   If compaction had already deleted entries up to 150, snapshot 100 could not be used (101..150 are gone)
//   and open fails with SNAPSHOT_MISSING rather than starting from a log with a hole in it.
import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { assert } from '../../raft/errors.js';
import { MemoryStorage } from '../../raft/storage.js';
import {
  EMPTY_HARD_STATE,
  entriesSize,
  isEmptySnapshot,
  type Entry,
  type HardState,
  type Snapshot,
  type SnapshotMetadata,
} from '../../raft/types.js';
import {
  decodeEntry,
  decodeHardState,
  decodeMarker,
  decodeMeta,
  encodeEntries,
  encodeHardState,
  encodeMarker,
  encodeMeta,
  entryKey,
  getU64,
  HARD_STATE_KEY,
  HARD_STATE_KEY_V1,
  indexOfKey,
  isBad,
  KEY_ENTRY,
  KEY_SNAPSHOT_MARKER,
  markerKey,
  META_KEY,
  putU64,
  WAL_FORMAT_V1,
  WAL_FORMAT_VERSION,
} from './codec.js';
import { crc32c } from '../crc32c.js';
import {
  errClosed,
  errCorruptEntry,
  errCorruptRecord,
  errMissingEntries,
  errMissingFile,
  RESTORE_ADVICE,
  WalError,
} from './errors.js';
import { writeFileDurably } from './fsutil.js';
import { defaultWalLogger, type WalLogger } from './logger.js';
import { snapshotFileName, SnapshotStore, type SnapshotInfo } from './snapshot.js';
import { walTestHooks } from './test-hooks.js';

/** Entry bytes one save() may carry. Raft's per-message and uncommitted-size limits keep a Ready far below. */
export const SAVE_BATCH_BYTES_MAX = 64 * 1024 * 1024;
/**
 * Operations in one LevelDB batch (puts plus the deletes of a truncated suffix or a replaced log). The deletes
 * must share the batch with the new entries (a crash between them would resurrect a stale suffix), so this is
 * a hard limit, asserted, not a point at which we split.
 */
export const BATCH_OPS_MAX = 1_000_000;
/**
 * Compaction deletes at most this many entries per turn of the write queue: it is cleanup, so it may be split and
 * need not be atomic, and saves waiting meanwhile go between slices. One slice of 10,000 (the snapshot interval's
 * worth) held every save of the member back for 15-25 ms at each snapshot.
 */
export const COMPACT_BATCH_ENTRIES_MAX = 1_000;
/** How often (at most) the fence file is refreshed in the background while saves come in. */
export const FENCE_INTERVAL_MS_DEFAULT = 1_000;
/** Entries scanned past a torn-tail cut point whose keys are then deleted; a longer tail is not a torn write. */
export const TORN_TAIL_ENTRIES_MAX = BATCH_OPS_MAX;

const LOG_DIR = 'log';
const SNAP_DIR = 'snap';
const FENCE_FILE = 'wal.fence';
const ENTRY_KEYS_END = Uint8Array.of(KEY_ENTRY + 1);
const EMPTY = new Uint8Array(0);

export interface WalOptions {
  readonly logger?: WalLogger;
  /** Snapshot files to keep (see SnapshotStore). */
  readonly snapshotRetain?: number;
  /** Frame size of snapshot files, the reader's chunk size. */
  readonly snapshotChunkBytes?: number;
  /** LevelDB's memtable size. Tests use a small one to force data into .ldb files. */
  readonly writeBufferBytes?: number;
  /** Minimum time between background fence refreshes (0: after every save that carries a hard state). */
  readonly fenceIntervalMs?: number;
}

/** What open() found and did. */
export interface RecoveryReport {
  /** The directory had no log: a new one was created. */
  readonly created: boolean;
  /** The hard state as read from disk. */
  readonly hardState: HardState;
  /**
   * The commit index on disk was behind the snapshot the log starts from, and was raised to it (a snapshot holds
   * only applied, so committed, entries). Logs written before markSnapshot carried the hard state could be left so
   * by a crash, and the Raft core refuses to start from them.
   */
  readonly commitRaisedTo?: number;
  /** The snapshot the in-memory log starts from (undefined: from the beginning). */
  readonly snapshot: SnapshotMetadata | undefined;
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** A torn tail that was cut off: entries from `from` on were deleted. */
  readonly tailCut: { readonly from: number; readonly entries: number; readonly reason: string } | undefined;
}

type Db = ClassicLevel<Uint8Array, Uint8Array>;
type Batch = ReturnType<Db['batch']>;

/** Where entry keys sit on disk: [first, last], or undefined when there is none. Keys in between are contiguous. */
interface DiskRange {
  first: number | undefined;
  last: number | undefined;
}

export class WriteAheadLog {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** A failed synced write leaves the disk in an unknown state (fsyncgate): refuse all further use. */
  private failed: unknown = undefined;
  /** Background fence writes, one at a time (they share a temporary file name). */
  private fenceChain: Promise<void> = Promise.resolve();
  private fenceInFlight = false;
  private fenceWrittenAtMs = Date.now();
  private fenceIntervalMs = FENCE_INTERVAL_MS_DEFAULT;

  private constructor(
    readonly dir: string,
    private readonly db: Db,
    /** The Raft core's read view. Mutate it only through this class. */
    readonly storage: MemoryStorage,
    readonly snapshots: SnapshotStore,
    readonly recovery: RecoveryReport,
    private hardState: HardState,
    /** The newest hard state a synced write has made durable (the fence never records more). */
    private durableHardState: HardState,
    /** The newest hard state put in a written batch (a commit-only change waits for the next batch). */
    private writtenHardState: HardState,
    private readonly disk: DiskRange,
    /** Indexes of the snapshot markers on disk, ascending. */
    private markers: number[],
    private readonly logger: WalLogger,
  ) {}

  // ------------------------------------------------------------------ open

  static async open(dir: string, options: WalOptions = {}): Promise<WriteAheadLog> {
    const logger = options.logger ?? defaultWalLogger();
    const created = await mustCreate(dir);
    const snapshots = await SnapshotStore.open(join(dir, SNAP_DIR), {
      logger,
      ...(options.snapshotRetain === undefined ? {} : { retain: options.snapshotRetain }),
      ...(options.snapshotChunkBytes === undefined ? {} : { chunkBytes: options.snapshotChunkBytes }),
    });
    const db = await openLevel(join(dir, LOG_DIR), created, options.writeBufferBytes);
    try {
      const wal = await WriteAheadLog.recover(dir, db, snapshots, created, logger);
      wal.fenceIntervalMs = options.fenceIntervalMs ?? FENCE_INTERVAL_MS_DEFAULT;
      return wal;
    } catch (e) {
      await db.close();
      throw e;
    }
  }

  private static async recover(dir: string, db: Db, snapshots: SnapshotStore, created: boolean, logger: WalLogger): Promise<WriteAheadLog> {
    const fence = await readFence(dir);
    const format = await ensureMeta(db, created || (fence === undefined && (await isEmpty(db))));
    if (format === WAL_FORMAT_V1) await migrateFromV1(db, logger);
    const hardState = await readHardState(db);
    checkFence(fence, hardState);
    const markers = await readMarkers(db);
    const disk: DiskRange = { first: await firstEntryIndex(db), last: undefined };
    const base = await chooseBase(snapshots, markers, disk.first, logger);
    const scan = await scanEntries(db, base, hardState.commit);
    const tailCut = scan.cut === undefined ? undefined : await cutTail(db, scan.cut, logger);
    disk.first = await firstEntryIndex(db);
    disk.last = await lastEntryIndex(db);
    const current = base !== undefined && hardState.commit < base.index ? { ...hardState, commit: base.index } : hardState;
    if (current !== hardState) logger.warn({ commit: hardState.commit, snapshot: base!.index }, 'wal: the commit index on disk was behind the snapshot; raised to it');
    const storage = buildStorage(base, scan.entries, current);
    const recovery: RecoveryReport = {
      created,
      hardState,
      ...(current === hardState ? {} : { commitRaisedTo: current.commit }),
      snapshot: base,
      firstIndex: storage.firstIndex(),
      lastIndex: storage.lastIndex(),
      tailCut,
    };
    await writeFence(dir, hardState);
    logger.info({ ...recovery, hardState: { ...hardState } }, 'wal opened');
    const markerIndexes = [...markers.keys()].sort((a, b) => a - b);
    // A raised commit index is shown to the core now and written with the next batch, as a commit-only change is.
    return new WriteAheadLog(dir, db, storage, snapshots, recovery, current, hardState, hardState, disk, markerIndexes, logger);
  }

  // ------------------------------------------------------------------ writes

  /**
   * Persist one Ready: `snapshot` (a snapshot received from the leader, whose file is already committed in
   * `snapshots`), then `entries`, then `hardState`, in one synced batch; then show them to the Raft core.
   * Entries starting at index i replace whatever the log held from i on.
   */
  save(hardState: HardState | undefined, entries: readonly Entry[], snapshot?: Snapshot, options: { sync: boolean } = { sync: true }): Promise<void> {
    return this.exclusive(() => this.saveNow(hardState, entries, isEmptySnapshot(snapshot) ? undefined : snapshot!.metadata, options.sync));
  }

  /**
   * `syncHint` false is the Raft core saying only the commit index moved (Ready.mustSync). Such a change is not
   * written at all: it goes into the next batch that is (the next entries, a snapshot marker, or close), as etcd's
   * WAL buffers it until its next sync. A lost commit index is learned again from the leader, and the state machine
   * may be ahead of the commit index on disk (it skips what it holds on replay). Writing it on its own cost every
   * member a LevelDB write per Ready, a thread-pool hand-off that dominated CPU per put at one request in flight.
   * Entries and snapshots are always synced.
   */
  private async saveNow(hardState: HardState | undefined, entries: readonly Entry[], snap: SnapshotMetadata | undefined, syncHint: boolean): Promise<void> {
    // A commit-only change: visible to the core now, written with the next batch.
    if (hardState !== undefined && !syncHint && entries.length === 0 && snap === undefined) return this.showHardState(hardState);
    if (snap !== undefined) await this.assertSnapshotFile(snap);
    const batch = this.db.batch();
    const base = snap?.index ?? this.storage.firstIndex() - 1;
    if (snap !== undefined) this.stageSnapshot(batch, snap);
    const toWrite = this.stageEntries(batch, entries, base, snap !== undefined);
    const hs = hardState ?? this.unwrittenHardState();
    if (hs !== undefined) batch.put(HARD_STATE_KEY, encodeHardState(hs));
    if (batch.length === 0) return void (await batch.close());
    assert(batch.length <= BATCH_OPS_MAX, () => `wal batch of ${batch.length} operations exceeds BATCH_OPS_MAX ${BATCH_OPS_MAX}`);
    const sync = syncHint || entries.length > 0 || snap !== undefined;
    await this.write(batch, sync, hs);
    // Durable: now the Raft core may see it.
    if (snap !== undefined) this.installSnapshot(snap, toWrite);
    else if (toWrite.length > 0) this.appendDurable(toWrite);
    if (hardState !== undefined) this.showHardState(hardState);
    if (hs !== undefined) this.maybeRefreshFence();
  }

  /** The hard state the Raft core sees from now on (written already, or with the next batch: see saveNow). */
  private showHardState(hardState: HardState): void {
    this.storage.setHardState(hardState);
    this.hardState = hardState;
  }

  private unwrittenHardState(): HardState | undefined {
    return this.writtenHardState === this.hardState ? undefined : this.hardState;
  }

  /**
   * Keep the fence close behind the durable hard state, off the save path: a fence that is only written at
   * open and close cannot notice a .log file lost after a crash, when writes since the last open vanish.
   */
  private maybeRefreshFence(): void {
    if (this.fenceInFlight || Date.now() - this.fenceWrittenAtMs < this.fenceIntervalMs) return;
    this.fenceInFlight = true;
    void this.refreshFence()
      .catch((e: unknown) => this.logger.warn({ err: String(e) }, 'wal: could not refresh the fence file'))
      .finally(() => (this.fenceInFlight = false));
  }

  /** Record the current durable term and commit in the fence file now. */
  refreshFence(): Promise<void> {
    // Only what a sync made durable: a fence ahead of the disk would turn an ordinary crash into "lost .log".
    const hs = this.durableHardState;
    const run = this.fenceChain.then(async () => {
      await writeFence(this.dir, hs);
      this.fenceWrittenAtMs = Date.now();
    });
    this.fenceChain = run.catch(() => undefined);
    return run;
  }

  /** A received snapshot replaces the whole log: every entry key and marker goes in the same batch. */
  private stageSnapshot(batch: Batch, snap: SnapshotMetadata): void {
    assert(snap.index > this.storage.snapshot().metadata.index, () => `wal: snapshot ${snap.index} is not newer than ${this.storage.snapshot().metadata.index}`);
    batch.put(markerKey(snap.index), encodeMarker(snap));
    // Markers of the replaced log go too: only the new snapshot may serve as a starting point now.
    for (const m of this.markers) if (m !== snap.index) batch.del(markerKey(m));
  }

  /**
   * Stage `entries` (contiguous) and the deletes that make the keys on disk exactly [first kept, new last].
   * Returns the entries actually written (those behind the snapshot point are dropped, as MemoryStorage does).
   */
  private stageEntries(batch: Batch, entries: readonly Entry[], base: number, replaceLog: boolean): Entry[] {
    const toWrite = entries.filter((e) => e.index > base);
    assertContiguous(toWrite);
    assert(entriesSize(toWrite) <= SAVE_BATCH_BYTES_MAX, () => `wal save of ${entriesSize(toWrite)} bytes exceeds SAVE_BATCH_BYTES_MAX`);
    const last = replaceLog ? base : this.storage.lastIndex();
    if (toWrite.length > 0) {
      const first = toWrite[0]!.index;
      assert(first <= last + 1, () => `wal: append at ${first} leaves a gap after last index ${last}`);
      if (!replaceLog) this.assertNoCommittedConflict(toWrite);
    }
    const newLast = toWrite.length > 0 ? toWrite[toWrite.length - 1]!.index : last;
    for (const r of encodeEntries(toWrite)) batch.put(r.key, r.value);
    if (replaceLog) this.stageDeleteOutside(batch, base + 1, newLast);
    else if (toWrite.length > 0) this.stageDeleteOutside(batch, -Infinity, newLast);
    return toWrite;
  }

  /** Raft never rewrites a committed entry with a different one; doing so here would lose acknowledged data. */
  private assertNoCommittedConflict(toWrite: readonly Entry[]): void {
    const committed = this.hardState.commit;
    for (const e of toWrite) {
      if (e.index > committed || e.index > this.storage.lastIndex()) return;
      if (e.index < this.storage.firstIndex()) continue;
      assert(this.storage.term(e.index) === e.term, () => `wal: entry ${e.index} (term ${e.term}) would overwrite a committed entry of term ${this.storage.term(e.index)}`);
    }
  }

  /** Delete the entry keys on disk outside [keepFirst, keepLast]; touches only the keys it deletes. */
  private stageDeleteOutside(batch: Batch, keepFirst: number, keepLast: number): void {
    const { first, last } = this.disk;
    if (first === undefined || last === undefined) return;
    const below = Math.min(last, keepFirst - 1) - first + 1;
    const above = last - Math.max(first, keepLast + 1) + 1;
    assert(Math.max(0, below) + Math.max(0, above) <= BATCH_OPS_MAX, () => `wal: ${below + above} stale entry keys exceed BATCH_OPS_MAX`);
    for (let i = first; i <= Math.min(last, keepFirst - 1); i++) batch.del(entryKey(i));
    for (let i = Math.max(first, keepLast + 1); i <= last; i++) batch.del(entryKey(i));
  }

  private installSnapshot(snap: SnapshotMetadata, toWrite: readonly Entry[]): void {
    // The snapshot's data lives in the snapshot store; the core gets metadata and streams data by (index, term).
    this.storage.applySnapshot({ metadata: snap, data: EMPTY });
    this.storage.append(toWrite);
    this.disk.first = toWrite.length > 0 ? toWrite[0]!.index : undefined;
    this.disk.last = toWrite.length > 0 ? toWrite[toWrite.length - 1]!.index : undefined;
    this.markers = [snap.index];
  }

  private appendDurable(toWrite: readonly Entry[]): void {
    this.storage.append(toWrite);
    this.disk.first ??= toWrite[0]!.index;
    this.disk.last = toWrite[toWrite.length - 1]!.index;
  }

  /**
   * Record a snapshot of the local state machine (its file already committed in `snapshots`) as a point the log
   * may start from, so that compact() may later drop the entries it covers.
   */
  markSnapshot(metadata: SnapshotMetadata): Promise<void> {
    return this.exclusive(async () => {
      await this.assertSnapshotFile(metadata);
      if (metadata.index <= this.storage.snapshot().metadata.index) return; // already recorded: idempotent
      assert(metadata.index <= this.storage.lastIndex(), () => `wal: snapshot ${metadata.index} is beyond the last index ${this.storage.lastIndex()}`);
      assert(this.storage.term(metadata.index) === metadata.term, () => `wal: snapshot ${metadata.index} has term ${metadata.term}, the log has ${this.storage.term(metadata.index)}`);
      // A snapshot holds applied entries, which the core saw committed: the hard state it saw goes in the same batch
      // when it was not written yet (a commit-only change, saveNow), or a crash would leave the disk with a commit
      // index behind the snapshot the log starts from, which the core refuses to start from.
      assert(this.hardState.commit >= metadata.index, () => `wal: snapshot ${metadata.index} is beyond the commit index ${this.hardState.commit}`);
      const hs = this.unwrittenHardState();
      const batch = this.db.batch();
      batch.put(markerKey(metadata.index), encodeMarker(metadata));
      if (hs !== undefined) batch.put(HARD_STATE_KEY, encodeHardState(hs));
      await this.write(batch, true, hs);
      this.markers.push(metadata.index);
      this.storage.createSnapshot(metadata.index, metadata.confState, EMPTY);
    });
  }

  /**
   * Drop entries <= index, on disk and in memory. The caller has made the state machine durable past index
   * and recorded a snapshot at or after it (markSnapshot). Already-compacted indexes are a no-op.
   */
  async compact(index: number): Promise<void> {
    await this.exclusive(async () => {
      const newest = this.markers[this.markers.length - 1] ?? 0;
      assert(index <= newest, () => `wal: compact(${index}) passes the newest snapshot marker ${newest}; call markSnapshot first`);
      if (index > this.storage.firstIndex() - 1) this.storage.compact(index);
    });
    // The disk a slice per turn of the write queue: the in-memory log (all the core reads) is already compacted. A
    // close between slices leaves the rest to the next compaction (one already queued fails with WAL_CLOSED).
    let more = true;
    while (more && !this.closed) more = await this.exclusive(() => this.deleteEntrySlice(index));
    if (this.closed) return;
    await this.exclusive(async () => {
      const dead = this.markers.filter((m) => m < index);
      if (dead.length === 0) return;
      const batch = this.db.batch();
      for (const m of dead) batch.del(markerKey(m));
      await this.write(batch, false);
      this.markers = this.markers.filter((m) => m >= index);
    });
  }

  /**
   * Delete the lowest entries on disk up to `index`, at most COMPACT_BATCH_ENTRIES_MAX of them; true while more
   * remain. Lowest keys first, so a crash part-way leaves a contiguous suffix; a save between two slices appends
   * above them or, installing a received snapshot (always past `index`), replaces the log, and the next slice reads
   * the bounds again. Not synced: losing a compaction only brings back entries the next one deletes again, and
   * LevelDB keeps write order. LevelDB's own range delete (`clear`) runs on its thread with no per-key work here.
   */
  private async deleteEntrySlice(index: number): Promise<boolean> {
    const { first, last } = this.disk;
    if (first === undefined || last === undefined || first > index) return false;
    const to = Math.min(index, last, first + COMPACT_BATCH_ENTRIES_MAX - 1);
    try {
      await this.db.clear({ gte: entryKey(first), lte: entryKey(to) });
    } catch (e) {
      this.refuseFurtherWrites(e, 'wal compaction');
    }
    this.disk.first = to < last ? to + 1 : undefined;
    if (this.disk.first === undefined) this.disk.last = undefined;
    return this.disk.first !== undefined && this.disk.first <= index;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue;
    this.closed = true;
    try {
      if (this.failed === undefined && this.durableHardState !== this.hardState) {
        const batch = this.db.batch();
        batch.put(HARD_STATE_KEY, encodeHardState(this.hardState));
        await this.write(batch, true, this.hardState);
      }
      if (this.failed === undefined) await this.refreshFence();
    } finally {
      await this.db.close();
    }
  }

  // ------------------------------------------------------------------ helpers

  /** One mutation at a time, in call order: each batch is computed against the state the previous one left. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.closed) throw errClosed();
      if (this.failed !== undefined) throw new WalError('WAL_CLOSED', 'wal: an earlier write failed; the log must be reopened', undefined, { cause: this.failed });
      return fn();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Write a batch; `hardState`: the hard state it carries, if any. */
  private async write(batch: Batch, sync: boolean, hardState?: HardState): Promise<void> {
    try {
      await batch.write({ sync: sync && !walTestHooks.skipFsync });
      if (hardState !== undefined) this.writtenHardState = hardState;
      // A synced write makes every earlier write durable too (LevelDB's log is one ordered file). A disk that lies
      // about fsync (test hook) loses the fence's writes too: nothing becomes durable.
      if (sync && !walTestHooks.skipFsync) this.durableHardState = this.writtenHardState;
    } catch (e) {
      this.refuseFurtherWrites(e, 'wal write');
    }
  }

  /** A failed write leaves the log unusable until it is reopened: what reached the disk is unknown. */
  private refuseFurtherWrites(e: unknown, what: string): never {
    this.failed = e;
    this.logger.error({ err: String(e) }, `${what} failed; refusing further writes`);
    throw e;
  }

  /** The log must never point at a snapshot that a crash could have lost: the file is committed first. */
  private async assertSnapshotFile(m: SnapshotMetadata): Promise<void> {
    const path = join(this.snapshots.dir, snapshotFileName(m.index, m.term));
    const ok = await access(path).then(() => true, () => false);
    assert(ok, () => `wal: snapshot ${m.index} (term ${m.term}) must be committed in the snapshot store before the log records it`);
  }
}

// ------------------------------------------------------------------ open, step by step

/** True when the directory holds no log yet. A fence or snapshot without a log means the log was lost. */
async function mustCreate(dir: string): Promise<boolean> {
  const has = (p: string): Promise<boolean> => access(join(dir, p)).then(() => true, () => false);
  if (await has(LOG_DIR)) return false;
  if (await has(FENCE_FILE)) throw errMissingFile(`the log directory ${join(dir, LOG_DIR)} is missing but ${FENCE_FILE} shows the member ran before`);
  const snaps = (await readdir(join(dir, SNAP_DIR)).catch(() => [] as string[])).filter((f) => f.endsWith('.snap'));
  if (snaps.length > 0) throw errMissingFile(`the log directory ${join(dir, LOG_DIR)} is missing but snapshot files exist`);
  return true;
}

async function openLevel(path: string, create: boolean, writeBufferBytes: number | undefined): Promise<Db> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(path, {
    keyEncoding: 'view',
    valueEncoding: 'view',
    // An existing log is never re-created: LevelDB would start an empty database over lost files.
    createIfMissing: create,
    errorIfExists: create,
    ...(writeBufferBytes === undefined ? {} : { writeBufferSize: writeBufferBytes }),
  });
  try {
    await db.open();
  } catch (e) {
    throw mapOpenError(path, e);
  }
  return db;
}

function mapOpenError(path: string, e: unknown): Error {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.message ?? String(e);
  if (cause?.code === 'LEVEL_LOCKED') return new WalError('WAL_LOCKED', `wal: ${path} is open in another process (${detail})`, undefined, { cause: e });
  if (cause?.code === 'LEVEL_CORRUPTION') {
    const missing = /missing files/.test(detail);
    return missing
      ? errMissingFile(`LevelDB files of ${path} are missing (${detail})`, e)
      : new WalError('WAL_CORRUPT', `wal: LevelDB reports corruption in ${path} (${detail}). Refusing to start; ${RESTORE_ADVICE}`, undefined, { cause: e });
  }
  if (/does not exist/.test(detail)) return errMissingFile(`LevelDB's CURRENT file in ${path} is missing (${detail})`, e);
  return e instanceof Error ? e : new Error(String(e));
}

/**
 * Write the meta record into a new log, else require it. It is the first record ever written, so a log without
 * it has lost its oldest data. A log that is completely empty and has no fence crashed while being created.
 */
async function ensureMeta(db: Db, fresh: boolean): Promise<number> {
  if (fresh) await db.put(META_KEY, encodeMeta(), { sync: true });
  const v = await db.get(META_KEY);
  if (v === undefined) throw errMissingFile('the log has no metadata record: LevelDB lost its oldest data (a deleted .log or .ldb file?)');
  const meta = decodeMeta(v);
  if (isBad(meta)) throw errCorruptRecord('the log metadata record', meta.bad);
  return meta.version;
}

/**
 * Move a format 1 log to format 2 (codec.ts): the hard state from [0x01] to [0x04], and the meta record's
 * version, in one synced batch, so a crash leaves one format or the other, whole. The meta record changes too so
 * that an older Fulcrum refuses the log (unknown format version) instead of finding no hard state at [0x01] and
 * starting as a member that never voted.
 */
async function migrateFromV1(db: Db, logger: WalLogger): Promise<void> {
  const v = await db.get(HARD_STATE_KEY_V1);
  const hs = v === undefined ? undefined : decodeHardState(v, HARD_STATE_KEY_V1);
  if (isBad(hs)) throw errCorruptRecord('the hard state (term, vote, commit)', hs.bad);
  const batch = db.batch();
  if (hs !== undefined) batch.put(HARD_STATE_KEY, encodeHardState(hs)).del(HARD_STATE_KEY_V1);
  batch.put(META_KEY, encodeMeta());
  await batch.write({ sync: true });
  logger.info({ from: WAL_FORMAT_V1, to: WAL_FORMAT_VERSION }, 'wal: log moved to the current format');
}

async function isEmpty(db: Db): Promise<boolean> {
  return (await db.keys({ limit: 1 }).all()).length === 0;
}

async function readHardState(db: Db): Promise<HardState> {
  const v = await db.get(HARD_STATE_KEY);
  if (v === undefined) return EMPTY_HARD_STATE;
  const hs = decodeHardState(v);
  if (isBad(hs)) throw errCorruptRecord('the hard state (term, vote, commit)', hs.bad);
  return hs;
}

async function readMarkers(db: Db): Promise<Map<number, SnapshotMetadata>> {
  const out = new Map<number, SnapshotMetadata>();
  for await (const [k, v] of db.iterator({ gte: Uint8Array.of(KEY_SNAPSHOT_MARKER), lt: Uint8Array.of(KEY_SNAPSHOT_MARKER + 1) })) {
    const m = decodeMarker(k, v);
    if (isBad(m)) throw errCorruptRecord(`the snapshot marker at ${indexOfKey(KEY_SNAPSHOT_MARKER, k) ?? '?'}`, m.bad);
    out.set(m.index, m);
  }
  return out;
}

async function firstEntryIndex(db: Db): Promise<number | undefined> {
  const keys = await db.keys({ gte: entryKey(0), lt: ENTRY_KEYS_END, limit: 1 }).all();
  return keys[0] === undefined ? undefined : indexOfKey(KEY_ENTRY, keys[0]);
}

async function lastEntryIndex(db: Db): Promise<number | undefined> {
  const keys = await db.keys({ gte: entryKey(0), lt: ENTRY_KEYS_END, limit: 1, reverse: true }).all();
  return keys[0] === undefined ? undefined : indexOfKey(KEY_ENTRY, keys[0]);
}

/**
 * The snapshot the log starts from: the newest file that passes its checksums, has a marker in the log with the
 * same term, and is followed on disk by the entries after it. Undefined: start from index 1.
 */
async function chooseBase(
  snapshots: SnapshotStore,
  markers: Map<number, SnapshotMetadata>,
  diskFirst: number | undefined,
  logger: WalLogger,
): Promise<SnapshotMetadata | undefined> {
  const usable = (s: SnapshotInfo): boolean =>
    markers.get(s.index)?.term === s.term && (diskFirst === undefined || diskFirst <= s.index + 1);
  const found = await snapshots.newestGood(usable);
  const newestMarker = Math.max(0, ...markers.keys());
  if (found !== undefined) {
    if (found.info.index < newestMarker) logger.warn({ index: found.info.index, newestMarker }, 'starting from an older snapshot than the newest marker');
    return markers.get(found.info.index);
  }
  if (diskFirst === undefined ? newestMarker > 0 : diskFirst > 1) {
    throw new WalError(
      'SNAPSHOT_MISSING',
      `wal: no usable snapshot: the log was compacted (first entry on disk: ${diskFirst ?? 'none'}, newest snapshot ` +
        `marker: ${newestMarker}) and no snapshot file at or after that point passes its checksums. Refusing to start; ${RESTORE_ADVICE}`,
      newestMarker,
    );
  }
  return undefined;
}

interface Scan {
  readonly entries: Entry[];
  /** Torn tail: delete these entry keys (ascending), first one is where the log now ends + 1. */
  readonly cut: { readonly keys: number[]; readonly reason: string } | undefined;
}

/** Bytes of entries read from LevelDB per thread-pool round trip while scanning at open (default: 16 KiB). */
const SCAN_READ_AHEAD_BYTES = 4 * 1024 * 1024;
/** Entries handed over per thread-pool round trip while scanning at open (at most SCAN_READ_AHEAD_BYTES of them). */
const SCAN_BATCH_ENTRIES = 1_000;

/**
 * Read entries after `base` in order, checking each checksum and that indexes are contiguous and terms never
 * decrease. A bad or missing entry at or below `commit` is fatal; above it, it and everything after is a torn
 * tail: written by a batch whose sync never completed, so never acknowledged to anyone.
 */
async function scanEntries(db: Db, base: SnapshotMetadata | undefined, commit: number): Promise<Scan> {
  const entries: Entry[] = [];
  let expected = (base?.index ?? 0) + 1;
  let lastTerm = base?.term ?? 0;
  let cut: { keys: number[]; reason: string } | undefined;
  // A batch of records per thread-pool round trip, each batch checked in one synchronous loop: an async step per
  // record (for await over the iterator) cost a restart a promise and a turn per entry.
  const it = db.iterator({ gte: entryKey(expected), lt: ENTRY_KEYS_END, highWaterMarkBytes: SCAN_READ_AHEAD_BYTES });
  try {
    for (let batch = await it.nextv(SCAN_BATCH_ENTRIES); batch.length > 0; batch = await it.nextv(SCAN_BATCH_ENTRIES)) {
      for (const [k, v] of batch) {
        const index = indexOfKey(KEY_ENTRY, k);
        if (index === undefined) assert(false, 'wal: malformed entry key');
        if (cut !== undefined) {
          if (cut.keys.length >= TORN_TAIL_ENTRIES_MAX) assert(false, `wal: torn tail longer than ${TORN_TAIL_ENTRIES_MAX} entries`);
          cut.keys.push(index);
          continue;
        }
        const problem = entryProblem(index, expected, k, v, lastTerm);
        if (typeof problem === 'string') {
          if (expected <= commit) {
            if (index === expected) throw errCorruptEntry(index, commit, problem);
            throw errMissingEntries(expected, `the next entry on disk is ${index}, the hard state's commit index is ${commit}`);
          }
          cut = { keys: [index], reason: problem };
          continue;
        }
        entries.push(problem);
        lastTerm = problem.term;
        expected++;
      }
    }
  } finally {
    await it.close();
  }
  const last = expected - 1;
  if (last < commit) throw errMissingEntries(last + 1, `the hard state's commit index is ${commit} but the log ends at ${last}`);
  return { entries, cut };
}

/** The entry, or why it cannot be part of the log at this point. */
function entryProblem(index: number, expected: number, k: Uint8Array, v: Uint8Array, lastTerm: number): Entry | string {
  if (index !== expected) return `gap: entry ${expected} is missing, the next on disk is ${index}`;
  const e = decodeEntry(k, v);
  if (isBad(e)) return `entry ${index}: ${e.bad}`;
  if (e.term < lastTerm) return `entry ${index}: term ${e.term} is lower than the previous entry's ${lastTerm}`;
  return e;
}

async function cutTail(db: Db, cut: { keys: number[]; reason: string }, logger: WalLogger): Promise<RecoveryReport['tailCut']> {
  const batch = db.batch();
  for (const i of cut.keys) batch.del(entryKey(i));
  await batch.write({ sync: true });
  const report = { from: cut.keys[0]!, entries: cut.keys.length, reason: cut.reason };
  logger.warn(report, 'wal: cut off a torn tail above the commit index (written by a batch that never completed)');
  return report;
}

function buildStorage(base: SnapshotMetadata | undefined, entries: readonly Entry[], hs: HardState): MemoryStorage {
  const storage = new MemoryStorage();
  if (base !== undefined && base.index > 0) storage.applySnapshot({ metadata: base, data: EMPTY });
  storage.append(entries);
  storage.setHardState(hs);
  return storage;
}

function assertContiguous(entries: readonly Entry[]): void {
  for (let i = 1; i < entries.length; i++) {
    assert(entries[i]!.index === entries[i - 1]!.index + 1, () => `wal: entries not contiguous at ${entries[i]!.index}`);
  }
}

// ------------------------------------------------------------------ the fence

/**
 * The hard state's term and commit never decrease. The fence records them outside LevelDB at open, at close and
 * about once a second in between; finding less on disk next time means LevelDB lost writes it had acknowledged
 * (a deleted .log file rolls the database back to an older, self-consistent state that no other check could
 * tell apart). Writes in the last fence interval before a crash are not covered.
 * Layout: crc u32 | term u64 | commit u64.
 */
async function writeFence(dir: string, hs: HardState): Promise<void> {
  const b = new Uint8Array(20);
  const v = new DataView(b.buffer);
  putU64(v, 4, hs.term);
  putU64(v, 12, hs.commit);
  v.setUint32(0, crc32c(b.subarray(4)));
  await writeFileDurably(join(dir, FENCE_FILE), b);
}

interface Fence {
  readonly term: number;
  readonly commit: number;
}

async function readFence(dir: string): Promise<Fence | undefined> {
  const b = await readFile(join(dir, FENCE_FILE)).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (b === undefined) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length !== 20 || v.getUint32(0) !== crc32c(b.subarray(4))) throw errCorruptRecord(FENCE_FILE, 'checksum mismatch');
  return { term: getU64(v, 4), commit: getU64(v, 12) };
}

function checkFence(fence: Fence | undefined, hs: HardState): void {
  if (fence === undefined) return;
  if (hs.term < fence.term || hs.commit < fence.commit) {
    throw errMissingFile(
      `the log went back in time: its hard state has term ${hs.term} commit ${hs.commit}, but at the last ` +
        `open/close it had term ${fence.term} commit ${fence.commit}, so LevelDB lost acknowledged writes (a deleted .log file?)`,
    );
  }
}
