// The MVCC key-value store: etcd's data model over a Backend.
//
// In memory: the key index (every key's revisions, no values) and the lease attachments. On the Backend: one row
// per revision holding the encoded key-value (see codec.ts). Writes never commit anything themselves; they put
// their rows into the KvBatch the state machine hands them, which it commits together with the other modules'
// changes and the applied index. Until the caller reports a batch durable (committed()), the store keeps that
// batch's rows in memory, so reads in later transactions of the same apply batch see them.
//
// Concurrency: write operations (put, deleteRange, txn, compact) must be applied one at a time (the apply loop
// does); reads (range, hashKV, events) may run at any time. A read resolves its revisions from the index
// synchronously when it starts and only then awaits values, so a concurrent write cannot change its answer.
import type { Backend, KvBatch } from '../backend.js';
import { compareBytes, prefixEnd } from '../backend.js';
import { assert } from '../../raft/errors.js';
import { validateMvccConfig, type MvccConfig } from './config.js';
import {
  META_COMPACT_FINISHED,
  META_COMPACT_SCHEDULED,
  REVISION_PREFIX,
  bytesToKeyString,
  crc32c,
  decodeRecord,
  decodeRecordHead,
  verifyRecord,
  viewRecord,
  decodeRevisionKey,
  decodeU64,
  encodeRecord,
  encodeU64,
  keyStringToBytes,
  recordKeyView,
  recordValueView,
  revisionKey,
  type Revision,
} from './codec.js';
import { mvccError } from './errors.js';
import type { KeyAtRevision, KeyIndex } from './key-index.js';
import { RowCache, type RowId } from './row-cache.js';
import { TreeIndex } from './tree-index.js';
import {
  NO_HLC,
  NO_LEASE,
  type Compare,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type HashKVResult,
  type KeyRangeRequest,
  type KeyValue,
  type MvccEvent,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseOp,
  type SortOrder,
  type TxnRequest,
  type TxnResponse,
  type WriteResult,
} from './types.js';
import {
  checkDeleteRangeRequest,
  checkPutRequest,
  checkRangeRequest,
  checkTxnIntervals,
  checkTxnRequest,
  txnHasWrites,
} from './validate.js';

/** etcd's compactMainRev before any compaction. */
export const NO_COMPACTION = -1;
/** etcd starts its revision at 1: the first write is revision 2, and an empty store answers with header revision 1. */
export const INITIAL_REVISION = 1;

export interface MvccStoreOptions {
  readonly config?: Partial<MvccConfig>;
  /** The lease module's lookup: a put naming an unknown lease fails with LEASE_NOT_FOUND. Absent: not checked. */
  readonly leaseExists?: (id: bigint) => boolean;
}

/** A key range resolved to index strings: single key, [from, to), or from to the end (to undefined). */
interface KeyBounds {
  readonly from: string;
  readonly to: string | undefined;
  readonly single: boolean;
}

interface KeyMatch {
  readonly ki: KeyIndex;
  readonly at: KeyAtRevision;
}

/** One write transaction in progress: its revision, its HLC, the batch it writes into, and its changes so far. */
interface WriteContext {
  readonly batch: KvBatch;
  readonly main: number;
  /** The HLC every row of this write records as its modHlc (and as createHlc for keys it creates). */
  readonly hlc: bigint;
  readonly events: MvccEvent[];
  /** What the reads of this txn may still return (a client's read-only txn); unbounded when applying the log. */
  readonly budget?: ReadBudget;
  /** Keys with an event in this write and the prev_kv of their first one (see eventPrev); made at the second event. */
  eventPrevs?: Map<string, KeyValue | undefined>;
}

/**
 * A bound on the bytes one client read builds (node/api's --max-response-bytes): the read stops with
 * RESPONSE_TOO_LARGE as soon as it holds more, instead of building a response that could never be sent. Only
 * reads served to a client pass one; the apply path never does, so applying the log stays deterministic
 * whatever a member's flags.
 */
export interface ReadOptions {
  readonly responseBytesMax?: number;
}

interface ReadBudget {
  bytesLeft: number;
}

/** Bytes a key-value costs in a response, at most: its key and value plus the fixed fields and framing. */
const KV_OVERHEAD_BYTES = 96;

function budgetOf(opts: ReadOptions): ReadBudget | undefined {
  return opts.responseBytesMax === undefined ? undefined : { bytesLeft: opts.responseBytesMax };
}

function charge(budget: ReadBudget | undefined, kv: KeyValue): void {
  if (budget === undefined) return;
  budget.bytesLeft -= kv.key.byteLength + kv.value.byteLength + KV_OVERHEAD_BYTES;
  if (budget.bytesLeft < 0) throw mvccError('RESPONSE_TOO_LARGE');
}

interface PhysicalCompaction {
  readonly target: number;
  /** The next revision key to examine. */
  cursor: Uint8Array;
}

export interface CompactionStepResult {
  /** No physical deletion is left to do. */
  readonly done: boolean;
  readonly deletedRevisions: number;
}

const EMPTY = new Uint8Array(0);
/** Rows read ahead for one applied batch (prefetchCurrent); further ones are read when needed. */
export const PREFETCH_ROWS_MAX = 1_024;
const REVISION_RANGE_END = prefixEnd(REVISION_PREFIX);

