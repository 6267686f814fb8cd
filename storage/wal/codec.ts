// The on-disk records of the write-ahead log. Every record starts with a CRC-32C that covers its position
// (the key) as well as its content, so a value that LevelDB (or a disk) hands back under the wrong key is
// caught as surely as a flipped bit.
//
// Key space (one LevelDB per member, binary keys; the first byte is the record kind):
//   [0x00]                  meta: magic + format version, written when the log is created (and by a migration)
//   [0x02][index u64 BE]    snapshot marker: a snapshot file the log may start from (index, term, conf state)
//   [0x03][index u64 BE]    entry: term, type, data
//   [0x04]                  hard state: term, vote, commit (format 2; format 1 kept it at [0x01])
// Fixed-width big-endian indexes make LevelDB's key order the log order, so a range scan reads the log in order.
// The hard state is rewritten with nearly every batch, so it sorts after every entry: a LevelDB table file then
// spans only the entries it holds and the hard state, and compacting new tables into the level below rewrites
// that level's last file only. At [0x01] every new table spanned the whole log, and each compaction rewrote
// every older file of the level (format 1; `open` moves such a log to format 2, see wal.ts).
//
// Value layouts (integers big-endian):
//   meta      crc u32 | magic "FWAL" | version u32
//   hard      crc u32 | term u64 | vote u64 | commit u64
//   marker    crc u32 | index u64 | term u64 | conf state
//   entry     crc u32 | term u64 | type u8 | data...
//   conf state = voters u32 count | u64 each | learners u32 count | u64 each
import { crc32c } from '../crc32c.js';
import { u32At } from '../hlc/section.js';
import { assert } from '../../raft/errors.js';
import type { ConfState, Entry, EntryType, HardState, SnapshotMetadata } from '../../raft/types.js';

export const KEY_META = 0x00;
/** Format 1's hard state key, read only to move a format 1 log to format 2. */
export const KEY_HARD_STATE_V1 = 0x01;
export const KEY_SNAPSHOT_MARKER = 0x02;
export const KEY_ENTRY = 0x03;
export const KEY_HARD_STATE = 0x04;

export const WAL_MAGIC = 0x4657414c; // "FWAL"
/** The format this code writes. */
export const WAL_FORMAT_VERSION = 2;
/** Formats this code opens: format 1 differs only in where the hard state is kept. */
export const WAL_FORMAT_V1 = 1;

/** Largest membership a conf state may list; bounds the marker and snapshot header sizes. */
export const CONF_STATE_MEMBERS_MAX = 1024;

const CRC_BYTES = 4;
const ENTRY_HEADER_BYTES = CRC_BYTES + 8 + 1;
const U32 = 2 ** 32;

export function putU64(view: DataView, offset: number, v: number): void {
  assert(Number.isSafeInteger(v) && v >= 0, () => `u64 field out of range: ${v}`);
  view.setUint32(offset, Math.floor(v / U32));
  view.setUint32(offset + 4, v >>> 0);
}

export function getU64(view: DataView, offset: number): number {
  return view.getUint32(offset) * U32 + view.getUint32(offset + 4);
}

const viewOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Kind byte and a u64 index. */
const INDEXED_KEY_BYTES = 9;

function indexedKey(kind: number, index: number): Uint8Array {
  const key = new Uint8Array(INDEXED_KEY_BYTES);
  key[0] = kind;
  setU64(key, 1, index);
  return key;
}

export const entryKey = (index: number): Uint8Array => indexedKey(KEY_ENTRY, index);
export const markerKey = (index: number): Uint8Array => indexedKey(KEY_SNAPSHOT_MARKER, index);
export const META_KEY = Uint8Array.of(KEY_META);
export const HARD_STATE_KEY = Uint8Array.of(KEY_HARD_STATE);
export const HARD_STATE_KEY_V1 = Uint8Array.of(KEY_HARD_STATE_V1);

/** The index of an indexed key, or undefined when the key is not of that kind and shape. */
export function indexOfKey(kind: number, key: Uint8Array): number | undefined {
  if (key.length !== INDEXED_KEY_BYTES || key[0] !== kind) return undefined;
  return u64At(key, 1);
}

/** getU64 straight from the bytes: a DataView per record was a fifth of what opening the log spent per entry. */
function u64At(b: Uint8Array, o: number): number {
  return u32At(b, o) * U32 + u32At(b, o + 4);
}

/** The checksum of a record: its key (position) then everything after the CRC field. */
function recordCrc(key: Uint8Array, value: Uint8Array): number {
  return crc32c(value, crc32c(key), CRC_BYTES);
}

