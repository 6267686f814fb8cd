// Hybrid logical clock values and their encoding.
//
// An HLC value packs wall-clock milliseconds and a logical counter into one unsigned 64-bit integer:
//
//   bits 63..16: wall milliseconds since the Unix epoch (48 bits: good until the year 10889)
//   bits 15..0 : logical counter, for many events within one millisecond
//
// Because the wall part sits in the high bits, comparing two values as bigints compares (wall, logical)
// lexicographically, and so does comparing their 8-byte big-endian encodings as bytes. That is why the type is a
// bigint and not a number: 64 bits do not fit a double exactly.
import { assert } from '../../raft/errors.js';
import { readU64, writeU64 } from './section.js';

export type Hlc = bigint;

export const HLC_LOGICAL_BITS = 16n;
export const HLC_LOGICAL_MAX = (1 << Number(HLC_LOGICAL_BITS)) - 1;
export const HLC_WALL_MS_MAX = 2 ** 48 - 1;
export const HLC_BYTES = 8;
export const HLC_ZERO: Hlc = 0n;

export function hlcOf(wallMs: number, logical = 0): Hlc {
  assert(Number.isSafeInteger(wallMs) && wallMs >= 0 && wallMs <= HLC_WALL_MS_MAX, () => `hlc wall ${wallMs} out of range`);
  assert(Number.isInteger(logical) && logical >= 0 && logical <= HLC_LOGICAL_MAX, () => `hlc logical ${logical} out of range`);
  return (BigInt(wallMs) << HLC_LOGICAL_BITS) | BigInt(logical);
}

export function hlcWallMs(h: Hlc): number {
  return Number(h >> HLC_LOGICAL_BITS);
}

export function hlcLogical(h: Hlc): number {
  return Number(h & BigInt(HLC_LOGICAL_MAX));
}

/** The largest HLC: the last logical tick of the last wall millisecond. */
const HLC_MAX: Hlc = (BigInt(HLC_WALL_MS_MAX) << HLC_LOGICAL_BITS) | BigInt(HLC_LOGICAL_MAX);

export function isHlc(h: bigint): boolean {
  // The same as (h >> HLC_LOGICAL_BITS) <= HLC_WALL_MS_MAX, without a shift and a conversion per call.
  return h >= 0n && h <= HLC_MAX;
}

export function encodeHlc(h: Hlc): Uint8Array {
  const out = new Uint8Array(HLC_BYTES);
  writeHlc(out, 0, h);
  return out;
}

/** encodeHlc() into `out` at `at`. */
export function writeHlc(out: Uint8Array, at: number, h: Hlc): void {
  if (!isHlc(h)) assert(false, `not an hlc: ${h}`);
  writeU64(out, at, h);
}

export function decodeHlc(bytes: Uint8Array, offset = 0): Hlc {
  return readU64(bytes, offset);
}

/** The largest HLC value within a wall millisecond: "everything that happened at or before wallMs". */
export function hlcCeiling(wallMs: number): Hlc {
  return hlcOf(wallMs, HLC_LOGICAL_MAX);
}

export function hlcMax(a: Hlc, b: Hlc): Hlc {
  return a > b ? a : b;
}

/** Readable form for logs and test failures: "1700000000000.3". */
export function formatHlc(h: Hlc): string {
  return `${hlcWallMs(h)}.${hlcLogical(h)}`;
}
