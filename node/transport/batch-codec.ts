// The bytes of fulcrum.raftpb.MessageBatch (proto/fulcrum/raftpb/raft.proto), written from and read into the Raft
// core's own Message objects.
//
// Why not protobufjs: every message a member sends or receives went Message -> plain wire object -> protobufjs
// message (fromObject) -> bytes, and back bytes -> protobufjs message -> plain object with 64-bit values as decimal
// strings (toObject, through long.js) -> Message. On a follower under one put at a time those conversions were
// about a tenth of its CPU; the encoding itself is a small part of them.
//
// The bytes are protobuf's, so any protobuf implementation reads them and this reads any of theirs: fields in any
// order, unknown fields skipped, repeated ids packed or not, a repeated embedded message merged. Zero values are
// left out, as proto3 does (protobufjs writes the ones it is given; both decode the same). batch-codec.test.ts
// checks both directions against protobufjs.
//
// A message whose values Raft cannot use (an unknown type, a number above 2^53) is reported in `malformed` and the
// rest of the batch is kept, as before; bytes that are not protobuf at all fail the whole batch.
import type protobuf from 'protobufjs';
import { CONVERSION_OPTIONS, loadProtoRoot, type Encodable, type Int64, type Int64Like, type MemberInfo, type SendAck } from '../../proto/index.js';
import {
  expectWireType,
  lengthDelimitedSize,
  packedUintSize,
  ProtoReader,
  ProtoWireError,
  ProtoWriter,
  uintFieldSize,
  UNSAFE,
  WIRE_LENGTH_DELIMITED,
  WIRE_VARINT,
} from '../../proto/wire.js';
import { EntryType, message, MessageType, type ConfState, type Entry, type Message, type Snapshot } from '../../raft/types.js';
import { WireFormatError } from './convert.js';

/** A MessageBatch as a member receives it: Raft messages ready to step. */
export interface PeerBatch {
  readonly hello: MemberInfo | null;
  readonly seq: number;
  readonly messages: Message[];
  /** Why each message that was dropped could not be used (it is not in `messages`). */
  readonly malformed: string[];
}

// Field numbers, from raft.proto.
const BATCH = { hello: 1, seq: 2, messages: 3 } as const;
const ACK = { seq: 1 } as const;
const MSG = { type: 1, from: 2, to: 3, term: 4, logTerm: 5, index: 6, entries: 7, commit: 8, reject: 9, rejectHint: 10, snapshot: 11, context: 12, readRound: 13, transfer: 14 } as const;
const ENTRY = { term: 1, index: 2, type: 3, data: 4 } as const;
const SNAPSHOT = { metadata: 1, data: 2 } as const;
const METADATA = { index: 1, term: 2, confState: 3 } as const;
const CONF_STATE = { voters: 1, learners: 2 } as const;

let memberInfoType: protobuf.Type | undefined;

function memberInfo(): protobuf.Type {
  memberInfoType ??= loadProtoRoot().lookupType('fulcrum.raftpb.MemberInfo');
  return memberInfoType;
}

/** A hello's bytes, encoded when a stream starts: it travels only in a stream's first batch. */
export function encodeHello(hello: Encodable<MemberInfo>): Uint8Array {
  const type = memberInfo();
  return type.encode(type.fromObject(hello)).finish();
}

// ---------------------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------------------

/** The bytes of a MessageBatch: `hello` already encoded (encodeHello) or null. */
export function encodePeerBatch(hello: Uint8Array | null, seq: number, messages: readonly Message[]): Buffer {
  const sizes = messages.map(messageSize);
  let size = (hello === null ? 0 : lengthDelimitedSize(hello.length)) + uintFieldSize(seq);
  for (const s of sizes) size += lengthDelimitedSize(s);
  const w = new ProtoWriter(size);
  if (hello !== null) w.bytesField(BATCH.hello, hello);
  w.uintField(BATCH.seq, seq);
  messages.forEach((m, i) => {
    w.tag(BATCH.messages, WIRE_LENGTH_DELIMITED);
    w.uint(sizes[i]!);
    writeMessage(w, m);
  });
  // The sizes above are the lengths the receiver trusts: a mismatch would be a bug here, never input.
  if (w.length !== size) throw new Error(`fulcrum: batch encoded to ${w.length} bytes, sized ${size}`);
  return w.finish();
}

