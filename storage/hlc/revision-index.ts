// The replicated "revision at wall time" index: which MVCC revision was current at a given HLC wall time.
//
// As entries are applied, the composer records (hlc, revision) for every entry that created a revision. A read
// "as of wall time T" then asks for the last revision recorded at or before (T, HLC_LOGICAL_MAX).
//
//   recorded:   (1000.0, rev 2)  (1000.5, rev 3)  (1007.0, rev 4)
//   T = 999  -> BEFORE_HISTORY (or COMPACTED once history was dropped)
//   T = 1000 -> 3     (both revisions of millisecond 1000 happened "at" 1000)
//   T = 1006 -> 3
//   T = 1007 -> 4, and every T after it -> 4 until the next record
//
// Both columns only grow. Revisions are the MVCC revision and must not decrease (assert). HLC values are
// stamped by whichever member was leader; a new leader's clock could lag the log it inherited, so a lower HLC
// is recorded as the previous one (a deterministic clamp: every member applies the same rule to the same log).
//
// Durable form, in key order:
//   kt/c/<u64 first revision>  a chunk: chunkRecords records, each u64(revision) | u64(hlc), oldest first
//   kt/e/<u64 revision>        u64(hlc): one record of the tail, the records not yet in a chunk
//   kt/m/dropped               u64(revision) | u64(hlc) of the highest record dropped so far
// A record is written as a pair of its own; once the tail holds chunkRecords of them, the oldest chunkRecords are
// folded into one chunk pair and their own pairs deleted. A restart then reads about a thousandth as many LevelDB
// entries: each entry costs classic-level two buffers and a few microseconds, which for 100,000 single-record
// pairs was about 180 ms of a restart. The chunks are this member's layout only: snapshot images (and snapshot
// files) carry one pair per live record, as builds before chunks wrote them (revisionIndexImagePairs), so a
// member of an earlier build can install an image from this one; this build folds such a tail as it records.
// The index is bounded (REVISION_INDEX_ENTRIES_MAX): recording beyond it drops the oldest record, and MVCC
// compaction drops records below the compacted revision. Times before the first retained record then answer
// COMPACTED rather than a wrong revision. A chunk stays until its last record is dropped: its dropped records
// are kept in memory meanwhile (so pairs() can say what it holds) and skipped when it is loaded.
import { assert } from '../../raft/errors.js';
import type { Backend, KvBatch } from '../backend.js';
import { errBeforeHistory, errTimeCompacted } from './errors.js';
import { decodeHlc, encodeHlc, HLC_BYTES, hlcCeiling, hlcMax, isHlc, writeHlc, type Hlc } from './hlc.js';
import { batchBytes, movePrefix, readSafeU64, scanPrefix, startsWith, utf8, writeU64, type Pair } from './section.js';

// Key prefix: 'kt/' sorts right after the revision rows ('k/'). A backend batch holds new rows and new records
// together, so every table LevelDB flushes spans from the first new key of one family to the last of the other,
// and compacting it into the next level rewrites every older file inside that span. The rows are the bulk of
// the data: they must come first, so that a span covers only old records (small) and not old rows. Stores
// written before kept the index under 'hlc/r/', in front of the rows, and each compaction of new tables rewrote
// every row file of the level below; open() moves such an index (docs/storage.md).
export const REVISION_INDEX_PREFIX = utf8('kt/');
const CHUNK_PREFIX = utf8('kt/c/');
const ENTRY_PREFIX = utf8('kt/e/');
const DROPPED_KEY = utf8('kt/m/dropped');
/** One record inside a chunk: u64 revision | u64 hlc. */
const CHUNK_RECORD_BYTES = 8 + HLC_BYTES;
/** Where stores written before the move kept the index (same pairs, same layout after the prefix). */
export const LEGACY_REVISION_INDEX_PREFIX = utf8('hlc/r/');

/** Default bound: at one record per write, about a day of history at 1 write/s, a few MB in memory. */
export const REVISION_INDEX_ENTRIES_MAX = 100_000;
/** Default records per chunk pair: 16 KB values, a hundred chunks at the default bound. */
export const REVISION_INDEX_CHUNK_RECORDS = 1_000;
/** Largest chunk allowed (1 MiB values): a chunk is written in one batch and read as one LevelDB value. */
const CHUNK_RECORDS_MAX = 65_536;

export interface RevisionTimeIndexConfig {
  readonly entriesMax: number;
  /** Records folded into one chunk pair (see the header). Every member may use its own: it changes no answer. */
  readonly chunkRecords: number;
}

