// Negative controls: small, deliberate protocol bugs the simulator must catch. Each is a subclass of the real
// core overriding one protected method, so the production path carries no test-only switch. A simulator
// that lets one of these pass is a simulator that cannot see that class of bug.
import type { RaftConfig } from '../../raft/config.js';
import { Raft } from '../../raft/raft.js';
import { RawNode } from '../../raft/rawnode.js';
import type { Storage } from '../../raft/storage.js';
import type { Entry, Message } from '../../raft/types.js';
import type { CoreFactory } from './node.js';

/**
 * (a) Commit by counting replicas for an entry of any term. Raft only lets a leader commit by counting an
 * entry of its own term (Figure 8 of the Raft paper): an older-term entry on a majority can still be
 * overwritten by a leader elected with a log ending in a newer term.
 */
class CommitAnyTermRaft extends Raft {
  protected override maybeCommit(): boolean {
    const quorumIndex = this.tracker.committedIndex();
    return this.log.maybeCommit(quorumIndex, this.log.termOrZero(quorumIndex));
  }
}

/** (b) Grant a vote to any candidate with an up-to-date log, even after voting for another in this term. */
class DoubleVoteRaft extends Raft {
  protected override canGrantVote(_m: Message): boolean {
    return true;
  }
}

/**
 * (c) On append, keep the entries we already hold where the leader's conflict, instead of truncating the
 * conflicting suffix, then append the rest and acknowledge everything as if it matched.
 */
class NoTruncateRaft extends Raft {
  protected override handleAppendEntries(m: Message): void {
    const log = this.log;
    if (m.index < log.committed || !log.matchTerm(m.index, m.logTerm) || m.entries.length === 0) {
      super.handleAppendEntries(m);
      return;
    }
    const ownLast = Math.min(log.lastIndex(), m.entries[m.entries.length - 1]!.index);
    const first = m.entries[0]!.index;
    if (ownLast < first) {
      super.handleAppendEntries(m);
      return;
    }
    // Replace the leader's entries by our own where we have some: nothing conflicts, nothing is truncated.
    const own: Entry[] = log.slice(first, ownLast + 1, Number.MAX_SAFE_INTEGER);
    super.handleAppendEntries({ ...m, entries: own.concat(m.entries.slice(own.length)) });
  }
}

/**
 * (d) Serve a linearizable read at the commit index at once, without a heartbeat round confirming this
 * member is still the leader: a deposed leader that has not heard of its successor answers stale reads.
 */
class UnconfirmedReadRaft extends Raft {
  protected override handleReadIndex(m: Message): void {
    this.respondToRead(m, this.log.committed);
  }
}

type RaftClass = new (config: RaftConfig, storage: Storage) => Raft;

function nodeWith(RaftVariant: RaftClass): CoreFactory {
  class MutantNode extends RawNode {
    protected override createRaft(config: RaftConfig, storage: Storage): Raft {
      return new RaftVariant(config, storage);
    }
  }
  return (config, storage) => new MutantNode(config, storage);
}

export const MUTANTS = {
  'commit-any-term': nodeWith(CommitAnyTermRaft),
  'double-vote': nodeWith(DoubleVoteRaft),
  'no-truncate': nodeWith(NoTruncateRaft),
  'unconfirmed-read': nodeWith(UnconfirmedReadRaft),
} as const satisfies Record<string, CoreFactory>;

export type MutantName = keyof typeof MUTANTS;
