// The replicated auth store: whether auth is enabled, users (name, password hash, roles), roles (key
// permissions) and the auth revision, which moves on every change. It is applied from the Raft log like the MVCC
// store and writes into the same backend batch (under AUTH_PREFIX), so a snapshot image carries it and a restored
// member reloads it with open(). Nothing here reads a clock or draws a random number.
//
// Durable form:  auth/enabled -> 0|1   auth/revision -> value   auth/u/<name> -> user   auth/r/<name> -> role
import { assert } from '../../raft/errors.js';
import type { Backend, KvBatch } from '../backend.js';
import { decodeValue, encodeValue, type Value } from '../command.js';
import { fromUtf8, readPrefix, startsWith, utf8 } from '../hlc/section.js';
import { AuthError } from './errors.js';
import type { AuthOp, CommandAuth } from './ops.js';
import { allows, type AccessNeeds, type Permission } from './permissions.js';

export const AUTH_PREFIX = utf8('auth/');
const ENABLED_KEY = utf8('auth/enabled');
const REVISION_KEY = utf8('auth/revision');
const USER_PREFIX = 'auth/u/';
const ROLE_PREFIX = 'auth/r/';

/** etcd's superuser and its role: a user holding the root role may do anything. */
export const ROOT = 'root';
/** Users and roles the store holds at most (each is loaded in memory on every member). */
export const AUTH_USERS_MAX = 10_000;
export const AUTH_ROLES_MAX = 10_000;
/** Permissions one role holds at most (every check scans a user's permissions). */
export const ROLE_PERMISSIONS_MAX = 1_000;
/** Longest user or role name, in UTF-8 bytes (every member keeps every name in memory). */
export const AUTH_NAME_BYTES_MAX = 1_024;
/** Longest key or range end of a permission, in bytes. */
export const PERMISSION_KEY_BYTES_MAX = 64 * 1024;

export interface UserRecord {
  readonly name: string;
  /** Salted scrypt hash; absent for a user added with no_password (it logs in only by client certificate). */
  readonly passwordHash?: string;
  readonly noPassword: boolean;
  /** Sorted. */
  readonly roles: readonly string[];
}

export interface RoleRecord {
  readonly name: string;
  /** Sorted by key, then range end. */
  readonly perms: readonly Permission[];
}

export class AuthStore {
  private constructor(
    private enabledFlag: boolean,
    private rev: number,
    private readonly users: Map<string, UserRecord>,
    private readonly roles: Map<string, RoleRecord>,
  ) {}

  static async open(backend: Backend): Promise<AuthStore> {
    const store = new AuthStore(false, 0, new Map(), new Map());
    for (const [k, v] of await readPrefix(backend, AUTH_PREFIX)) store.load(k, v);
    return store;
  }

  private load(k: Uint8Array, v: Uint8Array): void {
    const key = fromUtf8(k);
    if (startsWith(k, ENABLED_KEY) && k.byteLength === ENABLED_KEY.byteLength) this.enabledFlag = v[0] === 1;
    else if (key === fromUtf8(REVISION_KEY)) this.rev = decodeValue(v) as number;
    else if (key.startsWith(USER_PREFIX)) this.users.set(key.slice(USER_PREFIX.length), decodeValue(v) as unknown as UserRecord);
    else if (key.startsWith(ROLE_PREFIX)) this.roles.set(key.slice(ROLE_PREFIX.length), decodeValue(v) as unknown as RoleRecord);
    else assert(false, () => `unknown auth key ${key}`);
  }

  get enabled(): boolean {
    return this.enabledFlag;
  }

  /** Moves on every change of users, roles, permissions or the enabled flag. */
  get revision(): number {
    return this.rev;
  }

  user(name: string): UserRecord | undefined {
    return this.users.get(name);
  }

  role(name: string): RoleRecord | undefined {
    return this.roles.get(name);
  }

  userNames(): string[] {
    return [...this.users.keys()].sort();
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort();
  }

  isAdmin(user: string): boolean {
    return this.users.get(user)?.roles.includes(ROOT) ?? false;
  }

  /** Whether the user may do what `needs` lists (the root role may do anything). */
  isPermitted(user: string, needs: AccessNeeds): boolean {
    const u = this.users.get(user);
    if (u === undefined) return false;
    if (u.roles.includes(ROOT)) return true;
    const perms = u.roles.flatMap((r) => this.roles.get(r)?.perms ?? []);
    return allows(perms, needs);
  }

