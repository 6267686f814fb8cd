// One Fulcrum member: the write-ahead log, the state machine and the Raft core, driven by the Ready loop.
// This is the composition root the server, the embedded API and the crash tests share.
//
// Restart: the core starts at the WAL's snapshot index, so every committed entry after it is replayed. Conf
// changes replay into the core's membership; commands the state machine already holds (its applied index is
// durable in its own store) are skipped. That is why the two stores need not be synced together.
import { randomInt } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { RawNode } from '../raft/rawnode.js';
import { SeededRandom } from '../raft/rng.js';
import { assert, ProposalDroppedError } from '../raft/errors.js';
import { ConfChangeType, isEmptyHardState, NONE, Role, type ConfChange, type ConfState, type Message, type NodeId, type Snapshot, type SnapshotMetadata, type SoftState } from '../raft/types.js';
import { LevelBackend } from '../storage/backend.js';
import { encodeCommand, type Command as StoredCommand, type Op } from '../storage/command.js';
import { HybridClock } from '../storage/hlc/index.js';
import {
  BACKEND_REFERENCE_BYTES,
  backendReference,
  backendReferenceIndex,
  decodeMemberContext,
  encodeMemberContext,
  installStateMachineImage,
  StateMachine,
  stateMachineImage,
  type CommandResult,
  type MemberContext,
  type MemberRecord,
} from '../storage/state-machine.js';
import { RESTORE_ADVICE, SnapshotStore, WriteAheadLog, type SnapshotSource } from '../storage/wal/index.js';
import { clusterIdFor, samePeerUrls } from './ids.js';
import { RaftLoop, RAFT_LOOP_DEFAULTS, type Applier, type Command, type FaultPoint, type PeerSender } from './raft-loop.js';
import { trace } from './trace.js';

/** What a transport may do to its member. */
export interface TransportHooks {
  /** A message from a peer (a received snapshot's file must already be committed in `snapshots`). */
  deliver(m: Message): void;
  reportUnreachable(id: NodeId): void;
  reportSnapshot(id: NodeId, ok: boolean): void;
  /** A peer refused us as a removed member: the removal may never reach our own log (the leader stopped sending). */
  reportRemoved?(): void;
  /** How far this member has applied the log: sent to peers in every hello, and weighed against theirs (transport.ts). */
  appliedIndex?(): number;
  /** The id of the member in this member's registry with exactly these peer URLs: a joining member asks for its own. */
  memberIdByPeerUrls?(peerUrls: readonly string[]): NodeId | undefined;
  /** Where received snapshot images are written. */
  readonly snapshots: SnapshotStore;
  /**
   * The bytes to stream for a snapshot Raft wants sent (release them after the transfer). Without it, the file of
   * that index and term in `snapshots` (bare transports in tests); a member makes an image of its backend when its
   * snapshot is only a reference to it.
   */
  openSnapshot?(metadata: SnapshotMetadata): Promise<SnapshotSource>;
}

export interface MemberTransport extends PeerSender {
  start(hooks: TransportHooks): void;
  /** The membership changed (a conf change was applied). */
  onConfChange?(cc: ConfChange, cs: ConfState): void;
  close(): Promise<void>;
}