function messageSize(m: Message): number {
  let n =
    uintFieldSize(m.type) +
    uintFieldSize(m.from) +
    uintFieldSize(m.to) +
    uintFieldSize(m.term) +
    uintFieldSize(m.logTerm) +
    uintFieldSize(m.index) +
    uintFieldSize(m.commit) +
    (m.reject ? 2 : 0) +
    uintFieldSize(m.rejectHint) +
    (m.context.length > 0 ? lengthDelimitedSize(m.context.length) : 0) +
    uintFieldSize(m.readRound) +
    (m.transfer ? 2 : 0);
  for (const e of m.entries) n += lengthDelimitedSize(entrySize(e));
  if (m.snapshot !== undefined) n += lengthDelimitedSize(snapshotSize(m.snapshot));
  return n;
}

function writeMessage(w: ProtoWriter, m: Message): void {
  w.uintField(MSG.type, m.type);
  w.uintField(MSG.from, m.from);
  w.uintField(MSG.to, m.to);
  w.uintField(MSG.term, m.term);
  w.uintField(MSG.logTerm, m.logTerm);
  w.uintField(MSG.index, m.index);
  for (const e of m.entries) {
    w.tag(MSG.entries, WIRE_LENGTH_DELIMITED);
    w.uint(entrySize(e));
    writeEntry(w, e);
  }
  w.uintField(MSG.commit, m.commit);
  w.boolField(MSG.reject, m.reject);
  w.uintField(MSG.rejectHint, m.rejectHint);
  if (m.snapshot !== undefined) {
    w.tag(MSG.snapshot, WIRE_LENGTH_DELIMITED);
    w.uint(snapshotSize(m.snapshot));
    writeSnapshot(w, m.snapshot);
  }
  w.nonEmptyBytesField(MSG.context, m.context);
  w.uintField(MSG.readRound, m.readRound);
  w.boolField(MSG.transfer, m.transfer);
}

function entrySize(e: Entry): number {
  return uintFieldSize(e.term) + uintFieldSize(e.index) + uintFieldSize(e.type) + (e.data.length > 0 ? lengthDelimitedSize(e.data.length) : 0);
}

function writeEntry(w: ProtoWriter, e: Entry): void {
  w.uintField(ENTRY.term, e.term);
  w.uintField(ENTRY.index, e.index);
  w.uintField(ENTRY.type, e.type);
  w.nonEmptyBytesField(ENTRY.data, e.data);
}

function snapshotSize(s: Snapshot): number {
  return lengthDelimitedSize(metadataSize(s)) + (s.data.length > 0 ? lengthDelimitedSize(s.data.length) : 0);
}

function metadataSize(s: Snapshot): number {
  const md = s.metadata;
  return uintFieldSize(md.index) + uintFieldSize(md.term) + lengthDelimitedSize(confStateSize(md.confState));
}

function confStateSize(cs: ConfState): number {
  const packed = (ids: readonly number[]): number => (ids.length === 0 ? 0 : lengthDelimitedSize(packedUintSize(ids)));
  return packed(cs.voters) + packed(cs.learners);
}

function writeSnapshot(w: ProtoWriter, s: Snapshot): void {
  const md = s.metadata;
  w.tag(SNAPSHOT.metadata, WIRE_LENGTH_DELIMITED);
  w.uint(metadataSize(s));
  w.uintField(METADATA.index, md.index);
  w.uintField(METADATA.term, md.term);
  w.tag(METADATA.confState, WIRE_LENGTH_DELIMITED);
  w.uint(confStateSize(md.confState));
  w.packedUintField(CONF_STATE.voters, md.confState.voters);
  w.packedUintField(CONF_STATE.learners, md.confState.learners);
  w.nonEmptyBytesField(SNAPSHOT.data, s.data);
}

// ---------------------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------------------

/** A MessageBatch's bytes as a PeerBatch; throws WireFormatError when they are not a MessageBatch at all. */
export function decodePeerBatch(bytes: Uint8Array): PeerBatch {
  return readAll(bytes, readBatch);
}

/** Read `bytes` with `read`, protobuf errors (truncated, bad tag, wrong wire type) reported as WireFormatError. */
function readAll<T>(bytes: Uint8Array, read: (r: ProtoReader) => T): T {
  try {
    return read(new ProtoReader(bytes));
  } catch (e) {
    if (e instanceof ProtoWireError) throw new WireFormatError(e.message);
    throw e;
  }
}

