// The store's bytes on the Backend. Everything here is pure and deterministic: the same revision and key-value
// encode to the same bytes on every member, which is what makes backend dumps and HashKV comparable.
//
//   k/<main u64 BE><sub u64 BE>  ->  record        one row per revision (puts and tombstones)
//   m/compact_scheduled          ->  u64 BE        the compact revision the index already obeys
//   m/compact_finished           ->  u64 BE        the compact revision whose physical deletion completed
//
// Big-endian revisions make the backend's key order the revision order, so history is one forward scan.
import { assert } from '../../raft/errors.js';
import { NO_LEASE, type KeyValue } from './types.js';
import { crc32c } from '../crc32c.js';

export const REVISION_PREFIX = Uint8Array.from([0x6b, 0x2f]); // "k/"
export const META_PREFIX = Uint8Array.from([0x6d, 0x2f]); // "m/"
export const META_COMPACT_SCHEDULED = metaKey('compact_scheduled');
export const META_COMPACT_FINISHED = metaKey('compact_finished');

const REVISION_KEY_BYTES = REVISION_PREFIX.length + 16;
const RECORD_FORMAT = 1;
const FLAG_TOMBSTONE = 1;
/** format, flags, key length */
const RECORD_HEAD_BYTES = 1 + 1 + 4;
/** create, mod, version, lease, value length */
const RECORD_FIELDS_BYTES = 8 + 8 + 8 + 8 + 4;
const RECORD_CRC_BYTES = 4;
const U32 = 0x1_0000_0000;

function metaKey(name: string): Uint8Array {
  return Uint8Array.from([...META_PREFIX, ...Buffer.from(name, 'latin1')]);
}

// CRC-32C comes from storage/crc32c.ts, shared with the WAL and the snapshot files.
export { crc32c };

// ---- revisions

/** A point in the store's history: the main revision of a write transaction and the change's index within it. */
export interface Revision {
  readonly main: number;
  readonly sub: number;
}

export function compareRevisions(a: Revision, b: Revision): number {
  return a.main !== b.main ? a.main - b.main : a.sub - b.sub;
}

function writeU64(view: DataView, offset: number, n: number): void {
  assert(Number.isSafeInteger(n) && n >= 0, () => `u64 field out of range: ${n}`);
  view.setUint32(offset, Math.floor(n / U32));
  view.setUint32(offset + 4, n % U32);
}

function readU64(view: DataView, offset: number): number {
  return view.getUint32(offset) * U32 + view.getUint32(offset + 4);
}

export function encodeU64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  writeU64(new DataView(out.buffer), 0, n);
  return out;
}

export function decodeU64(bytes: Uint8Array): number {
  assert(bytes.length === 8, () => `u64 value of ${bytes.length} bytes`);
  return readU64(new DataView(bytes.buffer, bytes.byteOffset, 8), 0);
}

export function revisionKey(main: number, sub: number): Uint8Array {
  const out = new Uint8Array(REVISION_KEY_BYTES);
  out.set(REVISION_PREFIX, 0);
  const view = new DataView(out.buffer);
  writeU64(view, REVISION_PREFIX.length, main);
  writeU64(view, REVISION_PREFIX.length + 8, sub);
  return out;
}

export function decodeRevisionKey(key: Uint8Array): Revision {
  assert(key.length === REVISION_KEY_BYTES && key[0] === REVISION_PREFIX[0] && key[1] === REVISION_PREFIX[1], 'not a revision key');
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  return { main: readU64(view, REVISION_PREFIX.length), sub: readU64(view, REVISION_PREFIX.length + 8) };
}

// ---- records: one key-value version (or tombstone), checksummed

/**
 * A row's value. A tombstone keeps the key and the deleting revision as modRevision; its other fields are zero,
 * as etcd stores a tombstone as a KeyValue holding only the key.
 */
export interface RevisionRecord {
  readonly tombstone: boolean;
  readonly kv: KeyValue;
}

