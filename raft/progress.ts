// What the leader knows about each follower, and the flow control that bounds what it has in flight.
import { assert } from './errors.js';
import type { NodeId } from './types.js';

export enum ProgressState {
  /** Unknown match: send one append per heartbeat until the follower answers, then replicate. */
  Probe = 'probe',
  /** Known match: stream appends optimistically, up to the in-flight limits. */
  Replicate = 'replicate',
  /** The follower needs a snapshot; nothing else is sent until it reports back. */
  Snapshot = 'snapshot',
}

/**
 * A bounded window of append messages in flight to one follower, each remembered by its last index and size.
 * Freed as acknowledgements arrive. Full means: stop sending until something is acknowledged.
 */
export class Inflights {
  private readonly indexes: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  private bytes = 0;

  constructor(
    readonly maxCount: number,
    readonly maxBytes: number,
  ) {}

  get count(): number {
    return this.indexes.length - this.head;
  }

  add(index: number, size: number): void {
    assert(!this.full(), 'cannot add into a full inflights');
    this.indexes.push(index);
    this.sizes.push(size);
    this.bytes += size;
  }

  /** Free every message whose last index is <= index. */
  freeLE(index: number): void {
    while (this.head < this.indexes.length && this.indexes[this.head]! <= index) {
      this.bytes -= this.sizes[this.head]!;
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.indexes.length) {
      this.indexes.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
  }

  full(): boolean {
    return this.count >= this.maxCount || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  reset(): void {
    this.indexes.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.bytes = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state = ProgressState.Probe;
  /** In Snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** In Probe: one append is out, wait for an answer (or a heartbeat response) before sending another. */
  msgAppFlowPaused = false;
  readonly inflights: Inflights;

  constructor(
    readonly id: NodeId,
    next: number,
    public isLearner: boolean,
    maxInflightMsgs: number,
    maxInflightBytes: number,
  ) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, the follower has at least the snapshot: probe from just after it.
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** Account for an append just sent with `count` entries of `bytes`. */
  sentEntries(count: number, bytes: number): void {
    if (this.state === ProgressState.Replicate) {
      if (count > 0) {
        this.next += count;
        this.inflights.add(this.next - 1, bytes);
      }
      this.msgAppFlowPaused = this.inflights.full();
    } else if (this.state === ProgressState.Probe) {
      this.msgAppFlowPaused = true;
    }
  }

  /** The follower has everything up to n. Returns whether match moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /**
   * The follower rejected an append at `rejected`; `matchHint` is where it suggests to continue.
   * Returns false for a stale rejection (one that says nothing new).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
      case ProgressState.Replicate:
        return this.msgAppFlowPaused;
      case ProgressState.Snapshot:
        return true;
    }
  }
}

/** The membership as the leader tracks it, with quorum arithmetic. */
export class ProgressTracker {
  readonly progress = new Map<NodeId, Progress>();
  readonly votes = new Map<NodeId, boolean>();
  private votersCache: NodeId[] | undefined;
  /** quorumValue's work array, kept so the leader's commit check allocates nothing. */
  private readonly quorumScratch: number[] = [];
  private readonly matchOf = (id: NodeId): number => this.progress.get(id)!.match;

  voters(): NodeId[] {
    if (this.votersCache === undefined) {
      this.votersCache = [...this.progress.values()].filter((p) => !p.isLearner).map((p) => p.id).sort((a, b) => a - b);
    }
    return this.votersCache;
  }

  learners(): NodeId[] {
    return [...this.progress.values()].filter((p) => p.isLearner).map((p) => p.id).sort((a, b) => a - b);
  }

  membershipChanged(): void {
    this.votersCache = undefined;
  }

  isVoter(id: NodeId): boolean {
    const p = this.progress.get(id);
    return p !== undefined && !p.isLearner;
  }

  quorum(): number {
    return Math.floor(this.voters().length / 2) + 1;
  }

  isSingleton(): boolean {
    const v = this.voters();
    return v.length === 1;
  }

  /**
   * The largest index that a quorum of voters has acknowledged, given a per-voter value:
   *   matches 9 7 7 5 3 (5 voters, quorum 3) -> 7.
   */
  quorumValue(valueOf: (id: NodeId) => number): number {
    const voters = this.voters();
    const n = voters.length;
    if (n === 0) return 0;
    // Insertion sort, largest first, into an array kept for the purpose: the leader asks on every append
    // response, and map plus sort allocated a new array, a comparator and sort's work space each time, a few
    // hundred bytes per put at one in flight (docs/performance.md, thirtieth session). A handful of voters.
    const values = this.quorumScratch;
    values.length = n;
    for (let i = 0; i < n; i++) {
      const v = valueOf(voters[i]!);
      let j = i;
      for (; j > 0 && values[j - 1]! < v; j--) values[j] = values[j - 1]!;
      values[j] = v;
    }
    return values[this.quorum() - 1]!;
  }

  committedIndex(): number {
    return this.quorumValue(this.matchOf);
  }

  quorumActive(selfId: NodeId): boolean {
    let active = 0;
    for (const id of this.voters()) if (id === selfId || this.progress.get(id)!.recentActive) active++;
    return active >= this.quorum();
  }

  resetVotes(): void {
    this.votes.clear();
  }

  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** Counts only voters of this configuration: a learner's vote (or a stranger's) never decides an election. */
  tallyVotes(): { granted: number; rejected: number; result: 'won' | 'lost' | 'pending' } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters()) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    const q = this.quorum();
    if (granted >= q) return { granted, rejected, result: 'won' };
    if (rejected >= q) return { granted, rejected, result: 'lost' };
    return { granted, rejected, result: 'pending' };
  }
}
