// Authentication against etcd's Auth API, and its management calls.
//
// With `auth: { username, password }` the client calls Authenticate once, keeps the token, and sends it in the
// `token` metadata key on every call and every stream (as etcd's Go client does). It does so in a grpc-js
// interceptor, so watches, keep-alives, elections and locks carry it without each knowing about it. When a member
// answers "etcdserver: invalid auth token" (the token expired, or the member restarted and forgot it), the
// interceptor drops the token; the failed unary call is retried once, with a fresh token (rpc.ts), and a stream
// gets one when it reconnects. The server refuses an invalid token before proposing anything, so even a write
// is safe to retry then.
//
// The password stays in this file: it is not enumerable, not printed by util.inspect or JSON, and not part of
// any error message.
import { inspect } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import type { AuthRoleGetResponse, AuthRolesResponse, AuthStatusResponse, AuthUserListResponse, Permission as WirePermission, PermissionType } from '../proto/index.js';
import type { Bytes } from './bytes.js';
import { AuthenticationError, FulcrumClientError, InvalidArgumentError, isServiceError } from './errors.js';
import { KeySpace } from './keyspace.js';
import type { CallOptions, Rpc } from './rpc.js';
import type { Header, KeyRange } from './types.js';
import { keyFields, toHeader, wireRange } from './types.js';

/** The metadata key etcd reads the token from. */
export const TOKEN_METADATA_KEY = 'token';
/** What etcd answers for a token it does not know (expired, or issued before a restart). */
export const INVALID_TOKEN_MESSAGE = 'etcdserver: invalid auth token';
/** What etcd answers a call without a token once auth is on (the client saw auth off when it asked for one). */
export const NO_USER_MESSAGE = 'etcdserver: user name is empty';
/** Authenticate's answer while auth is off: then calls go without a token, as etcd's Go client does. */
const AUTH_NOT_ENABLED_MESSAGE = 'etcdserver: authentication is not enabled';

/**
 * etcd refuses a watch with a stale token not with a status but with a cancelled WatchResponse whose reason is the
 * status as text ("rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"); the stream lives on.
 */
function isStaleTokenWatchCancel(message: unknown): boolean {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as { canceled?: unknown; cancel_reason?: unknown };
  return m.canceled === true && typeof m.cancel_reason === 'string' && (m.cancel_reason.includes(INVALID_TOKEN_MESSAGE) || m.cancel_reason.includes(NO_USER_MESSAGE));
}

/** A refusal that a fresh token may cure: the call was refused before anything was proposed or applied. */
export function isStaleTokenRefusal(status: { code: number; details: string }): boolean {
  return status.code === grpc.status.UNAUTHENTICATED ? status.details === INVALID_TOKEN_MESSAGE : status.details === NO_USER_MESSAGE;
}
const AUTHENTICATE_PATH = '/etcdserverpb.Auth/Authenticate';

export interface AuthOptions {
  readonly username: string;
  readonly password: string;
}

/** A user name and password that do not show the password when logged, inspected or serialized. */
export class Credentials {
  declare readonly password: string;

  constructor(
    readonly username: string,
    password: string,
  ) {
    Object.defineProperty(this, 'password', { value: password, enumerable: false });
    Object.freeze(this);
  }

  static from(o: AuthOptions): Credentials {
    if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('fulcrum client: auth must be { username, password }');
    if (typeof o.username !== 'string' || o.username === '') throw new InvalidArgumentError('fulcrum client: auth.username must be a non-empty string');
    if (typeof o.password !== 'string') throw new InvalidArgumentError('fulcrum client: auth.password must be a string');
    return new Credentials(o.username, o.password);
  }

  toJSON(): { username: string } {
    return { username: this.username };
  }

  [inspect.custom](): string {
    return `Credentials { username: ${JSON.stringify(this.username)}, password: <hidden> }`;
  }
}

/** Gets the token by calling Authenticate (set once the client's Rpc exists). */
export type Authenticator = (c: Credentials) => Promise<string>;

/** One token for the client: fetched on first use, shared by concurrent callers, dropped when refused. */
export class TokenSource {
  #token: Promise<string> | undefined;
  #authenticate: Authenticator | undefined;

  constructor(readonly credentials: Credentials) {}

  setAuthenticator(a: Authenticator): void {
    this.#authenticate = a;
  }

