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

