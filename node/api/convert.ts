// Conversions between the wire shapes (proto/types.ts: snake_case, int64 as decimal strings, bytes as Buffers,
// enums as names or unknown numbers) and the MVCC shapes (storage/mvcc/types.ts: camelCase, revisions as numbers,
// leases as bigints), plus the two pieces of request metadata every service reads (hasleader, fulcrum-request-id).
//
// Rules that hold throughout:
// - An empty bytes field means "absent" (proto3 cannot tell them apart): range_end '' is a single key, while
//   range_end '\0' stays [0] ("every key >= key"), exactly as etcd reads it.
// - 64-bit integers saturate to the safe range: a revision above 2^53 cannot exist, so it becomes the largest safe
//   number and fails as a future revision instead of silently wrapping.
// - Enum values this build does not know (they arrive as numbers) are refused before anything is proposed.
import type { MetadataReader } from './metadata.js';
import type * as pb from '../../proto/index.js';
import type { Encodable } from '../../proto/index.js';
import type * as mvcc from '../../storage/mvcc/index.js';
import { NO_HLC } from '../../storage/mvcc/types.js';
import { apiError } from './errors.js';
import { wire64 } from './header.js';

/** The HLC stamp of the write that produced a revision, when the store can tell (else undefined). */
export type HlcOf = (revision: number) => bigint | undefined;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);

// ---------------------------------------------------------------------------------------------------------
// Scalars
// ---------------------------------------------------------------------------------------------------------

/** A decoded int64 as a number, saturated to the safe integer range (see the header). */
export function toNumber(v: pb.Int64 | string | number): number {
  const b = BigInt(v);
  if (b > MAX_SAFE) return Number.MAX_SAFE_INTEGER;
  if (b < MIN_SAFE) return Number.MIN_SAFE_INTEGER;
  return Number(b);
}

export function toBigint(v: pb.Int64 | string): bigint {
  return BigInt(v);
}

/** Empty bytes: the field was not set. */
function optionalBytes(b: Uint8Array): Uint8Array | undefined {
  return b.byteLength === 0 ? undefined : b;
}

const SORT_ORDERS: readonly mvcc.SortOrder[] = ['NONE', 'ASCEND', 'DESCEND'];
const SORT_TARGETS: readonly mvcc.SortTarget[] = ['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE'];
const COMPARE_TARGETS: readonly mvcc.CompareTarget[] = ['VERSION', 'CREATE', 'MOD', 'VALUE', 'LEASE'];
const COMPARE_RESULTS: readonly mvcc.CompareResult[] = ['EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'];

function isOneOf<T extends string>(names: readonly T[], v: unknown): v is T {
  return typeof v === 'string' && (names as readonly string[]).includes(v);
}

// ---------------------------------------------------------------------------------------------------------
// Requests: wire -> mvcc
// ---------------------------------------------------------------------------------------------------------

/** etcd's checkRangeRequest rejects sort options it does not know with "invalid sort option". */
export function toMvccRange(r: pb.RangeRequest): mvcc.RangeRequest {
  if (!isOneOf(SORT_ORDERS, r.sort_order) || !isOneOf(SORT_TARGETS, r.sort_target)) throw apiError('INVALID_SORT');
  return {
    key: r.key,
    rangeEnd: optionalBytes(r.range_end),
    limit: toNumber(r.limit),
    revision: toNumber(r.revision),
    sortOrder: r.sort_order,
    sortTarget: r.sort_target,
    keysOnly: r.keys_only,
    countOnly: r.count_only,
    minModRevision: toNumber(r.min_mod_revision),
    maxModRevision: toNumber(r.max_mod_revision),
    minCreateRevision: toNumber(r.min_create_revision),
    maxCreateRevision: toNumber(r.max_create_revision),
  };
}

/**
 * Only the fields that differ from their defaults: the command a put proposes carries no `false`s and no zero lease
 * (the store reads an absent one as the default), so every member decodes and keeps fewer fields per entry.
 */
export function toMvccPut(r: pb.PutRequest): mvcc.PutRequest {
  const out: { -readonly [F in keyof mvcc.PutRequest]: mvcc.PutRequest[F] } = { key: r.key, value: r.value };
  const lease = toBigint(r.lease);
  if (lease !== 0n) out.lease = lease;
  if (r.prev_kv) out.prevKv = true;
  if (r.ignore_value) out.ignoreValue = true;
  if (r.ignore_lease) out.ignoreLease = true;
  return out;
}