  /** The token, or '' while auth is off on the cluster (calls then carry none). */
  token(): Promise<string> {
    if (this.#token === undefined) {
      const authenticate = this.#authenticate;
      if (authenticate === undefined) return Promise.reject(new FulcrumClientError('INTERNAL', 'fulcrum client: no authenticator', false));
      const p = authenticate(this.credentials).catch((e: unknown) => {
        if (e instanceof FulcrumClientError && e.message === AUTH_NOT_ENABLED_MESSAGE) return '';
        throw e;
      });
      this.#token = p;
      // A failed attempt is not kept: the next call tries again (the member may have been down).
      p.catch(() => {
        if (this.#token === p) this.#token = undefined;
      });
    }
    return this.#token;
  }

  /** The server refused this token: the next call authenticates again (unless another caller already did). */
  invalidate(token: string): void {
    const current = this.#token;
    if (current === undefined) return;
    void current.then((t) => {
      if (t === token && this.#token === current) this.#token = undefined;
    }, () => undefined);
  }
}

/** The grpc status a call ends with when no token could be had: the failure of Authenticate itself. */
function statusOf(e: unknown): { code: grpc.status; details: string } {
  if (e instanceof FulcrumClientError && e.grpcCode !== undefined) return { code: e.grpcCode, details: e.message };
  if (isServiceError(e)) return { code: e.code, details: e.details };
  if (e instanceof AuthenticationError) return { code: grpc.status.INVALID_ARGUMENT, details: e.message };
  return { code: grpc.status.UNAVAILABLE, details: e instanceof Error ? e.message : String(e) };
}

/**
 * Adds the token to every call but Authenticate. Until the token is known, the request message is held back;
 * if no token can be had, the call ends with Authenticate's failure and its message is never sent.
 */
export function authInterceptor(tokens: TokenSource): grpc.Interceptor {
  return (options, nextCall) => {
    if (options.method_definition.path === AUTHENTICATE_PATH) return new grpc.InterceptingCall(nextCall(options));
    let ready: Promise<string | undefined> = Promise.resolve(undefined);
    const call: grpc.InterceptingCall = new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        ready = tokens.token().then(
          (token) => {
            if (token !== '') metadata.set(TOKEN_METADATA_KEY, token);
            next(metadata, {
              onReceiveMessage(message, nextMessage) {
                if (isStaleTokenWatchCancel(message)) tokens.invalidate(token);
                nextMessage(message);
              },
              onReceiveStatus(status, nextStatus) {
                if (isStaleTokenRefusal(status)) tokens.invalidate(token);
                nextStatus(status);
              },
            });
            return token;
          },
          (e: unknown) => {
            const { code, details } = statusOf(e);
            next(metadata, listener);
            call.cancelWithStatus(code, details);
            return undefined;
          },
        );
      },
      sendMessage(message, next) {
        void ready.then((token) => token !== undefined && next(message));
      },
      halfClose(next) {
        void ready.then((token) => token !== undefined && next());
      },
    });
    return call;
  };
}

// ---------------------------------------------------------------------------------------------------------
// Management: thin, typed wrappers over etcd's Auth service, with etcd's names (clientv3.Auth).

export type PermissionKind = 'read' | 'write' | 'readwrite';

export interface Permission {
  readonly kind: PermissionKind;
  /** The key, or the start of the range. */
  readonly key: Buffer;
  /** Empty: the key alone. `\0`: every key from `key` on (etcdctl's --from-key). Otherwise the range's end (exclusive). */
  readonly rangeEnd: Buffer;
}

export interface AuthStatus {
  readonly enabled: boolean;
  readonly authRevision: number;
  readonly header: Header;
}

const KIND_TO_WIRE: Readonly<Record<PermissionKind, PermissionType>> = { read: 'READ', write: 'WRITE', readwrite: 'READWRITE' };
const WIRE_TO_KIND: Readonly<Record<string, PermissionKind>> = { READ: 'read', WRITE: 'write', READWRITE: 'readwrite', 0: 'read', 1: 'write', 2: 'readwrite' };

/**
 * A key, or a range as the KV calls take it: `{ prefix }` (etcdctl's --prefix), `{ start }` alone (--from-key),
 * `{ start, end }`. Keys are absolute: a namespace view's prefix is not added (permissions are cluster-wide).
 */
export type PermissionTarget = Bytes | KeyRange;

function rangeOf(t: PermissionTarget): { key: Buffer; rangeEnd: Buffer } {
  return wireRange(t, KeySpace.ROOT);
}

function fromWirePermission(p: WirePermission): Permission {
  return { kind: WIRE_TO_KIND[String(p.permType)] ?? 'read', key: Buffer.from(p.key), rangeEnd: Buffer.from(p.range_end) };
}

export class AuthApi {
  constructor(private readonly rpc: Rpc) {}

  /** etcd needs the root user (with the root role) before auth can be enabled. */
  async enable(o?: CallOptions): Promise<void> {
    await this.rpc.call('idempotent', 'AuthEnable', (s, md, co, cb) => s.auth.AuthEnable({}, md, co, cb), o);
  }

