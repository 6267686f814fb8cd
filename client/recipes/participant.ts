// Joining a line and waiting for the turn, with the lease that keeps the participant's key: shared by Lock and
// Election. A participant either brings a lease (a "session" shared by several recipes, as etcd's
// concurrency.Session) or gets one of its own per acquisition, revoked when it releases.
import type { Client } from '../client.js';
import { InvalidArgumentError } from '../errors.js';
import type { Lease } from '../lease.js';
import type { CallOptions } from '../rpc.js';
import { asClientError, joinLine, leaveLine, lineKey, readLine, type Spot, waitForTurn } from './line.js';

/**
 * TTL of the lease a lock or campaign grants for itself. It is how long a crashed (or paused) holder keeps
 * everyone else waiting, and how long a holder may go without reaching the cluster before it loses. etcd's
 * concurrency.Session uses 60 s; a coordination recipe is usually better served by a shorter one.
 */
export const RECIPE_TTL_SECONDS_DEFAULT = 10;

export interface ParticipantOptions {
  /**
   * Hold under this lease, kept alive by its owner (several locks and elections may share one). Releasing then
   * deletes only the key; losing the lease loses them all. Default: a lease of `ttlSeconds` per acquisition.
   */
  readonly lease?: Lease;
  /** TTL of the lease granted per acquisition (seconds; the server raises it to at least 2). */
  readonly ttlSeconds?: number;
}

export interface Entered {
  readonly spot: Spot;
  readonly lease: Lease;
  readonly ownsLease: boolean;
  /** The revision at which the grant was certain. */
  readonly grantedAt: number;
}

async function leaseFor(client: Client, o: ParticipantOptions, call: CallOptions): Promise<{ lease: Lease; owns: boolean }> {
  if (o.lease !== undefined) {
    if (o.lease.lost !== undefined) throw o.lease.lost;
    return { lease: o.lease, owns: false };
  }
  const ttl = o.ttlSeconds ?? RECIPE_TTL_SECONDS_DEFAULT;
  if (!Number.isSafeInteger(ttl) || ttl <= 0) throw new InvalidArgumentError(`fulcrum recipes: ttlSeconds must be a positive whole number, got ${String(ttl)}`);
  return { lease: await client.grantLease(ttl, call), owns: true };
}

/**
 * Join the line under `prefix` and, with `wait`, wait for the turn; without it, give up at once when someone
 * is ahead (resolves undefined). A failed, aborted or given-up attempt leaves the line (when this call put the
 * key there) and revokes its own lease.
 */
export async function enterLine(client: Client, prefix: Buffer, value: Buffer, o: ParticipantOptions, call: CallOptions & { wait: boolean }): Promise<Entered | undefined> {
  const { lease, owns } = await leaseFor(client, o, call);
  let spot: Spot | undefined;
  const stop = AbortSignal.any(call.signal === undefined ? [lease.signal] : [call.signal, lease.signal]);
  try {
    // The join is not cancelled by the caller's signal: an aborted join could leave a key of unknown fate in the
    // line under a shared lease. It is short; the wait after it is what the signal cancels.
    spot = await joinLine(client, lineKey(prefix, lease.id), value, lease.id, { signal: lease.signal });
    const grantedAt = call.wait ? await waitForTurn(client, prefix, spot, lease.id, stop) : await holdsNow(client, prefix, spot, stop);
    if (grantedAt === undefined) {
      await leave(client, spot, lease, owns);
      return undefined;
    }
    return { spot, lease, ownsLease: owns, grantedAt };
  } catch (e) {
    await leave(client, spot, lease, owns).catch(() => undefined);
    throw stop.aborted ? asClientError(stop.reason) : e;
  }
}

async function holdsNow(client: Client, prefix: Buffer, spot: Spot, signal: AbortSignal): Promise<number | undefined> {
  const view = await readLine(client, prefix, spot, { signal });
  return view.present && view.predecessor === undefined ? view.revision : undefined;
}

/** Leave what this attempt created: its own lease (revoking deletes the key), or the key it put under a shared one. */
async function leave(client: Client, spot: Spot | undefined, lease: Lease, owns: boolean): Promise<void> {
  if (owns) return lease.close();
  if (spot !== undefined && spot.existingValue === undefined && lease.lost === undefined) await leaveLine(client, spot);
}
