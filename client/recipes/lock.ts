// A distributed lock with fencing tokens, as a client-side recipe on KV, transactions and watches (etcd's
// concurrency.Mutex, with its key layout: <name>/<lease hex>; see line.ts).
//
//   const lock = new Lock(client, 'locks/nightly-report');
//   await using held = await lock.lock({ signal });    // waits its turn, first come first served
//   await held.txn().then(Op.put('report/owner', 'me')).commit();   // succeeds only while held
//   held.token                                          // pass it to other stores: they refuse smaller ones
//
// Why not the server's v3lock service: this recipe works against etcd too; it waits with resumable watches that
// move between members (a v3lock call waits on one member and fails with it); its holder gets a `lost` signal
// from its own key and lease; and it needs nothing the server does not already offer through KV.
import type { Client } from '../client.js';
import { type Bytes } from '../bytes.js';
import type { CallOptions } from '../rpc.js';
import type { TxnBuilder } from '../txn.js';
import { InvalidArgumentError } from '../errors.js';
import { linePrefix } from './line.js';
import { fencedTxn, Ownership } from './ownership.js';
import { enterLine, type ParticipantOptions } from './participant.js';

export type LockOptions = ParticipantOptions;

/** Fences of this lock's recent grants kept for `fencedTxn(token)`; older ones need `fencedTxn(client, fence)`. */
const RECENT_FENCES_MAX = 64;

/** A granted lock: release it with `release()` or `await using`. */
export class HeldLock extends Ownership {}

export class Lock {
  private readonly prefix: Buffer;
  private readonly recent = new Map<number, Buffer>();

  constructor(
    private readonly client: Client,
    /** The lock's name: its participants' keys are `<name>/<lease hex>` in the client's namespace. */
    readonly name: Bytes,
    private readonly options: LockOptions = {},
  ) {
    this.prefix = linePrefix(name);
  }

  /**
   * Wait for the lock, in the order of asking (the line is ordered by create revision). The signal cancels
   * the wait (AbortedError) and leaves the line. Rejects with LeaseLostError if the lease ends while waiting.
   */
  async lock(o: CallOptions = {}): Promise<HeldLock> {
    const entered = await enterLine(this.client, this.prefix, Buffer.alloc(0), this.options, { ...o, wait: true });
    return this.hold(entered!);
  }

  /** Take the lock if nobody holds it or waits for it; otherwise undefined at once (and nothing left behind). */
  async tryLock(o: CallOptions = {}): Promise<HeldLock | undefined> {
    const entered = await enterLine(this.client, this.prefix, Buffer.alloc(0), this.options, { ...o, wait: false });
    return entered === undefined ? undefined : this.hold(entered);
  }

  /**
   * A transaction that succeeds only while the grant with this token still holds the lock: compare the
   * holder's key's create revision with the token. For one of this Lock's recent grants; a fence that travelled
   * elsewhere is used with the free function `fencedTxn(client, { key, token })`.
   */
  fencedTxn(token: number): TxnBuilder {
    const key = this.recent.get(token);
    if (key === undefined) throw new InvalidArgumentError(`fulcrum recipes: no recent grant of ${this.prefix.toString()} has token ${token} (use fencedTxn(client, fence))`);
    return fencedTxn(this.client, { key, token });
  }

  private hold(e: NonNullable<Awaited<ReturnType<typeof enterLine>>>): HeldLock {
    this.recent.set(e.spot.createRevision, e.spot.key);
    if (this.recent.size > RECENT_FENCES_MAX) this.recent.delete(this.recent.keys().next().value!);
    return new HeldLock(this.client, e.spot, e.lease, e.ownsLease, e.grantedAt);
  }
}
