// auth enable/disable/status, user ..., role ...: etcd's Auth API with etcdctl's commands and wording.
//
// Passwords are never prompted for: `user add name:password`, `--new-user-password`, or the first line of stdin
// when stdin is not a terminal (`echo "$PW" | fulcrumctl user passwd alice`). Nothing here prints a password.
import type { Command } from 'commander';
import type { Permission, PermissionKind, PermissionTarget } from '../index.js';
import { type Ctx, UsageError, type Register } from './context.js';
import { renderTable } from './format.js';

const PERMISSION_KINDS: readonly PermissionKind[] = ['read', 'write', 'readwrite'];

interface RangeFlags {
  readonly prefix?: boolean;
  readonly fromKey?: boolean;
}

export function registerAuthCommands(program: Command, register: Register): void {
  const auth = program.command('auth').description('turn authentication on or off, or show whether it is on');
  register(auth.command('enable').description('turn authentication on (needs the root user, with the root role)'), (ctx) => authEnable(ctx));
  register(auth.command('disable').description('turn authentication off'), (ctx) => authDisable(ctx));
  register(auth.command('status').description('whether authentication is on, and the auth revision (etcd 3.5 and Fulcrum)'), (ctx) => authStatus(ctx));

  const user = program.command('user').description('add, inspect and change users');
  register(
    user
      .command('add')
      .description('add a user')
      .argument('<name[:password]>', 'the user, and its password unless given otherwise')
      .option('--new-user-password <password>', 'the password (instead of name:password or stdin)')
      .option('--no-password', 'a user without a password (it can only authenticate with a client certificate)'),
    (ctx, spec, flags) => userAdd(ctx, spec as string, flags as { newUserPassword?: string; password: boolean }),
  );
  register(user.command('delete').description('delete a user').argument('<name>'), (ctx, name) => userDelete(ctx, name as string));
  register(user.command('get').description("a user's roles").argument('<name>'), (ctx, name) => userGet(ctx, name as string));
  register(user.command('list').description('every user'), (ctx) => userList(ctx));
  register(
    user
      .command('passwd')
      .description("change a user's password")
      .argument('<name>')
      .option('--new-user-password <password>', 'the new password (instead of stdin)'),
    (ctx, name, flags) => userPasswd(ctx, name as string, flags as { newUserPassword?: string }),
  );
  register(user.command('grant-role').description('grant a role to a user').argument('<user>').argument('<role>'), (ctx, u, r) => userGrantRole(ctx, u as string, r as string));
  register(user.command('revoke-role').description('revoke a role from a user').argument('<user>').argument('<role>'), (ctx, u, r) => userRevokeRole(ctx, u as string, r as string));

  const role = program.command('role').description('add, inspect and change roles and their permissions');
  register(role.command('add').description('add a role').argument('<name>'), (ctx, name) => roleAdd(ctx, name as string));
  register(role.command('delete').description('delete a role').argument('<name>'), (ctx, name) => roleDelete(ctx, name as string));
  register(role.command('get').description("a role's permissions").argument('<name>'), (ctx, name) => roleGet(ctx, name as string));
  register(role.command('list').description('every role'), (ctx) => roleList(ctx));
  register(
    withRangeFlags(
      role
        .command('grant-permission')
        .description('let a role read, write or both on a key, a range [key, end), a prefix or every key from one on')
        .argument('<role>')
        .argument('<kind>', 'read, write or readwrite')
        .argument('<key>')
        .argument('[end]', 'end of the range (exclusive)'),
    ),
    (ctx, r, kind, key, end, flags) => roleGrantPermission(ctx, r as string, kind as string, key as string, end as string | undefined, flags as RangeFlags),
  );
  register(
    withRangeFlags(
      role
        .command('revoke-permission')
        .description("take back a permission (the key or range exactly as it was granted)")
        .argument('<role>')
        .argument('<key>')
        .argument('[end]', 'end of the range (exclusive)'),
    ),
    (ctx, r, key, end, flags) => roleRevokePermission(ctx, r as string, key as string, end as string | undefined, flags as RangeFlags),
  );
}

function withRangeFlags(cmd: Command): Command {
  return cmd.option('--prefix', 'every key that starts with <key>').option('--from-key', 'every key from <key> on (in byte order)');
}

/** etcdctl's message or, with -w json, an object. */
function done(ctx: Ctx, message: string, json: Record<string, unknown>): void {
  if (ctx.format === 'json') ctx.json(json);
  else ctx.io.out(`${message}\n`);
}

