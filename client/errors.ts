// The client's errors: one class per kind a caller acts on, each with a stable `code` (never match messages)
// and `retryable` (true when trying the same call again later may succeed and cannot do harm).
//
// The server speaks etcd's statuses and messages (node/api/errors.ts is its table). `fromServiceError` turns
// them back into codes here, in one place: by etcd's exact message first (etcd's own clients do the same, as
// several conditions share one gRPC status), then by status.
import { status as Status, type ServiceError } from '@grpc/grpc-js';

export type ErrorCode =
  // arguments and the store
  | 'INVALID_ARGUMENT'
  | 'REQUEST_TOO_LARGE'
  | 'KEY_NOT_FOUND'
  | 'DUPLICATE_KEY'
  | 'TOO_MANY_OPS'
  | 'COMPACTED'
  | 'FUTURE_REVISION'
  | 'BEFORE_HISTORY'
  | 'NO_SPACE'
  | 'CORRUPT'
  // leases
  | 'LEASE_NOT_FOUND'
  | 'LEASE_EXISTS'
  | 'LEASE_TTL_TOO_LARGE'
  | 'LEASE_LOST'
  // cluster
  | 'NOT_LEADER'
  | 'MEMBER_NOT_FOUND'
  | 'FAILED_PRECONDITION'
  // availability: the request was not applied (or is a read); trying again may work
  | 'NO_LEADER'
  | 'LEADER_CHANGED'
  | 'TIMEOUT'
  | 'TOO_MANY_REQUESTS'
  | 'UNAVAILABLE'
  | 'DEADLINE_EXCEEDED'
  // exactly-once
  | 'OUTCOME_UNKNOWN'
  | 'STALE_SEQUENCE'
  // the caller and the client
  | 'ABORTED'
  | 'CLIENT_CLOSED'
  | 'WATCH_CANCELED'
  | 'PERMISSION_DENIED'
  | 'UNAUTHENTICATED'
  // authentication and its management (etcd's Auth API)
  | 'AUTH_FAILED'
  | 'AUTH_NOT_ENABLED'
  | 'AUTH_OLD_REVISION'
  | 'INVALID_AUTH_MANAGEMENT'
  | 'ROOT_USER_MISSING'
  | 'ROOT_ROLE_MISSING'
  | 'USER_EXISTS'
  | 'USER_NOT_FOUND'
  | 'ROLE_EXISTS'
  | 'ROLE_NOT_FOUND'
  | 'ROLE_NOT_GRANTED'
  | 'PERMISSION_NOT_GRANTED'
  | 'NOT_SUPPORTED'
  | 'INTERNAL';

export interface ErrorDetails {
  /** The gRPC status the server answered with, when the error came from a server. */
  readonly grpcCode?: number;
  /** The endpoint that answered, when known. */
  readonly endpoint?: string;
  readonly cause?: unknown;
}

/** Every error the client raises is one of these (or a subclass), with a stable `code`. */
export class FulcrumClientError extends Error {
  readonly grpcCode: number | undefined;
  readonly endpoint: string | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryable: boolean,
    details: ErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'FulcrumClientError';
    this.grpcCode = details.grpcCode;
    this.endpoint = details.endpoint;
  }
}

export class InvalidArgumentError extends FulcrumClientError {
  constructor(message: string, details?: ErrorDetails, code: ErrorCode = 'INVALID_ARGUMENT') {
    super(code, message, false, details);
    this.name = 'InvalidArgumentError';
  }
}

/** A read at a revision below the compaction point, or a watch that started there. */
export class CompactedError extends FulcrumClientError {
  constructor(
    message: string,
    /** The compaction revision when the server said it (watches do); 0 when unknown. */
    readonly compactRevision = 0,
    details?: ErrorDetails,
  ) {
    super('COMPACTED', message, false, details);
    this.name = 'CompactedError';
  }
}

/** No healthy member answered in time: nothing was applied (reads) or the write was never sent. */
export class UnavailableError extends FulcrumClientError {
  constructor(message: string, details?: ErrorDetails, code: ErrorCode = 'UNAVAILABLE') {
    super(code, message, true, details);
    this.name = 'UnavailableError';
  }
}

/** The call's deadline passed. For a write that may have been sent, OutcomeUnknownError is raised instead. */
export class DeadlineExceededError extends FulcrumClientError {
  constructor(message: string, details?: ErrorDetails) {
    super('DEADLINE_EXCEEDED', message, true, details);
    this.name = 'DeadlineExceededError';
  }
}