export class MvccStore {
  private readonly index = new TreeIndex();
  private readonly leaseKeys = new Map<bigint, Set<string>>();
  private currentRev = INITIAL_REVISION;
  private compactRev = NO_COMPACTION;
  /** Rows with main revision <= this are on the backend; later ones are in `uncommitted`. */
  private committedRev = INITIAL_REVISION;
  private uncommitted = new Map<number, Uint8Array[]>();
  /** Uncommitted rows a later write has made history: committed() leaves them out of the row cache (see retire). */
  private readonly retired = new Set<RowId>();
  /**
   * Committed rows read ahead for the batch being applied, by rowId (see prefetchCurrent).
   *
   * This map and `uncommitted` fill up with a batch's rows and empty again on every batch, so each is replaced
   * by a new one once empty instead of being cleared: V8 allocates the table of an old map straight in the old
   * generation when it grows or shrinks, and a map that lives as long as the store is old. They were a tenth of
   * what a follower promoted at 100 puts in flight.
   */
  private prefetched = new Map<RowId, Uint8Array>();
  /** Rows recently read from the backend (rows never change, so nothing here is ever stale). */
  readonly rowCache: RowCache;
  private physicalCompaction: PhysicalCompaction | undefined;
  private writing = false;

  private constructor(
    private readonly backend: Backend,
    readonly config: MvccConfig,
    private readonly leaseExists: ((id: bigint) => boolean) | undefined,
  ) {
    this.rowCache = new RowCache(config.rowCacheBytes);
  }

  /** Load the store from its rows on the backend (rebuilding the index) and resume an unfinished compaction. */
  static async open(backend: Backend, options: MvccStoreOptions = {}): Promise<MvccStore> {
    const store = new MvccStore(backend, validateMvccConfig(options.config), options.leaseExists);
    await store.restore();
    return store;
  }

  /** The revision of the last write transaction (etcd's header revision). */
  get revision(): number {
    return this.currentRev;
  }

  /** Reads below this revision fail with COMPACTED (-1: never compacted). */
  get compactRevision(): number {
    return this.compactRev;
  }

  /** Keys in the index, live or with history only. */
  get indexedKeys(): number {
    return this.index.size;
  }

  /** Whether a compaction's physical deletion is still to run (see compactionStep). */
  get compactionPending(): boolean {
    return this.physicalCompaction !== undefined;
  }

  /**
   * The caller has made durable the batches holding every write up to `revision`: the store may read those rows
   * from the backend and drop its in-memory copies.
   */
  committed(revision: number): void {
    assert(revision <= this.currentRev, () => `committed(${revision}) beyond the current revision ${this.currentRev}`);
    if (revision <= this.committedRev) return;
    this.committedRev = revision;
    const had = this.uncommitted.size;
    for (const [main, rows] of this.uncommitted) {
      if (main > revision) continue;
      this.uncommitted.delete(main);
      // Written rows go on into the row cache: the next write of the same key reads this row (its event's prev_kv)
      // and a read of a hot key wants it too. Without this every overwrite read its previous row back from LevelDB.
      for (let sub = 0; sub < rows.length; sub++) {
        const id = rowId(main, sub);
        if (!this.retired.delete(id)) this.rowCache.set(id, rows[sub]!);
      }
    }
    if (had > 0 && this.uncommitted.size === 0) this.uncommitted = new Map(); // emptied here: see `prefetched`
  }

  /**
   * Read the current row of each of these keys in one backend round trip: the rows a batch of writes is about to
   * read (the previous version of a key it overwrites or deletes goes into its event's prev_kv). Without this,
   * each write of the batch waited for its own read, one after another. Held until dropPrefetched().
   */
  async prefetchCurrent(keys: Iterable<Uint8Array>): Promise<void> {
    const wanted: Revision[] = [];
    for (const key of keys) {
      if (wanted.length >= PREFETCH_ROWS_MAX) break;
      const at = this.index.get(bytesToKeyString(key))?.current();
      if (at === undefined || at.main > this.committedRev) continue;
      const id = rowId(at.main, at.sub);
      if (this.prefetched.has(id)) continue;
      const cached = this.rowCache.get(id);
      this.prefetched.set(id, cached ?? EMPTY); // EMPTY: claimed, a key named twice is read once
      if (cached !== undefined) continue;
      wanted.push(at);
    }
    const rows = await this.backend.getMany(wanted.map((at) => revisionKey(at.main, at.sub)));
    rows.forEach((row, i) => {
      const id = rowId(wanted[i]!.main, wanted[i]!.sub);
      if (row === undefined) return void this.prefetched.delete(id);
      verifyRecord(row); // once, coming into memory: rows in memory are decoded with viewRecord
      this.prefetched.set(id, row);
    });
  }

  dropPrefetched(): void {
    if (this.prefetched.size > 0) this.prefetched = new Map();
  }

  // ---- leases

  /** The keys whose current version is attached to the lease, in key order. */
  keysWithLease(id: bigint): Uint8Array[] {
    const keys = [...(this.leaseKeys.get(id) ?? [])].sort();
    return keys.map(keyStringToBytes);
  }

  /** The lease attached to the key's current version (NO_LEASE when none or the key does not exist). */
  leaseOf(key: Uint8Array): bigint {
    return this.index.get(bytesToKeyString(key))?.lease ?? NO_LEASE;
  }

  private attachLease(ki: KeyIndex, lease: bigint): void {
    if (ki.lease !== NO_LEASE) {
      const keys = this.leaseKeys.get(ki.lease);
      keys?.delete(ki.key);
      if (keys?.size === 0) this.leaseKeys.delete(ki.lease);
    }
    ki.lease = lease;
    if (lease === NO_LEASE) return;
    let keys = this.leaseKeys.get(lease);
    if (keys === undefined) this.leaseKeys.set(lease, (keys = new Set()));
    keys.add(ki.key);
  }

  // ---- reads

