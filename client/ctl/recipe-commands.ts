// elect and lock: the coordination recipes from the command line.
//
// Both run on the server's v3election / v3lock services (etcd's recipes, run by the member: node/api/election.ts
// and lock.ts), under a lease this command grants and keeps alive. The key layout is etcd's (<name>/<lease hex>),
// shared with the client library's recipes and with etcd's own clients, so all of them wait in the same line.
// The fencing token is the holder's key's create revision: every later holder's is strictly greater.
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import type { CampaignResponse, LeaderResponse, LockResponse } from '../../proto/index.js';
import { FulcrumClientError, type Lease } from '../index.js';
import { type Ctx, CtlError, runStream, UsageError } from './context.js';
import { bytesField, cellText } from './format.js';
import type { Register } from './kv-commands.js';
import { parseNonNegative } from './txn-parse.js';

/** etcdctl lock and elect use a 60 s session; a shorter one releases a crashed holder's lock sooner. */
const RECIPE_TTL_SECONDS_DEFAULT = '10';
/** The environment variables a command run under `lock` gets. */
export const LOCK_TOKEN_ENV = 'FULCRUM_LOCK_TOKEN';
export const LOCK_KEY_ENV = 'FULCRUM_LOCK_KEY';
/**
 * Lock, Campaign and Observe wait as long as it takes, so they get no deadline; Ctrl-C cancels them (the server
 * then takes a waiter out of the line). Retrying on another member is safe: the same lease rejoins with the same
 * key and place in line; that is why they are 'idempotent' calls.
 */
const NO_DEADLINE = { timeoutMs: Number.MAX_SAFE_INTEGER };

export function registerRecipeCommands(program: Command, register: Register): void {
  register(
    program
      .command('lock')
      .description(`take a lock and hold it until interrupted, or run a command while holding it (its fencing token in $${LOCK_TOKEN_ENV})`)
      .argument('<name>')
      .argument('[command...]', 'run this while holding the lock, then release it (put it after --)')
      .option('--ttl <seconds>', 'TTL of the lease that keeps the lock', RECIPE_TTL_SECONDS_DEFAULT),
    (ctx, name, command, flags) => lock(ctx, name as string, command as string[], flags as { ttl: string }),
  );
  register(
    program
      .command('elect')
      .description('campaign with a proposal and lead until interrupted, or --listen to print each leader')
      .argument('<name>')
      .argument('[proposal]', 'this candidate\'s value (what observers see while it leads)')
      .option('-l, --listen', 'observe the election instead of campaigning')
      .option('--ttl <seconds>', 'TTL of the lease that keeps the leadership', RECIPE_TTL_SECONDS_DEFAULT),
    (ctx, name, proposal, flags) => elect(ctx, name as string, proposal as string | undefined, flags as { listen?: boolean; ttl: string }),
  );
}

// ---- shared

/** A lease kept alive by this process; losing it ends the command with LEASE_LOST. */
async function holdLease(ctx: Ctx, ttlText: string): Promise<Lease> {
  const ttl = parseNonNegative('--ttl', ttlText);
  if (ttl === 0) throw new UsageError('--ttl must be at least 1 second');
  return ctx.kv.grantLease(ttl, ctx.call);
}

/** Resolves when interrupted, or rejects with LEASE_LOST when the lease goes first. */
function untilInterruptedOrLost(ctx: Ctx, lease: Lease): Promise<void> {
  return new Promise((resolve, reject) => {
    if (ctx.io.interrupt.aborted) return resolve();
    const lost = (): void => reject(new CtlError('LEASE_LOST', `lease ${lease.id.toString(16)} was lost (${lease.lost?.reason ?? 'unknown'}); no longer holding`));
    if (lease.lost !== undefined) return lost();
    lease.signal.addEventListener('abort', lost, { once: true });
    ctx.io.interrupt.addEventListener('abort', () => resolve(), { once: true });
  });
}

function interrupted(ctx: Ctx, e: unknown): boolean {
  return ctx.io.interrupt.aborted && e instanceof FulcrumClientError && e.code === 'ABORTED';
}

// ---- lock

async function lock(ctx: Ctx, name: string, command: string[], flags: { ttl: string }): Promise<void> {
  if (name === '') throw new UsageError('a lock name must not be empty');
  const lease = await holdLease(ctx, flags.ttl);
  let key: Buffer;
  try {
    const r = await ctx.kv.unary<LockResponse>('idempotent', 'lock', (s, md, _co, cb) => s.lock.Lock({ name: Buffer.from(name), lease: String(lease.id) }, md, {}, cb), { signal: ctx.io.interrupt, ...NO_DEADLINE });
    key = r.key;
  } catch (e) {
    if (interrupted(ctx, e)) return;
    throw e;
  }
  try {
    const token = await fencingToken(ctx, key);
    announceLock(ctx, name, key, token, lease, command.length > 0);
    if (command.length === 0) await untilInterruptedOrLost(ctx, lease);
    else await runHolding(ctx, command, { [LOCK_TOKEN_ENV]: String(token), [LOCK_KEY_ENV]: key.toString('utf8') }, lease);
  } finally {
    // Delete the key (and revoke the lease, on close): the next in line takes over at once.
    await ctx.kv.unary('write', 'unlock', (s, md, co, cb) => s.lock.Unlock({ key }, md, co, cb), { timeoutMs: ctx.globals.commandTimeoutMs }).catch(() => undefined);
  }
}