export class RevisionTimeIndex {
  /** Records live in [head, revisions.length); dropping from the front advances head, arrays are trimmed lazily. */
  private revisions: number[] = [];
  private hlcs: Hlc[] = [];
  private head = 0;
  /** Where each chunk pair's records start in the arrays, oldest first; a chunk ends where the next one starts. */
  private chunkStarts: number[] = [];
  /** Where the tail (records with a pair of their own) starts; the last chunk ends here. */
  private tailStart = 0;
  /** Highest revision whose record was dropped (by the bound or by compaction); 0 when nothing was dropped. */
  private droppedThroughRevision = 0;
  /** The hlc of that record: later records never sort before it, even when every record was dropped. */
  private droppedThroughHlc: Hlc = 0n;
  /** Records were dropped since the pair holding the two fields above was last put into a batch. */
  private droppedUnwritten = false;

  private constructor(private readonly config: RevisionTimeIndexConfig) {
    assert(Number.isSafeInteger(config.entriesMax) && config.entriesMax >= 1, 'entriesMax must be a positive integer');
    assert(Number.isSafeInteger(config.chunkRecords) && config.chunkRecords >= 1 && config.chunkRecords <= CHUNK_RECORDS_MAX, `chunkRecords must be an integer from 1 to ${CHUNK_RECORDS_MAX}`);
  }

  static empty(config: Partial<RevisionTimeIndexConfig> = {}): RevisionTimeIndex {
    return new RevisionTimeIndex({ entriesMax: config.entriesMax ?? REVISION_INDEX_ENTRIES_MAX, chunkRecords: config.chunkRecords ?? REVISION_INDEX_CHUNK_RECORDS });
  }

  static async open(backend: Backend, config: Partial<RevisionTimeIndexConfig> = {}): Promise<RevisionTimeIndex> {
    const index = RevisionTimeIndex.empty(config);
    await movePrefix(backend, LEGACY_REVISION_INDEX_PREFIX, REVISION_INDEX_PREFIX);
    await scanPrefix(backend, REVISION_INDEX_PREFIX, (k, v) => index.loadPair(k, v));
    index.skipDropped();
    return index;
  }

  get size(): number {
    return this.revisions.length - this.head;
  }

  /** The last recorded pair, if any. */
  last(): { hlc: Hlc; revision: number } | undefined {
    if (this.size === 0) return undefined;
    return { hlc: this.hlcs[this.hlcs.length - 1]!, revision: this.revisions[this.revisions.length - 1]! };
  }

  /**
   * Record that `revision` became current at `hlc`. A repeated revision is ignored (it became current earlier);
   * a lower hlc than the last is clamped up to it (see the header).
   */
  record(hlc: Hlc, revision: number, batch: KvBatch): void {
    this.recordDeferred(hlc, revision, batch);
    this.writeDropped(batch);
  }

  /**
   * record(), except that when the bound drops the oldest record, the pair that remembers the highest dropped
   * revision is left for writeDropped(batch), which the caller must call before it writes `batch`. Past the bound
   * every record drops one: the state machine records up to a hundred revisions into one backend batch, where a
   * hundred rewrites of that one pair cost a hundred LevelDB operations and only the last survives the batch.
   */
  recordDeferred(hlc: Hlc, revision: number, batch: KvBatch): void {
    // Plain tests before assert: a message closure per call is measurable on the apply path.
    if (!isHlc(hlc)) assert(false, `record: not an hlc: ${hlc}`);
    if (!(Number.isSafeInteger(revision) && revision > 0)) assert(false, `record: bad revision ${revision}`);
    let floorHlc = this.droppedThroughHlc;
    if (this.size > 0) {
      const lastRevision = this.revisions[this.revisions.length - 1]!;
      if (revision < lastRevision) assert(false, `record: revision went backwards ${lastRevision} -> ${revision}`);
      if (revision === lastRevision) return;
      floorHlc = this.hlcs[this.hlcs.length - 1]!;
    }
    if (revision <= this.droppedThroughRevision) assert(false, `record: revision ${revision} was already dropped`);
    const at = hlcMax(hlc, floorHlc);
    this.revisions.push(revision);
    this.hlcs.push(at);
    const hlcBytes = batchBytes(HLC_BYTES);
    writeHlc(hlcBytes, 0, at);
    batch.put(entryKey(revision), hlcBytes);
    // At most one chunk per record: a long tail (an image's, or a store written before chunks) folds gradually.
    if (this.revisions.length - this.tailStart >= this.config.chunkRecords) this.foldOldestTail(batch);
    while (this.size > this.config.entriesMax) this.dropOldest(batch);
  }

  /** Write the dropped-through pair if records were dropped since it was last written (see recordDeferred). */
  writeDropped(batch: KvBatch): void {
    if (!this.droppedUnwritten) return;
    batch.put(DROPPED_KEY, this.encodeDropped());
    this.droppedUnwritten = false;
  }

