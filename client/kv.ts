// The KV calls: get, range, put, delete, txn, compact, paged iteration and reads "as of" a wall-clock time.
// Each function takes the shared Rpc and the caller's namespace; the Client class wraps them.
import type { CompactionResponse, DeleteRangeResponse, Encodable, PutResponse, RangeRequest, RangeResponse, RevisionAtResponse, TxnResponse } from '../proto/index.js';
import { type Bytes, keyAfter, toBuffer, toKey } from './bytes.js';
import { InvalidArgumentError } from './errors.js';
import type { KeySpace } from './keyspace.js';
import type { CallOptions, Rpc } from './rpc.js';
import { fromWireRange, fromWireTxn, toWireTxn, type TxnResult, type TxnSpec } from './txn.js';
import { type Header, type Hlc, type KeyRange, type KeyValue, type LeaseRef, leaseId, num, toHeader, toKeyValue, toKeyValueOrUndefined, keyFields, wireRange } from './types.js';

/** Pages of a paged iteration: big enough to be cheap, small enough to bound one answer's memory. */
export const ITERATE_PAGE_SIZE_DEFAULT = 1_000;
export const ITERATE_PAGE_SIZE_MAX = 100_000;

export interface ReadOptions extends CallOptions {
  /** Read the store as it was at this revision (it must not be compacted). */
  readonly revision?: number;
  /** Read the store as it was at this wall-clock time (Fulcrum: the revision current then is looked up first). */
  readonly at?: Date;
  /** Answer from the member reached, without a quorum round: faster, may be stale. Default: linearizable. */
  readonly serializable?: boolean;
}

export type SortTarget = 'key' | 'version' | 'createRevision' | 'modRevision' | 'value';

export interface RangeOptions extends ReadOptions {
  /** At most this many keys (0: no limit). `more` says whether there were others. */
  readonly limit?: number;
  readonly sort?: { readonly target?: SortTarget; readonly order: 'ascend' | 'descend' };
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
}

export interface RangeResult {
  readonly kvs: KeyValue[];
  /** More keys matched than `limit` let through. */
  readonly more: boolean;
  /** How many keys matched in all. */
  readonly count: number;
  /** The revision the read saw (with `revision`/`at`: the store's current one, as etcd answers). */
  readonly revision: number;
  readonly header: Header;
}

export interface PutOptions extends CallOptions {
  /** Bind the key to a lease: it is deleted when the lease ends. */
  readonly lease?: LeaseRef;
  /** Return the version this put replaced. */
  readonly prevKv?: boolean;
  /** Keep the current value (change only the lease); the key must exist. */
  readonly ignoreValue?: boolean;
  /** Keep the current lease (change only the value); the key must exist. */
  readonly ignoreLease?: boolean;
}

export interface PutResult {
  readonly revision: number;
  /** The HLC stamp of this write (0n from etcd). */
  readonly hlc: Hlc;
  readonly prevKv: KeyValue | undefined;
  readonly header: Header;
}

export interface DeleteOptions extends CallOptions {
  readonly prevKv?: boolean;
}

export interface DeleteResult {
  readonly deleted: number;
  readonly prevKvs: KeyValue[];
  readonly revision: number;
  readonly header: Header;
}

export interface IterateOptions extends CallOptions {
  /** Keys per request (default 1000). */
  readonly pageSize?: number;
  /** Iterate the store at this revision; default: the revision of the first page, so pages are one snapshot. */
  readonly revision?: number;
  readonly serializable?: boolean;
  readonly keysOnly?: boolean;
}

const SORT_TARGET: Readonly<Record<SortTarget, string>> = { key: 'KEY', version: 'VERSION', createRevision: 'CREATE', modRevision: 'MOD', value: 'VALUE' };

export class KvCalls {
  constructor(
    private readonly rpc: Rpc,
    private readonly space: KeySpace,
  ) {}

  async get(key: Bytes, o: ReadOptions = {}): Promise<KeyValue | undefined> {
    return (await this.range(key, { ...o, limit: 1 })).kvs[0];
  }

  async range(r: Bytes | KeyRange, o: RangeOptions = {}): Promise<RangeResult> {
    const revision = await this.readRevision(o);
    const { key, rangeEnd } = wireRange(r, this.space);
    const req: Encodable<RangeRequest> = {
      ...keyFields(key, rangeEnd),
      limit: nonNegative('limit', o.limit ?? 0),
      revision,
      serializable: o.serializable ?? false,
      keys_only: o.keysOnly ?? false,
      count_only: o.countOnly ?? false,
      ...(o.sort === undefined ? {} : { sort_order: o.sort.order === 'descend' ? 'DESCEND' : 'ASCEND', sort_target: SORT_TARGET[o.sort.target ?? 'key'] as RangeRequest['sort_target'] }),
    };
    const res = await this.rpc.call<RangeResponse>('read', 'range', (s, md, co, cb) => s.kv.Range(req, md, co, cb), o);
    const header = toHeader(res.header);
    return { ...fromWireRange(res, this.space), revision: header.revision, header };
  }