/** The first line of stdin when it is not a terminal (a pipe or a file); never a prompt. */
async function passwordFromStdin(ctx: Ctx, what: string): Promise<string> {
  if (ctx.io.stdin.isTTY === true) throw new UsageError(`${what}: give the password with --new-user-password or on stdin (fulcrumctl does not prompt)`);
  let text = '';
  for await (const chunk of ctx.io.stdin) {
    text += chunk.toString();
    if (text.includes('\n')) break;
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line === '') throw new UsageError(`${what}: no password on stdin; give it with --new-user-password`);
  return line;
}

// ---- auth

async function authEnable(ctx: Ctx): Promise<void> {
  await ctx.kv.auth.enable(ctx.call);
  done(ctx, 'Authentication Enabled', { enabled: true });
}

async function authDisable(ctx: Ctx): Promise<void> {
  await ctx.kv.auth.disable(ctx.call);
  done(ctx, 'Authentication Disabled', { enabled: false });
}

async function authStatus(ctx: Ctx): Promise<void> {
  const s = await ctx.kv.auth.status(ctx.call);
  if (ctx.format === 'json') ctx.json({ enabled: s.enabled, authRevision: s.authRevision });
  else if (ctx.format === 'simple') ctx.io.out(`Authentication Status: ${s.enabled}\nAuthRevision: ${s.authRevision}\n`);
  else ctx.io.out(renderTable(['ENABLED', 'AUTH REVISION'], [[String(s.enabled), String(s.authRevision)]]));
}

// ---- users

async function userAdd(ctx: Ctx, spec: string, flags: { newUserPassword?: string; password: boolean }): Promise<void> {
  const colon = spec.indexOf(':');
  const name = colon < 0 ? spec : spec.slice(0, colon);
  if (name === '') throw new UsageError('user add: the user name is empty');
  const noPassword = flags.password === false;
  const given = [colon >= 0 ? 'name:password' : undefined, flags.newUserPassword !== undefined ? '--new-user-password' : undefined, noPassword ? '--no-password' : undefined].filter((x) => x !== undefined);
  if (given.length > 1) throw new UsageError(`user add: give the password one way only (${given.join(', ')})`);
  const password = noPassword ? '' : colon >= 0 ? spec.slice(colon + 1) : (flags.newUserPassword ?? (await passwordFromStdin(ctx, 'user add')));
  await ctx.kv.auth.userAdd(name, password, { ...ctx.call, noPassword });
  done(ctx, `User ${name} created`, { user: name, created: true });
}

async function userDelete(ctx: Ctx, name: string): Promise<void> {
  await ctx.kv.auth.userDelete(name, ctx.call);
  done(ctx, `User ${name} deleted`, { user: name, deleted: true });
}

async function userGet(ctx: Ctx, name: string): Promise<void> {
  const roles = await ctx.kv.auth.userGet(name, ctx.call);
  if (ctx.format === 'json') ctx.json({ user: name, roles });
  else if (ctx.format === 'simple') ctx.io.out(`User: ${name}\nRoles: ${roles.join(' ')}\n`);
  else ctx.io.out(renderTable(['USER', 'ROLES'], [[name, roles.join(',')]]));
}

async function userList(ctx: Ctx): Promise<void> {
  const users = await ctx.kv.auth.userList(ctx.call);
  if (ctx.format === 'json') ctx.json({ users });
  else if (ctx.format === 'simple') ctx.io.out(users.map((u) => `${u}\n`).join(''));
  else ctx.io.out(renderTable(['USER'], users.map((u) => [u])));
}

async function userPasswd(ctx: Ctx, name: string, flags: { newUserPassword?: string }): Promise<void> {
  const password = flags.newUserPassword ?? (await passwordFromStdin(ctx, 'user passwd'));
  await ctx.kv.auth.userChangePassword(name, password, ctx.call);
  done(ctx, 'Password updated', { user: name, passwordChanged: true });
}

async function userGrantRole(ctx: Ctx, user: string, role: string): Promise<void> {
  await ctx.kv.auth.userGrantRole(user, role, ctx.call);
  done(ctx, `Role ${role} is granted to user ${user}`, { user, role, granted: true });
}

async function userRevokeRole(ctx: Ctx, user: string, role: string): Promise<void> {
  await ctx.kv.auth.userRevokeRole(user, role, ctx.call);
  done(ctx, `Role ${role} is revoked from user ${user}`, { user, role, revoked: true });
}

// ---- roles

async function roleAdd(ctx: Ctx, name: string): Promise<void> {
  await ctx.kv.auth.roleAdd(name, ctx.call);
  done(ctx, `Role ${name} created`, { role: name, created: true });
}

