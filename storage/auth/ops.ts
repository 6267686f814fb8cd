// The auth commands the Raft log carries. Passwords never travel: the proposing member computes a salted scrypt
// hash (storage/auth/password.ts) before proposing, so apply is a deterministic record update on every member.
import type { Permission } from './permissions.js';

export type AuthOp =
  | { readonly authEnable: Readonly<Record<string, never>> }
  | { readonly authDisable: Readonly<Record<string, never>> }
  | { readonly userAdd: { readonly name: string; readonly passwordHash?: string; readonly noPassword: boolean } }
  | { readonly userDelete: { readonly name: string } }
  | { readonly userChangePassword: { readonly name: string; readonly passwordHash: string } }
  | { readonly userGrantRole: { readonly user: string; readonly role: string } }
  | { readonly userRevokeRole: { readonly name: string; readonly role: string } }
  | { readonly roleAdd: { readonly name: string } }
  | { readonly roleDelete: { readonly role: string } }
  | { readonly roleGrantPermission: { readonly name: string; readonly perm: Permission } }
  | { readonly roleRevokePermission: { readonly role: string; readonly key: Uint8Array; readonly rangeEnd: Uint8Array } }
  /**
   * A simple token for a user whose password the proposer checked at auth revision `revision`. The token is
   * `${nonce}.${log index}` (etcd's form); every member learns it from the applied result, so any member accepts it.
   */
  | { readonly authenticate: { readonly name: string; readonly nonce: string; readonly revision: number } };

/** Who asked for a command and at which auth revision the API checked it (etcd's request header username/revision). */
export interface CommandAuth {
  /** Empty when auth was disabled at the check (the command is refused if auth is enabled by apply time). */
  readonly user: string;
  readonly revision: number;
}

const AUTH_OP_KINDS = new Set([
  'authEnable',
  'authDisable',
  'userAdd',
  'userDelete',
  'userChangePassword',
  'userGrantRole',
  'userRevokeRole',
  'roleAdd',
  'roleDelete',
  'roleGrantPermission',
  'roleRevokePermission',
  'authenticate',
]);

export function isAuthOp(op: object): op is AuthOp {
  return AUTH_OP_KINDS.has(Object.keys(op)[0] ?? '');
}
