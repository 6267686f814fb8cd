// Small gRPC helpers shared by both ends of the transport.
import * as grpc from '@grpc/grpc-js';
import { loadEtcdApi, type BidiStream, type BidiStreamCall, type ClientMethod, type Handlers, type RaftTransportMethods, type SendAck } from '../../proto/index.js';
import { decodePeerBatch, decodeSendAck, encodeSendAck, type PeerBatch } from './batch-codec.js';
import { PEER_KEEPALIVE_MS, PEER_KEEPALIVE_TIMEOUT_MS } from './limits.js';

/**
 * RaftTransport as members serve it: Send's batches arrive decoded by batch-codec.ts (Raft messages, not
 * proto-loader objects), and go out as the bytes encodePeerBatch wrote; its acks are batch-codec.ts's too.
 */
export type PeerTransportMethods = Omit<RaftTransportMethods, 'Send'> & { Send: BidiStream<PeerBatch, SendAck> };
export type PeerTransportHandlers = Handlers<PeerTransportMethods>;

export type RaftTransportClient = grpc.Client & {
  Handshake: ClientMethod<RaftTransportMethods['Handshake']>;
  SendSnapshot: ClientMethod<RaftTransportMethods['SendSnapshot']>;
  /** Writes a batch's bytes from encodePeerBatch. */
  Send: BidiStreamCall<Buffer, SendAck>;
};

let peerService: grpc.ServiceDefinition | undefined;
let PeerClient: grpc.ServiceClientConstructor | undefined;

/**
 * The RaftTransport service definition with Send's requests and acks in the peer transport's own codec: what a
 * member's peer server adds (`server.addService(peerTransportService(), handlers)`) and its peers dial. The bytes
 * are the same MessageBatch and SendAck as the .proto's, so a client encoding objects with protobufjs (the tests'
 * raw clients) is understood too.
 */
export function peerTransportService(): grpc.ServiceDefinition {
  if (peerService !== undefined) return peerService;
  const base = loadEtcdApi().fulcrum.raftpb.RaftTransport.service;
  const send = base['Send'] as grpc.MethodDefinition<unknown, unknown>;
  const requestSerialize = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : send.requestSerialize(v));
  peerService = { ...base, Send: { ...send, requestSerialize, requestDeserialize: decodePeerBatch, responseSerialize: encodeSendAck, responseDeserialize: decodeSendAck } };
  return peerService;
}

/**
 * The peer protocol version this build speaks (MemberInfo.protocol_version); members refuse any other, so members
 * of two versions never exchange anything and act as partitioned from each other. Version 2: the state machine's
 * key layout changed (docs/storage.md, "Key order and LevelDB compaction"), and a snapshot image from a version 2
 * leader installed by a version 1 member would leave it without its exactly-once table, so its later applies
 * could differ from the others'.
 */
export const PEER_PROTOCOL_VERSION = 2;

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
  PeerClient ??= grpc.makeGenericClientConstructor(peerTransportService(), 'RaftTransport');
  return new PeerClient(grpcTarget(peerUrl), credentials, {
    // Members reconnect on their own schedule (Backoff); keep grpc-js's own retries out of the way.
    'grpc.enable_retries': 0,
    // The channel has its own reconnect back-off (1 s growing to 120 s by default): after a long outage it would
    // keep failing our attempts fast for up to two minutes after the peer is back. Bound it by ours.
    'grpc.initial_reconnect_backoff_ms': backoff.reconnectMinMs,
    'grpc.max_reconnect_backoff_ms': backoff.reconnectMaxMs,
    'grpc.keepalive_time_ms': PEER_KEEPALIVE_MS,
    'grpc.keepalive_timeout_ms': PEER_KEEPALIVE_TIMEOUT_MS,
  }) as unknown as RaftTransportClient;
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