export function encodeRecord(record: RevisionRecord): Uint8Array {
  const { kv } = record;
  const size = RECORD_HEAD_BYTES + kv.key.length + RECORD_FIELDS_BYTES + kv.value.length + RECORD_CRC_BYTES;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let o = 0;
  view.setUint8(o++, RECORD_FORMAT);
  view.setUint8(o++, record.tombstone ? FLAG_TOMBSTONE : 0);
  view.setUint32(o, kv.key.length);
  o += 4;
  out.set(kv.key, o);
  o += kv.key.length;
  writeU64(view, o, kv.createRevision);
  writeU64(view, o + 8, kv.modRevision);
  writeU64(view, o + 16, kv.version);
  view.setBigInt64(o + 24, kv.lease);
  view.setUint32(o + 32, kv.value.length);
  o += RECORD_FIELDS_BYTES;
  out.set(kv.value, o);
  o += kv.value.length;
  view.setUint32(o, crc32c(out.subarray(0, o)));
  assert(o + RECORD_CRC_BYTES === size, 'record size');
  return out;
}

function checkRecord(bytes: Uint8Array): DataView {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert(bytes.length >= RECORD_HEAD_BYTES + RECORD_FIELDS_BYTES + RECORD_CRC_BYTES, 'mvcc record truncated');
  assert(view.getUint8(0) === RECORD_FORMAT, () => `mvcc record format ${view.getUint8(0)}`);
  const body = bytes.length - RECORD_CRC_BYTES;
  assert(view.getUint32(body) === crc32c(bytes.subarray(0, body)), 'mvcc record checksum mismatch');
  return view;
}

/** The parts of a record the index needs on reopen, without copying the value. */
export interface RecordHead {
  readonly tombstone: boolean;
  /** The key as a latin1 string (one char per byte: string order is byte order). */
  readonly keyString: string;
  readonly createRevision: number;
  readonly version: number;
  readonly lease: bigint;
}

export function decodeRecordHead(bytes: Uint8Array): RecordHead {
  const view = checkRecord(bytes);
  const keyLength = view.getUint32(2);
  const o = RECORD_HEAD_BYTES + keyLength;
  const lease = view.getBigInt64(o + 24);
  return {
    tombstone: (view.getUint8(1) & FLAG_TOMBSTONE) !== 0,
    keyString: bytesToKeyString(bytes.subarray(RECORD_HEAD_BYTES, o)),
    createRevision: readU64(view, o),
    version: readU64(view, o + 16),
    lease: lease === NO_LEASE ? NO_LEASE : lease,
  };
}

/** Decode a record; key and value are copies, safe to hand to callers. */
export function decodeRecord(bytes: Uint8Array): RevisionRecord {
  const view = checkRecord(bytes);
  const keyLength = view.getUint32(2);
  let o = RECORD_HEAD_BYTES;
  const key = copyBytes(bytes, o, o + keyLength);
  o += keyLength;
  const valueLength = view.getUint32(o + 32);
  const valueStart = o + RECORD_FIELDS_BYTES;
  assert(valueStart + valueLength + RECORD_CRC_BYTES === bytes.length, 'mvcc record length mismatch');
  const lease = view.getBigInt64(o + 24);
  return {
    tombstone: (view.getUint8(1) & FLAG_TOMBSTONE) !== 0,
    kv: {
      key,
      createRevision: readU64(view, o),
      modRevision: readU64(view, o + 8),
      version: readU64(view, o + 16),
      lease: lease === NO_LEASE ? NO_LEASE : lease,
      value: copyBytes(bytes, valueStart, valueStart + valueLength),
    },
  };
}

/** A plain Uint8Array copy of bytes[start, end), even when bytes is a Buffer (whose slice() does not copy). */
export function copyBytes(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start).slice();
}

// ---- keys in memory

/**
 * Keys live in memory as latin1 strings: one char per byte, so JavaScript's string order is the bytes' order,
 * and a one-byte string costs far less than a Uint8Array object per key.
 */
export function bytesToKeyString(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

export function keyStringToBytes(key: string): Uint8Array {
  const b = Buffer.from(key, 'latin1');
  return copyBytes(b);
}
