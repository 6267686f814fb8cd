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
  // The limits below are described, with their errors, in docs/limits.md (node/api/limits.ts applies most).
  /** Largest response a read builds or the server sends (--max-response-bytes; grpc.max_send_message_length). */
  readonly responseBytesMax: number;
  /** HTTP/2 streams one connection may have open at once (etcd's --max-concurrent-streams). */
  readonly concurrentStreamsMax: number;
  /** Levels of nested txns in one Txn request (the outer txn is level 1). */
  readonly txnNestingMax: number;
  /** Compares and operations in one Txn request, summed over every nested txn. */
  readonly txnOpsTotalMax: number;
  /** Watches on one member, over all its streams (node/api/watch.ts bounds one stream). */
  readonly watchesPerMemberMax: number;
  /** Bytes of the keys and range ends that the member's watches hold: a watch may name a 1.5 MiB key. */
  readonly watchKeyBytesPerMemberMax: number;
  /** Unary calls in flight on one member. */
  readonly unaryCallsPerMemberMax: number;
  /** Streaming calls (Watch, LeaseKeepAlive, Observe, Snapshot) open on one member. */
  readonly streamsPerMemberMax: number;
}

export const API_LIMITS_DEFAULTS: ApiLimits = {
  requestBytesMax: 1.5 * 1024 * 1024,
  txnOpsMax: 128,
  requestTimeoutMs: 7_000,
  responseBytesMax: 16 * 1024 * 1024,
  concurrentStreamsMax: 1_000,
  // The command codec nests 3 levels per txn and allows 64 (storage/command.ts): 20 txn levels would fit.
  txnNestingMax: 16,
  txnOpsTotalMax: 8 * 128,
  watchesPerMemberMax: 100_000,
  watchKeyBytesPerMemberMax: 64 * 1024 * 1024,
  unaryCallsPerMemberMax: 10_000,
  streamsPerMemberMax: 10_000,
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
