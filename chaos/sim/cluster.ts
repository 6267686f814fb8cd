// The deterministic cluster simulator: N members of the real Raft core in one process, driven by one agenda of
// timed events (member ticks, message deliveries, disk syncs, faults), with every random choice drawn from
// generators forked off one seed. Safety is checked on every event by SafetyChecker; at the end every fault
// is healed and the cluster must elect a leader and commit a new write within a bounded number of ticks.
//
// Timeline of one seed (ticks = --ticks):
//   [0, faultEnd)        workload + faults: crashes, partitions, lossy links, slow disks, snapshots,
//                        membership changes, leader transfers
//   [faultEnd, ticks)    calm: everything healed and restarted, workload continues, liveness is judged
import { decodeConfChange, describeConfChange } from '../../raft/confchange.js';
import type { RaftConfigInput } from '../../raft/config.js';
import { SeededRandom } from '../../raft/rng.js';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  Role,
  type ConfChange,
  type Entry,
  type Message,
  type NodeId,
  type Ready,
  type SoftState,
  type Snapshot,
} from '../../raft/types.js';
import { SafetyChecker } from './checker.js';
import { dataFingerprint, TraceDigest } from './digest.js';
import { CALM_LINKS, SimNetwork, type PartitionShape } from './network.js';
import { realCore, SimNode, type CoreFactory } from './node.js';
import { drawProfile, TICK_MS, type Profile } from './profile.js';
import { EventQueue } from './queue.js';
import { encodeWrite, RegisterMachine } from './statemachine.js';
import { SafetyViolation, violation } from './violation.js';

/** Ticks at the end of a run with no faults, in which liveness is judged. */
export const CALM_TICKS = 500;
/** After the heal, a leader that every live voter follows must appear within this many ticks... */
export const LEADER_BOUND_TICKS = 150;
/**
 * ...and a write proposed to it must be applied within this many ticks of the heal. Generous: a follower
 * may first have to catch up on a backlog one entry per message (see Profile.maxUncommittedEntriesBytes).
 */
export const COMMIT_BOUND_TICKS = 400;
/** Readies a member may produce in one step before yielding to other events (the core should settle fast). */
const READY_ROUNDS_MAX = 8;
/** Lines of recent history kept to explain a failure. */
const TRACE_LINES_KEPT = 40;
/** A membership change not applied anywhere within this many ticks is given up (it was dropped or lost). */
const CONF_CHANGE_TIMEOUT_TICKS = 200;
const RESTART_AFTER_TICKS_MAX = 150;
const PARTITION_TICKS_MAX = 300;
const SLOW_DISK_TICKS_MAX = 200;
const SLOW_DISK_LATENCY_MS_MAX = 40;
/** Entries a member keeps behind its snapshot when it compacts (0..this). */
const COMPACT_KEEP_MAX = 40;
/** Index and term of the founding snapshot every first member starts from. */
const BOOT_INDEX = 1;
const BOOT_TERM = 1;
const BOOT_CHAIN = 0x5eed;

export interface SimOptions {
  readonly seed: number;
  readonly ticks: number;
  /** Founding voters (3 or 5); one more member starts outside the cluster and may be added later. */
  readonly nodes: number;
  readonly makeCore?: CoreFactory;
  /** Receives the run's notable events as they happen. */
  readonly verbose?: (line: string) => void;
}

export interface SimStats {
  events: number;
  delivered: number;
  readies: number;
  crashes: number;
  partitions: number;
  confChanges: number;
  transfers: number;
  snapshots: number;
  writes: number;
  reads: number;
  leaders: number;
  applied: number;
  readsChecked: number;
}

export interface SimResult {
  readonly seed: number;
  readonly nodes: number;
  readonly ticks: number;
  readonly ok: boolean;
  readonly violation: SafetyViolation | undefined;
  /** The recent notable events before the violation. */
  readonly context: readonly string[];
  readonly digest: string;
  readonly stats: SimStats;
}