/** The holder key's create revision, read after the grant (the Lock answer carries only the key). */
async function fencingToken(ctx: Ctx, key: Buffer): Promise<number> {
  const kv = await ctx.kv.get(key, ctx.call);
  if (kv === undefined) throw new CtlError('LEASE_LOST', `the lock key ${cellText(key)} vanished right after the grant (its lease expired?)`);
  return kv.createRevision;
}

function announceLock(ctx: Ctx, name: string, key: Buffer, token: number, lease: Lease, command: boolean): void {
  // The announcement goes to stderr when a command runs, so the command's own stdout stays clean for pipes.
  const say = (s: string): void => (ctx.format === 'json' ? ctx.io.out(s) : ctx.io.err(s));
  if (ctx.format === 'json') say(JSON.stringify({ name, ...bytesField('key', key), token, lease: lease.id.toString(16) }) + '\n');
  else if (ctx.format === 'simple') ctx.io.out(`${cellText(key)}\n`);
  else say(`locked ${name} (key ${cellText(key)}, fencing token ${token})${command ? '' : '; Ctrl-C releases it'}\n`);
}

/**
 * Run `command` with the lock's fencing token in its environment; resolves with its exit code (set as the
 * command's own). A lost lease stops the command (SIGTERM): it no longer holds the lock it was run under.
 */
async function runHolding(ctx: Ctx, command: string[], env: Record<string, string>, lease: Lease): Promise<void> {
  const [file, ...args] = command as [string, ...string[]];
  const child = spawn(file, args, { env: { ...process.env, ...env }, stdio: ['inherit', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => ctx.io.out(d));
  child.stderr.on('data', (d: Buffer) => ctx.io.err(d.toString()));
  const stop = (): void => {
    if (child.exitCode === null) child.kill('SIGTERM');
  };
  lease.signal.addEventListener('abort', stop, { once: true });
  ctx.io.interrupt.addEventListener('abort', stop, { once: true });
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', (e) => reject(new CtlError('COMMAND_FAILED', `cannot run ${file}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
    child.once('close', (c, signal) => resolve(c ?? (signal === null ? 1 : 128 + signalNumber(signal))));
  });
  lease.signal.removeEventListener('abort', stop);
  if (lease.lost !== undefined && !ctx.io.interrupt.aborted) throw new CtlError('LEASE_LOST', `lease ${lease.id.toString(16)} was lost while ${file} ran; it was stopped`);
  ctx.exitCode = code;
}

function signalNumber(signal: NodeJS.Signals): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ?? 0;
}

// ---- elect

async function elect(ctx: Ctx, name: string, proposal: string | undefined, flags: { listen?: boolean; ttl: string }): Promise<void> {
  if (name === '') throw new UsageError('an election name must not be empty');
  if (flags.listen) {
    if (proposal !== undefined) throw new UsageError('elect --listen takes no proposal');
    return observe(ctx, name);
  }
  if (proposal === undefined) throw new UsageError('elect needs a proposal (or --listen)');
  const lease = await holdLease(ctx, flags.ttl);
  let leader: NonNullable<CampaignResponse['leader']>;
  try {
    const req = { name: Buffer.from(name), lease: String(lease.id), value: Buffer.from(proposal) };
    const r = await ctx.kv.unary<CampaignResponse>('idempotent', 'campaign', (s, md, _co, cb) => s.election.Campaign(req, md, {}, cb), { signal: ctx.io.interrupt, ...NO_DEADLINE });
    leader = r.leader!;
  } catch (e) {
    if (interrupted(ctx, e)) return;
    throw e;
  }
  try {
    const token = Number(leader.rev);
    if (ctx.format === 'json') ctx.json({ name, ...bytesField('key', leader.key), value: proposal, token, lease: lease.id.toString(16) });
    else if (ctx.format === 'simple') ctx.io.out(`${cellText(leader.key)}\n${proposal}\n`);
    else ctx.io.out(`elected leader of ${name} with ${JSON.stringify(proposal)} (key ${cellText(leader.key)}, fencing token ${token}); Ctrl-C resigns\n`);
    await untilInterruptedOrLost(ctx, lease);
  } finally {
    await ctx.kv.unary('write', 'resign', (s, md, co, cb) => s.election.Resign({ leader }, md, co, cb), { timeoutMs: ctx.globals.commandTimeoutMs }).catch(() => undefined);
  }
}

/** Print the leader's value each time it changes (a new leader, or a proclaim) until Ctrl-C. */
async function observe(ctx: Ctx, name: string): Promise<void> {
  let last = '';
  try {
    await runStream<LeaderResponse>(
      ctx.kv,
      'observe',
      (s, md) => s.election.Observe({ name: Buffer.from(name) }, md),
      (m) => {
        if (m.kv === null) return;
        // A resumed stream repeats the current leader first: print only what is new.
        const id = `${m.kv.key.toString('hex')}@${m.kv.mod_revision}`;
        if (id === last) return;
        last = id;
        const token = Number(m.kv.create_revision);
        if (ctx.format === 'json') ctx.json({ name, ...bytesField('key', m.kv.key), ...bytesField('value', m.kv.value), token });
        else if (ctx.format === 'simple') ctx.io.out(Buffer.concat([m.kv.key, Buffer.from('\n'), m.kv.value, Buffer.from('\n')]));
        else ctx.io.out(`leader ${cellText(m.kv.value)}  (key ${cellText(m.kv.key)}, fencing token ${token})\n`);
      },
      { signal: ctx.io.interrupt, ...NO_DEADLINE },
    );
  } catch (e) {
    if (interrupted(ctx, e)) return;
    throw e;
  }
}