/**
 * A write that may or may not have been applied: it reached (or may have reached) a member, and no answer came
 * back that says which. Never raised for a write the client could retry safely until it knew. Read the state
 * to find out, or retry with a compare that makes the write conditional.
 */
export class OutcomeUnknownError extends FulcrumClientError {
  constructor(message: string, details?: ErrorDetails) {
    super('OUTCOME_UNKNOWN', message, false, details);
    this.name = 'OutcomeUnknownError';
  }
}

/** The caller's AbortSignal fired before the call was sent, or while it could still be dropped safely. */
export class AbortedError extends FulcrumClientError {
  constructor(message = 'fulcrum client: the operation was aborted', details?: ErrorDetails) {
    super('ABORTED', message, false, details);
    this.name = 'AbortedError';
  }
}

export class ClientClosedError extends FulcrumClientError {
  constructor(message = 'fulcrum client: the client is closed') {
    super('CLIENT_CLOSED', message, false);
    this.name = 'ClientClosedError';
  }
}

export class LeaseNotFoundError extends FulcrumClientError {
  constructor(message = 'etcdserver: requested lease not found', details?: ErrorDetails) {
    super('LEASE_NOT_FOUND', message, false, details);
    this.name = 'LeaseNotFoundError';
  }
}

/** A lease the client kept alive is gone, or its safe deadline passed before a keep-alive was acknowledged. */
export class LeaseLostError extends FulcrumClientError {
  constructor(
    message: string,
    readonly leaseId: bigint,
    /** 'expired': the server said the lease is gone; 'deadline': no acknowledged keep-alive in time; 'revoked' */
    readonly reason: 'expired' | 'deadline' | 'revoked' | 'closed',
  ) {
    super('LEASE_LOST', message, false);
    this.name = 'LeaseLostError';
  }
}

export class WatchCanceledError extends FulcrumClientError {
  constructor(message: string, details?: ErrorDetails) {
    super('WATCH_CANCELED', message, false, details);
    this.name = 'WatchCanceledError';
  }
}

/** The user may not do this (etcd's "permission denied"): a missing role or permission, not a bad token. */
export class PermissionDeniedError extends FulcrumClientError {
  constructor(message = 'etcdserver: permission denied', details?: ErrorDetails) {
    super('PERMISSION_DENIED', message, false, details);
    this.name = 'PermissionDeniedError';
  }
}

/**
 * The credentials were refused: a wrong user name or password (AUTH_FAILED), or a token the server does not
 * know even after the client authenticated again (UNAUTHENTICATED). Never carries the password.
 */
export class AuthenticationError extends FulcrumClientError {
  constructor(message: string, details?: ErrorDetails, code: 'AUTH_FAILED' | 'UNAUTHENTICATED' = 'AUTH_FAILED') {
    super(code, message, false, details);
    this.name = 'AuthenticationError';
  }
}

/** A user, role or permission management call that cannot be done (no such user, role already exists, ...). */
export class AuthManagementError extends FulcrumClientError {
  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(code, message, false, details);
    this.name = 'AuthManagementError';
  }
}

export class NotSupportedError extends FulcrumClientError {
  constructor(message: string, details?: ErrorDetails) {
    super('NOT_SUPPORTED', message, false, details);
    this.name = 'NotSupportedError';
  }
}

// ---------------------------------------------------------------------------------------------------------
// From the wire
// ---------------------------------------------------------------------------------------------------------

interface Known {
  readonly code: ErrorCode;
  readonly retryable: boolean;
}

