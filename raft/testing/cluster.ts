// A synchronous in-process cluster for unit tests, transcripts and the core benchmark. Messages are delivered in
// FIFO order when asked; faults are explicit (cut links, drop). For randomized faults use chaos/sim.
import { decodeConfChange } from '../confchange.js';
import type { RaftConfigInput } from '../config.js';
import { RawNode } from '../rawnode.js';
import { SeededRandom } from '../rng.js';
import { MemoryStorage } from '../storage.js';
import { EntryType, MessageType, type Message, type NodeId, type Ready, type ReadState } from '../types.js';

export interface TestMember {
  readonly id: NodeId;
  node: RawNode;
  readonly storage: MemoryStorage;
  /** Data of applied Normal entries, in order (no-ops skipped). */
  applied: Uint8Array[];
  readStates: ReadState[];
}

export interface TestClusterOptions {
  readonly size: number;
  readonly seed?: number;
  /** Extra members started as learners-to-be (not in the bootstrap configuration). */
  readonly spares?: number;
  readonly config?: Partial<RaftConfigInput>;
  readonly logger?: (line: string) => void;
  /** Called for every message delivered, before it is stepped. */
  readonly onDeliver?: (m: Message) => void;
  /** Called for every message dropped on a cut link. */
  readonly onDrop?: (m: Message) => void;
}

export class TestCluster {
  readonly members = new Map<NodeId, TestMember>();
  /** Messages sent but not yet delivered, in send order. */
  queue: Message[] = [];
  /** Cut links: "from->to". */
  private readonly cut = new Set<string>();
  private readonly rng: SeededRandom;

  constructor(private readonly options: TestClusterOptions) {
    this.rng = new SeededRandom(options.seed ?? 1);
    const voters = Array.from({ length: options.size }, (_, i) => i + 1);
    const total = options.size + (options.spares ?? 0);
    for (let id = 1; id <= total; id++) {
      const storage = new MemoryStorage();
      const node = this.newNode(id, storage, 0);
      if (id <= options.size) node.bootstrap(voters);
      this.members.set(id, { id, node, storage, applied: [], readStates: [] });
    }
  }

  private newNode(id: NodeId, storage: MemoryStorage, applied: number): RawNode {
    return new RawNode({ id, random: this.rng.fork(), logger: this.options.logger, applied, ...this.options.config }, storage);
  }

  member(id: NodeId): TestMember {
    const m = this.members.get(id);
    if (m === undefined) throw new Error(`no member ${id}`);
    return m;
  }

  /** Process every member's Ready: persist, queue messages, apply, advance. Returns whether anything happened. */
  processReadies(): boolean {
    let any = false;
    for (const m of this.members.values()) {
      while (m.node.hasReady()) {
        any = true;
        this.handleReady(m, m.node.ready());
      }
    }
    return any;
  }

  private handleReady(m: TestMember, rd: Ready): void {
    if (rd.snapshot !== undefined) {
      m.storage.applySnapshot(rd.snapshot);
      m.applied = decodeApplied(rd.snapshot.data);
    }
    m.storage.append(rd.entries);
    if (rd.hardState !== undefined) m.storage.setHardState(rd.hardState);
    for (const msg of rd.messages) this.queue.push(msg);
    for (const e of rd.committedEntries) {
      if (e.type === EntryType.ConfChange) m.node.applyConfChange(decodeConfChange(e.data));
      else if (e.data.byteLength > 0) m.applied.push(e.data);
    }
    for (const rs of rd.readStates) m.readStates.push(rs);
    m.node.advance(rd);
  }

  /** Deliver queued messages (those sent meanwhile too) until nothing moves. */
  stabilize(maxRounds = 10_000): void {
    for (let i = 0; i < maxRounds; i++) {
      const moved = this.processReadies();
      if (this.queue.length === 0 && !moved) return;
      this.deliverAll();
    }
    throw new Error('cluster did not stabilize');
  }

