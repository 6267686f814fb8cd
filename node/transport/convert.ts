// Raft messages between their two forms: raft/types.ts (what the core speaks) and fulcrum.raftpb (what goes on
// the wire, decoded by grpc-js with proto/index.ts's LOADER_OPTIONS: 64-bit integers as decimal strings, enums as
// names, bytes as Buffers, absent sub-messages as null).
//
// The .proto mirrors raft/types.ts field for field and enum number for enum number, so converting is a rename
// and a number <-> uint64 change. Ids fit in 52 bits (node/ids.ts) and indexes and terms stay far below 2^53,
// so every 64-bit field converts to a JS number exactly; a value that does not is refused, never rounded.
import {
  EntryType,
  MessageType,
  type ConfState,
  type Entry,
  type Message,
  type Snapshot,
  type SnapshotMetadata,
} from '../../raft/types.js';
import {
  RAFT_MESSAGE_TYPE_NAMES,
  type Encodable,
  type EnumValue,
  type Int64,
  type RaftConfState,
  type RaftEntry,
  type RaftEntryType,
  type RaftMessage,
  type RaftMessageType,
  type RaftSnapshot,
  type RaftSnapshotMetadata,
} from '../../proto/index.js';

/** A wire value that cannot be a valid Raft message (bad enum, 64-bit value beyond 2^53). */
export class WireFormatError extends Error {
  constructor(message: string) {
    super(`fulcrum: malformed raft message: ${message}`);
    this.name = 'WireFormatError';
  }
}

const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------------------
// raft/types.ts -> wire
// ---------------------------------------------------------------------------------------------------------

export function messageToWire(m: Message): Encodable<RaftMessage> {
  return {
    type: m.type,
    from: m.from,
    to: m.to,
    term: m.term,
    log_term: m.logTerm,
    index: m.index,
    entries: m.entries.map(entryToWire),
    commit: m.commit,
    reject: m.reject,
    reject_hint: m.rejectHint,
    // Absent rather than an empty message when undefined, so the receiver gets undefined back.
    snapshot: m.snapshot === undefined ? null : snapshotToWire(m.snapshot),
    context: m.context,
    read_round: m.readRound,
    transfer: m.transfer,
  };
}

function entryToWire(e: Entry): Encodable<RaftEntry> {
  return { term: e.term, index: e.index, type: e.type, data: e.data };
}

export function snapshotToWire(s: Snapshot): Encodable<RaftSnapshot> {
  return { metadata: metadataToWire(s.metadata), data: s.data };
}

export function metadataToWire(md: SnapshotMetadata): Encodable<RaftSnapshotMetadata> {
  return { index: md.index, term: md.term, conf_state: { voters: md.confState.voters, learners: md.confState.learners } };
}

// ---------------------------------------------------------------------------------------------------------
// wire -> raft/types.ts
// ---------------------------------------------------------------------------------------------------------

export function messageFromWire(w: RaftMessage): Message {
  return {
    type: messageTypeFromWire(w.type),
    from: int(w.from, 'from'),
    to: int(w.to, 'to'),
    term: int(w.term, 'term'),
    logTerm: int(w.log_term, 'log_term'),
    index: int(w.index, 'index'),
    entries: w.entries.map(entryFromWire),
    commit: int(w.commit, 'commit'),
    reject: w.reject,
    rejectHint: int(w.reject_hint, 'reject_hint'),
    snapshot: w.snapshot === null ? undefined : snapshotFromWire(w.snapshot),
    context: bytes(w.context),
    readRound: int(w.read_round, 'read_round'),
    transfer: w.transfer,
  };
}

function entryFromWire(w: RaftEntry): Entry {
  return { term: int(w.term, 'entry.term'), index: int(w.index, 'entry.index'), type: entryTypeFromWire(w.type), data: bytes(w.data) };
}

export function snapshotFromWire(w: RaftSnapshot): Snapshot {
  return { metadata: metadataFromWire(w.metadata), data: bytes(w.data) };
}

export function metadataFromWire(w: RaftSnapshotMetadata | null): SnapshotMetadata {
  if (w === null) return { index: 0, term: 0, confState: { voters: [], learners: [] } };
  return { index: int(w.index, 'snapshot.index'), term: int(w.term, 'snapshot.term'), confState: confStateFromWire(w.conf_state) };
}

function confStateFromWire(w: RaftConfState | null): ConfState {
  if (w === null) return { voters: [], learners: [] };
  return { voters: w.voters.map((v) => int(v, 'voter')), learners: w.learners.map((v) => int(v, 'learner')) };
}

/** A decoded uint64 (decimal string, or a number from an in-process caller) as an exact JS number. */
export function int(v: Int64 | number | string, field: string): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new WireFormatError(`${field} = ${String(v)} is not a safe non-negative integer`);
  return n;
}

/** int() for input that must not throw (ids in a hello): undefined when not an exact non-negative integer. */
export function tryInt(v: Int64 | number | string): number | undefined {
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function bytes(b: Uint8Array | null | undefined): Uint8Array {
  // Keep the decoded Buffer (a Uint8Array): copying every entry payload would cost more than it protects.
  return b ?? EMPTY;
}

const MESSAGE_TYPE_BY_NAME: ReadonlyMap<string, MessageType> = new Map(RAFT_MESSAGE_TYPE_NAMES.map((name, i) => [name, i as MessageType]));

export function messageTypeFromWire(v: EnumValue<RaftMessageType>): MessageType {
  const t = typeof v === 'number' ? v : MESSAGE_TYPE_BY_NAME.get(v);
  if (t === undefined || MessageType[t] === undefined) throw new WireFormatError(`unknown message type ${String(v)}`);
  return t;
}

function entryTypeFromWire(v: EnumValue<RaftEntryType>): EntryType {
  if (v === 'ENTRY_NORMAL' || v === EntryType.Normal) return EntryType.Normal;
  if (v === 'ENTRY_CONF_CHANGE' || v === EntryType.ConfChange) return EntryType.ConfChange;
  throw new WireFormatError(`unknown entry type ${String(v)}`);
}
