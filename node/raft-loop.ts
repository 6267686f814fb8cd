// The Ready loop: the one place that orders persist, send, apply and advance for a member.
//
//   ready ─┬─ send leader-only messages (appends, heartbeats, snapshots) ── safe before our own fsync:
//          │   the leader counts its own copy only after advance() reports it persisted (an idle leader lets
//          │   them reach the socket before it starts the write)
//          ├─ persist hard state + entries (+ snapshot) in ONE synced batch     [before-persist/after-persist]
//          ├─ send everything else (votes, acknowledgements): never for state a crash could still lose
//          ├─ apply committed entries and conf changes, in log order           [before-apply/after-apply]
//          ├─ answer waiting proposals and reads
//          └─ advance
//
// Any error while persisting or applying is fatal: the member stops rather than go on with state it cannot
// trust. Named fault points let the chaos suite crash the process exactly between the steps.
import { performance } from 'node:perf_hooks';
import { trace, tracing } from './trace.js';
import { decodeConfChange } from '../raft/confchange.js';
import { assert, ProposalDroppedError } from '../raft/errors.js';
import type { RawNode } from '../raft/rawnode.js';
import type { Storage } from '../raft/storage.js';
import {
  EntryType,
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
  type Ready,
  type Snapshot,
  type SoftState,
} from '../raft/types.js';

/** The write-ahead log as the loop needs it (storage/wal implements it; tests use an in-memory one). */
export interface LogStore {
  readonly storage: Storage;
  /** Persist one Ready in one batch (synced when `sync`), then make it visible through `storage`. */
  save(hardState: HardState | undefined, entries: readonly Entry[], snapshot: Snapshot | undefined, options: { sync: boolean }): Promise<void>;
}

export interface PeerSender {
  /** Hand messages to the transport. Never blocks; an unreachable peer's messages are dropped (Raft retries). */
  send(messages: readonly Message[]): void;
}

/** A committed command for the state machine, with the proposal id the loop wrapped around it. */
export interface Command {
  readonly index: number;
  readonly term: number;
  readonly payload: Uint8Array;
}

export interface Applier {
  /** Apply committed commands in log order; one result per command (returned to the proposer, if local). */
  apply(commands: readonly Command[]): Promise<readonly unknown[]>;
  /** Replace the state machine with a snapshot received from the leader (already persisted by the LogStore). */
  restore(snapshot: Snapshot): Promise<void>;
}

export interface Ticker {
  every(intervalMs: number, fn: () => void): () => void;
}

export type FaultPoint = 'before-persist' | 'after-persist' | 'before-apply' | 'after-apply' | 'before-restore' | 'after-restore';

export interface RaftLoopOptions {
  readonly memberId: number;
  readonly tickMs: number;
  /** Proposals waiting for their entry to be applied on this member. */
  readonly maxPendingProposals: number;
  /** Reads waiting for a ReadIndex answer and for the apply loop to catch up. */
  readonly maxPendingReads: number;
  /** Ticks a read request may stay unanswered before it is asked again (a leader change drops it). */
  readonly readRetryTicks: number;
  /**
   * Ticks a proposal may wait for its entry before its waiter is failed with "request timed out". A proposal
   * forwarded to a leader that lost it (leader change, dropped message) is never applied; without this its waiter
   * would hold a slot of maxPendingProposals forever. The entry may still be applied later: the outcome is unknown.
   */
  readonly proposalTimeoutTicks: number;
  /** A random number chosen at start, so proposal ids of an earlier life never match this one's waiters. */
  readonly bootNonce: number;
  readonly ticker: Ticker;
  readonly faults?: (point: FaultPoint) => void;
  readonly onSoftState?: (s: SoftState) => void;
  /** Awaited before the next entry is applied: the member records membership in its own store here. */
  readonly onConfChange?: (cc: ConfChange, cs: ConfState, index: number) => void | Promise<void>;
  readonly onApplied?: (index: number) => void;
  readonly onFatal?: (err: unknown) => void;
  /** How long persisting one Ready took, and whether it was synced (the WAL fsync histogram). */
  readonly onPersist?: (ms: number, synced: boolean) => void;
  /**
   * Two ticks came more than HEARTBEAT_HOLDUP_WARN_INTERVALS tick intervals apart: the event loop was blocked that long, and with
   * it heartbeats (a leader) or the reading of them (a follower). Called with the gap in ms.
   */
  readonly onTickLate?: (gapMs: number) => void;
  /** How long a leader holds a commit notice (an append without entries) back; 0 sends it at once (CommitNotices). */
  readonly commitNoticeHoldMs: number;
}

