// get, put, del, txn, compact, watch: the key-value commands.
import type { Command } from 'commander';
import { FulcrumClientError, type KeyValue, type OpResult, type RangeOptions, type SortTarget, type TxnSpec, type WatchEvent } from '../index.js';
import { type Ctx, CtlError, type Register, UsageError } from './context.js';
import { cellText, headerJson, isoTime, KV_TABLE_HEADERS, kvJson, kvRow, kvSimple, NL, renderTable } from './format.js';
import { keyRange, parseCompare, parseHexId, parseNonNegative, parseOp, parseTxnText } from './txn-parse.js';

const SORT_TARGETS: Readonly<Record<string, SortTarget>> = { KEY: 'key', VERSION: 'version', CREATE: 'createRevision', MODIFY: 'modRevision', MOD: 'modRevision', VALUE: 'value' };

interface GetFlags {
  prefix?: boolean;
  fromKey?: boolean;
  rev?: string;
  at?: string;
  limit?: string;
  sortBy?: string;
  order?: string;
  keysOnly?: boolean;
  countOnly?: boolean;
  printValueOnly?: boolean;
  consistency: string;
}

export function registerKvCommands(program: Command, register: Register): void {
  register(
    program
      .command('get')
      .description('read a key, a range [key, range_end), or every key with a prefix')
      .argument('<key>')
      .argument('[range_end]')
      .option('--prefix', 'every key starting with <key>')
      .option('--from-key', 'every key from <key> on (byte order)')
      .option('--rev <revision>', 'read the store as it was at this revision')
      .option('--at <time>', 'read the store as it was at this wall-clock time (ISO 8601; Fulcrum HLC)')
      .option('--limit <n>', 'at most n keys')
      .option('--sort-by <target>', 'KEY, CREATE, MODIFY, VERSION or VALUE')
      .option('--order <order>', 'ASCEND or DESCEND')
      .option('--keys-only', 'keys without values')
      .option('--count-only', 'only how many keys match')
      .option('--print-value-only', 'only the values, one per line')
      .option('--consistency <l|s>', 'l: linearizable (default), s: serializable (the member answers alone)', 'l'),
    (ctx, key, end, flags) => get(ctx, key as string, end as string | undefined, flags as GetFlags),
  );
  register(
    program
      .command('put')
      .description('write a value (read from stdin when not given: files, binary values)')
      .argument('<key>')
      .argument('[value]')
      .option('--lease <id>', 'bind the key to this lease (hex)')
      .option('--prev-kv', 'show the version this put replaced'),
    (ctx, key, value, flags) => put(ctx, key as string, value as string | undefined, flags as { lease?: string; prevKv?: boolean }),
  );
  register(
    program
      .command('del')
      .alias('delete')
      .description('delete a key, a range [key, range_end), or every key with a prefix')
      .argument('<key>')
      .argument('[range_end]')
      .option('--prefix', 'every key starting with <key>')
      .option('--from-key', 'every key from <key> on')
      .option('--prev-kv', 'show what was deleted'),
    (ctx, key, end, flags) => del(ctx, key as string, end as string | undefined, flags as { prefix?: boolean; fromKey?: boolean; prevKv?: boolean }),
  );
  register(
    program
      .command('txn')
      .description('a transaction: compares, then success ops, then failure ops (from stdin, or the flags)')
      .option('--if <compare>', 'a compare, e.g. \'mod("k") > "3"\' (repeatable)', collect, [])
      .option('--then <op>', "an op if every compare holds, e.g. 'put k v' (repeatable)", collect, [])
      .option('--else <op>', "an op otherwise, e.g. 'get k' (repeatable)", collect, []),
    (ctx, flags) => txn(ctx, flags as { if: string[]; then: string[]; else: string[] }),
  );
  register(
    program
      .command('compact')
      .description('discard the history below a revision')
      .argument('<revision>')
      .option('--physical', 'wait until the space is reclaimed on disk'),
    (ctx, rev, flags) => compact(ctx, rev as string, flags as { physical?: boolean }),
  );
  register(
    program
      .command('watch')
      .description('print changes to a key, range or prefix until interrupted (Ctrl-C)')
      .argument('<key>')
      .argument('[range_end]')
      .option('--prefix', 'every key starting with <key>')
      .option('--rev <revision>', 'start from this revision (past events first)')
      .option('--prev-kv', 'show the previous version with each event'),
    (ctx, key, end, flags) => watch(ctx, key as string, end as string | undefined, flags as { prefix?: boolean; rev?: string; prevKv?: boolean }),
  );
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

// ---- get

export function rangeOptions(flags: GetFlags): RangeOptions {
  if (flags.rev !== undefined && flags.at !== undefined) throw new UsageError('give --rev or --at, not both');
  const order = flags.order?.toUpperCase();
  if (order !== undefined && order !== 'ASCEND' && order !== 'DESCEND') throw new UsageError(`--order must be ASCEND or DESCEND, got ${JSON.stringify(flags.order)}`);
  const target = flags.sortBy === undefined ? undefined : SORT_TARGETS[flags.sortBy.toUpperCase()];
  if (flags.sortBy !== undefined && target === undefined) throw new UsageError(`--sort-by must be KEY, CREATE, MODIFY, VERSION or VALUE, got ${JSON.stringify(flags.sortBy)}`);
  if (flags.consistency !== 'l' && flags.consistency !== 's') throw new UsageError(`--consistency must be l or s, got ${JSON.stringify(flags.consistency)}`);
  return {
    ...(flags.rev !== undefined ? { revision: parseNonNegative('--rev', flags.rev) } : {}),
    ...(flags.at !== undefined ? { at: parseTime(flags.at) } : {}),
    ...(flags.limit !== undefined ? { limit: parseNonNegative('--limit', flags.limit) } : {}),
    ...(order !== undefined || target !== undefined ? { sort: { target: target ?? 'key', order: order === 'DESCEND' ? 'descend' : 'ascend' } } : {}),
    keysOnly: flags.keysOnly ?? false,
    countOnly: flags.countOnly ?? false,
    serializable: flags.consistency === 's',
  } as RangeOptions;
}

export function parseTime(text: string): Date {
  const d = new Date(text);
  if (!/^\d{4}-\d\d-\d\d/.test(text) || Number.isNaN(d.getTime())) throw new UsageError(`--at must be an ISO 8601 time like 2026-01-31T12:00:00Z, got ${JSON.stringify(text)}`);
  return d;
}

function targetRange(verb: string, key: string, end: string | undefined, prefix: boolean | undefined, fromKey: boolean | undefined): ReturnType<typeof keyRange> {
  if (fromKey) {
    if (prefix || end !== undefined) throw new UsageError(`${verb}: --from-key goes with neither --prefix nor a range end`);
    return { start: key };
  }
  return keyRange(verb, end === undefined ? [key] : [key, end], prefix ?? false);
}

async function get(ctx: Ctx, key: string, end: string | undefined, flags: GetFlags): Promise<void> {
  const range = targetRange('get', key, end, flags.prefix, flags.fromKey);
  const r = await ctx.kv.range(range, { ...rangeOptions(flags), ...ctx.call }).catch((e: unknown) => {
    // Plain etcd has no hybrid clock: say what is missing rather than "unknown service".
    if (flags.at !== undefined && e instanceof FulcrumClientError && e.code === 'NOT_SUPPORTED') {
      throw new FulcrumClientError('NOT_SUPPORTED', `--at needs Fulcrum's hybrid-clock reads, which this member does not serve (${e.message})`, false);
    }
    throw e;
  });
  if (ctx.format === 'json') {
    ctx.json({ header: headerJson(r.header), count: r.count, more: r.more, kvs: r.kvs.map((kv) => kvJson(kv, { keysOnly: flags.keysOnly ?? false })) });
  } else if (flags.countOnly) {
    ctx.io.out(`${r.count}\n`);
  } else if (flags.printValueOnly) {
    for (const kv of r.kvs) ctx.io.out(Buffer.concat([kv.value, NL]));
  } else if (ctx.format === 'simple') {
    for (const kv of r.kvs) ctx.io.out(kvSimple(kv, { keysOnly: flags.keysOnly ?? false }));
  } else if (flags.keysOnly) {
    ctx.io.out(renderTable(['KEY', 'MOD REVISION'], r.kvs.map((kv) => [cellText(kv.key), String(kv.modRevision)])));
  } else {
    ctx.io.out(renderTable(KV_TABLE_HEADERS, r.kvs.map(kvRow)));
    if (r.more) ctx.io.out(`(${r.count - r.kvs.length} more; raise --limit to see them)\n`);
  }
}

// ---- put, del

async function put(ctx: Ctx, key: string, valueArg: string | undefined, flags: { lease?: string; prevKv?: boolean }): Promise<void> {
  const lease = flags.lease === undefined ? undefined : parseHexId('--lease', flags.lease);
  const value = valueArg ?? (await readValueFromStdin(ctx));
  const r = await ctx.kv.put(key, value, { ...(lease === undefined ? {} : { lease }), prevKv: flags.prevKv ?? false, ...ctx.call });
  if (ctx.format === 'json') {
    ctx.json({ header: headerJson(r.header), revision: r.revision, hlc: r.hlc.toString(), prevKv: r.prevKv === undefined ? null : kvJson(r.prevKv) });
    return;
  }
  ctx.io.out('OK\n');
  if (r.prevKv !== undefined) printKvs(ctx, [r.prevKv]);
}

/** The whole of stdin, byte for byte (`fulcrumctl put config/app < app.json`); a terminal gets no prompt. */
async function readValueFromStdin(ctx: Ctx): Promise<Buffer> {
  if (ctx.io.stdin.isTTY === true) throw new UsageError('put needs a value (or one piped on stdin)');
  const chunks: Buffer[] = [];
  for await (const c of ctx.io.stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : c);
  return Buffer.concat(chunks);
}

async function del(ctx: Ctx, key: string, end: string | undefined, flags: { prefix?: boolean; fromKey?: boolean; prevKv?: boolean }): Promise<void> {
  const range = targetRange('del', key, end, flags.prefix, flags.fromKey);
  const r = await ctx.kv.delete(range, { prevKv: flags.prevKv ?? false, ...ctx.call });
  if (ctx.format === 'json') {
    ctx.json({ header: headerJson(r.header), deleted: r.deleted, prevKvs: r.prevKvs.map((kv) => kvJson(kv)) });
    return;
  }
  ctx.io.out(`${r.deleted}\n`);
  if (r.prevKvs.length > 0) printKvs(ctx, r.prevKvs);
}

/** Key versions in the current (non-JSON) format. */
function printKvs(ctx: Ctx, kvs: KeyValue[]): void {
  if (ctx.format === 'simple') for (const kv of kvs) ctx.io.out(kvSimple(kv));
  else ctx.io.out(renderTable(KV_TABLE_HEADERS, kvs.map(kvRow)));
}

// ---- txn

async function txn(ctx: Ctx, flags: { if: string[]; then: string[]; else: string[] }): Promise<void> {
  const fromFlags = flags.if.length + flags.then.length + flags.else.length > 0;
  const spec: TxnSpec = fromFlags
    ? { compare: flags.if.map(parseCompare), success: flags.then.map(parseOp), failure: flags.else.map(parseOp) }
    : parseTxnText(await readTxnFromStdin(ctx));
  const r = await ctx.kv.runTxn(spec, ctx.call);
  if (ctx.format === 'json') {
    ctx.json({ header: headerJson(r.header), succeeded: r.succeeded, results: r.results.map(opResultJson) });
    return;
  }
  ctx.io.out(r.succeeded ? 'SUCCESS\n' : 'FAILURE\n');
  printOpResults(ctx, r);
}

/** etcdctl's interactive prompts, shown only to a person at a terminal (a pipe gets none). */
async function readTxnFromStdin(ctx: Ctx): Promise<string> {
  const prompt = ctx.io.stdin.isTTY === true;
  if (prompt) ctx.io.err('compares (e.g. mod("key") > "0"), then an empty line:\n');
  const lines: string[] = [];
  let blanks = 0;
  let pending = '';
  for await (const chunk of ctx.io.stdin) {
    pending += chunk.toString();
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      lines.push(line);
      if (line.trim() !== '') continue;
      blanks++;
      if (blanks === 3) return lines.join('\n');
      if (prompt) ctx.io.err(blanks === 1 ? 'success ops (get, put, del), then an empty line:\n' : 'failure ops (get, put, del), then an empty line:\n');
    }
  }
  return [...lines, pending].join('\n');
}

