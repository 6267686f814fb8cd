// The state machine's durable key space. Every module (mvcc, leases, dedup, hlc) keeps its own key prefix and
// writes its changes into one shared backend batch (one or more applied Raft batches, see STATE_WRITE_DELAY_MS),
// so the applied index, the keys, the leases and the dedup table on disk always describe the same point in the log.
import { ClassicLevel } from 'classic-level';

export interface KvBatch {
  put(key: Uint8Array, value: Uint8Array): void;
  del(key: Uint8Array): void;
}

export interface BackendBatch extends KvBatch {
  /** Operations queued so far. */
  readonly length: number;
  /** Write the batch atomically. `sync` is explicit at every call site: durability is a decision, not a default. */
  write(options: { sync: boolean }): Promise<void>;
}

export interface KeyRange {
  /** Inclusive lower bound. */
  readonly gte: Uint8Array;
  /** Exclusive upper bound; undefined: to the end of the key space. */
  readonly lt: Uint8Array | undefined;
}

export interface Backend {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  /** Several gets in one round trip to the store; one value (or undefined) per key, in the same order. */
  getMany(keys: readonly Uint8Array[]): Promise<Array<Uint8Array | undefined>>;
  /** Pairs in key order within the range. */
  iterate(range: KeyRange, options?: { reverse?: boolean; limit?: number }): AsyncIterable<[Uint8Array, Uint8Array]>;
  /**
   * Every pair in the range, in key order, handed to `visit` synchronously: iterate() without a promise per pair,
   * for whole-range scans such as a restart's index rebuild. A throwing `visit` ends the scan with its error.
   */
  scan(range: KeyRange, visit: (key: Uint8Array, value: Uint8Array) => void): Promise<void>;
  batch(): BackendBatch;
  /** Approximate bytes on disk. */
  sizeBytes(): Promise<number>;
  /** Rewrite the files to drop deleted and overwritten pairs (etcd's Defragment). Reads and writes go on meanwhile. */
  compact(): Promise<void>;
  close(): Promise<void>;
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** The smallest key greater than every key with this prefix, or undefined when there is none (all 0xff). */
export function prefixEnd(prefix: Uint8Array): Uint8Array | undefined {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return undefined;
}

/** Entries an iteration reads from LevelDB per thread-pool round trip, and the bytes it holds for them at most. */
const ITERATE_BATCH_ENTRIES = 1_000;
const ITERATE_BATCH_BYTES = 1024 * 1024;

/** LevelDB through classic-level, with binary keys and values. */
export class LevelBackend implements Backend {
  private constructor(private readonly db: ClassicLevel<Uint8Array, Uint8Array>) {}

  static async open(path: string): Promise<LevelBackend> {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(path, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    return new LevelBackend(db);
  }

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    const v = await this.db.get(key);
    return v ?? undefined;
  }

  async getMany(keys: readonly Uint8Array[]): Promise<Array<Uint8Array | undefined>> {
    if (keys.length === 0) return [];
    const values = await this.db.getMany(keys as Uint8Array[]);
    return values.map((v) => v ?? undefined);
  }

  async *iterate(range: KeyRange, options: { reverse?: boolean; limit?: number } = {}): AsyncIterable<[Uint8Array, Uint8Array]> {
    for await (const batch of this.batches(range, options)) yield* batch;
  }

  async scan(range: KeyRange, visit: (key: Uint8Array, value: Uint8Array) => void): Promise<void> {
    for await (const batch of this.batches(range, {})) for (const [k, v] of batch) visit(k, v);
  }

