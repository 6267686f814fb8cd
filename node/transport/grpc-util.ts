// Small gRPC helpers shared by both ends of the transport.
import * as grpc from '@grpc/grpc-js';
import { loadEtcdApi, type RaftTransportMethods, type TypedClient } from '../../proto/index.js';

export type RaftTransportClient = TypedClient<RaftTransportMethods>;

/** The peer protocol version this build speaks (MemberInfo.protocol_version). */
export const PEER_PROTOCOL_VERSION = 1;

/** Status details a refusing member sends; the sender logs them as they are. */
export const REFUSAL = Object.freeze({
  clusterMismatch: 'fulcrum: cluster ID mismatch',
  memberRemoved: 'fulcrum: member removed',
  memberMismatch: 'fulcrum: member ID mismatch',
  missingHello: 'fulcrum: first frame carries no hello',
  protocolVersion: 'fulcrum: unsupported peer protocol version',
});

/**
 * `http://host:port` or `https://host:port` (a member's peer or client URL) as a grpc-js target. The scheme is
 * not part of the target: the credentials carry it (node/tls.ts dialCredentials), and with https the host here is
 * the name the member's certificate must show.
 */
export function grpcTarget(memberUrl: string): string {
  const u = new URL(memberUrl);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`fulcrum: member URL ${memberUrl}: only http:// and https:// are supported`);
  if (u.port === '') throw new Error(`fulcrum: member URL ${memberUrl} has no port`);
  return u.host;
}

export function newRaftTransportClient(
  peerUrl: string,
  credentials: grpc.ChannelCredentials,
  backoff: { reconnectMinMs: number; reconnectMaxMs: number },
): RaftTransportClient {
  return new (loadEtcdApi().fulcrum.raftpb.RaftTransport)(grpcTarget(peerUrl), credentials, {
    // Members reconnect on their own schedule (Backoff); keep grpc-js's own retries out of the way.
    'grpc.enable_retries': 0,
    // The channel has its own reconnect back-off (1 s growing to 120 s by default): after a long outage it would
    // keep failing our attempts fast for up to two minutes after the peer is back. Bound it by ours.
    'grpc.initial_reconnect_backoff_ms': backoff.reconnectMinMs,
    'grpc.max_reconnect_backoff_ms': backoff.reconnectMaxMs,
    // Detect a dead peer behind a silent network within seconds, not at the next TCP timeout.
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
  });
}

/** An error that ends a call with this status, for a handler's callback or a stream's 'error' event. */
export function statusError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

export function isServiceError(e: unknown): e is grpc.ServiceError {
  return e instanceof Error && typeof (e as Partial<grpc.ServiceError>).code === 'number';
}

export function deadlineIn(ms: number): Date {
  return new Date(Date.now() + ms);
}