const enum EventKind {
  MemberTick,
  Deliver,
  SyncDone,
  SnapStatus,
  Control,
  Restart,
  HealPartition,
  DiskRecovers,
}

type SimEvent =
  | { kind: EventKind.MemberTick; node: NodeId }
  | { kind: EventKind.Deliver; msg: Message }
  | { kind: EventKind.SyncDone; node: NodeId; life: number }
  | { kind: EventKind.SnapStatus; node: NodeId; life: number; to: NodeId; ok: boolean }
  | { kind: EventKind.Control }
  | { kind: EventKind.Restart; node: NodeId }
  | { kind: EventKind.HealPartition; generation: number }
  | { kind: EventKind.DiskRecovers; node: NodeId; generation: number };

const PARTITION_SHAPES: readonly PartitionShape[] = ['symmetric', 'one-way', 'bridge', 'isolate'];

export function runSeed(options: SimOptions): SimResult {
  return new Simulation(options).run();
}

export class Simulation {
  private readonly rng: SeededRandom;
  private readonly faultRng: SeededRandom;
  private readonly clientRng: SeededRandom;
  private readonly nodeRng: SeededRandom;
  private readonly profile: Profile;
  private readonly network: SimNetwork;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly checker: SafetyChecker;
  private readonly digest = new TraceDigest();
  private readonly members: SimNode[] = [];
  private readonly ids: NodeId[] = [];
  private readonly makeCore: CoreFactory;
  private readonly trace: string[] = [];
  private readonly stats: SimStats = {
    events: 0,
    delivered: 0,
    readies: 0,
    crashes: 0,
    partitions: 0,
    confChanges: 0,
    transfers: 0,
    snapshots: 0,
    writes: 0,
    reads: 0,
    leaders: 0,
    applied: 0,
    readsChecked: 0,
  };
  private nowMs = 0;
  private tickNo = 0;
  private readonly faultEndTick: number;
  private nextWriteId = 1;
  private nextReadId = 1;
  private partitionGeneration = 0;
  private diskGeneration = 0;
  private confChangeSinceTick: number | undefined = undefined;
  /** Liveness after the heal: the write that must commit, and whether it has. */
  private markerId = 0;
  private markerApplied = false;
  private leaderSeenAfterHeal = false;
  /** Members stopped for good at the heal because the newest configuration no longer names them. */
  private readonly decommissioned = new Set<NodeId>();

  constructor(private readonly options: SimOptions) {
    this.rng = new SeededRandom(options.seed);
    // Separate streams, so that (say) one more message draw does not reshuffle the fault schedule.
    this.profile = drawProfile(this.rng.fork());
    this.faultRng = this.rng.fork();
    this.clientRng = this.rng.fork();
    this.nodeRng = this.rng.fork();
    this.network = new SimNetwork(this.rng.fork());
    this.network.faults = this.profile.links;
    this.makeCore = options.makeCore ?? realCore;
    this.faultEndTick = Math.max(0, options.ticks - CALM_TICKS);
    this.checker = new SafetyChecker(BOOT_INDEX, BOOT_TERM, BOOT_CHAIN);
    this.createMembers();
  }

  // ---- setup -----------------------------------------------------------------------------------------------

  private createMembers(): void {
    const founders: NodeId[] = [];
    for (let id = 1; id <= this.options.nodes; id++) founders.push(id);
    const bootImage = new RegisterMachine(BOOT_INDEX, BOOT_CHAIN).image();
    const boot: Snapshot = { metadata: { index: BOOT_INDEX, term: BOOT_TERM, confState: { voters: founders, learners: [] } }, data: bootImage };
    // Member ids 1..nodes found the cluster; one spare (nodes+1) starts with an empty disk outside it.
    for (let id = 1; id <= this.options.nodes + 1; id++) {
      const interval = TICK_MS - 1 + this.nodeRng.int(3);
      const m = new SimNode(id, interval);
      if (id <= this.options.nodes) m.disk.format(boot, { term: BOOT_TERM, vote: 0, commit: BOOT_INDEX });
      this.members[id] = m;
      this.ids.push(id);
      this.startMember(m);
      this.queue.push(this.nodeRng.int(TICK_MS), { kind: EventKind.MemberTick, node: id });
    }
    this.queue.push(TICK_MS, { kind: EventKind.Control });
  }