  /**
   * The checks etcd's auth applier makes on a request header: a user must be named, the store must not have moved
   * since the API checked (a revoked permission cannot slip through between check and apply), the user must exist.
   */
  checkRequester(auth: CommandAuth): void {
    if (auth.user === '') throw new AuthError('USER_EMPTY');
    if (auth.revision < this.rev) throw new AuthError('AUTH_OLD_REVISION');
    if (!this.users.has(auth.user)) throw new AuthError('PERMISSION_DENIED');
  }

  /** Apply one auth command; the response is what the API answers (and what token listeners read). */
  apply(op: AuthOp, w: KvBatch, index: number): Value {
    if ('authenticate' in op) return this.authenticate(op.authenticate, index);
    if ('authEnable' in op) return this.enable(w);
    if ('authDisable' in op) return this.setEnabled(false, w);
    if ('userAdd' in op) return this.userAdd(op.userAdd, w);
    if ('userDelete' in op) return this.userDelete(op.userDelete.name, w);
    if ('userChangePassword' in op) {
      const u = this.mustUser(op.userChangePassword.name);
      this.putUser({ ...u, passwordHash: op.userChangePassword.passwordHash, noPassword: false }, w);
      return { name: u.name };
    }
    if ('userGrantRole' in op) return this.userGrantRole(op.userGrantRole.user, op.userGrantRole.role, w);
    if ('userRevokeRole' in op) return this.userRevokeRole(op.userRevokeRole.name, op.userRevokeRole.role, w);
    if ('roleAdd' in op) return this.roleAdd(op.roleAdd.name, w);
    if ('roleDelete' in op) return this.roleDelete(op.roleDelete.role, w);
    if ('roleGrantPermission' in op) return this.roleGrantPermission(op.roleGrantPermission.name, op.roleGrantPermission.perm, w);
    return this.roleRevokePermission(op.roleRevokePermission.role, op.roleRevokePermission.key, op.roleRevokePermission.rangeEnd, w);
  }

  private authenticate(a: { name: string; nonce: string; revision: number }, index: number): Value {
    if (!this.enabledFlag) throw new AuthError('AUTH_NOT_ENABLED');
    if (!this.users.has(a.name)) throw new AuthError('AUTH_FAILED');
    // The password was checked against the store at a.revision; a change since then (a new password, say) voids it.
    if (a.revision < this.rev) throw new AuthError('AUTH_OLD_REVISION');
    return { name: a.name, token: `${a.nonce}.${index}` };
  }

  private enable(w: KvBatch): Value {
    if (this.enabledFlag) return null;
    const root = this.users.get(ROOT);
    if (root === undefined) throw new AuthError('ROOT_USER_NOT_EXIST');
    if (!root.roles.includes(ROOT)) throw new AuthError('ROOT_ROLE_NOT_EXIST');
    return this.setEnabled(true, w);
  }

  private setEnabled(on: boolean, w: KvBatch): Value {
    if (this.enabledFlag === on) return null;
    this.enabledFlag = on;
    w.put(ENABLED_KEY, Uint8Array.of(on ? 1 : 0));
    this.bump(w);
    return null;
  }

  private userAdd(a: { name: string; passwordHash?: string; noPassword: boolean }, w: KvBatch): Value {
    if (a.name === '') throw new AuthError('USER_EMPTY');
    if (this.users.has(a.name)) throw new AuthError('USER_EXISTS');
    checkNameSize(a.name);
    if (this.users.size >= AUTH_USERS_MAX) throw new AuthError('AUTH_LIMIT', `fulcrum: too many users: the limit is ${AUTH_USERS_MAX}`);
    this.putUser({ name: a.name, ...(a.noPassword || a.passwordHash === undefined ? {} : { passwordHash: a.passwordHash }), noPassword: a.noPassword, roles: [] }, w);
    return { name: a.name };
  }

  private userDelete(name: string, w: KvBatch): Value {
    // Deleting root while auth is on would lock everyone out of managing the cluster (etcd refuses it too).
    if (this.enabledFlag && name === ROOT) throw new AuthError('INVALID_AUTH_MGMT');
    this.mustUser(name);
    this.users.delete(name);
    w.del(utf8(USER_PREFIX + name));
    this.bump(w);
    return { name };
  }

  private userGrantRole(user: string, role: string, w: KvBatch): Value {
    const u = this.mustUser(user);
    // etcd lets root be granted without a root role record: the root role is implicit.
    if (role !== ROOT) this.mustRole(role);
    if (u.roles.includes(role)) return { name: user };
    this.putUser({ ...u, roles: [...u.roles, role].sort() }, w);
    return { name: user };
  }