export interface MemberOptions {
  readonly id: NodeId;
  readonly dataDir: string;
  /** The founding voters, used only when the data dir holds no log yet. */
  readonly initialVoters: readonly NodeId[];
  /** Names and URLs of the founding voters, recorded in the bootstrap entries. */
  readonly initialMembers?: ReadonlyMap<NodeId, MemberContext>;
  /**
   * Found a new cluster when the data dir is empty (etcd's --initial-cluster-state new). False for a member that
   * joins after MemberAdd (state existing): it starts with an empty log and learns everything from the leader.
   */
  readonly bootstrap: boolean;
  /** The cluster id when it is known from elsewhere (a joining member learns it from its peers). */
  readonly clusterId?: number;
  /** etcd's --initial-cluster-token: part of the cluster id. */
  readonly clusterToken: string;
  /** Deadline for membership changes to be applied. */
  readonly confChangeTimeoutMs: number;
  readonly heartbeatMs: number;
  /** Election timeout in heartbeats. */
  readonly electionTicks: number;
  /** Applied entries between two snapshots (after which the WAL is compacted). */
  readonly snapshotCount: number;
  /** Entries kept in the WAL behind a snapshot so a slightly slow follower needs no snapshot. */
  readonly snapshotCatchUpEntries: number;
  /** The largest command a client may send, in bytes (etcd's --max-request-bytes). */
  readonly maxRequestBytes: number;
  readonly transport?: MemberTransport;
  readonly faults?: (point: FaultPoint) => void;
  readonly onSoftState?: (s: SoftState) => void;
  /** Called with every applied command's result (the watch hub listens here). */
  readonly onApplied?: (results: readonly CommandResult[]) => void;
  readonly onFatal?: (err: unknown) => void;
  /** Each persisted Ready: how long it took and whether it was synced. */
  readonly onPersist?: (ms: number, synced: boolean) => void;
  /** Ticks that came late (the event loop was blocked): the gap in ms (RaftLoopOptions.onTickLate). */
  readonly onTickLate?: (gapMs: number) => void;
  /** Where the member reports what an operator should see (Raft state changes, snapshot failures). */
  readonly logger?: Logger;
  /**
   * Where its WAL reports (opened, a torn tail cut, old snapshots deleted); `logger` when absent. A sibling of
   * `logger` rather than a child of it: pino appends a child's bindings, and a child naming its own component
   * printed both ("component":"raft","component":"wal").
   */
  readonly walLogger?: Logger;
}

/** Raft lines worth an operator's attention at info level; the rest (every vote, every rejection) are debug. */
const RAFT_INFO_LINE = /became |stepped down|stepping down|applied conf change|transfer leadership|restored snapshot|attempted to restore snapshot|lost the connection to leader|MsgTimeoutNow/;

export const MEMBER_DEFAULTS = {
  heartbeatMs: 100,
  electionTicks: 10,
  snapshotCount: 10_000,
  snapshotCatchUpEntries: 5_000,
  maxRequestBytes: 1.5 * 1024 * 1024,
  bootstrap: true,
  clusterToken: 'fulcrum-cluster',
  confChangeTimeoutMs: 10_000,
} as const;

export class MemberError extends Error {
  constructor(
    readonly code: 'REQUEST_TOO_LARGE' | 'STOPPED' | 'TIMEOUT' | 'NO_LEADER' | 'MEMBER_EXISTS' | 'MEMBER_NOT_FOUND' | 'NOT_LEARNER' | 'LEARNER_NOT_READY' | 'DATA_DIR_MISMATCH',
    message: string,
  ) {
    super(message);
    this.name = 'MemberError';
  }
}

const intervalTicker = {
  every(ms: number, fn: () => void): () => void {
    const t = setInterval(fn, ms);
    return () => clearInterval(t);
  },
};

export class Member {
  private readonly appliedWaiters: Array<{ index: number; resolve: () => void }> = [];
  private readonly appliedListeners = new Set<(results: readonly CommandResult[]) => void>();
  private readonly softStateListeners = new Set<(s: SoftState) => void>();
  private readonly removedListeners = new Set<() => void>();
  private readonly restoredListeners = new Set<(sm: StateMachine) => void>();
  private readonly confWaiters = new Map<string, (cs: ConfState) => void>();
  private confNonce = 0;
  /** The cluster this member belongs to: fixed at bootstrap from the founding members and the token. */
  readonly clusterId: number;
  private lastSnapshotIndex: number;
  private snapshotInFlight: Promise<void> | undefined;
  private closed = false;
  /** Applies, snapshot installs and idle compaction steps change the state machine one at a time, in this chain. */
  private stateChain: Promise<unknown> = Promise.resolve();
  private idleCompactionTimer: NodeJS.Timeout | undefined;
  private idleCompactionRunning = false;

  private constructor(
    readonly options: MemberOptions,
    readonly wal: WriteAheadLog,
    /** The state machine's LevelDB (the Maintenance service streams its image and measures it). */
    readonly backend: LevelBackend,
    private sm: StateMachine,
    private readonly clock: HybridClock,
    readonly node: RawNode,
    readonly loop: RaftLoop,
  ) {
    this.lastSnapshotIndex = wal.storage.firstIndex() - 1;
    this.clusterId = options.clusterId ?? clusterIdFor(options.initialVoters, options.clusterToken);
  }