  private coreConfig(): RaftConfigInput {
    const c = this.profile.core;
    return {
      id: 0, // set per member by SimNode.restart
      random: this.nodeRng.fork(),
      electionTicks: c.electionTicks,
      heartbeatTicks: c.heartbeatTicks,
      preVote: c.preVote,
      checkQuorum: c.checkQuorum,
      maxSizePerMsgBytes: c.maxSizePerMsgBytes,
      maxInflightMsgs: c.maxInflightMsgs,
      maxUncommittedEntriesBytes: c.maxUncommittedEntriesBytes,
    };
  }

  private startMember(m: SimNode): void {
    m.restart(this.makeCore, this.coreConfig());
    this.checker.onStart(m.id, m.commit);
  }

  // ---- the loop --------------------------------------------------------------------------------------------

  run(): SimResult {
    const endMs = this.options.ticks * TICK_MS;
    let failure: SafetyViolation | undefined;
    try {
      while (this.queue.peekTime() <= endMs) {
        const ev = this.queue.pop()!;
        this.nowMs = ev.atMs;
        this.stats.events++;
        this.dispatch(ev.item);
      }
      this.judgeLivenessAtEnd();
    } catch (e) {
      failure = e instanceof SafetyViolation ? e : new SafetyViolation('core-panic', describeError(e));
    }
    this.stats.leaders = this.checker.stats.leaders;
    this.stats.applied = this.checker.stats.applied;
    this.stats.readsChecked = this.checker.stats.readsChecked;
    return {
      seed: this.options.seed,
      nodes: this.options.nodes,
      ticks: this.options.ticks,
      ok: failure === undefined,
      violation: failure,
      context: this.trace.slice(),
      digest: this.digest.hex(),
      stats: this.stats,
    };
  }

  private dispatch(ev: SimEvent): void {
    switch (ev.kind) {
      case EventKind.MemberTick:
        return this.onMemberTick(ev.node);
      case EventKind.Deliver:
        return this.deliver(ev.msg);
      case EventKind.SyncDone:
        return this.onSyncDone(ev.node, ev.life);
      case EventKind.SnapStatus:
        return this.onSnapStatus(ev.node, ev.life, ev.to, ev.ok);
      case EventKind.Control:
        return this.onControl();
      case EventKind.Restart:
        return this.restart(ev.node);
      case EventKind.HealPartition:
        if (ev.generation === this.partitionGeneration) this.healPartition();
        return;
      case EventKind.DiskRecovers:
        return this.onDiskRecovers(ev.node, ev.generation);
    }
  }

  private onMemberTick(id: NodeId): void {
    const m = this.members[id]!;
    this.queue.push(this.nowMs + m.tickIntervalMs, { kind: EventKind.MemberTick, node: id });
    if (m.core === undefined) return;
    m.core.tick();
    this.pump(m);
  }

  private deliver(msg: Message): void {
    const m = this.members[msg.to];
    if (m === undefined || m.core === undefined || !this.network.canReach(msg.from, msg.to)) return;
    this.digest.addMessage(msg);
    this.stats.delivered++;
    if (msg.type === MessageType.VoteResp && !msg.reject) this.checker.onVoteDelivered(msg.to, msg.from, msg.term);
    m.core.step(msg);
    this.pump(m);
  }

  private onSyncDone(id: NodeId, life: number): void {
    const m = this.members[id]!;
    if (m.life !== life || m.inFlight === undefined) return;
    const rd = m.inFlight;
    m.inFlight = undefined;
    this.handleReady(m, rd);
    this.pump(m);
  }

  private onSnapStatus(id: NodeId, life: number, to: NodeId, ok: boolean): void {
    const m = this.members[id]!;
    if (m.life !== life || m.core === undefined) return;
    m.core.reportSnapshot(to, ok);
    this.pump(m);
  }

