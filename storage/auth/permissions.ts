// Key permissions as etcd grants them: READ, WRITE or READWRITE on a key, a range [key, rangeEnd) or everything
// from a key on (rangeEnd "\0"). A request is allowed when every key range it touches is covered by the UNION of
// the user's permitted ranges of the needed kind (etcd merges a user's ranges into one interval set the same way).
//
// Worked example: a role holds READ on [a, c) and READ on [c, e). A range request [b, d) is allowed (the two
// ranges meet at c and cover it together); [b, f) is not (nothing covers [e, f)).
import type { KeyRangeRequest, RequestOp, TxnRequest } from '../mvcc/types.js';

export type PermissionType = 'READ' | 'WRITE' | 'READWRITE';

export interface Permission {
  readonly type: PermissionType;
  readonly key: Uint8Array;
  /** Encoded as etcd encodes a range: empty for the single key, [0] for every key >= key. */
  readonly rangeEnd: Uint8Array;
}

/** A half-open interval of keys; end undefined: no upper bound. */
export interface KeyInterval {
  readonly start: Uint8Array;
  readonly end: Uint8Array | undefined;
}

/** What a request needs: ranges to read and ranges to write. */
export interface AccessNeeds {
  readonly read: KeyInterval[];
  readonly write: KeyInterval[];
}

const ZERO = Uint8Array.of(0);

/** The interval a key range stands for: a single key k is [k, k\0), since k\0 is the next key after k. */
export function intervalOf(key: Uint8Array, rangeEnd: Uint8Array | undefined): KeyInterval {
  if (rangeEnd === undefined || rangeEnd.byteLength === 0) return { start: key, end: concat(key, ZERO) };
  if (rangeEnd.byteLength === 1 && rangeEnd[0] === 0) return { start: key, end: undefined };
  // An empty or inverted range reads nothing; it still needs permission on its first key (conservative).
  if (Buffer.compare(rangeEnd, key) <= 0) return { start: key, end: concat(key, ZERO) };
  return { start: key, end: rangeEnd };
}

export function grants(perm: PermissionType, need: 'read' | 'write'): boolean {
  return perm === 'READWRITE' || (need === 'read' ? perm === 'READ' : perm === 'WRITE');
}

/** Whether the union of `permitted` covers `wanted` entirely. */
export function covers(permitted: readonly KeyInterval[], wanted: KeyInterval): boolean {
  const sorted = [...permitted].sort((a, b) => Buffer.compare(a.start, b.start));
  let reached = wanted.start; // everything in [wanted.start, reached) is covered
  for (const iv of sorted) {
    if (Buffer.compare(iv.start, reached) > 0) return false; // a gap before this interval
    if (iv.end === undefined) return true;
    if (Buffer.compare(iv.end, reached) > 0) reached = iv.end;
    if (wanted.end !== undefined && Buffer.compare(reached, wanted.end) >= 0) return true;
  }
  return false;
}

/** Whether permissions allow every range in `needs`. */
export function allows(perms: readonly Permission[], needs: AccessNeeds): boolean {
  for (const kind of ['read', 'write'] as const) {
    if (needs[kind].length === 0) continue;
    const permitted = perms.filter((p) => grants(p.type, kind)).map((p) => intervalOf(p.key, p.rangeEnd));
    if (!needs[kind].every((w) => covers(permitted, w))) return false;
  }
  return true;
}

export function emptyNeeds(): AccessNeeds {
  return { read: [], write: [] };
}

export function needRead(n: AccessNeeds, r: KeyRangeRequest): void {
  n.read.push(intervalOf(r.key, r.rangeEnd));
}

export function needWrite(n: AccessNeeds, r: KeyRangeRequest): void {
  n.write.push(intervalOf(r.key, r.rangeEnd));
}

/**
 * A txn needs read on every compared key and, for BOTH branches (which one runs is only known at apply), what
 * each op needs; nested txns likewise. A put or delete that returns the previous value also reads it.
 */
export function txnNeeds(t: TxnRequest, n: AccessNeeds = emptyNeeds()): AccessNeeds {
  for (const c of t.compare ?? []) needRead(n, c);
  for (const op of [...(t.success ?? []), ...(t.failure ?? [])]) opNeeds(op, n);
  return n;
}

function opNeeds(op: RequestOp, n: AccessNeeds): void {
  if ('requestRange' in op) needRead(n, op.requestRange);
  else if ('requestPut' in op) {
    needWrite(n, op.requestPut);
    if (op.requestPut.prevKv === true) needRead(n, op.requestPut);
  } else if ('requestDeleteRange' in op) {
    needWrite(n, op.requestDeleteRange);
    if (op.requestDeleteRange.prevKv === true) needRead(n, op.requestDeleteRange);
  } else txnNeeds(op.requestTxn, n);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}