  /** The hlc recorded for exactly `revision`, or undefined when it has no record (none made, or dropped). */
  hlcOfRevision(revision: number): Hlc | undefined {
    let lo = this.head;
    let hi = this.revisions.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.revisions[mid]! < revision) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.revisions.length && this.revisions[lo] === revision ? this.hlcs[lo] : undefined;
  }

  /** The revision current at wall time `wallMs`: the last one recorded at or before the end of that millisecond. */
  revisionAt(wallMs: number): number {
    assert(Number.isSafeInteger(wallMs) && wallMs >= 0, () => `revisionAt: bad wall time ${wallMs}`);
    const i = this.lastAtOrBefore(hlcCeiling(wallMs));
    if (i === undefined) throw this.droppedThroughRevision > 0 ? errTimeCompacted() : errBeforeHistory(wallMs);
    return this.revisions[i]!;
  }

  /** MVCC compacted at `revision`: records of lower revisions are no longer answerable. */
  compact(revision: number, batch: KvBatch): void {
    assert(Number.isSafeInteger(revision) && revision >= 0, () => `compact: bad revision ${revision}`);
    while (this.size > 0 && this.revisions[this.head]! < revision) this.dropOldest(batch);
    this.writeDropped(batch); // once, however many records went
  }

  /** Every durable pair of the index, in key order: exactly what the backend holds under REVISION_INDEX_PREFIX. */
  pairs(): Pair[] {
    const out: Pair[] = [];
    for (let c = 0; c < this.chunkStarts.length; c++) {
      const start = this.chunkStarts[c]!;
      out.push([chunkKey(this.revisions[start]!), this.encodeChunk(start, this.chunkEnd(c))]);
    }
    for (let i = this.tailStart; i < this.revisions.length; i++) out.push([entryKey(this.revisions[i]!), encodeHlc(this.hlcs[i]!)]);
    if (this.droppedThroughRevision > 0) out.push([DROPPED_KEY, this.encodeDropped()]);
    return out;
  }

  /** One durable pair, in key order (open). Plain tests before assert: a restart loads up to entriesMax records. */
  private loadPair(k: Uint8Array, v: Uint8Array): void {
    if (startsWith(k, CHUNK_PREFIX)) {
      checkChunk(k, v);
      this.chunkStarts.push(this.revisions.length);
      for (let o = 0; o < v.byteLength; o += CHUNK_RECORD_BYTES) this.loadRecord(readSafeU64(v, o), decodeHlc(v, o + 8));
      // Chunks sort before the tail's pairs: the tail starts after the last chunk.
      this.tailStart = this.revisions.length;
    } else if (startsWith(k, ENTRY_PREFIX)) {
      this.loadRecord(readSafeU64(k, ENTRY_PREFIX.byteLength), decodeHlc(v));
    } else {
      assert(equalBytes(k, DROPPED_KEY), () => `unknown revision index key ${Buffer.from(k).toString('hex')}`);
      this.droppedThroughRevision = readSafeU64(v, 0);
      this.droppedThroughHlc = decodeHlc(v, 8);
    }
  }

  private loadRecord(revision: number, hlc: Hlc): void {
    const n = this.revisions.length;
    if (n > 0 && !(revision > this.revisions[n - 1]! && hlc >= this.hlcs[n - 1]!)) assert(false, 'revision index records out of order');
    this.revisions.push(revision);
    this.hlcs.push(hlc);
  }

  /**
   * After a load: the dropped-through pair sorts last, so the first chunk's dropped records were loaded too; start
   * after them. Every chunk keeps a live record and the tail none that was dropped (both go when dropped).
   */
  private skipDropped(): void {
    while (this.head < this.revisions.length && this.revisions[this.head]! <= this.droppedThroughRevision) this.head++;
    if (this.chunkStarts.length > 0) assert(this.head < this.chunkEnd(0), 'revision index holds a chunk whose every record was dropped');
    else assert(this.head <= this.tailStart, 'revision index holds a record that was dropped');
    assert(this.size <= this.config.entriesMax, 'revision index holds more records than its bound');
  }

  /** Fold the tail's oldest chunkRecords records into one chunk pair and delete their own pairs. */
  private foldOldestTail(batch: KvBatch): void {
    const start = this.tailStart;
    const end = start + this.config.chunkRecords;
    assert(end <= this.revisions.length && start >= this.head, 'fold beyond the tail');
    for (let i = start; i < end; i++) batch.del(entryKey(this.revisions[i]!));
    batch.put(chunkKey(this.revisions[start]!), this.encodeChunk(start, end));
    this.chunkStarts.push(start);
    this.tailStart = end;
  }

  /** Where chunk `c` ends: where the next starts, or the tail. */
  private chunkEnd(c: number): number {
    return c + 1 < this.chunkStarts.length ? this.chunkStarts[c + 1]! : this.tailStart;
  }

  private encodeChunk(start: number, end: number): Uint8Array {
    const out = new Uint8Array((end - start) * CHUNK_RECORD_BYTES);
    for (let i = start, o = 0; i < end; i++, o += CHUNK_RECORD_BYTES) {
      writeU64(out, o, this.revisions[i]!);
      writeHlc(out, o + 8, this.hlcs[i]!);
    }
    return out;
  }

  private dropOldest(batch: KvBatch): void {
    assert(this.size > 0, 'dropOldest on an empty index');
    const revision = this.revisions[this.head]!;
    this.head++;
    if (this.chunkStarts.length === 0) {
      batch.del(entryKey(revision));
      this.tailStart = this.head;
    } else if (this.head === this.chunkEnd(0)) {
      // The chunk's last record left: the chunk goes (the oldest chunk always holds the oldest record).
      batch.del(chunkKey(this.revisions[this.chunkStarts[0]!]!));
      this.chunkStarts.shift();
    }
    // Records leave in order, so the one leaving is the highest dropped so far.
    this.droppedThroughRevision = revision;
    this.droppedThroughHlc = this.hlcs[this.head - 1]!;
    this.droppedUnwritten = true;
    this.trim();
  }

  /** Let go of dropped records once they are half the arrays, keeping those of a chunk that is still stored. */
  private trim(): void {
    const keepFrom = this.chunkStarts.length > 0 ? this.chunkStarts[0]! : this.head;
    if (!(keepFrom > 1024 && keepFrom * 2 > this.revisions.length)) return;
    this.revisions = this.revisions.slice(keepFrom);
    this.hlcs = this.hlcs.slice(keepFrom);
    this.head -= keepFrom;
    this.tailStart -= keepFrom;
    this.chunkStarts = this.chunkStarts.map((s) => s - keepFrom);
  }

  private encodeDropped(): Uint8Array {
    const out = new Uint8Array(8 + HLC_BYTES);
    writeU64(out, 0, this.droppedThroughRevision);
    writeHlc(out, 8, this.droppedThroughHlc);
    return out;
  }

  /** Binary search: the position of the last record with hlc <= target, or undefined. */
  private lastAtOrBefore(target: Hlc): number | undefined {
    let lo = this.head;
    let hi = this.hlcs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.hlcs[mid]! <= target) lo = mid + 1;
      else hi = mid;
    }
    return lo === this.head ? undefined : lo - 1;
  }
}

