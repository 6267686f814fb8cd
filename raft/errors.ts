// Typed errors of the Raft core. Operating conditions are errors with stable codes; broken invariants are asserts.

export type RaftErrorCode =
  | 'COMPACTED'
  | 'UNAVAILABLE'
  | 'SNAPSHOT_TEMPORARILY_UNAVAILABLE'
  | 'SNAPSHOT_OUT_OF_DATE'
  | 'PROPOSAL_DROPPED'
  | 'STEP_LOCAL_MSG'
  | 'STEP_PEER_NOT_FOUND';

export class RaftError extends Error {
  constructor(
    readonly code: RaftErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RaftError';
  }
}

/** The requested index is behind the last snapshot: the entries are gone. */
export const errCompacted = (index: number): RaftError =>
  new RaftError('COMPACTED', `raft: requested index ${index} is unavailable due to compaction`);
/** The requested index is beyond the last entry. */
export const errUnavailable = (index: number): RaftError =>
  new RaftError('UNAVAILABLE', `raft: requested entry at index ${index} is unavailable`);
export const errSnapshotTemporarilyUnavailable = (): RaftError =>
  new RaftError('SNAPSHOT_TEMPORARILY_UNAVAILABLE', 'raft: snapshot is temporarily unavailable');
export const errSnapOutOfDate = (): RaftError =>
  new RaftError('SNAPSHOT_OUT_OF_DATE', 'raft: requested index is older than the existing snapshot');

export type ProposalDropReason =
  | 'no leader'
  | 'leadership transfer in progress'
  | 'uncommitted log size limit reached'
  | 'not a member'
  | 'configuration change already pending'
  | 'proposal forwarding disabled';

/** A proposal that will not enter the log. Safe to retry elsewhere: nothing was appended. */
export class ProposalDroppedError extends RaftError {
  constructor(readonly reason: ProposalDropReason) {
    super('PROPOSAL_DROPPED', `raft proposal dropped: ${reason}`);
    this.name = 'ProposalDroppedError';
  }
}

export class AssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssertionError';
  }
}

/** Crash on a broken invariant: the state cannot be trusted after this. */
export function assert(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new AssertionError(typeof message === 'string' ? message : message());
}
