// The receiving side of the peer transport on a member's peer gRPC server. On Node's HTTP/2 (--http2-engine=node),
// RaftTransport's Send (the Raft message stream) and Handshake are read straight from Node's HTTP/2 streams by the
// fast path (node/api/fast-path.ts), and SendSnapshot, a client-streaming call, by grpc-js.
//
// Why: on a follower, grpc-js's server-side call machinery (a call object, metadata, its stream wrappers and one
// native write per ack) was about a twentieth of the main thread at a few thousand puts a second, for a stream
// that carries one message type each way. FULCRUM_PEER_RECV=grpc-js leaves every call to grpc-js, for
// side-by-side runs. On Fulcrum's own HTTP/2 engine (a member's default, as for the client API: --http2-engine;
// node/server.ts, servePeersOnEngine) every call, SendSnapshot included, is on the fast path; FULCRUM_PEER_RECV=
// engine|fast-path|grpc-js chooses regardless of the flag.
import type * as grpc from '@grpc/grpc-js';
import { FastPath } from '../api/fast-path.js';
import type { StreamHandler } from '../h2/server.js';
import { CallBudget } from '../api/limits.js';
import { peerTransportService } from './grpc-util.js';
import { PEER_CONNECTIONS_MAX, PEER_MESSAGE_BYTES_MAX, switchFromEnv } from './limits.js';
import { createRaftTransportService } from './service.js';
import type { GrpcPeerTransport } from './transport.js';

/** What serves the peer port's calls: see the top of this file. */
export type PeerReceiveOn = 'fast-path' | 'grpc-js' | 'engine';

/** FULCRUM_PEER_RECV when it names one, else `fallback` (the server's follows --http2-engine). */
export function peerReceiveOnFromEnv(env: NodeJS.ProcessEnv, fallback: PeerReceiveOn = 'fast-path'): PeerReceiveOn {
  return switchFromEnv(env.FULCRUM_PEER_RECV, ['engine', 'fast-path', 'grpc-js'], fallback);
}

export interface PeerService {
  readonly receiveOn: PeerReceiveOn;
  /** Put the fast path in front of grpc-js on every listener `server` has bound so far (call after binding). */
  install(server: grpc.Server): void;
  /** Every call on Fulcrum's HTTP/2 engine goes here (receiveOn 'engine'). */
  readonly engineStreamHandler: StreamHandler;
  /** Calls the fast path served (tests check that Send went that way). */
  readonly served: number;
}

/** Register RaftTransport on `server` for `transport`; install() once the server is bound. */
export function addPeerService(server: grpc.Server, transport: GrpcPeerTransport, receiveOn: PeerReceiveOn = peerReceiveOnFromEnv(process.env)): PeerService {
  const service = peerTransportService();
  const fast = new FastPath(
    { receiveMessageBytesMax: PEER_MESSAGE_BYTES_MAX, sendMessageBytesMax: PEER_MESSAGE_BYTES_MAX },
    // Each peer connection carries one Send stream and the odd Handshake: PEER_CONNECTIONS_MAX bounds both.
    new CallBudget({ unaryCallsPerMemberMax: PEER_CONNECTIONS_MAX, streamsPerMemberMax: PEER_CONNECTIONS_MAX }),
    // On the engine there is no grpc-js behind the path: it serves SendSnapshot too (FastClientStreamCall).
    new Set(receiveOn === 'engine' ? [service.Send!.path, service.SendSnapshot!.path] : [service.Send!.path]),
  );
  fast.addService(server, service, createRaftTransportService(transport) as unknown as Record<string, unknown>);
  return {
    receiveOn,
    install: (s) => {
      if (receiveOn === 'fast-path') fast.install(s);
    },
    engineStreamHandler: fast.engineStreamHandler,
    get served() {
      return fast.served;
    },
  };
}
