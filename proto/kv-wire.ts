// KV.Put's request and response, KV.Range's response and the all-puts KV.Txn response by hand (proto/wire.ts), in
// front of protobufjs: the calls the leader serves most, where protobufjs's decode-then-toObject and
// fromObject-then-encode allocated a twentieth of what a put and a sixth of what a get cost the leader
// (bench:profile --heap-prof). They give exactly what protobufjs gives (the tests compare them on random messages);
// anything off the common shape goes to protobufjs itself:
//   - a request whose fields are not in canonical form (a known field with another wire type, a group, a bad tag)
//     is decoded by protobufjs, so malformed input fails, or succeeds, exactly as it did;
//   - a response with a prev_kv, or fields of a type this file does not expect, is encoded by protobufjs (for Range,
//     the handler then builds protobufjs's objects: encodeRangeResponse answers undefined).
import type { Encodable, PutRequest, PutResponse, ResponseHeader, TxnResponse } from './types.js';
import { ProtoReader, ProtoWireError, ProtoWriter, UNSAFE, varint64Size, varintSize, WIRE_LENGTH_DELIMITED, WIRE_VARINT } from './wire.js';

/** A long.js Long, or any object protobufjs's Long.fromValue reads as one (its low and high 32 bits). */
interface LongLike {
  readonly low: number;
  readonly high: number;
}

function isLongLike(v: unknown): v is LongLike {
  return typeof v === 'object' && v !== null && typeof (v as LongLike).low === 'number' && typeof (v as LongLike).high === 'number';
}

/** What protobufjs's toObject gives an absent bytes field with `defaults: true`: an empty Buffer. */
const NO_BYTES = Buffer.alloc(0);
const TWO_POW_32 = 0x1_0000_0000;
/** A uint32's longest varint. */
const UINT32_VARINT_BYTES_MAX = 5;

// ---- PutRequest: key = 1 (bytes), value = 2 (bytes), lease = 3 (int64), prev_kv = 4, ignore_value = 5, ignore_lease = 6 (bool)

/** The request as LOADER_OPTIONS decode it (longs as decimal strings, every field present), or undefined: ask protobufjs. */
export function decodePutRequest(buf: Buffer): PutRequest | undefined {
  const r = new ProtoReader(buf);
  let key: Buffer = NO_BYTES;
  let value: Buffer = NO_BYTES;
  let lease = '0';
  let prevKv = false;
  let ignoreValue = false;
  let ignoreLease = false;
  try {
    while (!r.done()) {
      const tag = r.tag();
      const field = tag >>> 3;
      const wireType = tag & 7;
      if (field === 1 || field === 2) {
        if (wireType !== WIRE_LENGTH_DELIMITED) return undefined;
        const b = r.bytes() as Buffer;
        if (field === 1) key = b;
        else value = b;
      } else if (field >= 3 && field <= 6) {
        if (wireType !== WIRE_VARINT) return undefined;
        if (field === 3) lease = int64String(r);
        else {
          const v = boolOf(r);
          if (v === null) return undefined;
          if (field === 4) prevKv = v;
          else if (field === 5) ignoreValue = v;
          else ignoreLease = v;
        }
      } else r.skip(wireType);
    }
  } catch (e) {
    if (e instanceof ProtoWireError) return undefined;
    throw e;
  }
  return { key, value, lease, prev_kv: prevKv, ignore_value: ignoreValue, ignore_lease: ignoreLease } as PutRequest;
}

/** An int64 varint as protobufjs's Long prints it: signed, the value's low 64 bits. */
export function int64String(r: ProtoReader): string {
  const n = r.uint();
  if (n !== UNSAFE) return String(n);
  return BigInt.asIntN(64, r.lastVarint64()).toString();
}

/**
 * The bool proto-loader's protobufjs (7.x, which the KV service decodes with) reads: the varint as a uint32, tested
 * against 0, so only its low 32 bits count (protobufjs 8 tests every bit: the tests compare with the one in use).
 * A varint longer than 5 bytes it does not parse at all (it steps over 5 more bytes, wherever they belong), so such
 * a message goes to it: null.
 */
