// The put tail at high concurrency: how much of it is the load generator's own? A program that prints figures,
// never a test.
//
//   npm run bench:tail -- [--system fulcrum|etcd] [--connections 30] [--in-flight 1000] [--duration 20] [--warm-up 8]
//                         [--base-port 13970] [--from-source]
//
// Drives a local 3-member cluster's leader with closed-loop puts, as the put-30x1000 row of `npm run bench` does,
// and prints beside the latencies what the generator's own event loop did meanwhile: how late it ran (a Node
// process reads and answers every response on one thread, so a request whose answer arrives during a long turn
// waits for that turn to end) and its garbage-collection pauses. Run it once per system: the generator is the same.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { Command, Option } from 'commander';
import { positive } from './lib/args.js';
import { ClientPool, errorKey, unary } from './lib/clients.js';
import { findLeader } from './lib/leader.js';
import { etcdCluster, etcdVersion, fulcrumCluster } from './lib/systems.js';

/** Six loopback ports from here (inside the benchmark's 12400-13999 range, clear of bench:profile's). */
const BASE_PORT = 13_970;
/** Distinct keys the puts go over, as in the side-by-side put workloads. */
const PUT_KEYS = 1_000;
/** Deadline of each put; one that fails is retried by the same worker and not measured. */
const REQUEST_TIMEOUT_MS = 10_000;
const LEADER_WAIT_MS = 30_000;
/** Resolution of the event-loop delay histogram. */
const LOOP_RESOLUTION_MS = 10;
/** GC pauses at least this long are counted apart: they are what a request can notice. */
const LONG_GC_MS = 20;
/** Largest latency the histogram keeps exactly (ms); beyond it is clamped (the max is still printed). */
const LATENCIES_MAX = 5_000_000;

const program = new Command('npm run bench:tail --')
  .description('put latency at high concurrency beside the load generator\'s own event-loop delay and GC pauses')
  .addOption(new Option('--system <name>', 'the cluster to drive').choices(['fulcrum', 'etcd']).default('fulcrum'))
  .option('--connections <n>', 'client connections to the leader', positive, 30)
  .option('--in-flight <n>', 'puts in flight (closed-loop workers)', positive, 1_000)
  .option('--duration <s>', 'measured seconds', positive, 20)
  .option('--warm-up <s>', 'unmeasured seconds of the same load first', positive, 8)
  .option('--value-bytes <n>', 'bytes per value', positive, 256)
  .option('--base-port <p>', 'first of six loopback ports', positive, BASE_PORT)
  .option('--etcd <binary>', 'the etcd binary', 'etcd')
  .option('--from-source', 'run Fulcrum from the TypeScript sources instead of the build (npm run build)')
  .parse();
const o = program.opts<{ system: 'fulcrum' | 'etcd'; connections: number; inFlight: number; duration: number; warmUp: number; valueBytes: number; basePort: number; etcd: string; fromSource?: boolean }>();

interface Gc {
  readonly ms: number;
  readonly kind: string;
}

const GC_KINDS: Record<number, string> = { 1: 'scavenge', 2: 'mark-compact', 4: 'incremental marking', 8: 'weak callbacks' };

