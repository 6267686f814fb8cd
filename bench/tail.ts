// The put tail at high concurrency: how much of it is the load generator's own? A program that prints figures,
// never a test.
//
//   npm run bench:tail -- [--system fulcrum|etcd] [--connections 30] [--in-flight 1000] [--duration 20] [--warm-up 8]
//                         [--client engine|grpc-js] [--base-port 13970] [--from-source]
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
import { CLIENT_STACKS, ClientPool, type ClientStack } from './lib/clients.js';
import { findLeader } from './lib/leader.js';
import { runPhase, type PhaseResult } from './lib/phase.js';
import { cpuMeter, etcdCluster, etcdVersion, fulcrumCluster, type BenchCluster } from './lib/systems.js';

/** Six loopback ports from here (inside the benchmark's 12400-13999 range, clear of bench:profile's). */
const BASE_PORT = 13_970;
/** Distinct keys the puts go over, as in the side-by-side put workloads (bench/lib/workloads.ts). */
const PUT_KEYS = 1_000;
/** Deadline of each put; a failed put is counted by kind (bench/lib/phase.ts), not measured. */
const REQUEST_TIMEOUT_MS = 10_000;
const LEADER_WAIT_MS = 30_000;
/** Resolution of the event-loop delay histogram. */
const LOOP_RESOLUTION_MS = 10;
/** GC pauses at least this long are counted apart: they are what a request can notice. */
const LONG_GC_MS = 20;

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
  .addOption(new Option('--client <stack>', 'client stack of the puts: Fulcrum\'s HTTP/2 client (light) or grpc-js (the figures before the thirty-fifth session)').choices([...CLIENT_STACKS]).default('engine'))
  .option('--from-source', 'run Fulcrum from the TypeScript sources instead of the build (npm run build)')
  .parse();
const o = program.opts<{ system: 'fulcrum' | 'etcd'; connections: number; inFlight: number; duration: number; warmUp: number; valueBytes: number; basePort: number; etcd: string; fromSource?: boolean; client: ClientStack }>();

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
    const pool = new ClientPool([leader.endpoint], o.connections, o.client);
    try {
      await pool.ready(LEADER_WAIT_MS);
      report(await drive(cluster, pool));
    } finally {
      pool.close();
    }
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The phase, and what the generator's event loop and GC did during its measured window. */
interface Window {
  readonly phase: PhaseResult;
  readonly loop: ReturnType<typeof monitorEventLoopDelay>;
  readonly gcs: Gc[];
}

/**
 * The put-30x1000 row's phase (bench/lib/phase.ts: closed-loop workers, warm-up, measured window, errors by kind).
 * The window hook that measures the servers' CPU also starts and stops the generator's own meters, so that they
 * cover exactly the window.
 */
async function drive(cluster: BenchCluster, pool: ClientPool): Promise<Window> {
  const value = new Uint8Array(o.valueBytes).fill(0x61);
  const gcs: Gc[] = [];
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  let measuring = false;
  const gcObserver = new PerformanceObserver((list) => {
    if (measuring) for (const e of list.getEntries()) gcs.push({ ms: e.duration, kind: gcKind(e) });
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const phase = await runPhase({
    name: 'put-tail',
    description: `put ${o.valueBytes}-byte values, ${o.connections} conn × ${o.inFlight} in flight, to the leader`,
    target: pool.connections[0]!.endpoint,
    inFlight: o.inFlight,
    connections: o.connections,
    warmupMs: o.warmUp * 1000,
    durationMs: o.duration * 1000,
    serverCpu: () => {
      const servers = cpuMeter(cluster);
      loop.enable();
      measuring = true;
      return () => {
        measuring = false;
        loop.disable();
        return servers().totalCores;
      };
    },
    op: async (w, seq) => {
      const key = Buffer.from(`/bench/tail/${((seq * o.inFlight + w) % PUT_KEYS).toString().padStart(6, '0')}`);
      await pool.for(w).calls.put({ key, value }, REQUEST_TIMEOUT_MS);
    },
  });
  gcObserver.disconnect();
  return { phase, loop, gcs };
}

function gcKind(e: PerformanceEntry): string {
  const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
  return kind === undefined ? 'unknown' : (GC_KINDS[kind] ?? `kind ${kind}`);
}

function report(w: Window): void {
  const { phase: p, loop } = w;
  const ms = (ns: number): string => (ns / 1e6).toFixed(0);
  const total = (gcs: readonly Gc[]): string => gcs.reduce((s, g) => s + g.ms, 0).toFixed(0);
  const long = w.gcs.filter((g) => g.ms >= LONG_GC_MS);
  const errors = Object.entries(p.errors.byKind).map(([k, n]) => `${n} ${k}`).join(', ') || 'none';
  console.log(`${o.system}, ${o.connections} connections, ${o.inFlight} puts in flight, ${(p.windowMs / 1000).toFixed(1)} s after ${(p.warmupActualMs / 1000).toFixed(1)} s of warm-up`);
  console.log(`  puts/s ${p.opsPerSec.toFixed(0)}; latency ms p50 ${p.latency.p50Ms.toFixed(0)} p90 ${p.latency.p90Ms.toFixed(0)} p99 ${p.latency.p99Ms.toFixed(0)} max ${p.latency.maxMs.toFixed(0)}`);
  console.log(`  failed puts: ${errors}`);
  console.log(`  servers' CPU ${p.serverCpuCores?.toFixed(2) ?? '-'} cores; load generator CPU ${p.clientCpuCores.toFixed(2)} cores`);
  console.log(`  its event loop ran late by (ms) p50 ${ms(loop.percentile(50))} p90 ${ms(loop.percentile(90))} p99 ${ms(loop.percentile(99))} max ${ms(loop.max)}`);
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
