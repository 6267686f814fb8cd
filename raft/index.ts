// The public surface of the Raft core.
export * from './types.js';
export * from './errors.js';
export { RawNode, type RaftStatus, type ProgressStatus } from './rawnode.js';
export { Raft } from './raft.js';
export { RaftLog, Unstable } from './log.js';
export { Progress, ProgressState, ProgressTracker, Inflights } from './progress.js';
export { MemoryStorage, type Storage, type InitialState } from './storage.js';
export { validateRaftConfig, RAFT_DEFAULTS, type RaftConfig, type RaftConfigInput } from './config.js';
export { SeededRandom, type Random } from './rng.js';
export { encodeConfChange, decodeConfChange, describeConfChange } from './confchange.js';