  static async start(input: Partial<MemberOptions> & Pick<MemberOptions, 'id' | 'dataDir' | 'initialVoters'>): Promise<Member> {
    await mkdir(input.dataDir, { recursive: true });
    // The cluster id is fixed the first time a member starts and kept beside its data: later starts ignore flags.
    const clusterId = await persistedClusterId(input.dataDir, input.clusterId ?? clusterIdFor(input.initialVoters, input.clusterToken ?? MEMBER_DEFAULTS.clusterToken));
    await persistMemberId(input.dataDir, input.id);
    const options: MemberOptions = { ...MEMBER_DEFAULTS, ...input, clusterId };
    const walLogger = options.walLogger ?? options.logger;
    const wal = await WriteAheadLog.open(join(options.dataDir, 'wal'), walLogger === undefined ? {} : { logger: walLogger });
    const backend = await LevelBackend.open(join(options.dataDir, 'kv'));
    let sm = await StateMachine.open(backend);
    const snapIndex = wal.storage.firstIndex() - 1;
    if (sm.appliedIndex < snapIndex) {
      // The state machine is behind the log's start (a snapshot was installed, then a crash): load the image.
      await installFromSnapshot(wal, backend, wal.storage.snapshot());
      sm = await StateMachine.open(backend);
    }
    const clock = await HybridClock.open(backend, { physicalNowMs: () => Date.now() });
    await reserveClock(clock, backend);

    const isNew = wal.storage.lastIndex() === 0 && isEmptyHardState(wal.storage.initialState().hardState);
    const node = new RawNode(
      {
        id: options.id,
        electionTicks: options.electionTicks,
        heartbeatTicks: 1,
        applied: snapIndex,
        random: new SeededRandom(randomInt(2 ** 31)),
        logger: options.logger === undefined ? undefined : (line) => (RAFT_INFO_LINE.test(line) ? options.logger!.info(line) : options.logger!.debug(line)),
      },
      wal.storage,
    );
    if (isNew && options.bootstrap) {
      const contexts = new Map([...(options.initialMembers ?? new Map<NodeId, MemberContext>())].map(([id, c]) => [id, encodeMemberContext(c)]));
      node.bootstrap(options.initialVoters, contexts);
    }

    // The loop and the member refer to each other; the loop only calls back once the member exists.
    const self: { member?: Member } = {};
    const applier: Applier = {
      apply: (commands) => self.member!.applyCommands(commands),
      restore: (s) => self.member!.restoreSnapshot(s),
    };
    const peers: PeerSender = options.transport ?? { send: () => {} };
    const loop = new RaftLoop(node, wal, peers, applier, {
      ...RAFT_LOOP_DEFAULTS,
      memberId: options.id,
      tickMs: options.heartbeatMs,
      proposalTimeoutTicks: Math.ceil(PROPOSAL_WAIT_MAX_MS / options.heartbeatMs),
      bootNonce: randomInt(2 ** 32),
      ticker: intervalTicker,
      ...(options.faults ? { faults: options.faults } : {}),
      onSoftState: (s) => self.member!.softStateChanged(s),
      onConfChange: (cc, cs, index) => self.member!.confChangeApplied(cc, cs, index),
      onApplied: (i) => self.member!.releaseAppliedWaiters(i),
      onFatal: (e) => options.onFatal?.(e),
      ...(options.onPersist ? { onPersist: options.onPersist } : {}),
      ...(options.onTickLate ? { onTickLate: options.onTickLate } : {}),
    });
    const member = new Member(options, wal, backend, sm, clock, node, loop);
    self.member = member;
    options.transport?.start({
      deliver: (m) => loop.step(m),
      reportUnreachable: (id) => {
        node.reportUnreachable(id);
        loop.kick();
      },
      reportSnapshot: (id, ok) => {
        node.reportSnapshot(id, ok);
        loop.kick();
      },
      reportRemoved: () => self.member!.removedFromCluster(),
      appliedIndex: () => loop.applied,
      memberIdByPeerUrls: (urls) => self.member!.members().find((m) => samePeerUrls(m.peerUrls, urls))?.id,
      snapshots: wal.snapshots,
      openSnapshot: (md) => self.member!.openSnapshotForPeer(md),
    });
    loop.start();
    member.startIdleCompaction();
    // Replay (or, for a new member, the bootstrap entries) must be applied before the membership is known.
    await member.waitApplied(node.status().commit);
    const cs = node.status().confState;
    if (cs.voters.length === 1 && cs.voters[0] === options.id) {
      // A single voter need not wait an election timeout: nobody else can be leader.
      node.campaign();
      loop.kick();
      // Entries it acknowledged before a crash may lie beyond the commit index it read back (the loop answers
      // before that index is written): as leader it commits its whole log again; serve only once that is applied.
      await member.waitApplied(wal.storage.lastIndex());
    }
    return member;
  }