/**
 * A hold-up of heartbeats worth a warning, in heartbeat intervals (5 x 100 ms is half an election timeout): ticks
 * further apart (onTickLate), and a synced WAL write that takes longer (the Ready loop waits for it; server.ts).
 */
export const HEARTBEAT_HOLDUP_WARN_INTERVALS = 5;

export const RAFT_LOOP_DEFAULTS = {
  tickMs: 100,
  maxPendingProposals: 10_000,
  maxPendingReads: 10_000,
  readRetryTicks: 10,
  proposalTimeoutTicks: 100,
  commitNoticeHoldMs: 2,
} as const;

/** A typed failure a caller can act on: the proposal or read did not happen here and may be retried. */
export class LoopError extends Error {
  constructor(
    readonly code: 'TOO_MANY_REQUESTS' | 'STOPPED' | 'PROPOSAL_DROPPED' | 'TIMEOUT' | 'TIMEOUT_DUE_TO_LEADER_FAIL',
    message: string,
  ) {
    super(message);
    this.name = 'LoopError';
  }
}

interface Waiter {
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

interface ProposalWaiter extends Waiter {
  /** The loop's tick count when it was proposed. */
  readonly bornTick: number;
  /** The leader the core knew when it took the proposal: where its entry went (this member, or a forward). */
  readonly lead: NodeId;
}

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder();

const ENVELOPE_VERSION = 1;
/** [u8 version][u32 boot nonce][f64 member id][f64 sequence] */
const ENVELOPE_HEADER_BYTES = 21;

export function wrapProposal(memberId: number, bootNonce: number, seq: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(ENVELOPE_HEADER_BYTES + payload.byteLength);
  const v = new DataView(out.buffer);
  v.setUint8(0, ENVELOPE_VERSION);
  v.setUint32(1, bootNonce >>> 0);
  v.setFloat64(5, memberId);
  v.setFloat64(13, seq);
  out.set(payload, ENVELOPE_HEADER_BYTES);
  return out;
}

export interface Envelope {
  readonly memberId: number;
  readonly bootNonce: number;
  readonly seq: number;
  readonly payload: Uint8Array;
}

export function unwrapProposal(data: Uint8Array): Envelope {
  assert(data.byteLength >= ENVELOPE_HEADER_BYTES && data[0] === ENVELOPE_VERSION, () => `malformed proposal envelope (${data.byteLength} bytes)`);
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { bootNonce: v.getUint32(1), memberId: v.getFloat64(5), seq: v.getFloat64(13), payload: data.subarray(ENVELOPE_HEADER_BYTES) };
}

/**
 * Resolves in the check phase of this turn of the event loop, after the native callbacks queued there: Node's
 * HTTP/2 writes what its streams were given only then (each session's pending frames go out from a native
 * SetImmediate). Awaiting it lets messages handed to the transport leave before a long stretch of synchronous work.
 */
function letWritesLeave(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Proposals stepped into the core as one at most: a batch this large is stepped at once, not at the next pump. */
export const PROPOSAL_BATCH_ENTRIES_MAX = 1_000;
/** Bytes of one batch of proposals at most (Raft's default maxSizePerMsg: one follower append carries it). */
export const PROPOSAL_BATCH_BYTES_MAX = 1024 * 1024;

export class RaftLoop {
  private pumping = false;
  /** A pump start is queued (setImmediate) but has not run yet. */
  private pumpScheduled = false;
  private again = false;
  private stopped = false;
  private fatal: unknown = undefined;
  private stopTicker: (() => void) | undefined;
  private seq = 0;
  /**
   * This life's proposals by sequence number, in proposal order (Map keeps insertion order), so the oldest are
   * first when expiring. An applied entry is ours when its envelope names this member and this boot's nonce.
   */
  private readonly proposals = new Map<number, ProposalWaiter>();
  /** Proposals not yet stepped into the core (stepProposals), their sequence numbers and bytes. */
  private batch: Uint8Array[] = [];
  private batchSeqs: number[] = [];
  private batchBytes = 0;
  private ticks = 0;
  /** When the last tick ran (performance.now()), to notice ticks that came late. */
  private lastTickAt: number | undefined;
  /** Reads not yet covered by a ReadIndex request. */
  private readsWaitingForIndex: Waiter[] = [];
  /** The ReadIndex request in flight: its context and the reads it covers. */
  private readInFlight: { ctx: string; waiters: Waiter[]; ticks: number } | undefined;
  /** Reads with a known index, waiting for apply to reach it (ascending by index). */
  private readsWaitingForApply: Array<{ index: number; waiter: Waiter }> = [];
  private readCtxSeq = 0;
  private appliedIndex: number;
  private reportedApplied: number;
  private idle: Array<() => void> = [];
  /** Proposals applied in the Ready being handled, with their results: answered at the end of the Ready. */
  private answers: Array<[ProposalWaiter, unknown]> = [];
  private readonly notices: CommitNotices;
  /** The leader as of the last soft state (NONE: none known). */
  private knownLead = NONE;

  constructor(
    readonly node: RawNode,
    private readonly log: LogStore,
    private readonly peers: PeerSender,
    private readonly applier: Applier,
    private readonly options: RaftLoopOptions,
  ) {
    this.appliedIndex = node.status().applied;
    this.reportedApplied = this.appliedIndex;
    this.notices = new CommitNotices(options.commitNoticeHoldMs, (msgs) => this.peers.send(msgs));
  }

  start(): void {
    this.stopTicker = this.options.ticker.every(this.options.tickMs, () => this.tick());
    this.kick();
  }

  /** Stop ticking, fail everything waiting, and resolve once the pump is idle. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopTicker?.();
    this.notices.stop();
    await this.whenIdle();
    this.failAll(new LoopError('STOPPED', 'fulcrum: member is stopping'));
  }

  get applied(): number {
    return this.appliedIndex;
  }

  tick(): void {
    if (this.stopped) return;
    this.ticks++;
    const now = performance.now();
    if (this.lastTickAt !== undefined && now - this.lastTickAt > this.options.tickMs * HEARTBEAT_HOLDUP_WARN_INTERVALS) this.options.onTickLate?.(now - this.lastTickAt);
    this.lastTickAt = now;
    this.node.tick();
    this.retryStaleRead();
    this.expireProposals();
    this.kick();
  }

  step(m: Message): void {
    if (this.stopped) return;
    if (tracing() && m.type !== MessageType.Heartbeat && m.type !== MessageType.HeartbeatResp) trace(`step ${MessageType[m.type]} from=${m.from.toString(16)} entries=${m.entries.length}`);
    this.node.step(m);
    this.kick();
  }

  /**
   * Propose a command; resolves with the applier's result once it is applied on this member. `leaderOnly` refuses
   * (PROPOSAL_DROPPED) unless this member leads right now, so the entry lands in this member's own log in its own
   * term instead of being forwarded to whoever leads: the lease manager's renewals and expiries are decisions of
   * one leader's clock and must not be committed under another leader's.
   */
  propose(payload: Uint8Array, opts: { leaderOnly?: boolean } = {}): Promise<unknown> {
    this.checkUsable();
    if (opts.leaderOnly === true && this.node.role !== Role.Leader) {
      return Promise.reject(new LoopError('PROPOSAL_DROPPED', 'fulcrum: not the leader'));
    }
    if (this.proposals.size >= this.options.maxPendingProposals) {
      return Promise.reject(new LoopError('TOO_MANY_REQUESTS', 'etcdserver: too many requests'));
    }
    const seq = ++this.seq;
    const data = wrapProposal(this.options.memberId, this.options.bootNonce, seq, payload);
    if (opts.leaderOnly === true) {
      // Into the log now, while this member is known to lead (and after what was proposed before it).
      this.stepProposals();
      try {
        this.node.propose(data);
      } catch (e) {
        if (e instanceof ProposalDroppedError) return Promise.reject(new LoopError('PROPOSAL_DROPPED', e.message));
        throw e;
      }
    } else {
      this.batch.push(data);
      this.batchSeqs.push(seq);
      this.batchBytes += data.byteLength;
    }
    const p = new Promise<unknown>((resolve, reject) => this.proposals.set(seq, { resolve, reject, bornTick: this.ticks, lead: this.node.lead }));
    if (this.batch.length >= PROPOSAL_BATCH_ENTRIES_MAX || this.batchBytes >= PROPOSAL_BATCH_BYTES_MAX) this.stepProposals();
    this.kick();
    return p;
  }

  /**
   * Step the proposals taken since the last pump into the core as ONE proposal: the leader appends them and sends
   * each follower one append for all of them, instead of an append and a log slice per follower for each (which
   * the Ready then coalesced anyway). Proposals still reach the core before the Ready they would have been in: the
   * pump steps them first. A batch the core refuses (no leader, a transfer, the uncommitted size limit) fails as
   * one, each proposal with PROPOSAL_DROPPED, as each alone would have. Whoever steps a proposal into the core
   * by another way (a configuration change) calls this first, so the log keeps the order proposals were made in.
   */
  stepProposals(): void {
    if (this.batch.length === 0) return;
    const { data, seqs } = this.takeBatch();
    try {
      this.node.proposeAll(data);
    } catch (e) {
      const err = e instanceof ProposalDroppedError ? new LoopError('PROPOSAL_DROPPED', e.message) : e;
      for (const seq of seqs) {
        const w = this.proposals.get(seq);
        this.proposals.delete(seq);
        w?.reject(err);
      }
    }
  }

  /** The proposals not yet stepped into the core, leaving an empty batch. */
  private takeBatch(): { data: Uint8Array[]; seqs: number[] } {
    const taken = { data: this.batch, seqs: this.batchSeqs };
    this.batch = [];
    this.batchSeqs = [];
    this.batchBytes = 0;
    return taken;
  }

  /** Fail proposals older than proposalTimeoutTicks, oldest first; their entries may still be applied. */
  private expireProposals(): void {
    for (const [seq, w] of this.proposals) {
      if (this.ticks - w.bornTick < this.options.proposalTimeoutTicks) return;
      this.proposals.delete(seq);
      w.reject(new LoopError('TIMEOUT', 'etcdserver: request timed out'));
    }
  }

  /** Resolves with an index such that state applied up to it reflects every write acknowledged before the call. */
  readIndex(): Promise<number> {
    this.checkUsable();
    if (this.pendingReadCount() >= this.options.maxPendingReads) {
      return Promise.reject(new LoopError('TOO_MANY_REQUESTS', 'etcdserver: too many requests'));
    }
    const p = new Promise<number>((resolve, reject) => this.readsWaitingForIndex.push({ resolve: resolve as (v: unknown) => void, reject }));
    this.maybeRequestRead();
    this.kick();
    return p;
  }

  private pendingReadCount(): number {
    return this.readsWaitingForIndex.length + (this.readInFlight?.waiters.length ?? 0) + this.readsWaitingForApply.length;
  }

  private checkUsable(): void {
    if (this.fatal !== undefined) throw new LoopError('STOPPED', `fulcrum: member stopped after a fatal error: ${String(this.fatal)}`);
    if (this.stopped) throw new LoopError('STOPPED', 'fulcrum: member is stopping');
  }

  /** One ReadIndex request covers every read waiting when it is sent: concurrent reads share one round. */
  private maybeRequestRead(): void {
    if (this.readInFlight !== undefined || this.readsWaitingForIndex.length === 0) return;
    const ctx = `${this.options.bootNonce}:${++this.readCtxSeq}`;
    const waiters = this.readsWaitingForIndex;
    this.readsWaitingForIndex = [];
    this.readInFlight = { ctx, waiters, ticks: 0 };
    try {
      this.node.readIndex(TEXT_ENCODER.encode(ctx));
    } catch (e) {
      this.readInFlight = undefined;
      const err = e instanceof ProposalDroppedError ? new LoopError('PROPOSAL_DROPPED', 'etcdserver: no leader') : e;
      for (const w of waiters) w.reject(err);
    }
  }

  private retryStaleRead(): void {
    const r = this.readInFlight;
    if (r === undefined || ++r.ticks < this.options.readRetryTicks) return;
    // The request was lost (leader change, dropped message): ask again for the same waiters.
    this.readInFlight = undefined;
    this.readsWaitingForIndex = r.waiters.concat(this.readsWaitingForIndex);
    this.maybeRequestRead();
  }

  /**
   * Make sure a pump runs soon. The pump starts in the check phase (setImmediate), after the I/O callbacks of
   * this turn of the event loop: requests that arrived in the same socket reads all reach the core first and share
   * one Ready (one fsync, one append per follower), where starting at once gave the first of a burst a Ready of
   * its own and made the rest wait a whole persist for the next.
   */
  kick(): void {
    if (this.pumping) {
      this.again = true;
      return;
    }
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(this.startPump);
  }

  private readonly startPump = (): void => {
    this.pumpScheduled = false;
    // kick() schedules only while no pump runs, and only this starts one.
    assert(!this.pumping, 'a pump started while another was running');
    this.pumping = true;
    void this.pump();
  };

  private async pump(): Promise<void> {
    try {
      let fromIdle = true;
      do {
        this.again = false;
        while (!this.stopped && (this.stepProposals(), this.node.hasReady())) {
          await this.handleReady(this.node.ready(), fromIdle);
          fromIdle = false;
        }
      } while (this.again && !this.stopped);
    } catch (e) {
      this.fail(e);
    } finally {
      this.pumping = false;
      const idle = this.idle;
      this.idle = [];
      for (const f of idle) f();
    }
  }

  private whenIdle(): Promise<void> {
    if (!this.pumping) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  private async handleReady(rd: Ready, fromIdle: boolean): Promise<void> {
    const f = this.options.faults;
    let lostLead = NONE;
    if (rd.softState !== undefined) {
      if (rd.softState.lead !== this.knownLead) lostLead = this.knownLead;
      this.knownLead = rd.softState.lead;
      this.options.onSoftState?.(rd.softState);
    }
    trace(() => `ready entries=${rd.entries.length} committed=${rd.committedEntries.length} messages=${rd.messages.map((m) => MessageType[m.type]).join(',')}`);
    const [early, late] = splitMessages(coalesceAppends(rd.messages));
    this.notices.send(early);
    // A leader that was idle (one write in flight) lets its appends leave before it starts its own write of the
    // same entries: the socket writes happen only in the check phase, and building and submitting the WAL batch
    // first kept them back by that much. The commit waits for a follower's fsync, which starts later than ours, so
    // its start is what to hurry (docs/performance.md, twenty-ninth session). A busy pump goes straight on: the
    // extra turn of the event loop would take in whatever I/O is waiting before our own write starts.
    if (fromIdle && rd.entries.length > 0 && carriesEntries(early)) await letWritesLeave();
    f?.('before-persist');
    trace('persist start');
    const persisted = this.persist(rd);
    if (persisted.overlapsApply) {
      // Only the commit index moved: the entries being applied are already durable here and on a quorum, so
      // applying them runs alongside this write, and their proposers are answered without waiting for it (as etcd
      // does). A member that crashes before the write lands reads back an older commit index and learns the rest
      // from the leader; a single member commits it again at once (Member.start waits for that).
      const applying = this.applyEntries(rd.committedEntries);
      applying.catch(() => {}); // awaited below; a failure here must not surface as unhandled first
      await applying;
      trace('apply done');
      this.answerProposals();
      await persisted.done;
      trace('persisted');
      f?.('after-persist');
      if (late.length > 0) this.peers.send(late);
    } else {
      await persisted.done;
      trace('persisted');
      f?.('after-persist');
      if (late.length > 0) this.peers.send(late);
      // A follower's acknowledgement of the entries just persisted is what the leader waits for to commit; the
      // apply below would hold it back in this process (applying is mostly synchronous) for a few hundred
      // microseconds per write at one in flight, the leader's client waiting all along (docs/performance.md).
      if (late.length > 0 && (rd.committedEntries.length > 0 || rd.snapshot !== undefined)) await letWritesLeave();
      if (rd.snapshot !== undefined) await this.restoreSnapshot(rd.snapshot);
      if (rd.committedEntries.length > 0) await this.applyEntries(rd.committedEntries);
    }
    trace('applied');
    this.answerProposals();
    this.collectReadStates(rd.readStates);
    const appliedBefore = this.reportedApplied;
    this.node.advance(rd);
    // Announced only after advance: whoever wakes up sees a core that knows these entries are applied.
    if (this.appliedIndex !== appliedBefore) {
      this.reportedApplied = this.appliedIndex;
      this.options.onApplied?.(this.appliedIndex);
    }
    this.releaseReads();
    this.maybeRequestRead();
    if (lostLead !== NONE) this.failProposalsOfLostLeader(lostLead);
  }

  /**
   * The leader changed: the proposals still waiting that went to the leader that is gone (forwarded to it, or
   * proposed by this member while it led) fail, once this Ready has answered what it applied. Such a proposal may
   * yet commit, or may be lost with the old leader's log; no one can tell before it applies, and it would wait out
   * proposalTimeoutTicks (10 s by default) to say so. It fails now with etcd's error for this case (Unavailable,
   * "request timed out, possibly due to previous leader failure"): the outcome is unknown, as after any timeout,
   * and the client can retry on a member that knows the new leader. Its entry, if it commits, is still applied;
   * only the answer is given up. Proposals that went to the new leader (taken while this Ready was handled) wait on.
   */
  private failProposalsOfLostLeader(lost: NodeId): void {
    const err = new LoopError('TIMEOUT_DUE_TO_LEADER_FAIL', 'etcdserver: request timed out, possibly due to previous leader failure');
    for (const [seq, w] of this.proposals) {
      if (w.lead !== lost) continue;
      this.proposals.delete(seq);
      w.reject(err);
    }
  }

  /**
   * Start persisting a Ready's hard state, entries and snapshot. `overlapsApply` says the write holds nothing the
   * Ready's committed entries depend on (no entries, no snapshot, no sync needed), so apply may run alongside it.
   */
  private persist(rd: Ready): { done: Promise<void>; overlapsApply: boolean } {
    if (rd.hardState === undefined && rd.entries.length === 0 && rd.snapshot === undefined) {
      return { done: Promise.resolve(), overlapsApply: false };
    }
    const sync = rd.mustSync || rd.snapshot !== undefined;
    const started = performance.now();
    const done = this.log.save(rd.hardState, rd.entries, rd.snapshot, { sync }).then(() => this.options.onPersist?.(performance.now() - started, sync));
    const overlapsApply = !sync && rd.entries.length === 0 && rd.snapshot === undefined && rd.committedEntries.length > 0;
    return { done, overlapsApply };
  }

  private async restoreSnapshot(s: Snapshot): Promise<void> {
    this.options.faults?.('before-restore');
    await this.applier.restore(s);
    this.options.faults?.('after-restore');
    this.appliedIndex = s.metadata.index;
  }

  /** Apply runs of normal entries through the applier and conf changes through the core, in log order. */
  private async applyEntries(entries: readonly Entry[]): Promise<void> {
    this.options.faults?.('before-apply');
    let run: Entry[] = [];
    for (const e of entries) {
      if (e.type === EntryType.ConfChange) {
        await this.applyNormal(run);
        run = [];
        await this.applyConfChange(e);
      } else {
        run.push(e);
      }
    }
    await this.applyNormal(run);
    this.options.faults?.('after-apply');
    this.appliedIndex = entries[entries.length - 1]!.index;
  }

  private async applyConfChange(e: Entry): Promise<void> {
    const cc = decodeConfChange(e.data);
    const cs = this.node.applyConfChange(cc);
    await this.options.onConfChange?.(cc, cs, e.index);
  }

  private async applyNormal(entries: readonly Entry[]): Promise<void> {
    const commands: Command[] = [];
    /** For each command, the sequence number of our own waiting proposal, or -1 (another member's, or an earlier life's). */
    const ours: number[] = [];
    for (const e of entries) {
      if (e.data.byteLength === 0) continue; // a leader's no-op
      const env = unwrapProposal(e.data);
      commands.push({ index: e.index, term: e.term, payload: env.payload });
      ours.push(env.memberId === this.options.memberId && env.bootNonce === this.options.bootNonce >>> 0 ? env.seq : -1);
    }
    if (commands.length === 0) return;
    const results = await this.applier.apply(commands);
    assert(results.length === commands.length, () => `applier returned ${results.length} results for ${commands.length} commands`);
    for (let i = 0; i < ours.length; i++) {
      const w = ours[i]! < 0 ? undefined : this.proposals.get(ours[i]!);
      if (w === undefined) continue;
      this.proposals.delete(ours[i]!);
      this.answers.push([w, results[i]]);
    }
  }

  /** Answer the proposals applied in this Ready (once its entries are durable here and applied). */
  private answerProposals(): void {
    const answers = this.answers;
    this.answers = [];
    for (const [w, result] of answers) w.resolve(result);
  }

  private collectReadStates(states: readonly ReadState[]): void {
    for (const rs of states) {
      const ctx = TEXT_DECODER.decode(rs.context);
      const r = this.readInFlight;
      if (r === undefined || r.ctx !== ctx) continue; // an answer to a request we already retried
      this.readInFlight = undefined;
      for (const waiter of r.waiters) this.readsWaitingForApply.push({ index: rs.index, waiter });
    }
  }

  private releaseReads(): void {
    if (this.readsWaitingForApply.length === 0) return;
    const ready = this.readsWaitingForApply.filter((r) => r.index <= this.appliedIndex);
    if (ready.length === 0) return;
    this.readsWaitingForApply = this.readsWaitingForApply.filter((r) => r.index > this.appliedIndex);
    for (const r of ready) r.waiter.resolve(r.index);
  }

  private fail(e: unknown): void {
    this.fatal = e;
    this.stopped = true;
    this.stopTicker?.();
    this.notices.stop();
    this.failAll(new LoopError('STOPPED', `fulcrum: member stopped after a fatal error: ${String(e)}`));
    this.options.onFatal?.(e);
  }

  private failAll(err: LoopError): void {
    this.takeBatch(); // its proposals are among those failed below
    for (const w of this.proposals.values()) w.reject(err);
    this.proposals.clear();
    for (const [w] of this.answers) w.reject(err);
    this.answers = [];
    const reads = [...this.readsWaitingForIndex, ...(this.readInFlight?.waiters ?? []), ...this.readsWaitingForApply.map((r) => r.waiter)];
    this.readsWaitingForIndex = [];
    this.readInFlight = undefined;
    this.readsWaitingForApply = [];
    for (const w of reads) w.reject(err);
  }
}

/**
 * Messages a leader sends about its log may go out before its own fsync: it counts its own copy only once
 * persisted, so a quorum of followers holding the entry is a real quorum. Everything else (votes, append and
 * heartbeat responses) describes local durable state and waits for the fsync.
 */
function splitMessages(msgs: readonly Message[]): [Message[], Message[]] {
  const early: Message[] = [];
  const late: Message[] = [];
  for (const m of msgs) {
    if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) early.push(m);
    else late.push(m);
  }
  return [early, late];
}

/**
 * Commit notices held back for a moment. Once a write commits, the leader sends each follower an append without
 * entries that carries the new commit index; at one request in flight that was a second wake-up of every follower
 * per write (the entry, then its commit) and a second acknowledgement for the leader to take in. Held for up to
 * holdMs, a notice is dropped when another append to the same follower goes out first: every append carries the
 * leader's commit index, so the follower learns it from that one (the next write's entry, under load). Delaying or
 * dropping a message is always safe in Raft, whose network may do both. What it costs: when writes stop, a
 * follower applies the last of them up to holdMs later, and its serializable reads and watchers see it that much
 * later. Linearizable reads on a follower do not wait for it: their ReadIndex round's heartbeats carry the commit.
 */
export class CommitNotices {
  /** Per follower, the newest notice not yet sent (a later one carries a commit index at least as new). */
  private readonly held = new Map<number, Message>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly holdMs: number,
    private readonly deliver: (msgs: Message[]) => void,
  ) {}

  /** Send `msgs` now, except the commit notices among them, which wait (see the class comment). */
  send(msgs: readonly Message[]): void {
    const now: Message[] = [];
    for (const m of msgs) {
      if (this.holdMs > 0 && isCommitNotice(m)) {
        this.held.set(m.to, m);
        continue;
      }
      if (m.type === MessageType.App || m.type === MessageType.Snap) this.held.delete(m.to);
      now.push(m);
    }
    if (now.length > 0) this.deliver(now);
    if (this.held.size === 0) {
      // Every held notice was overtaken by an append: a timer left running would cut the next notice's hold
      // short. At one write in flight it fired just after the next commit and sent nearly every notice at once.
      clearTimeout(this.timer);
      this.timer = undefined;
    } else {
      this.timer ??= setTimeout(this.flush, this.holdMs);
    }
  }

  /** Drop what is held: a stopping member's notices do not matter (the next leader sends its own). */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.held.clear();
  }

