// Byte helpers shared by the state machine's small modules (hlc, lease, dedup). Each module's durable state is a
// set of (key, value) pairs under its own prefix; a snapshot image carries exactly those pairs (with the rest of
// the backend, storage/state-machine.ts), and a module reloads them with open(). The modules' own "section"
// snapshot format, which nothing used any more, is gone.
import { assert } from '../../raft/errors.js';
import { prefixEnd, type Backend } from '../backend.js';

export type Pair = readonly [Uint8Array, Uint8Array];

const U64_MAX = (1n << 64n) - 1n;

// One encoder for every call: constructing a TextEncoder per string cost more than encoding a short one.
const utf8Encoder = new TextEncoder();
export const utf8 = (s: string): Uint8Array => utf8Encoder.encode(s);
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
export const fromUtf8 = (b: Uint8Array): string => utf8Decoder.decode(b);

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

export function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.byteLength < prefix.byteLength) return false;
  for (let i = 0; i < prefix.byteLength; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** Big-endian u64, so that byte order equals numeric order (keys sort correctly in LevelDB). */
export function u64(value: bigint | number): Uint8Array {
  const out = new Uint8Array(8);
  writeU64(out, 0, value);
  return out;
}

/** Bytes per slab that batchBytes() carves small arrays from. */
const BATCH_SLAB_BYTES = 16 * 1024;
/** Larger arrays get an allocation of their own: a slab holds at least sixteen of the largest it carves. */
const BATCH_CARVED_BYTES_MAX = BATCH_SLAB_BYTES / 16;
let batchSlab = new ArrayBuffer(BATCH_SLAB_BYTES);
let batchSlabUsed = 0;

/**
 * A zeroed array of `n` bytes for a key or value that goes into a backend batch, carved from a shared slab.
 * LevelDB's binding asks every key and value for its ArrayBuffer, and a small typed array that V8 keeps on its heap
 * has none: V8 moves its bytes off the heap on the spot, an allocation the GC then tracks, for each of the several
 * small keys and values a command writes. A view of a slab already has one. The slab is freed once no array carved
 * from it is alive; the binding copies what it is given, so these live only as long as the batch is being built.
 */
export function batchBytes(n: number): Uint8Array {
  if (n > BATCH_CARVED_BYTES_MAX) return new Uint8Array(n);
  if (batchSlabUsed + n > BATCH_SLAB_BYTES) {
    batchSlab = new ArrayBuffer(BATCH_SLAB_BYTES);
    batchSlabUsed = 0;
  }
  const out = new Uint8Array(batchSlab, batchSlabUsed, n);
  batchSlabUsed += n;
  return out;
}

const TWO_32 = 2 ** 32;
const TWO_64 = 2 ** 64;
/** The largest high 32-bit word of a u64 that is still a safe integer (2^53 - 1 >> 32). */
const SAFE_HIGH_WORD_MAX = 0x1fffff;
/** Where a bigint is written before its bytes are copied out: a DataView per value cost more than the copy. */
const BIGINT_SCRATCH = new DataView(new ArrayBuffer(8));

/**
 * u64() into `out` at `at`. The apply path writes several per command, mostly numbers (revisions, sequence
 * numbers, milliseconds): a non-negative integer is split into two 32-bit halves with no BigInt made. Anything
 * else goes through BigInt as before, which is what refuses a fraction (RangeError) and a value out of range.
 */
export function writeU64(out: Uint8Array, at: number, value: bigint | number): void {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < TWO_64) {
    const hi = Math.floor(value / TWO_32);
    writeU32(out, at, hi);
    writeU32(out, at + 4, value - hi * TWO_32);
    return;
  }
  const v = BigInt(value);
  // A plain test before assert: its message would be built on every call of this hot path.
  if (!(v >= 0n && v <= U64_MAX)) assert(false, `u64 out of range: ${v}`);
  BIGINT_SCRATCH.setBigUint64(0, v, false);
  for (let i = 0; i < 8; i++) out[at + i] = BIGINT_SCRATCH.getUint8(i);
}

