// v3lockpb.Lock, run in the server with etcd's mutex recipe (clientv3/concurrency.Mutex):
//
//   Lock    put <name>/<lease hex> with the lease if absent (a second Lock of the same lease reuses the key: the
//           holder locking again returns at once); wait until the key has the lowest create revision under
//           <name>/; then confirm, in the same linearizable read, that the key still exists (etcd's "session
//           expired" check; here LEASE_NOT_FOUND). Answers the key (Unlock's argument) and the header. If the
//           wait fails or the call is cancelled, the waiter's key is deleted (etcd's Unlock on a failed wait).
//   Unlock  delete the key.
//
// The key's create revision (in the header's key-value via a Range, or the election's rev) is the fencing token.
import type { Handlers, LockMethods } from '../../proto/index.js';
import { commandFailure, concat, Line, lineKey, prefixEnd } from '../lease/line.js';
import type { LeaseManager } from '../lease/manager.js';
import { authorizeKeys, authorizeOp } from './authz.js';
import type { ApiContext } from './context.js';
import { cancelSignal, sessionLease } from './election.js';
import { responseHeader } from './header.js';
import { unary } from './lease.js';

const SLASH = Uint8Array.of(0x2f);
const EMPTY = new Uint8Array(0);

export function createLockService(ctx: ApiContext, leases: LeaseManager): Handlers<LockMethods> {
  const member = ctx.member;
  const line = new Line(member);
  return {
    Lock: unary(ctx, 'Lock', async (req, call) => {
      const prefix = concat(req.name, SLASH);
      const auth = authorizeKeys(ctx, call, { key: prefix, rangeEnd: prefixEnd(prefix) }, { read: true, write: true });
      const signal = cancelSignal(call);
      const lease = await sessionLease(leases, req.lease, auth);
      const joined = await line.join(lineKey(prefix, lease), EMPTY, lease, auth);
      try {
        const revision = await line.waitForTurn(prefix, joined.key, joined.createRevision, signal);
        return { header: responseHeader(member, revision), key: joined.key };
      } catch (e) {
        // Leave the line: a waiter that gave up must not block the ones behind it (no-op if the key is gone).
        void line.leave(joined.key, joined.createRevision, auth).catch(() => undefined);
        throw e;
      }
    }),

    Unlock: unary(ctx, 'Unlock', async (req, call) => {
      const auth = authorizeOp(ctx, call, { deleteRange: { key: req.key } });
      const r = await leases.proposeWithDeadline({ deleteRange: { key: req.key } }, auth);
      const failure = commandFailure(r);
      if (failure !== undefined) throw failure;
      return { header: responseHeader(member, r.revision) };
    }),
  };
}
