// Linearizable reads without writing to the log (ReadIndex, Raft thesis section 6.4), batched into rounds.
//
// A read arriving at commit index C is safe to serve once the leader knows it was still leader after the read
// arrived: then no other leader can have committed anything past C that this leader does not know of. A round
// records C and the reads waiting on it; heartbeats carry the round number; a follower's answer to a heartbeat
// of round r proves our leadership to it at a time after round r (and every earlier round) began.
//
//   round 4 starts at commit 120 with reads a, b     heartbeats carry readRound=4
//   reads c, d arrive                                 queued for the next round
//   quorum has acked >= 4                             a, b served at 120; round 5 starts with c, d
//
// At most one round is in flight, so any number of concurrent reads costs one heartbeat round per round.
import type { ProgressTracker } from './progress.js';
import type { Message, NodeId } from './types.js';

interface ReadRound {
  readonly round: number;
  readonly index: number;
  readonly requests: Message[];
}

export class ReadOnly {
  private queued: Message[] = [];
  private inFlight: ReadRound | undefined = undefined;
  /** Round numbers only grow within a Raft object's life, so a stale acknowledgement can never confirm a newer round. */
  private nextRound = 1;
  /** Highest round each member has acknowledged in this leadership. */
  private readonly acked = new Map<NodeId, number>();

  constructor(readonly maxPendingReads: number) {}

  pendingCount(): number {
    return this.queued.length + (this.inFlight?.requests.length ?? 0);
  }

  /** Queue a read for the next round. False when the named limit of waiting reads is reached. */
  enqueue(m: Message): boolean {
    if (this.pendingCount() >= this.maxPendingReads) return false;
    this.queued.push(m);
    return true;
  }

  /** Start a round at `committed` if none is in flight and reads are waiting. Returns its number, or 0. */
  maybeStartRound(committed: number): number {
    if (this.inFlight !== undefined || this.queued.length === 0) return 0;
    this.inFlight = { round: this.nextRound++, index: committed, requests: this.queued };
    this.queued = [];
    return this.inFlight.round;
  }

  inFlightRound(): number {
    return this.inFlight?.round ?? 0;
  }

  /** Record that `from` acknowledged round `round`; returns the reads that a quorum has now confirmed. */
  recvAck(from: NodeId, round: number, tracker: ProgressTracker, self: NodeId): Array<{ request: Message; index: number }> {
    if (round > (this.acked.get(from) ?? 0)) this.acked.set(from, round);
    const r = this.inFlight;
    if (r === undefined) return [];
    const confirmed = tracker.quorumValue((id) => (id === self ? Number.MAX_SAFE_INTEGER : (this.acked.get(id) ?? 0)));
    if (confirmed < r.round) return [];
    this.inFlight = undefined;
    return r.requests.map((request) => ({ request, index: r.index }));
  }

  /** Leadership changed: every waiting read is dropped (its caller times out and retries elsewhere). */
  reset(): void {
    this.queued = [];
    this.inFlight = undefined;
    this.acked.clear();
  }
}
