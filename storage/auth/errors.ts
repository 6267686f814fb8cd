// Typed errors of the auth store. Codes are stable; messages are etcd's (rpctypes), so node/api passes them
// through with etcd's gRPC codes and etcd clients (etcdctl, the etcd3 npm client) recognise them.

export const AUTH_ERRORS = {
  ROOT_USER_NOT_EXIST: 'etcdserver: root user does not exist',
  ROOT_ROLE_NOT_EXIST: 'etcdserver: root user does not have root role',
  USER_EXISTS: 'etcdserver: user name already exists',
  USER_EMPTY: 'etcdserver: user name is empty',
  USER_NOT_FOUND: 'etcdserver: user name not found',
  ROLE_EXISTS: 'etcdserver: role name already exists',
  ROLE_NOT_FOUND: 'etcdserver: role name not found',
  ROLE_EMPTY: 'etcdserver: role name is empty',
  AUTH_FAILED: 'etcdserver: authentication failed, invalid user ID or password',
  PERMISSION_NOT_GIVEN: 'etcdserver: permission not given',
  PERMISSION_DENIED: 'etcdserver: permission denied',
  ROLE_NOT_GRANTED: 'etcdserver: role is not granted to the user',
  PERMISSION_NOT_GRANTED: 'etcdserver: permission is not granted to the role',
  AUTH_NOT_ENABLED: 'etcdserver: authentication is not enabled',
  INVALID_AUTH_TOKEN: 'etcdserver: invalid auth token',
  INVALID_AUTH_MGMT: 'etcdserver: invalid auth management',
  AUTH_OLD_REVISION: 'etcdserver: revision of auth store is old',
  /** Fulcrum's own: a named limit of the store (users, roles, permissions per role) was reached. */
  AUTH_LIMIT: 'fulcrum: auth store limit reached',
} as const;

export type AuthErrorCode = keyof typeof AUTH_ERRORS;

export class AuthError extends Error {
  constructor(
    readonly code: AuthErrorCode,
    message: string = AUTH_ERRORS[code],
  ) {
    super(message);
    this.name = 'AuthError';
  }
}
