// Every bound of the peer transport, named in one place (defaults, then a validate that returns a frozen copy).

export interface TransportLimits {
  /** Messages waiting for one peer. etcd's stream buffer holds 4096; beyond it Raft's own retries are cheaper. */
  readonly queueMessagesMax: number;
  /** Bytes (estimated, see messageBytes) waiting for one peer: bounds memory when appends are large. */
  readonly queueBytesMax: number;
  /** Messages in one MessageBatch frame. */
  readonly batchMessagesMax: number;
  /**
   * Bytes in one MessageBatch frame. Kept well under gRPC's default 4 MiB receive limit; a single message
   * larger than this still goes out, alone (see PEER_SERVER_OPTIONS for the receiving side).
   */
  readonly batchBytesMax: number;
  /** Batches written but not yet acknowledged by the receiver: flow control on the long-lived stream. */
  readonly inflightBatchesMax: number;
  /** First reconnect delay after a failure; doubles per failure up to reconnectMaxMs (with jitter). */
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /** Deadline of one Handshake call (the peer is then reported unreachable). */
  readonly handshakeTimeoutMs: number;
  /** Deadline of one whole snapshot transfer, sender side. */
  readonly snapshotSendTimeoutMs: number;
  /** Largest snapshot image a receiver accepts (checked on the first chunk, against total_bytes). */
  readonly snapshotBytesMax: number;
  /** Largest data field of one SnapshotChunk (larger file frames are split). */
  readonly snapshotChunkBytesMax: number;
}

export const TRANSPORT_LIMITS_DEFAULTS: TransportLimits = Object.freeze({
  queueMessagesMax: 4096,
  queueBytesMax: 64 * 1024 * 1024,
  batchMessagesMax: 512,
  batchBytesMax: 2 * 1024 * 1024,
  inflightBatchesMax: 32,
  reconnectMinMs: 50,
  reconnectMaxMs: 2_000,
  handshakeTimeoutMs: 2_000,
  snapshotSendTimeoutMs: 10 * 60_000,
  snapshotBytesMax: 8 * 1024 * 1024 * 1024,
  snapshotChunkBytesMax: 1024 * 1024,
});

/**
 * The receiver acks the first batch of a stream and then every SEND_ACK_EVERY-th (acks are cumulative). A
 * sender's in-flight window must hold at least two such spans, or it could stall waiting for an ack that is only
 * sent once more batches arrive.
 */
export const SEND_ACK_EVERY = 8;

export function shouldAck(seq: number): boolean {
  return seq === 1 || seq % SEND_ACK_EVERY === 0;
}

/** Largest gRPC message the peer server must accept: one append of maxSizePerMsg plus one maximal request. */
export const PEER_MESSAGE_BYTES_MAX = 16 * 1024 * 1024;

/**
 * Connections open at once on each peer listener. A member dials each peer over two connections (a grpc-js channel
 * for Handshake, and its Send connection, h2-send.ts) plus short-lived ones for snapshots, joins and forwarded
 * requests, so a 7-member cluster needs a few dozen; the bound is for whoever else reaches the peer port
 * (docs/limits.md).
 */
export const PEER_CONNECTIONS_MAX = 1_000;

/**
 * HTTP/2 flow-control window a member's peer listener grants each connection and each stream on it (the receive
 * side's `initialWindowSize` setting and the connection's local window). At HTTP/2's default of 64 KiB, a leader's
 * append of 100 puts (~41 KB) never fitted in what the follower had left to grant: the last ~450 bytes waited for a
 * WINDOW_UPDATE, which the leader reads only once its own WAL write has been built, so the follower got the whole
 * append ~1 ms later (docs/performance.md, thirty-first session). 1 MiB, Go's HTTP/2 server default: the receiver
 * reads as data comes, so this bounds nothing in practice; PEER_MESSAGE_BYTES_MAX does.
 */
export const PEER_RECEIVE_WINDOW_BYTES = 1024 * 1024;

/**
 * A connection to a peer is pinged after this long and dropped if the ping is not answered within the timeout:
 * a peer behind a silent network is noticed in seconds, not at TCP's timeout. Both the grpc-js channel
 * (Handshake, snapshots) and the Send connection (h2-send.ts) use them.
 */
export const PEER_KEEPALIVE_MS = 10_000;
export const PEER_KEEPALIVE_TIMEOUT_MS = 5_000;

/** Channel options for the peer gRPC server (the server composition passes these to `new grpc.Server`). */
export const PEER_SERVER_OPTIONS = Object.freeze({
  'grpc.max_receive_message_length': PEER_MESSAGE_BYTES_MAX,
});

export function validateTransportLimits(input: Partial<TransportLimits> = {}): TransportLimits {
  const l: TransportLimits = { ...TRANSPORT_LIMITS_DEFAULTS, ...input };
  for (const [name, v] of Object.entries(l)) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`transport limit ${name} must be a positive integer, got ${String(v)}`);
  }
  if (l.reconnectMaxMs < l.reconnectMinMs) throw new RangeError('transport limit reconnectMaxMs must be >= reconnectMinMs');
  if (l.inflightBatchesMax < 2 * SEND_ACK_EVERY) throw new RangeError(`transport limit inflightBatchesMax must be >= ${2 * SEND_ACK_EVERY} (acks come every ${SEND_ACK_EVERY} batches)`);
  if (l.batchBytesMax > PEER_MESSAGE_BYTES_MAX) throw new RangeError(`transport limit batchBytesMax must be <= ${PEER_MESSAGE_BYTES_MAX}`);
  if (l.snapshotChunkBytesMax > PEER_MESSAGE_BYTES_MAX / 2) throw new RangeError('transport limit snapshotChunkBytesMax is too large for one gRPC message');
  return Object.freeze(l);
}

/**
 * A measurement switch (FULCRUM_PEER_SEND, FULCRUM_PEER_RECV): the environment's value when it is one of
 * `choices`, else `fallback` (a member's follows --http2-engine).
 */
export function switchFromEnv<T extends string>(value: string | undefined, choices: readonly T[], fallback: T): T {
  return choices.includes(value as T) ? (value as T) : fallback;
}
