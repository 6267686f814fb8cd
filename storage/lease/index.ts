// Public surface of leases: the replicated table (applied from the log) and the leader-only expiry tracker.
export {
  LEASES_MAX,
  LEASE_ID_MAX,
  LEASE_PREFIX,
  LEASE_TABLE_DEFAULTS,
  LEASE_TTL_MAX_SECONDS,
  LeaseTable,
  NO_LEASE,
  validateLeaseTableConfig,
  type LeaseId,
  type LeaseInfo,
  type LeaseTableConfig,
} from './lease-table.js';
export {
  LEASE_BATCH_MAX,
  LEASE_EXPIRY_TRACKER_DEFAULTS,
  LEASE_REVOKE_RETRY_INTERVAL_MS,
  LeaseExpiryTracker,
  validateLeaseExpiryTrackerConfig,
  type LeaseCheckpoint,
  type LeaseExpiryTrackerConfig,
} from './expiry-tracker.js';
export { LeaseError, type LeaseErrorCode } from './errors.js';
