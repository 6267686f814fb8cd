// Raft's safety properties, checked incrementally on every event of a simulated run. Each method is told one
// small fact (a member persisted these entries, granted this vote, applied this entry) and compares it with
// tables that summarize everything seen so far, so a check costs O(size of the fact), never O(size of the log).
//
// The tables:
//   leaderOfTerm      term -> the one member that acted as leader in it (election safety)
//   voteOf            (term, voter) -> the candidate it granted its vote to (one vote per term)
//   logTable          index -> every distinct (term, prevTerm, payload) ever persisted there (log matching)
//   committed*        index -> the one committed entry: term, and the state machine's chain hash after it
//   commitTermAt      index -> a term by which the entry was known committed (leader completeness)
//   commitFloor       member -> the lowest commit index it may report in its current life
import type { NodeId } from '../../raft/types.js';
import { violation } from './violation.js';

/** What the checker needs to read from a member's durable log (MemoryStorage has this shape). */
export interface LogView {
  firstIndex(): number;
  lastIndex(): number;
  term(index: number): number;
}

/** Member ids are small; a (term, member) pair is packed into one number for cheap Map keys. */
const MEMBER_ID_LIMIT = 64;

interface LogRecord {
  readonly term: number;
  readonly prevTerm: number;
  readonly fingerprint: number;
  readonly node: NodeId;
}

interface ReadRecord {
  readonly required: number;
  readonly startedMs: number;
}

