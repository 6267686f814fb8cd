// The Raft core's one config object: defaults, then validate() returns a frozen copy.
import type { Random } from './rng.js';
import type { NodeId } from './types.js';

export interface RaftConfig {
  readonly id: NodeId;
  /** Ticks a follower waits without hearing from a leader before it campaigns (randomized in [n, 2n)). */
  readonly electionTicks: number;
  /** Ticks between a leader's heartbeats. Must be less than electionTicks. */
  readonly heartbeatTicks: number;
  /** The last index the state machine applied before this start (entries up to here are not handed out again). */
  readonly applied: number;
  /** Bytes of entries in one append message (at least one entry is always sent). */
  readonly maxSizePerMsgBytes: number;
  /** Append messages in flight to one follower in the replicate state. */
  readonly maxInflightMsgs: number;
  /** Bytes of entries in flight to one follower (0: no byte limit). */
  readonly maxInflightBytes: number;
  /** Bytes of proposed-but-uncommitted entries a leader accepts before dropping proposals (0: no limit). */
  readonly maxUncommittedEntriesBytes: number;
  /** Bytes of committed entries handed out in one Ready. */
  readonly maxCommittedSizePerReadyBytes: number;
  /** Linearizable reads waiting for confirmation on one leader; more are dropped (the caller retries). */
  readonly maxPendingReads: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Followers forward proposals to the leader instead of dropping them. */
  readonly proposalForwarding: boolean;
  /** A leader that is removed from the membership steps down once the change is applied. */
  readonly stepDownOnRemoval: boolean;
  readonly random: Random;
  /** Receives the core's state changes as lines with stable wording (tests and transcripts read them). */
  readonly logger: ((line: string) => void) | undefined;
}

export type RaftConfigInput = Partial<RaftConfig> & Pick<RaftConfig, 'id' | 'random'>;

export const RAFT_DEFAULTS = {
  electionTicks: 10,
  heartbeatTicks: 1,
  applied: 0,
  maxSizePerMsgBytes: 1024 * 1024,
  maxInflightMsgs: 256,
  maxInflightBytes: 0,
  maxUncommittedEntriesBytes: 64 * 1024 * 1024,
  maxCommittedSizePerReadyBytes: 16 * 1024 * 1024,
  maxPendingReads: 4096,
  preVote: true,
  checkQuorum: true,
  proposalForwarding: true,
  stepDownOnRemoval: true,
  logger: undefined,
} as const;

export function validateRaftConfig(input: RaftConfigInput): RaftConfig {
  const c: RaftConfig = { ...RAFT_DEFAULTS, ...input };
  const fail = (why: string): never => {
    throw new RangeError(`raft config: ${why}`);
  };
  if (!Number.isSafeInteger(c.id) || c.id <= 0) fail(`id must be a positive integer, got ${c.id}`);
  if (!Number.isInteger(c.heartbeatTicks) || c.heartbeatTicks <= 0) fail('heartbeatTicks must be greater than 0');
  if (!Number.isInteger(c.electionTicks) || c.electionTicks <= c.heartbeatTicks)
    fail('electionTicks must be greater than heartbeatTicks');
  if (c.maxInflightMsgs <= 0) fail('maxInflightMsgs must be greater than 0');
  if (c.maxSizePerMsgBytes <= 0) fail('maxSizePerMsgBytes must be greater than 0');
  if (c.maxInflightBytes !== 0 && c.maxInflightBytes < c.maxSizePerMsgBytes)
    fail('maxInflightBytes must be 0 or at least maxSizePerMsgBytes');
  if (c.maxPendingReads <= 0) fail('maxPendingReads must be greater than 0');
  if (c.applied < 0) fail('applied must not be negative');
  return Object.freeze(c);
}
