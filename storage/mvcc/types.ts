// The etcd v3 data model and request shapes (etcdserverpb / mvccpb), with bytes as Uint8Array, revisions as
// numbers (safe integers) and lease ids as bigint (etcd's int64). Field names are the proto names in camelCase,
// so node/api maps messages field for field. Enum values are the proto enum names.

/**
 * mvccpb.KeyValue, plus Fulcrum's two HLCs (proto fields create_hlc/mod_hlc). The HLCs come from the Raft log
 * (the state machine's per-command HLC), so every member stores the same ones. 0 (NO_HLC) means unknown: a row
 * written before records carried HLCs (record format 1), or a write made without one (tests, benchmarks).
 *
 * The store always sets both. They are optional in the type because key-values also arrive from elsewhere
 * without them: responses the exactly-once table stored before records carried HLCs (a retry answers with those
 * bytes), and hand-built values in tests outside storage. Readers treat absent as NO_HLC.
 */
export interface KeyValue {
  readonly key: Uint8Array;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly value: Uint8Array;
  readonly lease: bigint;
  /** The HLC of the write that created this generation of the key (kept across updates, new after a delete). */
  readonly createHlc?: bigint;
  /** The HLC of the write that made this version (for a DELETE event's kv: of the delete). */
  readonly modHlc?: bigint;
}

export interface ResponseHeader {
  readonly revision: number;
}

export type SortOrder = 'NONE' | 'ASCEND' | 'DESCEND';
export type SortTarget = 'KEY' | 'VERSION' | 'CREATE' | 'MOD' | 'VALUE';

/**
 * A key or a range of keys, as etcd encodes it: rangeEnd absent or empty means the single key; rangeEnd [0]
 * means every key >= key; otherwise [key, rangeEnd). A prefix is rangeEnd = prefixEnd(key).
 */
export interface KeyRangeRequest {
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array | undefined;
}

export interface RangeRequest extends KeyRangeRequest {
  /** At most this many kvs (0: no limit). */
  readonly limit?: number;
  /** Read the store as of this revision (0: current). */
  readonly revision?: number;
  readonly sortOrder?: SortOrder;
  readonly sortTarget?: SortTarget;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
  readonly minModRevision?: number;
  readonly maxModRevision?: number;
  readonly minCreateRevision?: number;
  readonly maxCreateRevision?: number;
}

export interface RangeResponse {
  readonly header: ResponseHeader;
  readonly kvs: KeyValue[];
  readonly more: boolean;
  /** Keys in the range at the read revision, before filters and limit (as etcd counts). */
  readonly count: number;
}

export interface PutRequest {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly lease?: bigint;
  readonly prevKv?: boolean;
  readonly ignoreValue?: boolean;
  readonly ignoreLease?: boolean;
}

export interface PutResponse {
  readonly header: ResponseHeader;
  readonly prevKv?: KeyValue;
}

export interface DeleteRangeRequest extends KeyRangeRequest {
  readonly prevKv?: boolean;
}

export interface DeleteRangeResponse {
  readonly header: ResponseHeader;
  readonly deleted: number;
  readonly prevKvs: KeyValue[];
}

export type CompareTarget = 'VERSION' | 'CREATE' | 'MOD' | 'VALUE' | 'LEASE';
export type CompareResult = 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL';

/** etcdserverpb.Compare: the target's field holds the operand (the proto's target_union). */
export interface Compare extends KeyRangeRequest {
  readonly target: CompareTarget;
  readonly result: CompareResult;
  readonly version?: number;
  readonly createRevision?: number;
  readonly modRevision?: number;
  readonly value?: Uint8Array;
  readonly lease?: bigint;
}

export type RequestOp =
  | { readonly requestRange: RangeRequest }
  | { readonly requestPut: PutRequest }
  | { readonly requestDeleteRange: DeleteRangeRequest }
  | { readonly requestTxn: TxnRequest };

export type ResponseOp =
  | { readonly responseRange: RangeResponse }
  | { readonly responsePut: PutResponse }
  | { readonly responseDeleteRange: DeleteRangeResponse }
  | { readonly responseTxn: TxnResponse };

export interface TxnRequest {
  readonly compare?: readonly Compare[];
  readonly success?: readonly RequestOp[];
  readonly failure?: readonly RequestOp[];
}

export interface TxnResponse {
  readonly header: ResponseHeader;
  readonly succeeded: boolean;
  readonly responses: ResponseOp[];
}

/** mvccpb.Event. A DELETE's kv carries the key and the deleting revision as modRevision (as etcd's watch does). */
export interface MvccEvent {
  readonly type: 'PUT' | 'DELETE';
  readonly kv: KeyValue;
  readonly prevKv?: KeyValue;
}

/** What every write hands back: the response, the events to notify watchers of, and the store's revision after. */
export interface WriteResult<R> {
  readonly response: R;
  readonly events: MvccEvent[];
  /** The store's current revision after the write (unchanged when nothing was written). */
  readonly revision: number;
}

export interface HashKVResult {
  /** CRC-32C over the key-value rows live at the revision. */
  readonly hash: number;
  readonly compactRevision: number;
  /** The revision hashed. */
  readonly hashRevision: number;
  /** The store's current revision when hashed (the response header). */
  readonly revision: number;
}

export const NO_LEASE = 0n;
/** An unknown HLC (see KeyValue). */
export const NO_HLC = 0n;