  get stateMachine(): StateMachine {
    return this.sm;
  }

  get id(): NodeId {
    return this.options.id;
  }

  leaderId(): NodeId {
    return this.node.lead;
  }

  isLeader(): boolean {
    return this.node.role === Role.Leader;
  }

  term(): number {
    return this.node.term;
  }

  members(): MemberRecord[] {
    return this.sm.members();
  }

  /** Results of every applied command, in log order (the watch hub and lease tracker listen here). */
  subscribeApplied(fn: (results: readonly CommandResult[]) => void): () => void {
    this.appliedListeners.add(fn);
    return () => this.appliedListeners.delete(fn);
  }

  /** Leadership and role changes of this member. */
  subscribeSoftState(fn: (s: SoftState) => void): () => void {
    this.softStateListeners.add(fn);
    return () => this.softStateListeners.delete(fn);
  }

  /** A snapshot from the leader replaced the state machine (watchers resync; the transport learns members). */
  subscribeRestored(fn: (sm: StateMachine) => void): () => void {
    this.restoredListeners.add(fn);
    return () => this.restoredListeners.delete(fn);
  }

  /** This member was removed from the cluster (it should stop serving). */
  subscribeRemoved(fn: () => void): () => void {
    this.removedListeners.add(fn);
    return () => this.removedListeners.delete(fn);
  }

  private softStateChanged(s: SoftState): void {
    this.options.onSoftState?.(s);
    for (const fn of this.softStateListeners) fn(s);
  }

  /**
   * Propose a membership change and wait until it is applied on this member. Resolves with the new membership.
   * The context carries the member's name and URLs into the registry on every member.
   */
  async changeMembership(type: ConfChangeType, nodeId: NodeId, ctx: MemberContext = {}): Promise<ConfState> {
    if (this.closed) throw new MemberError('STOPPED', 'fulcrum: member is stopping');
    this.checkConfChange(type, nodeId);
    const nonce = `${this.options.id}:${process.pid}:${++this.confNonce}:${randomInt(2 ** 32)}`;
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<ConfState>((resolve, reject) => {
      timer = setTimeout(() => {
        this.confWaiters.delete(nonce);
        reject(new MemberError('TIMEOUT', 'etcdserver: request timed out'));
      }, this.options.confChangeTimeoutMs);
      this.confWaiters.set(nonce, (cs) => {
        clearTimeout(timer);
        resolve(cs);
      });
    });
    try {
      this.loop.stepProposals(); // the proposals made before this one enter the log first
      this.node.proposeConfChange({ type, nodeId, context: encodeMemberContext({ ...ctx, nonce }) });
    } catch (e) {
      // Nobody will wait for `done`: disarm it, or its timeout would reject with no handler and stop the process.
      clearTimeout(timer);
      this.confWaiters.delete(nonce);
      if (e instanceof ProposalDroppedError) {
        throw new MemberError(this.leaderId() === NONE ? 'NO_LEADER' : 'TIMEOUT', e.reason === 'no leader' ? 'etcdserver: no leader' : `etcdserver: ${e.reason}`);
      }
      throw e;
    }
    this.loop.kick();
    return done;
  }

  private checkConfChange(type: ConfChangeType, nodeId: NodeId): void {
    const existing = this.sm.members().find((m) => m.id === nodeId);
    if (type === ConfChangeType.RemoveNode && existing === undefined) throw new MemberError('MEMBER_NOT_FOUND', 'etcdserver: member not found');
    if (type === ConfChangeType.AddLearner && existing !== undefined) throw new MemberError('MEMBER_EXISTS', 'etcdserver: member ID already exist');
    if (type === ConfChangeType.AddVoter && existing !== undefined && !existing.isLearner) {
      throw new MemberError('MEMBER_EXISTS', 'etcdserver: member ID already exist');
    }
  }

