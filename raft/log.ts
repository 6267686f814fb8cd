// The Raft log as the core sees it: a durable prefix in Storage plus an unstable tail (entries and perhaps a
// snapshot) that the node has been handed in a Ready but not yet reported persisted.
//
//   storage:   [snap] 5 6 7 8 9            unstable.offset = 10
//   unstable:                  10 11 12    (or a snapshot that replaces everything)
//
// committed <= lastIndex always; applied <= committed always.
import { assert, errCompacted, errUnavailable, RaftError } from './errors.js';
import type { Storage } from './storage.js';
import { entrySize, type Entry, type Snapshot } from './types.js';

export class Unstable {
  snapshot: Snapshot | undefined = undefined;
  entries: Entry[] = [];
  /** Index of entries[0]. */
  offset: number;

  constructor(offset: number) {
    this.offset = offset;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot === undefined ? undefined : this.snapshot.metadata.index + 1;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot?.metadata.index;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot !== undefined && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset]!.term;
  }

  /** Entries up to (i, t) are now durable. The term check ignores a report about entries since replaced. */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined || gt !== t || i < this.offset) return;
    this.entries = this.entries.slice(i + 1 - this.offset);
    this.offset = i + 1;
  }

  stableSnapTo(i: number): void {
    if (this.snapshot !== undefined && this.snapshot.metadata.index === i) this.snapshot = undefined;
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: readonly Entry[]): void {
    const after = ents[0]!.index;
    if (after === this.offset + this.entries.length) {
      for (const e of ents) this.entries.push(e);
    } else if (after <= this.offset) {
      // The new entries replace everything unstable (and part of storage, which the node overwrites on persist).
      this.offset = after;
      this.entries = ents.slice();
    } else {
      this.entries = this.entries.slice(0, after - this.offset).concat(ents);
    }
  }

  slice(lo: number, hi: number): Entry[] {
    assert(lo >= this.offset && hi <= this.offset + this.entries.length, () => `unstable.slice[${lo},${hi}) out of bound`);
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

export class RaftLog {
  readonly unstable: Unstable;
  /** Highest index known to be stored on a quorum. */
  committed: number;
  /** Highest index handed to the application and reported applied. */
  applied: number;

  constructor(
    readonly storage: Storage,
    readonly maxCommittedSizePerReadyBytes: number,
  ) {
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** The last index that is durable and still part of this log (0 while an unstable snapshot is pending). */
  stableLastIndex(): number {
    if (this.unstable.snapshot !== undefined) return 0;
    return Math.min(this.storage.lastIndex(), this.unstable.offset - 1);
  }

  /** Term of entry i. Throws COMPACTED below the first index - 1, UNAVAILABLE above the last. */
  term(i: number): number {
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    const dummy = this.firstIndex() - 1;
    if (i < dummy) throw errCompacted(i);
    if (i > this.lastIndex()) throw errUnavailable(i);
    return this.storage.term(i);
  }

  /** Term of entry i, or 0 when it is compacted or not there. */
  termOrZero(i: number): number {
    // Out of range is common here (probes, rejections): answer without throwing.
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return 0;
    try {
      return this.term(i);
    } catch (e) {
      if (e instanceof RaftError) return 0;
      throw e;
    }
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  matchTerm(i: number, t: number): boolean {
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return false;
    return this.term(i) === t;
  }

  /** Raft's election restriction: a candidate's log must be at least as up to date as the voter's. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Append entries that follow (index, logTerm) if our log has that entry. Returns the last index now known to
   * match the leader, or undefined when the entry at `index` is missing or has another term (the leader backs off).
   */
  maybeAppend(index: number, logTerm: number, committed: number, ents: readonly Entry[]): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const conflict = this.findConflict(ents);
    if (conflict !== 0) {
      assert(conflict > this.committed, () => `entry ${conflict} conflicts with committed entry [committed(${this.committed})]`);
      this.append(ents.slice(conflict - (index + 1)));
    }
    // Only entries up to lastNew are known to match the leader; commit no further than that.
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: readonly Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0]!.index - 1;
    assert(after >= this.committed, () => `after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /**
   * The index of the first entry in `ents` whose term differs from ours (or that we lack), 0 if all match.
   *   ours:  1:1 2:1 3:2 4:2        ents: 3:2 4:3 5:3   -> conflict at 4 (term 2 vs 3): truncate from 4.
   */
  findConflict(ents: readonly Entry[]): number {
    for (const e of ents) if (!this.matchTerm(e.index, e.term)) return e.index;
    return 0;
  }

  /**
   * Fast back-off: the largest index <= `index` whose term is <= `term`, with that term. The leader skips a whole
   * term of mismatching entries per round trip instead of one entry.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    for (let i = index; i > 0; i--) {
      let ours: number;
      try {
        ours = this.term(i);
      } catch (e) {
        if (e instanceof RaftError) return { index: i, term: 0 };
        throw e;
      }
      if (ours <= term) return { index: i, term: ours };
    }
    return { index: 0, term: 0 };
  }

  commitTo(toCommit: number): void {
    if (toCommit <= this.committed) return; // never decrease
    assert(toCommit <= this.lastIndex(), () => `tocommit(${toCommit}) is out of range [lastIndex(${this.lastIndex()})]`);
    this.committed = toCommit;
  }

  /** Commit up to maxIndex only if that entry is from `term`: Raft never commits an older term's entry by counting. */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.termOrZero(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    assert(i <= this.committed && i >= this.applied, () => `applied(${i}) out of range [prev(${this.applied}), committed(${this.committed})]`);
    this.applied = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  hasNextCommittedEnts(): boolean {
    return this.committed > this.applied && !this.hasPendingSnapshot();
  }

  /** Committed entries not yet applied, at most maxCommittedSizePerReadyBytes of them. */
  nextCommittedEnts(): Entry[] {
    if (!this.hasNextCommittedEnts()) return [];
    const lo = Math.max(this.applied + 1, this.firstIndex());
    return this.slice(lo, this.committed + 1, this.maxCommittedSizePerReadyBytes);
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries from i to the end, at most maxBytes (at least one). */
  entries(i: number, maxBytes: number): Entry[] {
    const last = this.lastIndex();
    if (i > last) return [];
    return this.slice(i, last + 1, maxBytes);
  }

  /** Entries [lo, hi) from storage and the unstable tail, at most maxBytes (at least one). */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (lo === hi) return [];
    const first = this.firstIndex();
    if (lo < first) throw errCompacted(lo);
    assert(hi <= this.lastIndex() + 1 && lo <= hi, () => `slice[${lo},${hi}) out of bound [${first},${this.lastIndex()}]`);
    let out: Entry[] = [];
    const uOffset = this.unstable.offset;
    if (lo < uOffset) {
      out = this.storage.entries(lo, Math.min(hi, uOffset), maxBytes);
      // Storage stopped early (size limit): do not go on into the unstable part.
      if (out.length < Math.min(hi, uOffset) - lo) return out;
    }
    if (hi > uOffset) {
      const tail = this.unstable.slice(Math.max(lo, uOffset), hi);
      let size = 0;
      for (const e of out) size += entrySize(e);
      for (const e of tail) {
        size += entrySize(e);
        if (out.length > 0 && size > maxBytes) break;
        out.push(e);
      }
    }
    return out;
  }
}
