// Transactions: `if` every compare holds `then` run these ops `else` those, atomically, at one revision.
//
//   const r = await client.txn()
//     .if(Compare.value('config/mode', '=', 'blue'), Compare.version('config/lock', '=', 0))
//     .then(Op.put('config/mode', 'green'), Op.get('config/mode'))
//     .else(Op.get('config/mode'))
//     .commit();
//
// Compares and ops are plain values (user keys, before the namespace), so they can be built anywhere, kept and
// reused; `toWireTxn` turns a whole spec into etcd's TxnRequest through a namespace, `fromWireTxn` turns the
// answer back. Both are pure.
import type { Compare as WireCompare, Encodable, RangeResponse, RequestOp, ResponseOp, TxnRequest, TxnResponse } from '../proto/index.js';
import { type Bytes, toBuffer } from './bytes.js';
import { InvalidArgumentError } from './errors.js';
import type { KeySpace } from './keyspace.js';
import { type Header, type KeyRange, type KeyValue, type LeaseRef, leaseId, num, toHeader, toKeyValue, toKeyValueOrUndefined, keyFields, wireRange } from './types.js';

export type CompareOp = '=' | '!=' | '<' | '>';
export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision' | 'lease';

export interface CompareSpec {
  readonly target: CompareTarget;
  readonly key: Bytes | KeyRange;
  readonly op: CompareOp;
  /** Buffer for 'value'; a number for versions and revisions; a bigint for 'lease'. */
  readonly operand: Buffer | number | bigint;
}

const RESULT_OF: Readonly<Record<CompareOp, WireCompare['result']>> = { '=': 'EQUAL', '!=': 'NOT_EQUAL', '<': 'LESS', '>': 'GREATER' };

function compareOp(op: CompareOp): CompareOp {
  if (!(op in RESULT_OF)) throw new InvalidArgumentError(`fulcrum client: a compare operator is one of = != < >, got ${JSON.stringify(op)}`);
  return op;
}

function revisionOperand(what: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`fulcrum client: ${what} must be a non-negative integer, got ${String(n)}`);
  return n;
}

/** Conditions of a transaction. A key that does not exist has version, create and mod revision 0 and lease 0. */
export const Compare = {
  value: (key: Bytes | KeyRange, op: CompareOp, value: Bytes): CompareSpec => ({ target: 'value', key, op: compareOp(op), operand: toBuffer(value) }),
  version: (key: Bytes | KeyRange, op: CompareOp, version: number): CompareSpec => ({ target: 'version', key, op: compareOp(op), operand: revisionOperand('a version', version) }),
  createRevision: (key: Bytes | KeyRange, op: CompareOp, revision: number): CompareSpec => ({ target: 'createRevision', key, op: compareOp(op), operand: revisionOperand('a revision', revision) }),
  modRevision: (key: Bytes | KeyRange, op: CompareOp, revision: number): CompareSpec => ({ target: 'modRevision', key, op: compareOp(op), operand: revisionOperand('a revision', revision) }),
  lease: (key: Bytes | KeyRange, op: CompareOp, lease: LeaseRef): CompareSpec => ({ target: 'lease', key, op: compareOp(op), operand: leaseId(lease) }),
  /** The key exists (version > 0). */
  exists: (key: Bytes): CompareSpec => ({ target: 'version', key, op: '>', operand: 0 }),
  /** The key does not exist (create revision 0). */
  missing: (key: Bytes): CompareSpec => ({ target: 'createRevision', key, op: '=', operand: 0 }),
} as const;

export type OpSpec =
  | { readonly type: 'get'; readonly key: Bytes | KeyRange; readonly limit?: number; readonly keysOnly?: boolean; readonly countOnly?: boolean; readonly revision?: number }
  | { readonly type: 'put'; readonly key: Bytes; readonly value: Bytes; readonly lease?: LeaseRef; readonly prevKv?: boolean }
  | { readonly type: 'delete'; readonly key: Bytes | KeyRange; readonly prevKv?: boolean }
  | { readonly type: 'txn'; readonly txn: TxnSpec };

/** Operations of a transaction (and nothing else: run them with client.txn()). */
export const Op = {
  get: (key: Bytes | KeyRange, o: { limit?: number; keysOnly?: boolean; countOnly?: boolean; revision?: number } = {}): OpSpec => ({ type: 'get', key, ...o }),
  put: (key: Bytes, value: Bytes, o: { lease?: LeaseRef; prevKv?: boolean } = {}): OpSpec => ({ type: 'put', key, value, ...o }),
  delete: (key: Bytes | KeyRange, o: { prevKv?: boolean } = {}): OpSpec => ({ type: 'delete', key, ...o }),
  txn: (txn: TxnSpec): OpSpec => ({ type: 'txn', txn }),
} as const;

export interface TxnSpec {
  readonly compare: readonly CompareSpec[];
  readonly success: readonly OpSpec[];
  readonly failure: readonly OpSpec[];
}

/** One op's answer, in the order of the branch that ran. */
export type OpResult =
  | { readonly type: 'get'; readonly kvs: KeyValue[]; readonly more: boolean; readonly count: number }
  | { readonly type: 'put'; readonly prevKv: KeyValue | undefined }
  | { readonly type: 'delete'; readonly deleted: number; readonly prevKvs: KeyValue[] }
  | { readonly type: 'txn'; readonly succeeded: boolean; readonly results: OpResult[] };

export interface TxnResult {
  /** True when every compare held and the `then` branch ran. */
  readonly succeeded: boolean;
  /** The answers of the branch that ran. */
  readonly results: OpResult[];
  /** The store's revision after the transaction (unchanged when it wrote nothing). */
  readonly revision: number;
  readonly header: Header;
}