  private async confChangeApplied(cc: ConfChange, cs: ConfState, index: number): Promise<void> {
    const newcomer = cc.type !== ConfChangeType.RemoveNode && !this.sm.members().some((m) => m.id === cc.nodeId);
    await this.sm.applyConfChange(index, cc);
    // A newcomer to a cluster whose log is compacted can only start from a snapshot, and it refuses one whose
    // configuration leaves it out (Raft's rule): the stored snapshot predates its addition. Take one now.
    if (newcomer && index > this.lastSnapshotIndex && this.wal.storage.firstIndex() > 1) await this.serialize(() => this.maybeSnapshot(true));
    this.options.transport?.onConfChange?.(cc, cs);
    const nonce = decodeMemberContext(cc.context).nonce;
    if (nonce !== undefined) this.confWaiters.get(nonce)?.(cs);
    if (nonce !== undefined) this.confWaiters.delete(nonce);
    if (cc.type === ConfChangeType.RemoveNode && cc.nodeId === this.options.id) this.scheduleRemovalCheck();
  }

  /** A snapshot was asked for (a newcomer joined) while another was being written: take it once that one is done. */
  private snapshotWanted = false;
  private removedNotified = false;
  private removalCheck: NodeJS.Timeout | undefined;

  /**
   * This member applied its own removal. Stop only if it is still out of the configuration once it has caught up:
   * a member re-added with the same id (same peer URLs, empty data dir: the documented way to replace a failed
   * machine) replays its old removal before the entry that adds it back, and must not stop on the way.
   */
  private scheduleRemovalCheck(): void {
    if (this.removalCheck !== undefined || this.closed) return;
    const delayMs = 2 * this.options.electionTicks * this.options.heartbeatMs;
    this.removalCheck = setTimeout(() => {
      this.removalCheck = undefined;
      if (this.closed) return;
      const st = this.node.status();
      const inConfig = st.confState.voters.includes(this.options.id) || st.confState.learners.includes(this.options.id);
      if (inConfig) return;
      if (this.loop.applied < st.commit) return this.scheduleRemovalCheck(); // still replaying: look again later
      this.removedFromCluster();
    }, delayMs);
    this.removalCheck.unref();
  }

  private removedFromCluster(): void {
    if (this.removedNotified) return;
    this.removedNotified = true;
    for (const fn of this.removedListeners) fn();
  }

  /**
   * Before a planned stop (SIGTERM, a rolling restart): if this member leads, hand the leadership to the voter
   * whose log is most complete among those recently heard from, and wait until it has taken over (or the time is
   * up). Clients then see one quick leader change instead of an election timeout. As etcd does on shutdown.
   * Resolves with the new leader's id, or undefined when there was nothing to do or nobody took over in time.
   */
  async handOverLeadership(timeoutMs: number): Promise<number | undefined> {
    const st = this.node.status();
    if (st.softState.role !== Role.Leader || st.progress === undefined) return undefined;
    let best: { id: number; match: number } | undefined;
    for (const [id, p] of st.progress) {
      if (id === this.options.id || p.isLearner || !p.recentActive || !st.confState.voters.includes(id)) continue;
      if (best === undefined || p.match > best.match) best = { id, match: p.match };
    }
    if (best === undefined) return undefined;
    this.node.transferLeadership(best.id);
    this.loop.kick();
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (this.leaderId() === best.id) return best.id;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return undefined;
  }

  /** Publish this member's name and client URLs to the registry (after it starts serving clients). */
  async publishAttributes(name: string, clientUrls: readonly string[]): Promise<void> {
    const r = await this.propose({ memberAttributes: { id: this.options.id, name, clientUrls } });
    if (r.error !== undefined) throw new MemberError('MEMBER_NOT_FOUND', r.error.message);
  }

  /**
   * Propose a command and wait for its result on this member. `leaderOnly`: refused unless this member leads when
   * the entry is appended (RaftLoop.propose), instead of being forwarded to the leader.
   */
  async propose(op: Op, opts: Pick<StoredCommand, 'clientId' | 'seq' | 'auth'> = {}, how: { leaderOnly?: boolean } = {}): Promise<CommandResult> {
    if (this.closed) throw new MemberError('STOPPED', 'fulcrum: member is stopping');
    // Nearly every proposal needs no new reservation: skip the call and its await then.
    if (this.clock.needsReservation()) await reserveClock(this.clock, this.backend);
    // The fields in the order a spread of `opts` gave them, so a command's bytes stay as they were (absent ones are
    // left out either way); no object spread per proposal.
    const payload = encodeCommand({ hlc: this.clock.now(), op, clientId: opts.clientId, seq: opts.seq, auth: opts.auth });
    if (payload.byteLength > this.options.maxRequestBytes) throw new MemberError('REQUEST_TOO_LARGE', 'etcdserver: request is too large');
    const result = (await this.loop.propose(payload, how)) as CommandResult | null;
    // Applied while this member caught up from a snapshot image that already held it: it took effect, but its
    // answer is unknown here (a retry with a request id gets the first answer from the dedup table).
    if (result === null) throw new MemberError('TIMEOUT', 'etcdserver: request timed out');
    return result;
  }

