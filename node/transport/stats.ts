// Counters of the transport as plain numbers; node/metrics turns them into prom-client series.

export interface TransportStats {
  /** Raft messages written to a peer's stream. */
  messagesSent: number;
  /** Raft messages dropped before sending: queue full, peer unknown or removed, peer disconnected, transport closed. */
  messagesDropped: number;
  /** Raft messages received and handed to this member's Raft. */
  messagesReceived: number;
  /** Received messages not handed over: addressed to another member, malformed, local-only, or sender mismatch. */
  messagesRejected: number;
  /** Streams and handshakes refused by a peer, or refused here (cluster id mismatch, removed member, ...). */
  peersRefused: number;
  /** Back-off waits cut short because the peer dialled us (it is up again): see Peer.peerIsUp. */
  reconnectsOnPeerUp: number;
  snapshotsSent: number;
  snapshotsSendFailed: number;
  snapshotsReceived: number;
  snapshotsReceiveFailed: number;
  snapshotBytesSent: number;
  snapshotBytesReceived: number;
}

export function emptyStats(): TransportStats {
  return {
    messagesSent: 0,
    messagesDropped: 0,
    messagesReceived: 0,
    messagesRejected: 0,
    peersRefused: 0,
    reconnectsOnPeerUp: 0,
    snapshotsSent: 0,
    snapshotsSendFailed: 0,
    snapshotsReceived: 0,
    snapshotsReceiveFailed: 0,
    snapshotBytesSent: 0,
    snapshotBytesReceived: 0,
  };
}

/** One outbound peer, as `transport.stats().peers` shows it. */
export interface PeerStats {
  readonly id: number;
  readonly connected: boolean;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  readonly url: string | undefined;
}
