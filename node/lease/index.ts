// Public surface of the node's lease subsystem: the manager (leader's expiry loop, keep-alive forwarding) and the
// wait-in-line helper the election and lock services share.
export {
  LEASE_FORWARD_TIMEOUT_MS,
  LEASE_PROPOSAL_TIMEOUT_MS,
  LEASE_REVOKES_PER_TICK_MAX,
  LEASE_TICK_INTERVAL_MS,
  LeaseManager,
  grpcTarget,
  leaseManagerDefaults,
  type Forwarder,
  type LeaseManagerOptions,
  type LeaseMember,
  type LeaseTtl,
  type Ticker,
} from './manager.js';
export { FORWARDED_METADATA_KEY, FORWARD_CLIENTS_MAX, LeaderForwarder, isForwarded, type ForwardedTimeToLive } from './forwarder.js';
export { LINE_WAITERS_MAX, Line, lineKey, prefixEnd, type Joined, type LineMember } from './line.js';