  /** Wait until this member's state reflects every write acknowledged anywhere before the call (ReadIndex). */
  async linearizableBarrier(): Promise<void> {
    const index = await this.loop.readIndex();
    await this.waitApplied(index);
  }

  waitApplied(index: number): Promise<void> {
    if (this.loop.applied >= index) return Promise.resolve();
    return new Promise((resolve) => this.appliedWaiters.push({ index, resolve }));
  }

  private releaseAppliedWaiters(applied: number): void {
    for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
      const w = this.appliedWaiters[i]!;
      if (w.index <= applied) {
        this.appliedWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /**
   * Read the state machine between two applied batches: `fn` runs when no apply, snapshot install or compaction
   * step is under way, so several reads inside it see one point of the log (read-only txns).
   */
  readState<T>(fn: (sm: StateMachine) => Promise<T>): Promise<T> {
    return this.serialize(() => fn(this.sm));
  }

  /** Run `fn` after every state machine change queued before it (see stateChain). */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.stateChain.then(fn, fn);
    this.stateChain = run.catch(() => undefined);
    return run;
  }

  /**
   * Physical compaction advances one bounded chunk per applied batch; when no writes arrive, this timer moves it
   * on, so the space of a compaction is given back even on an idle cluster (and Compact with `physical` returns).
   */
  private startIdleCompaction(): void {
    this.idleCompactionTimer = setInterval(() => {
      if (this.idleCompactionRunning || !this.sm.mvcc.compactionPending) return;
      this.idleCompactionRunning = true;
      this.serialize(() => this.sm.compactionStep())
        .catch((e: unknown) => this.options.logger?.error({ err: String(e) }, 'fulcrum: an idle compaction step failed; the next applied batch retries'))
        .finally(() => (this.idleCompactionRunning = false));
    }, IDLE_COMPACTION_INTERVAL_MS);
    this.idleCompactionTimer.unref();
  }

  /** Resolves once no physical compaction is left to do (etcd's Compact with `physical: true` waits for this). */
  async whenCompactedPhysically(signal?: AbortSignal): Promise<void> {
    while (this.sm.mvcc.compactionPending) {
      if (this.closed) throw new Error('fulcrum: member closed');
      signal?.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, IDLE_COMPACTION_INTERVAL_MS));
    }
  }

  private applyCommands(commands: readonly Command[]): Promise<readonly unknown[]> {
    return this.serialize(() => this.applyCommandsNow(commands));
  }

  private async applyCommandsNow(commands: readonly Command[]): Promise<readonly unknown[]> {
    // After a restart the log replays from the snapshot; skip what the state machine already holds.
    const fresh = commands.filter((c) => c.index > this.sm.appliedIndex);
    const results = await this.sm.apply(fresh);
    if (results.length > 0) {
      this.options.onApplied?.(results);
      for (const fn of this.appliedListeners) fn(results);
    }
    const byIndex = new Map(results.map((r) => [r.index, r]));
    await this.maybeSnapshot();
    return commands.map((c) => byIndex.get(c.index) ?? null);
  }

  /**
   * Every snapshotCount entries: make the state durable and record a snapshot at this index whose data is only a
   * reference to the backend (backendReference), then compact the WAL. The backend never falls below it again: it
   * only moves forward, and an installed image is newer. An image is made only when a follower needs one
   * (openSnapshotForPeer), as etcd sends its backend. The backend's sync, the file and the marker all happen in the
   * background, in that order, so the apply step waits for none of their fsyncs: the marker (and the compaction
   * behind it) only ever follows a durable backend.
   */
  private async maybeSnapshot(force = false): Promise<void> {
    const applied = this.sm.appliedIndex;
    if (this.snapshotInFlight !== undefined) {
      this.snapshotWanted ||= force;
      return;
    }
    if (applied === this.lastSnapshotIndex || (!force && applied - this.lastSnapshotIndex < this.options.snapshotCount)) return;
    // After a restart the state machine may hold entries past the commit index the core has learnt again (a
    // commit-only change is written with the WAL's next batch): the log must not start from a snapshot beyond its
    // commit index (the WAL refuses the marker). A later apply brings the commit index past it.
    if (applied > this.wal.storage.initialState().hardState.commit) return;
    trace(() => `snapshot begin index=${applied}`);
    const durable = this.sm.syncBehindApplied();
    const metadata = { index: applied, term: this.wal.storage.term(applied), confState: this.node.status().confState };
    this.lastSnapshotIndex = applied;
    this.snapshotInFlight = durable
      .then(() => {
        trace('snapshot state machine synced');
        return this.writeSnapshot(metadata, backendReference(applied));
      })
      .catch((e: unknown) => this.options.logger?.error({ err: String(e), index: applied }, 'fulcrum: writing a snapshot failed; the WAL keeps every entry, the next snapshot retries'))
      .finally(() => {
        this.snapshotInFlight = undefined;
        if (!this.snapshotWanted || this.closed) return;
        this.snapshotWanted = false;
        void this.serialize(() => this.maybeSnapshot(true)).catch(() => {}); // its own failure is logged inside
      });
  }

  private async writeSnapshot(metadata: SnapshotMetadata, data: Uint8Array): Promise<void> {
    const writer = await this.wal.snapshots.create(metadata);
    try {
      await writer.write(data);
    } catch (e) {
      await writer.abort();
      throw e;
    }
    await writer.commit();
    trace('snapshot file written');
    await this.wal.markSnapshot(metadata);
    trace('snapshot marked in the WAL');
    const compactTo = metadata.index - this.options.snapshotCatchUpEntries;
    if (compactTo > this.wal.storage.firstIndex() - 1) await this.wal.compact(compactTo);
    trace('snapshot done, WAL compacted');
    this.options.logger?.info({ index: metadata.index, term: metadata.term }, 'fulcrum: snapshot written, WAL compacted behind it');
  }

  /**
   * What to stream to a follower for the snapshot Raft chose: its file when that holds an image (one received from
   * a leader), else an image of the backend now, spooled to a file so its length is known up front. That image is
   * at or past the snapshot's index; the follower skips the entries it already holds (applyCommandsNow).
   */
  private async openSnapshotForPeer(md: SnapshotMetadata): Promise<SnapshotSource> {
    const stored = await this.wal.snapshots.source(md);
    if (!(await isBackendReference(stored))) return stored;
    await stored.release();
    // Open the iterator between applied batches: the image is the state at one applied index.
    const { image, first, applied } = await this.serialize(async () => {
      await this.sm.settled();
      const image = stateMachineImage(this.backend);
      return { image, first: image.next(), applied: this.sm.appliedIndex };
    });
    assert(applied >= md.index, () => `the backend (applied ${applied}) is behind snapshot ${md.index} that refers to it`);
    const spool = await this.wal.snapshots.spool(md);
    try {
      for (let r = await first; r.done !== true; r = await image.next()) await spool.write(r.value);
    } catch (e) {
      await spool.abort();
      throw e;
    }
    const source = await spool.finish();
    this.options.logger?.info({ index: md.index, applied, bytes: source.totalBytes }, 'fulcrum: made an image of the backend for a follower');
    return source;
  }

  private restoreSnapshot(s: Snapshot): Promise<void> {
    return this.serialize(() => this.restoreSnapshotNow(s));
  }

  private async restoreSnapshotNow(s: Snapshot): Promise<void> {
    await this.snapshotInFlight; // our own image must finish streaming before the backend is replaced
    await this.sm.settled(); // and our own applied batches must not land on top of the installed image
    await installFromSnapshot(this.wal, this.backend, s);
    this.sm = await StateMachine.open(this.backend);
    this.lastSnapshotIndex = s.metadata.index;
    for (const fn of this.restoredListeners) fn(this.sm);
  }

  status(): ReturnType<RawNode['status']> & { revision: number; appliedState: number } {
    return { ...this.node.status(), revision: this.sm.revision, appliedState: this.sm.appliedIndex };
  }

  /** Stop: fail what waits, make the applied state durable, close the stores. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.idleCompactionTimer);
    clearTimeout(this.removalCheck);
    await this.options.transport?.close();
    await this.loop.stop();
    await this.stateChain;
    await this.snapshotInFlight;
    await this.sm.flush();
    await this.wal.close();
    await this.backend.close();
  }
}

const CLUSTER_ID_FILE = 'cluster-id';
/**
 * How long a proposal's waiter is kept before the loop fails it (longer than the API's 7 s request deadline, so
 * callers give up first; this only frees the slots of proposals that were lost on their way to the leader).
 */