  async count(r: Bytes | KeyRange, o: ReadOptions = {}): Promise<number> {
    return (await this.range(r, { ...o, countOnly: true })).count;
  }

  async put(key: Bytes, value: Bytes, o: PutOptions = {}): Promise<PutResult> {
    const req = {
      key: this.space.key(toKey(key)),
      value: o.ignoreValue ? Buffer.alloc(0) : toBuffer(value),
      lease: String(leaseId(o.lease)),
      prev_kv: o.prevKv ?? false,
      ignore_value: o.ignoreValue ?? false,
      ignore_lease: o.ignoreLease ?? false,
    };
    const res = await this.rpc.call<PutResponse>('write', 'put', (s, md, co, cb) => s.kv.Put(req, md, co, cb), o);
    const header = toHeader(res.header);
    return { revision: header.revision, hlc: header.hlc, prevKv: toKeyValueOrUndefined(res.prev_kv, this.space), header };
  }

  async delete(r: Bytes | KeyRange, o: DeleteOptions = {}): Promise<DeleteResult> {
    const { key, rangeEnd } = wireRange(r, this.space);
    const req = { ...keyFields(key, rangeEnd), prev_kv: o.prevKv ?? false };
    const res = await this.rpc.call<DeleteRangeResponse>('write', 'delete', (s, md, co, cb) => s.kv.DeleteRange(req, md, co, cb), o);
    const header = toHeader(res.header);
    return { deleted: num(res.deleted), prevKvs: res.prev_kvs.map((kv) => toKeyValue(kv, this.space)), revision: header.revision, header };
  }

  async txn(spec: TxnSpec, o: CallOptions = {}): Promise<TxnResult> {
    const req = toWireTxn(spec, this.space);
    const res = await this.rpc.call<TxnResponse>('write', 'txn', (s, md, co, cb) => s.kv.Txn(req, md, co, cb), o);
    return fromWireTxn(res, this.space);
  }

  /** Forget history below `revision` (reads and watches below it fail with CompactedError). */
  async compact(revision: number, o: CallOptions & { physical?: boolean } = {}): Promise<Header> {
    const req = { revision: nonNegative('revision', revision), physical: o.physical ?? false };
    const res = await this.rpc.call<CompactionResponse>('write', 'compact', (s, md, co, cb) => s.kv.Compact(req, md, co, cb), o);
    return toHeader(res.header);
  }

  /**
   * Every key of a range, in key order, fetched a page at a time. All pages read the same revision (the first
   * page's, unless `revision` is given), so the iteration is one consistent snapshot even while writes go on —
   * as long as that revision is not compacted meanwhile (then CompactedError).
   */
  async *iterate(r: Bytes | KeyRange, o: IterateOptions = {}): AsyncGenerator<KeyValue> {
    const pageSize = o.pageSize ?? ITERATE_PAGE_SIZE_DEFAULT;
    if (!Number.isSafeInteger(pageSize) || pageSize <= 0 || pageSize > ITERATE_PAGE_SIZE_MAX) {
      throw new InvalidArgumentError(`fulcrum client: pageSize must be 1..${ITERATE_PAGE_SIZE_MAX}, got ${String(pageSize)}`);
    }
    const { key, rangeEnd } = wireRange(r, this.space);
    let revision = o.revision ?? 0;
    let from = key;
    for (;;) {
      const req = { ...keyFields(from, rangeEnd), limit: pageSize, revision, serializable: o.serializable ?? false, keys_only: o.keysOnly ?? false };
      const res = await this.rpc.call<RangeResponse>('read', 'range', (s, md, co, cb) => s.kv.Range(req, md, co, cb), o);
      if (revision === 0) revision = toHeader(res.header).revision;
      for (const kv of res.kvs) yield toKeyValue(kv, this.space);
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || last === undefined || rangeEnd.length === 0) return;
      from = keyAfter(last.key);
    }
  }

  /** The revision that was current at a wall-clock time (Fulcrum's RevisionAt). */
  async revisionAt(at: Date, o: CallOptions & { serializable?: boolean } = {}): Promise<{ revision: number; hlc: Hlc }> {
    const ms = at.getTime();
    if (!Number.isFinite(ms) || ms < 0) throw new InvalidArgumentError(`fulcrum client: 'at' must be a valid date after 1970, got ${String(at)}`);
    const req = { wall_time_ms: ms, serializable: o.serializable ?? false };
    const res = await this.rpc.call<RevisionAtResponse>('read', 'revisionAt', (s, md, co, cb) => s.fulcrum.RevisionAt(req, md, co, cb), o);
    return { revision: num(res.revision), hlc: BigInt(res.hlc) };
  }

  private async readRevision(o: ReadOptions): Promise<number> {
    if (o.at !== undefined && o.revision !== undefined) throw new InvalidArgumentError("fulcrum client: give 'revision' or 'at', not both");
    if (o.at !== undefined) return (await this.revisionAt(o.at, o)).revision;
    return nonNegative('revision', o.revision ?? 0);
  }
}

function nonNegative(name: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`fulcrum client: ${name} must be a non-negative integer, got ${String(n)}`);
  return n;
}
