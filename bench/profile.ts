// Where the time of one operation goes, on a local 3-member Fulcrum cluster: a program that prints figures, never a
// test. It complements `npm run bench` (which compares against etcd) when hunting a slowdown.
//
//   npm run bench:profile -- [--op put|get|sget|load] [--in-flight 100] [--duration 5] [--warm-up 5] [--cpu-prof DIR] [--trace FILE]
//                            [--system etcd] [--base-port 13940]
//
// Prints throughput, latency and CPU milliseconds per operation of each member and of the load generator (from
// /proc, so a member that is mostly waiting shows a small figure). --cpu-prof writes one .cpuprofile per member
// covering only the measured part (flame graphs in Chrome DevTools or speedscope). --trace runs the members with
// FULCRUM_TRACE=1 and writes their merged timeline (see node/trace.ts), one line per event, oldest first.
// Two runs at once on different --base-port values (say two builds, or a setting on and off) share the machine's
// noise, which on a shared 2-core machine moves figures from one minute to the next by more than most changes do.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { nonNegative, positive } from './lib/args.js';
import { EtcdTestClient } from '../node/testing/etcd-client.js';
import { ProcessCluster } from '../node/testing/process-cluster.js';
import { findLeader } from './lib/leader.js';
import { SERVER_CONFIG_DEFAULTS } from '../node/config.js';
import { etcdCluster, etcdVersion, processCpuMs } from './lib/systems.js';

const HOOK = fileURLToPath(new URL('./lib/cpu-profile-hook.mjs', import.meta.url));
/** Loopback ports of the three members (inside the benchmark's 12400-13999 range): six from --base-port. */
const BASE_PORT = 13_940;
/** Puts per transaction of --op load: the size workload's (bench/lib/workloads.ts). */
const LOAD_PUTS_PER_TXN = 100;
/** Trace lines kept in memory per member (the oldest are dropped beyond it). */
const TRACE_LINES_MAX = 2_000_000;

/** Seconds of unmeasured load before the window: a fresh member runs its hot paths unoptimised for seconds. */
const WARM_UP_S = 5;

const program = new Command('npm run bench:profile --')
  .description('CPU per operation, CPU profiles and a request timeline of a local 3-member cluster')
  .addOption(new Option('--op <op>', 'put, linearizable get, serializable get, or load (transactions of 100 puts of new keys, as the size workload)').choices(['put', 'get', 'sget', 'load']).default('put'))
  .option('--in-flight <n>', 'requests in flight (one connection)', positive, 100)
  .option('--duration <s>', 'measured seconds', positive, 5)
  .option('--warm-up <s>', 'unmeasured seconds of the same load first, so that the members\' hot code is compiled (0: none)', nonNegative, WARM_UP_S)
  .option('--value-bytes <n>', 'bytes per value', positive, 256)
  .option('--cpu-prof <dir>', 'write a .cpuprofile per member here')
  .option('--trace <file>', 'write the members\' merged FULCRUM_TRACE timeline here')
  .option('--base-port <p>', 'first of the six loopback ports (two runs at once need different ones)', positive, BASE_PORT)
  .addOption(new Option('--system <system>', 'measure etcd (the `etcd` binary) under the same load instead, for CPU per operation side by side').choices(['fulcrum', 'etcd']).default('fulcrum'));

interface Options {
  op: 'put' | 'get' | 'sget' | 'load';
  inFlight: number;
  duration: number;
  warmUp: number;
  valueBytes: number;
  cpuProf?: string;
  trace?: string;
  basePort: number;
  system: 'fulcrum' | 'etcd';
}

/** The three members under measurement, whichever system. */
interface Measured {
  readonly endpoints: readonly string[];
  readonly members: ReadonlyArray<{ readonly name: string; readonly endpoint: string; readonly pid: number | undefined; signal(s: NodeJS.Signals): void }>;
  stop(): Promise<void>;
}

/** CPU seconds (user + system) a process has used; NaN when it is unknown or gone. */
function cpuSeconds(pid: number | undefined): number {
  const ms = pid === undefined ? undefined : processCpuMs(pid);
  return ms === undefined ? Number.NaN : ms / 1000;
}

function fulcrumMembers(o: Options, dir: string, traces: Array<[bigint, string]>): Measured {
  const cluster = new ProcessCluster({
    members: [0, 1, 2].map((i) => ({
      name: `p${i + 1}`,
      clientPort: o.basePort + 2 * i,
      peerPort: o.basePort + 2 * i + 1,
      dataDir: join(dir, `p${i + 1}`),
      env: {
        ...process.env,
        // FULCRUM_MEMBER_NODE_OPTIONS adds flags for the members only, e.g. --perf-basic-prof for `perf record`.
        NODE_OPTIONS: `${process.env.FULCRUM_MEMBER_NODE_OPTIONS ?? ''} --import ${HOOK}`.trim(),
        FULCRUM_PROFILE_DIR: o.cpuProf ?? '',
        FULCRUM_PROFILE_NAME: `p${i + 1}`,
        FULCRUM_TRACE: o.trace === undefined ? '' : '1',
      },
    })),
    token: 'fulcrum-profile',
    echo: (name, line) => {
      const m = /^TRACE (\d+) (.*)$/.exec(line);
      if (m !== null && traces.length < 3 * TRACE_LINES_MAX) traces.push([BigInt(m[1]!), `${name} ${m[2]}`]);
    },
  });
  cluster.start();
  return {
    endpoints: cluster.endpoints,
    members: cluster.members.map((m) => ({ name: m.spec.name, endpoint: m.clientEndpoint, pid: m.child?.pid, signal: (sig) => m.child?.kill(sig) })),
    stop: () => cluster.stop(),
  };
}