function storedCrc(value: Uint8Array): number {
  return ((value[0]! << 24) | (value[1]! << 16) | (value[2]! << 8) | value[3]!) >>> 0;
}

/**
 * Write the record's checksum into its first four bytes. Not read back here: checking each fresh record doubled the
 * checksum work of every save (a tenth of the log's CPU per entry). That sealing and checking agree is what
 * codec.test.ts proves, and open() checks every record it reads.
 */
function seal(key: Uint8Array, value: Uint8Array): Uint8Array {
  const c = recordCrc(key, value);
  value[0] = c >>> 24;
  value[1] = c >>> 16;
  value[2] = c >>> 8;
  value[3] = c;
  return value;
}

export function checksumOk(key: Uint8Array, value: Uint8Array): boolean {
  return value.length >= CRC_BYTES && storedCrc(value) === recordCrc(key, value);
}

/** Big-endian u64 into bytes without a DataView (the entry path runs 100 times per Ready). */
function setU64(b: Uint8Array, offset: number, v: number): void {
  if (!(Number.isSafeInteger(v) && v >= 0)) assert(false, `u64 field out of range: ${v}`);
  const hi = Math.floor(v / U32);
  const lo = v >>> 0;
  b[offset] = hi >>> 24;
  b[offset + 1] = hi >>> 16;
  b[offset + 2] = hi >>> 8;
  b[offset + 3] = hi;
  b[offset + 4] = lo >>> 24;
  b[offset + 5] = lo >>> 16;
  b[offset + 6] = lo >>> 8;
  b[offset + 7] = lo;
}

/** A decode that failed: the reason goes into the operator-facing error or the torn-tail log line. */
export interface Bad {
  readonly bad: string;
}
export const isBad = (x: unknown): x is Bad => typeof x === 'object' && x !== null && 'bad' in x;

// ---- entries