function readBatch(r: ProtoReader): PeerBatch {
  const helloParts: Uint8Array[] = [];
  let seq = 0;
  const messages: Message[] = [];
  const malformed: string[] = [];
  while (!r.done()) {
    const tag = r.tag();
    const wire = tag & 7;
    switch (tag >>> 3) {
      case BATCH.hello:
        expectWireType(wire, WIRE_LENGTH_DELIMITED);
        helloParts.push(r.bytes());
        break;
      case BATCH.seq:
        expectWireType(wire, WIRE_VARINT);
        seq = r.uint();
        if (seq === UNSAFE) throw new WireFormatError('batch seq is beyond 2^53');
        break;
      case BATCH.messages: {
        expectWireType(wire, WIRE_LENGTH_DELIMITED);
        const m = readMessage(r.nested());
        if (typeof m === 'string') malformed.push(m);
        else messages.push(m);
        break;
      }
      default:
        r.skip(wire);
    }
  }
  return { hello: readHello(helloParts), seq, messages, malformed };
}

/** A hello split over several fields is their merge: protobuf's rule, which decoding the parts joined gives. */
/**
 * The bytes of a SendAck (its one field, `uint64 seq`). A receiver acks the first batch and every 8th after it, so
 * this code runs too seldom for V8 to optimise: through protobufjs and long.js each ack cost both ends several
 * times what it costs here (a follower's CPU profile at one put in flight, docs/performance.md).
 */
export function encodeSendAck(ack: { readonly seq?: Int64Like | null }): Buffer {
  const seq = Number(ack.seq ?? 0);
  if (!Number.isSafeInteger(seq) || seq < 0) throw new WireFormatError(`ack seq ${String(ack.seq)} is not a safe non-negative integer`);
  const w = new ProtoWriter(uintFieldSize(seq));
  w.uintField(ACK.seq, seq);
  return w.finish();
}

/** A SendAck from bytes any protobuf implementation wrote: unknown fields skipped, a repeated seq's last value kept. */
export function decodeSendAck(bytes: Uint8Array): SendAck {
  return readAll(bytes, readAck);
}

function readAck(r: ProtoReader): SendAck {
  let seq = 0;
  while (!r.done()) {
    const tag = r.tag();
    if (tag >>> 3 !== ACK.seq) {
      r.skip(tag & 7);
      continue;
    }
    expectWireType(tag & 7, WIRE_VARINT);
    seq = r.uint();
    if (seq === UNSAFE) throw new WireFormatError('ack seq is beyond 2^53');
  }
  return { seq: String(seq) as Int64 };
}

function readHello(parts: readonly Uint8Array[]): MemberInfo | null {
  if (parts.length === 0) return null;
  const type = memberInfo();
  const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  return type.toObject(type.decode(bytes), CONVERSION_OPTIONS) as MemberInfo;
}

/** Collects the first reason a message cannot be used, while the reading goes on to the message's end. */
class Problems {
  first: string | undefined;

  number(v: number, field: string): number {
    if (v === UNSAFE) this.first ??= `${field} is not a safe non-negative integer`;
    return v;
  }
}

/** A Message, or why Raft cannot use it. */
function readMessage(r: ProtoReader): Message | string {
  const m = message({ type: MessageType.Hup });
  const problems = new Problems();
  while (!r.done()) {
    const tag = r.tag();
    const wire = tag & 7;
    const field = tag >>> 3;
    if (field === MSG.entries) {
      expectWireType(wire, WIRE_LENGTH_DELIMITED);
      m.entries.push(readEntry(r.nested(), problems));
    } else if (field === MSG.snapshot) {
      expectWireType(wire, WIRE_LENGTH_DELIMITED);
      m.snapshot = readSnapshot(r.nested(), problems, m.snapshot);
    } else if (field === MSG.context) {
      expectWireType(wire, WIRE_LENGTH_DELIMITED);
      m.context = r.bytes();
    } else if (field >= MSG.type && field <= MSG.transfer) {
      expectWireType(wire, WIRE_VARINT);
      readMessageNumber(m, field, r.uint(), problems);
    } else {
      r.skip(wire);
    }
  }
  return problems.first ?? m;
}

