// MVCC store benchmark: a program that prints figures (never a test).
//
//   npx tsx bench/mvcc.ts [--keys N] [--batches N] [--reads N]
//
// 1. puts/s: batches of 100 puts (256-byte values) applied and committed into a LevelBackend, sync false then true
// 2. range reads/s: single-key reads of random existing keys, and 100-key range reads
// 3. reopen: load a store holding --keys keys (default 1,000,000) and report the time and process RSS
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelBackend } from '../storage/backend.js';
import { MvccStore } from '../storage/mvcc/index.js';

const PUTS_PER_BATCH = 100;
const VALUE_BYTES = 256;
/** Puts per LevelDB batch while loading the reopen data set (bigger batches load faster). */
const LOAD_PUTS_PER_BATCH = 5000;

interface Args {
  keys: number;
  batches: number;
  syncBatches: number;
  reads: number;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { keys: 1_000_000, batches: 500, syncBatches: 100, reads: 20_000 };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.replace(/^--/, '');
    const value = Number(argv[i + 1]);
    if (name === undefined || !(name in args) || !Number.isSafeInteger(value) || value <= 0) {
      throw new Error(`usage: bench/mvcc.ts [--keys N] [--batches N] [--syncBatches N] [--reads N]; bad ${argv[i]}`);
    }
    args[name as keyof Args] = value;
  }
  return args;
}

const keyOf = (i: number): Uint8Array => new Uint8Array(Buffer.from(`/registry/services/${i.toString().padStart(10, '0')}`));
const value = new Uint8Array(VALUE_BYTES).fill(0x61);
const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(0)} MB`;
const rate = (n: number, ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString('en-US')}/s`;

async function tempBackend(): Promise<{ backend: LevelBackend; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-bench-mvcc-'));
  return { backend: await LevelBackend.open(dir), dir };
}

/** Apply `batches` batches of 100 puts, each committed to LevelDB with the given sync, like the apply loop. */
async function benchPuts(store: MvccStore, backend: LevelBackend, batches: number, sync: boolean, firstKey: number): Promise<number> {
  const start = performance.now();
  for (let n = 0; n < batches; n++) {
    const batch = backend.batch();
    for (let i = 0; i < PUTS_PER_BATCH; i++) await store.put({ key: keyOf(firstKey + n * PUTS_PER_BATCH + i), value }, batch);
    await batch.write({ sync });
    store.committed(store.revision);
  }
  return performance.now() - start;
}

async function benchReads(store: MvccStore, keys: number, reads: number): Promise<{ single: number; ranges: number }> {
  let seed = 12345;
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  let start = performance.now();
  for (let i = 0; i < reads; i++) {
    const r = await store.range({ key: keyOf(Math.floor(random() * keys)) });
    if (r.kvs.length !== 1) throw new Error('bench: missing key');
  }
  const single = performance.now() - start;
  const rangeReads = Math.max(1, Math.floor(reads / 20));
  start = performance.now();
  for (let i = 0; i < rangeReads; i++) {
    const from = Math.floor(random() * (keys - 100));
    const r = await store.range({ key: keyOf(from), rangeEnd: keyOf(from + 100) });
    if (r.kvs.length !== 100) throw new Error('bench: short range');
  }
  return { single: (reads / single) * 1000, ranges: (rangeReads / (performance.now() - start)) * 1000 };
}

async function loadKeys(store: MvccStore, backend: LevelBackend, keys: number): Promise<void> {
  for (let first = 0; first < keys; first += LOAD_PUTS_PER_BATCH) {
    const batch = backend.batch();
    for (let i = first; i < Math.min(keys, first + LOAD_PUTS_PER_BATCH); i++) await store.put({ key: keyOf(i), value }, batch);
    await batch.write({ sync: false });
    store.committed(store.revision);
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  console.log(`mvcc bench: ${PUTS_PER_BATCH} puts per batch, ${VALUE_BYTES}-byte values, LevelBackend, node ${process.version}`);

  const puts = await tempBackend();
  let store = await MvccStore.open(puts.backend, { config: { prevKvInEvents: false } });
  const noSync = await benchPuts(store, puts.backend, args.batches, false, 0);
  console.log(`puts, sync false:  ${rate(args.batches * PUTS_PER_BATCH, noSync)}  (${args.batches} batches)`);
  const withSync = await benchPuts(store, puts.backend, args.syncBatches, true, args.batches * PUTS_PER_BATCH);
  console.log(`puts, sync true:   ${rate(args.syncBatches * PUTS_PER_BATCH, withSync)}  (${args.syncBatches} batches, ${(withSync / args.syncBatches).toFixed(2)} ms per batch)`);
  store = await MvccStore.open(puts.backend, { config: { prevKvInEvents: true } });
  const overwrite = await benchPuts(store, puts.backend, args.syncBatches, false, 0);
  console.log(`overwrites with prev kv in events, sync false: ${rate(args.syncBatches * PUTS_PER_BATCH, overwrite)}`);
  await puts.backend.close();
  await rm(puts.dir, { recursive: true, force: true });

  const big = await tempBackend();
  const loadStart = performance.now();
  store = await MvccStore.open(big.backend, { config: { prevKvInEvents: false } });
  await loadKeys(store, big.backend, args.keys);
  console.log(`loaded ${args.keys.toLocaleString('en-US')} keys in ${((performance.now() - loadStart) / 1000).toFixed(1)} s`);
  await big.backend.close();
  // Reopen in a fresh process, so its RSS is the store's and not what loading left behind.
  const child = fork(process.argv[1]!, ['--reopen', big.dir, '--keys', String(args.keys), '--reads', String(args.reads)], { execArgv: process.execArgv });
  const [code] = (await once(child, 'exit')) as [number];
  await rm(big.dir, { recursive: true, force: true });
  if (code !== 0) throw new Error(`reopen process exited with ${code}`);
}

async function reopenAndRead(dir: string, args: Args): Promise<void> {
  const rssBefore = process.memoryUsage().rss;
  const backend = await LevelBackend.open(dir);
  const reopenStart = performance.now();
  const store = await MvccStore.open(backend);
  const reopenMs = performance.now() - reopenStart;
  const mem = process.memoryUsage();
  console.log(`reopen ${store.indexedKeys.toLocaleString('en-US')} keys: ${(reopenMs / 1000).toFixed(2)} s; process rss ${mb(mem.rss)} (${mb(rssBefore)} before open), heap used ${mb(mem.heapUsed)}`);
  const reads = await benchReads(store, args.keys, args.reads);
  console.log(`range reads (1 key, random): ${Math.round(reads.single).toLocaleString('en-US')}/s`);
  console.log(`range reads (100 keys):      ${Math.round(reads.ranges).toLocaleString('en-US')}/s  (${Math.round(reads.ranges * 100).toLocaleString('en-US')} kvs/s)`);
  await backend.close();
}

const reopenAt = process.argv.indexOf('--reopen');
if (reopenAt >= 0) {
  const dir = process.argv[reopenAt + 1]!;
  const rest = process.argv.slice(2).filter((_, i) => i !== reopenAt - 2 && i !== reopenAt - 1);
  await reopenAndRead(dir, parseArgs(rest));
} else {
  await main();
}