function boolOf(r: ProtoReader): boolean | null {
  const n = r.uint();
  if (r.lastVarintBytes() > UINT32_VARINT_BYTES_MAX) return null;
  return n % TWO_POW_32 !== 0;
}

// ---- PutResponse: header = 1 (ResponseHeader); prev_kv = 2 (KeyValue, left to protobufjs)
// ---- ResponseHeader: cluster_id = 1, member_id = 2, revision = 3 (int64), raft_term = 4, hlc = 1000 (uint64)

export type Field64 = number | LongLike | undefined;

/** The response's bytes, the same protobufjs writes (a set field is written even when 0), or undefined: ask protobufjs. */
export function encodePutResponse(res: Encodable<PutResponse>): Buffer | undefined {
  if (res.prev_kv !== null && res.prev_kv !== undefined) return undefined;
  const h = res.header as unknown as Record<string, unknown> | null | undefined;
  if (h === null || h === undefined) return Buffer.alloc(0);
  const header = headerOf(h);
  if (header === undefined) return undefined;
  const w = new ProtoWriter(headerFieldSize(header));
  writeHeader(w, header);
  return w.finish();
}

// ---- TxnResponse: header = 1, succeeded = 2 (bool), responses = 3 (repeated ResponseOp)
// ---- ResponseOp, oneof response: response_range = 1, response_put = 2, response_delete_range = 3, response_txn = 4

/**
 * A TxnResponse whose every op answered a put without a prev_kv (a bulk load in transactions, the write of a
 * compare-and-set), written as protobufjs writes it; undefined for anything else (a range, a delete, a nested txn, a
 * prev_kv, a header value this file does not write): ask protobufjs. protobufjs turned each op's header into a
 * message through fromObject and wrote it again, for every one of up to --max-txn-ops puts.
 */
export function encodeTxnResponse(res: Encodable<TxnResponse>): Buffer | undefined {
  const h = res.header as unknown as Record<string, unknown> | null | undefined;
  if (h === null || h === undefined || typeof res.succeeded !== 'boolean' || !Array.isArray(res.responses)) return undefined;
  const header = headerOf(h);
  if (header === undefined) return undefined;
  const puts: Array<HeaderFields | undefined> = [];
  // The header, then succeeded: protobufjs writes a bool that is set, false included.
  let bytes = headerFieldSize(header) + 2;
  for (const op of res.responses as unknown[]) {
    const put = putOp(op);
    if (put === null) return undefined;
    puts.push(put);
    const opBytes = putOpBytes(put);
    bytes += 1 + varintSize(opBytes) + opBytes;
  }
  const w = new ProtoWriter(bytes);
  writeHeader(w, header);
  w.tag(2, WIRE_VARINT);
  w.uint(res.succeeded ? 1 : 0);
  for (const put of puts) {
    w.tag(3, WIRE_LENGTH_DELIMITED);
    w.uint(putOpBytes(put));
    w.tag(2, WIRE_LENGTH_DELIMITED);
    w.uint(putBytes(put));
    if (put !== undefined) writeHeader(w, put);
  }
  return w.finish();
}

/**
 * An op that holds a response_put alone, without a prev_kv: its header's fields (undefined: no header), or null
 * when the op is anything else.
 */
function putOp(op: unknown): HeaderFields | undefined | null {
  if (typeof op !== 'object' || op === null) return null;
  const o = op as Record<string, unknown>;
  // protobufjs reads a oneof member as set when it is neither null nor undefined (`!= null`).
  if (isSet(o.response_range) || isSet(o.response_delete_range) || isSet(o.response_txn)) return null;
  const put = o.response_put as Record<string, unknown> | null | undefined;
  if (put === null || put === undefined || typeof put !== 'object' || isSet(put.prev_kv)) return null;
  const h = put.header as Record<string, unknown> | null | undefined;
  if (h === null || h === undefined) return undefined;
  return headerOf(h) ?? null;
}

function isSet(v: unknown): boolean {
  return v !== null && v !== undefined;
}