function readMessageNumber(m: Message, field: number, v: number, problems: Problems): void {
  switch (field) {
    case MSG.type:
      if (v === UNSAFE || MessageType[v] === undefined) problems.first ??= `unknown message type ${v === UNSAFE ? 'beyond 2^53' : v}`;
      m.type = v as MessageType;
      break;
    case MSG.from:
      m.from = problems.number(v, 'from');
      break;
    case MSG.to:
      m.to = problems.number(v, 'to');
      break;
    case MSG.term:
      m.term = problems.number(v, 'term');
      break;
    case MSG.logTerm:
      m.logTerm = problems.number(v, 'log_term');
      break;
    case MSG.index:
      m.index = problems.number(v, 'index');
      break;
    case MSG.commit:
      m.commit = problems.number(v, 'commit');
      break;
    case MSG.reject:
      m.reject = v !== 0;
      break;
    case MSG.rejectHint:
      m.rejectHint = problems.number(v, 'reject_hint');
      break;
    case MSG.readRound:
      m.readRound = problems.number(v, 'read_round');
      break;
    case MSG.transfer:
      m.transfer = v !== 0;
      break;
  }
}

const EMPTY: Uint8Array = new Uint8Array(0);

function readEntry(r: ProtoReader, problems: Problems): Entry {
  let term = 0;
  let index = 0;
  let type = EntryType.Normal;
  let data = EMPTY;
  while (!r.done()) {
    const tag = r.tag();
    const wire = tag & 7;
    switch (tag >>> 3) {
      case ENTRY.term:
        expectWireType(wire, WIRE_VARINT);
        term = problems.number(r.uint(), 'entry.term');
        break;
      case ENTRY.index:
        expectWireType(wire, WIRE_VARINT);
        index = problems.number(r.uint(), 'entry.index');
        break;
      case ENTRY.type: {
        expectWireType(wire, WIRE_VARINT);
        const v = r.uint();
        if (v !== EntryType.Normal && v !== EntryType.ConfChange) problems.first ??= `unknown entry type ${v === UNSAFE ? 'beyond 2^53' : v}`;
        type = v as EntryType;
        break;
      }
      case ENTRY.data:
        expectWireType(wire, WIRE_LENGTH_DELIMITED);
        data = r.bytes();
        break;
      default:
        r.skip(wire);
    }
  }
  return { term, index, type, data };
}

interface SnapshotParts {
  index: number;
  term: number;
  voters: number[];
  learners: number[];
  data: Uint8Array;
}

/** A snapshot field; a second one for the same message merges into the first (`into`), as protobuf says. */
function readSnapshot(r: ProtoReader, problems: Problems, into: Snapshot | undefined): Snapshot {
  const s: SnapshotParts = {
    index: into?.metadata.index ?? 0,
    term: into?.metadata.term ?? 0,
    voters: [...(into?.metadata.confState.voters ?? [])],
    learners: [...(into?.metadata.confState.learners ?? [])],
    data: into?.data ?? EMPTY,
  };
  while (!r.done()) {
    const tag = r.tag();
    const wire = tag & 7;
    switch (tag >>> 3) {
      case SNAPSHOT.metadata:
        expectWireType(wire, WIRE_LENGTH_DELIMITED);
        readMetadata(r.nested(), problems, s);
        break;
      case SNAPSHOT.data:
        expectWireType(wire, WIRE_LENGTH_DELIMITED);
        s.data = r.bytes();
        break;
      default:
        r.skip(wire);
    }
  }
  return { metadata: { index: s.index, term: s.term, confState: { voters: s.voters, learners: s.learners } }, data: s.data };
}

function readMetadata(r: ProtoReader, problems: Problems, s: SnapshotParts): void {
  while (!r.done()) {
    const tag = r.tag();
    const wire = tag & 7;
    switch (tag >>> 3) {
      case METADATA.index:
        expectWireType(wire, WIRE_VARINT);
        s.index = problems.number(r.uint(), 'snapshot.index');
        break;
      case METADATA.term:
        expectWireType(wire, WIRE_VARINT);
        s.term = problems.number(r.uint(), 'snapshot.term');
        break;
      case METADATA.confState:
        expectWireType(wire, WIRE_LENGTH_DELIMITED);
        readConfState(r.nested(), problems, s);
        break;
      default:
        r.skip(wire);
    }
  }
}

function readConfState(r: ProtoReader, problems: Problems, s: SnapshotParts): void {
  while (!r.done()) {
    const tag = r.tag();
    const wire = tag & 7;
    const field = tag >>> 3;
    if (field === CONF_STATE.voters || field === CONF_STATE.learners) {
      const ids = field === CONF_STATE.voters ? s.voters : s.learners;
      const from = ids.length;
      r.uints(wire, ids);
      for (let i = from; i < ids.length; i++) problems.number(ids[i]!, field === CONF_STATE.voters ? 'voter' : 'learner');
    } else {
      r.skip(wire);
    }
  }
}
