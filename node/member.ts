// One Fulcrum member: the write-ahead log, the state machine and the Raft core, driven by the Ready loop.
// This is the composition root the server, the embedded API and the crash tests share.
//
// Restart: the core starts at the WAL's snapshot index, so every committed entry after it is replayed. Conf
// changes replay into the core's membership; commands the state machine already holds (its applied index is
// durable in its own store) are skipped. That is why the two stores need not be synced together.
import { randomInt } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { RawNode } from '../raft/rawnode.js';
import { SeededRandom } from '../raft/rng.js';
import { isEmptyHardState, type ConfChange, type ConfState, type Message, type NodeId, type Snapshot, type SoftState } from '../raft/types.js';
import { LevelBackend } from '../storage/backend.js';
import { encodeCommand, type Op } from '../storage/command.js';
import { HybridClock } from '../storage/hlc/index.js';
import { installStateMachineImage, StateMachine, stateMachineImage, type CommandResult } from '../storage/state-machine.js';
import { WriteAheadLog } from '../storage/wal/index.js';
import { RaftLoop, RAFT_LOOP_DEFAULTS, type Applier, type Command, type FaultPoint, type PeerSender } from './raft-loop.js';

export interface MemberTransport extends PeerSender {
  /** Start delivering messages from peers. */
  start(deliver: (m: Message) => void): void;
  /** The membership changed (a conf change was applied). */
  onConfChange?(cc: ConfChange, cs: ConfState): void;
  close(): Promise<void>;
}

export interface MemberOptions {
  readonly id: NodeId;
  readonly dataDir: string;
  /** The founding voters, used only when the data dir holds no log yet. */
  readonly initialVoters: readonly NodeId[];
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
}

export const MEMBER_DEFAULTS = {
  heartbeatMs: 100,
  electionTicks: 10,
  snapshotCount: 10_000,
  snapshotCatchUpEntries: 5_000,
  maxRequestBytes: 1.5 * 1024 * 1024,
} as const;

export class MemberError extends Error {
  constructor(
    readonly code: 'REQUEST_TOO_LARGE' | 'STOPPED',
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
  private lastSnapshotIndex: number;
  private closed = false;

  private constructor(
    readonly options: MemberOptions,
    readonly wal: WriteAheadLog,
    private readonly backend: LevelBackend,
    private sm: StateMachine,
    private readonly clock: HybridClock,
    readonly node: RawNode,
    readonly loop: RaftLoop,
  ) {
    this.lastSnapshotIndex = wal.storage.firstIndex() - 1;
  }

  static async start(input: Partial<MemberOptions> & Pick<MemberOptions, 'id' | 'dataDir' | 'initialVoters'>): Promise<Member> {
    const options: MemberOptions = { ...MEMBER_DEFAULTS, ...input };
    await mkdir(options.dataDir, { recursive: true });
    const wal = await WriteAheadLog.open(join(options.dataDir, 'wal'));
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
      { id: options.id, electionTicks: options.electionTicks, heartbeatTicks: 1, applied: snapIndex, random: new SeededRandom(randomInt(2 ** 31)) },
      wal.storage,
    );
    if (isNew) node.bootstrap(options.initialVoters);

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
      bootNonce: randomInt(2 ** 32),
      ticker: intervalTicker,
      ...(options.faults ? { faults: options.faults } : {}),
      onSoftState: (s) => options.onSoftState?.(s),
      onConfChange: (cc, cs) => options.transport?.onConfChange?.(cc, cs),
      onApplied: (i) => self.member!.releaseAppliedWaiters(i),
      onFatal: (e) => options.onFatal?.(e),
    });
    const member = new Member(options, wal, backend, sm, clock, node, loop);
    self.member = member;
    options.transport?.start((m) => loop.step(m));
    loop.start();
    // Replay (or, for a new member, the bootstrap entries) must be applied before the membership is known.
    await member.waitApplied(node.status().commit);
    const cs = node.status().confState;
    if (cs.voters.length === 1 && cs.voters[0] === options.id) {
      // A single voter need not wait an election timeout: nobody else can be leader.
      node.campaign();
      loop.kick();
    }
    return member;
  }

  get stateMachine(): StateMachine {
    return this.sm;
  }

  get id(): NodeId {
    return this.options.id;
  }

  /** Propose a command and wait for its result on this member. */
  async propose(op: Op, opts: { clientId?: string; seq?: number } = {}): Promise<CommandResult> {
    if (this.closed) throw new MemberError('STOPPED', 'fulcrum: member is stopping');
    await reserveClock(this.clock, this.backend);
    const payload = encodeCommand({ hlc: this.clock.now(), op, ...opts });
    if (payload.byteLength > this.options.maxRequestBytes) throw new MemberError('REQUEST_TOO_LARGE', 'etcdserver: request is too large');
    return (await this.loop.propose(payload)) as CommandResult;
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

  private async applyCommands(commands: readonly Command[]): Promise<readonly unknown[]> {
    // After a restart the log replays from the snapshot; skip what the state machine already holds.
    const fresh = commands.filter((c) => c.index > this.sm.appliedIndex);
    const results = await this.sm.apply(fresh);
    if (results.length > 0) this.options.onApplied?.(results);
    const byIndex = new Map(results.map((r) => [r.index, r]));
    await this.maybeSnapshot();
    return commands.map((c) => byIndex.get(c.index) ?? null);
  }

  /** Every snapshotCount entries: make the state durable, write its image beside the WAL, compact the WAL. */
  private async maybeSnapshot(): Promise<void> {
    const applied = this.sm.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.options.snapshotCount) return;
    await this.sm.flush();
    const metadata = { index: applied, term: this.wal.storage.term(applied), confState: this.node.status().confState };
    const writer = await this.wal.snapshots.create(metadata);
    for await (const chunk of stateMachineImage(this.backend)) await writer.write(chunk);
    await writer.commit();
    await this.wal.markSnapshot(metadata);
    const compactTo = applied - this.options.snapshotCatchUpEntries;
    if (compactTo > this.wal.storage.firstIndex() - 1) await this.wal.compact(compactTo);
    this.lastSnapshotIndex = applied;
  }

  private async restoreSnapshot(s: Snapshot): Promise<void> {
    await installFromSnapshot(this.wal, this.backend, s);
    this.sm = await StateMachine.open(this.backend);
    this.lastSnapshotIndex = s.metadata.index;
  }

  status(): ReturnType<RawNode['status']> & { revision: number; appliedState: number } {
    return { ...this.node.status(), revision: this.sm.revision, appliedState: this.sm.appliedIndex };
  }

  /** Stop: fail what waits, make the applied state durable, close the stores. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.options.transport?.close();
    await this.loop.stop();
    await this.sm.flush();
    await this.wal.close();
    await this.backend.close();
  }
}

async function reserveClock(clock: HybridClock, backend: LevelBackend): Promise<void> {
  const batch = backend.batch();
  const bound = clock.reserve(batch);
  if (bound === undefined) return;
  // The reservation must be on disk before any HLC value under it is handed out.
  await batch.write({ sync: true });
  clock.reservationPersisted(bound);
}

async function installFromSnapshot(wal: WriteAheadLog, backend: LevelBackend, s: Snapshot): Promise<void> {
  const info = (await wal.snapshots.list()).find((i) => i.index === s.metadata.index && i.term === s.metadata.term);
  if (info === undefined) throw new Error(`fulcrum: snapshot ${s.metadata.index}@${s.metadata.term} is not in the snapshot store`);
  const reader = await wal.snapshots.reader(info);
  await installStateMachineImage(backend, reader.chunks());
}
