// Request checks that need no store state, in etcd's order (its v3rpc checks): sizes, empty keys, the txn
// operation limit, and the rule that a txn may not write the same key twice.
import type { MvccConfig } from './config.js';
import { bytesToKeyString } from './codec.js';
import { mvccError } from './errors.js';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from './types.js';
import { NO_LEASE } from './types.js';

export function checkKey(key: Uint8Array, config: MvccConfig): void {
  if (key.length === 0) throw mvccError('EMPTY_KEY');
  if (key.length > config.keyBytesMax) throw mvccError('REQUEST_TOO_LARGE');
}

export function checkRangeRequest(req: RangeRequest, config: MvccConfig): void {
  checkKey(req.key, config);
}

export function checkPutRequest(req: PutRequest, config: MvccConfig): void {
  checkKey(req.key, config);
  if (req.value.length > config.valueBytesMax) throw mvccError('REQUEST_TOO_LARGE');
  if (req.ignoreValue === true && req.value.length !== 0) throw mvccError('VALUE_PROVIDED');
  if (req.ignoreLease === true && (req.lease ?? NO_LEASE) !== NO_LEASE) throw mvccError('LEASE_PROVIDED');
}

export function checkDeleteRangeRequest(req: DeleteRangeRequest, config: MvccConfig): void {
  checkKey(req.key, config);
}

/**
 * etcd's checkTxnRequest: the longest of compare/success/failure may not exceed the limit, and nested txns
 * share what is left of it (a nested txn's budget is the limit minus its parent's widest list).
 */
export function checkTxnRequest(req: TxnRequest, config: MvccConfig, opsMax = config.txnOpsMax): void {
  const compare = req.compare ?? [];
  const success = req.success ?? [];
  const failure = req.failure ?? [];
  const widest = Math.max(compare.length, success.length, failure.length);
  if (widest > opsMax) throw mvccError('TOO_MANY_OPS');
  for (const c of compare) if (c.key.length === 0) throw mvccError('EMPTY_KEY');
  for (const op of [...success, ...failure]) checkRequestOp(op, config, opsMax - widest);
}

function checkRequestOp(op: RequestOp, config: MvccConfig, opsMax: number): void {
  if ('requestRange' in op) checkRangeRequest(op.requestRange, config);
  else if ('requestPut' in op) checkPutRequest(op.requestPut, config);
  else if ('requestDeleteRange' in op) checkDeleteRangeRequest(op.requestDeleteRange, config);
  else checkTxnRequest(op.requestTxn, config, opsMax);
}

/** A deleted key range: [from, to), to undefined meaning no upper bound; point when rangeEnd was empty. */
interface DeletedRange {
  readonly from: string;
  readonly to: string | undefined;
  readonly point: boolean;
}

function deletedRangeCovers(d: DeletedRange, key: string): boolean {
  if (d.point) return key === d.from;
  return d.from <= key && (d.to === undefined || key < d.to);
}

function toDeletedRange(req: DeleteRangeRequest): DeletedRange {
  const from = bytesToKeyString(req.key);
  const end = req.rangeEnd;
  if (end === undefined || end.length === 0) return { from, to: from, point: true };
  // [0] is etcd's "to the end of the key space".
  const to = end.length === 1 && end[0] === 0 ? undefined : bytesToKeyString(end);
  return { from, to, point: false };
}

/**
 * etcd's checkIntervals: within one txn, no key is put twice and no put falls in a deleted range, across nested
 * txns too; a put that appears in both branches of one nested txn is fine (only one branch runs). Deletes may
 * overlap each other. Returns the keys put and ranges deleted, for the parent's check.
 *
 * One deliberate difference: etcd compares a rangeEnd of [0] as a literal string, so a put next to a delete of
 * "everything from key" slips through its check; here [0] means what it means everywhere else, to the end.
 */
export function checkTxnIntervals(ops: readonly RequestOp[]): { puts: Set<string>; dels: DeletedRange[] } {
  const dels: DeletedRange[] = [];
  for (const op of ops) if ('requestDeleteRange' in op) dels.push(toDeletedRange(op.requestDeleteRange));
  const deleted = (key: string): boolean => dels.some((d) => deletedRangeCovers(d, key));
  const puts = new Set<string>();
  for (const op of ops) {
    if (!('requestTxn' in op)) continue;
    const then = checkTxnIntervals(op.requestTxn.success ?? []);
    const otherwise = checkTxnIntervals(op.requestTxn.failure ?? []);
    for (const k of then.puts) {
      if (puts.has(k) || deleted(k)) throw mvccError('DUPLICATE_KEY');
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if ((puts.has(k) && !then.puts.has(k)) || deleted(k)) throw mvccError('DUPLICATE_KEY');
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of ops) {
    if (!('requestPut' in op)) continue;
    const k = bytesToKeyString(op.requestPut.key);
    if (puts.has(k) || deleted(k)) throw mvccError('DUPLICATE_KEY');
    puts.add(k);
  }
  return { puts, dels };
}

export function txnHasWrites(req: TxnRequest): boolean {
  const ops = [...(req.success ?? []), ...(req.failure ?? [])];
  return ops.some((op) => 'requestPut' in op || 'requestDeleteRange' in op || ('requestTxn' in op && txnHasWrites(op.requestTxn)));
}