async function main(): Promise<void> {
  if (o.system === 'etcd' && etcdVersion(o.etcd) === undefined) throw new Error(`no ${o.etcd} binary: apt-get install etcd-server`);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-tail-'));
  const settings = { heartbeatMs: 100, electionMs: 1_000, snapshotCount: 10_000 };
  const cluster = o.system === 'etcd' ? etcdCluster(dir, o.basePort, settings, '', o.etcd) : fulcrumCluster(dir, o.basePort, settings, '', o.fromSource ? 'source' : 'build');
  cluster.start();
  try {
    const leader = await findLeader(cluster.endpoints, LEADER_WAIT_MS);
    const pool = new ClientPool([leader.endpoint], o.connections);
    await pool.ready(LEADER_WAIT_MS);
    report(await drive(pool));
    pool.close();
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Window {
  readonly latenciesMs: number[];
  readonly loop: ReturnType<typeof monitorEventLoopDelay>;
  readonly gcs: Gc[];
  readonly cpuCores: number;
  /** Failed puts in the window, by gRPC status and message. */
  readonly errors: Map<string, number>;
}

/** Closed-loop puts for warm-up + duration; only puts started and finished inside the window are kept. */
async function drive(pool: ClientPool): Promise<Window> {
  const value = Buffer.alloc(o.valueBytes, 0x61);
  const from = performance.now() + o.warmUp * 1000;
  const until = from + o.duration * 1000;
  const latenciesMs: number[] = [];
  const gcs: Gc[] = [];
  const errors = new Map<string, number>();
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.startTime >= from && e.startTime <= until) gcs.push({ ms: e.duration, kind: gcKind(e) });
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  let cpu0: NodeJS.CpuUsage | undefined;
  const opened = setTimeout(() => {
    loop.enable();
    cpu0 = process.cpuUsage();
  }, o.warmUp * 1000);
  const worker = async (w: number): Promise<void> => {
    const c = pool.for(w);
    for (let seq = 0; ; seq++) {
      const t0 = performance.now();
      if (t0 > until) return;
      const key = Buffer.from(`tail/${(w * 7_919 + seq) % PUT_KEYS}`);
      const ok = await unary(c.kv.Put.bind(c.kv) as never, { key, value }, REQUEST_TIMEOUT_MS).then(
        () => true,
        (e: unknown) => {
          if (t0 >= from) errors.set(errorKey(e), (errors.get(errorKey(e)) ?? 0) + 1);
          return false;
        },
      );
      const t1 = performance.now();
      if (ok && t0 >= from && t1 <= until && latenciesMs.length < LATENCIES_MAX) latenciesMs.push(t1 - t0);
    }
  };
  await Promise.all(Array.from({ length: o.inFlight }, (_, w) => worker(w)));
  clearTimeout(opened);
  loop.disable();
  gcObserver.disconnect();
  const cpu = process.cpuUsage(cpu0);
  return { latenciesMs, loop, gcs, cpuCores: (cpu.user + cpu.system) / 1000 / (o.duration * 1000), errors };
}

function gcKind(e: PerformanceEntry): string {
  const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
  return kind === undefined ? 'unknown' : (GC_KINDS[kind] ?? `kind ${kind}`);
}

function report(w: Window): void {
  const lat = [...w.latenciesMs].sort((a, b) => a - b);
  const q = (p: number): string => (lat.length === 0 ? '-' : lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]!.toFixed(0));
  const ms = (ns: number): string => (ns / 1e6).toFixed(0);
  const total = (gcs: readonly Gc[]): string => gcs.reduce((s, g) => s + g.ms, 0).toFixed(0);
  const long = w.gcs.filter((g) => g.ms >= LONG_GC_MS);
  console.log(`${o.system}, ${o.connections} connections, ${o.inFlight} puts in flight, ${o.duration} s after ${o.warmUp} s of warm-up`);
  console.log(`  puts/s ${(lat.length / o.duration).toFixed(0)}; latency ms p50 ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)} max ${q(1)}`);
  console.log(`  failed puts: ${[...w.errors].map(([k, n]) => `${n} ${k}`).join(', ') || 'none'}`);
  console.log(`  load generator CPU ${w.cpuCores.toFixed(2)} cores`);
  console.log(`  its event loop ran late by (ms) p50 ${ms(w.loop.percentile(50))} p90 ${ms(w.loop.percentile(90))} p99 ${ms(w.loop.percentile(99))} max ${ms(w.loop.max)}`);
  console.log(`  its GC: ${w.gcs.length} pauses, ${total(w.gcs)} ms; ${long.length} of them >= ${LONG_GC_MS} ms (${total(long)} ms): ${summariseKinds(long)}`);
}

function summariseKinds(gcs: readonly Gc[]): string {
  const byKind = new Map<string, number>();
  for (const g of gcs) byKind.set(g.kind, (byKind.get(g.kind) ?? 0) + 1);
  return [...byKind].map(([k, n]) => `${n} ${k}`).join(', ') || 'none';
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
