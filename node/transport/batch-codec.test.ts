import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { CONVERSION_OPTIONS, loadProtoRoot, type MessageBatch, type RaftMessage } from '../../proto/index.js';
import { WIRE_LENGTH_DELIMITED, WIRE_VARINT } from '../../proto/wire.js';
import { message, MessageType, type Message } from '../../raft/types.js';
import { decodePeerBatch, decodeSendAck, encodeHello, encodePeerBatch, encodeSendAck } from './batch-codec.js';
import { messageFromWire, messageToWire, WireFormatError } from './convert.js';
import { arbMessage, FULL_MESSAGE, plain } from './message-arbitraries.js';

const batchType = loadProtoRoot().lookupType('fulcrum.raftpb.MessageBatch');
const hello = { cluster_id: '12345678901234567', member_id: '2', name: 'm2', peer_urls: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], version: '0.1.0', protocol_version: 1, applied_index: '987654321012' };

/** What protobufjs (so every other member build, and any protobuf implementation) makes of our bytes. */
function decodedByProtobufjs(bytes: Uint8Array): { hello: unknown; seq: number; messages: Message[] } {
  const b = batchType.toObject(batchType.decode(bytes), CONVERSION_OPTIONS) as MessageBatch;
  return { hello: b.hello, seq: Number(b.seq), messages: b.messages.map((w: RaftMessage) => messageFromWire(w)) };
}

/** Bytes protobufjs writes for a batch, as a member before this codec (or a test's raw client) sent it. */
function encodedByProtobufjs(seq: number, messages: readonly Message[], withHello = false): Uint8Array {
  return batchType.encode(batchType.fromObject({ ...(withHello ? { hello } : {}), seq, messages: messages.map(messageToWire) })).finish();
}