  async range(req: RangeRequest, opts: ReadOptions = {}): Promise<RangeResponse> {
    checkRangeRequest(req, this.config);
    return this.rangeAt(req, this.currentRev, budgetOf(opts));
  }

  /** etcd's Range as of `curRev` (the store's revision, or a write txn's view of itself). */
  private async rangeAt(req: RangeRequest, curRev: number, budget?: ReadBudget): Promise<RangeResponse> {
    const rev = this.resolveReadRevision(req.revision ?? 0, curRev);
    const matches = this.matchingKeys(toBounds(req), rev);
    const header = { revision: curRev };
    const count = matches.length;
    if (req.countOnly === true) return { header, kvs: [], more: false, count };
    const candidates = matches.filter(revisionFilter(req));
    const { order, target } = effectiveSort(req);
    const limit = req.limit !== undefined && req.limit > 0 ? req.limit : Infinity;
    let kvs: KeyValue[];
    if (order !== 'NONE' && target === 'VALUE') {
      kvs = await this.readKvs(candidates, budget);
      kvs.sort(orderBy(order, (a, b) => compareBytes(a.value, b.value)));
      kvs = kvs.slice(0, limit);
    } else {
      if (order !== 'NONE') candidates.sort(orderBy(order, metaComparator(target)));
      kvs = await this.readKvs(candidates.slice(0, limit), budget, req.keysOnly === true);
    }
    if (req.keysOnly === true) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY }));
    return { header, kvs, more: candidates.length > limit, count };
  }

  /** etcd's rule: 0 reads the current revision; the future and the compacted past are errors. */
  private resolveReadRevision(requested: number, curRev: number): number {
    if (requested > curRev) throw mvccError('FUTURE_REVISION');
    const rev = requested <= 0 ? curRev : requested;
    if (rev < this.compactRev) throw mvccError('COMPACTED');
    return rev;
  }

  /** The keys in the bounds that were live at `rev`, in key order. Synchronous: a consistent cut of the index. */
  private matchingKeys(bounds: KeyBounds, rev: number): KeyMatch[] {
    const out: KeyMatch[] = [];
    const consider = (ki: KeyIndex | undefined): void => {
      const at = ki?.get(rev);
      if (ki !== undefined && at !== undefined) out.push({ ki, at });
    };
    if (bounds.single) consider(this.index.get(bounds.from));
    else for (const ki of this.index.range(bounds.from, bounds.to)) consider(ki);
    return out;
  }

  /** Read the key-values of these revisions, a bounded number of backend reads at a time. */
  /** `keysOnly`: drop each value as it is read, so a keys-only read neither holds nor pays for them. */
  private async readKvs(matches: readonly KeyMatch[], budget?: ReadBudget, keysOnly = false): Promise<KeyValue[]> {
    const out: KeyValue[] = [];
    for (let i = 0; i < matches.length; i += this.config.readParallelismMax) {
      const chunk = matches.slice(i, i + this.config.readParallelismMax);
      for (const read of await Promise.all(chunk.map((m) => this.readKv(m.at)))) {
        const kv = keysOnly ? { ...read, value: EMPTY } : read;
        charge(budget, kv);
        out.push(kv);
      }
    }
    return out;
  }

  private async readKv(at: Revision): Promise<KeyValue> {
    return putOfRow(await this.readRow(at), at);
  }

  private async readRow(at: Revision): Promise<Uint8Array> {
    const inMemory = this.rowInMemory(at);
    if (inMemory !== undefined) return inMemory;
    const id = rowId(at.main, at.sub);
    const row = await this.backend.get(revisionKey(at.main, at.sub));
    if (row !== undefined) {
      verifyRecord(row); // once, coming into memory: rows in memory are decoded with viewRecord
      this.rowCache.set(id, row);
      return row;
    }
    // A compaction that started after this read resolved its revisions may have deleted the row.
    if (at.main <= this.compactRev) throw mvccError('COMPACTED');
    assert(false, () => `row ${at.main}.${at.sub} missing from the backend`);
  }

  /** The row of this revision when memory holds it (uncommitted, read ahead or cached); undefined: ask the backend. */
  private rowInMemory(at: Revision): Uint8Array | undefined {
    if (at.main > this.committedRev) {
      const row = this.uncommitted.get(at.main)?.[at.sub];
      if (row === undefined) assert(false, `uncommitted row ${at.main}.${at.sub} missing`);
      return row;
    }
    const id = rowId(at.main, at.sub);
    const ahead = this.prefetched.get(id) ?? this.rowCache.get(id);
    return ahead !== undefined && ahead !== EMPTY ? ahead : undefined;
  }

  // ---- writes
  //
  // Every write takes the HLC it happens at: the state machine passes the HLC it computed from the log for the
  // command, so each row's createHlc/modHlc is the same on every member. It is an explicit argument rather than
  // store state set beforehand, so a write cannot pick up a stale one. It defaults to NO_HLC only for callers that
  // do not model time (benchmarks, tests); every replicated write passes it.

  async put(req: PutRequest, batch: KvBatch, hlc: bigint = NO_HLC): Promise<WriteResult<PutResponse>> {
    const done = this.putFromMemory(req, batch, hlc);
    if (done !== undefined) return done;
    return this.write(batch, hlc, undefined, async (ctx) => {
      this.checkPutAgainstStore(req);
      return this.putInTxn(ctx, req);
    });
  }

  /**
   * put(), done at once when it needs no backend read: the key is new, or the current row it reads (for prev_kv,
   * ignore_value or its event's prev_kv) is in memory, as prefetchCurrent leaves the rows of an applied batch.
   * Otherwise it does nothing and answers undefined, and the caller goes on with put(). The apply loop takes most
   * puts this way, without the promises, suspended frames and microtasks of put()'s chain of awaits.
   */
  putFromMemory(req: PutRequest, batch: KvBatch, hlc: bigint = NO_HLC): WriteResult<PutResponse> | undefined {
    checkPutRequest(req, this.config);
    const keyString = bytesToKeyString(req.key);
    const ki = this.index.get(keyString);
    const prev = ki?.current();
    const readsPrevious = prev !== undefined && this.putReadsPrevious(req);
    const prevRow = readsPrevious ? this.rowInMemory(prev) : undefined;
    if (readsPrevious && prevRow === undefined) return undefined;
    return this.writeNow(batch, hlc, (ctx) => {
      this.checkPutAgainstStore(req);
      return this.stagePut(ctx, req, keyString, ki, prev, prevRow === undefined ? undefined : putOfRow(prevRow, prev!));
    });
  }

  async deleteRange(req: DeleteRangeRequest, batch: KvBatch, hlc: bigint = NO_HLC): Promise<WriteResult<DeleteRangeResponse>> {
    checkDeleteRangeRequest(req, this.config);
    return this.write(batch, hlc, undefined, (ctx) => this.deleteInTxn(ctx, req));
  }

  /**
   * Delete these keys at one main revision, however many there are: what revoking a lease does to its keys
   * (etcd deletes them in one transaction; the txn operation limit is for clients, not for this).
   */
  async deleteKeys(keys: readonly Uint8Array[], batch: KvBatch, hlc: bigint = NO_HLC): Promise<WriteResult<{ deleted: number }>> {
    return this.write(batch, hlc, undefined, async (ctx) => {
      let deleted = 0;
      for (const key of keys) deleted += (await this.deleteInTxn(ctx, { key })).deleted;
      return { deleted };
    });
  }

  /**
   * etcd's Txn: every compare on the path (nested txns' too) is evaluated against the store before the txn, then
   * the chosen operations are checked against that same state (keys for ignore_value/ignore_lease, range
   * revisions), and only then executed in order, all at one main revision, so a txn either fails whole or runs.
   */
  async txn(req: TxnRequest, batch: KvBatch, hlc: bigint = NO_HLC, opts: ReadOptions = {}): Promise<WriteResult<TxnResponse>> {
    checkTxnRequest(req, this.config);
    checkTxnIntervals([{ requestTxn: req }]);
    return this.write(batch, hlc, budgetOf(opts), async (ctx) => {
      const path = await this.compareToPath(req, ctx.budget);
      if (txnHasWrites(req)) this.walkPath(req, path, (op) => 'requestPut' in op && this.checkPutAgainstStore(op.requestPut));
      this.walkPath(req, path, (op) => 'requestRange' in op && this.checkRangeRevision(op.requestRange));
      const response = await this.executeTxn(ctx, req, path.slice());
      return { ...response, header: { revision: ctx.events.length > 0 ? ctx.main : ctx.main - 1 } };
    });
  }

  private async write<R>(batch: KvBatch, hlc: bigint, budget: ReadBudget | undefined, run: (ctx: WriteContext) => Promise<R>): Promise<WriteResult<R>> {
    const ctx = this.beginWrite(batch, hlc, budget);
    try {
      return this.endWrite(ctx, await run(ctx));
    } finally {
      this.writing = false;
    }
  }

  /** write() of a transaction that runs to the end without awaiting anything. */
  private writeNow<R>(batch: KvBatch, hlc: bigint, run: (ctx: WriteContext) => R): WriteResult<R> {
    const ctx = this.beginWrite(batch, hlc, undefined);
    try {
      return this.endWrite(ctx, run(ctx));
    } finally {
      this.writing = false;
    }
  }

  private beginWrite(batch: KvBatch, hlc: bigint, budget: ReadBudget | undefined): WriteContext {
    assert(!this.writing, 'write operations must be applied one at a time');
    this.writing = true;
    return { batch, main: this.currentRev + 1, hlc, events: [], budget };
  }

  private endWrite<R>(ctx: WriteContext, response: R): WriteResult<R> {
    if (ctx.events.length > 0) this.currentRev = ctx.main;
    return { response, events: ctx.events, revision: this.currentRev };
  }

  /** The revision a write txn reads at: its own changes are visible once it has made any (etcd's rule). */
  private readRevision(ctx: WriteContext): number {
    return ctx.events.length > 0 ? ctx.main : ctx.main - 1;
  }

  private checkPutAgainstStore(req: PutRequest): void {
    if (req.ignoreValue === true || req.ignoreLease === true) {
      if (this.index.get(bytesToKeyString(req.key))?.current() === undefined) throw mvccError('KEY_NOT_FOUND');
    }
    const lease = req.lease ?? NO_LEASE;
    if (lease !== NO_LEASE && this.leaseExists !== undefined && !this.leaseExists(lease)) throw mvccError('LEASE_NOT_FOUND');
  }

  private checkRangeRevision(req: RangeRequest): void {
    const rev = req.revision ?? 0;
    if (rev === 0) return;
    if (rev > this.currentRev) throw mvccError('FUTURE_REVISION');
    if (rev < this.compactRev) throw mvccError('COMPACTED');
  }

  /** Whether a put of an existing key reads its current row: for prev_kv, ignore_value or its event's prev_kv. */
  private putReadsPrevious(req: PutRequest): boolean {
    return req.prevKv === true || req.ignoreValue === true || this.config.prevKvInEvents;
  }

  private async putInTxn(ctx: WriteContext, req: PutRequest): Promise<PutResponse> {
    const keyString = bytesToKeyString(req.key);
    // Captured before the read: nothing else writes while this transaction runs (see write()).
    const known = this.index.get(keyString);
    const prev = known?.current();
    const prevKv = prev !== undefined && this.putReadsPrevious(req) ? await this.readKv(prev) : undefined;
    return this.stagePut(ctx, req, keyString, known, prev, prevKv);
  }

  /** The put itself, once its previous key-value (when it needs it) is read: the row, the index and the event. */
  private stagePut(ctx: WriteContext, req: PutRequest, keyString: string, known: KeyIndex | undefined, prev: KeyAtRevision | undefined, prevKv: KeyValue | undefined): PutResponse {
    const ki = known ?? this.index.getOrCreate(keyString);
    const lease = req.ignoreLease === true ? ki.lease : (req.lease ?? NO_LEASE);
    const sub = ctx.events.length;
    const kv: { -readonly [F in keyof KeyValue]-?: KeyValue[F] } = {
      key: req.key,
      createRevision: prev?.createRevision ?? ctx.main,
      modRevision: ctx.main,
      version: (prev?.version ?? 0) + 1,
      value: req.ignoreValue === true ? prevKv!.value : req.value,
      lease,
      // The generation's createHlc from the index: an update needs no read of the previous row for it.
      createHlc: prev !== undefined ? ki.createHlc : ctx.hlc,
      modHlc: ctx.hlc,
    };
    const row = encodeRecord({ tombstone: false, kv });
    // The key-value (for watch events) views the record's copies of the key and value: the request's bytes are a
    // view into the whole command, and a copy of its own per put showed in every member's allocation profile.
    kv.key = recordKeyView(row, kv.key.length);
    kv.value = recordValueView(row, kv.key.length, kv.value.length);
    this.stageRow(ctx, sub, row);
    if (prev !== undefined) this.retire(prev);
    ki.put(ctx.main, sub, ctx.hlc);
    this.attachLease(ki, lease);
    const eventPrev = this.config.prevKvInEvents ? this.eventPrev(ctx, keyString, prevKv) : undefined;
    ctx.events.push(eventPrev !== undefined ? { type: 'PUT', kv, prevKv: eventPrev } : { type: 'PUT', kv });
    return req.prevKv === true && prevKv !== undefined ? { header: { revision: ctx.main }, prevKv } : { header: { revision: ctx.main } };
  }

  /**
   * The prev_kv of a write's watch event: the key as it was before this revision, as etcd gives it (it reads the
   * key at the event's revision - 1), and as a watch replaying history here reads it. Not the version an earlier op
   * of the same transaction left: nested transactions may put and then delete one key (or delete and then put it),
   * and both events then carry the key as it was before the transaction. The ops' own answers (a delete's
   * prev_kvs) do see the earlier op, as etcd's do. Single-event writes, the common case, make no map.
   */
  private eventPrev(ctx: WriteContext, keyString: string, prevKv: KeyValue | undefined): KeyValue | undefined {
    if (ctx.events.length === 0) return prevKv;
    if (ctx.eventPrevs === undefined) {
      ctx.eventPrevs = new Map();
      for (const e of ctx.events) {
        const k = bytesToKeyString(e.kv.key);
        if (!ctx.eventPrevs.has(k)) ctx.eventPrevs.set(k, e.prevKv);
      }
    }
    if (ctx.eventPrevs.has(keyString)) return ctx.eventPrevs.get(keyString);
    ctx.eventPrevs.set(keyString, prevKv);
    return prevKv;
  }

  private async deleteInTxn(ctx: WriteContext, req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    const matches = this.matchingKeys(toBounds(req), this.readRevision(ctx));
    const needPrev = req.prevKv === true || this.config.prevKvInEvents;
    const prevKvs = needPrev ? await this.readKvs(matches) : [];
    matches.forEach(({ ki, at }, i) => {
      const sub = ctx.events.length;
      const kv: Required<KeyValue> = {
        key: keyStringToBytes(ki.key),
        createRevision: 0,
        modRevision: ctx.main,
        version: 0,
        value: EMPTY,
        lease: NO_LEASE,
        createHlc: NO_HLC,
        modHlc: ctx.hlc,
      };
      this.stageRow(ctx, sub, encodeRecord({ tombstone: true, kv }));
      this.retire(at);
      ki.tombstone(ctx.main, sub);
      this.attachLease(ki, NO_LEASE);
      const eventPrev = this.config.prevKvInEvents ? this.eventPrev(ctx, ki.key, prevKvs[i]) : undefined;
      ctx.events.push(eventPrev !== undefined ? { type: 'DELETE', kv, prevKv: eventPrev } : { type: 'DELETE', kv });
    });
    const revision = ctx.events.length > 0 ? ctx.main : ctx.main - 1;
    return { header: { revision }, deleted: matches.length, prevKvs: req.prevKv === true ? prevKvs : [] };
  }

  /**
   * A write replaced this revision as its key's current one: keep its row out of the row cache. Reads want current
   * rows (a get, the next overwrite's prev_kv); history is read by the few that ask for an old revision, straight
   * from the backend. Cached, every overwritten revision stayed until 16 MB of them pushed it out: at 1,000 keys
   * written over and over, tens of thousands of dead rows, each its own buffer, that the GC kept walking (a leader's
   * full collections took 26-52 ms every few seconds under 100 puts in flight).
   */
  private retire(at: Revision): void {
    const id = rowId(at.main, at.sub);
    if (at.main > this.committedRev) this.retired.add(id);
    else this.rowCache.delete(id);
  }

  private stageRow(ctx: WriteContext, sub: number, row: Uint8Array): void {
    ctx.batch.put(revisionKey(ctx.main, sub), row);
    let rows = this.uncommitted.get(ctx.main);
    if (rows === undefined) this.uncommitted.set(ctx.main, (rows = []));
    assert(rows.length === sub, () => `sub revision ${sub} staged out of order`);
    rows.push(row);
  }

  // ---- txn internals

  /** The outcome of every compare list on the path, in the order executeTxn consumes them (etcd's compareToPath). */
  private async compareToPath(req: TxnRequest, budget?: ReadBudget): Promise<boolean[]> {
    const succeeded = await this.applyCompares(req.compare ?? [], budget);
    const path = [succeeded];
    for (const op of (succeeded ? req.success : req.failure) ?? []) {
      if ('requestTxn' in op) path.push(...(await this.compareToPath(op.requestTxn, budget)));
    }
    return path;
  }

  /** Visit the non-txn operations on the chosen path, in order. */
  private walkPath(req: TxnRequest, path: readonly boolean[], visit: (op: RequestOp) => unknown): number {
    let used = 1;
    for (const op of (path[0] === true ? req.success : req.failure) ?? []) {
      if ('requestTxn' in op) used += this.walkPath(op.requestTxn, path.slice(used), visit);
      else visit(op);
    }
    return used;
  }

  private async applyCompares(compares: readonly Compare[], budget?: ReadBudget): Promise<boolean> {
    for (const c of compares) if (!(await this.applyCompare(c, budget))) return false;
    return true;
  }

  /**
   * etcd's applyCompare: every key in the range must satisfy it; no key compares as a zero key-value. A client's
   * read-only txn pays for the values a VALUE compare reads, like those it returns (they are held together).
   */
  private async applyCompare(c: Compare, budget?: ReadBudget): Promise<boolean> {
    const matches = this.matchingKeys(toBounds(c), this.currentRev);
    if (matches.length === 0) {
      // A missing key has no value to compare (gRPC cannot tell a missing value from an empty one).
      if (c.target === 'VALUE') return false;
      return compareResult(c, compareOperand(c, { createRevision: 0, modRevision: 0, version: 0, lease: NO_LEASE, value: EMPTY }));
    }
    const values = c.target === 'VALUE' ? await this.readKvs(matches, budget) : undefined;
    return matches.every(({ ki, at }, i) =>
      compareResult(c, compareOperand(c, { createRevision: at.createRevision, modRevision: at.main, version: at.version, lease: ki.lease, value: values?.[i]?.value ?? EMPTY })),
    );
  }

  /** Execute the chosen branch; `path` is consumed from the front as nested txns take their outcomes. */
  private async executeTxn(ctx: WriteContext, req: TxnRequest, path: boolean[]): Promise<TxnResponse> {
    const succeeded = path.shift();
    assert(succeeded !== undefined, 'txn path exhausted');
    const responses: ResponseOp[] = [];
    for (const op of (succeeded ? req.success : req.failure) ?? []) responses.push(await this.executeOp(ctx, op, path));
    return { header: { revision: this.readRevision(ctx) }, succeeded, responses };
  }

  private async executeOp(ctx: WriteContext, op: RequestOp, path: boolean[]): Promise<ResponseOp> {
    if ('requestRange' in op) return { responseRange: await this.rangeAt(op.requestRange, this.readRevision(ctx), ctx.budget) };
    if ('requestPut' in op) return { responsePut: await this.putInTxn(ctx, op.requestPut) };
    if ('requestDeleteRange' in op) return { responseDeleteRange: await this.deleteInTxn(ctx, op.requestDeleteRange) };
    return { responseTxn: await this.executeTxn(ctx, op.requestTxn, path) };
  }

  // ---- compaction

  /**
   * Compact the history at `revision`: reads below it fail from now on, the index forgets what it no longer
   * needs, and the rows to delete are left to compactionStep, which removes them in bounded chunks. The store
   * serves reads and writes throughout. Like a write, it must not run concurrently with other writes.
   */
  compact(revision: number, batch: KvBatch): { revision: number } {
    assert(!this.writing, 'compact during a write transaction');
    if (revision <= this.compactRev) throw mvccError('COMPACTED');
    if (revision > this.currentRev) throw mvccError('FUTURE_REVISION');
    this.compactRev = revision;
    batch.put(META_COMPACT_SCHEDULED, encodeU64(revision));
    this.compactIndex(revision);
    // A new compaction restarts the scan: rows an earlier one kept may be deletable now.
    this.physicalCompaction = { target: revision, cursor: REVISION_PREFIX };
    return { revision: this.currentRev };
  }

  private compactIndex(revision: number): void {
    const emptied: string[] = [];
    for (const ki of this.index.all()) if (ki.compact(revision)) emptied.push(ki.key);
    for (const key of emptied) this.index.remove(key);
  }

  /**
   * Delete up to config.compactionChunkRevisions rows of the pending compaction, putting the deletions into the
   * batch. Waits (does nothing) until every row at or below the compact revision is committed. The caller runs
   * it between applies, e.g. once per applied Raft batch, until `done`.
   */
  async compactionStep(batch: KvBatch): Promise<CompactionStepResult> {
    const job = this.physicalCompaction;
    if (job === undefined) return { done: true, deletedRevisions: 0 };
    if (this.committedRev < job.target) return { done: false, deletedRevisions: 0 };
    const chunk = this.config.compactionChunkRevisions;
    let examined = 0;
    let deleted = 0;
    let last: Uint8Array | undefined;
    for await (const [key, row] of this.backend.iterate({ gte: job.cursor, lt: revisionKey(job.target + 1, 0) }, { limit: chunk })) {
      examined++;
      last = key;
      if (this.isRowLive(decodeRevisionKey(key), row)) continue;
      batch.del(key);
      deleted++;
    }
    if (this.physicalCompaction !== job) return { done: false, deletedRevisions: deleted };
    if (examined < chunk) {
      batch.put(META_COMPACT_FINISHED, encodeU64(job.target));
      this.physicalCompaction = undefined;
      return { done: true, deletedRevisions: deleted };
    }
    job.cursor = successorKey(last!);
    return { done: false, deletedRevisions: deleted };
  }

  /** Whether the index still holds this row's revision (rows the compaction dropped are not live). */
  private isRowLive(rev: Revision, row: Uint8Array): boolean {
    const ki = this.index.get(decodeRecordHead(row).keyString);
    return ki !== undefined && ki.hasRevision(rev.main, rev.sub);
  }

  // ---- hash and history

  /**
   * A CRC-32C over the rows live at `revision` (0: current): every row in (compactRevision, revision] and the
   * rows the compaction kept at or below it, each as revision key then encoded record. Members that applied the
   * same operations agree on it whether or not their physical compaction has finished.
   */
  async hashKV(revision: number): Promise<HashKVResult> {
    const cur = this.currentRev;
    const compactRev = this.compactRev;
    if (revision > 0 && revision < compactRev) throw mvccError('COMPACTED');
    if (revision > cur) throw mvccError('FUTURE_REVISION');
    const hashRevision = revision === 0 ? cur : revision;
    let hash = crc32c(REVISION_PREFIX);
    for await (const [key, row] of this.rows(REVISION_PREFIX, hashRevision)) {
      const rev = decodeRevisionKey(key);
      if (rev.main <= compactRev && !this.isRowLive(rev, row)) continue;
      hash = crc32c(row, crc32c(key, hash));
    }
    return { hash, compactRevision: compactRev, hashRevision, revision: cur };
  }

  /**
   * The events in [fromRevision, current revision when called] for keys in the range, oldest first, in batches
   * of at most config.eventBatchMax (for watches that start in the past). Fails with COMPACTED when fromRevision
   * is below the compact revision, or when a compaction overtakes the iteration.
   */
  async *events(fromRevision: number, range: KeyRangeRequest): AsyncGenerator<MvccEvent[]> {
    if (fromRevision < this.compactRev) throw mvccError('COMPACTED');
    const bounds = toBounds(range);
    const toRevision = this.currentRev;
    const compactAtStart = this.compactRev;
    let batch: MvccEvent[] = [];
    for await (const [key, row] of this.rows(revisionKey(Math.max(fromRevision, 0), 0), toRevision)) {
      const rev = decodeRevisionKey(key);
      // A compaction that started meanwhile and reaches this row may have deleted rows not read yet.
      if (this.compactRev !== compactAtStart && this.compactRev >= rev.main) throw mvccError('COMPACTED');
      if (rev.main <= this.compactRev && !this.isRowLive(rev, row)) continue;
      const record = decodeRecord(row);
      if (!inBounds(bytesToKeyString(record.kv.key), bounds)) continue;
      batch.push({ type: record.tombstone ? 'DELETE' : 'PUT', kv: record.kv });
      if (batch.length >= this.config.eventBatchMax) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }

  /**
   * Rows from `fromKey` through main revision `toMain`, in revision order: committed ones from the backend, the
   * rest from memory. Loops when committed() moves while the backend part is read.
   */
  private async *rows(fromKey: Uint8Array, toMain: number): AsyncGenerator<[Uint8Array, Uint8Array]> {
    let cursor = fromKey;
    for (;;) {
      const end = Math.min(toMain, this.committedRev);
      for await (const [key, row] of this.backend.iterate({ gte: cursor, lt: revisionKey(end + 1, 0) })) {
        yield [key, row];
        cursor = successorKey(key);
      }
      if (end < toMain && this.committedRev > end) continue;
      yield* this.uncommittedRows(cursor, toMain);
      return;
    }
  }

  private uncommittedRows(fromKey: Uint8Array, toMain: number): Array<[Uint8Array, Uint8Array]> {
    const out: Array<[Uint8Array, Uint8Array]> = [];
    for (const [main, rows] of this.uncommitted) {
      if (main > toMain) continue;
      rows.forEach((row, sub) => {
        const key = revisionKey(main, sub);
        if (compareBytes(key, fromKey) >= 0) out.push([key, row]);
      });
    }
    return out.sort((a, b) => compareBytes(a[0], b[0]));
  }

  // ---- reopen

  private async restore(): Promise<void> {
    const scheduled = await this.readMeta(META_COMPACT_SCHEDULED);
    const finished = await this.readMeta(META_COMPACT_FINISHED);
    let lastMain = INITIAL_REVISION;
    await this.backend.scan({ gte: REVISION_PREFIX, lt: REVISION_RANGE_END }, (key, row) => {
      const rev = decodeRevisionKey(key);
      this.restoreRow(rev, row, scheduled);
      lastMain = Math.max(lastMain, rev.main);
    });
    this.currentRev = Math.max(lastMain, scheduled);
    this.committedRev = this.currentRev;
    if (scheduled === NO_COMPACTION) return;
    this.compactRev = scheduled;
    this.compactIndex(scheduled);
    if (finished < scheduled) this.physicalCompaction = { target: scheduled, cursor: REVISION_PREFIX };
  }

  private restoreRow(rev: Revision, row: Uint8Array, scheduledCompaction: number): void {
    const head = decodeRecordHead(row);
    if (head.tombstone) {
      const ki = this.index.get(head.keyString);
      // The puts before this tombstone were compacted away before the compaction finished: nothing to close.
      if (ki === undefined || !ki.isLive()) {
        assert(rev.main <= scheduledCompaction, () => `tombstone ${rev.main}.${rev.sub} of a key that is not live`);
        return;
      }
      ki.tombstone(rev.main, rev.sub);
      this.attachLease(ki, NO_LEASE);
      return;
    }
    const ki = this.index.getOrCreate(head.keyString);
    ki.restorePut(rev.main, rev.sub, head.createRevision, head.version, head.createHlc);
    this.attachLease(ki, head.lease);
  }

  private async readMeta(key: Uint8Array): Promise<number> {
    const v = await this.backend.get(key);
    return v === undefined ? NO_COMPACTION : decodeU64(v);
  }
}

