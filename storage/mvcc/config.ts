// The MVCC store's one config object: defaults, then validateMvccConfig() returns a frozen copy.

/** etcd's default request size limit (--max-request-bytes): 1.5 MiB. */
export const REQUEST_BYTES_MAX_DEFAULT = 1.5 * 1024 * 1024;

export interface MvccConfig {
  /** Operations in one txn branch or compare list (etcd's --max-txn-ops). */
  readonly txnOpsMax: number;
  /** Bytes of one key. */
  readonly keyBytesMax: number;
  /** Bytes of one value. A request carries at most this much; etcd bounds the whole request by 1.5 MiB. */
  readonly valueBytesMax: number;
  /** Revisions examined per compactionStep (the physical deletion runs in chunks so the store keeps serving). */
  readonly compactionChunkRevisions: number;
  /** Backend reads in flight for one range or txn. */
  readonly readParallelismMax: number;
  /** Events per batch handed out by the history iterator (watches that start in the past). */
  readonly eventBatchMax: number;
  /**
   * Whether write results carry each event's previous key-value. Producing it may cost a backend read per
   * overwritten or deleted key, so a state machine without prev_kv watchers can turn it off.
   */
  readonly prevKvInEvents: boolean;
  /** Bytes of recently read rows kept in memory (see row-cache.ts); 0 turns the cache off. */
  readonly rowCacheBytes: number;
}

export const MVCC_DEFAULTS: MvccConfig = {
  txnOpsMax: 128,
  keyBytesMax: REQUEST_BYTES_MAX_DEFAULT,
  valueBytesMax: REQUEST_BYTES_MAX_DEFAULT,
  compactionChunkRevisions: 1000,
  readParallelismMax: 64,
  eventBatchMax: 1000,
  prevKvInEvents: true,
  rowCacheBytes: 16 * 1024 * 1024,
};

export function validateMvccConfig(input: Partial<MvccConfig> = {}): MvccConfig {
  const c: MvccConfig = { ...MVCC_DEFAULTS, ...input };
  const positive = (name: keyof MvccConfig): void => {
    const v = c[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new RangeError(`mvcc config: ${name} must be a positive integer, got ${String(v)}`);
    }
  };
  positive('txnOpsMax');
  positive('keyBytesMax');
  positive('valueBytesMax');
  positive('compactionChunkRevisions');
  positive('readParallelismMax');
  positive('eventBatchMax');
  if (!Number.isSafeInteger(c.rowCacheBytes) || c.rowCacheBytes < 0) throw new RangeError(`mvcc config: rowCacheBytes must be a non-negative integer, got ${String(c.rowCacheBytes)}`);
  return Object.freeze(c);
}
