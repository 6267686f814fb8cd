// Keys and values at the client's edge: callers pass strings (UTF-8) or bytes; the wire wants Buffers
// (protobufjs would read a string given for a bytes field as base64, see proto/types.ts).
import { InvalidArgumentError } from './errors.js';

/** A key or value as callers give it: a string is encoded as UTF-8. */
export type Bytes = string | Uint8Array;

export function toBuffer(b: Bytes): Buffer {
  if (typeof b === 'string') return Buffer.from(b, 'utf8');
  if (b instanceof Uint8Array) return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  throw new InvalidArgumentError(`fulcrum client: expected a string or Uint8Array, got ${typeof b}`);
}

/** A key must not be empty: etcd refuses it ("etcdserver: key is not provided"); say so before a round trip. */
export function toKey(b: Bytes): Buffer {
  const k = toBuffer(b);
  if (k.length === 0) throw new InvalidArgumentError('fulcrum client: key must not be empty');
  return k;
}

/** etcd's range_end "\0": every key from the start key on. */
export const RANGE_END_ALL: Buffer = Buffer.from([0]);

/**
 * The smallest key greater than every key with this prefix: the prefix with its last byte below 0xff raised by
 * one and the rest cut off (etcd's GetPrefixRangeEnd). A prefix of only 0xff bytes (or empty) has no such key,
 * so the range runs to the end of the key space ("\0").
 *
 *   "app/"   -> "app0"      ("/" + 1 = "0")
 *   "a\xff"  -> "b"
 *   "\xff"   -> "\0"        (every key from the prefix on)
 */
export function prefixEnd(prefix: Uint8Array): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return RANGE_END_ALL;
}

/** The key right after `key` in byte order: where the next page of a range starts. */
export function keyAfter(key: Uint8Array): Buffer {
  return Buffer.concat([key, Buffer.from([0])]);
}
