// fast-check arbitraries and comparisons for Raft messages, shared by the wire-format tests (convert.test.ts,
// batch-codec.test.ts). Test-only: nothing the server runs imports this.
import fc from 'fast-check';
import { EntryType, MessageType, type Entry, type Message } from '../../raft/types.js';

/** Bytes compared by content: decoded bytes are Buffers, the originals plain Uint8Arrays. */
export function plain(m: Message): unknown {
  return {
    ...m,
    context: [...m.context],
    entries: m.entries.map((e) => ({ ...e, data: [...e.data] })),
    snapshot: m.snapshot === undefined ? undefined : { ...m.snapshot, data: [...m.snapshot.data] },
  };
}

const u53 = fc.maxSafeNat();
const small = fc.nat({ max: 1 << 20 });
const bytes = fc.uint8Array({ maxLength: 64 });
const entry: fc.Arbitrary<Entry> = fc.record({ term: u53, index: u53, type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange), data: bytes });
const ids = fc.array(u53, { maxLength: 7 });
export const arbMessage: fc.Arbitrary<Message> = fc.record({
  type: fc.integer({ min: 0, max: MessageType.CheckQuorum }) as fc.Arbitrary<MessageType>,
  from: u53,
  to: u53,
  term: u53,
  logTerm: u53,
  index: u53,
  entries: fc.array(entry, { maxLength: 5 }),
  commit: u53,
  reject: fc.boolean(),
  rejectHint: u53,
  snapshot: fc.option(
    fc.record({ metadata: fc.record({ index: small, term: small, confState: fc.record({ voters: ids, learners: ids }) }), data: bytes }),
    { nil: undefined },
  ),
  context: bytes,
  readRound: u53,
  transfer: fc.boolean(),
});

/** A message with every field set to something other than its default, so a codec that forgets one field fails. */
export const FULL_MESSAGE: Message = {
  type: MessageType.App,
  from: 2 ** 52 - 1, // largest member id node/ids.ts hands out
  to: 3,
  term: 7,
  logTerm: 6,
  index: 41,
  entries: [
    { term: 7, index: 42, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) },
    { term: 7, index: 43, type: EntryType.ConfChange, data: new Uint8Array([9]) },
  ],
  commit: 40,
  reject: true,
  rejectHint: 39,
  snapshot: { metadata: { index: 30, term: 5, confState: { voters: [1, 2, 3], learners: [4] } }, data: new Uint8Array([5]) },
  context: new Uint8Array([0xca, 0xfe]),
  readRound: 11,
  transfer: true,
};