/** etcd's exact messages (and Fulcrum's, which are the same by design: node/api/errors.ts). */
const BY_MESSAGE: ReadonlyMap<string, Known> = new Map<string, Known>([
  ['etcdserver: key is not provided', { code: 'INVALID_ARGUMENT', retryable: false }],
  ['etcdserver: key not found', { code: 'KEY_NOT_FOUND', retryable: false }],
  ['etcdserver: value is provided', { code: 'INVALID_ARGUMENT', retryable: false }],
  ['etcdserver: lease is provided', { code: 'INVALID_ARGUMENT', retryable: false }],
  ['etcdserver: too many operations in txn request', { code: 'TOO_MANY_OPS', retryable: false }],
  ['etcdserver: duplicate key given in txn request', { code: 'DUPLICATE_KEY', retryable: false }],
  ['etcdserver: invalid sort option', { code: 'INVALID_ARGUMENT', retryable: false }],
  ['etcdserver: request is too large', { code: 'REQUEST_TOO_LARGE', retryable: false }],
  ['etcdserver: mvcc: required revision has been compacted', { code: 'COMPACTED', retryable: false }],
  ['etcdserver: mvcc: required revision is a future revision', { code: 'FUTURE_REVISION', retryable: false }],
  ['etcdserver: mvcc: database space exceeded', { code: 'NO_SPACE', retryable: false }],
  ['etcdserver: corrupt cluster', { code: 'CORRUPT', retryable: false }],
  ['etcdserver: too many requests', { code: 'TOO_MANY_REQUESTS', retryable: true }],
  ['etcdserver: requested lease not found', { code: 'LEASE_NOT_FOUND', retryable: false }],
  ['etcdserver: lease already exists', { code: 'LEASE_EXISTS', retryable: false }],
  ['etcdserver: too large lease TTL', { code: 'LEASE_TTL_TOO_LARGE', retryable: false }],
  ['etcdserver: member not found', { code: 'MEMBER_NOT_FOUND', retryable: false }],
  ['etcdserver: not leader', { code: 'NOT_LEADER', retryable: false }],
  ['etcdserver: no leader', { code: 'NO_LEADER', retryable: true }],
  ['etcdserver: leader changed', { code: 'LEADER_CHANGED', retryable: true }],
  ['etcdserver: request timed out', { code: 'TIMEOUT', retryable: true }],
  ['etcdserver: request timed out, possibly due to previous leader failure', { code: 'TIMEOUT', retryable: true }],
  ['etcdserver: request timed out, possibly due to connection lost', { code: 'TIMEOUT', retryable: true }],
  ['etcdserver: request timed out, leader transfer took too long', { code: 'TIMEOUT', retryable: true }],
  ['etcdserver: server stopped', { code: 'UNAVAILABLE', retryable: true }],
  ['etcdserver: unhealthy cluster', { code: 'UNAVAILABLE', retryable: true }],
  ['etcdserver: rpc not supported for learner', { code: 'UNAVAILABLE', retryable: true }],
  ['etcdserver: permission denied', { code: 'PERMISSION_DENIED', retryable: false }],
  ['etcdserver: invalid auth token', { code: 'UNAUTHENTICATED', retryable: false }],
  ['etcdserver: authentication failed, invalid user ID or password', { code: 'AUTH_FAILED', retryable: false }],
  ['etcdserver: authentication is not enabled', { code: 'AUTH_NOT_ENABLED', retryable: false }],
  // The auth store changed between the permission check and the apply: nothing was applied, try again.
  ['etcdserver: revision of auth store is old', { code: 'AUTH_OLD_REVISION', retryable: true }],
  ['etcdserver: invalid auth management', { code: 'INVALID_AUTH_MANAGEMENT', retryable: false }],
  ['etcdserver: root user does not exist', { code: 'ROOT_USER_MISSING', retryable: false }],
  ['etcdserver: root user does not have root role', { code: 'ROOT_ROLE_MISSING', retryable: false }],
  ['etcdserver: user name already exists', { code: 'USER_EXISTS', retryable: false }],
  ['etcdserver: user name not found', { code: 'USER_NOT_FOUND', retryable: false }],
  ['etcdserver: user name is empty', { code: 'INVALID_ARGUMENT', retryable: false }],
  ['etcdserver: role name already exists', { code: 'ROLE_EXISTS', retryable: false }],
  ['etcdserver: role name not found', { code: 'ROLE_NOT_FOUND', retryable: false }],
  ['etcdserver: role name is empty', { code: 'INVALID_ARGUMENT', retryable: false }],
  ['etcdserver: role is not granted to the user', { code: 'ROLE_NOT_GRANTED', retryable: false }],
  ['etcdserver: permission is not granted to the role', { code: 'PERMISSION_NOT_GRANTED', retryable: false }],
  ['etcdserver: permission not given', { code: 'INVALID_ARGUMENT', retryable: false }],
  ['fulcrum: wall time is before the first recorded revision', { code: 'BEFORE_HISTORY', retryable: false }],
]);