export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly voteOf = new Map<number, NodeId>();
  private readonly logTable: (LogRecord[] | undefined)[] = [];
  private readonly committedTerm: number[] = [];
  private readonly committedChain: number[] = [];
  private readonly commitTermAt: number[] = [];
  private readonly commitFloor = new Map<NodeId, number>();
  private readonly votesFor = new Map<NodeId, { term: number; voters: Set<NodeId> }>();
  private readonly reads = new Map<number, ReadRecord>();
  /** The highest commit index any member has reported: everything up to it is committed. */
  private maxCommit = 0;
  /** The highest index any member has applied. */
  private maxApplied = 0;
  /** Counters a report shows, so a quiet run is visibly quiet. */
  readonly stats = { leaders: 0, votes: 0, persisted: 0, applied: 0, readsChecked: 0, restores: 0 };

  /** The state every member starts from: a bootstrap snapshot at `index` whose state machine chain is `chain`. */
  constructor(bootstrapIndex: number, bootstrapTerm: number, bootstrapChain: number) {
    this.committedTerm[bootstrapIndex] = bootstrapTerm;
    this.committedChain[bootstrapIndex] = bootstrapChain;
    this.maxCommit = bootstrapIndex;
    this.maxApplied = bootstrapIndex;
  }

  get highestCommit(): number {
    return this.maxCommit;
  }

  // ---- elections -------------------------------------------------------------------------------------------

  /** A member acted as leader of `term` (it said so in a Ready, or it sent App/Heartbeat/Snap in that term). */
  onLeaderAct(node: NodeId, term: number, how: string): void {
    const seen = this.leaderOfTerm.get(term);
    if (seen === undefined) {
      this.leaderOfTerm.set(term, node);
      this.stats.leaders++;
    } else if (seen !== node) {
      violation('election-safety', `two leaders in term ${term}: ${seen} and ${node} (${how})`);
    }
  }

  /** A member emitted a granted Vote response (not a pre-vote: those promise nothing). */
  onVoteGranted(voter: NodeId, term: number, candidate: NodeId): void {
    const key = term * MEMBER_ID_LIMIT + voter;
    const seen = this.voteOf.get(key);
    if (seen === undefined) {
      this.voteOf.set(key, candidate);
      this.stats.votes++;
    } else if (seen !== candidate) {
      violation('single-vote', `member ${voter} granted two votes in term ${term}: to ${seen} and to ${candidate}`);
    }
  }

  /** A granted Vote response reached the candidate. */
  onVoteDelivered(candidate: NodeId, voter: NodeId, term: number): void {
    let tally = this.votesFor.get(candidate);
    if (tally !== undefined && tally.term > term) return; // a late answer to an earlier campaign
    if (tally === undefined || tally.term < term) {
      tally = { term, voters: new Set() };
      this.votesFor.set(candidate, tally);
    }
    tally.voters.add(voter);
  }

  /** A member sent a Vote or PreVote request (it campaigns). Learners never do. */
  onCampaign(node: NodeId, term: number, isLearner: boolean, kind: string): void {
    if (isLearner) violation('learner-no-vote', `member ${node} is a learner in its applied configuration but sent ${kind} in term ${term}`);
  }

  /**
   * A member reported itself leader of `term`. Checks election safety, that the votes it could have counted
   * come from a majority of the voters in its configuration, and leader completeness: its durable log holds
   * every entry known committed by an earlier term.
   */
  onBecomeLeader(node: NodeId, term: number, voters: readonly NodeId[], log: LogView): void {
    this.onLeaderAct(node, term, 'reported leader role');
    this.checkVoteQuorum(node, term, voters);
    this.checkCompleteness(node, term, log);
  }

  private checkVoteQuorum(node: NodeId, term: number, voters: readonly NodeId[]): void {
    if (!voters.includes(node)) violation('vote-from-voter', `member ${node} became leader of term ${term} but is not a voter in [${voters.join(',')}]`);
    const tally = this.votesFor.get(node);
    let granted = 1; // its own vote
    if (tally !== undefined && tally.term === term) {
      for (const v of tally.voters) if (v !== node && voters.includes(v)) granted++;
    }
    if (granted * 2 <= voters.length) {
      const got = tally !== undefined && tally.term === term ? [...tally.voters].join(',') : '';
      violation('vote-from-voter', `member ${node} became leader of term ${term} with ${granted} voter votes of [${voters.join(',')}] (granted by: ${got})`);
    }
  }

  private checkCompleteness(node: NodeId, term: number, log: LogView): void {
    const first = log.firstIndex();
    const last = log.lastIndex();
    for (let i = first; i <= this.maxCommit; i++) {
      const committedTerm = this.committedTerm[i];
      const knownBy = this.commitTermAt[i];
      // Only entries known committed before this term are owed to this leader, and only those whose term we
      // know (someone applied them). Entries behind the leader's snapshot were applied by it and checked then.
      if (committedTerm === undefined || knownBy === undefined || knownBy >= term) continue;
      if (i > last) violation('leader-completeness', `leader ${node} of term ${term} lacks committed entry ${i} (its last index is ${last})`);
      const has = log.term(i);
      if (has !== committedTerm) violation('leader-completeness', `leader ${node} of term ${term} has term ${has} at ${i}, but the committed entry there has term ${committedTerm}`);
    }
  }

  // ---- the log ---------------------------------------------------------------------------------------------

  /**
   * A member made entries durable. `prevTerm` is the term of the entry just before the first one in its log.
   * Log matching holds if every (index, term) pair always carries the same payload and the same previous term:
   * by induction from the snapshot point, two logs that agree at (index, term) then agree on everything before.
   */
  onPersistEntries(node: NodeId, entries: readonly { index: number; term: number; data: Uint8Array }[], prevTerm: number, fingerprints: readonly number[]): void {
    let prev = prevTerm;
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!;
      this.recordLogEntry(node, e.index, e.term, prev, fingerprints[k]!);
      prev = e.term;
    }
    this.stats.persisted += entries.length;
  }

  private recordLogEntry(node: NodeId, index: number, term: number, prevTerm: number, fingerprint: number): void {
    let records = this.logTable[index];
    if (records === undefined) {
      records = [];
      this.logTable[index] = records;
    }
    for (const r of records) {
      if (r.term !== term) continue;
      if (r.prevTerm !== prevTerm || r.fingerprint !== fingerprint) {
        violation(
          'log-matching',
          `entry ${index} of term ${term} differs between members ${r.node} and ${node}: ` +
            `previous term ${r.prevTerm} vs ${prevTerm}, payload ${r.fingerprint.toString(16)} vs ${fingerprint.toString(16)}`,
        );
      }
      return;
    }
    records.push({ term, prevTerm, fingerprint, node });
  }

  // ---- commit and apply ------------------------------------------------------------------------------------

  /** A member (re)started: whatever it reports in this life must not go below what it had made durable. */
  onStart(node: NodeId, durableCommit: number): void {
    this.commitFloor.set(node, durableCommit);
  }

  /** A member persisted a hard state. `term` is its term then: the entries it now calls committed were committed by `term` at the latest. */
  onHardState(node: NodeId, term: number, commit: number): void {
    const floor = this.commitFloor.get(node) ?? 0;
    if (commit < floor) violation('commit-monotonic', `member ${node} commit went back from ${floor} to ${commit}`);
    this.commitFloor.set(node, commit);
    for (let i = this.maxCommit + 1; i <= commit; i++) this.commitTermAt[i] = term;
    if (commit > this.maxCommit) this.maxCommit = commit;
  }

  /**
   * A leader that stayed leader of `term` moved its commit index to `commit`, where its log holds an entry of
   * `termAtCommit`. Raft's commit rule (section 5.4.2 of the paper): a leader commits by counting replicas only
   * an entry of its own term; older entries become committed with it, never on their own (Figure 8).
   */
  onLeaderCommit(node: NodeId, term: number, commit: number, termAtCommit: number): void {
    if (termAtCommit !== term) {
      violation('commit-own-term', `leader ${node} of term ${term} advanced its commit index to ${commit}, an entry of term ${termAtCommit}`);
    }
  }

  /** A member applied entry `index` of `term`; `chain` is its state machine's hash chain after it. */
  onApply(node: NodeId, appliedBefore: number, index: number, term: number, chain: number, commit: number): void {
    if (index !== appliedBefore + 1) violation('apply-order', `member ${node} applied entry ${index} after ${appliedBefore}`);
    if (index > commit) violation('state-machine-safety', `member ${node} applied entry ${index} beyond its commit index ${commit}`);
    const seenChain = this.committedChain[index];
    if (seenChain === undefined) {
      this.committedChain[index] = chain;
      this.committedTerm[index] = term;
    } else if (seenChain !== chain || this.committedTerm[index] !== term) {
      violation(
        'state-machine-safety',
        `member ${node} applied a different sequence at ${index}: term ${term} chain ${chain.toString(16)}, ` +
          `others term ${this.committedTerm[index]} chain ${seenChain.toString(16)}`,
      );
    }
    if (index > this.maxApplied) this.maxApplied = index;
    this.stats.applied++;
  }

  /** A member restored its state machine from a snapshot at `index` whose chain is `chain`. */
  onRestore(node: NodeId, index: number, term: number, chain: number): void {
    const seenChain = this.committedChain[index];
    if (seenChain === undefined) {
      this.committedChain[index] = chain;
      this.committedTerm[index] = term;
    } else if (seenChain !== chain) {
      violation('state-machine-safety', `member ${node} restored a snapshot at ${index} whose state differs from the committed sequence`);
    }
    this.stats.restores++;
  }

  // ---- reads -----------------------------------------------------------------------------------------------

  /** A client starts a linearizable read: it must see everything committed so far. */
  onReadStart(readId: number, nowMs: number): void {
    this.reads.set(readId, { required: this.maxCommit, startedMs: nowMs });
  }

  /** The read was answered with a read index (the member serves it once it has applied that far). */
  onReadState(node: NodeId, readId: number, index: number): void {
    const read = this.reads.get(readId);
    if (read === undefined) return; // not a read this run started (a mutant may invent contexts; ignore)
    if (index < read.required) {
      violation('read-linearizable', `read ${readId} served by member ${node} at index ${index}, but entry ${read.required} was committed before the read started at ${read.startedMs}ms`);
    }
    this.stats.readsChecked++;
  }
}
