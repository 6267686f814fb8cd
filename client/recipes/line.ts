// "Wait in line", on the client: the queue that etcd's concurrency recipes (Mutex, Election) build from plain
// KV, transactions and watches, with etcd's key layout, so a Fulcrum lock and an etcd client's lock (or
// Fulcrum's and etcd's v3lock service) on the same name share one line.
//
// Each participant owns the key <name>/<lease id in lowercase hex>, bound to its lease. Participants are ordered
// by the key's create revision; the lowest holds. A waiter watches only its nearest predecessor, so a release
// wakes one waiter, not the whole line:
//
//   key            create rev
//   jobs/6a        7     <- holder (lowest): token 7
//   jobs/6b        9     watches jobs/6a for its delete
//   jobs/6c        12    watches jobs/6b
//
// If jobs/6b gives up (its key is deleted), jobs/6c wakes, reads the line again and finds jobs/6a: it waits for
// that one next. A grant needs, in ONE linearizable read, that the own key still exists with its create
// revision and that no key under the prefix has a lower one. Once that held, no key with a lower create
// revision can ever appear (revisions only grow), so the holder keeps the lock for as long as its key exists:
// that is why "create_revision(key) == token" in a transaction is a complete fence.
import type { RangeResponse } from '../../proto/index.js';
import { type Bytes, toBuffer } from '../bytes.js';
import type { Client } from '../client.js';
import { AbortedError, CompactedError, FulcrumClientError, LeaseLostError, OutcomeUnknownError } from '../errors.js';
import { KeySpace } from '../keyspace.js';
import { Compare, Op } from '../txn.js';
import { type KeyValue, num, toKeyValue, keyFields, wireRange } from '../types.js';
import type { CallOptions } from '../rpc.js';
import type { Watch } from '../watch.js';

/** How long cancelWatch waits for the server to accept a watch before cancelling it anyway. */
const WATCH_CANCEL_GRACE_MS = 2_000;

/** Attempts of the join transaction when its outcome is unknown (it is idempotent: put-if-absent, else read). */
const JOIN_ATTEMPTS_MAX = 5;

/** Where a participant stands in a line. */
export interface Spot {
  /** The participant's key (in the client's namespace): <name>/<lease hex>. */
  readonly key: Buffer;
  /** The key's create revision: the participant's place in line and, once it holds, its fencing token. */
  readonly createRevision: number;
  /** The store revision at which this was known. */
  readonly revision: number;
  /** The key existed before the join (the same lease joined already): its value then. */
  readonly existingValue: Buffer | undefined;
}

/** `<name>/`: every participant's key starts with it. */
export function linePrefix(name: Bytes): Buffer {
  const n = toBuffer(name);
  if (n.length === 0) throw new FulcrumClientError('INVALID_ARGUMENT', 'fulcrum recipes: a lock or election name must not be empty', false);
  return Buffer.concat([n, Buffer.from('/')]);
}

/** <prefix><lease id in hex> (Go's %x: lowercase, no padding), as etcd's recipes spell it. */
export function lineKey(prefix: Buffer, lease: bigint): Buffer {
  return Buffer.concat([prefix, Buffer.from(lease.toString(16))]);
}

/**
 * Put the key with the lease if it does not exist, else read it (etcd's tryAcquire/Campaign first step). Both
 * branches answer the key's create revision, so retrying after an unknown outcome is safe: the retry finds the
 * key and answers the same place in line.
 */
export async function joinLine(client: Client, key: Buffer, value: Buffer, lease: bigint, o: CallOptions = {}): Promise<Spot> {
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await client.txn().if(Compare.missing(key)).then(Op.put(key, value, { lease })).else(Op.get(key)).commit(o);
      if (r.succeeded) return { key, createRevision: r.revision, revision: r.revision, existingValue: undefined };
      const got = r.results[0];
      const kv = got?.type === 'get' ? got.kvs[0] : undefined;
      if (kv === undefined) throw new FulcrumClientError('INTERNAL', 'fulcrum recipes: the join transaction found the key but did not return it', false);
      if (kv.lease !== lease) throw new FulcrumClientError('FAILED_PRECONDITION', `fulcrum recipes: ${key.toString()} exists under another lease (${kv.lease.toString(16)})`, false);
      return { key, createRevision: kv.createRevision, revision: r.revision, existingValue: kv.value };
    } catch (e) {
      if (!(e instanceof OutcomeUnknownError) || attempt >= JOIN_ATTEMPTS_MAX || o.signal?.aborted) throw e;
    }
  }
}

