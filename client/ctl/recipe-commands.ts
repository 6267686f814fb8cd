// elect and lock: the coordination recipes from the command line.
//
// Both use the client's recipes (client/recipes, docs/recipes.md: Lock and Election on KV, transactions and watches, with etcd's
// key layout <name>/<lease hex>), so fulcrumctl, programs using the client, etcdctl and etcd's own clients all
// wait in the same line. Each holder runs under a lease the recipe grants and keeps alive; the fencing token is
// the holder key's create revision: every later holder's is strictly greater.
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { Election, FulcrumClientError, Lock, type Ownership } from '../index.js';
import { type Ctx, CtlError, UsageError, type Register } from './context.js';
import { bytesField, cellText } from './format.js';
import { parseNonNegative } from './txn-parse.js';

/** etcdctl's lock and elect use a 60 s session; a shorter one frees a crashed holder's lock sooner. */
const RECIPE_TTL_SECONDS_DEFAULT = '10';
/** The environment variables a command run under `lock` gets. */
export const LOCK_TOKEN_ENV = 'FULCRUM_LOCK_TOKEN';
export const LOCK_KEY_ENV = 'FULCRUM_LOCK_KEY';

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
      .argument('[proposal]', "this candidate's value (what observers see while it leads)")
      .option('-l, --listen', 'observe the election instead of campaigning')
      .option('--ttl <seconds>', 'TTL of the lease that keeps the leadership', RECIPE_TTL_SECONDS_DEFAULT),
    (ctx, name, proposal, flags) => elect(ctx, name as string, proposal as string | undefined, flags as { listen?: boolean; ttl: string }),
  );
}

// ---- shared

function ttlSeconds(text: string): number {
  const ttl = parseNonNegative('--ttl', text);
  if (ttl === 0) throw new UsageError('--ttl must be at least 1 second');
  return ttl;
}

/**
 * Waiting in line lasts as long as it takes: only Ctrl-C ends it (the recipe then leaves the line). The command
 * timeout still bounds each request on the way (the lease grant, the reads).
 */
function waitOptions(ctx: Ctx): { signal: AbortSignal; timeoutMs: number } {
  return { signal: ctx.io.interrupt, timeoutMs: ctx.globals.commandTimeoutMs };
}

/** Resolves when interrupted; rejects with LEASE_LOST when the holder loses first (its lease or key gone). */
function untilInterruptedOrLost(ctx: Ctx, held: Ownership): Promise<void> {
  return new Promise((resolve, reject) => {
    if (ctx.io.interrupt.aborted) return resolve();
    if (held.lost !== undefined) return reject(lostError(held));
    held.once('lost', () => reject(lostError(held)));
    ctx.io.interrupt.addEventListener('abort', () => resolve(), { once: true });
  });
}

function lostError(held: Ownership): CtlError {
  const why = held.lost === undefined ? 'lost' : `${held.lost.reason}: ${held.lost.message.replace(/^fulcrum recipes: /, '')}`;
  return new CtlError('LEASE_LOST', `no longer holding ${cellText(held.key)} (${why})`);
}

/** Ctrl-C while still waiting in line: not a failure, the command just ends. */
function interrupted(ctx: Ctx, e: unknown): boolean {
  return ctx.io.interrupt.aborted && e instanceof FulcrumClientError && e.code === 'ABORTED';
}

// ---- lock

async function lock(ctx: Ctx, name: string, command: string[], flags: { ttl: string }): Promise<void> {
  if (name === '') throw new UsageError('a lock name must not be empty');
  let held;
  try {
    held = await new Lock(ctx.kv, name, { ttlSeconds: ttlSeconds(flags.ttl) }).lock(waitOptions(ctx));
  } catch (e) {
    if (interrupted(ctx, e)) return;
    throw e;
  }
  try {
    announceLock(ctx, name, held, command.length > 0);
    if (command.length === 0) await untilInterruptedOrLost(ctx, held);
    else await runHolding(ctx, command, { [LOCK_TOKEN_ENV]: String(held.token), [LOCK_KEY_ENV]: held.key.toString('utf8') }, held);
  } finally {
    // Delete the key and revoke the lease: the next in line takes over at once.
    await held.release();
  }
}

function announceLock(ctx: Ctx, name: string, held: Ownership, command: boolean): void {
  if (ctx.format === 'json') {
    ctx.json({ name, ...bytesField('key', held.key), token: held.token, lease: held.lease.id.toString(16) });
  } else if (ctx.format === 'simple') {
    ctx.io.out(`${cellText(held.key)}\n`);
  } else {
    // On stderr: with a command, its own stdout stays clean for pipes; without one, it is a status line.
    ctx.io.err(`locked ${name} (key ${cellText(held.key)}, fencing token ${held.token})${command ? '' : '; Ctrl-C releases it'}\n`);
  }
}

/**
 * Run `command` with the lock's fencing token in its environment; its exit code becomes fulcrumctl's. Losing the
 * lock stops the command (SIGTERM): it no longer holds what it was run under, and fulcrumctl exits 1.
 */
async function runHolding(ctx: Ctx, command: string[], env: Record<string, string>, held: Ownership): Promise<void> {
  const [file, ...args] = command as [string, ...string[]];
  const child = spawn(file, args, { env: { ...ctx.io.env, ...env }, stdio: ['inherit', 'pipe', 'pipe'] });
  child.stdout.on('data', (d: Buffer) => ctx.io.out(d));
  child.stderr.on('data', (d: Buffer) => ctx.io.err(d.toString()));
  const stop = (): void => {
    if (child.exitCode === null) child.kill('SIGTERM');
  };
  held.once('lost', stop);
  ctx.io.interrupt.addEventListener('abort', stop, { once: true });
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', (e) => reject(new CtlError('COMMAND_FAILED', `cannot run ${file}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
    child.once('close', (c, signal) => resolve(c ?? (signal === null ? 1 : 128 + signalNumber(signal))));
  });
  held.off('lost', stop);
  if (held.lost !== undefined) throw new CtlError('LEASE_LOST', `${lostError(held).message}; ${file} was stopped`);
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
  let leadership;
  try {
    leadership = await new Election(ctx.kv, name, { ttlSeconds: ttlSeconds(flags.ttl) }).campaign(proposal, waitOptions(ctx));
  } catch (e) {
    if (interrupted(ctx, e)) return;
    throw e;
  }
  try {
    const { key, token } = leadership;
    if (ctx.format === 'json') ctx.json({ name, ...bytesField('key', key), value: proposal, token, lease: leadership.lease.id.toString(16) });
    else if (ctx.format === 'simple') ctx.io.out(`${cellText(key)}\n${proposal}\n`);
    else ctx.io.out(`elected leader of ${name} with ${JSON.stringify(proposal)} (key ${cellText(key)}, fencing token ${token}); Ctrl-C resigns\n`);
    await untilInterruptedOrLost(ctx, leadership);
  } finally {
    await leadership.resign();
  }
}

/** Print the leader each time it changes (a new leader, or a proclamation) until Ctrl-C. */
async function observe(ctx: Ctx, name: string): Promise<void> {
  for await (const leader of new Election(ctx.kv, name).observe({ signal: ctx.io.interrupt })) {
    if (ctx.format === 'json') ctx.json({ name, ...bytesField('key', leader.key), ...bytesField('value', leader.value), token: leader.token });
    else if (ctx.format === 'simple') ctx.io.out(Buffer.concat([leader.key, Buffer.from('\n'), leader.value, Buffer.from('\n')]));
    else ctx.io.out(`leader ${cellText(leader.value)}  (key ${cellText(leader.key)}, fencing token ${leader.token})\n`);
  }
}