/** A PutResponse's body: its header field, if any. */
function putBytes(h: HeaderFields | undefined): number {
  return h === undefined ? 0 : headerFieldSize(h);
}

/** A ResponseOp's body: field 2, the PutResponse. */
function putOpBytes(h: HeaderFields | undefined): number {
  const n = putBytes(h);
  return 1 + varintSize(n) + n;
}

export interface HeaderFields {
  readonly values: readonly [Field64, Field64, Field64, Field64, Field64];
  /** Bytes of the header message's body. */
  readonly bytes: number;
}

/**
 * A ResponseHeader's fields (cluster_id, member_id, revision, raft_term, hlc), or undefined: one for protobufjs.
 * `zeros`: 'write' as protobufjs's encode writes a plain object (a set field even when 0), 'omit' as it writes a
 * message made by fromObject (a 0 left out: the watch responses were written that way).
 */
export function headerOf(h: Record<string, unknown>, zeros: 'write' | 'omit' = 'write'): HeaderFields | undefined {
  const values = [field64(h.cluster_id), field64(h.member_id), field64(h.revision), field64(h.raft_term), field64(h.hlc)] as const;
  if (values.some((v) => v === null)) return undefined;
  const v = (zeros === 'write' ? values : values.map((x) => (isZero(x as Field64) ? undefined : x))) as unknown as HeaderFields['values'];
  return { values: v, bytes: size64(1, v[0]) + size64(1, v[1]) + size64(1, v[2]) + size64(1, v[3]) + size64(2, v[4]) };
}

function isZero(v: Field64): boolean {
  return typeof v === 'number' ? v === 0 : v !== undefined && v.low === 0 && v.high === 0;
}

/** Bytes of field 1 of a response, its header: the tag, the length and the body. */
export function headerFieldSize(h: HeaderFields): number {
  return 1 + varintSize(h.bytes) + h.bytes;
}

/** Field 1 of a response: its header. */
export function writeHeader(w: ProtoWriter, h: HeaderFields): void {
  w.tag(1, WIRE_LENGTH_DELIMITED);
  w.uint(h.bytes);
  write64(w, 1, h.values[0]);
  write64(w, 2, h.values[1]);
  write64(w, 3, h.values[2]);
  write64(w, 4, h.values[3]);
  write64(w, 1000, h.values[4]);
}

/** A 64-bit header field: absent (undefined), a value to write, or null: one to leave to protobufjs (uint64Of). */
export function field64(v: unknown): Field64 | null {
  return v === undefined || v === null ? undefined : uint64Of(v);
}

export function size64(tagBytes: number, v: Field64): number {
  if (v === undefined) return 0;
  return tagBytes + (typeof v === 'number' ? varintSize(v) : varint64Size(v.low, v.high));
}

export function write64(w: ProtoWriter, field: number, v: Field64): void {
  if (v === undefined) return;
  w.tag(field, WIRE_VARINT);
  if (typeof v === 'number') w.uint(v);
  else w.uint64Bits(v.low, v.high);
}

/**
 * A 64-bit field's value as the varint protobufjs writes for it: a safe non-negative number as it is; a Long by its
 * bits; a decimal string of at most 19 digits. null: any other value, which protobufjs converts by rules of its own
 * (a negative number is 0 in a uint64 field and two's complement in an int64 one; a bigint; a fraction).
 */
function uint64Of(v: unknown): number | LongLike | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : null;
  if (typeof v === 'string') return /^\d{1,19}$/.test(v) ? bitsOf(BigInt(v)) : null;
  if (isLongLike(v)) return v;
  return null;
}

/** An unsigned 64-bit value's two 32-bit halves, as a Long holds them. */
export function bitsOf(v: bigint): LongLike {
  return { low: Number(BigInt.asUintN(32, v)), high: Number(BigInt.asUintN(32, v >> 32n)) };
}

// ---- RangeResponse: header = 1, kvs = 2 (repeated KeyValue), more = 3 (bool), count = 4 (int64)
// ---- KeyValue: key = 1, create_revision = 2, mod_revision = 3, version = 4, value = 5, lease = 6, create_hlc = 1000,
//      mod_hlc = 1001

