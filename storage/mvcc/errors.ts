// Typed errors of the MVCC store. Operating conditions and bad requests are MvccErrors with stable codes; the
// messages are etcd's own, word for word, so node/api can hand them to etcd clients unchanged. Broken invariants
// are asserts (raft/errors.ts), never MvccErrors.

export type MvccErrorCode =
  | 'COMPACTED'
  | 'FUTURE_REVISION'
  | 'TOO_MANY_OPS'
  | 'KEY_NOT_FOUND'
  | 'DUPLICATE_KEY'
  | 'EMPTY_KEY'
  | 'VALUE_PROVIDED'
  | 'LEASE_PROVIDED'
  | 'REQUEST_TOO_LARGE'
  | 'RESPONSE_TOO_LARGE'
  | 'LEASE_NOT_FOUND'
  | 'INVALID_ARGUMENT';

export class MvccError extends Error {
  constructor(
    readonly code: MvccErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'MvccError';
  }
}

export const MVCC_ERROR_MESSAGES = {
  COMPACTED: 'etcdserver: mvcc: required revision has been compacted',
  FUTURE_REVISION: 'etcdserver: mvcc: required revision is a future revision',
  TOO_MANY_OPS: 'etcdserver: too many operations in txn request',
  KEY_NOT_FOUND: 'etcdserver: key not found',
  DUPLICATE_KEY: 'etcdserver: duplicate key given in txn request',
  EMPTY_KEY: 'etcdserver: key is not provided',
  VALUE_PROVIDED: 'etcdserver: value is provided',
  LEASE_PROVIDED: 'etcdserver: lease is provided',
  LEASE_NOT_FOUND: 'etcdserver: requested lease not found',
  REQUEST_TOO_LARGE: 'etcdserver: request is too large',
  // etcd has no such check: its grpc server refuses to send the built response ("grpc: trying to send message
  // larger than max"). Fulcrum stops the read before building it; node/api names the limit in the message.
  RESPONSE_TOO_LARGE: 'fulcrum: response is too large',
} as const satisfies Partial<Record<MvccErrorCode, string>>;

type FixedMessageCode = keyof typeof MVCC_ERROR_MESSAGES;

/** An error whose message is etcd's fixed wording for the code. */
export function mvccError(code: FixedMessageCode): MvccError {
  return new MvccError(code, MVCC_ERROR_MESSAGES[code]);
}

export function invalidArgument(why: string): MvccError {
  return new MvccError('INVALID_ARGUMENT', `etcdserver: ${why}`);
}
