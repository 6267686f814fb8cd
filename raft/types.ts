// The vocabulary of the Raft core: entries, messages, persistent state and the Ready batch.
// Everything here is plain data so that a whole cluster can be copied, hashed and replayed by the simulator.

/** A member's id. 0 means "nobody" (no leader, no vote). */
export type NodeId = number;
export const NONE: NodeId = 0;

export enum EntryType {
  Normal = 0,
  ConfChange = 1,
}

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  /** Opaque to the core. An empty Normal entry is the leader's no-op. */
  readonly data: Uint8Array;
}

/** What must be on disk before a member answers anyone: its term, its vote and how far it knows the log is committed. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NONE && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** The membership: voters decide elections and commits, learners only receive the log. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  /** Opaque to the core: the state machine's image, or a handle the transport streams in chunks. */
  readonly data: Uint8Array;
}

export const EMPTY_SNAPSHOT: Snapshot = Object.freeze({
  metadata: Object.freeze({ index: 0, term: 0, confState: Object.freeze({ voters: [], learners: [] }) }),
  data: new Uint8Array(0),
});

export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

export enum ConfChangeType {
  AddVoter = 0,
  AddLearner = 1,
  RemoveNode = 2,
}

/**
 * One membership change. Fulcrum changes membership one member at a time (see raft/raft.ts, "Membership").
 * Promoting a learner is AddVoter for a member that is a learner now.
 */
export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
  /** Opaque to the core (the node layer puts the member's URLs here). */
  readonly context: Uint8Array;
}

export enum MessageType {
  /** Local: start an election now. */
  Hup = 0,
  /** Local: the leader should send heartbeats now. */
  Beat = 1,
  /** A proposal: local, or forwarded by a follower to the leader. */
  Prop = 2,
  App = 3,
  AppResp = 4,
  Vote = 5,
  VoteResp = 6,
  PreVote = 7,
  PreVoteResp = 8,
  Snap = 9,
  Heartbeat = 10,
  HeartbeatResp = 11,
  /** Local: the transport could not reach the peer. */
  Unreachable = 12,
  /** Local: the transport finished (or failed) sending a snapshot. */
  SnapStatus = 13,
  /** Local or forwarded: the leader should confirm it is still leader and report its commit index. */
  ReadIndex = 14,
  ReadIndexResp = 15,
  /** Local or forwarded: hand leadership to `from` (the transferee). */
  TransferLeader = 16,
  /** From the leader to the transferee: campaign at once, skipping pre-vote and the leader lease. */
  TimeoutNow = 17,
  /** Local: the leader checks that a quorum has been heard from recently (check-quorum). */
  CheckQuorum = 18,
}

export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  term: number;
  /** App: term of the entry before `entries`. Vote: term of the candidate's last entry. AppResp reject: term hint. */
  logTerm: number;
  /** App: index of the entry before `entries`. Vote: candidate's last index. AppResp: match or rejected index. */
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  /** AppResp reject: the index the follower suggests probing from (fast back-off). */
  rejectHint: number;
  snapshot: Snapshot | undefined;
  /** ReadIndex / ReadIndexResp: the caller's request context. */
  context: Uint8Array;
  /** Heartbeat / HeartbeatResp: the read-confirmation round this heartbeat carries (0: none). */
  readRound: number;
  /** Vote: the election was started by a leader transfer (bypasses the leader lease). */
  transfer: boolean;
}

const EMPTY_BYTES = new Uint8Array(0);

/** A message with every field present (one object shape keeps V8 fast). */
export function message(fields: Partial<Message> & Pick<Message, 'type'>): Message {
  return {
    type: fields.type,
    from: fields.from ?? NONE,
    to: fields.to ?? NONE,
    term: fields.term ?? 0,
    logTerm: fields.logTerm ?? 0,
    index: fields.index ?? 0,
    entries: fields.entries ?? [],
    commit: fields.commit ?? 0,
    reject: fields.reject ?? false,
    rejectHint: fields.rejectHint ?? 0,
    snapshot: fields.snapshot,
    context: fields.context ?? EMPTY_BYTES,
    readRound: fields.readRound ?? 0,
    transfer: fields.transfer ?? false,
  };
}

export function isLocalMessage(t: MessageType): boolean {
  return (
    t === MessageType.Hup ||
    t === MessageType.Beat ||
    t === MessageType.Unreachable ||
    t === MessageType.SnapStatus ||
    t === MessageType.CheckQuorum
  );
}

export function isResponseMessage(t: MessageType): boolean {
  return (
    t === MessageType.AppResp ||
    t === MessageType.VoteResp ||
    t === MessageType.PreVoteResp ||
    t === MessageType.HeartbeatResp ||
    t === MessageType.Unreachable
  );
}

export enum Role {
  Follower = 'follower',
  PreCandidate = 'pre-candidate',
  Candidate = 'candidate',
  Leader = 'leader',
}

/** Volatile state the application may want to watch; never persisted. */
export interface SoftState {
  readonly lead: NodeId;
  readonly role: Role;
}

/** A linearizable read is safe to serve once the state machine has applied `index`. */
export interface ReadState {
  readonly index: number;
  readonly context: Uint8Array;
}

/**
 * One batch of work for the node. The caller must, in this order:
 *  1. persist `snapshot`, `entries` and `hardState` (synced when `mustSync`);
 *  2. send `messages` (a leader may send before persisting; see node/raft-loop);
 *  3. apply `committedEntries` and serve `readStates` once applied;
 *  4. call `advance(ready)`.
 */
export interface Ready {
  readonly softState: SoftState | undefined;
  readonly hardState: HardState | undefined;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | undefined;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  readonly mustSync: boolean;
}

export function entrySize(e: Entry): number {
  // Bytes counted against message and uncommitted-log limits: payload plus a fixed header estimate.
  return e.data.byteLength + 24;
}

export function entriesSize(es: readonly Entry[]): number {
  let n = 0;
  for (const e of es) n += entrySize(e);
  return n;
}