function opResultJson(r: OpResult): Record<string, unknown> {
  switch (r.type) {
    case 'get':
      return { type: 'get', count: r.count, more: r.more, kvs: r.kvs.map((kv) => kvJson(kv)) };
    case 'put':
      return { type: 'put', prevKv: r.prevKv === undefined ? null : kvJson(r.prevKv) };
    case 'delete':
      return { type: 'delete', deleted: r.deleted, prevKvs: r.prevKvs.map((kv) => kvJson(kv)) };
    case 'txn':
      return { type: 'txn', succeeded: r.succeeded, results: r.results.map(opResultJson) };
  }
}

function printOpResults(ctx: Ctx, r: { results: OpResult[] }): void {
  for (const op of r.results) {
    if (op.type === 'put') ctx.io.out('OK\n');
    else if (op.type === 'delete') ctx.io.out(`${op.deleted}\n`);
    else if (op.type === 'get') printKvs(ctx, op.kvs);
    else printOpResults(ctx, op);
  }
}

// ---- compact

async function compact(ctx: Ctx, rev: string, flags: { physical?: boolean }): Promise<void> {
  const revision = parseNonNegative('revision', rev);
  // Physical compaction waits for the disk: give it more than one command timeout.
  const header = await ctx.kv.compact(revision, { physical: flags.physical ?? false, ...ctx.call, ...(flags.physical ? { timeoutMs: ctx.globals.commandTimeoutMs * 6 } : {}) });
  if (ctx.format === 'json') ctx.json({ header: headerJson(header), compactRevision: revision, physical: flags.physical ?? false });
  else ctx.io.out(`compacted revision ${revision}\n`);
}

