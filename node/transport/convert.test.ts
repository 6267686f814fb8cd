import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CONVERSION_OPTIONS, loadPackageDefinition, loadProtoRoot, type MessageBatch, type RaftMessage } from '../../proto/index.js';
import { MessageType, message, type Message } from '../../raft/types.js';
import { int, messageFromWire, messageToWire, WireFormatError } from './convert.js';
import { arbMessage, FULL_MESSAGE, plain } from './message-arbitraries.js';

/**
 * Through proto-loader's (de)serializer for Send: how the tests' raw clients send batches. Members use
 * batch-codec.ts (its own tests); these conversions carry a snapshot transfer's first message.
 */
function viaGrpc(m: Message): Message {
  const def = loadPackageDefinition()['fulcrum.raftpb.RaftTransport'] as unknown as Record<
    string,
    { requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): MessageBatch }
  >;
  const send = def['Send']!;
  const batch = send.requestDeserialize(send.requestSerialize({ seq: 1, messages: [messageToWire(m)] }));
  expect(batch.messages).toHaveLength(1);
  return messageFromWire(batch.messages[0]!);
}

/** Through protobufjs directly with the project's conversion options. */
function viaProtobufjs(m: Message): Message {
  const type = loadProtoRoot().lookupType('fulcrum.raftpb.Message');
  const decoded = type.toObject(type.decode(type.encode(type.fromObject(messageToWire(m) as Record<string, unknown>)).finish()), CONVERSION_OPTIONS);
  return messageFromWire(decoded as RaftMessage);
}

describe('raftpb <-> raft/types conversion', () => {
  it('round-trips every field of a fully populated message (non-default everywhere)', () => {
    const m = FULL_MESSAGE;
    // Every field is set to a non-default value, so a forgotten field would fail the comparison.
    expect(Object.keys(m).sort()).toEqual(Object.keys(message({ type: MessageType.App })).sort());
    expect(plain(viaGrpc(m))).toEqual(plain(m));
    expect(plain(viaProtobufjs(m))).toEqual(plain(m));
  });

  it('keeps an absent snapshot absent and an all-default message all-default', () => {
    const m = message({ type: MessageType.Heartbeat });
    const back = viaGrpc(m);
    expect(back.snapshot).toBeUndefined();
    expect(plain(back)).toEqual(plain(m));
  });

  it('round-trips arbitrary messages (property)', () => {
    fc.assert(
      fc.property(arbMessage, (m) => {
        expect(plain(viaGrpc(m))).toEqual(plain(m));
        expect(plain(viaProtobufjs(m))).toEqual(plain(m));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses values a JS number cannot hold exactly and unknown enum values', () => {
    expect(() => int('9007199254740993', 'term')).toThrow(WireFormatError);
    expect(int('9007199254740991', 'term')).toBe(Number.MAX_SAFE_INTEGER);
    const wire = { ...(messageToWire(message({ type: MessageType.App })) as unknown as RaftMessage), type: 99 };
    expect(() => messageFromWire(wire as RaftMessage)).toThrow('unknown message type 99');
  });
});