  // ---- the Ready loop of one member ------------------------------------------------------------------------

  /** Take Readies until the member has nothing to do or its disk is busy. */
  private pump(m: SimNode): void {
    const core = m.core;
    if (core === undefined || m.inFlight !== undefined) return;
    for (let round = 0; round < READY_ROUNDS_MAX && core.hasReady(); round++) {
      const rd = core.ready();
      this.stats.readies++;
      this.digest.addReady(m.id, rd);
      if (m.disk.syncLatencyMs > 0 && (rd.mustSync || rd.snapshot !== undefined)) {
        m.inFlight = rd;
        this.queue.push(this.nowMs + m.disk.syncLatencyMs, { kind: EventKind.SyncDone, node: m.id, life: m.life });
        return;
      }
      this.handleReady(m, rd);
    }
  }

  /** Persist, send, apply, advance: the order node/raft-loop uses, with the checks in between. */
  private handleReady(m: SimNode, rd: Ready): void {
    this.persist(m, rd);
    if (rd.softState !== undefined) this.onSoftState(m, rd.softState);
    const unreachable = this.sendAll(m, rd.messages);
    for (const e of rd.committedEntries) this.apply(m, e);
    for (const rs of rd.readStates) this.checker.onReadState(m.id, decodeReadId(rs.context), rs.index);
    m.core!.advance(rd);
    for (const to of unreachable) m.core!.reportUnreachable(to);
  }

  private persist(m: SimNode, rd: Ready): void {
    const { landed, prevTerm } = m.disk.write(rd);
    if (landed.length > 0) {
      const fingerprints = landed.map((e) => dataFingerprint(e.data));
      this.checker.onPersistEntries(m.id, landed, prevTerm, fingerprints);
    }
    if (rd.snapshot !== undefined) this.restoreSnapshot(m, rd.snapshot);
    const hs = rd.hardState;
    if (hs !== undefined) {
      // Only a member that was leader of this term before this Ready and still is: then every commit advance
      // in between was its own (a slow disk can fold "learned commit as follower, then won" into one Ready).
      const stillLeader = m.role === Role.Leader && rd.softState === undefined && hs.term === m.term;
      if (stillLeader && hs.commit > m.commit) this.checker.onLeaderCommit(m.id, hs.term, hs.commit, m.disk.storage.term(hs.commit));
      m.term = hs.term;
      m.commit = hs.commit;
      this.checker.onHardState(m.id, hs.term, hs.commit);
    }
  }

  private restoreSnapshot(m: SimNode, snap: Snapshot): void {
    const img = RegisterMachine.decode(snap.data);
    if (img.index !== snap.metadata.index) violation('state-machine-safety', `member ${m.id} got snapshot ${snap.metadata.index} holding state at ${img.index}`);
    if (img.index < m.machine.index) violation('apply-order', `member ${m.id} restored snapshot ${img.index} behind its applied index ${m.machine.index}`);
    m.machine = new RegisterMachine(img.index, img.chain);
    m.confState = snap.metadata.confState;
    this.checker.onRestore(m.id, img.index, snap.metadata.term, img.chain);
    this.note(`${m.id} restored snapshot at ${img.index} (voters ${snap.metadata.confState.voters.join(',')})`);
  }

  private onSoftState(m: SimNode, soft: SoftState): void {
    const wasLeader = m.role === Role.Leader;
    m.role = soft.role;
    m.lead = soft.lead;
    if (soft.role === Role.Leader && !wasLeader) {
      this.note(`${m.id} became leader of term ${m.term}`);
      this.checker.onBecomeLeader(m.id, m.term, m.confState.voters, m.disk.storage);
    }
    if ((soft.role === Role.Candidate || soft.role === Role.PreCandidate) && m.isLearner()) {
      violation('learner-no-vote', `member ${m.id} became ${soft.role} in term ${m.term} while a learner in its applied configuration`);
    }
  }