// ---- watch

async function watch(ctx: Ctx, key: string, end: string | undefined, flags: { prefix?: boolean; rev?: string; prevKv?: boolean }): Promise<void> {
  const range = keyRange('watch', end === undefined ? [key] : [key, end], flags.prefix ?? false);
  const startRevision = flags.rev === undefined ? undefined : parseNonNegative('--rev', flags.rev);
  if (startRevision !== undefined && startRevision > 0) await refuseCompacted(ctx, range, startRevision);
  const w = ctx.kv.watch(range, { ...(startRevision === undefined ? {} : { startRevision }), prevKv: flags.prevKv ?? false, signal: ctx.io.interrupt });
  // Say when the watch is in place, on stderr: a script (or a test) can start writing once it sees this line.
  await w.ready;
  ctx.io.err(`watching ${describeRange(key, end, flags.prefix)} from revision ${startRevision ?? 'now'} (Ctrl-C to stop)\n`);
  for await (const e of w) printEvent(ctx, e);
  if (!ctx.io.interrupt.aborted) throw new CtlError('WATCH_CANCELED', 'the watch ended');
}

/**
 * A watch from a compacted revision is accepted by the server and then cancelled, so the "watching" line would
 * come before the error; a count at that revision fails the same way first, leaving one error line. Any other
 * failure (a future revision is fine for a watch, not for a read) is left to the watch itself.
 */
