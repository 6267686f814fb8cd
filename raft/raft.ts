// The Raft consensus core: a deterministic state machine. It never reads a clock, draws from Math.random,
// touches disk or network, or awaits. Time arrives as tick(), messages as step(), randomness through the
// injected generator; everything it wants done leaves through `msgs`, `readStates` and the log's unstable part,
// which RawNode packages into a Ready.
//
// Membership: one change at a time. Adding or removing a single voter keeps every majority of the old
// configuration overlapping every majority of the new one, so two leaders can never be elected in one term by
// disjoint quorums. Changes take effect when applied. Two rules make that safe under faults:
//  1. A leader proposes a change only when no earlier change is pending (pendingConfIndex <= applied). A new
//     leader sets pendingConfIndex to its last index, so it first commits and applies everything it inherited,
//     including its own-term no-op. This closes the hole where a new leader with a stale uncommitted change
//     proposes a second one and the two changes' quorums do not overlap.
//  2. A member refuses to campaign while committed conf changes are still unapplied, so it never counts votes
//     against a configuration the cluster has already moved past.
import { decodeConfChange, describeConfChange } from './confchange.js';
import type { RaftConfig } from './config.js';
import { assert, ProposalDroppedError, RaftError } from './errors.js';
import { RaftLog } from './log.js';
import { Progress, ProgressState, ProgressTracker } from './progress.js';
import { ReadOnly } from './readonly.js';
import type { Storage } from './storage.js';
import {
  ConfChangeType,
  EntryType,
  entrySize,
  isEmptyHardState,
  isEmptySnapshot,
  message,
  MessageType,
  NONE,
  Role,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type ReadState,
  type Snapshot,
} from './types.js';

