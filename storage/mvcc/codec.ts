// The store's bytes on the Backend. Everything here is pure and deterministic: the same revision and key-value
// encode to the same bytes on every member, which is what makes backend dumps and HashKV comparable.
//
//   k/<main u64 BE><sub u64 BE>  ->  record        one row per revision (puts and tombstones)
//   m/compact_scheduled          ->  u64 BE        the compact revision the index already obeys
//   m/compact_finished           ->  u64 BE        the compact revision whose physical deletion completed
//
// Big-endian revisions make the backend's key order the revision order, so history is one forward scan.
import { assert } from '../../raft/errors.js';
import { NO_HLC, NO_LEASE, type KeyValue } from './types.js';
import { crc32c } from '../crc32c.js';
import { batchBytes, u32At, writeU32 } from '../hlc/section.js';

export const REVISION_PREFIX = Uint8Array.from([0x6b, 0x2f]); // "k/"
export const META_PREFIX = Uint8Array.from([0x6d, 0x2f]); // "m/"
export const META_COMPACT_SCHEDULED = metaKey('compact_scheduled');
export const META_COMPACT_FINISHED = metaKey('compact_finished');

const REVISION_KEY_BYTES = REVISION_PREFIX.length + 16;
/**
 * Record formats. Format 2 (written now) adds the HLC of the key's creation and of this change after the lease.
 * Format 1 (no HLCs) is still read, with both HLCs as 0 ("unknown"), so data written before the change stays
 * readable: rows are never rewritten in place, so a store holds both formats until compaction drops the old rows.
 * A row's bytes depend only on its format and fields, so members that applied the same log agree either way.
 */
const RECORD_FORMAT_V1 = 1;
const RECORD_FORMAT_V2 = 2;
const RECORD_FORMAT = RECORD_FORMAT_V2;
const FLAG_TOMBSTONE = 1;
/** format, flags, key length */
const RECORD_HEAD_BYTES = 1 + 1 + 4;
/** Offsets within the fields that follow the key (the same in both formats up to the lease). */
const F_CREATE = 0;
const F_MOD = 8;
const F_VERSION = 16;
const F_LEASE = 24;
/** Format 2 only: the create and mod HLCs (u64 BE each). */
const F_CREATE_HLC = 32;
const F_MOD_HLC = 40;
/** create, mod, version, lease, value length */
const RECORD_FIELDS_BYTES_V1 = 8 + 8 + 8 + 8 + 4;
/** create, mod, version, lease, create HLC, mod HLC, value length */
const RECORD_FIELDS_BYTES_V2 = 8 + 8 + 8 + 8 + 8 + 8 + 4;
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

// Fields are written byte by byte rather than through a DataView: a DataView needs the array's ArrayBuffer, and
// asking a small (on-heap) typed array for it makes V8 move the bytes off the heap, which cost more than the write.

function writeU64(out: Uint8Array, at: number, n: number): void {
  // A plain test before assert: a message closure per field was measurable on the apply path.
  if (!(Number.isSafeInteger(n) && n >= 0)) assert(false, `u64 field out of range: ${n}`);
  writeU32(out, at, Math.floor(n / U32));
  writeU32(out, at + 4, n % U32);
}

/** Bigints go through this view, then their 8 bytes are copied out. */
const BIGINT_SCRATCH = new DataView(new ArrayBuffer(8));

function writeScratch(out: Uint8Array, at: number): void {
  for (let i = 0; i < 8; i++) out[at + i] = BIGINT_SCRATCH.getUint8(i);
}

function readU64(view: DataView, offset: number): number {
  return view.getUint32(offset) * U32 + view.getUint32(offset + 4);
}

export function encodeU64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  writeU64(out, 0, n);
  return out;
}

export function decodeU64(bytes: Uint8Array): number {
  assert(bytes.length === 8, () => `u64 value of ${bytes.length} bytes`);
  return readU64(new DataView(bytes.buffer, bytes.byteOffset, 8), 0);
}

export function revisionKey(main: number, sub: number): Uint8Array {
  const out = batchBytes(REVISION_KEY_BYTES);
  out[0] = REVISION_PREFIX[0]!;
  out[1] = REVISION_PREFIX[1]!;
  writeU64(out, REVISION_PREFIX.length, main);
  writeU64(out, REVISION_PREFIX.length + 8, sub);
  return out;
}

