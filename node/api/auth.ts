// etcd's Auth service: enable/disable, Authenticate (simple tokens), users, roles and key permissions. Every change
// goes through the Raft log (storage/auth), so every member holds the same users and roles; reads are served from
// the local store after a ReadIndex barrier, like a linearizable Range.
//
// Management needs the root role once auth is enabled, except that users may read their own user record and the
// roles they hold (as etcd 3.4 allows). Passwords are hashed here, before proposing: the log never carries one.
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import type { AuthMethods, Encodable, Handlers, Permission as WirePermission, PermissionType as WirePermissionType } from '../../proto/index.js';
import { hashPassword, PASSWORD_BYTES_MAX, verifyPassword, type AuthOp, type CommandAuth, type Permission, type PermissionType } from '../../storage/auth/index.js';
import type { ApiContext } from './context.js';
import { apiError } from './errors.js';
import { authGate, authorize, requester } from './authz.js';
import { responseHeader } from './header.js';
import { proposeWithin, readBarrier, unary, type SurfaceCall } from './kv.js';

/** Authenticate retries a login whose password check the store outran (a concurrent auth change), at most this often. */
const AUTHENTICATE_ATTEMPTS_MAX = 3;
/** Random letters of a simple token before ".<index>" (etcd uses 16). */
const TOKEN_NONCE_LETTERS = 16;
const PERMISSION_TYPES: readonly PermissionType[] = ['READ', 'WRITE', 'READWRITE'];

type Call = SurfaceCall & { getPeer(): string; getAuthContext?: grpc.ServerUnaryCall<unknown, unknown>['getAuthContext'] };

export function createAuthService(ctx: ApiContext): Handlers<AuthMethods> {
  const change = async (call: Call, op: AuthOp): Promise<{ header: ReturnType<typeof responseHeader> }> => {
    const auth = authorize(ctx, call, 'admin');
    await proposeWithin(ctx, call, op, { auth });
    return { header: responseHeader(ctx.member) };
  };
  /** A read of the store after a barrier, so it sees every change acknowledged before the call. */
  const read = async (call: Call): Promise<CommandAuth> => {
    const who = requester(ctx, call);
    await readBarrier(ctx, call);
    return who;
  };
  const store = (): ReturnType<typeof authGate>['store'] => authGate(ctx).store;
  const isAdminOrOff = (who: CommandAuth): boolean => who.user === '' || store().isAdmin(who.user);

  return {
    AuthEnable: unary(ctx, 'AuthEnable', (call) => change(call, { authEnable: {} })),
    AuthDisable: unary(ctx, 'AuthDisable', (call) => change(call, { authDisable: {} })),
    AuthStatus: unary(ctx, 'AuthStatus', async (call) => {
      await readBarrier(ctx, call);
      return { header: responseHeader(ctx.member), enabled: store().enabled, authRevision: store().revision };
    }),
    Authenticate: unary(ctx, 'Authenticate', async (call) => ({
      header: responseHeader(ctx.member),
      token: await authenticate(ctx, call, call.request.name, call.request.password),
    })),

    UserAdd: unary(ctx, 'UserAdd', async (call) => {
      const { name, password, options, hashedPassword } = call.request;
      authorize(ctx, call, 'admin');
      if (name === '') throw apiError('USER_EMPTY');
      if (hashedPassword !== '') throw apiError('INVALID_ARGUMENT', 'fulcrum: a pre-hashed (bcrypt) password is not supported; send the password');
      const noPassword = options?.no_password === true;
      checkPasswordSize(password);
      const passwordHash = noPassword ? undefined : await hashPassword(password);
      return change(call, { userAdd: { name, noPassword, ...(passwordHash === undefined ? {} : { passwordHash }) } });
    }),
    UserGet: unary(ctx, 'UserGet', async (call) => {
      const who = await read(call);
      if (!isAdminOrOff(who) && who.user !== call.request.name) throw apiError('PERMISSION_DENIED');
      const user = store().user(mustName(call.request.name, 'USER_EMPTY'));
      if (user === undefined) throw apiError('USER_NOT_FOUND');
      return { header: responseHeader(ctx.member), roles: [...user.roles] };
    }),
    UserList: unary(ctx, 'UserList', async (call) => {
      const who = await read(call);
      if (!isAdminOrOff(who)) throw apiError('PERMISSION_DENIED');
      return { header: responseHeader(ctx.member), users: store().userNames() };
    }),
    UserDelete: unary(ctx, 'UserDelete', (call) => change(call, { userDelete: { name: call.request.name } })),
    UserChangePassword: unary(ctx, 'UserChangePassword', async (call) => {
      const { name, password, hashedPassword } = call.request;
      authorize(ctx, call, 'admin');
      if (hashedPassword !== '') throw apiError('INVALID_ARGUMENT', 'fulcrum: a pre-hashed (bcrypt) password is not supported; send the password');
      if (store().user(mustName(name, 'USER_EMPTY')) === undefined) throw apiError('USER_NOT_FOUND'); // before the slow hash
      checkPasswordSize(password);
      return change(call, { userChangePassword: { name, passwordHash: await hashPassword(password) } });
    }),
    UserGrantRole: unary(ctx, 'UserGrantRole', (call) => change(call, { userGrantRole: { user: call.request.user, role: call.request.role } })),
    UserRevokeRole: unary(ctx, 'UserRevokeRole', (call) => change(call, { userRevokeRole: { name: call.request.name, role: call.request.role } })),

    RoleAdd: unary(ctx, 'RoleAdd', (call) => change(call, { roleAdd: { name: call.request.name } })),
    RoleGet: unary(ctx, 'RoleGet', async (call) => {
      const who = await read(call);
      const name = mustName(call.request.role, 'ROLE_EMPTY');
      if (!isAdminOrOff(who) && !(store().user(who.user)?.roles.includes(name) ?? false)) throw apiError('PERMISSION_DENIED');
      const role = store().role(name);
      if (role === undefined) throw apiError('ROLE_NOT_FOUND');
      return { header: responseHeader(ctx.member), perm: role.perms.map(toWirePermission) };
    }),
    RoleList: unary(ctx, 'RoleList', async (call) => {
      const who = await read(call);
      if (!isAdminOrOff(who)) throw apiError('PERMISSION_DENIED');
      return { header: responseHeader(ctx.member), roles: store().roleNames() };
    }),
    RoleDelete: unary(ctx, 'RoleDelete', (call) => change(call, { roleDelete: { role: call.request.role } })),
    RoleGrantPermission: unary(ctx, 'RoleGrantPermission', (call) => {
      const perm = call.request.perm;
      if (perm === null) throw apiError('PERMISSION_NOT_GIVEN');
      return change(call, { roleGrantPermission: { name: call.request.name, perm: fromWirePermission(perm) } });
    }),
    RoleRevokePermission: unary(ctx, 'RoleRevokePermission', (call) =>
      change(call, { roleRevokePermission: { role: call.request.role, key: Uint8Array.from(call.request.key), rangeEnd: Uint8Array.from(call.request.range_end) } }),
    ),
  };
}

