// The application's handle on the Raft core: feed it ticks, messages and proposals; take a Ready; persist, send,
// apply; advance. One Ready is outstanding at a time, which keeps "what has been handed out" unambiguous.
import { encodeConfChange } from './confchange.js';
import { validateRaftConfig, type RaftConfig, type RaftConfigInput } from './config.js';
import { assert, ProposalDroppedError, RaftError } from './errors.js';
import type { ProgressState } from './progress.js';
import { Raft } from './raft.js';
import type { Storage } from './storage.js';
import {
  ConfChangeType,
  EntryType,
  hardStateEqual,
  isEmptyHardState,
  isLocalMessage,
  isResponseMessage,
  message,
  MessageType,
  NONE,
  type ConfChange,
  type ConfState,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type Role,
  type SoftState,
} from './types.js';

export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  readonly recentActive: boolean;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly hardState: HardState;
  readonly softState: SoftState;
  readonly applied: number;
  readonly commit: number;
  readonly lastIndex: number;
  readonly confState: ConfState;
  /** Leader only. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus> | undefined;
  readonly leadTransferee: NodeId;
}

export class RawNode {
  protected readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: Ready | undefined = undefined;

  constructor(config: RaftConfigInput, storage: Storage) {
    this.raft = this.createRaft(validateRaftConfig(config), storage);
    this.prevSoftState = this.softState();
    this.prevHardState = this.raft.hardState();
  }

  /** The one place the core is constructed. Subclasses may return a variant (the simulator's negative controls do). */
  protected createRaft(config: RaftConfig, storage: Storage): Raft {
    return new Raft(config, storage);
  }

  /**
   * Start a brand-new cluster: every founding member calls this with the same voter list on an empty storage,
   * so all of them begin with identical logs (one committed AddVoter entry per voter at term 1). `contexts` are
   * the entries' opaque contexts (the node layer puts each member's name and URLs there).
   */
  bootstrap(voters: readonly NodeId[], contexts: ReadonlyMap<NodeId, Uint8Array> = new Map()): void {
    const r = this.raft;
    assert(voters.length > 0, 'bootstrap needs at least one voter');
    assert(r.log.lastIndex() === 0 && isEmptyHardState(r.hardState()), 'bootstrap on a non-empty log');
    r.becomeFollower(1, NONE);
    const ents = voters.map((id, i) => ({
      term: 1,
      index: i + 1,
      type: EntryType.ConfChange,
      data: encodeConfChange({ type: ConfChangeType.AddVoter, nodeId: id, context: contexts.get(id) ?? new Uint8Array(0) }),
    }));
    r.log.append(ents);
    r.log.committed = ents.length;
    for (const id of voters) r.applyConfChange({ type: ConfChangeType.AddVoter, nodeId: id, context: new Uint8Array(0) });
  }

  tick(): void {
    this.raft.tick();
  }

  campaign(): void {
    this.raft.step(message({ type: MessageType.Hup, from: this.raft.id }));
  }

  /** Throws ProposalDroppedError when the entry cannot enter the log (no leader, transfer, size limit). */
  propose(data: Uint8Array): void {
    this.proposeAll([data]);
  }

  /**
   * Several entries in one proposal, in this order: they enter the log together or not at all (ProposalDroppedError),
   * with one append to each follower rather than one per entry.
   */
  proposeAll(data: readonly Uint8Array[]): void {
    assert(data.length > 0, 'raft: an empty proposal');
    const entries = data.map((d) => ({ term: 0, index: 0, type: EntryType.Normal, data: d }));
    this.raft.step(message({ type: MessageType.Prop, from: this.raft.id, entries }));
  }

  proposeConfChange(cc: ConfChange): void {
    const entry = { term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) };
    this.raft.step(message({ type: MessageType.Prop, from: this.raft.id, entries: [entry] }));
  }

  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** A message from a peer. Proposals it forwards that cannot be taken are dropped; the peer's caller retries. */
  step(m: Message): void {
    if (isLocalMessage(m.type)) throw new RaftError('STEP_LOCAL_MSG', `raft: cannot step raft local message ${MessageType[m.type]}`);
    if (isResponseMessage(m.type) && !this.raft.tracker.progress.has(m.from)) return;
    try {
      this.raft.step(m);
    } catch (e) {
      if (e instanceof ProposalDroppedError) return;
      throw e;
    }
  }

  /** Ask for a linearizable read; the answer is a ReadState with this context in a later Ready. */
  readIndex(context: Uint8Array): void {
    this.raft.step(message({ type: MessageType.ReadIndex, from: NONE, context }));
  }

  transferLeadership(to: NodeId): void {
    this.raft.step(message({ type: MessageType.TransferLeader, from: to }));
  }

  reportUnreachable(id: NodeId): void {
    this.raft.step(message({ type: MessageType.Unreachable, from: id }));
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    this.raft.step(message({ type: MessageType.SnapStatus, from: id, reject: !ok }));
  }

  private softState(): SoftState {
    return { lead: this.raft.lead, role: this.raft.role };
  }

  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    const r = this.raft;
    const soft = this.softState();
    if (soft.lead !== this.prevSoftState.lead || soft.role !== this.prevSoftState.role) return true;
    if (!hardStateEqual(r.hardState(), this.prevHardState)) return true;
    if (r.log.unstable.snapshot !== undefined || r.log.unstable.entries.length > 0) return true;
    return r.msgs.length > 0 || r.readStates.length > 0 || r.log.hasNextCommittedEnts();
  }

  ready(): Ready {
    assert(this.outstanding === undefined, 'ready() called again before advance()');
    const r = this.raft;
    const soft = this.softState();
    const hard = r.hardState();
    const softChanged = soft.lead !== this.prevSoftState.lead || soft.role !== this.prevSoftState.role;
    const hardChanged = !hardStateEqual(hard, this.prevHardState);
    const entries = r.log.unstable.entries.slice();
    const rd: Ready = {
      softState: softChanged ? soft : undefined,
      hardState: hardChanged ? hard : undefined,
      entries,
      snapshot: r.log.unstable.snapshot,
      committedEntries: r.log.nextCommittedEnts(),
      messages: r.msgs,
      readStates: r.readStates,
      // Commit-only changes need no fsync: a lost commit index is learned again from the leader.
      mustSync: entries.length > 0 || hard.term !== this.prevHardState.term || hard.vote !== this.prevHardState.vote,
    };
    r.msgs = [];
    r.readStates = [];
    this.outstanding = rd;
    return rd;
  }

  /** The Ready has been persisted, sent and applied. */
  advance(rd: Ready): void {
    assert(rd === this.outstanding, 'advance() with a Ready that is not the outstanding one');
    this.outstanding = undefined;
    const r = this.raft;
    if (rd.softState !== undefined) this.prevSoftState = rd.softState;
    if (rd.hardState !== undefined) this.prevHardState = rd.hardState;
    if (rd.snapshot !== undefined) {
      r.log.stableSnapTo(rd.snapshot.metadata.index);
      if (rd.snapshot.metadata.index > r.log.applied) r.log.appliedTo(rd.snapshot.metadata.index);
    }
    const last = rd.entries[rd.entries.length - 1];
    if (last !== undefined) {
      r.log.stableTo(last.index, last.term);
      r.onPersisted(last.index, last.term);
    }
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted !== undefined) {
      r.log.appliedTo(lastCommitted.index);
      r.reduceUncommittedSize(rd.committedEntries);
    }
    if (rd.snapshot !== undefined || lastCommitted !== undefined) r.afterApplied();
  }

  /** The current term, role and known leader, without building a whole status() (asked on every response). */
  get term(): number {
    return this.raft.term;
  }

  get role(): Role {
    return this.raft.role;
  }

  get lead(): NodeId {
    return this.raft.lead;
  }

  status(): RaftStatus {
    const r = this.raft;
    let progress: Map<NodeId, ProgressStatus> | undefined;
    if (r.lead === r.id) {
      progress = new Map();
      for (const [id, p] of r.tracker.progress) {
        progress.set(id, { match: p.match, next: p.next, state: p.state, isLearner: p.isLearner, recentActive: p.recentActive });
      }
    }
    return {
      id: r.id,
      hardState: r.hardState(),
      softState: this.softState(),
      applied: r.log.applied,
      commit: r.log.committed,
      lastIndex: r.log.lastIndex(),
      confState: r.confState(),
      progress,
      leadTransferee: r.leadTransferee,
    };
  }
}
