// Coordination recipes on the Fulcrum client: locks and elections with fencing tokens (docs/recipes.md).
export { Election, Leadership, notLeaderError, type ElectionLeader, type ElectionOptions } from './election.js';
export { HeldLock, Lock, type LockOptions } from './lock.js';
export { fencedTxn, Ownership, OwnershipLostError, type Fence, type OwnershipLostReason } from './ownership.js';
export { RECIPE_TTL_SECONDS_DEFAULT, type ParticipantOptions } from './participant.js';