export function decodeRevisionKey(key: Uint8Array): Revision {
  assert(key.length === REVISION_KEY_BYTES && key[0] === REVISION_PREFIX[0] && key[1] === REVISION_PREFIX[1], 'not a revision key');
  return { main: u64At(key, REVISION_PREFIX.length), sub: u64At(key, REVISION_PREFIX.length + 8) };
}

// Byte-level readers for the hot decoders (a restart decodes every row once): no DataView is allocated per call.

/** A big-endian u64 as a number (revisions, versions: far below 2^53). */
function u64At(b: Uint8Array, o: number): number {
  return u32At(b, o) * U32 + u32At(b, o + 4);
}

/** A big-endian 64-bit field as a bigint, through the shared scratch view (8 byte copies, no allocation). */
function bigU64At(b: Uint8Array, o: number, signed: boolean): bigint {
  for (let i = 0; i < 8; i++) BIGINT_SCRATCH.setUint8(i, b[o + i]!);
  return signed ? BIGINT_SCRATCH.getBigInt64(0) : BIGINT_SCRATCH.getBigUint64(0);
}

/** True when the 8 bytes at `o` are all zero (NO_LEASE, NO_HLC): no bigint needs to be made for them. */
function zero64At(b: Uint8Array, o: number): boolean {
  return (b[o]! | b[o + 1]! | b[o + 2]! | b[o + 3]! | b[o + 4]! | b[o + 5]! | b[o + 6]! | b[o + 7]!) === 0;
}

// ---- records: one key-value version (or tombstone), checksummed

/**
 * A row's value. A tombstone keeps the key, the deleting revision as modRevision and the deleting write's HLC as
 * modHlc; its other fields are zero, as etcd stores a tombstone as a KeyValue holding only the key.
 */
export interface RevisionRecord {
  readonly tombstone: boolean;
  /** Both HLCs are present in a record (NO_HLC when unknown), so everything read from the store carries them. */
  readonly kv: Required<KeyValue>;
}

export function encodeRecord(record: RevisionRecord): Uint8Array {
  const { kv } = record;
  const size = RECORD_HEAD_BYTES + kv.key.length + RECORD_FIELDS_BYTES_V2 + kv.value.length + RECORD_CRC_BYTES;
  const out = new Uint8Array(size);
  let o = 0;
  out[o++] = RECORD_FORMAT;
  out[o++] = record.tombstone ? FLAG_TOMBSTONE : 0;
  writeU32(out, o, kv.key.length);
  o += 4;
  out.set(kv.key, o);
  o += kv.key.length;
  writeU64(out, o + F_CREATE, kv.createRevision);
  writeU64(out, o + F_MOD, kv.modRevision);
  writeU64(out, o + F_VERSION, kv.version);
  BIGINT_SCRATCH.setBigInt64(0, kv.lease);
  writeScratch(out, o + F_LEASE);
  writeHlc(out, o + F_CREATE_HLC, kv.createHlc);
  writeHlc(out, o + F_MOD_HLC, kv.modHlc);
  writeU32(out, o + RECORD_FIELDS_BYTES_V2 - 4, kv.value.length);
  o += RECORD_FIELDS_BYTES_V2;
  out.set(kv.value, o);
  o += kv.value.length;
  writeU32(out, o, crc32c(out, 0, 0, o));
  assert(o + RECORD_CRC_BYTES === size, 'record size');
  return out;
}

/**
 * The value inside a record encodeRecord made for a key of `keyLength` bytes and a value of `valueLength`, as a
 * view (no copy): a put's key-value then shares the record's bytes instead of holding a copy of its own.
 */
export function recordValueView(record: Uint8Array, keyLength: number, valueLength: number): Uint8Array {
  const start = RECORD_HEAD_BYTES + keyLength + RECORD_FIELDS_BYTES_V2;
  assert(record[0] === RECORD_FORMAT_V2 && start + valueLength + RECORD_CRC_BYTES === record.length, 'record value view: not a record of these lengths');
  return record.subarray(start, start + valueLength);
}

