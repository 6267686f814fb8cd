// Byte helpers shared by the state machine's small modules (hlc, lease, dedup). Each module's durable state is a
// set of (key, value) pairs under its own prefix; a snapshot image carries exactly those pairs (with the rest of
// the backend, storage/state-machine.ts), and a module reloads them with open(). The modules' own "section"
// snapshot format, which nothing used any more, is gone.
import { assert } from '../../raft/errors.js';
import { prefixEnd, type Backend } from '../backend.js';

export type Pair = readonly [Uint8Array, Uint8Array];

const U64_MAX = (1n << 64n) - 1n;

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

/** Every pair a backend holds under a prefix, in key order. Used by the modules' open() and by tests. */
export async function readPrefix(backend: Backend, prefix: Uint8Array): Promise<Pair[]> {
  const out: Pair[] = [];
  for await (const [k, v] of backend.iterate({ gte: prefix, lt: prefixEnd(prefix) })) {
    out.push([Uint8Array.from(k), Uint8Array.from(v)]);
  }
  return out;
}