  private readonly flush = (): void => {
    this.timer = undefined;
    const msgs = [...this.held.values()];
    this.held.clear();
    if (msgs.length > 0) this.deliver(msgs);
  };
}

function isCommitNotice(m: Message): boolean {
  return m.type === MessageType.App && m.entries.length === 0 && m.snapshot === undefined;
}

/** Entries bytes one coalesced append may carry (Raft's own maxSizePerMsg default). */
export const APPEND_COALESCE_BYTES_MAX = 1024 * 1024;

/**
 * Join appends to the same follower that continue one another into one message. A leader that takes proposals
 * one at a time emits one append per proposal; sent as they are, each costs a frame, a step, a response and a slot
 * of the follower's flow-control window. Joined, the follower appends them in one go and acknowledges the last
 * index, which frees every one of them on the leader (acknowledgements are cumulative). Only appends with no other
 * message to the same follower between them are joined, so each follower still sees its messages in order.
 */
export function coalesceAppends(msgs: readonly Message[]): Message[] {
  const out: Message[] = [];
  // Per follower, the append still open for joining: its place in `out` and the entries gathered so far.
  const open = new Map<number, { at: number; entries: Entry[]; commit: number; bytes: number }>();
  for (const m of msgs) {
    const o = open.get(m.to);
    const bytes = m.type === MessageType.App && m.snapshot === undefined ? entriesBytes(m.entries) : -1;
    if (o !== undefined && bytes >= 0 && continues(out[o.at]!, o.entries, m) && o.bytes + bytes <= APPEND_COALESCE_BYTES_MAX) {
      for (const e of m.entries) o.entries.push(e);
      o.commit = Math.max(o.commit, m.commit);
      o.bytes += bytes;
      continue;
    }
    if (o !== undefined) closeAppend(out, o);
    if (bytes >= 0) open.set(m.to, { at: out.length, entries: [...m.entries], commit: m.commit, bytes });
    else open.delete(m.to);
    out.push(m);
  }
  for (const o of open.values()) closeAppend(out, o);
  return out;
}

function closeAppend(out: Message[], o: { at: number; entries: Entry[]; commit: number }): void {
  const first = out[o.at]!;
  if (o.entries.length !== first.entries.length) out[o.at] = { ...first, entries: o.entries, commit: o.commit };
}

/** `next` appends right after the last of `entries` (what `first` opened), in the same term of the leader. */
function continues(first: Message, entries: readonly Entry[], next: Message): boolean {
  if (first.term !== next.term || entries.length === 0 || next.entries.length === 0) return false;
  const last = entries[entries.length - 1]!;
  return next.index === last.index && next.logTerm === last.term;
}

function entriesBytes(entries: readonly Entry[]): number {
  let n = 0;
  for (const e of entries) n += e.data.byteLength + 24;
  return n;
}

/** Some message is an append with entries (what a follower must write before the leader can commit). */
function carriesEntries(msgs: readonly Message[]): boolean {
  for (const m of msgs) if (m.type === MessageType.App && m.entries.length > 0) return true;
  return false;
}
