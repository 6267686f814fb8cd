// Recently read rows of the revision space, in memory, least recently used first out. A row never changes once
// written (its key is its revision), so a cached row is never stale: compaction only makes a revision unreadable,
// and the store checks that before it asks for a row. The cache saves a LevelDB read (a thread-pool round trip)
// for every read of a hot key: coordination data is small and read far more often than written.

/** What one entry costs beyond its bytes (map slot, string key, object headers), for the byte budget. */
const ENTRY_OVERHEAD_BYTES = 96;

export class RowCache {
  private readonly rows = new Map<string, Uint8Array>();
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

  get(id: string): Uint8Array | undefined {
    const row = this.rows.get(id);
    if (row === undefined) return undefined;
    // Map keeps insertion order: re-inserting makes this the most recently used.
    this.rows.delete(id);
    this.rows.set(id, row);
    return row;
  }

  set(id: string, row: Uint8Array): void {
    const cost = row.byteLength + ENTRY_OVERHEAD_BYTES;
    const old = this.rows.get(id);
    if (old !== undefined) {
      this.rows.delete(id);
      this.bytes -= old.byteLength + ENTRY_OVERHEAD_BYTES;
    }
    if (cost > this.bytesMax / 8) return; // one large value must not flush everything else
    this.rows.set(id, row);
    this.bytes += cost;
    for (const [oldest, r] of this.rows) {
      if (this.bytes <= this.bytesMax) break;
      this.rows.delete(oldest);
      this.bytes -= r.byteLength + ENTRY_OVERHEAD_BYTES;
    }
  }

  clear(): void {
    this.rows.clear();
    this.bytes = 0;
  }
}