/** What one read of the line says about a participant. */
export interface LineView {
  /** The own key exists with the same create revision. */
  readonly present: boolean;
  /** The participant just ahead (highest create revision below the own), or undefined: the participant holds. */
  readonly predecessor: KeyValue | undefined;
  readonly revision: number;
}

/**
 * One linearizable read: the two keys with the highest create revisions at or below the participant's. The
 * first must be the participant's own (else its key is gone); the second, if any, is the one it waits for.
 * The range's max_create_revision filter has no method on the client, so this one read is made with `unary`.
 */
export async function readLine(client: Client, prefix: Buffer, spot: Spot, o: CallOptions = {}): Promise<LineView> {
  const space = new KeySpace(client.prefix);
  const { key, rangeEnd } = wireRange({ prefix }, space);
  const req = { ...keyFields(key, rangeEnd), limit: 2, sort_order: 'DESCEND' as const, sort_target: 'CREATE' as const, max_create_revision: spot.createRevision };
  const res = await client.unary<RangeResponse>('read', 'line range', (s, md, co, cb) => s.kv.Range(req, md, co, cb), o);
  const kvs = res.kvs.map((kv) => toKeyValue(kv, space));
  const own = kvs[0];
  const present = own !== undefined && own.key.equals(spot.key) && own.createRevision === spot.createRevision;
  return { present, predecessor: present ? kvs[1] : undefined, revision: num(res.header?.revision ?? '0') };
}

/**
 * Wait until the participant holds: wait for its predecessor's delete, read again, until none is left. Rejects
 * with the signal's reason when it aborts (the caller's AbortedError, or the lease's LeaseLostError), and with
 * LeaseLostError('expired') when the own key is gone (its lease ended: etcd's "session expired").
 * Resolves with the revision of the read that granted it.
 */
export async function waitForTurn(client: Client, prefix: Buffer, spot: Spot, lease: bigint, signal: AbortSignal): Promise<number> {
  for (;;) {
    throwIfAborted(signal);
    const view = await readLine(client, prefix, spot, { signal });
    if (!view.present) throw new LeaseLostError(`fulcrum recipes: ${spot.key.toString()} is gone from the line (its lease ${lease.toString(16)} ended or the key was deleted)`, lease, 'expired');
    if (view.predecessor === undefined) return view.revision;
    await waitForDelete(client, view.predecessor.key, view.revision + 1, signal);
  }
}

/** Resolves at the first delete of `key` from `fromRevision` on; a compacted start just resolves (read again). */
export async function waitForDelete(client: Client, key: Buffer, fromRevision: number, signal: AbortSignal): Promise<void> {
  throwIfAborted(signal);
  const watch = client.watch(key, { startRevision: fromRevision, noPut: true });
  const onAbort = (): void => cancelWatch(watch);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const e of watch) if (e.type === 'delete') return;
  } catch (e) {
    if (e instanceof CompactedError) return;
    throw e;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  throwIfAborted(signal);
}

/**
 * Cancel a watch once the server has accepted it (or after a grace period). Works around the client core
 * leaving its member's connection open after close() when a watch was cancelled before its stream was
 * accepted (reported to the client's owner; a process would then not exit).
 */
export function cancelWatch(watch: Watch): void {
  const timer = setTimeout(() => watch.cancel(), WATCH_CANCEL_GRACE_MS);
  timer.unref();
  const cancel = (): void => {
    clearTimeout(timer);
    watch.cancel();
  };
  watch.ready.then(cancel, cancel);
}

/** Leave the line: delete the key only while it is still this participant's (create revision unchanged). */
export async function leaveLine(client: Client, spot: Pick<Spot, 'key' | 'createRevision'>, o: CallOptions = {}): Promise<boolean> {
  const r = await client.txn().if(Compare.createRevision(spot.key, '=', spot.createRevision)).then(Op.delete(spot.key)).commit(o);
  return r.succeeded;
}

/** Throw the reason a signal aborted with, as a client error (a plain abort() becomes AbortedError). */
export function throwIfAborted(signal: AbortSignal): void {
  if (!signal.aborted) return;
  throw asClientError(signal.reason);
}

export function asClientError(reason: unknown): FulcrumClientError {
  return reason instanceof FulcrumClientError ? reason : new AbortedError(undefined, { cause: reason });
}