  async disable(o?: CallOptions): Promise<void> {
    await this.rpc.call('idempotent', 'AuthDisable', (s, md, co, cb) => s.auth.AuthDisable({}, md, co, cb), o);
  }

  async status(o?: CallOptions): Promise<AuthStatus> {
    const r = await this.rpc.call<AuthStatusResponse>('read', 'AuthStatus', (s, md, co, cb) => s.auth.AuthStatus({}, md, co, cb), o);
    return { enabled: r.enabled, authRevision: Number(r.authRevision), header: toHeader(r.header) };
  }

  /** `noPassword`: a user that can only authenticate with a client certificate (etcd 3.5's option; etcd 3.4 ignores it). */
  async userAdd(name: string, password: string, o: CallOptions & { noPassword?: boolean } = {}): Promise<void> {
    const req = { name, password, hashedPassword: '', options: { no_password: o.noPassword === true } };
    await this.rpc.call('idempotent', 'UserAdd', (s, md, co, cb) => s.auth.UserAdd(req, md, co, cb), o);
  }

  /** The user's roles. */
  async userGet(name: string, o?: CallOptions): Promise<string[]> {
    return (await this.rpc.call<AuthRolesResponse>('read', 'UserGet', (s, md, co, cb) => s.auth.UserGet({ name }, md, co, cb), o)).roles;
  }

  async userList(o?: CallOptions): Promise<string[]> {
    return (await this.rpc.call<AuthUserListResponse>('read', 'UserList', (s, md, co, cb) => s.auth.UserList({}, md, co, cb), o)).users;
  }

  async userDelete(name: string, o?: CallOptions): Promise<void> {
    await this.rpc.call('idempotent', 'UserDelete', (s, md, co, cb) => s.auth.UserDelete({ name }, md, co, cb), o);
  }

  async userChangePassword(name: string, password: string, o?: CallOptions): Promise<void> {
    await this.rpc.call('idempotent', 'UserChangePassword', (s, md, co, cb) => s.auth.UserChangePassword({ name, password, hashedPassword: '' }, md, co, cb), o);
  }

  async userGrantRole(user: string, role: string, o?: CallOptions): Promise<void> {
    await this.rpc.call('idempotent', 'UserGrantRole', (s, md, co, cb) => s.auth.UserGrantRole({ user, role }, md, co, cb), o);
  }

  async userRevokeRole(user: string, role: string, o?: CallOptions): Promise<void> {
    await this.rpc.call('idempotent', 'UserRevokeRole', (s, md, co, cb) => s.auth.UserRevokeRole({ name: user, role }, md, co, cb), o);
  }

  async roleAdd(name: string, o?: CallOptions): Promise<void> {
    await this.rpc.call('idempotent', 'RoleAdd', (s, md, co, cb) => s.auth.RoleAdd({ name }, md, co, cb), o);
  }

  /** The role's permissions. */
  async roleGet(role: string, o?: CallOptions): Promise<Permission[]> {
    const r = await this.rpc.call<AuthRoleGetResponse>('read', 'RoleGet', (s, md, co, cb) => s.auth.RoleGet({ role }, md, co, cb), o);
    return r.perm.map(fromWirePermission);
  }

  async roleList(o?: CallOptions): Promise<string[]> {
    return (await this.rpc.call<AuthRolesResponse>('read', 'RoleList', (s, md, co, cb) => s.auth.RoleList({}, md, co, cb), o)).roles;
  }

  async roleDelete(role: string, o?: CallOptions): Promise<void> {
    await this.rpc.call('idempotent', 'RoleDelete', (s, md, co, cb) => s.auth.RoleDelete({ role }, md, co, cb), o);
  }

  async roleGrantPermission(role: string, kind: PermissionKind, target: PermissionTarget, o?: CallOptions): Promise<void> {
    const wire = KIND_TO_WIRE[kind];
    if (wire === undefined) throw new InvalidArgumentError(`fulcrum client: permission kind must be read, write or readwrite, got ${String(kind)}`);
    const { key, rangeEnd } = rangeOf(target);
    const req = { name: role, perm: { permType: wire, ...keyFields(key, rangeEnd) } };
    await this.rpc.call('idempotent', 'RoleGrantPermission', (s, md, co, cb) => s.auth.RoleGrantPermission(req as never, md, co, cb), o);
  }

  async roleRevokePermission(role: string, target: PermissionTarget, o?: CallOptions): Promise<void> {
    const { key, rangeEnd } = rangeOf(target);
    await this.rpc.call('idempotent', 'RoleRevokePermission', (s, md, co, cb) => s.auth.RoleRevokePermission({ role, ...keyFields(key, rangeEnd) }, md, co, cb), o);
  }
}
