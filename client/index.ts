// The public surface of `fulcrum/client`: the Client, its leases and watches, the transaction builder, the
// errors, and the value types. Anything not exported here may change without notice.
export { Client, type MemberStatus } from './client.js';
export { CLIENT_DEFAULTS, type ClientOptions, type TlsOptions } from './options.js';
export type { CallKind, CallOptions } from './rpc.js';
export type { DeleteOptions, DeleteResult, IterateOptions, PutOptions, PutResult, RangeOptions, RangeResult, ReadOptions, SortTarget } from './kv.js';
export { Compare, Op, TxnBuilder, type CompareOp, type CompareSpec, type CompareTarget, type OpResult, type OpSpec, type TxnResult, type TxnSpec } from './txn.js';
export { Lease, type GrantOptions, type LeaseTimeToLive } from './lease.js';
export { Watch, type WatchEvent, type WatchOptions } from './watch.js';
export { KeyValue, hlcLogical, hlcToDate, hlcWallMs, type Header, type Hlc, type KeyRange, type LeaseRef } from './types.js';
export type { Bytes } from './bytes.js';
export type { Services } from './pool.js';
export type { AuthApi, AuthOptions, AuthStatus, Permission, PermissionKind, PermissionTarget } from './auth.js';
export {
  AbortedError,
  AuthManagementError,
  AuthenticationError,
  ClientClosedError,
  CompactedError,
  DeadlineExceededError,
  FulcrumClientError,
  InvalidArgumentError,
  LeaseLostError,
  LeaseNotFoundError,
  NotSupportedError,
  OutcomeUnknownError,
  PermissionDeniedError,
  UnavailableError,
  WatchCanceledError,
  type ErrorCode,
} from './errors.js';
// Coordination recipes (docs/recipes.md) and the service registry (docs/registry.md).
export * from './recipes/index.js';
export * from './registry/index.js';
