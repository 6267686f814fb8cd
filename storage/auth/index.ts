// Public surface of authentication and authorization state: the replicated auth store, the permission logic, the
// apply-time check, password hashing and the auth commands.
export { AUTH_ERRORS, AuthError, type AuthErrorCode } from './errors.js';
export { isAuthOp, type AuthOp, type CommandAuth } from './ops.js';
export { hashPassword, PASSWORD_BYTES_MAX, PasswordBusyError, SCRYPT_COST, SCRYPT_IN_FLIGHT_MAX, SCRYPT_QUEUE_MAX, verifyPassword } from './password.js';
export {
  allows,
  covers,
  emptyNeeds,
  grants,
  intervalOf,
  needRead,
  needWrite,
  txnNeeds,
  type AccessNeeds,
  type KeyInterval,
  type Permission,
  type PermissionType,
} from './permissions.js';
export { authorizeCommand, commandNeeds, type LeaseKeys } from './authorize.js';
export {
  AUTH_NAME_BYTES_MAX,
  AUTH_PREFIX,
  AUTH_ROLES_MAX,
  AUTH_USERS_MAX,
  AuthStore,
  PERMISSION_KEY_BYTES_MAX,
  ROLE_PERMISSIONS_MAX,
  ROOT,
  type RoleRecord,
  type UserRecord,
} from './store.js';
