// The client's own shapes: camelCase, revisions as numbers, lease ids and HLC stamps as bigints, keys and values
// as Buffers. The wire shapes (proto/types.ts) stop at the conversion functions here.
import type { KeyValue as WireKeyValue, ResponseHeader } from '../proto/index.js';
import { type Bytes, prefixEnd, RANGE_END_ALL, toBuffer, toKey } from './bytes.js';
import { InvalidArgumentError } from './errors.js';
import type { KeySpace } from './keyspace.js';

/**
 * A hybrid logical clock stamp: wall milliseconds in bits 63..16, a logical counter in bits 15..0 (see
 * docs/leases-hlc-dedup.md). 0n when the server does not set it (etcd, or a version it no longer knows).
 */
export type Hlc = bigint;

export function hlcWallMs(hlc: Hlc): number {
  return Number(hlc >> 16n);
}

export function hlcLogical(hlc: Hlc): number {
  return Number(hlc & 0xffffn);
}

/** The wall-clock time of a stamp, or undefined for 0n (unknown). */
export function hlcToDate(hlc: Hlc): Date | undefined {
  return hlc === 0n ? undefined : new Date(hlcWallMs(hlc));
}

/** One version of a key. */
export class KeyValue {
  constructor(
    readonly key: Buffer,
    readonly value: Buffer,
    readonly createRevision: number,
    readonly modRevision: number,
    /** 1 for a key just created, +1 per change; a deleted key has no KeyValue. */
    readonly version: number,
    /** The lease the key is bound to, 0n for none. */
    readonly lease: bigint,
    /** HLC stamp of the write that created the key (Fulcrum extension field 1000; 0n from etcd). */
    readonly createHlc: Hlc,
    /** HLC stamp of the write that made this version (extension field 1001; 0n from etcd). */
    readonly modHlc: Hlc,
  ) {}

  /** The key as UTF-8 text. */
  get keyText(): string {
    return this.key.toString('utf8');
  }

  /** The value as UTF-8 text. */
  get valueText(): string {
    return this.value.toString('utf8');
  }

  /** When this version was written, by the leader's hybrid clock; undefined when the server did not say. */
  get modTime(): Date | undefined {
    return hlcToDate(this.modHlc);
  }

  get createTime(): Date | undefined {
    return hlcToDate(this.createHlc);
  }
}

export function toKeyValue(kv: WireKeyValue, space: KeySpace): KeyValue {
  return new KeyValue(space.strip(kv.key), kv.value, num(kv.create_revision), num(kv.mod_revision), num(kv.version), BigInt(kv.lease), BigInt(kv.create_hlc ?? '0'), BigInt(kv.mod_hlc ?? '0'));
}

export function toKeyValueOrUndefined(kv: WireKeyValue | null | undefined, space: KeySpace): KeyValue | undefined {
  return kv === null || kv === undefined ? undefined : toKeyValue(kv, space);
}

/** What every answer says about the store: its revision then, and (Fulcrum) the HLC stamp of that revision. */
export interface Header {
  readonly revision: number;
  readonly hlc: Hlc;
  readonly memberId: string;
  readonly raftTerm: number;
}

export function toHeader(h: ResponseHeader | null | undefined): Header {
  return { revision: num(h?.revision ?? '0'), hlc: BigInt(h?.hlc ?? '0'), memberId: h?.member_id ?? '0', raftTerm: num(h?.raft_term ?? '0') };
}

/** int64 decimal strings as numbers: revisions, versions and counts stay far below 2^53 (the server saturates). */
export function num(s: string | number): number {
  return typeof s === 'number' ? s : Number(s);
}

// ---------------------------------------------------------------------------------------------------------
// Key ranges as callers name them
// ---------------------------------------------------------------------------------------------------------

/**
 * A set of keys: one key, every key with a prefix, or the keys in [start, end) (end omitted: every key from
 * start on). `{ prefix: '' }` is every key (of the namespace).
 */
export type KeyRange = { readonly key: Bytes } | { readonly prefix: Bytes } | { readonly start: Bytes; readonly end?: Bytes };

export function isKeyRange(v: unknown): v is KeyRange {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && ('key' in v || 'prefix' in v || 'start' in v);
}

/**
 * A request's key and range_end fields, with range_end left off when it is empty. Sent present but empty, etcd
 * (3.4, gogo-protobuf) decodes it as a non-nil empty slice, which its Range and Compare read as "every key from
 * `key` on" (the meaning it gives "\0"): a get of a missing key answered the key after it, and a compare of a
 * missing key's version looked at every key after it. etcd's own client never sends an empty range_end.
 */
export function keyFields(key: Buffer, rangeEnd: Buffer): { key: Buffer; range_end?: Buffer } {
  return rangeEnd.length === 0 ? { key } : { key, range_end: rangeEnd };
}

/** A key or range on the wire: (key, range_end) with etcd's conventions, through the namespace. */
export function wireRange(r: Bytes | KeyRange, space: KeySpace): { key: Buffer; rangeEnd: Buffer } {
  if (!isKeyRange(r)) return space.range(toKey(r), Buffer.alloc(0));
  if ('key' in r) return space.range(toKey(r.key), Buffer.alloc(0));
  if ('prefix' in r) {
    const p = toBuffer(r.prefix);
    return space.range(p, p.length === 0 ? RANGE_END_ALL : prefixEnd(p));
  }
  const start = toBuffer(r.start);
  const end = r.end === undefined ? RANGE_END_ALL : toBuffer(r.end);
  if (r.end !== undefined && end.length === 0) throw new InvalidArgumentError('fulcrum client: a range end must not be empty (omit it for "to the end")');
  if (start.length === 0 && !end.equals(RANGE_END_ALL)) return space.range(Buffer.alloc(0), end);
  return space.range(start, end);
}

/** A lease as callers name it: its id, or anything with an `id` (a Lease). */
export type LeaseRef = bigint | { readonly id: bigint };

export function leaseId(l: LeaseRef | undefined): bigint {
  if (l === undefined) return 0n;
  return typeof l === 'bigint' ? l : l.id;
}