/** The key inside a record encodeRecord made, as a view (no copy), as recordValueView gives its value. */
export function recordKeyView(record: Uint8Array, keyLength: number): Uint8Array {
  assert(record[0] === RECORD_FORMAT_V2 && u32At(record, 2) === keyLength, 'record key view: not a record of this key length');
  return record.subarray(RECORD_HEAD_BYTES, RECORD_HEAD_BYTES + keyLength);
}

/** The largest HLC a record holds: HLCs are unsigned 64-bit values (wall ms in bits 63..16, logical below). */
const HLC_MAX = (1n << 64n) - 1n;

function writeHlc(out: Uint8Array, at: number, hlc: bigint): void {
  if (!(hlc >= 0n && hlc <= HLC_MAX)) assert(false, `hlc out of range: ${hlc}`);
  BIGINT_SCRATCH.setBigUint64(0, hlc);
  writeScratch(out, at);
}

/** A checked record's view and the size of its fixed fields (which depends on its format). */
interface CheckedRecord {
  readonly view: DataView;
  readonly format: number;
  readonly fieldsBytes: number;
}

function checkRecord(bytes: Uint8Array): CheckedRecord {
  const fieldsBytes = checkedFieldsBytes(bytes);
  return { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), format: bytes[0]!, fieldsBytes };
}

/**
 * Check a record's format, that its key and fixed fields fit, and its CRC, byte by byte (no DataView: a restart
 * checks every row); returns the size of its fixed fields, which depends on the format.
 */
function checkedFieldsBytes(bytes: Uint8Array): number {
  assert(bytes.length >= RECORD_HEAD_BYTES + RECORD_FIELDS_BYTES_V1 + RECORD_CRC_BYTES, 'mvcc record truncated');
  const fieldsBytes = fieldsBytesOf(bytes[0]!);
  assert(RECORD_HEAD_BYTES + u32At(bytes, 2) + fieldsBytes + RECORD_CRC_BYTES <= bytes.length, 'mvcc record truncated');
  const body = bytes.length - RECORD_CRC_BYTES;
  assert(u32At(bytes, body) === crc32c(bytes, 0, 0, body), 'mvcc record checksum mismatch');
  return fieldsBytes;
}

/** The record's HLCs; a format-1 record has none (0: unknown). */
function readHlcs(r: CheckedRecord, o: number): { createHlc: bigint; modHlc: bigint } {
  if (r.format === RECORD_FORMAT_V1) return { createHlc: NO_HLC, modHlc: NO_HLC };
  return { createHlc: r.view.getBigUint64(o + F_CREATE_HLC), modHlc: r.view.getBigUint64(o + F_MOD_HLC) };
}

/** The parts of a record the index needs on reopen, without copying the value. */
export interface RecordHead {
  readonly tombstone: boolean;
  /** The key as a latin1 string (one char per byte: string order is byte order). */
  readonly keyString: string;
  readonly createRevision: number;
  readonly version: number;
  readonly lease: bigint;
  /** The HLC of the write that created this generation of the key (0 in format-1 records and tombstones). */
  readonly createHlc: bigint;
}

/**
 * The head of a record, checked like decodeRecord (format, lengths, CRC) but read byte by byte: a restart decodes
 * every row of the store through here, and a DataView and two result objects per row were a tenth of it.
 */
export function decodeRecordHead(bytes: Uint8Array): RecordHead {
  checkedFieldsBytes(bytes);
  const o = RECORD_HEAD_BYTES + u32At(bytes, 2);
  const format = bytes[0]!;
  return {
    tombstone: (bytes[1]! & FLAG_TOMBSTONE) !== 0,
    keyString: bytesToKeyString(bytes.subarray(RECORD_HEAD_BYTES, o)),
    createRevision: u64At(bytes, o + F_CREATE),
    version: u64At(bytes, o + F_VERSION),
    lease: zero64At(bytes, o + F_LEASE) ? NO_LEASE : bigU64At(bytes, o + F_LEASE, true),
    createHlc: format === RECORD_FORMAT_V1 || zero64At(bytes, o + F_CREATE_HLC) ? NO_HLC : bigU64At(bytes, o + F_CREATE_HLC, false),
  };
}

/** Decode a record; key and value are copies, safe to hand to callers. */
export function decodeRecord(bytes: Uint8Array): RevisionRecord {
  return recordOf(bytes, checkRecord(bytes), copyBytes);
}

