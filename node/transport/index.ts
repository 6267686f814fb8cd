// The peer transport: Raft messages between members over gRPC (docs/transport.md).
export { GrpcPeerTransport, type GrpcPeerTransportOptions, peerSendOverFromEnv } from './transport.js';
export { createRaftTransportService } from './service.js';
export { addPeerService, peerReceiveOnFromEnv, type PeerReceiveOn, type PeerService } from './peer-server.js';
export { TRANSPORT_LIMITS_DEFAULTS, PEER_CONNECTIONS_MAX, PEER_RECEIVE_WINDOW_BYTES, PEER_SERVER_OPTIONS, PEER_MESSAGE_BYTES_MAX, validateTransportLimits, type TransportLimits } from './limits.js';
export type { TransportStats, PeerStats } from './stats.js';
export { messageFromWire, messageToWire, WireFormatError } from './convert.js';
export { REFUSAL, PEER_PROTOCOL_VERSION, peerTransportService } from './grpc-util.js';