// ---- pure helpers

/** The key-value a put's row holds; the row must be the put at `at` (the index says so). */
/**
 * The key-value of a put's row from memory (readRow, rowInMemory): checked when it came in, or encoded here, so
 * decoded without a checksum pass, its key and value viewing the row.
 */
function putOfRow(row: Uint8Array, at: Revision): KeyValue {
  const record = viewRecord(row);
  if (record.tombstone || record.kv.modRevision !== at.main) assert(false, `row ${at.main}.${at.sub} is not the expected put`);
  return record.kv;
}

/**
 * A row's name in the row cache and the read-ahead map: its main revision alone when its sub revision is 0 (every
 * put or delete outside a txn, most rows), `main.sub` otherwise. A number needs no string built and hashed for
 * each lookup; a number and a string never name the same entry.
 */
function rowId(main: number, sub: number): RowId {
  return sub === 0 ? main : `${main}.${sub}`;
}

function toBounds(req: KeyRangeRequest): KeyBounds {
  const from = bytesToKeyString(req.key);
  const end = req.rangeEnd;
  if (end === undefined || end.length === 0) return { from, to: from, single: true };
  if (end.length === 1 && end[0] === 0) return { from, to: undefined, single: false };
  return { from, to: bytesToKeyString(end), single: false };
}

