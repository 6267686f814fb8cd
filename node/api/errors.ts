// The ONE place where Fulcrum's typed errors become gRPC statuses, with etcd's exact codes and messages, so that
// etcd clients (which match on them) behave as they do against etcd. Layers below throw typed errors with stable
// codes; nothing else in the server builds a status by hand.
import { Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';

interface Mapping {
  readonly status: Status;
  /** etcd's message; when undefined the error's own message is used (it is already etcd's). */
  readonly message?: string;
}

/** Stable error code -> gRPC status (and etcd's message where the code alone decides it). */
const BY_CODE: Readonly<Record<string, Mapping>> = {
  // mvcc / requests
  EMPTY_KEY: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: key is not provided' },
  KEY_NOT_FOUND: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: key not found' },
  VALUE_PROVIDED: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: value is provided' },
  LEASE_PROVIDED: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: lease is provided' },
  TOO_MANY_OPS: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: too many operations in txn request' },
  DUPLICATE_KEY: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: duplicate key given in txn request' },
  INVALID_ARGUMENT: { status: Status.INVALID_ARGUMENT },
  INVALID_SORT: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: invalid sort option' },
  COMPACTED: { status: Status.OUT_OF_RANGE, message: 'etcdserver: mvcc: required revision has been compacted' },
  FUTURE_REVISION: { status: Status.OUT_OF_RANGE, message: 'etcdserver: mvcc: required revision is a future revision' },
  REQUEST_TOO_LARGE: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: request is too large' },
  // etcd's grpc server says "grpc: trying to send message larger than max" here; the thrower names the limit.
  RESPONSE_TOO_LARGE: { status: Status.RESOURCE_EXHAUSTED },
  TOO_MANY_REQUESTS: { status: Status.RESOURCE_EXHAUSTED, message: 'etcdserver: too many requests' },
  NO_SPACE: { status: Status.RESOURCE_EXHAUSTED, message: 'etcdserver: mvcc: database space exceeded' },
  CORRUPT: { status: Status.DATA_LOSS, message: 'etcdserver: corrupt cluster' },
  // leases
  LEASE_NOT_FOUND: { status: Status.NOT_FOUND, message: 'etcdserver: requested lease not found' },
  LEASE_EXISTS: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: lease already exists' },
  LEASE_TTL_TOO_LARGE: { status: Status.OUT_OF_RANGE, message: 'etcdserver: too large lease TTL' },
  TOO_MANY_LEASES: { status: Status.RESOURCE_EXHAUSTED },
  INVALID_LEASE: { status: Status.INVALID_ARGUMENT },
  // exactly-once
  STALE_SEQUENCE: { status: Status.FAILED_PRECONDITION },
  INVALID_DEDUP_REQUEST: { status: Status.INVALID_ARGUMENT },
  INVALID_COMMAND: { status: Status.INVALID_ARGUMENT },
  // cluster
  MEMBER_EXISTS: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: member ID already exist' },
  PEER_URL_EXISTS: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: Peer URLs already exists' },
  MEMBER_NOT_FOUND: { status: Status.NOT_FOUND, message: 'etcdserver: member not found' },
  MEMBER_BAD_URLS: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: given member URLs are invalid' },
  NOT_LEARNER: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: can only promote a learner member' },
  LEARNER_NOT_READY: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: can only promote a learner member which is in sync with leader' },
  NOT_ENOUGH_STARTED: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: re-configuration failed due to not enough started members' },
  BAD_LEADER_TRANSFEREE: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: bad leader transferee' },
  NOT_LEADER: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: not leader' },
  NOT_SUPPORTED_FOR_LEARNER: { status: Status.UNAVAILABLE, message: 'etcdserver: rpc not supported for learner' },
  // availability
  NO_LEADER: { status: Status.UNAVAILABLE, message: 'etcdserver: no leader' },
  LEADER_CHANGED: { status: Status.UNAVAILABLE, message: 'etcdserver: leader changed' },
  TIMEOUT: { status: Status.UNAVAILABLE, message: 'etcdserver: request timed out' },
  TIMEOUT_DUE_TO_LEADER_FAIL: { status: Status.UNAVAILABLE, message: 'etcdserver: request timed out, possibly due to previous leader failure' },
  LEADER_TRANSFER_TIMEOUT: { status: Status.UNAVAILABLE, message: 'etcdserver: request timed out, leader transfer took too long' },
  BEFORE_HISTORY: { status: Status.FAILED_PRECONDITION },
  STOPPED: { status: Status.UNAVAILABLE, message: 'etcdserver: server stopped' },
  UNHEALTHY: { status: Status.UNAVAILABLE, message: 'etcdserver: unhealthy cluster' },
  // auth (etcd's rpctypes; storage/auth/errors.ts holds the same messages for errors raised at apply)
  ROOT_USER_NOT_EXIST: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: root user does not exist' },
  ROOT_ROLE_NOT_EXIST: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: root user does not have root role' },
  USER_EXISTS: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: user name already exists' },
  USER_EMPTY: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: user name is empty' },
  USER_NOT_FOUND: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: user name not found' },
  ROLE_EXISTS: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: role name already exists' },
  ROLE_NOT_FOUND: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: role name not found' },
  ROLE_EMPTY: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: role name is empty' },
  AUTH_FAILED: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: authentication failed, invalid user ID or password' },
  PERMISSION_NOT_GIVEN: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: permission not given' },
  PERMISSION_DENIED: { status: Status.PERMISSION_DENIED, message: 'etcdserver: permission denied' },
  ROLE_NOT_GRANTED: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: role is not granted to the user' },
  PERMISSION_NOT_GRANTED: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: permission is not granted to the role' },
  AUTH_NOT_ENABLED: { status: Status.FAILED_PRECONDITION, message: 'etcdserver: authentication is not enabled' },
  INVALID_AUTH_TOKEN: { status: Status.UNAUTHENTICATED, message: 'etcdserver: invalid auth token' },
  INVALID_AUTH_MGMT: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: invalid auth management' },
  AUTH_OLD_REVISION: { status: Status.INVALID_ARGUMENT, message: 'etcdserver: revision of auth store is old' },
  AUTH_LIMIT: { status: Status.RESOURCE_EXHAUSTED },
  // etcd 3.4's Maintenance admin checks (Snapshot, Defragment, Hash, HashKV) return the auth package's own errors,
  // which reach clients as UNKNOWN with these messages.
  ADMIN_PERMISSION_DENIED: { status: Status.UNKNOWN, message: 'auth: permission denied' },
  ADMIN_USER_EMPTY: { status: Status.UNKNOWN, message: 'auth: user name is empty' },
  NOT_IMPLEMENTED: { status: Status.UNIMPLEMENTED },
  // v3election: etcd returns these as plain Go errors, which reach clients as UNKNOWN with the message
  ELECTION_NOT_LEADER: { status: Status.UNKNOWN, message: 'election: not leader' },
  ELECTION_NO_LEADER: { status: Status.UNKNOWN, message: 'election: no leader' },
  ELECTION_MISSING_LEADER_KEY: { status: Status.UNKNOWN, message: '"leader" field must be provided' },
};

/** An error with a stable code, as every Fulcrum layer throws (MvccError, LeaseError, MemberError, LoopError...). */
export interface CodedError {
  readonly code: string;
  readonly message: string;
}

export function isCodedError(e: unknown): e is CodedError {
  return typeof e === 'object' && e !== null && typeof (e as CodedError).code === 'string' && typeof (e as CodedError).message === 'string';
}

/** A proposal the core dropped says why; etcd clients know these reasons by etcd's messages. */
function droppedCode(message: string): string {
  if (message.includes('no leader')) return 'NO_LEADER';
  if (message.includes('leadership transfer')) return 'LEADER_CHANGED';
  if (message.includes('uncommitted log size')) return 'TOO_MANY_REQUESTS';
  return 'TIMEOUT';
}

/** Map any error to a grpc-js ServiceError. Unknown errors become INTERNAL without leaking internals. */
export function toServiceError(e: unknown): ServiceError {
  if (isServiceError(e)) return e;
  let code = isCodedError(e) ? e.code : 'INTERNAL';
  if (code === 'PROPOSAL_DROPPED') code = droppedCode((e as CodedError).message);
  const mapping = BY_CODE[code];
  if (mapping === undefined) {
    return serviceError(Status.INTERNAL, `fulcrum: internal error${isCodedError(e) ? ` (${e.code})` : ''}`);
  }
  return serviceError(mapping.status, mapping.message ?? (e as CodedError).message);
}

/** A typed error by code, for the API layer's own checks (bad arguments and the like). */
export function apiError(code: keyof typeof BY_CODE, message?: string): CodedError & Error {
  const mapping = BY_CODE[code]!;
  const err = new Error(message ?? mapping.message ?? code) as Error & { code: string };
  err.code = code;
  return err;
}

/**
 * End a server stream with an error's status. Not `call.destroy(err)`: grpc-js then never sends a status (the
 * destroyed stream skips the `_final` that sends it), and the client waits forever on a stream the member has
 * given up on. An 'error' event is what grpc-js turns into the status, after the responses already written.
 */
export function endStreamWithError(call: { emit(event: 'error', err: ServiceError): boolean }, e: unknown): void {
  call.emit('error', toServiceError(e));
}

export function serviceError(status: Status, message: string): ServiceError {
  const err = new Error(message) as ServiceError;
  err.code = status;
  err.details = message;
  err.metadata = new Metadata();
  return err;
}

function isServiceError(e: unknown): e is ServiceError {
  return e instanceof Error && typeof (e as ServiceError).code === 'number' && (e as ServiceError).metadata instanceof Metadata;
}