  /** Check and route outgoing messages; returns the peers the transport could not reach. */
  private sendAll(m: SimNode, msgs: readonly Message[]): NodeId[] {
    const unreachable: NodeId[] = [];
    for (const msg of msgs) {
      this.inspectOutgoing(m, msg);
      if (msg.type === MessageType.Snap) this.refreshSnapshot(m, msg);
      const times = this.network.route(msg.from, msg.to, this.nowMs);
      for (let i = 0; i < times.length; i++) {
        // A duplicate is its own object: the core may reuse a message it received (forwarding a proposal).
        this.queue.push(times[i]!, { kind: EventKind.Deliver, msg: i === 0 ? msg : { ...msg } });
      }
      const target = this.members[msg.to];
      const reached = times.length > 0 && target !== undefined && target.alive;
      if (msg.type === MessageType.Snap) {
        const at = reached ? times[0]! : this.nowMs + TICK_MS;
        this.queue.push(at, { kind: EventKind.SnapStatus, node: m.id, life: m.life, to: msg.to, ok: reached });
      } else if (!reached && msg.type === MessageType.App && !unreachable.includes(msg.to)) {
        unreachable.push(msg.to);
      }
    }
    return unreachable;
  }

  /**
   * Send the state machine as it is now rather than the stored snapshot, as etcd's server does (its "merged
   * snapshot" carries the current applied index and membership). A stored snapshot may predate the change that
   * added the follower, and a follower refuses a snapshot whose configuration does not name it.
   */
  private refreshSnapshot(m: SimNode, msg: Message): void {
    const stored = msg.snapshot!;
    const at = m.machine.index;
    if (at <= stored.metadata.index) return;
    const metadata = { index: at, term: m.disk.storage.term(at), confState: m.confState };
    msg.snapshot = { metadata, data: m.machine.image() };
  }

  private inspectOutgoing(m: SimNode, msg: Message): void {
    switch (msg.type) {
      case MessageType.App:
      case MessageType.Heartbeat:
      case MessageType.Snap:
        this.checker.onLeaderAct(msg.from, msg.term, `sent ${MessageType[msg.type]} to ${msg.to}`);
        return;
      case MessageType.VoteResp:
        if (!msg.reject) this.checker.onVoteGranted(msg.from, msg.term, msg.to);
        return;
      case MessageType.Vote:
      case MessageType.PreVote:
        this.checker.onCampaign(m.id, msg.term, m.isLearner(), MessageType[msg.type]);
        return;
      default:
        return;
    }
  }