/** Big-endian u32 into `out` at `at`, byte by byte (no DataView: see batchBytes on small arrays' ArrayBuffers). */
export function writeU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = (v >>> 16) & 0xff;
  out[at + 2] = (v >>> 8) & 0xff;
  out[at + 3] = v & 0xff;
}

/** Big-endian u32 of `bytes` at `at`, as a number, byte by byte (no DataView per call: restarts decode every row). */
export function u32At(bytes: Uint8Array, at: number): number {
  return bytes[at]! * 0x1000000 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);
}

/**
 * u64 as a bigint. The bytes go through one shared DataView: a DataView per call (over the caller's buffer) was
 * most of the time a restart spent loading the revision-time index's 100,000 records.
 */
export function readU64(bytes: Uint8Array, offset = 0): bigint {
  assert(bytes.byteLength >= offset + 8, 'readU64 past the end');
  for (let i = 0; i < 8; i++) BIGINT_SCRATCH.setUint8(i, bytes[offset + i]!);
  return BIGINT_SCRATCH.getBigUint64(0, false);
}

/** A u64 that must fit a JavaScript number (revisions, sequence numbers, milliseconds); no BigInt made. */
export function readSafeU64(bytes: Uint8Array, offset = 0): number {
  assert(bytes.byteLength >= offset + 8, 'readU64 past the end');
  const hi = u32At(bytes, offset);
  if (hi > SAFE_HIGH_WORD_MAX) assert(false, `u64 ${readU64(bytes, offset)} does not fit a safe integer`);
  return hi * TWO_32 + u32At(bytes, offset + 4);
}

/**
 * Every pair a backend holds under a prefix, in key order, handed to `visit` as views that are valid only during
 * the call (copy what is kept). The revision-time index's open() reads its records through here, and readPrefix
 * does: one thread-pool round trip per batch of pairs and no promise per pair (the async iteration this replaced
 * cost a restart about 3 µs a pair).
 */
export function scanPrefix(backend: Backend, prefix: Uint8Array, visit: (key: Uint8Array, value: Uint8Array) => void): Promise<void> {
  return backend.scan({ gte: prefix, lt: prefixEnd(prefix) }, visit);
}

/** Every pair a backend holds under a prefix, in key order, as copies. Used by movePrefix() and by tests. */
export async function readPrefix(backend: Backend, prefix: Uint8Array): Promise<Pair[]> {
  const out: Pair[] = [];
  await scanPrefix(backend, prefix, (k, v) => out.push([Uint8Array.from(k), Uint8Array.from(v)]));
  return out;
}

/** Bytes of pairs movePrefix() puts into one backend batch. */
export const MOVE_BATCH_BYTES_MAX = 4 * 1024 * 1024;

/**
 * Move every pair under `from` to the same key under `to` (a store written before a module's keys moved; see
 * docs/storage.md, "Key order and LevelDB compaction"). Each synced batch puts pairs under `to` and deletes
 * them under `from`, so a pair is always in exactly one place, and a move cut short by a crash is finished by
 * the next open. Returns how many pairs moved.
 */
export async function movePrefix(backend: Backend, from: Uint8Array, to: Uint8Array): Promise<number> {
  const pairs = await readPrefix(backend, from);
  let batch = backend.batch();
  let bytes = 0;
  for (const [k, v] of pairs) {
    if (bytes + k.byteLength + v.byteLength > MOVE_BATCH_BYTES_MAX && batch.length > 0) {
      await batch.write({ sync: true });
      batch = backend.batch();
      bytes = 0;
    }
    batch.put(concatBytes(to, k.subarray(from.byteLength)), v);
    batch.del(k);
    bytes += k.byteLength + v.byteLength;
  }
  if (batch.length > 0) await batch.write({ sync: true });
  return pairs.length;
}
