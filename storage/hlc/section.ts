// Byte helpers and the snapshot-section format shared by the state machine's small modules (hlc, lease, dedup).
//
// Why one format: each module's durable state is a set of (key, value) pairs under its own prefix. A snapshot
// section is exactly those pairs, in key order, framed and checksummed. Restoring a section therefore writes the
// very pairs a live member holds, which is what makes "snapshot then restore" byte-identical to "apply the log".
//
// Layout: magic "FSEC" | version u8 | pair count u32 | pairs (key length u32, key, value length u32, value) | crc32c u32
import { assert } from '../../raft/errors.js';
import { compareBytes, prefixEnd, type Backend } from '../backend.js';
import { crc32c } from '../crc32c.js';

export type Pair = readonly [Uint8Array, Uint8Array];

const SECTION_MAGIC = new Uint8Array([0x46, 0x53, 0x45, 0x43]); // "FSEC"
const SECTION_VERSION = 1;
const U64_MAX = (1n << 64n) - 1n;

export type SectionErrorCode = 'SECTION_CORRUPT';

/** A snapshot section that cannot be trusted. Never applied partially: decoding fails before any write. */
export class SectionError extends Error {
  readonly code: SectionErrorCode = 'SECTION_CORRUPT';
  constructor(message: string) {
    super(`snapshot section corrupt: ${message}`);
    this.name = 'SectionError';
  }
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
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
  const v = BigInt(value);
  assert(v >= 0n && v <= U64_MAX, () => `u64 out of range: ${v}`);
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, v, false);
  return out;
}

export function readU64(bytes: Uint8Array, offset = 0): bigint {
  assert(bytes.byteLength >= offset + 8, 'readU64 past the end');
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(offset, false);
}

/** A u64 that must fit a JavaScript number (revisions, sequence numbers, milliseconds). */
export function readSafeU64(bytes: Uint8Array, offset = 0): number {
  const v = readU64(bytes, offset);
  assert(v <= BigInt(Number.MAX_SAFE_INTEGER), () => `u64 ${v} does not fit a safe integer`);
  return Number(v);
}

/** Frame pairs as a section. The pairs must be in strictly increasing key order: that is what the backend holds. */
export function encodeSection(pairs: readonly Pair[]): Uint8Array {
  let size = SECTION_MAGIC.byteLength + 1 + 4 + 4;
  for (let i = 0; i < pairs.length; i++) {
    const [k, v] = pairs[i]!;
    if (i > 0) assert(compareBytes(pairs[i - 1]![0], k) < 0, 'section pairs must be in strictly increasing key order');
    size += 8 + k.byteLength + v.byteLength;
  }
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(SECTION_MAGIC, 0);
  let at = SECTION_MAGIC.byteLength;
  view.setUint8(at, SECTION_VERSION);
  view.setUint32(at + 1, pairs.length, false);
  at += 5;
  for (const [k, v] of pairs) {
    view.setUint32(at, k.byteLength, false);
    out.set(k, at + 4);
    at += 4 + k.byteLength;
    view.setUint32(at, v.byteLength, false);
    out.set(v, at + 4);
    at += 4 + v.byteLength;
  }
  view.setUint32(at, crc32c(out.subarray(0, at)), false);
  assert(at + 4 === size, 'section size mismatch');
  return out;
}

/** Parse a section, checking the checksum before trusting any length in it. */
export function decodeSection(bytes: Uint8Array): Pair[] {
  const headerBytes = SECTION_MAGIC.byteLength + 5;
  if (bytes.byteLength < headerBytes + 4) throw new SectionError('too short');
  if (!startsWith(bytes, SECTION_MAGIC)) throw new SectionError('bad magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const body = bytes.byteLength - 4;
  if (view.getUint32(body, false) !== crc32c(bytes.subarray(0, body))) throw new SectionError('checksum mismatch');
  if (view.getUint8(SECTION_MAGIC.byteLength) !== SECTION_VERSION) throw new SectionError('unknown version');
  const count = view.getUint32(SECTION_MAGIC.byteLength + 1, false);
  const pairs: Pair[] = [];
  let at = headerBytes;
  const take = (): Uint8Array => {
    if (at + 4 > body) throw new SectionError('truncated length');
    const n = view.getUint32(at, false);
    if (at + 4 + n > body) throw new SectionError('truncated field');
    const field = bytes.slice(at + 4, at + 4 + n);
    at += 4 + n;
    return field;
  };
  for (let i = 0; i < count; i++) {
    const k = take();
    const v = take();
    if (i > 0 && compareBytes(pairs[i - 1]![0], k) >= 0) throw new SectionError('keys out of order');
    pairs.push([k, v]);
  }
  if (at !== body) throw new SectionError('trailing bytes');
  return pairs;
}

/** Every pair a backend holds under a prefix, in key order. Used by the modules' open() and by tests. */
export async function readPrefix(backend: Backend, prefix: Uint8Array): Promise<Pair[]> {
  const out: Pair[] = [];
  for await (const [k, v] of backend.iterate({ gte: prefix, lt: prefixEnd(prefix) })) {
    out.push([Uint8Array.from(k), Uint8Array.from(v)]);
  }
  return out;
}
