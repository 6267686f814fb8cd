// The core's read-side view of durable state. Synchronous and served from memory: the node keeps the log tail
// in memory (storage/wal fills a MemoryStorage on start and after every persisted Ready).
import { errCompacted, errSnapOutOfDate, errUnavailable, assert } from './errors.js';
import {
  EMPTY_HARD_STATE,
  EMPTY_SNAPSHOT,
  EntryType,
  entrySize,
  type ConfState,
  type Entry,
  type HardState,
  type Snapshot,
} from './types.js';

export interface InitialState {
  readonly hardState: HardState;
  readonly confState: ConfState;
}

export interface Storage {
  initialState(): InitialState;
  /** Entries in [lo, hi), at most `maxBytes` of them but always at least one when lo < hi. Throws COMPACTED/UNAVAILABLE. */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
  /** Term of the entry at `index`; the snapshot's index answers with the snapshot's term. Throws COMPACTED/UNAVAILABLE. */
  term(index: number): number;
  /** Index of the first entry still held (snapshot index + 1). */
  firstIndex(): number;
  lastIndex(): number;
  /** The latest snapshot. May throw SNAPSHOT_TEMPORARILY_UNAVAILABLE while one is being made. */
  snapshot(): Snapshot;
}

/**
 * An in-memory Storage. `ents[0]` is a dummy entry standing for the snapshot point (its index and term),
 * so term(snapshotIndex) answers without a special case.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot = EMPTY_SNAPSHOT;
  private ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }];

  initialState(): InitialState {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  private get offset(): number {
    return this.ents[0]!.index;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    const offset = this.offset;
    if (lo <= offset) throw errCompacted(lo);
    if (hi > this.lastIndex() + 1) throw errUnavailable(hi - 1);
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - offset]!;
      size += entrySize(e);
      if (out.length > 0 && size > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  term(index: number): number {
    const offset = this.offset;
    if (index < offset) throw errCompacted(index);
    if (index - offset >= this.ents.length) throw errUnavailable(index);
    return this.ents[index - offset]!.term;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replace everything with a snapshot received from the leader. */
  applySnapshot(snap: Snapshot): void {
    if (this.snap.metadata.index >= snap.metadata.index) throw errSnapOutOfDate();
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: EntryType.Normal, data: new Uint8Array(0) }];
  }

  /** Record a snapshot of the state machine at `index` (<= applied), without dropping entries. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw errSnapOutOfDate();
    assert(index <= this.lastIndex(), () => `snapshot ${index} is out of bound lastindex(${this.lastIndex()})`);
    const term = this.ents[index - this.offset]!.term;
    this.snap = { metadata: { index, term, confState }, data };
    return this.snap;
  }

  /** Drop entries before `compactIndex`; the entry at compactIndex becomes the new dummy. */
  compact(compactIndex: number): void {
    const offset = this.offset;
    if (compactIndex <= offset) throw errCompacted(compactIndex);
    assert(compactIndex <= this.lastIndex(), () => `compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    const i = compactIndex - offset;
    const dummy = this.ents[i]!;
    this.ents = [{ term: dummy.term, index: dummy.index, type: EntryType.Normal, data: new Uint8Array(0) }, ...this.ents.slice(i + 1)];
  }

  /** Append entries, truncating any conflicting suffix. Entries must be contiguous. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return; // all already compacted
    // Skip the part that is already behind the snapshot.
    const toAppend = first > entries[0]!.index ? entries.slice(first - entries[0]!.index) : entries;
    const offset = toAppend[0]!.index - this.offset;
    assert(offset <= this.ents.length, () => `missing log entry [last: ${this.lastIndex()}, append at: ${toAppend[0]!.index}]`);
    // Truncate in place: the common case (offset === length) copies nothing.
    if (offset < this.ents.length) this.ents.length = offset;
    for (const e of toAppend) this.ents.push(e);
  }
}
