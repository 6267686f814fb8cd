// Public API of the MVCC store (etcd's data model). See docs/mvcc.md.
export { MvccStore, NO_COMPACTION, INITIAL_REVISION, type MvccStoreOptions, type CompactionStepResult, type ReadOptions } from './store.js';
export { MVCC_DEFAULTS, REQUEST_BYTES_MAX_DEFAULT, validateMvccConfig, type MvccConfig } from './config.js';
export { MvccError, MVCC_ERROR_MESSAGES, type MvccErrorCode } from './errors.js';
export * from './types.js';
