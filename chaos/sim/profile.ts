// What one seed exercises: the core's options and the intensity of every fault, drawn from the seed. Calm seeds
// and violent seeds both matter (bugs hide in each), so the rates are spread over wide ranges rather than fixed.
import type { SeededRandom } from '../../raft/rng.js';
import type { LinkFaults } from './network.js';

/** Simulated milliseconds per tick: a member ticks about this often, and the fault schedule runs this often. */
export const TICK_MS = 10;
/** About 500 client writes of 8 bytes: a backlog a lagging follower can take in within the liveness bound. */
const UNCOMMITTED_BYTES_MAX = 4 * 1024;

export interface CoreOptions {
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly maxSizePerMsgBytes: number;
  readonly maxInflightMsgs: number;
  readonly maxUncommittedEntriesBytes: number;
}

export interface Profile {
  readonly core: CoreOptions;
  readonly links: LinkFaults;
  /** Probabilities per tick. */
  readonly crashRate: number;
  readonly partitionRate: number;
  readonly slowDiskRate: number;
  readonly snapshotRate: number;
  readonly memberChangeRate: number;
  readonly transferRate: number;
  readonly writeRate: number;
  readonly readRate: number;
}

function pick<T>(rng: SeededRandom, choices: readonly T[]): T {
  return choices[rng.int(choices.length)]!;
}

function between(rng: SeededRandom, lo: number, hi: number): number {
  return lo + rng.float() * (hi - lo);
}

export function drawProfile(rng: SeededRandom): Profile {
  const tinyMessages = rng.chance(0.4);
  const core: CoreOptions = {
    electionTicks: 10,
    heartbeatTicks: pick(rng, [1, 2, 3]),
    preVote: rng.chance(0.7),
    checkQuorum: rng.chance(0.7),
    // One entry per append message makes followers acknowledge entries one at a time, which is what exposes
    // commit-counting bugs (an old-term entry reaching a quorum before the new leader's own entry does).
    maxSizePerMsgBytes: tinyMessages ? 1 : pick(rng, [100, 1024 * 1024]),
    // Windows of 1..32, but 4..8 with one entry per message: a smaller one then cannot catch a follower up within the
    // liveness bound, and a huge one only multiplies the rejections that follow one lost message.
    maxInflightMsgs: tinyMessages ? pick(rng, [4, 8]) : pick(rng, [1, 4, 32]),
    // Bounds how far a leader without a quorum runs ahead; the backlog must replicate within the liveness bound.
    maxUncommittedEntriesBytes: UNCOMMITTED_BYTES_MAX,
  };
  const links: LinkFaults = {
    dropRate: pick(rng, [0, 0.01, 0.05, 0.15]),
    duplicateRate: pick(rng, [0, 0.01, 0.05]),
    slowRate: pick(rng, [0, 0.02, 0.1]),
    minDelayMs: 1,
    maxDelayMs: pick(rng, [3, 6, 15]),
    slowDelayMaxMs: pick(rng, [60, 200, 600]),
  };
  return {
    core,
    links,
    crashRate: pick(rng, [0, 0.002, 0.01, 0.03]),
    partitionRate: pick(rng, [0, 0.003, 0.01, 0.03]),
    slowDiskRate: pick(rng, [0, 0.005, 0.02]),
    snapshotRate: pick(rng, [0.002, 0.01, 0.05]),
    memberChangeRate: pick(rng, [0, 0.005, 0.02]),
    transferRate: pick(rng, [0, 0.002, 0.01]),
    writeRate: between(rng, 0.2, 1.5),
    readRate: between(rng, 0.05, 0.6),
  };
}