  private userRevokeRole(user: string, role: string, w: KvBatch): Value {
    if (this.enabledFlag && user === ROOT && role === ROOT) throw new AuthError('INVALID_AUTH_MGMT');
    const u = this.mustUser(user);
    if (!u.roles.includes(role)) throw new AuthError('ROLE_NOT_GRANTED');
    this.putUser({ ...u, roles: u.roles.filter((r) => r !== role) }, w);
    return { name: user };
  }

  private roleAdd(name: string, w: KvBatch): Value {
    if (name === '') throw new AuthError('ROLE_EMPTY');
    if (this.roles.has(name)) throw new AuthError('ROLE_EXISTS');
    checkNameSize(name);
    if (this.roles.size >= AUTH_ROLES_MAX) throw new AuthError('AUTH_LIMIT', `fulcrum: too many roles: the limit is ${AUTH_ROLES_MAX}`);
    this.putRole({ name, perms: [] }, w);
    return null;
  }

  private roleDelete(name: string, w: KvBatch): Value {
    if (this.enabledFlag && name === ROOT) throw new AuthError('INVALID_AUTH_MGMT');
    this.mustRole(name);
    this.roles.delete(name);
    w.del(utf8(ROLE_PREFIX + name));
    // A deleted role is taken from every user that held it (as etcd does), in the same revision.
    for (const u of [...this.users.values()]) {
      if (u.roles.includes(name)) this.putUser({ ...u, roles: u.roles.filter((r) => r !== name) }, w, { bump: false });
    }
    this.bump(w);
    return null;
  }

  private roleGrantPermission(name: string, perm: Permission, w: KvBatch): Value {
    const role = this.mustRole(name);
    if (perm.key.byteLength > PERMISSION_KEY_BYTES_MAX || perm.rangeEnd.byteLength > PERMISSION_KEY_BYTES_MAX) {
      throw new AuthError('AUTH_LIMIT', `fulcrum: a permission's key and range end may have at most ${PERMISSION_KEY_BYTES_MAX} bytes each`);
    }
    const same = (p: Permission): boolean => Buffer.compare(p.key, perm.key) === 0 && Buffer.compare(p.rangeEnd, perm.rangeEnd) === 0;
    // Granting a range the role already has changes its type (etcd), it does not add a second entry.
    const others = role.perms.filter((p) => !same(p));
    if (others.length >= ROLE_PERMISSIONS_MAX) throw new AuthError('AUTH_LIMIT', `fulcrum: too many permissions in a role: the limit is ${ROLE_PERMISSIONS_MAX}`);
    const perms = [...others, { type: perm.type, key: Uint8Array.from(perm.key), rangeEnd: Uint8Array.from(perm.rangeEnd) }];
    perms.sort((a, b) => Buffer.compare(a.key, b.key) || Buffer.compare(a.rangeEnd, b.rangeEnd));
    this.putRole({ name, perms }, w);
    return null;
  }

  private roleRevokePermission(name: string, key: Uint8Array, rangeEnd: Uint8Array, w: KvBatch): Value {
    const role = this.mustRole(name);
    const perms = role.perms.filter((p) => !(Buffer.compare(p.key, key) === 0 && Buffer.compare(p.rangeEnd, rangeEnd) === 0));
    if (perms.length === role.perms.length) throw new AuthError('PERMISSION_NOT_GRANTED');
    this.putRole({ name, perms }, w);
    return null;
  }

  private mustUser(name: string): UserRecord {
    if (name === '') throw new AuthError('USER_EMPTY');
    const u = this.users.get(name);
    if (u === undefined) throw new AuthError('USER_NOT_FOUND');
    return u;
  }

  private mustRole(name: string): RoleRecord {
    if (name === '') throw new AuthError('ROLE_EMPTY');
    const r = this.roles.get(name);
    if (r === undefined) throw new AuthError('ROLE_NOT_FOUND');
    return r;
  }

  private putUser(u: UserRecord, w: KvBatch, options: { bump: boolean } = { bump: true }): void {
    this.users.set(u.name, u);
    w.put(utf8(USER_PREFIX + u.name), encodeValue(u as unknown as Value));
    if (options.bump) this.bump(w);
  }

  private putRole(r: RoleRecord, w: KvBatch): void {
    this.roles.set(r.name, r);
    w.put(utf8(ROLE_PREFIX + r.name), encodeValue(r as unknown as Value));
    this.bump(w);
  }

  private bump(w: KvBatch): void {
    this.rev++;
    w.put(REVISION_KEY, encodeValue(this.rev));
  }
}

function checkNameSize(name: string): void {
  if (Buffer.byteLength(name) > AUTH_NAME_BYTES_MAX) throw new AuthError('AUTH_LIMIT', `fulcrum: a user or role name may have at most ${AUTH_NAME_BYTES_MAX} bytes`);
}