/**
 * Check a user's password (slowed down after failures, per user and per peer) and have a token assigned through
 * the log. An unknown user costs the same scrypt work as a wrong password, so timing does not reveal user names.
 */
async function authenticate(ctx: ApiContext, call: Call, name: string, password: string): Promise<string> {
  const gate = authGate(ctx);
  // Linearizable, as etcd's Authenticate is (it waits for a ReadIndex first): a member that has not yet applied
  // an AuthEnable or a UserAdd acknowledged elsewhere must not answer "not enabled" or check an old password.
  await readBarrier(ctx, call);
  if (!gate.store.enabled) throw apiError('AUTH_NOT_ENABLED');
  const peer = peerHost(call.getPeer());
  const delay = gate.throttle.delayMs(name, peer);
  if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
  for (let attempt = 1; ; attempt++) {
    const revision = gate.store.revision;
    const hash = gate.store.user(name)?.passwordHash;
    const ok = Buffer.byteLength(password) <= PASSWORD_BYTES_MAX && (await verifyPassword(password, hash ?? (await decoyHash())));
    if (!ok || hash === undefined) {
      gate.throttle.failed(name, peer);
      ctx.logger.info({ component: 'auth', user: name, peer }, 'fulcrum: authentication failed');
      throw apiError('AUTH_FAILED');
    }
    gate.throttle.succeeded(name);
    try {
      const r = await proposeWithin(ctx, call, { authenticate: { name, nonce: tokenNonce(), revision } });
      return (r.response as { token: string }).token;
    } catch (e) {
      if ((e as { code?: string }).code !== 'AUTH_OLD_REVISION' || attempt >= AUTHENTICATE_ATTEMPTS_MAX) throw e;
    }
  }
}

let decoy: Promise<string> | undefined;
/** A hash no password matches, computed once, to spend the same work on an unknown user as on a known one. */
function decoyHash(): Promise<string> {
  decoy ??= hashPassword(randomBytes(32).toString('base64'));
  return decoy;
}

function tokenNonce(): string {
  const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  return Array.from(randomBytes(TOKEN_NONCE_LETTERS), (b) => letters[b % letters.length]).join('');
}

/** "ipv4:127.0.0.1:5000" or "[::1]:5000" -> the host: the throttle counts per address, not per connection. */
function peerHost(peer: string): string {
  const m = /^(?:ipv[46]:)?\[?([^\]]*?)\]?:\d+$/.exec(peer);
  return m?.[1] ?? peer;
}

function checkPasswordSize(password: string): void {
  if (Buffer.byteLength(password) > PASSWORD_BYTES_MAX) throw apiError('INVALID_ARGUMENT', `fulcrum: a password may have at most ${PASSWORD_BYTES_MAX} bytes`);
}

function mustName(name: string, code: 'USER_EMPTY' | 'ROLE_EMPTY'): string {
  if (name === '') throw apiError(code);
  return name;
}

function fromWirePermission(p: WirePermission): Permission {
  const type = typeof p.permType === 'number' ? PERMISSION_TYPES[p.permType] : (p.permType as PermissionType);
  if (type === undefined || !PERMISSION_TYPES.includes(type)) throw apiError('INVALID_ARGUMENT', `fulcrum: unknown permission type ${String(p.permType)}`);
  if (p.key.byteLength === 0) throw apiError('EMPTY_KEY');
  return { type, key: Uint8Array.from(p.key), rangeEnd: Uint8Array.from(p.range_end) };
}

function toWirePermission(p: Permission): Encodable<WirePermission> {
  return { permType: p.type satisfies WirePermissionType, key: p.key, range_end: p.rangeEnd };
}
