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
// Durable form: one pair per record, key = prefix | u64(revision), value = u64(hlc). Revisions are unique and
// ordered, so the key order is the record order. One meta pair holds the highest revision dropped so far and its
// hlc (u64 revision | u64 hlc).
// The index is bounded (REVISION_INDEX_ENTRIES_MAX): recording beyond it drops the oldest record, and MVCC
// compaction drops records below the compacted revision. Times before the first retained record then answer
// COMPACTED rather than a wrong revision.
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
const ENTRY_PREFIX = utf8('kt/e/');
const DROPPED_KEY = utf8('kt/m/dropped');
/** Where stores written before the move kept the index (same pairs, same layout after the prefix). */
export const LEGACY_REVISION_INDEX_PREFIX = utf8('hlc/r/');

/** Default bound: at one record per write, about a day of history at 1 write/s, a few MB in memory. */
export const REVISION_INDEX_ENTRIES_MAX = 100_000;

export interface RevisionTimeIndexConfig {
  readonly entriesMax: number;
}

export class RevisionTimeIndex {
  /** Records live in [head, revisions.length); dropping from the front advances head, arrays are trimmed lazily. */
  private revisions: number[] = [];
  private hlcs: Hlc[] = [];
  private head = 0;
  /** Highest revision whose record was dropped (by the bound or by compaction); 0 when nothing was dropped. */
  private droppedThroughRevision = 0;
  /** The hlc of that record: later records never sort before it, even when every record was dropped. */
  private droppedThroughHlc: Hlc = 0n;
  /** Records were dropped since the pair holding the two fields above was last put into a batch. */
  private droppedUnwritten = false;

  private constructor(private readonly config: RevisionTimeIndexConfig) {
    assert(Number.isSafeInteger(config.entriesMax) && config.entriesMax >= 1, 'entriesMax must be a positive integer');
  }

  static empty(config: Partial<RevisionTimeIndexConfig> = {}): RevisionTimeIndex {
    return new RevisionTimeIndex({ entriesMax: config.entriesMax ?? REVISION_INDEX_ENTRIES_MAX });
  }

  static async open(backend: Backend, config: Partial<RevisionTimeIndexConfig> = {}): Promise<RevisionTimeIndex> {
    const index = RevisionTimeIndex.empty(config);
    await movePrefix(backend, LEGACY_REVISION_INDEX_PREFIX, REVISION_INDEX_PREFIX);
    await scanPrefix(backend, REVISION_INDEX_PREFIX, (k, v) => index.loadPair(k, v));
    index.checkBound();
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
    for (let i = this.head; i < this.revisions.length; i++) out.push([entryKey(this.revisions[i]!), encodeHlc(this.hlcs[i]!)]);
    if (this.droppedThroughRevision > 0) out.push([DROPPED_KEY, this.encodeDropped()]);
    return out;
  }

  /** One durable pair, in key order (open). Plain tests before assert: a restart loads up to entriesMax records. */
  private loadPair(k: Uint8Array, v: Uint8Array): void {
    if (startsWith(k, ENTRY_PREFIX)) {
      const revision = readSafeU64(k, ENTRY_PREFIX.byteLength);
      const hlc = decodeHlc(v);
      const n = this.revisions.length;
      if (n > 0 && !(revision > this.revisions[n - 1]! && hlc >= this.hlcs[n - 1]!)) assert(false, 'revision index records out of order');
      this.revisions.push(revision);
      this.hlcs.push(hlc);
    } else {
      assert(equalBytes(k, DROPPED_KEY), () => `unknown revision index key ${Buffer.from(k).toString('hex')}`);
      this.droppedThroughRevision = readSafeU64(v, 0);
      this.droppedThroughHlc = decodeHlc(v, 8);
    }
  }

  private checkBound(): void {
    assert(this.size <= this.config.entriesMax, 'revision index holds more records than its bound');
  }

  private dropOldest(batch: KvBatch): void {
    assert(this.size > 0, 'dropOldest on an empty index');
    const revision = this.revisions[this.head]!;
    batch.del(entryKey(revision));
    this.head++;
    // Records leave in order, so the one leaving is the highest dropped so far.
    this.droppedThroughRevision = revision;
    this.droppedThroughHlc = this.hlcs[this.head - 1]!;
    this.droppedUnwritten = true;
    if (this.head > 1024 && this.head * 2 > this.revisions.length) {
      this.revisions = this.revisions.slice(this.head);
      this.hlcs = this.hlcs.slice(this.head);
      this.head = 0;
    }
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

function entryKey(revision: number): Uint8Array {
  const key = batchBytes(ENTRY_PREFIX.byteLength + 8);
  key.set(ENTRY_PREFIX);
  writeU64(key, ENTRY_PREFIX.byteLength, revision);
  return key;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && startsWith(a, b);
}
