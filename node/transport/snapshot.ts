// Snapshot images between members: a MsgSnap never travels inside Send. The sender streams the image (a file of
// its snapshot store, or one its member made for this transfer: TransportHooks.openSnapshot) over SendSnapshot,
// one chunk at a time (each write awaited, so memory stays at one
// chunk however large the image); the receiver checks every chunk (continuity, CRC-32C, size) while writing it
// into its own snapshot store, commits the file, and only then hands the MsgSnap (metadata only) to Raft, whose
// Ready loop then finds the committed file by index and term.
//
//   sender                                   receiver
//   first chunk: hello + MsgSnap + data ──>  admit(hello), create(metadata)
//   chunk: offset, data, crc32c        ──>  offset == received? crc ok? received + len <= total? write
//   last chunk: last = true            ──>  received == total? commit, deliver MsgSnap
//                                      <──  SnapshotAck { received_bytes, applied: true }
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Encodable, MemberInfo, SnapshotAck, SnapshotChunk } from '../../proto/index.js';
import { MessageType, type Message, type SnapshotMetadata } from '../../raft/types.js';
import { crc32c } from '../../storage/crc32c.js';
import type { SnapshotSource, SnapshotStore, SnapshotWriter } from '../../storage/wal/snapshot.js';
import { int, messageFromWire, messageToWire, WireFormatError } from './convert.js';
import { deadlineIn, isServiceError, statusError, type RaftTransportClient } from './grpc-util.js';
import type { TransportLimits } from './limits.js';
import type { TransportStats } from './stats.js';

const EMPTY = new Uint8Array(0);

type ChunkCall = grpc.ClientWritableStream<Encodable<SnapshotChunk>>;

export interface SnapshotSendArgs {
  readonly client: RaftTransportClient;
  readonly message: Message;
  readonly hello: Encodable<MemberInfo>;
  /** The bytes of the snapshot `message.snapshot` names (released by the caller after the transfer). */
  readonly source: SnapshotSource;
  readonly limits: TransportLimits;
  readonly stats: TransportStats;
  /** Receives the call as soon as it exists, so close() can cancel it. */
  readonly onCall: (call: ChunkCall) => void;
}

/** Stream the image named by `message.snapshot` to the peer. Resolves true once the peer applied it. */
export async function sendSnapshot(a: SnapshotSendArgs): Promise<boolean> {
  const md = a.message.snapshot!.metadata;
  const reader = a.source;
  let settle!: (err: grpc.ServiceError | null, ack?: SnapshotAck) => void;
  const ackResult = new Promise<SnapshotAck>((resolve, reject) => {
    settle = (err, ack) => (err !== null ? reject(err) : resolve(ack!));
  });
  const call = a.client.SendSnapshot({ deadline: deadlineIn(a.limits.snapshotSendTimeoutMs) }, (err, ack) => settle(err, ack));
  ackResult.catch(() => {}); // observed by the writes' race and the final await
  a.onCall(call);
  // The Raft message without the image: the image travels as chunk data.
  const wireMessage = messageToWire({ ...a.message, snapshot: { metadata: md, data: EMPTY } });
  let offset = 0;
  const first = (): Partial<Encodable<SnapshotChunk>> => (offset === 0 ? { hello: a.hello, message: wireMessage } : {});
  if (reader.totalBytes === 0) {
    await writeChunk(call, { ...first(), offset: 0, data: EMPTY, total_bytes: 0, crc32c: crc32c(EMPTY), last: true }, ackResult);
  }
  for await (const fileChunk of reader.chunks()) {
    for (let at = 0; at < fileChunk.length; at += a.limits.snapshotChunkBytesMax) {
      const data = fileChunk.subarray(at, Math.min(fileChunk.length, at + a.limits.snapshotChunkBytesMax));
      const last = offset + data.length === reader.totalBytes;
      await writeChunk(call, { ...first(), offset, data, total_bytes: reader.totalBytes, crc32c: crc32c(data), last }, ackResult);
      offset += data.length;
      a.stats.snapshotBytesSent += data.length;
    }
  }
  call.end();
  const ack = await ackResult;
  return ack.applied;
}

/** Back-pressure: the next chunk is read from disk only after grpc-js has taken this one. */
async function writeChunk(call: ChunkCall, chunk: Encodable<SnapshotChunk>, failed: Promise<unknown>): Promise<void> {
  await Promise.race([new Promise<void>((resolve) => call.write(chunk, () => resolve())), failed]);
}

// ---------------------------------------------------------------------------------------------------------
// Receiver
// ---------------------------------------------------------------------------------------------------------

export interface SnapshotReceiveContext {
  readonly selfId: number;
  readonly limits: TransportLimits;
  readonly stats: TransportStats;
  readonly log: Logger;
  /** Undefined when the sender is accepted, else the error to end the call with. */
  admit(hello: MemberInfo | null): grpc.ServiceError | undefined;
  /** Undefined before the member started the transport. */
  store(): SnapshotStore | undefined;
  deliver(m: Message): void;
}