/** etcd with the timing and snapshot settings Fulcrum's members run with by default. */
function etcdMembers(dir: string, basePort: number): Measured {
  const version = etcdVersion();
  if (version === undefined) throw new Error('no `etcd` binary on the PATH: apt-get install etcd-server');
  const d = SERVER_CONFIG_DEFAULTS;
  const cluster = etcdCluster(dir, basePort, { heartbeatMs: d.heartbeatIntervalMs, electionMs: d.electionTimeoutMs, snapshotCount: d.snapshotCount }, version);
  cluster.start();
  return {
    endpoints: cluster.endpoints,
    members: cluster.members.map((m) => ({ name: m.name, endpoint: m.clientEndpoint, pid: m.pid, signal: () => undefined })),
    stop: () => cluster.stop(),
  };
}

/** The operation under measurement, `inFlight` at a time; `load` keeps writing new keys from one run to the next. */
class Load {
  private loaded = 0;

  constructor(
    private readonly o: Options,
    private readonly client: EtcdTestClient,
    private readonly value: string,
  ) {}

  async run(seconds: number): Promise<{ n: number; latencies: number[] }> {
    const { o, client, value } = this;
    const latencies: number[] = [];
    const end = performance.now() + seconds * 1000;
    let n = 0;
    await Promise.all(
      Array.from({ length: o.inFlight }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          if (o.op === 'put') await client.put(`k-${n % 1000}`, value); // over 1,000 keys, as the side-by-side put workloads
          else if (o.op === 'load') await client.putAll(Array.from({ length: LOAD_PUTS_PER_TXN }, () => `load/${(this.loaded++).toString().padStart(8, '0')}`), value);
          else await client.get(`warm-${n % 50}`, o.op === 'sget');
          latencies.push(performance.now() - t);
          n++;
        }
      }),
    );
    return { n, latencies };
  }
}

async function main(o: Options): Promise<void> {
  if (o.system === 'etcd' && (o.cpuProf !== undefined || o.trace !== undefined)) throw new InvalidArgumentError('--cpu-prof and --trace are for Fulcrum only');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-profile-'));
  const traces: Array<[bigint, string]> = [];
  const cluster = o.system === 'etcd' ? etcdMembers(dir, o.basePort) : fulcrumMembers(o, dir, traces);
  try {
    const leader = await findLeader(cluster.endpoints, 30_000);
    const client = new EtcdTestClient(leader.endpoint, 5_000);
    const value = 'v'.repeat(o.valueBytes);
    for (let i = 0; i < 200; i++) await client.put(`warm-${i % 50}`, value);
    const load = new Load(o, client, value);
    const warmedUp = await load.run(o.warmUp);
    const members = cluster.members;
    if (o.cpuProf !== undefined) for (const m of members) m.signal('SIGUSR2');
    traces.length = 0;
    const before = members.map((m) => cpuSeconds(m.pid));
    const selfBefore = process.cpuUsage();
    const { n, latencies } = await load.run(o.duration);
    const self = process.cpuUsage(selfBefore);
    const after = members.map((m) => cpuSeconds(m.pid));
    // The transactions really wrote their keys (counted after the window, so not in the figures).
    if (o.op === 'load') process.stdout.write(`load: ${await client.count('load/')} keys in the store after ${warmedUp.n + n} transactions of ${LOAD_PUTS_PER_TXN} puts (${warmedUp.n} in the warm-up)\n`);
    latencies.sort((a, b) => a - b);
    const pct = (p: number): string => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!.toFixed(2);
    const leaderName = members.find((m) => m.endpoint === leader.endpoint)?.name;
    process.stdout.write(`${o.op} x${o.inFlight}: ${n} in ${o.duration} s = ${Math.round(n / o.duration)}/s, p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms\n`);
    process.stdout.write('CPU ms per operation:\n');
    members.forEach((m, i) => process.stdout.write(`  ${m.name}${m.name === leaderName ? ' (leader)' : ''}  ${(((after[i]! - before[i]!) * 1000) / n).toFixed(3)}\n`));
    process.stdout.write(`  load generator  ${((self.user + self.system) / 1000 / n).toFixed(3)}\n`);
    client.close();
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  if (o.cpuProf !== undefined) process.stdout.write(`CPU profiles: ${o.cpuProf}/p1..p3.cpuprofile\n`);
  if (o.trace !== undefined) {
    traces.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const t0 = traces[0]?.[0] ?? 0n;
    writeFileSync(o.trace, traces.map(([t, l]) => `${(Number(t - t0) / 1e6).toFixed(3)} ${l}`).join('\n') + '\n');
    process.stdout.write(`trace: ${o.trace} (${traces.length} events; ms since the first)\n`);
  }
}

await main(program.parse().opts<Options>());