async function roleDelete(ctx: Ctx, name: string): Promise<void> {
  await ctx.kv.auth.roleDelete(name, ctx.call);
  done(ctx, `Role ${name} deleted`, { role: name, deleted: true });
}

async function roleList(ctx: Ctx): Promise<void> {
  const roles = await ctx.kv.auth.roleList(ctx.call);
  if (ctx.format === 'json') ctx.json({ roles });
  else if (ctx.format === 'simple') ctx.io.out(roles.map((r) => `${r}\n`).join(''));
  else ctx.io.out(renderTable(['ROLE'], roles.map((r) => [r])));
}

/** `[start, end)`, `[start, <open ended>` or the key alone, with etcdctl's "(prefix p)" when the range is one. */
function describeRange(p: Permission): string {
  const key = p.key.toString();
  if (p.rangeEnd.length === 0) return key;
  if (p.rangeEnd.equals(Buffer.from([0]))) return `[${key}, <open ended>`;
  const range = `[${key}, ${p.rangeEnd.toString()})`;
  return prefixEnd(p.key).equals(p.rangeEnd) ? `${range} (prefix ${key})` : range;
}

/** The first key after every key that starts with `prefix` (etcd's rule; empty when there is none). */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

async function roleGet(ctx: Ctx, name: string): Promise<void> {
  const perms = await ctx.kv.auth.roleGet(name, ctx.call);
  if (ctx.format === 'json') {
    ctx.json({ role: name, permissions: perms.map((p) => ({ kind: p.kind, key: p.key.toString(), rangeEnd: p.rangeEnd.toString() })) });
    return;
  }
  if (ctx.format === 'table') {
    ctx.io.out(renderTable(['ROLE', 'PERMISSION', 'KEY OR RANGE'], perms.map((p) => [name, p.kind, describeRange(p)])));
    return;
  }
  // etcdctl's layout: reads, then writes; a readwrite permission is listed under both.
  const under = (kind: 'read' | 'write'): string =>
    perms
      .filter((p) => p.kind === kind || p.kind === 'readwrite')
      .map((p) => `\t${describeRange(p)}\n`)
      .join('');
  ctx.io.out(`Role ${name}\nKV Read:\n${under('read')}KV Write:\n${under('write')}`);
}

function permissionTarget(key: string, end: string | undefined, flags: RangeFlags): PermissionTarget {
  const ways = [end !== undefined, flags.prefix === true, flags.fromKey === true].filter(Boolean).length;
  if (ways > 1) throw new UsageError('give one of [end], --prefix and --from-key');
  if (flags.prefix === true) return { prefix: key };
  if (flags.fromKey === true) return { start: key };
  if (end !== undefined) {
    if (end === '') throw new UsageError('the range end must not be empty (use --from-key for "to the end")');
    return { start: key, end };
  }
  return key;
}

async function roleGrantPermission(ctx: Ctx, role: string, kind: string, key: string, end: string | undefined, flags: RangeFlags): Promise<void> {
  const k = kind.toLowerCase() as PermissionKind;
  if (!PERMISSION_KINDS.includes(k)) throw new UsageError(`permission kind must be one of ${PERMISSION_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  await ctx.kv.auth.roleGrantPermission(role, k, permissionTarget(key, end, flags), ctx.call);
  done(ctx, `Role ${role} updated`, { role, granted: { kind: k, key, ...(end === undefined ? {} : { end }), prefix: flags.prefix === true, fromKey: flags.fromKey === true } });
}

async function roleRevokePermission(ctx: Ctx, role: string, key: string, end: string | undefined, flags: RangeFlags): Promise<void> {
  const target = permissionTarget(key, end, flags);
  await ctx.kv.auth.roleRevokePermission(role, target, ctx.call);
  const ranged = typeof target === 'object' && !(target instanceof Uint8Array);
  const what = ranged ? `range ${describeRange({ kind: 'read', ...rangeOfTarget(key, end, flags) }).replace(/ \(prefix .*\)$/, '')}` : `key ${key}`;
  done(ctx, `Permission of ${what} is revoked from role ${role}`, { role, revoked: { key, ...(end === undefined ? {} : { end }), prefix: flags.prefix === true, fromKey: flags.fromKey === true } });
}

function rangeOfTarget(key: string, end: string | undefined, flags: RangeFlags): { key: Buffer; rangeEnd: Buffer } {
  const k = Buffer.from(key);
  if (flags.prefix === true) return { key: k, rangeEnd: prefixEnd(k) };
  if (flags.fromKey === true) return { key: k, rangeEnd: Buffer.from([0]) };
  return { key: k, rangeEnd: Buffer.from(end ?? '') };
}