/** State of one incoming transfer, checked chunk by chunk. */
interface Incoming {
  readonly message: Message;
  readonly total: number;
  readonly writer: SnapshotWriter;
  received: number;
  committed: boolean;
}

/** Receive one image from `chunks`, commit it, deliver its MsgSnap. Throws a ServiceError on any problem. */
export async function receiveSnapshot(chunks: AsyncIterable<SnapshotChunk>, ctx: SnapshotReceiveContext): Promise<Encodable<SnapshotAck>> {
  let incoming: Incoming | undefined;
  try {
    for await (const chunk of chunks) {
      incoming ??= await beginIncoming(chunk, ctx);
      await acceptChunk(incoming, chunk, ctx);
      if (incoming.committed) break;
    }
    if (incoming === undefined || !incoming.committed) {
      throw statusError(grpc.status.ABORTED, `fulcrum: snapshot transfer ended after ${incoming?.received ?? 0} of ${incoming?.total ?? '?'} bytes`);
    }
  } catch (e) {
    await incoming?.writer.abort();
    ctx.stats.snapshotsReceiveFailed++;
    ctx.log.warn({ err: e instanceof Error ? e.message : String(e), index: incoming?.message.snapshot?.metadata.index }, 'snapshot transfer from peer failed; discarded');
    if (e instanceof WireFormatError) throw statusError(grpc.status.INVALID_ARGUMENT, e.message);
    throw isServiceError(e) ? e : statusError(grpc.status.INTERNAL, `fulcrum: snapshot receive failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  ctx.stats.snapshotsReceived++;
  const md = incoming.message.snapshot!.metadata;
  ctx.log.info({ index: md.index, term: md.term, bytes: incoming.received, from: incoming.message.from.toString(16) }, 'received snapshot from peer');
  // Only now, with the file durable in the store, may Raft hear of it: its Ready loop will look the file up.
  ctx.deliver(incoming.message);
  return { received_bytes: incoming.received, applied: true };
}

async function beginIncoming(chunk: SnapshotChunk, ctx: SnapshotReceiveContext): Promise<Incoming> {
  const refused = ctx.admit(chunk.hello);
  if (refused !== undefined) throw refused;
  if (chunk.message === null) throw statusError(grpc.status.INVALID_ARGUMENT, 'fulcrum: first snapshot chunk carries no message');
  const m = messageFromWire(chunk.message);
  const md: SnapshotMetadata | undefined = m.snapshot?.metadata;
  if (m.type !== MessageType.Snap || md === undefined || md.index === 0) {
    throw statusError(grpc.status.INVALID_ARGUMENT, 'fulcrum: first snapshot chunk must carry a MsgSnap with metadata');
  }
  if (m.to !== ctx.selfId) throw statusError(grpc.status.FAILED_PRECONDITION, `fulcrum: snapshot addressed to ${m.to.toString(16)}, not this member`);
  if (m.from !== int(chunk.hello!.member_id, 'member_id')) throw statusError(grpc.status.INVALID_ARGUMENT, 'fulcrum: MsgSnap sender differs from hello');
  const total = int(chunk.total_bytes, 'total_bytes');
  if (total > ctx.limits.snapshotBytesMax) {
    throw statusError(grpc.status.RESOURCE_EXHAUSTED, `fulcrum: snapshot of ${total} bytes exceeds the limit of ${ctx.limits.snapshotBytesMax}`);
  }
  const store = ctx.store();
  if (store === undefined) throw statusError(grpc.status.UNAVAILABLE, 'fulcrum: member not started');
  const writer = await store.create(md);
  return { message: { ...m, snapshot: { metadata: md, data: EMPTY } }, total, writer, received: 0, committed: false };
}

async function acceptChunk(t: Incoming, chunk: SnapshotChunk, ctx: SnapshotReceiveContext): Promise<void> {
  const offset = int(chunk.offset, 'offset');
  const data = chunk.data;
  if (offset !== t.received) throw statusError(grpc.status.DATA_LOSS, `fulcrum: snapshot chunk at offset ${offset}, expected ${t.received}`);
  if (int(chunk.total_bytes, 'total_bytes') !== t.total) throw statusError(grpc.status.DATA_LOSS, 'fulcrum: snapshot total size changed mid-transfer');
  if (crc32c(data) !== chunk.crc32c) throw statusError(grpc.status.DATA_LOSS, `fulcrum: snapshot chunk at offset ${offset} failed its CRC-32C`);
  if (t.received + data.length > t.total) throw statusError(grpc.status.DATA_LOSS, `fulcrum: snapshot data exceeds its declared ${t.total} bytes`);
  if (data.length > 0) await t.writer.write(data);
  t.received += data.length;
  ctx.stats.snapshotBytesReceived += data.length;
  if (!chunk.last) return;
  if (t.received !== t.total) throw statusError(grpc.status.DATA_LOSS, `fulcrum: snapshot ended at ${t.received} of ${t.total} bytes`);
  await t.writer.commit();
  t.committed = true;
}