/** What encodeRangeResponse writes from: the store's answer, not the wire objects fromMvccRange makes of it. */
export interface RangeAnswer {
  readonly kvs: ReadonlyArray<{
    readonly key: Uint8Array;
    readonly createRevision: number;
    readonly modRevision: number;
    readonly version: number;
    readonly value: Uint8Array;
    readonly lease: bigint;
    readonly createHlc?: bigint;
    readonly modHlc?: bigint;
  }>;
  readonly more: boolean;
  readonly count: number;
}

/**
 * A RangeResponse's bytes straight from the store's answer, the same protobufjs writes for fromMvccRange(r, header)
 * (every field written, zeros included), without the wire objects, Longs and protobufjs messages in between.
 * Undefined: a header or a number this file does not write (a revision or count that is not a safe non-negative
 * integer); the caller encodes through protobufjs then.
 */
export function encodeRangeResponse(header: Encodable<ResponseHeader>, r: RangeAnswer): Buffer | undefined {
  const h = headerOf(header as unknown as Record<string, unknown>);
  if (h === undefined || !isUint(r.count)) return undefined;
  let bytes = headerFieldSize(h) + 2 + 1 + varintSize(r.count);
  const sizes: number[] = [];
  for (const kv of r.kvs) {
    if (!isUint(kv.createRevision) || !isUint(kv.modRevision) || !isUint(kv.version) || kv.lease < 0n) return undefined;
    const n = keyValueBytes(kv);
    sizes.push(n);
    bytes += 1 + varintSize(n) + n;
  }
  const w = new ProtoWriter(bytes);
  writeHeader(w, h);
  r.kvs.forEach((kv, i) => {
    w.tag(2, WIRE_LENGTH_DELIMITED);
    w.uint(sizes[i]!);
    writeKeyValue(w, kv);
  });
  w.tag(3, WIRE_VARINT);
  w.uint(r.more ? 1 : 0);
  w.tag(4, WIRE_VARINT);
  w.uint(r.count);
  return w.finish();
}

function isUint(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0;
}

type Kv = RangeAnswer['kvs'][number];

function keyValueBytes(kv: Kv): number {
  return (
    1 + varintSize(kv.key.length) + kv.key.length +
    1 + varintSize(kv.createRevision) + 1 + varintSize(kv.modRevision) + 1 + varintSize(kv.version) +
    1 + varintSize(kv.value.length) + kv.value.length +
    1 + bigVarintSize(kv.lease) + 2 + bigVarintSize(kv.createHlc ?? 0n) + 2 + bigVarintSize(kv.modHlc ?? 0n)
  );
}

function writeKeyValue(w: ProtoWriter, kv: Kv): void {
  w.bytesField(1, kv.key);
  w.tag(2, WIRE_VARINT);
  w.uint(kv.createRevision);
  w.tag(3, WIRE_VARINT);
  w.uint(kv.modRevision);
  w.tag(4, WIRE_VARINT);
  w.uint(kv.version);
  w.bytesField(5, kv.value);
  writeBig(w, 6, kv.lease);
  writeBig(w, 1000, kv.createHlc ?? 0n);
  writeBig(w, 1001, kv.modHlc ?? 0n);
}

/** A uint64 bigint's halves through a scratch view: no bigint arithmetic (each operation would allocate one). */
const SCRATCH = new DataView(new ArrayBuffer(8));
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function bigVarintSize(v: bigint): number {
  if (v <= MAX_SAFE) return varintSize(Number(v));
  SCRATCH.setBigUint64(0, v);
  return varint64Size(SCRATCH.getUint32(4), SCRATCH.getUint32(0));
}

function writeBig(w: ProtoWriter, field: number, v: bigint): void {
  w.tag(field, WIRE_VARINT);
  if (v <= MAX_SAFE) return w.uint(Number(v));
  SCRATCH.setBigUint64(0, v);
  w.uint64Bits(SCRATCH.getUint32(4), SCRATCH.getUint32(0));
}
