// Recently read rows of the revision space, in memory, least recently used first out. A row never changes once
// written (its key is its revision), so a cached row is never stale: compaction only makes a revision unreadable,
// and the store checks that before it asks for a row. The cache saves a LevelDB read (a thread-pool round trip)
// for every read of a hot key: coordination data is small and read far more often than written.
//
// Why a linked list beside the Map rather than the Map's own insertion order: evicting "the first entry of the
// Map" walks V8's hash table from its start, over every entry deleted since the table was last rebuilt. An LRU
// that deletes and re-inserts on every use piles those up at the front, so once the cache was full each eviction
// walked tens of thousands of dead slots: at 16 MB of 300-byte rows, most of a member's apply time went there.
// The list makes get, set and evict constant time whatever the table holds.

/** A row's name: the store uses its revision (see rowId in store.ts). */
export type RowId = number | string;

/** What one entry costs beyond its bytes (map slot, id, list node), for the byte budget. */
const ENTRY_OVERHEAD_BYTES = 96;

/** A row's place in the recency list: `older` towards the next eviction, `newer` towards the last use. */
interface Entry {
  readonly id: RowId;
  row: Uint8Array;
  older: Entry | undefined;
  newer: Entry | undefined;
}

export class RowCache {
  private readonly rows = new Map<RowId, Entry>();
  /** The least recently used entry (evicted first) and the most recently used one. */
  private oldest: Entry | undefined;
  private newest: Entry | undefined;
  private bytes = 0;

  /** `bytesMax` 0 turns the cache off. */
  constructor(readonly bytesMax: number) {
    if (!Number.isSafeInteger(bytesMax) || bytesMax < 0) throw new RangeError(`row cache: bytesMax must be a non-negative integer, got ${bytesMax}`);
  }

  get size(): number {
    return this.rows.size;
  }

  get byteLength(): number {
    return this.bytes;
  }

  get(id: RowId): Uint8Array | undefined {
    const e = this.rows.get(id);
    if (e === undefined) return undefined;
    this.unlink(e);
    this.linkNewest(e);
    return e.row;
  }

  set(id: RowId, row: Uint8Array): void {
    const old = this.rows.get(id);
    if (old !== undefined) this.remove(old);
    const cost = row.byteLength + ENTRY_OVERHEAD_BYTES;
    if (cost > this.bytesMax / 8) return; // one large value must not flush everything else
    const e: Entry = { id, row, older: undefined, newer: undefined };
    this.rows.set(id, e);
    this.linkNewest(e);
    this.bytes += cost;
    while (this.bytes > this.bytesMax && this.oldest !== undefined) this.remove(this.oldest);
  }

  clear(): void {
    this.rows.clear();
    this.oldest = undefined;
    this.newest = undefined;
    this.bytes = 0;
  }

  /** Forget this row (the store calls it for a revision that stopped being its key's current one). */
  delete(id: RowId): void {
    const e = this.rows.get(id);
    if (e !== undefined) this.remove(e);
  }

  private remove(e: Entry): void {
    this.rows.delete(e.id);
    this.unlink(e);
    this.bytes -= e.row.byteLength + ENTRY_OVERHEAD_BYTES;
  }

  private unlink(e: Entry): void {
    if (e.older === undefined) this.oldest = e.newer;
    else e.older.newer = e.newer;
    if (e.newer === undefined) this.newest = e.older;
    else e.newer.older = e.older;
    e.older = undefined;
    e.newer = undefined;
  }

  private linkNewest(e: Entry): void {
    e.older = this.newest;
    if (this.newest === undefined) this.oldest = e;
    else this.newest.newer = e;
    this.newest = e;
  }
}
