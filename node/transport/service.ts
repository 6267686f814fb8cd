// The RaftTransport service a member registers on its peer gRPC server:
//   server.addService(peerTransportService(), createRaftTransportService(transport))
import * as grpc from '@grpc/grpc-js';
import type { MemberInfo, SnapshotChunk } from '../../proto/index.js';
import type { PeerBatch } from './batch-codec.js';
import { statusError, type PeerTransportHandlers } from './grpc-util.js';
import { shouldAck } from './limits.js';
import { receiveSnapshot } from './snapshot.js';
import type { GrpcPeerTransport } from './transport.js';
import { trace } from '../trace.js';

export function createRaftTransportService(transport: GrpcPeerTransport): PeerTransportHandlers {
  return {
    Handshake(call, callback) {
      const r = transport.handshake(call.request);
      if (r.error !== undefined) callback(r.error);
      else callback(null, { member: r.member ?? null, assigned_member_id: r.assignedMemberId ?? 0, assigns_member_ids: r.assignedMemberId !== undefined });
    },

    Send(call) {
      // The first frame must carry a hello that admit() accepts; after that, every frame is stepped in order.
      let from: number | undefined;
      let hello: MemberInfo | undefined;
      let refused = false;
      const forget = transport.trackInbound(call);
      const refuse = (error: grpc.ServiceError): void => {
        refused = true;
        call.emit('error', error);
      };
      call.on('data', (batch: PeerBatch) => {
        if (refused) return;
        if (from === undefined) {
          const error = transport.admit(batch.hello);
          if (error !== undefined) return refuse(error);
          hello = batch.hello!;
          from = Number(hello.member_id); // admit() checked it is an exact id
        }
        trace(() => `recv from=${from!.toString(16)} n=${batch.messages.length}`);
        transport.receive(from, batch);
        const removed = transport.refusalAfterBatch(from, hello!);
        if (removed !== undefined) return refuse(removed);
        // Acks are flow control for the sender's in-flight window, not delivery guarantees. They are cumulative,
        // so only the first batch (the sender resets its back-off on it) and every SEND_ACK_EVERY-th are acked:
        // an ack per batch was half the frames on the wire at low load, each costing both ends a wake-up.
        if (shouldAck(batch.seq)) call.write({ seq: batch.seq });
      });
      call.on('end', () => call.end());
      call.on('error', () => forget()); // cancelled by the sender: nothing to answer
      call.on('close', () => forget());
      call.on('finish', () => forget());
    },

    SendSnapshot(call, callback) {
      const ctx = transport.snapshotReceiver();
      if (ctx === undefined) {
        callback(statusError(grpc.status.RESOURCE_EXHAUSTED, 'fulcrum: another snapshot transfer is in progress'));
        return;
      }
      const forget = transport.trackInbound({ end: () => call.destroy() });
      receiveSnapshot(call as AsyncIterable<SnapshotChunk>, ctx).then(
        (ack) => callback(null, ack),
        (e: grpc.ServiceError) => callback(e),
      ).finally(() => {
        forget();
        transport.snapshotReceiverDone();
      });
    },
  };
}
