// Permission checks at APPLY (etcd's authApplierV3). The API checks every request before proposing it; the command
// carries who asked and the auth revision of that check. Apply refuses it when the auth store has moved since
// (AUTH_OLD_REVISION: the client retries and is checked again), so a permission revoked between the check and
// the apply cannot be used, and then checks the permission again against the replicated store. Every member
// reaches the same verdict: it depends only on the log.
//
// Commands without `auth` are the members' own (lease expiry, checkpoints, attributes, the quota alarm): they
// are not client requests and are never refused here.
import type { Command } from '../command.js';
import type { TxnRequest } from '../mvcc/types.js';
import { AuthError } from './errors.js';
import { isAuthOp } from './ops.js';
import { emptyNeeds, needRead, needWrite, txnNeeds, type AccessNeeds } from './permissions.js';
import type { AuthStore } from './store.js';

export interface LeaseKeys {
  keysWithLease(id: bigint): Uint8Array[];
}

/** What a command needs, or 'admin' (the root role), or 'user' (any authenticated user). */
export function commandNeeds(op: Command['op'], leases: LeaseKeys): AccessNeeds | 'admin' | 'user' {
  if ('put' in op) {
    const n = emptyNeeds();
    needWrite(n, op.put);
    if (op.put.prevKv === true) needRead(n, op.put);
    leasePutNeeds([op.put.lease], leases, n);
    return n;
  }
  if ('deleteRange' in op) {
    const n = emptyNeeds();
    needWrite(n, op.deleteRange);
    if (op.deleteRange.prevKv === true) needRead(n, op.deleteRange);
    return n;
  }
  if ('txn' in op) {
    const n = txnNeeds(op.txn);
    leasePutNeeds(txnLeases(op.txn), leases, n);
    return n;
  }
  if ('leaseRevoke' in op) {
    // Revoking a lease deletes its keys: the user must be allowed to delete every one of them (etcd).
    const n = emptyNeeds();
    for (const key of leases.keysWithLease(op.leaseRevoke.id)) needWrite(n, { key });
    return n;
  }
  if ('compact' in op || 'leaseGrant' in op || 'leaseCheckpoint' in op) return 'user';
  if (isAuthOp(op)) return 'admin';
  return 'admin'; // alarms, member updates: cluster administration
}

/**
 * A put with a lease would attach the key to keys the user may not write; revoking the lease later deletes them all
 * together, so etcd asks for write permission on every key already attached (checkLeasePuts).
 */
function leasePutNeeds(ids: ReadonlyArray<bigint | undefined>, leases: LeaseKeys, n: AccessNeeds): void {
  for (const id of new Set(ids)) {
    if (id === undefined || id === 0n) continue;
    for (const key of leases.keysWithLease(id)) needWrite(n, { key });
  }
}

function txnLeases(t: TxnRequest): bigint[] {
  const out: bigint[] = [];
  for (const op of [...(t.success ?? []), ...(t.failure ?? [])]) {
    if ('requestPut' in op && op.requestPut.lease !== undefined) out.push(op.requestPut.lease);
    else if ('requestTxn' in op) out.push(...txnLeases(op.requestTxn));
  }
  return out;
}

/** Throws the AuthError etcd answers when `cmd` may not be applied. */
export function authorizeCommand(store: AuthStore, cmd: Command, leases: LeaseKeys): void {
  if (cmd.auth === undefined || !store.enabled) return;
  // Authenticate carries no requester: the proposer checked the password, and apply checks the revision.
  if ('authenticate' in cmd.op) return;
  store.checkRequester(cmd.auth);
  const needs = commandNeeds(cmd.op, leases);
  if (needs === 'user') return;
  if (needs === 'admin') {
    if (!store.isAdmin(cmd.auth.user)) throw new AuthError('PERMISSION_DENIED');
    return;
  }
  if (!store.isPermitted(cmd.auth.user, needs)) throw new AuthError('PERMISSION_DENIED');
}
