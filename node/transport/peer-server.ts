// The receiving side of the peer transport on a member's peer gRPC server: RaftTransport's Send (the Raft message
// stream) and Handshake are read straight from Node's HTTP/2 streams by the fast path (node/api/fast-path.ts), and
// SendSnapshot, a client-streaming call the fast path does not serve, by grpc-js.
//
// Why: on a follower, grpc-js's server-side call machinery (a call object, metadata, its stream wrappers and one
// native write per ack) was about a twentieth of the main thread at a few thousand puts a second, for a stream
// that carries one message type each way. FULCRUM_PEER_RECV=grpc-js leaves every call to grpc-js, for
// side-by-side runs.
import type * as grpc from '@grpc/grpc-js';
import { FastPath } from '../api/fast-path.js';
import { CallBudget } from '../api/limits.js';
import { peerTransportService } from './grpc-util.js';
import { PEER_CONNECTIONS_MAX, PEER_MESSAGE_BYTES_MAX } from './limits.js';
import { createRaftTransportService } from './service.js';
import type { GrpcPeerTransport } from './transport.js';

export interface PeerService {
  /** Put the fast path in front of grpc-js on every listener `server` has bound so far (call after binding). */
  install(server: grpc.Server): void;
  /** Calls the fast path served (tests check that Send went that way). */
  readonly served: number;
}

/** Register RaftTransport on `server` for `transport`; install() once the server is bound. */
export function addPeerService(server: grpc.Server, transport: GrpcPeerTransport, env: NodeJS.ProcessEnv = process.env): PeerService {
  const fast = new FastPath(
    { receiveMessageBytesMax: PEER_MESSAGE_BYTES_MAX, sendMessageBytesMax: PEER_MESSAGE_BYTES_MAX },
    // Each peer connection carries one Send stream and the odd Handshake: PEER_CONNECTIONS_MAX bounds both.
    new CallBudget({ unaryCallsPerMemberMax: PEER_CONNECTIONS_MAX, streamsPerMemberMax: PEER_CONNECTIONS_MAX }),
    new Set([peerTransportService().Send!.path]),
  );
  fast.addService(server, peerTransportService(), createRaftTransportService(transport) as unknown as Record<string, unknown>);
  const onGrpcJs = env.FULCRUM_PEER_RECV === 'grpc-js';
  return {
    install: (s) => {
      if (!onGrpcJs) fast.install(s);
    },
    get served() {
      return fast.served;
    },
  };
}