const BY_STATUS: ReadonlyMap<number, Known> = new Map<number, Known>([
  [Status.INVALID_ARGUMENT, { code: 'INVALID_ARGUMENT', retryable: false }],
  [Status.OUT_OF_RANGE, { code: 'INVALID_ARGUMENT', retryable: false }],
  [Status.NOT_FOUND, { code: 'INVALID_ARGUMENT', retryable: false }],
  [Status.FAILED_PRECONDITION, { code: 'FAILED_PRECONDITION', retryable: false }],
  [Status.ALREADY_EXISTS, { code: 'FAILED_PRECONDITION', retryable: false }],
  [Status.PERMISSION_DENIED, { code: 'PERMISSION_DENIED', retryable: false }],
  [Status.UNAUTHENTICATED, { code: 'UNAUTHENTICATED', retryable: false }],
  [Status.RESOURCE_EXHAUSTED, { code: 'TOO_MANY_REQUESTS', retryable: true }],
  [Status.UNAVAILABLE, { code: 'UNAVAILABLE', retryable: true }],
  [Status.DEADLINE_EXCEEDED, { code: 'DEADLINE_EXCEEDED', retryable: true }],
  [Status.UNIMPLEMENTED, { code: 'NOT_SUPPORTED', retryable: false }],
  [Status.DATA_LOSS, { code: 'CORRUPT', retryable: false }],
]);

/** Fulcrum's STALE_SEQUENCE names the client and sequence numbers, so only its shape is fixed (storage/dedup/errors.ts). */
const STALE_SEQUENCE_PATTERN = /^fulcrum: request \d+ of client ".*" is older than its last applied request \d+$/;

export function isServiceError(e: unknown): e is ServiceError {
  return e instanceof Error && typeof (e as ServiceError).code === 'number' && 'metadata' in e;
}

/** What a server's answer means to the client: a code, and whether it may be retried. */
export function classifyServiceError(e: ServiceError): Known {
  const message = e.details ?? e.message;
  const known = BY_MESSAGE.get(message);
  if (known !== undefined) return known;
  if (e.code === Status.FAILED_PRECONDITION && STALE_SEQUENCE_PATTERN.test(message)) return { code: 'STALE_SEQUENCE', retryable: false };
  return BY_STATUS.get(e.code) ?? { code: 'INTERNAL', retryable: false };
}

/** The typed error for a server's answer. */
export function fromServiceError(e: ServiceError, endpoint?: string): FulcrumClientError {
  const message = e.details || e.message;
  const { code, retryable } = classifyServiceError(e);
  const details: ErrorDetails = { grpcCode: e.code, cause: e, ...(endpoint === undefined ? {} : { endpoint }) };
  switch (code) {
    case 'COMPACTED':
      return new CompactedError(message, 0, details);
    case 'LEASE_NOT_FOUND':
      return new LeaseNotFoundError(message, details);
    case 'INVALID_ARGUMENT':
    case 'REQUEST_TOO_LARGE':
    case 'KEY_NOT_FOUND':
    case 'DUPLICATE_KEY':
    case 'TOO_MANY_OPS':
      return new InvalidArgumentError(message, details, code);
    case 'UNAVAILABLE':
    case 'NO_LEADER':
    case 'LEADER_CHANGED':
    case 'TIMEOUT':
    case 'TOO_MANY_REQUESTS':
      return new UnavailableError(message, details, code);
    case 'DEADLINE_EXCEEDED':
      return new DeadlineExceededError(message, details);
    case 'NOT_SUPPORTED':
      return new NotSupportedError(message, details);
    case 'PERMISSION_DENIED':
      return new PermissionDeniedError(message, details);
    case 'AUTH_FAILED':
    case 'UNAUTHENTICATED':
      return new AuthenticationError(message, details, code);
    case 'AUTH_NOT_ENABLED':
    case 'INVALID_AUTH_MANAGEMENT':
    case 'ROOT_USER_MISSING':
    case 'ROOT_ROLE_MISSING':
    case 'USER_EXISTS':
    case 'USER_NOT_FOUND':
    case 'ROLE_EXISTS':
    case 'ROLE_NOT_FOUND':
    case 'ROLE_NOT_GRANTED':
    case 'PERMISSION_NOT_GRANTED':
      return new AuthManagementError(code, message, details);
    default:
      return new FulcrumClientError(code, message, retryable, details);
  }
}