/**
 * Check a record read from the backend (format, lengths, CRC) once, as it comes into memory, so that later
 * decodes of it can be viewRecord's.
 */
export function verifyRecord(bytes: Uint8Array): void {
  checkedFieldsBytes(bytes);
}

/**
 * Decode a record already checked (verifyRecord) or encoded here, with no CRC pass and no copies: key and value
 * view the record's bytes, which nothing writes once made (as the key-values of watch events already view the
 * records stagePut encodes). A put overwriting a key decodes the key's current row for its event's prev_kv; the
 * checksum and the two copies were ~4 us of every member's apply per put at 1,000 in flight (thirty-fifth
 * session).
 */
export function viewRecord(bytes: Uint8Array): RevisionRecord {
  const format = bytes[0]!;
  return recordOf(bytes, { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), format, fieldsBytes: fieldsBytesOf(format) }, viewBytes);
}

/** The size of a record's fixed fields, which depends on its format; an unknown format is refused. */
function fieldsBytesOf(format: number): number {
  assert(format === RECORD_FORMAT_V1 || format === RECORD_FORMAT_V2, () => `mvcc record format ${format}`);
  return format === RECORD_FORMAT_V1 ? RECORD_FIELDS_BYTES_V1 : RECORD_FIELDS_BYTES_V2;
}

/** A plain Uint8Array over bytes[start, end) (a backend row is a Buffer, whose subarray would be a Buffer too). */
function viewBytes(bytes: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start);
}

function recordOf(bytes: Uint8Array, r: CheckedRecord, part: (bytes: Uint8Array, start: number, end: number) => Uint8Array): RevisionRecord {
  const { view } = r;
  const keyLength = view.getUint32(2);
  let o = RECORD_HEAD_BYTES;
  assert(o + keyLength + r.fieldsBytes + RECORD_CRC_BYTES <= bytes.length, 'mvcc record truncated');
  const key = part(bytes, o, o + keyLength);
  o += keyLength;
  const valueLength = view.getUint32(o + r.fieldsBytes - 4);
  const valueStart = o + r.fieldsBytes;
  assert(valueStart + valueLength + RECORD_CRC_BYTES === bytes.length, 'mvcc record length mismatch');
  const lease = view.getBigInt64(o + F_LEASE);
  const { createHlc, modHlc } = readHlcs(r, o);
  return {
    tombstone: (view.getUint8(1) & FLAG_TOMBSTONE) !== 0,
    kv: {
      key,
      createRevision: readU64(view, o + F_CREATE),
      modRevision: readU64(view, o + F_MOD),
      version: readU64(view, o + F_VERSION),
      lease: lease === NO_LEASE ? NO_LEASE : lease,
      value: part(bytes, valueStart, valueStart + valueLength),
      createHlc,
      modHlc,
    },
  };
}

/** Up to this many bytes are copied one by one: set() needs a view, and a view of a small array its ArrayBuffer. */
const COPY_LOOP_BYTES_MAX = 64;

/** A plain Uint8Array copy of bytes[start, end), even when bytes is a Buffer (whose slice() does not copy). */
export function copyBytes(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  const n = end - start;
  const out = new Uint8Array(n);
  if (n <= COPY_LOOP_BYTES_MAX) for (let i = 0; i < n; i++) out[i] = bytes[start + i]!;
  else out.set(start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end));
  return out;
}

// ---- keys in memory

/** Keys up to this long are made into strings from their char codes directly (see bytesToKeyString). */
const KEY_STRING_DIRECT_BYTES_MAX = 256;

/**
 * Keys live in memory as latin1 strings: one char per byte, so JavaScript's string order is the bytes' order,
 * and a one-byte string costs far less than a Uint8Array object per key. A short key is turned into one from its
 * bytes as char codes (the same string as latin1 decoding): going through a Buffer needs the key's ArrayBuffer,
 * which V8 has to make first for a small key it holds on the heap.
 */
export function bytesToKeyString(key: Uint8Array): string {
  if (key.byteLength <= KEY_STRING_DIRECT_BYTES_MAX) return String.fromCharCode.apply(null, key as unknown as number[]);
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

export function keyStringToBytes(key: string): Uint8Array {
  const b = Buffer.from(key, 'latin1');
  return copyBytes(b);
}
