// Typed errors of the lease table and the expiry tracker. Codes are stable; messages are etcd's where etcd has the
// error, so node/api can pass them through and etcd clients recognise them.

export type LeaseErrorCode = 'LEASE_NOT_FOUND' | 'LEASE_EXISTS' | 'LEASE_TTL_TOO_LARGE' | 'TOO_MANY_LEASES' | 'INVALID_LEASE';

export class LeaseError extends Error {
  constructor(
    readonly code: LeaseErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'LeaseError';
  }
}

export const errLeaseNotFound = (): LeaseError => new LeaseError('LEASE_NOT_FOUND', 'etcdserver: requested lease not found');
export const errLeaseExists = (): LeaseError => new LeaseError('LEASE_EXISTS', 'etcdserver: lease already exists');
export const errLeaseTtlTooLarge = (): LeaseError => new LeaseError('LEASE_TTL_TOO_LARGE', 'etcdserver: too large lease TTL');
export const errTooManyLeases = (limit: number): LeaseError =>
  new LeaseError('TOO_MANY_LEASES', `fulcrum: too many leases: the limit is ${limit}`);
export const errInvalidLease = (detail: string): LeaseError => new LeaseError('INVALID_LEASE', `fulcrum: invalid lease request: ${detail}`);