export function toMvccDeleteRange(r: pb.DeleteRangeRequest): mvcc.DeleteRangeRequest {
  return { key: r.key, rangeEnd: optionalBytes(r.range_end), prevKv: r.prev_kv };
}

/**
 * etcd reads a compare's operand from the union member that matches its target (GetVersion() for VERSION, ...);
 * a different member being set leaves the operand at its zero value. The same happens here.
 */
export function toMvccCompare(c: pb.Compare): mvcc.Compare {
  if (!isOneOf(COMPARE_TARGETS, c.target)) throw apiError('INVALID_ARGUMENT', `etcdserver: unknown compare target ${String(c.target)}`);
  if (!isOneOf(COMPARE_RESULTS, c.result)) throw apiError('INVALID_ARGUMENT', `etcdserver: unknown compare result ${String(c.result)}`);
  const base = { key: c.key, rangeEnd: optionalBytes(c.range_end), target: c.target, result: c.result };
  switch (c.target) {
    case 'VERSION':
      return { ...base, version: c.target_union === 'version' ? toNumber(c.version) : 0 };
    case 'CREATE':
      return { ...base, createRevision: c.target_union === 'create_revision' ? toNumber(c.create_revision) : 0 };
    case 'MOD':
      return { ...base, modRevision: c.target_union === 'mod_revision' ? toNumber(c.mod_revision) : 0 };
    case 'VALUE':
      return { ...base, value: c.target_union === 'value' ? c.value : new Uint8Array(0) };
    case 'LEASE':
      return { ...base, lease: c.target_union === 'lease' ? toBigint(c.lease) : 0n };
  }
}

/** An op with no member of the oneof set is what etcd calls "key not found" (its checkRequestOp default). */
export function toMvccRequestOp(op: pb.RequestOp): mvcc.RequestOp {
  switch (op.request) {
    case 'request_range':
      return { requestRange: toMvccRange(op.request_range) };
    case 'request_put':
      return { requestPut: toMvccPut(op.request_put) };
    case 'request_delete_range':
      return { requestDeleteRange: toMvccDeleteRange(op.request_delete_range) };
    case 'request_txn':
      return { requestTxn: toMvccTxn(op.request_txn) };
    default:
      throw apiError('KEY_NOT_FOUND');
  }
}