/**
 * What a snapshot image carries for each stored pair of the index: one pair per live record (`kt/e/`), the
 * layout builds before chunks wrote and read, so that any of them can install an image from this one. Returns a
 * function for the image's loop: the pairs that replace a chunk pair (its records above the dropped-through
 * revision), or undefined for every other pair, which goes into the image as it is. The dropped-through pair is
 * read now: nothing may be applied until the image is read (stateMachineImage's rule).
 */
export async function revisionIndexImagePairs(backend: Backend): Promise<(key: Uint8Array, value: Uint8Array) => Pair[] | undefined> {
  const dropped = await backend.get(DROPPED_KEY);
  const droppedThrough = dropped === undefined ? 0 : readSafeU64(dropped, 0);
  return (key, value) => {
    if (!startsWith(key, CHUNK_PREFIX)) return undefined;
    checkChunk(key, value);
    const out: Pair[] = [];
    for (let o = 0; o < value.byteLength; o += CHUNK_RECORD_BYTES) {
      const revision = readSafeU64(value, o);
      if (revision > droppedThrough) out.push([entryKey(revision), value.slice(o + 8, o + CHUNK_RECORD_BYTES)]);
    }
    return out;
  };
}

/**
 * A chunk pair as foldOldestTail writes it: whole records, at least one, under its first record's revision. Both
 * readers of chunks (open, and the image) check it, so a damaged chunk is refused rather than read in part.
 */
function checkChunk(key: Uint8Array, value: Uint8Array): void {
  const records = value.byteLength / CHUNK_RECORD_BYTES;
  if (!(Number.isInteger(records) && records > 0)) assert(false, `revision index chunk of ${value.byteLength} bytes`);
  if (readSafeU64(key, CHUNK_PREFIX.byteLength) !== readSafeU64(value, 0)) assert(false, 'revision index chunk key is not its first revision');
}

function chunkKey(firstRevision: number): Uint8Array {
  const key = batchBytes(CHUNK_PREFIX.byteLength + 8);
  key.set(CHUNK_PREFIX);
  writeU64(key, CHUNK_PREFIX.byteLength, firstRevision);
  return key;
}

function entryKey(revision: number): Uint8Array {
  const key = batchBytes(ENTRY_PREFIX.byteLength + 8);
  key.set(ENTRY_PREFIX);
  writeU64(key, ENTRY_PREFIX.byteLength, revision);
  return key;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && startsWith(a, b);
}