const PROPOSAL_WAIT_MAX_MS = 10_000;
/** How often an idle member moves a pending physical compaction on by one bounded chunk. */
const IDLE_COMPACTION_INTERVAL_MS = 50;

/**
 * This member's id, kept beside its data since the first start: a member added with MemberAdd has a fresh id it
 * learnt from the cluster (join.ts), which its flags alone cannot give again.
 */
const MEMBER_ID_FILE = 'member-id';

/** The member id kept in this data dir, if any (older builds kept none: their ids came from the peer URLs). */
export async function readPersistedMemberId(dataDir: string): Promise<number | undefined> {
  return readIdFile(join(dataDir, MEMBER_ID_FILE));
}

/** The cluster id kept in this data dir since its first start, if any. */
export async function readPersistedClusterId(dataDir: string): Promise<number | undefined> {
  return readIdFile(join(dataDir, CLUSTER_ID_FILE));
}

async function readIdFile(path: string): Promise<number | undefined> {
  try {
    const id = Number((await readFile(path, 'utf8')).trim());
    if (Number.isSafeInteger(id) && id > 0) return id;
    return undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    return undefined;
  }
}

/** Keep this member's id beside its data; a data dir that already names another member is refused. */
async function persistMemberId(dataDir: string, id: number): Promise<void> {
  const kept = await readPersistedMemberId(dataDir);
  if (kept === id) return;
  if (kept !== undefined) {
    throw new MemberError('DATA_DIR_MISMATCH', `fulcrum: the data dir ${dataDir} belongs to member ${kept.toString(16)} (its ${MEMBER_ID_FILE} file), not to ${id.toString(16)}`);
  }
  await writeIdFile(join(dataDir, MEMBER_ID_FILE), id);
}