/** A record to stage in a batch. */
export interface EncodedRecord {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/**
 * The records of `entries`, keys and values alike views into one new allocation: a buffer per record cost a
 * malloc and a later free apiece, and a save at a hundred puts in flight carries dozens of entries. LevelDB copies
 * a record into its batch when it is staged, so the slab is garbage once the save is staged; it is never written
 * again, so a batch that kept a reference would still hold the bytes it was given.
 */
export function encodeEntries(entries: readonly Entry[]): EncodedRecord[] {
  let bytes = 0;
  for (const e of entries) bytes += INDEXED_KEY_BYTES + ENTRY_HEADER_BYTES + e.data.byteLength;
  const slab = new Uint8Array(bytes);
  const out: EncodedRecord[] = [];
  let at = 0;
  for (const e of entries) {
    const key = slab.subarray(at, at + INDEXED_KEY_BYTES);
    key[0] = KEY_ENTRY;
    setU64(key, 1, e.index);
    at += INDEXED_KEY_BYTES;
    const value = slab.subarray(at, at + ENTRY_HEADER_BYTES + e.data.byteLength);
    setU64(value, CRC_BYTES, e.term);
    value[CRC_BYTES + 8] = e.type;
    value.set(e.data, ENTRY_HEADER_BYTES);
    at += value.byteLength;
    out.push({ key, value: seal(key, value) });
  }
  assert(at === bytes, () => `wal: encoded ${at} of ${bytes} entry bytes`);
  return out;
}

export function decodeEntry(key: Uint8Array, value: Uint8Array): Entry | Bad {
  const index = indexOfKey(KEY_ENTRY, key);
  if (index === undefined) return { bad: 'malformed key' };
  if (value.length < ENTRY_HEADER_BYTES) return { bad: `short record: ${value.length} bytes` };
  if (!checksumOk(key, value)) return { bad: 'checksum mismatch' };
  const type = value[CRC_BYTES + 8]! as EntryType;
  return { index, term: u64At(value, CRC_BYTES), type, data: entryData(value) };
}

/**
 * The entry's data as a plain Uint8Array (a Buffer would compare unequal to the Uint8Array the caller saved) that
 * pins no more than the record. classic-level hands each value back in an ArrayBuffer of its own, and a view of
 * it pins only the 13 header bytes: copying every entry's data again doubled the garbage of a restart's log scan.
 * A value inside a larger buffer (a pooled Buffer, a test's slab) is copied, so that buffer is not kept alive.
 */
function entryData(value: Uint8Array): Uint8Array {
  const own = value.byteOffset === 0 && value.buffer.byteLength === value.byteLength;
  return own ? new Uint8Array(value.buffer, ENTRY_HEADER_BYTES, value.byteLength - ENTRY_HEADER_BYTES) : new Uint8Array(value.subarray(ENTRY_HEADER_BYTES));
}

// ---- hard state

export function encodeHardState(hs: HardState): Uint8Array {
  const value = new Uint8Array(CRC_BYTES + 24);
  const v = viewOf(value);
  putU64(v, 4, hs.term);
  putU64(v, 12, hs.vote);
  putU64(v, 20, hs.commit);
  return seal(HARD_STATE_KEY, value);
}

/** `key`: where the record was read from (its CRC covers the key), HARD_STATE_KEY_V1 for a format 1 log. */
export function decodeHardState(value: Uint8Array, key: Uint8Array = HARD_STATE_KEY): HardState | Bad {
  if (value.length !== CRC_BYTES + 24) return { bad: `wrong length: ${value.length} bytes` };
  if (!checksumOk(key, value)) return { bad: 'checksum mismatch' };
  const v = viewOf(value);
  return { term: getU64(v, 4), vote: getU64(v, 12), commit: getU64(v, 20) };
}

// ---- meta

/** `version`: WAL_FORMAT_VERSION; tests write format 1 logs with WAL_FORMAT_V1. */
export function encodeMeta(version: number = WAL_FORMAT_VERSION): Uint8Array {
  const value = new Uint8Array(CRC_BYTES + 8);
  const v = viewOf(value);
  v.setUint32(4, WAL_MAGIC);
  v.setUint32(8, version);
  return seal(META_KEY, value);
}

export function decodeMeta(value: Uint8Array): { version: number } | Bad {
  if (value.length !== CRC_BYTES + 8 || !checksumOk(META_KEY, value)) return { bad: 'checksum mismatch' };
  const v = viewOf(value);
  if (v.getUint32(4) !== WAL_MAGIC) return { bad: 'bad magic' };
  const version = v.getUint32(8);
  if (version !== WAL_FORMAT_VERSION && version !== WAL_FORMAT_V1) return { bad: `unknown format version ${version}` };
  return { version };
}

// ---- conf state (shared with the snapshot file header)

export function confStateBytes(cs: ConfState): number {
  return 8 + 8 * (cs.voters.length + cs.learners.length);
}

export function writeConfState(view: DataView, offset: number, cs: ConfState): number {
  assert(
    cs.voters.length + cs.learners.length <= CONF_STATE_MEMBERS_MAX,
    () => `conf state lists ${cs.voters.length + cs.learners.length} members, more than ${CONF_STATE_MEMBERS_MAX}`,
  );
  let o = offset;
  for (const ids of [cs.voters, cs.learners]) {
    view.setUint32(o, ids.length);
    o += 4;
    for (const id of ids) {
      putU64(view, o, id);
      o += 8;
    }
  }
  return o;
}

export function readConfState(view: DataView, offset: number): { confState: ConfState; end: number } | Bad {
  let o = offset;
  const lists: number[][] = [];
  for (let l = 0; l < 2; l++) {
    if (o + 4 > view.byteLength) return { bad: 'conf state truncated' };
    const n = view.getUint32(o);
    o += 4;
    if (n > CONF_STATE_MEMBERS_MAX || o + 8 * n > view.byteLength) return { bad: `conf state count ${n} out of range` };
    const ids: number[] = [];
    for (let i = 0; i < n; i++, o += 8) ids.push(getU64(view, o));
    lists.push(ids);
  }
  return { confState: { voters: lists[0]!, learners: lists[1]! }, end: o };
}

// ---- snapshot markers

export function encodeMarker(m: SnapshotMetadata): Uint8Array {
  const key = markerKey(m.index);
  const value = new Uint8Array(CRC_BYTES + 16 + confStateBytes(m.confState));
  const v = viewOf(value);
  putU64(v, 4, m.index);
  putU64(v, 12, m.term);
  writeConfState(v, 20, m.confState);
  return seal(key, value);
}

export function decodeMarker(key: Uint8Array, value: Uint8Array): SnapshotMetadata | Bad {
  const index = indexOfKey(KEY_SNAPSHOT_MARKER, key);
  if (index === undefined) return { bad: 'malformed key' };
  if (value.length < CRC_BYTES + 24 || !checksumOk(key, value)) return { bad: 'checksum mismatch' };
  const v = viewOf(value);
  const cs = readConfState(v, 20);
  if (isBad(cs)) return cs;
  if (getU64(v, 4) !== index) return { bad: `marker for ${getU64(v, 4)} stored under ${index}` };
  return { index, term: getU64(v, 12), confState: cs.confState };
}