export function toMvccTxn(t: pb.TxnRequest): mvcc.TxnRequest {
  return {
    compare: t.compare.map(toMvccCompare),
    success: t.success.map(toMvccRequestOp),
    failure: t.failure.map(toMvccRequestOp),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Responses: mvcc -> wire
// ---------------------------------------------------------------------------------------------------------

type WireHeader = Encodable<pb.ResponseHeader>;

/**
 * A KeyValue on the wire. The Fulcrum extension fields carry the HLCs the store keeps with every version: of the
 * write that created the key's generation and of the write that made this version. They are '0' where the store
 * does not know them (rows written before records carried HLCs, a retry answered from an exactly-once entry
 * stored before then): what a client also reads from a server that does not set them.
 */
export function fromMvccKv(kv: mvcc.KeyValue): Encodable<pb.KeyValue> {
  return {
    key: kv.key,
    create_revision: wire64(kv.createRevision),
    mod_revision: wire64(kv.modRevision),
    version: wire64(kv.version),
    value: kv.value,
    lease: wire64(kv.lease),
    create_hlc: wire64(kv.createHlc ?? NO_HLC),
    mod_hlc: wire64(kv.modHlc ?? NO_HLC),
  };
}

/** Responses nested in a txn carry only their revision, as etcd's do; the outer header is the full one. */
function nestedHeader(revision: number): WireHeader {
  return { revision: wire64(revision) };
}

export function fromMvccRange(r: mvcc.RangeResponse, header: WireHeader): Encodable<pb.RangeResponse> {
  return { header, kvs: r.kvs.map(fromMvccKv), more: r.more, count: wire64(r.count) };
}

export function fromMvccPut(r: mvcc.PutResponse, header: WireHeader): Encodable<pb.PutResponse> {
  return { header, prev_kv: r.prevKv === undefined ? null : fromMvccKv(r.prevKv) };
}

export function fromMvccDeleteRange(r: mvcc.DeleteRangeResponse, header: WireHeader): Encodable<pb.DeleteRangeResponse> {
  return { header, deleted: wire64(r.deleted), prev_kvs: r.prevKvs.map(fromMvccKv) };
}

export function fromMvccTxn(r: mvcc.TxnResponse, header: WireHeader): Encodable<pb.TxnResponse> {
  return { header, succeeded: r.succeeded, responses: r.responses.map(fromMvccResponseOp) };
}

function fromMvccResponseOp(op: mvcc.ResponseOp): Encodable<pb.ResponseOp> {
  if ('responseRange' in op) return { response_range: fromMvccRange(op.responseRange, nestedHeader(op.responseRange.header.revision)) };
  if ('responsePut' in op) return { response_put: fromMvccPut(op.responsePut, nestedHeader(op.responsePut.header.revision)) };
  if ('responseDeleteRange' in op) {
    return { response_delete_range: fromMvccDeleteRange(op.responseDeleteRange, nestedHeader(op.responseDeleteRange.header.revision)) };
  }
  return { response_txn: fromMvccTxn(op.responseTxn, nestedHeader(op.responseTxn.header.revision)) };
}

// ---------------------------------------------------------------------------------------------------------
// Request size
// ---------------------------------------------------------------------------------------------------------

/** Protobuf overhead per field, at most: a tag and a length varint (or a 10-byte varint for a number). */
const FIELD_OVERHEAD_BYTES = 11;

/**
 * An upper bound of a decoded request's protobuf size, without encoding it again: the bytes and strings it
 * carries plus a field's worst-case overhead for everything else. It decides etcd's "request is too large"
 * (--max-request-bytes) before a proposal is built; Member.propose checks the encoded command again.
 */
export function requestSizeBound(v: unknown): number {
  if (v instanceof Uint8Array) return v.byteLength + FIELD_OVERHEAD_BYTES;
  if (typeof v === 'string') return Buffer.byteLength(v) + FIELD_OVERHEAD_BYTES;
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + requestSizeBound(x), FIELD_OVERHEAD_BYTES);
  if (typeof v === 'object' && v !== null) {
    // for-in over own keys rather than Object.values: no array per object of every request.
    let n = FIELD_OVERHEAD_BYTES;
    for (const k in v) if (Object.hasOwn(v, k)) n += requestSizeBound((v as Record<string, unknown>)[k]);
    return n;
  }
  return FIELD_OVERHEAD_BYTES;
}

// ---------------------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------------------

/** What etcd clients send with WithRequireLeader: fail fast instead of waiting when the member has no leader. */
export const REQUIRE_LEADER_KEY = 'hasleader';
/** Fulcrum's exactly-once header: `<client-id>:<seq>` (the client id may itself contain ':'; seq follows the last). */
export const REQUEST_ID_KEY = 'fulcrum-request-id';
const REQUEST_ID_PATTERN = /^(.+):(\d{1,16})$/;

const NO_IDENTITY: { readonly clientId?: string; readonly seq?: number } = Object.freeze({});

export function requiresLeader(md: MetadataReader): boolean {
  return md.get(REQUIRE_LEADER_KEY).some((v) => String(v) === 'true');
}

/**
 * The exactly-once identity of a mutating request, or {} without the header. The state machine validates the
 * client id further (length, unicode) and answers a retry with the first attempt's response.
 */
export function requestIdentity(md: MetadataReader): { readonly clientId?: string; readonly seq?: number } {
  const values = md.get(REQUEST_ID_KEY);
  if (values.length === 0) return NO_IDENTITY;
  const raw = values.length === 1 ? String(values[0]) : '';
  const m = REQUEST_ID_PATTERN.exec(raw);
  const seq = m === null ? NaN : Number(m[2]);
  if (m === null || !Number.isSafeInteger(seq)) {
    throw apiError('INVALID_ARGUMENT', `fulcrum: malformed ${REQUEST_ID_KEY} ${JSON.stringify(raw)}: want <client-id>:<seq>`);
  }
  return { clientId: m[1]!, seq };
}