  /**
   * The range a batch at a time: one thread-pool round trip per batch rather than per ~16 KiB (classic-level's
   * default), which left a restart mostly waiting while it read the whole revision space. The next batch is read
   * while the caller works through this one, so a long scan (a restart's index rebuild) overlaps LevelDB's reads
   * with its own decoding instead of taking turns.
   */
  private async *batches(range: KeyRange, options: { reverse?: boolean; limit?: number }): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> {
    const it = this.db.iterator({
      gte: range.gte,
      ...(range.lt === undefined ? {} : { lt: range.lt }),
      reverse: options.reverse ?? false,
      limit: options.limit ?? -1,
      highWaterMarkBytes: ITERATE_BATCH_BYTES,
    });
    let next: Promise<Array<[Uint8Array, Uint8Array]>> | undefined = it.nextv(ITERATE_BATCH_ENTRIES);
    try {
      for (;;) {
        const batch: Array<[Uint8Array, Uint8Array]> = await next;
        next = undefined;
        if (batch.length === 0) return;
        next = it.nextv(ITERATE_BATCH_ENTRIES);
        yield batch;
      }
    } finally {
      // A caller that stops early leaves a read in flight: let it finish before the iterator closes.
      await next?.catch(() => undefined);
      await it.close();
    }
  }

  batch(): BackendBatch {
    const b = this.db.batch();
    return {
      get length() {
        return b.length;
      },
      put: (k, v) => void b.put(k, v),
      del: (k) => void b.del(k),
      write: (options) => b.write({ sync: options.sync }),
    };
  }

  async sizeBytes(): Promise<number> {
    return this.db.approximateSize(new Uint8Array([0]), new Uint8Array([0xff, 0xff, 0xff, 0xff]));
  }

  /** LevelDB's manual compaction over every key: tombstones and shadowed versions are dropped from the files. */
  compact(): Promise<void> {
    return this.db.compactRange(new Uint8Array([0]), new Uint8Array(8).fill(0xff));
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

/** An in-memory Backend for tests and the simulator: same ordering and atomicity, no disk. */
export class MemoryBackend implements Backend {
  private readonly data = new Map<string, [Uint8Array, Uint8Array]>();
  private sortedKeys: string[] | undefined;

  private static hex(k: Uint8Array): string {
    return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('hex');
  }

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.data.get(MemoryBackend.hex(key))?.[1];
  }

  async getMany(keys: readonly Uint8Array[]): Promise<Array<Uint8Array | undefined>> {
    return keys.map((k) => this.data.get(MemoryBackend.hex(k))?.[1]);
  }

  async *iterate(range: KeyRange, options: { reverse?: boolean; limit?: number } = {}): AsyncIterable<[Uint8Array, Uint8Array]> {
    // Hex strings of bytes sort in the same order as the bytes themselves.
    this.sortedKeys ??= [...this.data.keys()].sort();
    const lo = MemoryBackend.hex(range.gte);
    const hi = range.lt === undefined ? undefined : MemoryBackend.hex(range.lt);
    const keys = this.sortedKeys.filter((k) => k >= lo && (hi === undefined || k < hi));
    if (options.reverse === true) keys.reverse();
    const limit = options.limit === undefined || options.limit < 0 ? Infinity : options.limit;
    let n = 0;
    for (const k of keys) {
      if (n++ >= limit) return;
      const pair = this.data.get(k);
      if (pair !== undefined) yield pair;
    }
  }

  async scan(range: KeyRange, visit: (key: Uint8Array, value: Uint8Array) => void): Promise<void> {
    for await (const [k, v] of this.iterate(range)) visit(k, v);
  }

  batch(): BackendBatch {
    const ops: Array<[Uint8Array, Uint8Array | undefined]> = [];
    return {
      get length() {
        return ops.length;
      },
      put: (k, v) => void ops.push([Uint8Array.from(k), Uint8Array.from(v)]),
      del: (k) => void ops.push([Uint8Array.from(k), undefined]),
      write: async () => {
        for (const [k, v] of ops) {
          if (v === undefined) this.data.delete(MemoryBackend.hex(k));
          else this.data.set(MemoryBackend.hex(k), [k, v]);
        }
        this.sortedKeys = undefined;
      },
    };
  }

  async sizeBytes(): Promise<number> {
    let n = 0;
    for (const [k, v] of this.data.values()) n += k.byteLength + v.byteLength;
    return n;
  }

  /** Nothing to rewrite: a map holds no dead pairs. */
  async compact(): Promise<void> {}

  async close(): Promise<void> {}
}