async function persistedClusterId(dataDir: string, proposed: number): Promise<number> {
  const path = join(dataDir, CLUSTER_ID_FILE);
  const kept = await readIdFile(path);
  if (kept !== undefined) return kept;
  await writeIdFile(path, proposed);
  return proposed;
}

async function writeIdFile(path: string, id: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(`${id}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function reserveClock(clock: HybridClock, backend: LevelBackend): Promise<void> {
  // Nearly every call needs no new reservation: collect the writes first, and make a backend batch only when
  // there is one (a LevelDB batch per proposal showed in the profile).
  const writes: Array<[Uint8Array, Uint8Array | undefined]> = [];
  const bound = clock.reserve({ put: (k, v) => writes.push([k, v]), del: (k) => writes.push([k, undefined]) });
  if (bound === undefined) return;
  const batch = backend.batch();
  for (const [k, v] of writes) {
    if (v === undefined) batch.del(k);
    else batch.put(k, v);
  }
  // The reservation must be on disk before any HLC value under it is handed out.
  await batch.write({ sync: true });
  clock.reservationPersisted(bound);
}

async function installFromSnapshot(wal: WriteAheadLog, backend: LevelBackend, s: Snapshot): Promise<void> {
  const source = await wal.snapshots.source(s.metadata);
  if (await isBackendReference(source)) {
    // Only our own snapshots are references, recorded after a synced flush: the backend lost synced writes.
    throw new MemberError(
      'STOPPED',
      `fulcrum: the state machine is behind snapshot ${s.metadata.index}, whose state lives in this member's own backend: the backend lost synced writes. Refusing to start; ${RESTORE_ADVICE}`,
    );
  }
  await installStateMachineImage(backend, source.chunks());
}

/** Whether a snapshot's data is a reference to its member's backend rather than an image (a tiny file). */
async function isBackendReference(source: SnapshotSource): Promise<boolean> {
  if (source.totalBytes !== BACKEND_REFERENCE_BYTES) return false;
  const chunks: Uint8Array[] = [];
  for await (const c of source.chunks()) chunks.push(c);
  return backendReferenceIndex(Buffer.concat(chunks)) !== undefined;
}
