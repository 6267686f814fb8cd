// Leader election as a client-side recipe (etcd's concurrency.Election, same key layout <name>/<lease hex>, so
// etcd clients and `etcdctl elect` see the same election; see line.ts for the line itself).
//
//   const election = new Election(client, 'elections/scheduler');
//   const leadership = await election.campaign('node-a:8080', { signal });  // waits in line
//   leadership.token                     // fencing token: the key's create revision
//   leadership.signal / on('lost')       // the lease or the key went away
//   await leadership.proclaim('node-a:8081');
//   await leadership.resign();
//
//   for await (const leader of election.observe({ signal })) console.log(leader.valueText, leader.token);
import type { Client } from '../client.js';
import { type Bytes, toBuffer } from '../bytes.js';
import { AbortedError, CompactedError, FulcrumClientError } from '../errors.js';
import type { CallOptions } from '../rpc.js';
import { Compare, Op } from '../txn.js';
import type { KeyValue } from '../types.js';
import { cancelWatch, linePrefix } from './line.js';
import type { Watch } from '../watch.js';

/** The watch, cancelled (once accepted: cancelWatch) when the signal aborts. */
function watchUntil(watch: Watch, signal: AbortSignal | undefined): Watch {
  if (signal === undefined) return watch;
  if (signal.aborted) {
    cancelWatch(watch);
    return watch;
  }
  const onAbort = (): void => cancelWatch(watch);
  signal.addEventListener('abort', onAbort, { once: true });
  watch.once('end', () => signal.removeEventListener('abort', onAbort)); // one observer, many watches: no pile-up
  return watch;
}
import { Ownership } from './ownership.js';
import { enterLine, type ParticipantOptions } from './participant.js';

export type ElectionOptions = ParticipantOptions;

/** Who leads: the participant with the lowest create revision, and what it proclaimed. */
export interface ElectionLeader {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly valueText: string;
  /** The leader's fencing token (its key's create revision). */
  readonly token: number;
  readonly lease: bigint;
  /** The revision of the leader's latest proclamation. */
  readonly revision: number;
}

function toLeader(kv: KeyValue): ElectionLeader {
  return { key: kv.key, value: kv.value, valueText: kv.valueText, token: kv.createRevision, lease: kv.lease, revision: kv.modRevision };
}

/** etcd's ErrElectionNotLeader, with its message. */
export function notLeaderError(): FulcrumClientError {
  return new FulcrumClientError('FAILED_PRECONDITION', 'election: not leader', false);
}

/** A won election: proclaim new values while it lasts; resign (or `await using`) to hand over. */
export class Leadership extends Ownership {
  private current!: Buffer;

  /** The value this leader proclaimed last (as far as this client saw). */
  get value(): Buffer {
    return this.current;
  }

  /** @internal */
  setValue(v: Buffer): void {
    this.current = v;
  }

  /** Change the leader's value, only while still leader (else 'election: not leader', FAILED_PRECONDITION). */
  async proclaim(value: Bytes, o: CallOptions = {}): Promise<number> {
    const v = toBuffer(value);
    const r = await this.client.txn().if(Compare.createRevision(this.key, '=', this.token)).then(Op.put(this.key, v, { lease: this.lease })).commit(o);
    if (!r.succeeded) throw notLeaderError();
    this.current = v;
    return r.revision;
  }

  /** Step down: the next in line becomes leader. Same as release(). */
  resign(): Promise<void> {
    return this.release();
  }

  protected override onOwnPut(value: Buffer): void {
    this.current = value;
  }
}

export class Election {
  private readonly prefix: Buffer;

  constructor(
    private readonly client: Client,
    /** The election's name: participants' keys are `<name>/<lease hex>` in the client's namespace. */
    readonly name: Bytes,
    private readonly options: ElectionOptions = {},
  ) {
    this.prefix = linePrefix(name);
  }

  /**
   * Stand for election with `value` and wait to win. The signal cancels the wait (AbortedError) and withdraws
   * the candidacy. A candidate under a shared lease that stands again with a new value proclaims it (etcd).
   */
  async campaign(value: Bytes, o: CallOptions = {}): Promise<Leadership> {
    const v = toBuffer(value);
    const e = (await enterLine(this.client, this.prefix, v, this.options, { ...o, wait: true }))!;
    const leadership = new Leadership(this.client, e.spot, e.lease, e.ownsLease, e.grantedAt);
    leadership.setValue(e.spot.existingValue ?? v);
    if (e.spot.existingValue !== undefined && !e.spot.existingValue.equals(v)) await leadership.proclaim(v, o);
    return leadership;
  }

  /** The current leader, or undefined when nobody stands. */
  async leader(o: CallOptions = {}): Promise<ElectionLeader | undefined> {
    const r = await this.client.range({ prefix: this.prefix }, { ...o, limit: 1, sort: { target: 'createRevision', order: 'ascend' } });
    return r.kvs[0] === undefined ? undefined : toLeader(r.kvs[0]);
  }

  /**
   * The leader now (if any), then every proclamation and every next leader, in order; never the same version
   * twice. Ends when the signal aborts; throws when the client closes.
   */
  async *observe(o: { signal?: AbortSignal } = {}): AsyncGenerator<ElectionLeader> {
    let last: ElectionLeader | undefined;
    const signal = o.signal;
    while (signal?.aborted !== true) {
      let r;
      try {
        r = await this.client.range({ prefix: this.prefix }, { limit: 1, sort: { target: 'createRevision', order: 'ascend' }, ...(signal ? { signal } : {}) });
      } catch (e) {
        if (e instanceof AbortedError) return;
        throw e;
      }
      const first = r.kvs[0];
      try {
        if (first === undefined) {
          await this.nextPut(r.revision + 1, signal);
          continue;
        }
        const leader = toLeader(first);
        if (last === undefined || !last.key.equals(leader.key) || last.revision !== leader.revision) yield (last = leader);
        for await (const e of watchUntil(this.client.watch(first.key, { startRevision: r.revision + 1 }), signal)) {
          if (e.type === 'delete' || e.kv.createRevision !== first.createRevision) break;
          yield (last = toLeader(e.kv));
        }
      } catch (e) {
        if (!(e instanceof CompactedError)) throw e; // compacted: read the leader again
      }
    }
  }

  /** Wait for the first put under the prefix from `fromRevision` (someone stands). */
  private async nextPut(fromRevision: number, signal: AbortSignal | undefined): Promise<void> {
    for await (const e of watchUntil(this.client.watch({ prefix: this.prefix }, { startRevision: fromRevision, noDelete: true }), signal)) {
      if (e.type === 'put') return;
    }
  }
}