  private apply(m: SimNode, e: Entry): void {
    const before = m.machine.index;
    m.machine.apply(e.index, e.data);
    this.checker.onApply(m.id, before, e.index, e.term, m.machine.chain, m.commit);
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      m.confState = m.core!.applyConfChange(cc);
      if (this.confChangeSinceTick !== undefined) this.confChangeSinceTick = undefined;
      this.note(`${m.id} applied ${describeConfChange(cc)} at ${e.index}: voters ${m.confState.voters.join(',')} learners ${m.confState.learners.join(',')}`);
    } else if (this.markerId !== 0 && !this.markerApplied && e.data.byteLength === 8 && decodeWriteId(e.data) === this.markerId) {
      this.markerApplied = true;
      this.note(`${m.id} applied the liveness write at ${e.index}`);
    }
  }

  // ---- the fault schedule and the client, once per tick ----------------------------------------------------

  private onControl(): void {
    this.tickNo++;
    this.queue.push(this.nowMs + TICK_MS, { kind: EventKind.Control });
    if (this.tickNo < this.faultEndTick) {
      this.injectFaults();
      this.changeMembership();
    } else if (this.tickNo === this.faultEndTick) {
      this.calmDown();
    } else {
      this.judgeLiveness();
    }
    // Snapshots are routine, not a fault: they go on after the heal (a member re-added after the leader's
    // last snapshot can only catch up from a newer one, since it refuses a snapshot that does not name it).
    if (this.faultRng.chance(this.profile.snapshotRate)) this.snapshotSomeone();
    // Once calm, the client only reads: the liveness write must not queue behind an endless stream.
    this.runClient(this.tickNo < this.faultEndTick);
  }

  private injectFaults(): void {
    const p = this.profile;
    const rng = this.faultRng;
    if (rng.chance(p.crashRate)) this.crashSomeone();
    if (!this.network.partitioned && rng.chance(p.partitionRate)) this.partition();
    if (rng.chance(p.slowDiskRate)) this.slowDisk();
    if (rng.chance(p.transferRate)) this.transferLeadership();
  }

  private crashSomeone(): void {
    const down = this.ids.filter((id) => !this.members[id]!.alive).length;
    // Keep a majority of the founders' count up most of the time, so that the run makes progress to attack.
    if (down >= Math.floor(this.options.nodes / 2)) return;
    const live = this.ids.filter((id) => this.members[id]!.alive);
    const victim = this.members[live[this.faultRng.int(live.length)]!]!;
    victim.crash();
    this.stats.crashes++;
    this.note(`${victim.id} crashed (durable term ${victim.disk.durableHardState().term}, commit ${victim.disk.durableHardState().commit})`);
    const after = 1 + this.faultRng.int(RESTART_AFTER_TICKS_MAX);
    this.queue.push(this.nowMs + after * TICK_MS, { kind: EventKind.Restart, node: victim.id });
  }

  private restart(id: NodeId): void {
    const m = this.members[id]!;
    if (m.alive || this.decommissioned.has(id)) return;
    this.startMember(m);
    this.note(`${id} restarted: term ${m.term}, commit ${m.commit}, applied ${m.machine.index}, last index ${m.disk.storage.lastIndex()}`);
    this.pump(m);
  }

  private partition(): void {
    const shape = PARTITION_SHAPES[this.faultRng.int(PARTITION_SHAPES.length)]!;
    const leader = this.leader();
    const focus = leader?.id ?? this.ids[this.faultRng.int(this.ids.length)]!;
    this.network.partition(shape, this.ids, focus);
    this.partitionGeneration++;
    this.stats.partitions++;
    this.note(`partition: ${this.network.describe}`);
    const after = 1 + this.faultRng.int(PARTITION_TICKS_MAX);
    this.queue.push(this.nowMs + after * TICK_MS, { kind: EventKind.HealPartition, generation: this.partitionGeneration });
  }

  private healPartition(): void {
    this.network.heal();
    this.note('partition healed');
  }

  private slowDisk(): void {
    const m = this.members[this.ids[this.faultRng.int(this.ids.length)]!]!;
    m.disk.syncLatencyMs = 1 + this.faultRng.int(SLOW_DISK_LATENCY_MS_MAX);
    this.diskGeneration++;
    const after = 1 + this.faultRng.int(SLOW_DISK_TICKS_MAX);
    this.queue.push(this.nowMs + after * TICK_MS, { kind: EventKind.DiskRecovers, node: m.id, generation: this.diskGeneration });
    this.note(`${m.id} disk slow: ${m.disk.syncLatencyMs}ms per sync`);
  }

  private onDiskRecovers(id: NodeId, generation: number): void {
    if (generation !== this.diskGeneration) return;
    this.members[id]!.disk.syncLatencyMs = 0;
  }

  /** The node layer's snapshot: the state machine's image at the applied index, then drop most of the log. */
  private snapshotSomeone(): void {
    const m = this.members[this.ids[this.faultRng.int(this.ids.length)]!]!;
    const s = m.disk.storage;
    const at = m.machine.index;
    if (!m.alive || at <= s.snapshot().metadata.index || at > s.lastIndex()) return;
    m.disk.sync();
    s.createSnapshot(at, m.confState, m.machine.image());
    const keep = this.faultRng.int(COMPACT_KEEP_MAX + 1);
    const compactTo = at - keep;
    if (compactTo > s.firstIndex() - 1) s.compact(compactTo);
    this.stats.snapshots++;
  }

  private transferLeadership(): void {
    const leader = this.leader();
    if (leader === undefined) return;
    const others = leader.confState.voters.filter((v) => v !== leader.id);
    if (others.length === 0) return;
    const to = others[this.faultRng.int(others.length)]!;
    leader.tryCore((c) => c.transferLeadership(to));
    this.stats.transfers++;
    this.note(`transfer leadership ${leader.id} -> ${to}`);
    this.pump(leader);
  }

  /** One change at a time: remove a voter and add it back, add a learner and promote it. */
  private changeMembership(): void {
    if (this.confChangeSinceTick !== undefined) {
      if (this.tickNo - this.confChangeSinceTick < CONF_CHANGE_TIMEOUT_TICKS) return;
      this.confChangeSinceTick = undefined;
    }
    if (!this.faultRng.chance(this.profile.memberChangeRate)) return;
    const leader = this.leader();
    if (leader === undefined) return;
    const cc = this.chooseConfChange(leader.confState.voters, leader.confState.learners);
    if (cc === undefined) return;
    if (leader.tryCore((c) => c.proposeConfChange(cc))) {
      this.confChangeSinceTick = this.tickNo;
      this.stats.confChanges++;
      this.note(`${leader.id} proposed ${describeConfChange(cc)}`);
      this.pump(leader);
    }
  }

  private chooseConfChange(voters: readonly NodeId[], learners: readonly NodeId[]): ConfChange | undefined {
    const rng = this.faultRng;
    const minVoters = this.options.nodes - 1;
    const outside = this.ids.filter((id) => !voters.includes(id) && !learners.includes(id));
    const change = (type: ConfChangeType, nodeId: NodeId): ConfChange => ({ type, nodeId, context: new Uint8Array(0) });
    if (learners.length > 0 && rng.chance(0.7)) return change(ConfChangeType.AddVoter, learners[rng.int(learners.length)]!);
    if (outside.length > 0 && (voters.length <= minVoters || rng.chance(0.5))) {
      const id = outside[rng.int(outside.length)]!;
      return change(rng.chance(0.5) ? ConfChangeType.AddLearner : ConfChangeType.AddVoter, id);
    }
    if (voters.length > minVoters) return change(ConfChangeType.RemoveNode, voters[rng.int(voters.length)]!);
    if (learners.length > 0) return change(ConfChangeType.RemoveNode, learners[rng.int(learners.length)]!);
    return undefined;
  }

  private runClient(writes: boolean): void {
    const rng = this.clientRng;
    const live = this.ids.filter((id) => this.members[id]!.alive);
    if (live.length === 0) return;
    for (let n = occurrences(rng, writes ? this.profile.writeRate : 0); n > 0; n--) {
      const m = this.members[live[rng.int(live.length)]!]!;
      m.tryPropose(encodeWrite(this.nextWriteId++));
      this.stats.writes++;
      this.pump(m);
    }
    for (let n = occurrences(rng, this.profile.readRate); n > 0; n--) {
      const m = this.members[live[rng.int(live.length)]!]!;
      const readId = this.nextReadId++;
      this.checker.onReadStart(readId, this.nowMs);
      m.tryCore((c) => c.readIndex(encodeReadId(readId)));
      this.stats.reads++;
      this.pump(m);
    }
  }

  // ---- liveness --------------------------------------------------------------------------------------------

  /** Stop every fault: heal the network, make links and disks well-behaved, restart whoever is down. */
  private calmDown(): void {
    this.network.heal();
    this.partitionGeneration++;
    this.network.faults = CALM_LINKS;
    this.diskGeneration++;
    for (const id of this.ids) {
      const m = this.members[id]!;
      m.disk.syncLatencyMs = 0;
      if (!m.alive) this.restart(id);
    }
    this.decommissionRemovedMembers();
    this.note('faults stopped: healed, restarted, calm links and disks');
  }

  /**
   * Stop the members that the newest applied configuration (the one of the member that applied furthest) no
   * longer names, as etcd's server stops a member once it learns it was removed. A removed member that never
   * applied its own removal still believes it is a voter; without pre-vote or check-quorum its campaigns
   * depose every leader (Raft dissertation, 4.2.3), which is a property of the protocol, not a core bug.
   */
  private decommissionRemovedMembers(): void {
    let newest = this.members[this.ids[0]!]!;
    for (const id of this.ids) if (this.members[id]!.machine.index > newest.machine.index) newest = this.members[id]!;
    const { voters, learners } = newest.confState;
    for (const id of this.ids) {
      if (voters.includes(id) || learners.includes(id)) continue;
      this.members[id]!.crash();
      this.decommissioned.add(id);
      this.note(`${id} stopped: not in the newest configuration (voters ${voters.join(',')} learners ${learners.join(',')})`);
    }
  }

  /** A leader that every live voter of its configuration follows. */
  private stableLeader(): SimNode | undefined {
    const leader = this.leader();
    if (leader === undefined) return undefined;
    for (const v of leader.confState.voters) {
      const m = this.members[v];
      if (m !== undefined && m.alive && m.lead !== leader.id) return undefined;
    }
    return leader;
  }

  private judgeLiveness(): void {
    const since = this.tickNo - this.faultEndTick;
    if (!this.markerApplied) {
      const leader = this.stableLeader();
      if (leader !== undefined) {
        this.leaderSeenAfterHeal = true;
        // Propose the liveness write (again every few ticks: a proposal can be lost with a leader change).
        if (this.markerId === 0 || since % 20 === 0) {
          if (this.markerId === 0) this.markerId = this.nextWriteId++;
          leader.tryPropose(encodeWrite(this.markerId));
          this.pump(leader);
        }
      }
    }
    if (since >= LEADER_BOUND_TICKS && !this.leaderSeenAfterHeal) {
      violation('liveness', `no leader followed by every live voter within ${LEADER_BOUND_TICKS} ticks after the heal (${this.describeRoles()})`);
    }
    if (since >= COMMIT_BOUND_TICKS && !this.markerApplied) {
      violation('liveness', `a write proposed after the heal was not applied within ${COMMIT_BOUND_TICKS} ticks (${this.describeRoles()})`);
    }
  }

  private judgeLivenessAtEnd(): void {
    // Runs shorter than the calm window cannot judge liveness fairly; everything else was judged per tick.
    if (this.options.ticks - this.faultEndTick < COMMIT_BOUND_TICKS) return;
    if (!this.markerApplied) violation('liveness', `the write proposed after the heal never applied (${this.describeRoles()})`);
  }

  private describeRoles(): string {
    return this.ids
      .map((id) => {
        const m = this.members[id]!;
        return `${id}:${m.alive ? m.role : 'down'} t${m.term} lead ${m.lead} commit ${m.commit} voters [${m.confState.voters.join(',')}]`;
      })
      .join('; ');
  }

  // ---- helpers ---------------------------------------------------------------------------------------------

  /** The live member that believes it leads the highest term. */
  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const id of this.ids) {
      const m = this.members[id]!;
      if (m.alive && m.role === Role.Leader && (best === undefined || m.term > best.term)) best = m;
    }
    return best;
  }

  private note(line: string): void {
    const stamped = `t=${this.tickNo} ${line}`;
    this.trace.push(stamped);
    if (this.trace.length > TRACE_LINES_KEPT) this.trace.shift();
    this.options.verbose?.(stamped);
  }
}

/** Occurrences of an event with `rate` expected per tick (the rate may exceed 1). */
function occurrences(rng: SeededRandom, rate: number): number {
  const whole = Math.floor(rate);
  return whole + (rng.chance(rate - whole) ? 1 : 0);
}

function encodeReadId(id: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setFloat64(0, id);
  return out;
}

function decodeReadId(context: Uint8Array): number {
  if (context.byteLength !== 8) return -1;
  return new DataView(context.buffer, context.byteOffset, 8).getFloat64(0);
}

function decodeWriteId(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, 8).getFloat64(0);
}

function describeError(e: unknown): string {
  if (e instanceof Error) {
    const frames = (e.stack ?? '').split('\n').slice(1, 4).map((l) => l.trim());
    return `${e.name}: ${e.message} ${frames.join(' | ')}`;
  }
  return String(e);
}