function inBounds(key: string, b: KeyBounds): boolean {
  if (b.single) return key === b.from;
  return key >= b.from && (b.to === undefined || key < b.to);
}

/** The smallest key after `key` in byte order. */
function successorKey(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out.set(key);
  return out;
}

/** etcd's min/max mod/create revision filters (0: no bound). */
function revisionFilter(req: RangeRequest): (m: KeyMatch) => boolean {
  const minMod = req.minModRevision ?? 0;
  const maxMod = req.maxModRevision ?? 0;
  const minCreate = req.minCreateRevision ?? 0;
  const maxCreate = req.maxCreateRevision ?? 0;
  return ({ at }) =>
    (maxMod === 0 || at.main <= maxMod) &&
    (minMod === 0 || at.main >= minMod) &&
    (maxCreate === 0 || at.createRevision <= maxCreate) &&
    (minCreate === 0 || at.createRevision >= minCreate);
}

/**
 * etcd's executeRange: a non-KEY target with order NONE sorts ascending; KEY ascending is the index order already.
 * Ties keep key order (etcd's sort is not stable, so it promises nothing there; this is one valid answer).
 */
function effectiveSort(req: RangeRequest): { order: SortOrder; target: NonNullable<RangeRequest['sortTarget']> } {
  const target = req.sortTarget ?? 'KEY';
  let order = req.sortOrder ?? 'NONE';
  if (target !== 'KEY' && order === 'NONE') order = 'ASCEND';
  else if (target === 'KEY' && order === 'ASCEND') order = 'NONE';
  return { order, target };
}