async function refuseCompacted(ctx: Ctx, range: ReturnType<typeof keyRange>, revision: number): Promise<void> {
  try {
    await ctx.kv.range(range, { revision, countOnly: true, ...ctx.call });
  } catch (e) {
    if ((e as { code?: string }).code === 'COMPACTED') throw e;
  }
}

function describeRange(key: string, end: string | undefined, prefix: boolean | undefined): string {
  if (prefix) return `prefix ${JSON.stringify(key)}`;
  return end === undefined ? `key ${JSON.stringify(key)}` : `range [${JSON.stringify(key)}, ${JSON.stringify(end)})`;
}

function printEvent(ctx: Ctx, e: WatchEvent): void {
  const type = e.type === 'put' ? 'PUT' : 'DELETE';
  if (ctx.format === 'json') {
    ctx.json({ type, revision: e.revision, kv: kvJson(e.kv), prevKv: e.prevKv === undefined ? null : kvJson(e.prevKv) });
  } else if (ctx.format === 'simple') {
    // etcdctl's shape: the type, the key, the value (and the previous value first with --prev-kv).
    const parts = [Buffer.from(`${type}\n`), ...(e.prevKv ? [kvSimple(e.prevKv)] : []), kvSimple(e.kv, { keysOnly: e.type === 'delete' })];
    ctx.io.out(Buffer.concat(parts));
  } else {
    const prev = e.prevKv === undefined ? '' : `  (was ${cellText(e.prevKv.value)})`;
    const value = e.type === 'put' ? ` = ${cellText(e.kv.value)}` : '';
    ctx.io.out(`${type.padEnd(6)} rev ${String(e.revision).padEnd(6)} ${isoTime(e.kv.modTime) || '-'}  ${cellText(e.kv.key)}${value}${prev}\n`);
  }
}
