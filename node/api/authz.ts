// Who is calling and what they may do, for every client-facing service. With auth disabled nothing is checked
// (the requester is '' at the store's revision, which apply refuses if auth is enabled in between). With auth
// enabled a call names its user by the `token` metadata key (etcd clients send it there) or, with
// --client-cert-auth, by its verified client certificate's common name; then the request's keys are checked
// against the user's roles. Writes are checked AGAIN at apply (storage/auth/authorize.ts) with the requester and
// revision this returns.
import { commandNeeds, emptyNeeds, needRead, needWrite, type AccessNeeds, type CommandAuth } from '../../storage/auth/index.js';
import type { Op } from '../../storage/command.js';
import type { KeyRangeRequest } from '../../storage/mvcc/index.js';
import { AuthGate } from '../auth/index.js';
import { tokenIndex } from '../auth/tokens.js';
import type { ApiContext } from './context.js';
import { apiError, toServiceError } from './errors.js';
import { metadataOf, type MetadataReader, type ReadableMetadata } from './metadata.js';

/** Where services find this member's AuthGate in ApiContext.registry. */
export const AUTH_GATE_KEY = 'authGate';

/** What a check needs to see of a call (every kind of server call has these). */
export interface AuthCall extends ReadableMetadata {
  getAuthContext?(): { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } | null;
}

/**
 * This member's gate. The server registers one (node/server.ts); a context without one (a test harness) gets one
 * on first use, so auth works wherever the services run.
 */
export function authGate(ctx: ApiContext): AuthGate {
  let gate = ctx.registry.get(AUTH_GATE_KEY) as AuthGate | undefined;
  if (gate === undefined) {
    gate = new AuthGate(ctx.member);
    gate.start();
    ctx.registry.set(AUTH_GATE_KEY, gate);
  }
  return gate;
}

/** The common name of the call's verified client certificate, if the connection has one. */
export function userFromCertificate(call: AuthCall): string | undefined {
  // grpc-js only asks for (and then verifies against the trusted CA) a client certificate when the server
  // credentials require one, so a certificate here has been verified.
  const cn = call.getAuthContext?.()?.sslPeerCertificate?.subject?.CN;
  const name = Array.isArray(cn) ? cn[0] : cn;
  return name === undefined || name === '' ? undefined : name;
}

/**
 * Whether the call's token may be one this member has not applied yet: unknown here, and naming a log index beyond
 * what this member has applied. Tokens are learnt from the log, so a token issued by a member ahead of this one
 * reaches a client before this member applies it; etcd waits for the token's index, and the caller should wait
 * for a ReadIndex barrier (which covers the token's index if the token is real) before looking the token up.
 */
export function tokenMayBeAhead(ctx: ApiContext, md: MetadataReader): boolean {
  const token = md.get('token')[0];
  if (typeof token !== 'string' || token === '') return false;
  const gate = ctx.registry.get(AUTH_GATE_KEY) as AuthGate | undefined;
  if (gate?.tokens.has(token) === true) return false;
  const index = tokenIndex(token);
  return index !== undefined && index > ctx.member.stateMachine.appliedIndex;
}

/** The requester of a call. Throws etcd's errors: an unknown or expired token, or no user at all. */
export function requester(ctx: ApiContext, call: AuthCall): CommandAuth {
  const gate = authGate(ctx);
  const store = gate.store;
  if (!store.enabled) return { user: '', revision: store.revision };
  const token = metadataOf(call).get('token')[0];
  if (typeof token === 'string' && token !== '') {
    const user = gate.tokens.use(token);
    if (user === undefined) throw apiError('INVALID_AUTH_TOKEN');
    return { user, revision: store.revision };
  }
  const cn = gate.options.clientCertAuth === true ? userFromCertificate(call) : undefined;
  if (cn !== undefined) return { user: cn, revision: store.revision };
  throw apiError('USER_EMPTY');
}

/**
 * Check a call: 'user' needs any existing user, 'admin' the root role, AccessNeeds the keys' permissions (or a
 * function that works them out: it runs only when auth is enabled, so a cluster without auth pays nothing for it).
 * Returns the requester for the command the call proposes.
 */
export function authorize(ctx: ApiContext, call: AuthCall, needs: AccessNeeds | 'user' | 'admin' | (() => AccessNeeds | 'user' | 'admin')): CommandAuth {
  const who = requester(ctx, call);
  if (who.user === '') return who;
  const store = authGate(ctx).store;
  const need = typeof needs === 'function' ? needs() : needs;
  const allowed = need === 'user' ? store.user(who.user) !== undefined : need === 'admin' ? store.isAdmin(who.user) : store.isPermitted(who.user, need);
  if (!allowed) throw apiError('PERMISSION_DENIED');
  return who;
}

/** etcd 3.4's Maintenance admin check (Snapshot, Defragment, Hash, HashKV): its own UNKNOWN-coded errors. */
export function authorizeMaintenance(ctx: ApiContext, call: AuthCall): void {
  try {
    authorize(ctx, call, 'admin');
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'PERMISSION_DENIED') throw apiError('ADMIN_PERMISSION_DENIED');
    if (code === 'USER_EMPTY') throw apiError('ADMIN_USER_EMPTY');
    throw e;
  }
}

/** Check a call that proposes `op` with what the op needs (the same rule apply uses again). */
export function authorizeOp(ctx: ApiContext, call: AuthCall, op: Op): CommandAuth {
  return authorize(ctx, call, () => commandNeeds(op, ctx.member.stateMachine.mvcc));
}

/** Check a read of a key or range. */
export function authorizeRead(ctx: ApiContext, call: AuthCall, range: KeyRangeRequest): CommandAuth {
  return authorize(ctx, call, () => {
    const needs = emptyNeeds();
    needRead(needs, range);
    return needs;
  });
}

/** Go's names of the gRPC codes an auth refusal can carry (etcd puts the whole Go status text in a cancel reason). */
const GO_CODE_NAMES: Readonly<Record<number, string>> = { 3: 'InvalidArgument', 7: 'PermissionDenied', 16: 'Unauthenticated' };

/**
 * Why a watch on this range may not be created, as etcd words it in the cancel reason of the refused create
 * ("rpc error: code = PermissionDenied desc = etcdserver: permission denied"), or undefined when it may.
 */
export function watchDenial(ctx: ApiContext, call: AuthCall, range: KeyRangeRequest): string | undefined {
  try {
    authorizeRead(ctx, call, range);
    return undefined;
  } catch (e) {
    const err = toServiceError(e);
    return `rpc error: code = ${GO_CODE_NAMES[err.code] ?? 'Unknown'} desc = ${err.details}`;
  }
}

/**
 * The Election and Lock recipes work on the keys under `<name>/`: joining the line writes one, waiting reads them
 * all. A key-level operation (Proclaim, Resign, Unlock) names its key.
 */
export function authorizeKeys(ctx: ApiContext, call: AuthCall, range: KeyRangeRequest, access: { read: boolean; write: boolean }): CommandAuth {
  const needs = emptyNeeds();
  if (access.read) needRead(needs, range);
  if (access.write) needWrite(needs, range);
  return authorize(ctx, call, needs);
}