function orderBy<T>(order: SortOrder, cmp: (a: T, b: T) => number): (a: T, b: T) => number {
  return order === 'DESCEND' ? (a, b) => cmp(b, a) : cmp;
}

function metaComparator(target: NonNullable<RangeRequest['sortTarget']>): (a: KeyMatch, b: KeyMatch) => number {
  switch (target) {
    case 'KEY':
      return (a, b) => (a.ki.key < b.ki.key ? -1 : a.ki.key > b.ki.key ? 1 : 0);
    case 'VERSION':
      return (a, b) => a.at.version - b.at.version;
    case 'CREATE':
      return (a, b) => a.at.createRevision - b.at.createRevision;
    case 'MOD':
      return (a, b) => a.at.main - b.at.main;
    case 'VALUE':
      assert(false, 'VALUE sorts need the values');
  }
}

type ComparedFields = Pick<KeyValue, 'createRevision' | 'modRevision' | 'version' | 'lease' | 'value'>;

/** The sign of (the key's field - the compare's operand); absent operands are zero/empty, as in protobuf. */
function compareOperand(c: Compare, kv: ComparedFields): number {
  const sign = (a: number | bigint, b: number | bigint): number => (a < b ? -1 : a > b ? 1 : 0);
  switch (c.target) {
    case 'VALUE':
      return Math.sign(compareBytes(kv.value, c.value ?? EMPTY));
    case 'CREATE':
      return sign(kv.createRevision, c.createRevision ?? 0);
    case 'MOD':
      return sign(kv.modRevision, c.modRevision ?? 0);
    case 'VERSION':
      return sign(kv.version, c.version ?? 0);
    case 'LEASE':
      return sign(kv.lease, c.lease ?? NO_LEASE);
  }
}

function compareResult(c: Compare, sign: number): boolean {
  switch (c.result) {
    case 'EQUAL':
      return sign === 0;
    case 'NOT_EQUAL':
      return sign !== 0;
    case 'GREATER':
      return sign > 0;
    case 'LESS':
      return sign < 0;
  }
}
