// WAL throughput against raw LevelDB, side by side in one run:
//   raw: classic-level batches of 100 puts (256-byte values) written with { sync: true }
//   wal: WriteAheadLog.save(hard state, 100 entries of 256 bytes): a Ready-sized group commit, including
//        encoding, CRC-32C on write, stale-suffix bookkeeping, the MemoryStorage update, and a snapshot
//        marker + compaction every SNAPSHOT_EVERY_BATCHES batches so memory stays flat (as a node would).
// The two alternate in rounds so that drift in the disk's behaviour hits both alike.
// Run: npx tsx bench/wal.ts
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { EntryType, type Entry } from '../raft/types.js';
import { WriteAheadLog } from '../storage/wal/index.js';
import { LatencyHistogram, type LatencySummary } from './lib/histogram.js';

const ENTRIES_PER_BATCH = 100;
const VALUE_BYTES = 256;
// Many short alternating rounds: the disk is shared and its fsync latency drifts; both sides see the same drift.
const ROUNDS = 10;
const ROUND_MS = 1_200;
const WARMUP_MS = 500;
const SNAPSHOT_EVERY_BATCHES = 100;

interface Result {
  batches: number;
  ms: number;
  latenciesMs: number[];
}

const silent = { info: () => {}, warn: () => {}, error: () => {} };
const value = new Uint8Array(VALUE_BYTES).map((_, i) => (i * 7) & 0xff);

function key(i: number): Uint8Array {
  const k = new Uint8Array(8);
  new DataView(k.buffer).setUint32(0, Math.floor(i / 2 ** 32));
  new DataView(k.buffer).setUint32(4, i >>> 0);
  return k;
}

async function timed(durationMs: number, once: () => Promise<void>): Promise<Result> {
  const latenciesMs: number[] = [];
  const start = performance.now();
  let batches = 0;
  while (performance.now() - start < durationMs) {
    const t = performance.now();
    await once();
    latenciesMs.push(performance.now() - t);
    batches++;
  }
  return { batches, ms: performance.now() - start, latenciesMs };
}

async function rawRound(db: ClassicLevel<Uint8Array, Uint8Array>, next: { i: number }, ms: number): Promise<Result> {
  return timed(ms, async () => {
    const b = db.batch();
    for (let k = 0; k < ENTRIES_PER_BATCH; k++) b.put(key(next.i++), value);
    await b.write({ sync: true });
  });
}

async function walRound(wal: WriteAheadLog, ms: number): Promise<Result> {
  let batch = 0;
  return timed(ms, async () => {
    const first = wal.storage.lastIndex() + 1;
    const entries: Entry[] = [];
    for (let i = first; i < first + ENTRIES_PER_BATCH; i++) entries.push({ index: i, term: 1, type: EntryType.Normal, data: value });
    await wal.save({ term: 1, vote: 1, commit: first - 1 }, entries);
    if (++batch % SNAPSHOT_EVERY_BATCHES === 0) await snapshotAndCompact(wal);
  });
}

async function snapshotAndCompact(wal: WriteAheadLog): Promise<void> {
  const commit = wal.storage.initialState().hardState.commit;
  const metadata = { index: commit, term: 1, confState: { voters: [1, 2, 3], learners: [] } };
  const w = await wal.snapshots.create(metadata);
  await w.write(value);
  await w.commit();
  await wal.markSnapshot(metadata);
  await wal.compact(commit);
}

function perSec(r: Result): number {
  return (r.batches * 1000) / r.ms;
}

/** p50 and p99 through the load programs' histogram, so every bench reports percentiles the same way. */
function latencySummary(latenciesMs: readonly number[]): LatencySummary {
  const h = new LatencyHistogram();
  try {
    for (const ms of latenciesMs) h.recordMs(ms);
    return h.summary();
  } finally {
    h.destroy();
  }
}

function merge(rs: Result[]): Result {
  return {
    batches: rs.reduce((n, r) => n + r.batches, 0),
    ms: rs.reduce((n, r) => n + r.ms, 0),
    latenciesMs: rs.flatMap((r) => r.latenciesMs),
  };
}

function row(name: string, r: Result): string {
  const bps = perSec(r);
  const latency = latencySummary(r.latenciesMs);
  const mbps = (bps * ENTRIES_PER_BATCH * VALUE_BYTES) / (1024 * 1024);
  return [
    name.padEnd(34),
    bps.toFixed(0).padStart(9),
    (bps * ENTRIES_PER_BATCH).toFixed(0).padStart(11),
    mbps.toFixed(1).padStart(7),
    latency.p50Ms.toFixed(2).padStart(8),
    latency.p99Ms.toFixed(2).padStart(8),
  ].join(' ');
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'fulcrum-bench-wal-'));
  try {
    const db = new ClassicLevel<Uint8Array, Uint8Array>(join(root, 'raw'), { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    const wal = await WriteAheadLog.open(join(root, 'wal'), { logger: silent });
    const next = { i: 1 };
    await rawRound(db, next, WARMUP_MS);
    await walRound(wal, WARMUP_MS);
    const raw: Result[] = [];
    const walRs: Result[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await rawRound(db, next, ROUND_MS));
      walRs.push(await walRound(wal, ROUND_MS));
    }
    await wal.close();
    await db.close();
    const rawAll = merge(raw);
    const walAll = merge(walRs);
    console.log(`WAL benchmark: ${ENTRIES_PER_BATCH} x ${VALUE_BYTES}-byte values per synced batch, ${ROUNDS} alternating rounds of ${ROUND_MS} ms, dir ${tmpdir()}`);
    console.log(`${'workload'.padEnd(34)} ${'batches/s'.padStart(9)} ${'entries/s'.padStart(11)} ${'MiB/s'.padStart(7)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}`);
    console.log(row('raw classic-level batch (sync)', rawAll));
    console.log(row('WriteAheadLog.save (hs + entries)', walAll));
    const ratio = perSec(walAll) / perSec(rawAll);
    console.log(`ratio wal/raw: ${ratio.toFixed(2)} (target >= 0.50) ${ratio >= 0.5 ? 'OK' : 'BELOW TARGET'}`);
    const pairRatios = raw.map((r, k) => perSec(walRs[k]!) / perSec(r)).sort((a, b) => a - b);
    console.log(`median of per-round ratios: ${pairRatios[Math.floor(pairRatios.length / 2)]!.toFixed(2)}`);
    console.log(`per round batches/s raw: ${raw.map((r) => perSec(r).toFixed(0)).join(', ')}`);
    console.log(`per round batches/s wal: ${walRs.map((r) => perSec(r).toFixed(0)).join(', ')}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

await main();
