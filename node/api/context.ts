// What every client-facing service is built from. The server (node/server.ts) creates one ApiContext per member
// and hands it to each service factory: createKvService(ctx), createWatchService(ctx), createLeaseService(ctx), ...
import type { Logger } from 'pino';
import type { Member } from '../member.js';
import type { DialCredentials } from '../tls.js';

export interface ApiLimits {
  /** etcd's --max-request-bytes. */
  readonly requestBytesMax: number;
  /** Operations in one Txn (etcd's --max-txn-ops). */
  readonly txnOpsMax: number;
  /** Deadline for a request that goes through Raft, when the client sets none. */
  readonly requestTimeoutMs: number;
}

export const API_LIMITS_DEFAULTS: ApiLimits = {
  requestBytesMax: 1.5 * 1024 * 1024,
  txnOpsMax: 128,
  requestTimeoutMs: 7_000,
};

export interface ApiContext {
  readonly member: Member;
  readonly logger: Logger;
  readonly limits: ApiLimits;
  /** This member's name and URLs as configured (for Status, MemberList before publish, and the like). */
  readonly self: { readonly name: string; readonly clientUrls: readonly string[]; readonly peerUrls: readonly string[] };
  /** Services register subsystems here that other services use (the watch hub, the lease manager). */
  readonly registry: Map<string, unknown>;
  /** Credentials for calling another member's client URL (forwarding to the leader); plaintext only when absent. */
  readonly dial?: DialCredentials;
}
