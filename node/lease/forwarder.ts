// Follower -> leader forwarding of the two lease calls only the leader can answer (its tracker holds the
// deadlines): keep-alive and time-to-live. Over the leader's client gRPC port, with one cached client per leader
// target, marked with FORWARDED_METADATA_KEY so that a member that is no longer leader refuses rather than
// forwarding again (no loops while leadership moves).
import * as grpc from '@grpc/grpc-js';
import { apiError, isCodedError } from '../api/errors.js';
import { loadEtcdApi, type LeaseMethods, type TypedClient } from '../../proto/index.js';
import { grpcTarget } from '../transport/grpc-util.js';
import type { LeaseId } from '../../storage/lease/index.js';
import { PLAINTEXT_DIAL, type DialCredentials } from '../tls.js';

/** Request metadata that marks a forwarded call. */
export const FORWARDED_METADATA_KEY = 'fulcrum-lease-forwarded';
/** Cached leader clients at most; the oldest is closed first (a cluster has a handful of members). */
export const FORWARD_CLIENTS_MAX = 8;

export interface ForwardedTimeToLive {
  /** -1 when the lease does not exist (etcd's answer). */
  readonly ttlSeconds: number;
  readonly grantedTtlSeconds: number;
  readonly keys: readonly Uint8Array[];
}

export class LeaderForwarder {
  private readonly clients = new Map<string, TypedClient<LeaseMethods>>();

  /** dial: credentials for the leader's client URL (https needs this member's client TLS, as etcd's gateway does). */
  constructor(private readonly dial: DialCredentials = PLAINTEXT_DIAL) {}

  /** Renew on the leader over one short bidi stream (one request, one answer); resolves with the TTL. */
  keepAlive(target: string, id: LeaseId, timeoutMs: number, token?: string): Promise<number> {
    const call = this.client(target).LeaseKeepAlive(forwardedMetadata(token), { deadline: Date.now() + timeoutMs });
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        fn();
        call.end();
      };
      call.on('data', (res) => settle(() => (BigInt(res.TTL) <= 0n ? reject(apiError('LEASE_NOT_FOUND')) : resolve(Number(res.TTL)))));
      call.on('error', (e) => settle(() => reject(forwardError(e))));
      call.on('end', () => settle(() => reject(apiError('TIMEOUT'))));
      call.write({ ID: id });
    });
  }

  timeToLive(target: string, id: LeaseId, keys: boolean, timeoutMs: number, token?: string): Promise<ForwardedTimeToLive> {
    return new Promise((resolve, reject) => {
      this.client(target).LeaseTimeToLive({ ID: id, keys }, forwardedMetadata(token), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err !== null || res === undefined) return reject(forwardError(err));
        resolve({ ttlSeconds: Number(res.TTL), grantedTtlSeconds: Number(res.grantedTTL), keys: res.keys });
      });
    });
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  /** target: the leader's client URL (`http://` or `https://`), cached by URL. */
  private client(target: string): TypedClient<LeaseMethods> {
    const cached = this.clients.get(target);
    if (cached !== undefined) return cached;
    if (this.clients.size >= FORWARD_CLIENTS_MAX) {
      const [oldest, client] = this.clients.entries().next().value!;
      client.close();
      this.clients.delete(oldest);
    }
    const Lease = loadEtcdApi().etcdserverpb.Lease;
    const client = new Lease(grpcTarget(target), this.dial(target));
    this.clients.set(target, client);
    return client;
  }
}

/** The client's auth token travels with the forwarded call: the leader checks the caller as any member would. */
function forwardedMetadata(token?: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(FORWARDED_METADATA_KEY, '1');
  if (token !== undefined) md.set('token', token);
  return md;
}

/** Whether a server call was forwarded by another member. */
export function isForwarded(metadata: grpc.Metadata): boolean {
  return metadata.get(FORWARDED_METADATA_KEY).length > 0;
}

/**
 * The leader's "lease not found" passes through; any other failure (the leader moved, died, timed out) is a
 * timeout to the client, which retries, as etcd's follower answers when its forward fails.
 */
function forwardError(e: unknown): Error {
  const se = e as Partial<grpc.ServiceError> | null;
  if (se?.code === grpc.status.NOT_FOUND) return apiError('LEASE_NOT_FOUND');
  if (isCodedError(e) && e.code === 'LEASE_NOT_FOUND') return apiError('LEASE_NOT_FOUND');
  return apiError('TIMEOUT');
}