  /** Deliver every message queued now (not ones sent in response). */
  deliverAll(): void {
    const batch = this.queue;
    this.queue = [];
    for (const msg of batch) this.deliver(msg);
  }

  deliver(msg: Message): void {
    if (this.cut.has(`${msg.from}->${msg.to}`)) {
      this.options.onDrop?.(msg);
      return;
    }
    const target = this.members.get(msg.to);
    if (target === undefined) return;
    this.options.onDeliver?.(msg);
    target.node.step(msg);
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.member(id).node.tick();
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) for (const m of this.members.values()) m.node.tick();
  }

  /** Elect `id` as leader by an immediate campaign, then settle. */
  elect(id: NodeId): void {
    this.stabilize(); // a member refuses to campaign until committed conf changes (the bootstrap) are applied
    this.member(id).node.campaign();
    this.stabilize();
  }

  leader(): NodeId | undefined {
    for (const m of this.members.values()) if (m.node.status().softState.role === 'leader') return m.id;
    return undefined;
  }

  isolate(id: NodeId): void {
    for (const other of this.members.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}->${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Take a snapshot of `id`'s applied state at its applied index and compact its log behind it. */
  snapshotAndCompact(id: NodeId): void {
    const m = this.member(id);
    const st = m.node.status();
    m.storage.createSnapshot(st.applied, st.confState, encodeApplied(m.applied));
    m.storage.compact(st.applied);
  }

  /** Crash `id` (losing nothing: MemoryStorage holds only persisted state here) and restart it. */
  restart(id: NodeId): void {
    const m = this.member(id);
    const snap = m.storage.snapshot();
    m.applied = decodeApplied(snap.data);
    m.node = this.newNode(id, m.storage, snap.metadata.index);
    m.readStates = [];
  }

  randomInt(n: number): number {
    return this.rng.int(n);
  }
}

/** The test state machine's snapshot: the applied payloads, length-prefixed. */
export function encodeApplied(applied: readonly Uint8Array[]): Uint8Array {
  const total = applied.reduce((n, a) => n + 4 + a.byteLength, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const a of applied) {
    view.setUint32(o, a.byteLength);
    out.set(a, o + 4);
    o += 4 + a.byteLength;
  }
  return out;
}

export function decodeApplied(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let o = 0;
  while (o < data.byteLength) {
    const n = view.getUint32(o);
    out.push(data.slice(o + 4, o + 4 + n));
    o += 4 + n;
  }
  return out;
}

export function describeMessage(m: Message): string {
  const t = MessageType[m.type];
  const parts = [`${m.from}->${m.to} ${t} term=${m.term}`];
  if (m.type === MessageType.App) parts.push(`prev=(${m.index},${m.logTerm}) entries=[${m.entries.map((e) => `${e.index}@${e.term}`).join(' ')}] commit=${m.commit}`);
  if (m.type === MessageType.AppResp) parts.push(m.reject ? `reject index=${m.index} hint=(${m.rejectHint},${m.logTerm})` : `index=${m.index}`);
  if (m.type === MessageType.Vote || m.type === MessageType.PreVote) parts.push(`last=(${m.index},${m.logTerm})${m.transfer ? ' transfer' : ''}`);
  if (m.type === MessageType.VoteResp || m.type === MessageType.PreVoteResp) parts.push(m.reject ? 'reject' : 'grant');
  if (m.type === MessageType.Heartbeat) parts.push(`commit=${m.commit}${m.readRound ? ` round=${m.readRound}` : ''}`);
  if (m.type === MessageType.HeartbeatResp && m.readRound) parts.push(`round=${m.readRound}`);
  if (m.type === MessageType.Snap) parts.push(`snapshot=(${m.snapshot?.metadata.index},${m.snapshot?.metadata.term})`);
  if (m.type === MessageType.ReadIndexResp) parts.push(`index=${m.index}`);
  return parts.join(' ');
}