// ---------------------------------------------------------------------------------------------------------
// The builder
// ---------------------------------------------------------------------------------------------------------

/** Builds a TxnSpec; `commit` is supplied by the client that made it. */
export class TxnBuilder {
  private readonly compares: CompareSpec[] = [];
  private readonly success: OpSpec[] = [];
  private readonly failure: OpSpec[] = [];
  private stage: 'if' | 'then' | 'else' = 'if';

  constructor(private readonly run?: (spec: TxnSpec, options?: object) => Promise<TxnResult>) {}

  if(...compares: CompareSpec[]): this {
    this.expectStage('if', 'if');
    this.compares.push(...compares);
    return this;
  }

  then(...ops: OpSpec[]): this {
    this.expectStage('then', 'if', 'then');
    this.stage = 'then';
    this.success.push(...ops);
    return this;
  }

  else(...ops: OpSpec[]): this {
    this.expectStage('else', 'if', 'then', 'else');
    this.stage = 'else';
    this.failure.push(...ops);
    return this;
  }

  spec(): TxnSpec {
    return { compare: [...this.compares], success: [...this.success], failure: [...this.failure] };
  }

  /** Send it. Accepts the call options of every call (signal, timeoutMs). */
  commit(options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<TxnResult> {
    if (this.run === undefined) throw new InvalidArgumentError('fulcrum client: this transaction was not made by a client (use client.txn())');
    return this.run(this.spec(), options);
  }

  private expectStage(call: string, ...allowed: Array<'if' | 'then' | 'else'>): void {
    if (!allowed.includes(this.stage)) throw new InvalidArgumentError(`fulcrum client: txn.${call}() cannot follow txn.${this.stage}()`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// To and from the wire
// ---------------------------------------------------------------------------------------------------------

export function toWireTxn(spec: TxnSpec, space: KeySpace): Encodable<TxnRequest> {
  return { compare: spec.compare.map((c) => toWireCompare(c, space)), success: spec.success.map((o) => toWireOp(o, space)), failure: spec.failure.map((o) => toWireOp(o, space)) };
}

function toWireCompare(c: CompareSpec, space: KeySpace): Encodable<WireCompare> {
  const { key, rangeEnd } = wireRange(c.key, space);
  const base = { ...keyFields(key, rangeEnd), result: RESULT_OF[c.op] };
  switch (c.target) {
    case 'value':
      return { ...base, target: 'VALUE', value: c.operand as Buffer };
    case 'version':
      return { ...base, target: 'VERSION', version: String(c.operand) };
    case 'createRevision':
      return { ...base, target: 'CREATE', create_revision: String(c.operand) };
    case 'modRevision':
      return { ...base, target: 'MOD', mod_revision: String(c.operand) };
    case 'lease':
      return { ...base, target: 'LEASE', lease: String(c.operand) };
    default:
      throw new InvalidArgumentError(`fulcrum client: unknown compare target ${JSON.stringify((c as { target: unknown }).target)}`);
  }
}

function toWireOp(o: OpSpec, space: KeySpace): Encodable<RequestOp> {
  switch (o.type) {
    case 'get': {
      const { key, rangeEnd } = wireRange(o.key, space);
      return {
        request_range: { ...keyFields(key, rangeEnd), limit: o.limit ?? 0, keys_only: o.keysOnly ?? false, count_only: o.countOnly ?? false, revision: o.revision ?? 0 },
      } as Encodable<RequestOp>;
    }
    case 'put': {
      const { key } = wireRange(o.key, space);
      return { request_put: { key, value: toBuffer(o.value), lease: String(leaseId(o.lease)), prev_kv: o.prevKv ?? false } } as Encodable<RequestOp>;
    }
    case 'delete': {
      const { key, rangeEnd } = wireRange(o.key, space);
      return { request_delete_range: { ...keyFields(key, rangeEnd), prev_kv: o.prevKv ?? false } } as Encodable<RequestOp>;
    }
    case 'txn':
      return { request_txn: toWireTxn(o.txn, space) } as Encodable<RequestOp>;
    default:
      throw new InvalidArgumentError(`fulcrum client: unknown txn op ${JSON.stringify((o as { type: unknown }).type)}`);
  }
}

export function fromWireTxn(r: TxnResponse, space: KeySpace): TxnResult {
  const header = toHeader(r.header);
  return { succeeded: r.succeeded, results: r.responses.map((x) => fromWireOp(x, space)), revision: header.revision, header };
}

export function fromWireRange(r: RangeResponse, space: KeySpace): { kvs: KeyValue[]; more: boolean; count: number } {
  return { kvs: r.kvs.map((kv) => toKeyValue(kv, space)), more: r.more, count: num(r.count) };
}

function fromWireOp(r: ResponseOp, space: KeySpace): OpResult {
  switch (r.response) {
    case 'response_range':
      return { type: 'get', ...fromWireRange(r.response_range, space) };
    case 'response_put':
      return { type: 'put', prevKv: toKeyValueOrUndefined(r.response_put.prev_kv, space) };
    case 'response_delete_range':
      return { type: 'delete', deleted: num(r.response_delete_range.deleted), prevKvs: r.response_delete_range.prev_kvs.map((kv) => toKeyValue(kv, space)) };
    case 'response_txn': {
      const t = fromWireTxn(r.response_txn, space);
      return { type: 'txn', succeeded: t.succeeded, results: t.results };
    }
    default:
      throw new InvalidArgumentError('fulcrum client: the server answered a txn op with an empty response');
  }
}