type CampaignType = 'pre-election' | 'election' | 'transfer';

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  lead: NodeId = NONE;
  role: Role = Role.Follower;
  readonly log: RaftLog;
  readonly tracker = new ProgressTracker();
  /** Messages to send once this step's state is persisted. */
  msgs: Message[] = [];
  /** Linearizable reads now safe to serve once applied up to their index. */
  readStates: ReadState[] = [];
  /** The member leadership is being handed to, or NONE. */
  leadTransferee: NodeId = NONE;
  /** A MsgTimeoutNow came while committed conf changes were still unapplied: campaign once they are (afterApplied). */
  private transferDeferred = false;
  /** Index of the last conf change proposed by this leader; no new one until it is applied. */
  pendingConfIndex = 0;
  /** Bytes of entries appended by this leader and not yet committed (the no-op is free). */
  uncommittedSize = 0;
  readonly readOnly: ReadOnly;
  /** Reads that arrived before this leader committed an entry of its own term; answered once it has. */
  private pendingReadIndexMessages: Message[] = [];

  protected electionElapsed = 0;
  protected heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;

  constructor(
    readonly config: RaftConfig,
    storage: Storage,
  ) {
    this.id = config.id;
    this.log = new RaftLog(storage, config.maxCommittedSizePerReadyBytes);
    this.readOnly = new ReadOnly(config.maxPendingReads);
    const { hardState, confState } = storage.initialState();
    this.applyConfState(confState);
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (config.applied > 0) this.log.appliedTo(config.applied);
    this.becomeFollower(this.term, NONE);
  }

  // ---- small helpers -------------------------------------------------------------------------------------

  /** Lines are built only when someone listens: formatting them dominated the core's profile otherwise. */
  protected logLine(line: () => string): void {
    if (this.config.logger !== undefined) this.config.logger(`${this.id} ${line()}`);
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private loadState(hs: HardState): void {
    assert(
      hs.commit >= this.log.committed && hs.commit <= this.log.lastIndex(),
      () => `${this.id} state.commit ${hs.commit} is out of range [${this.log.committed}, ${this.log.lastIndex()}]`,
    );
    this.log.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  /** A voter in its own configuration that is not waiting for a snapshot may campaign. */
  promotable(): boolean {
    return this.tracker.isVoter(this.id) && !this.log.hasPendingSnapshot();
  }

  private send(m: Message): void {
    m.from = this.id;
    if (m.type === MessageType.Vote || m.type === MessageType.VoteResp || m.type === MessageType.PreVote || m.type === MessageType.PreVoteResp) {
      assert(m.term !== 0, () => `term should be set when sending ${MessageType[m.type]}`);
    } else {
      assert(m.term === 0, () => `term should not be set when sending ${MessageType[m.type]} (was ${m.term})`);
      // Proposals and reads are forwarded as local messages: they are not bound to the sender's term.
      if (m.type !== MessageType.Prop && m.type !== MessageType.ReadIndex) m.term = this.term;
    }
    this.msgs.push(m);
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.config.electionTicks + this.config.random.int(this.config.electionTicks);
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  // ---- role transitions ----------------------------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.transferDeferred = false;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.tracker.resetVotes();
    const last = this.log.lastIndex();
    for (const pr of this.tracker.progress.values()) {
      const fresh = new Progress(pr.id, last + 1, pr.isLearner, this.config.maxInflightMsgs, this.config.maxInflightBytes);
      // Our own match is what is durable: an entry counts toward commit only once it is on our disk too.
      if (pr.id === this.id) fresh.match = this.log.stableLastIndex();
      this.tracker.progress.set(pr.id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly.reset();
    this.pendingReadIndexMessages = [];
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = Role.Follower;
    this.logLine(() => `became follower at term ${this.term}`);
  }

  becomePreCandidate(): void {
    assert(this.role !== Role.Leader, 'invalid transition [leader -> pre-candidate]');
    // Pre-vote does not change term or vote: a partitioned member that keeps pre-campaigning disturbs nobody.
    this.tracker.resetVotes();
    this.lead = NONE;
    this.role = Role.PreCandidate;
    this.logLine(() => `became pre-candidate at term ${this.term}`);
  }

  becomeCandidate(): void {
    assert(this.role !== Role.Leader, 'invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
    this.logLine(() => `became candidate at term ${this.term}`);
  }

  becomeLeader(): void {
    assert(this.role !== Role.Follower, 'invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.role = Role.Leader;
    const self = this.tracker.progress.get(this.id)!;
    self.becomeReplicate();
    self.recentActive = true;
    // Everything already in the log may hold a conf change: none may be proposed until all of it is applied.
    this.pendingConfIndex = this.log.lastIndex();
    // The no-op of this term: committing it commits everything before it, and lets reads be served.
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }]);
    this.logLine(() => `became leader at term ${this.term}`);
  }

  // ---- ticks ---------------------------------------------------------------------------------------------

  tick(): void {
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(message({ type: MessageType.Hup, from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum) this.step(message({ type: MessageType.CheckQuorum, from: this.id }));
      // A transfer that has not finished within an election timeout is abandoned; proposals flow again.
      if (this.role === Role.Leader && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.role !== Role.Leader) return;
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.step(message({ type: MessageType.Beat, from: this.id }));
    }
  }

  // ---- elections -----------------------------------------------------------------------------------------

  /** The application applied entries (RawNode.advance): a transfer election put off for them may start now. */
  afterApplied(): void {
    if (!this.transferDeferred || this.role !== Role.Follower || this.hasUnappliedConfChanges()) return;
    this.logLine(() => `applied its pending configuration changes; starts the election MsgTimeoutNow asked for`);
    this.hup('transfer');
  }

  private hup(type: CampaignType): void {
    this.transferDeferred = false;
    if (this.role === Role.Leader) return;
    if (!this.promotable()) {
      this.logLine(() => `is unpromotable and can not campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      this.logLine(() => `cannot campaign at term ${this.term} since there are still pending configuration changes to apply`);
      return;
    }
    this.campaign(type);
  }

  private hasUnappliedConfChanges(): boolean {
    if (this.log.applied >= this.log.committed) return false;
    const lo = Math.max(this.log.applied + 1, this.log.firstIndex());
    const ents = this.log.slice(lo, this.log.committed + 1, Number.MAX_SAFE_INTEGER);
    return ents.some((e) => e.type === EntryType.ConfChange);
  }

  protected campaign(type: CampaignType): void {
    let term: number;
    let voteMsg: MessageType;
    if (type === 'pre-election') {
      this.becomePreCandidate();
      voteMsg = MessageType.PreVote;
      // Ask as if for the next term, without moving to it.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.Vote;
      term = this.term;
    }
    const respType = voteMsg === MessageType.PreVote ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (this.poll(this.id, respType, true) === 'won') {
      // A single-voter configuration wins at once.
      if (type === 'pre-election') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.tracker.voters()) {
      if (id === this.id) continue;
      this.logLine(() => `[logterm: ${lastTerm}, index: ${lastIndex}] sent ${MessageType[voteMsg]} request to ${id} at term ${this.term}`);
      this.send(message({ type: voteMsg, to: id, term, index: lastIndex, logTerm: lastTerm, transfer: type === 'transfer' }));
    }
  }

  private poll(id: NodeId, t: MessageType, granted: boolean): 'won' | 'lost' | 'pending' {
    this.logLine(() => `received ${MessageType[t]} ${granted ? 'grant' : 'rejection'} from ${id} at term ${this.term}`);
    this.tracker.recordVote(id, granted);
    return this.tracker.tallyVotes().result;
  }

  /**
   * May this member vote for m.from in m.term? Once per term (the vote is persisted before the answer goes out),
   * or again for the same candidate; a pre-vote for a future term commits to nothing.
   */
  protected canGrantVote(m: Message): boolean {
    return (
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (m.type === MessageType.PreVote && m.term > this.term)
    );
  }

  private handleVoteRequest(m: Message): void {
    const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
    if (this.canGrantVote(m) && this.log.isUpToDate(m.index, m.logTerm)) {
      this.logLine(() => `[logterm: ${this.log.lastTerm()}, index: ${this.log.lastIndex()}, vote: ${this.vote}] cast ${MessageType[m.type]} for ${m.from} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`);
      // The answer carries the term of the request: a pre-vote grant is for the future term the candidate asked about.
      this.send(message({ type: respType, to: m.from, term: m.term }));
      if (m.type === MessageType.Vote) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.logLine(() => `[logterm: ${this.log.lastTerm()}, index: ${this.log.lastIndex()}, vote: ${this.vote}] rejected ${MessageType[m.type]} from ${m.from} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`);
      this.send(message({ type: respType, to: m.from, term: this.term, reject: true }));
    }
  }

  // ---- step: the entry point for every message -----------------------------------------------------------

  step(m: Message): void {
    if (!this.stepTerm(m)) return;
    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.config.preVote ? 'pre-election' : 'election');
        return;
      case MessageType.Vote:
      case MessageType.PreVote:
        this.handleVoteRequest(m);
        return;
      default:
        if (this.role === Role.Leader) this.stepLeader(m);
        else if (this.role === Role.Follower) this.stepFollower(m);
        else this.stepCandidate(m);
    }
  }

  /** Handle the message's term. Returns false when the message is fully handled (stale or ignored). */
  private stepTerm(m: Message): boolean {
    if (m.term === 0) return true; // local message, or a forwarded proposal/read
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        // Leader lease: with check-quorum, a member that heard from a live leader within the election timeout
        // ignores disruptive candidates, unless the leader itself asked for the election (transfer).
        const inLease = this.config.checkQuorum && this.lead !== NONE && this.electionElapsed < this.config.electionTicks;
        if (!m.transfer && inLease) {
          this.logLine(() => `[logterm: ${this.log.lastTerm()}, index: ${this.log.lastIndex()}, vote: ${this.vote}] ignored ${MessageType[m.type]} from ${m.from} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}: lease is not expired`);
          return false;
        }
      }
      if (m.type === MessageType.PreVote) {
        // Never change term in response to a pre-vote.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // A granted pre-vote carries the future term; we move to it only when a quorum grants.
      } else {
        this.logLine(() => `received a ${MessageType[m.type]} message with higher term from ${m.from} [term: ${m.term}]`);
        const fromLeader = m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap;
        const timer = { elapsed: this.electionElapsed, timeout: this.randomizedElectionTimeout };
        this.becomeFollower(m.term, fromLeader ? m.from : NONE);
        if (m.type === MessageType.Vote) {
          // As in the Raft paper, a vote request restarts the election timer only if it is granted (handleVoteRequest).
          // Restarting it on every higher-term request, as etcd's raft does, lets a candidate with a worse log keep
          // holding back the member with a better one, round after round, without pre-vote (simulator seed 902).
          this.electionElapsed = timer.elapsed;
          this.randomizedElectionTimeout = timer.timeout;
        }
      }
      return true;
    }
    if (m.term < this.term) {
      if (m.type === MessageType.Heartbeat || m.type === MessageType.App) {
        // A leader cut off long enough to be deposed may never see a higher term (pre-vote keeps terms still);
        // tell it, so it steps down instead of staying leader of nothing. Also without pre-vote and check-quorum
        // (unlike etcd's raft, which then counts on our Vote requests reaching the leader): a member whose stale
        // configuration leaves the leader out never asks it for a vote (simulator seed 368).
        this.send(message({ type: MessageType.AppResp, to: m.from }));
      } else if (m.type === MessageType.PreVote) {
        this.send(message({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true }));
      } else if (m.type === MessageType.Vote) {
        // Tell a candidate of an older term about ours, as the paper's RequestVote does. Dropping it silently can
        // livelock without pre-vote: two members time out in turn, each raising its own term by one, and the one
        // with the better log never learns the other's term (simulator seed 864).
        this.send(message({ type: MessageType.VoteResp, to: m.from, term: this.term, reject: true }));
      }
      return false;
    }
    return true;
  }

  // ---- leader --------------------------------------------------------------------------------------------

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat();
        return;
      case MessageType.CheckQuorum:
        this.checkQuorum();
        return;
      case MessageType.Prop:
        this.handleProposal(m);
        return;
      case MessageType.ReadIndex:
        this.stepReadIndex(m);
        return;
      case MessageType.TransferLeader:
        this.handleTransferLeader(m);
        return;
    }
    const pr = this.tracker.progress.get(m.from);
    if (pr === undefined) return; // a message from a member no longer in the configuration
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResp:
        this.handleHeartbeatResponse(m, pr);
        return;
      case MessageType.SnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for the next heartbeat response before probing: the snapshot may still be in transit.
        pr.msgAppFlowPaused = true;
        this.logLine(() => `snapshot to ${m.from} ${m.reject ? 'failed' : 'succeeded'}, resumed sending replication messages to ${m.from}`);
        return;
      case MessageType.Unreachable:
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
    }
  }

  private checkQuorum(): void {
    if (!this.tracker.quorumActive(this.id)) {
      this.logLine(() => `stepped down to follower since quorum is not active`);
      this.becomeFollower(this.term, NONE);
    }
    for (const pr of this.tracker.progress.values()) if (pr.id !== this.id) pr.recentActive = false;
  }

  private handleProposal(m: Message): void {
    assert(m.entries.length > 0, () => `${this.id} stepped empty MsgProp`);
    if (!this.tracker.progress.has(this.id)) throw new ProposalDroppedError('not a member');
    if (this.leadTransferee !== NONE) throw new ProposalDroppedError('leadership transfer in progress');
    for (const e of m.entries) {
      if (e.type !== EntryType.ConfChange) continue;
      this.checkConfChangeAllowed(decodeConfChange(e.data));
    }
    this.appendEntries(m.entries);
    for (const e of m.entries) if (e.type === EntryType.ConfChange) this.pendingConfIndex = this.log.lastIndex();
    this.bcastAppend();
  }

  private checkConfChangeAllowed(cc: ConfChange): void {
    if (this.pendingConfIndex > this.log.applied) throw new ProposalDroppedError('configuration change already pending');
    if (cc.type === ConfChangeType.RemoveNode || cc.type === ConfChangeType.AddLearner) {
      const voters = this.tracker.voters().filter((v) => v !== cc.nodeId);
      if (voters.length === 0) throw new ProposalDroppedError('not a member');
    }
  }

  /** Stamp term and index on new entries, account for their size, and append them to our log. */
  private appendEntries(es: readonly Entry[]): void {
    let li = this.log.lastIndex();
    const stamped = es.map((e) => ({ term: this.term, index: ++li, type: e.type, data: e.data }));
    if (!this.increaseUncommittedSize(stamped)) throw new ProposalDroppedError('uncommitted log size limit reached');
    this.log.append(stamped);
    // Our own progress moves when the entries are persisted (see onPersisted), never before.
  }

  private increaseUncommittedSize(es: readonly Entry[]): boolean {
    const size = payloadSize(es);
    const limit = this.config.maxUncommittedEntriesBytes;
    // Always accept when nothing is outstanding, so one large entry cannot wedge the leader.
    if (limit > 0 && this.uncommittedSize > 0 && size > 0 && this.uncommittedSize + size > limit) return false;
    this.uncommittedSize += size;
    return true;
  }

  reduceUncommittedSize(es: readonly Entry[]): void {
    if (this.role !== Role.Leader) return;
    this.uncommittedSize = Math.max(0, this.uncommittedSize - payloadSize(es));
  }

  /** Entries up to (index, term) are durable on this member: count our own copy toward commit. */
  onPersisted(index: number, term: number): void {
    if (this.role !== Role.Leader) return;
    if (!this.log.matchTerm(index, term)) return;
    const self = this.tracker.progress.get(this.id);
    if (self?.maybeUpdate(index) === true && this.maybeCommit()) this.onCommitAdvanced();
  }

  /** The quorum's match index becomes the commit index, but only for an entry of this leader's term. */
  protected maybeCommit(): boolean {
    return this.log.maybeCommit(this.tracker.committedIndex(), this.term);
  }

  private onCommitAdvanced(): void {
    if (this.committedEntryInCurrentTerm()) this.releasePendingReadIndexMessages();
    this.bcastAppend();
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      this.logLine(() => `received MsgAppResp(rejected, hint: (index ${m.rejectHint}, term ${m.logTerm})) from ${m.from} for index ${m.index}`);
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === ProgressState.Probe) pr.becomeReplicate();
    else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= this.log.firstIndex()) {
      // The follower caught up past our log's start: entries can flow again.
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(m.index);

    if (this.maybeCommit()) this.onCommitAdvanced();
    else if (wasPaused) this.sendAppend(m.from);
    // Fill the window: send as long as there is something and the follower is not paused.
    while (this.maybeSendAppend(m.from, false)) {
      /* keep sending */
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.logLine(() => `sent MsgTimeoutNow to ${m.from} after received MsgAppResp`);
      this.sendTimeoutNow(m.from);
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.msgAppFlowPaused = false;
    if (pr.match < this.log.lastIndex() || pr.state === ProgressState.Probe) this.sendAppend(m.from);
    if (m.readRound === 0) return;
    for (const rs of this.readOnly.recvAck(m.from, m.readRound, this.tracker, this.id)) this.respondToRead(rs.request, rs.index);
    this.maybeStartReadRound();
  }

  private handleTransferLeader(m: Message): void {
    const transferee = m.from;
    const pr = this.tracker.progress.get(transferee);
    if (pr === undefined || pr.isLearner) {
      this.logLine(() => `ignored transferring leadership to ${transferee}: not a voter`);
      return;
    }
    if (this.leadTransferee !== NONE) {
      if (this.leadTransferee === transferee) return; // already in progress
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return; // already leader
    this.logLine(() => `starts to transfer leadership to ${transferee}`);
    // The transfer must finish within an election timeout, or it is abandoned.
    this.electionElapsed = 0;
    this.leadTransferee = transferee;
    if (pr.match === this.log.lastIndex()) {
      this.logLine(() => `sends MsgTimeoutNow to ${transferee} immediately as ${transferee} already has up-to-date log`);
      this.sendTimeoutNow(transferee);
    } else {
      this.sendAppend(transferee);
    }
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(message({ type: MessageType.TimeoutNow, to }));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  // ---- replication ---------------------------------------------------------------------------------------

  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Send the entries `to` lacks (or an empty append when sendIfEmpty). Returns whether a message went out. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.tracker.progress.get(to)!;
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    let prevTerm: number;
    let ents: Entry[];
    try {
      prevTerm = this.log.term(prevIndex);
      // A follower with a full window gets an empty append only (a heartbeat response unpaused it): if every
      // append in the window was lost, this one's answer resets the window instead of replication stalling.
      const windowFull = pr.state === ProgressState.Replicate && pr.inflights.full();
      ents = windowFull ? [] : this.log.entries(pr.next, this.config.maxSizePerMsgBytes);
    } catch (e) {
      if (e instanceof RaftError && (e.code === 'COMPACTED' || e.code === 'UNAVAILABLE')) return this.sendSnapshot(to, pr);
      throw e;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    this.send(message({ type: MessageType.App, to, index: prevIndex, logTerm: prevTerm, entries: ents, commit: this.log.committed }));
    pr.sentEntries(ents.length, payloadSize(ents));
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    // A follower we have not heard from lately may be down: do not spend a snapshot on it.
    if (!pr.recentActive) return false;
    let snapshot: Snapshot;
    try {
      snapshot = this.log.snapshot();
    } catch (e) {
      if (e instanceof RaftError && e.code === 'SNAPSHOT_TEMPORARILY_UNAVAILABLE') return false;
      throw e;
    }
    assert(!isEmptySnapshot(snapshot), 'need non-empty snapshot');
    this.logLine(() => `sent snapshot [index: ${snapshot.metadata.index}, term: ${snapshot.metadata.term}] to ${to}`);
    pr.becomeSnapshot(snapshot.metadata.index);
    this.send(message({ type: MessageType.Snap, to, snapshot }));
    return true;
  }

  bcastAppend(): void {
    for (const id of this.tracker.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(): void {
    // Heartbeats carry the newest read round still waiting, so a round whose own heartbeats were lost
    // is confirmed by the next ones.
    const round = this.readOnly.inFlightRound();
    for (const id of this.tracker.progress.keys()) if (id !== this.id) this.sendHeartbeat(id, round);
  }

  private sendHeartbeat(to: NodeId, readRound: number): void {
    // Never tell a follower to commit past what it is known to have: it may not have those entries yet.
    const commit = Math.min(this.tracker.progress.get(to)!.match, this.log.committed);
    this.send(message({ type: MessageType.Heartbeat, to, commit, readRound }));
  }

  // ---- linearizable reads (ReadIndex) --------------------------------------------------------------------

  committedEntryInCurrentTerm(): boolean {
    return this.log.termOrZero(this.log.committed) === this.term;
  }

  private stepReadIndex(m: Message): void {
    if (this.tracker.isSingleton()) {
      this.respondToRead(m, this.log.committed);
      return;
    }
    // Until this leader commits its own no-op it does not know the true commit index: park the read.
    if (!this.committedEntryInCurrentTerm()) {
      if (this.pendingReadIndexMessages.length >= this.config.maxPendingReads) throw new ProposalDroppedError('no leader');
      this.pendingReadIndexMessages.push(m);
      return;
    }
    this.handleReadIndex(m);
  }

  /**
   * Queue a read for confirmation: it is served at the commit index of the round that confirms it, once a quorum
   * has acknowledged a heartbeat sent after the round began. Reads arriving while a round is in flight share the
   * next round, so any number of concurrent reads cost one heartbeat round trip each round.
   */
  protected handleReadIndex(m: Message): void {
    if (!this.readOnly.enqueue(m)) throw new ProposalDroppedError('no leader');
    this.maybeStartReadRound();
  }

  private maybeStartReadRound(): void {
    const round = this.readOnly.maybeStartRound(this.log.committed);
    if (round === 0) return;
    for (const id of this.tracker.progress.keys()) if (id !== this.id) this.sendHeartbeat(id, round);
  }

  private releasePendingReadIndexMessages(): void {
    const pending = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of pending) this.handleReadIndex(m);
  }

  protected respondToRead(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, context: req.context });
    } else {
      this.send(message({ type: MessageType.ReadIndexResp, to: req.from, index, context: req.context }));
    }
  }

  // ---- candidate -----------------------------------------------------------------------------------------

  private stepCandidate(m: Message): void {
    const myVoteResp = this.role === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        throw new ProposalDroppedError('no leader');
      case MessageType.ReadIndex:
        throw new ProposalDroppedError('no leader');
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myVoteResp: {
        const result = this.poll(m.from, m.type, !m.reject);
        if (result === 'won') {
          if (this.role === Role.PreCandidate) this.campaign('election');
          else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === 'lost') {
          // A pre-vote rejection may carry a higher term; stepTerm already moved us. Otherwise stay in this term.
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
    }
  }

  // ---- follower ------------------------------------------------------------------------------------------

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        if (this.lead === NONE) throw new ProposalDroppedError('no leader');
        if (!this.config.proposalForwarding) throw new ProposalDroppedError('proposal forwarding disabled');
        this.send({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === NONE) {
          this.logLine(() => `no leader at term ${this.term}; dropping leader transfer msg`);
          return;
        }
        // Forwarded as-is: `from` names the transferee, not us.
        this.msgs.push({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.TimeoutNow:
        if (this.hasUnappliedConfChanges()) {
          // Typical when a leader removed itself: the commit of its removal and this message arrive together.
          // Campaigning before the change is applied would use the old membership, so wait for it (afterApplied).
          this.logLine(() => `received MsgTimeoutNow from ${m.from}; campaigns once its pending configuration changes are applied`);
          this.transferDeferred = true;
          return;
        }
        this.logLine(() => `received MsgTimeoutNow from ${m.from} and starts an election to get leadership`);
        // Leadership transfers never use pre-vote: the leader asked for this election.
        this.hup('transfer');
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) throw new ProposalDroppedError('no leader');
        this.send({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, context: m.context });
        return;
      case MessageType.Unreachable:
        if (m.from === this.lead) this.leaderUnreachable();
        return;
    }
  }

  /**
   * The transport lost its connection to our leader: typically its process died and its kernel closed the
   * sockets, which the members see at once, long before an election timeout without heartbeats. Act as if that
   * timeout had passed: campaign after the randomized rest of it (0 to electionTicks - 1 ticks, so members that
   * both saw it do not collide), and stop ignoring (pre-)votes under the leader lease. Nothing else changes, so it
   * is safe however wrong the report: a leader that is alive resets the timer with its next heartbeat, and a member
   * that alone lost the leader cannot disturb it, since the others, still in the lease, refuse its pre-vote. A
   * leader whose host is gone or cut off says nothing, and is found out by the timeout as before.
   */
  private leaderUnreachable(): void {
    if (this.electionElapsed >= this.config.electionTicks) return;
    this.logLine(() => `lost the connection to leader ${this.lead} at term ${this.term}; its lease ends now`);
    this.electionElapsed = this.config.electionTicks;
  }

  /** Accept entries that extend a matching prefix; otherwise reject with a hint for fast back-off. */
  protected handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.committed }));
      return;
    }
    const lastNew = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(message({ type: MessageType.AppResp, to: m.from, index: lastNew }));
      return;
    }
    // Our entry at m.index is missing or has another term. Suggest the largest index whose term is <= the
    // leader's term there: the leader skips every index in between in one round trip.
    const hintIndex = Math.min(m.index, this.log.lastIndex());
    const hint = this.log.findConflictByTerm(hintIndex, m.logTerm);
    this.logLine(() => `[logterm: ${this.log.termOrZero(m.index)}, index: ${m.index}] rejected MsgApp [logterm: ${m.logTerm}, index: ${m.index}] from ${m.from}`);
    this.send(message({ type: MessageType.AppResp, to: m.from, index: m.index, reject: true, rejectHint: hint.index, logTerm: hint.term }));
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit);
    this.send(message({ type: MessageType.HeartbeatResp, to: m.from, readRound: m.readRound }));
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot!;
    if (this.restore(s)) {
      this.logLine(() => `[commit: ${this.log.committed}] restored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.lastIndex() }));
    } else {
      this.logLine(() => `[commit: ${this.log.committed}] ignored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`);
      this.send(message({ type: MessageType.AppResp, to: m.from, index: this.log.committed }));
    }
  }

  /** Install a snapshot if it moves us forward. Returns false when it is stale or already covered by our log. */
  private restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.log.committed) return false;
    if (this.role !== Role.Follower) {
      // Defensive: only a leader of our term sends snapshots, and it made us a follower first.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = s.metadata.confState;
    if (!cs.voters.includes(this.id) && !cs.learners.includes(this.id)) {
      this.logLine(() => `attempted to restore snapshot but it is not in the ConfState ${JSON.stringify(cs)}; should never happen`);
      return false;
    }
    if (this.log.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the snapshot's last entry: just move the commit index forward.
      this.log.commitTo(s.metadata.index);
      return false;
    }
    this.log.restore(s);
    this.tracker.progress.clear();
    this.applyConfState(cs);
    return true;
  }

  // ---- membership ----------------------------------------------------------------------------------------

  private applyConfState(cs: ConfState): void {
    const next = this.log.lastIndex() + 1;
    for (const id of cs.voters) this.addProgress(id, false, next);
    for (const id of cs.learners) this.addProgress(id, true, next);
    this.tracker.membershipChanged();
  }

  private addProgress(id: NodeId, isLearner: boolean, next: number): void {
    const pr = new Progress(id, next, isLearner, this.config.maxInflightMsgs, this.config.maxInflightBytes);
    // A new member counts as active so check-quorum does not depose the leader before it has answered.
    pr.recentActive = true;
    if (id === this.id) pr.match = this.log.stableLastIndex();
    this.tracker.progress.set(id, pr);
  }

  confState(): ConfState {
    return { voters: this.tracker.voters(), learners: this.tracker.learners() };
  }

  /** Apply a committed conf change (called by the application when it applies the entry). */
  applyConfChange(cc: ConfChange): ConfState {
    const existing = this.tracker.progress.get(cc.nodeId);
    switch (cc.type) {
      case ConfChangeType.AddVoter:
      case ConfChangeType.AddLearner: {
        const learner = cc.type === ConfChangeType.AddLearner;
        if (existing !== undefined) existing.isLearner = learner;
        else this.addProgress(cc.nodeId, learner, this.log.lastIndex() + 1);
        break;
      }
      case ConfChangeType.RemoveNode:
        this.tracker.progress.delete(cc.nodeId);
        break;
    }
    this.tracker.membershipChanged();
    this.logLine(() => `applied conf change (${describeConfChange(cc)}): voters=${this.tracker.voters().join(',')} learners=${this.tracker.learners().join(',')}`);
    this.afterConfChange();
    return this.confState();
  }

  /**
   * Removed from the voters while leading: step down, first asking a voter that already holds our whole log to
   * campaign at once (MsgTimeoutNow), so the others need not wait out an election timeout with no leader. With
   * no such voter, they elect one the usual way.
   */
  private stepDownRemoved(): void {
    const last = this.log.lastIndex();
    const successor = this.tracker.voters().find((id) => id !== this.id && this.tracker.progress.get(id)?.match === last);
    this.logLine(() => `stepping down: removed from the voters`);
    if (successor !== undefined) {
      this.logLine(() => `sends MsgTimeoutNow to ${successor}: its log is up to date`);
      this.sendTimeoutNow(successor);
    }
    this.becomeFollower(this.term, NONE);
  }

  private afterConfChange(): void {
    if (this.role !== Role.Leader) return;
    if (!this.tracker.isVoter(this.id)) {
      if (this.config.stepDownOnRemoval) this.stepDownRemoved();
      return;
    }
    // Quorums changed: the commit index may move now. Otherwise only send what members lack; a new member
    // is probed by the next heartbeat.
    if (this.maybeCommit()) this.onCommitAdvanced();
    else for (const id of this.tracker.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, false);
    if (this.leadTransferee !== NONE && !this.tracker.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
  }
}

/** Bytes counted against the uncommitted and in-flight limits. The no-op (empty data) is free. */
function payloadSize(es: readonly Entry[]): number {
  let n = 0;
  for (const e of es) if (e.data.byteLength > 0) n += entrySize(e);
  return n;
}