describe('the peer transport\'s MessageBatch codec', () => {
  it('writes bytes protobufjs reads back as the same batch, and reads protobufjs\'s bytes as the same batch (property)', () => {
    fc.assert(
      fc.property(fc.array(arbMessage, { maxLength: 4 }), fc.maxSafeNat(), fc.boolean(), (messages, seq, withHello) => {
        const ours = encodePeerBatch(withHello ? encodeHello(hello) : null, seq, messages);
        const theirs = decodedByProtobufjs(ours);
        expect(theirs.seq).toBe(seq);
        expect(theirs.messages.map(plain)).toEqual(messages.map(plain));
        expect(theirs.hello).toEqual(withHello ? hello : null);

        const back = decodePeerBatch(encodedByProtobufjs(seq, messages, withHello));
        expect(back.seq).toBe(seq);
        expect(back.malformed).toEqual([]);
        expect(back.messages.map(plain)).toEqual(messages.map(plain));
        expect(back.hello).toEqual(withHello ? hello : null);
        expect(decodePeerBatch(ours).messages.map(plain)).toEqual(messages.map(plain));
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips every field of a fully populated message, and an all-default one without a snapshot', () => {
    expect(Object.keys(FULL_MESSAGE).sort()).toEqual(Object.keys(message({ type: MessageType.App })).sort());
    const empty = message({ type: MessageType.Hup });
    const back = decodePeerBatch(encodePeerBatch(null, 1, [FULL_MESSAGE, empty])).messages;
    expect(back.map(plain)).toEqual([FULL_MESSAGE, empty].map(plain));
    expect(back[1]!.snapshot).toBeUndefined();
    // Every field of the all-default message is its proto3 default, so nothing of it is written.
    expect(encodePeerBatch(null, 0, [empty])).toEqual(Buffer.from([(3 << 3) | WIRE_LENGTH_DELIMITED, 0]));
  });

  it('drops a message Raft cannot use and keeps the rest of the batch, saying why', () => {
    const w = protobuf.Writer.create();
    const good = message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 3 });
    const field = (body: Uint8Array): void => void w.uint32((3 << 3) | WIRE_LENGTH_DELIMITED).bytes(body);
    field(encodeMessage(good));
    field(protobuf.Writer.create().uint32((1 << 3) | WIRE_VARINT).uint32(99).finish()); // unknown type
    field(protobuf.Writer.create().uint32((4 << 3) | WIRE_VARINT).uint64('9007199254740993').finish()); // term beyond 2^53
    field(protobuf.Writer.create().uint32((7 << 3) | WIRE_LENGTH_DELIMITED).bytes(protobuf.Writer.create().uint32((3 << 3) | WIRE_VARINT).uint32(5).finish()).finish()); // entry type 5
    field(protobuf.Writer.create().uint32((1 << 3) | WIRE_VARINT).int32(-1).finish()); // negative enum
    const batch = decodePeerBatch(w.finish());
    expect(batch.messages.map(plain)).toEqual([plain(good)]);
    expect(batch.malformed).toEqual(['unknown message type 99', 'term is not a safe non-negative integer', 'unknown entry type 5', 'unknown message type beyond 2^53']);
  });

  it('skips fields it does not know, merges a repeated snapshot field, and reads ids written unpacked', () => {
    const w = protobuf.Writer.create();
    w.uint32((1 << 3) | WIRE_VARINT).uint32(MessageType.Snap);
    w.uint32((99 << 3) | WIRE_LENGTH_DELIMITED).bytes(Uint8Array.of(1, 2)); // a field from a newer build
    const confState = protobuf.Writer.create().uint32((1 << 3) | WIRE_VARINT).uint32(1).uint32((1 << 3) | WIRE_VARINT).uint32(2).finish();
    const metadata = protobuf.Writer.create().uint32((1 << 3) | WIRE_VARINT).uint32(30).uint32((3 << 3) | WIRE_LENGTH_DELIMITED).bytes(confState).finish();
    w.uint32((11 << 3) | WIRE_LENGTH_DELIMITED).bytes(protobuf.Writer.create().uint32((1 << 3) | WIRE_LENGTH_DELIMITED).bytes(metadata).finish());
    w.uint32((11 << 3) | WIRE_LENGTH_DELIMITED).bytes(protobuf.Writer.create().uint32((2 << 3) | WIRE_LENGTH_DELIMITED).bytes(Uint8Array.of(7)).finish());
    const batch = decodePeerBatch(protobuf.Writer.create().uint32((3 << 3) | WIRE_LENGTH_DELIMITED).bytes(w.finish()).finish());
    const snap = batch.messages[0]!.snapshot!;
    expect(snap.metadata).toEqual({ index: 30, term: 0, confState: { voters: [1, 2], learners: [] } });
    expect([...snap.data]).toEqual([7]);
  });

  it('fails the whole batch on bytes that are not a MessageBatch', () => {
    const bytes = encodePeerBatch(null, 5, [FULL_MESSAGE]);
    expect(() => decodePeerBatch(bytes.subarray(0, bytes.length - 1))).toThrow(WireFormatError);
    // seq sent as a length-delimited field: the wrong wire type for a known field.
    expect(() => decodePeerBatch(Uint8Array.of((2 << 3) | WIRE_LENGTH_DELIMITED, 0))).toThrow('wire type 2 where 0 was expected');
    expect(() => decodePeerBatch(encodeVarintField(2, 2n ** 60n))).toThrow('seq is beyond 2^53');
  });

  it('keeps entry payloads as views of the received bytes rather than copying them', () => {
    const bytes = encodePeerBatch(null, 1, [FULL_MESSAGE]);
    const entry = decodePeerBatch(bytes).messages[0]!.entries[0]!;
    expect(entry.data.buffer).toBe(bytes.buffer);
  });
});

describe('the peer transport\'s SendAck codec', () => {
  const ackType = loadProtoRoot().lookupType('fulcrum.raftpb.SendAck');

  it('writes what protobufjs reads and reads what protobufjs writes', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (seq) => {
        const ours = encodeSendAck({ seq });
        expect(Number((ackType.toObject(ackType.decode(ours), CONVERSION_OPTIONS) as { seq: string }).seq)).toBe(seq);
        expect(decodeSendAck(ackType.encode(ackType.fromObject({ seq })).finish())).toEqual({ seq: String(seq) });
        expect(decodeSendAck(ours)).toEqual({ seq: String(seq) });
      }),
    );
  });

  it('takes the seq as a number or a decimal string, and leaves a zero seq out as proto3 does', () => {
    expect([...encodeSendAck({ seq: '300' })]).toEqual([0x08, 0xac, 0x02]);
    expect(encodeSendAck({ seq: 0 }).length).toBe(0);
    expect(decodeSendAck(new Uint8Array(0))).toEqual({ seq: '0' });
  });

  it('skips unknown fields and keeps the last of a repeated seq', () => {
    const bytes = protobuf.Writer.create().uint32((1 << 3) | WIRE_VARINT).uint64(5).uint32((7 << 3) | WIRE_LENGTH_DELIMITED).bytes(Uint8Array.of(1, 2)).uint32((1 << 3) | WIRE_VARINT).uint64(9).finish();
    expect(decodeSendAck(bytes)).toEqual({ seq: '9' });
  });

  it('refuses what is not an ack, with the codec\'s error', () => {
    expect(() => encodeSendAck({ seq: -1 })).toThrow(WireFormatError);
    expect(() => encodeSendAck({ seq: '18446744073709551615' })).toThrow(WireFormatError);
    expect(() => decodeSendAck(Uint8Array.of(0x08))).toThrow(WireFormatError);
    expect(() => decodeSendAck(Uint8Array.of((1 << 3) | WIRE_LENGTH_DELIMITED, 0))).toThrow('wire type 2 where 0 was expected');
    expect(() => decodeSendAck(encodeVarintField(1, 2n ** 60n))).toThrow('ack seq is beyond 2^53');
  });
});

function encodeMessage(m: Message): Uint8Array {
  const type = loadProtoRoot().lookupType('fulcrum.raftpb.Message');
  return type.encode(type.fromObject(messageToWire(m))).finish();
}

function encodeVarintField(field: number, v: bigint): Uint8Array {
  return protobuf.Writer.create().uint32((field << 3) | WIRE_VARINT).uint64(v.toString()).finish();
}
