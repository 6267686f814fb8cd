// What a granted lock or won election has in common: a key in the line that is certainly the lowest, its create
// revision as the fencing token, the lease that keeps it, and a `lost` signal.
//
// Lost means the holder can no longer rely on holding. It fires (once) when:
//   - the lease is lost: on the client's own clock BEFORE the server could have expired it (client/lease.ts),
//     or as soon as the server says it is gone;
//   - the key is deleted or recreated by anyone else (a watch on the own key, resumed across failures; when
//     the watch cannot resume, a read decides);
//   - the client closes.
// `signal` aborts on loss and on release, so work bound to it stops either way; the 'lost' event is only for
// the involuntary end.
import { EventEmitter } from 'node:events';
import type { Client } from '../client.js';
import { CompactedError, FulcrumClientError, type LeaseLostError } from '../errors.js';
import type { Lease } from '../lease.js';
import type { TxnBuilder } from '../txn.js';
import { Compare } from '../txn.js';
import type { Watch } from '../watch.js';
import { cancelWatch, type Spot, leaveLine } from './line.js';

/** Why a holder stopped holding. */
export type OwnershipLostReason = 'lease-lost' | 'key-deleted' | 'client-closed';

/** The holder of a lock or election lost it (its `reason` says how); the lease error, if any, is the cause. */
export class OwnershipLostError extends FulcrumClientError {
  constructor(
    message: string,
    readonly reason: OwnershipLostReason,
    cause?: unknown,
  ) {
    super('LEASE_LOST', message, false, cause === undefined ? {} : { cause });
    this.name = 'OwnershipLostError';
  }
}

/** A fence: what a write must carry to be accepted only while its writer still holds. */
export interface Fence {
  /** The holder's key in the line (in the client's namespace). */
  readonly key: Buffer;
  /** The key's create revision: strictly greater for every later holder. */
  readonly token: number;
}

/** A transaction that runs its `then` branch only while `fence` is still held; add more `.if(...)` as needed. */
export function fencedTxn(client: Client, fence: Fence): TxnBuilder {
  return client.txn().if(Compare.createRevision(fence.key, '=', fence.token));
}

export class Ownership extends EventEmitter<{ lost: [OwnershipLostError] }> {
  private readonly controller = new AbortController();
  private lostError: OwnershipLostError | undefined;
  private released = false;
  private ownWatch: Watch | undefined;
  private readonly onLeaseLost = (e: LeaseLostError): void => this.lose(e.reason === 'closed' ? 'client-closed' : 'lease-lost', `fulcrum recipes: ${this.spot.key.toString()}: its lease was lost (${e.reason})`, e);

  constructor(
    protected readonly client: Client,
    protected readonly spot: Spot,
    /** The lease that keeps the key. */
    readonly lease: Lease,
    /** Whether this holder granted the lease itself (then releasing revokes it). */
    private readonly ownsLease: boolean,
    grantedAt: number,
  ) {
    super();
    if (lease.lost !== undefined) this.onLeaseLost(lease.lost);
    else lease.once('lost', this.onLeaseLost);
    void this.watchOwnKey(grantedAt + 1);
  }

  /** The fencing token: the key's create revision. Every later holder's is strictly greater. */
  get token(): number {
    return this.spot.createRevision;
  }

  /** The holder's key (in the client's namespace). */
  get key(): Buffer {
    return this.spot.key;
  }

  get fence(): Fence {
    return { key: this.spot.key, token: this.spot.createRevision };
  }

  /** Aborts when the holder loses (reason: OwnershipLostError) or releases. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Why it was lost, or undefined while held (or after a plain release). */
  get lost(): OwnershipLostError | undefined {
    return this.lostError;
  }

  /** Still held, as far as this client knows (not lost, not released). */
  get held(): boolean {
    return !this.released && this.lostError === undefined;
  }

  /** A transaction that succeeds only while this is still held (the server checks the fence, not this client). */
  txn(): TxnBuilder {
    return fencedTxn(this.client, this.fence);
  }

  /**
   * Give it up: delete the key (only if still ours) and, when the lease was granted for this holder, revoke it.
   * Idempotent. With a shared lease a failed delete throws (the key would otherwise stay as long as the lease);
   * with an own lease it never throws (the lease ends by itself within its TTL at worst).
   */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stopWatching();
    this.controller.abort(new OwnershipLostError(`fulcrum recipes: ${this.spot.key.toString()} was released`, 'key-deleted'));
    if (this.ownsLease) {
      await this.lease.close(); // revoking deletes the key with it
      return;
    }
    if (this.lostError === undefined) await leaveLine(this.client, this.spot);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  protected lose(reason: OwnershipLostReason, message: string, cause?: unknown): void {
    if (this.lostError !== undefined || this.released) return;
    this.lostError = new OwnershipLostError(message, reason, cause);
    this.stopWatching();
    this.controller.abort(this.lostError);
    this.emit('lost', this.lostError);
    // A holder that lost its own lease gives the lease up too: nothing else of it is still to be trusted.
    if (this.ownsLease) void this.lease.close();
  }

  /** Values written to the own key (an election's proclamations) are reported here by subclasses. */
  protected onOwnPut(_value: Buffer, _modRevision: number): void {}

  private stopWatching(): void {
    this.lease.off('lost', this.onLeaseLost);
    if (this.ownWatch !== undefined) cancelWatch(this.ownWatch);
  }

  /** Watch the own key from the grant on; when the watch cannot resume (compacted), read the key instead. */
  private async watchOwnKey(fromRevision: number): Promise<void> {
    let from = fromRevision;
    while (this.held) {
      try {
        const watch = this.client.watch(this.spot.key, { startRevision: from });
        this.ownWatch = watch;
        for await (const e of watch) {
          if (!this.held) break;
          if (e.type === 'delete' || e.kv.createRevision !== this.spot.createRevision) {
            return this.lose('key-deleted', `fulcrum recipes: ${this.spot.key.toString()} was deleted at revision ${e.revision}`);
          }
          this.onOwnPut(e.kv.value, e.kv.modRevision);
        }
        return; // cancelled: released or lost
      } catch (e) {
        if (!this.held) return;
        if (e instanceof FulcrumClientError && e.code === 'CLIENT_CLOSED') return this.lose('client-closed', 'fulcrum recipes: the client was closed', e);
        if (!(e instanceof CompactedError)) return this.lose('key-deleted', `fulcrum recipes: cannot follow ${this.spot.key.toString()} any more`, e);
        from = await this.recheck();
      }
    }
  }

  /** After a compacted watch: is the key still ours? Resolves with the revision to watch from next. */
  private async recheck(): Promise<number> {
    try {
      const r = await this.client.range(this.spot.key);
      const kv = r.kvs[0];
      if (kv === undefined || kv.createRevision !== this.spot.createRevision) this.lose('key-deleted', `fulcrum recipes: ${this.spot.key.toString()} is gone`);
      return r.revision + 1;
    } catch (e) {
      this.lose('key-deleted', `fulcrum recipes: cannot read ${this.spot.key.toString()} any more`, e);
      return 0;
    }
  }
}
