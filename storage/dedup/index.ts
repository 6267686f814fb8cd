// Public surface of the exactly-once table.
export {
  DEDUP_CLIENTS_MAX,
  DEDUP_CLIENT_ID_BYTES_MAX,
  DEDUP_CLIENT_IDLE_MS,
  DEDUP_EXPIRIES_PER_CALL_MAX,
  DEDUP_PREFIX,
  DEDUP_RESPONSE_BYTES_MAX,
  DEDUP_TABLE_DEFAULTS,
  DedupTable,
  validateDedupTableConfig,
  type DedupClient,
  type DedupTableConfig,
  type DedupVerdict,
} from './dedup-table.js';
export { DedupError, type DedupErrorCode } from './errors.js';
