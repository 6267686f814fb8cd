// Public surface of the write-ahead log and snapshot store.
export {
  WriteAheadLog,
  SAVE_BATCH_BYTES_MAX,
  BATCH_OPS_MAX,
  COMPACT_BATCH_ENTRIES_MAX,
  TORN_TAIL_ENTRIES_MAX,
  FENCE_INTERVAL_MS_DEFAULT,
  type WalOptions,
  type RecoveryReport,
} from './wal.js';
export {
  SnapshotStore,
  SnapshotWriter,
  SnapshotReader,
  SNAPSHOT_CHUNK_BYTES_MAX,
  SNAPSHOT_RETAIN_DEFAULT,
  SNAPSHOT_HEADER_BYTES_MAX,
  snapshotFileName,
  type SnapshotInfo,
  type SnapshotSource,
  type SnapshotStoreOptions,
} from './snapshot.js';
export { WalError, RESTORE_ADVICE, type WalErrorCode } from './errors.js';
export type { WalLogger } from './logger.js';
