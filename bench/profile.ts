// Where the time of one operation goes, on a local 3-member Fulcrum cluster: a program that prints figures, never a
// test. It complements `npm run bench` (which compares against etcd) when hunting a slowdown.
//
//   npm run bench:profile -- [--op put|get|sget|load|keepalive|watch] [--leases 10000] [--watchers 100] [--in-flight 100] [--duration 5] [--warm-up 30] [--cpu-prof DIR] [--heap-prof DIR] [--old-prof DIR] [--trace FILE]
//                            [--system etcd] [--base-port 13940] [--series 250] [--gc] [--from-source]
//
// Fulcrum's members run the build (`npm run build` is run first), as the benchmark's do; --from-source runs them
// through tsx, as the tests do (which also names each function at run time: a little more CPU per operation).
// Prints throughput, latency and CPU milliseconds per operation of each member and of the load generator (from
// /proc, so a member that is mostly waiting shows a small figure), and context switches per operation of each
// (a wake-up of a thread: the event loop's, a thread-pool worker's for a LevelDB write, a collector's). --cpu-prof writes one .cpuprofile per member
// covering only the measured part (flame graphs in Chrome DevTools or speedscope); --heap-prof one .heapprofile per
// member of what the measured part allocated, garbage included (bench/heap-summary.ts sums it by function);
// --old-prof the same of only what outlived the young generation (promoted, dead later or not): what the scavenger
// copied twice and mark-compact then traced. --trace runs the members with
// FULCRUM_TRACE=1 and writes their merged timeline (see node/trace.ts), one line per event, oldest first.
// --series MS prints the window again slice by slice (operations finished, p50, p99 and the slowest), which shows
// whether a tail comes in bursts (a pause somewhere) or is spread evenly (queueing). --gc records each member's
// garbage-collection pauses and prints those of the window (with --series, the slices a mark-compact began in).
// --op keepalive keeps --leases leases (KEEPALIVE_LEASES) alive over one LeaseKeepAlive stream with --in-flight
// requests outstanding, as the benchmark's leases workload does over ten: CPU per keep-alive without its noise.
// --op watch puts new keys under a prefix that --watchers watchers watch on one stream to a follower: that
// follower's CPU per put, beside the other follower's, is what fanning one event out to that many watchers costs.
// Two runs at once on different --base-port values (say two builds, or a setting on and off) share the machine's
// noise, which on a shared 2-core machine moves figures from one minute to the next by more than most changes do.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants as gcKinds } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { nonNegative, positive } from './lib/args.js';
import { buildFulcrum } from './lib/build.js';
import { EtcdTestClient } from '../node/testing/etcd-client.js';
import { CLIENT_STACKS, ClientPool, type ClientStack, type KvCalls } from './lib/clients.js';
import { ProcessCluster } from '../node/testing/process-cluster.js';
import { findLeader } from './lib/leader.js';
import { formatScavenges, isScavengeLine, summarizeScavenges } from './lib/gc-nvp.js';
import { SERVER_CONFIG_DEFAULTS } from '../node/config.js';
import { etcdCluster, etcdVersion, processContextSwitches, processCpuMs } from './lib/systems.js';
import { loadEtcdClientApi, type LeaseGrantResponse, type LeaseKeepAliveResponse, type WatchResponse } from '../proto/index.js';

const HOOK = fileURLToPath(new URL('./lib/cpu-profile-hook.mjs', import.meta.url));
const GC_HOOK = fileURLToPath(new URL('./lib/gc-hook.mjs', import.meta.url));
/** perf_hooks' kinds of collection. */
const GC_KINDS: Readonly<Record<number, string>> = {
  [gcKinds.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  2: 'minor mark-compact', // V8's kMinorMarkCompact: off by default, and without a name in Node 20's constants
  [gcKinds.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
  [gcKinds.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental marking',
  [gcKinds.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
};
const MARK_COMPACT = gcKinds.NODE_PERFORMANCE_GC_MAJOR;
/** Loopback ports of the three members (inside the benchmark's 12400-13999 range): six from --base-port. */
const BASE_PORT = 13_940;
/** Puts per transaction of --op load: the size workload's (bench/lib/workloads.ts). */
const LOAD_PUTS_PER_TXN = 100;
/** Deadline of each put or get the load sends (a failed one fails the run: the cluster is local and healthy). */
const REQUEST_TIMEOUT_MS = 5_000;
/**
 * Leases --op keepalive keeps alive by default, cycling over them, and their TTL (long enough never to expire
 * meanwhile): as many as the benchmark's leases workload, so that a lease comes round again about as often (a
 * renewal within the coalescing window of the last logged one is not logged again); and the grants in flight at once.
 */
const KEEPALIVE_LEASES = 10_000;
const KEEPALIVE_GRANTS_IN_FLIGHT = 100;
const KEEPALIVE_TTL_S = 120;
/** Watchers --op watch opens by default, the prefix they watch, and how long it waits for the last events. */
const WATCHERS = 100;
const WATCH_PREFIX = 'watched/';
const WATCH_DRAIN_MS = 10_000;
/** Trace lines kept in memory per member (the oldest are dropped beyond it). */
const TRACE_LINES_MAX = 2_000_000;
/** Scavenge lines kept per member for --gc-phases (a member scavenges a few times a second under load). */
const SCAVENGE_LINES_MAX = 100_000;

/**
 * Seconds of unmeasured load before the window, as the benchmark's own server warm-up: a fresh member compiles its
 * hot paths for tens of seconds (perf: 14 % of a member's CPU in V8's optimising compiler 10-14 s after start, 0.5 %
 * after 36 s), and five seconds left that in the figures.
 */
const WARM_UP_S = 30;

const program = new Command('npm run bench:profile --')
  .description('CPU per operation, CPU profiles and a request timeline of a local 3-member cluster')
  .addOption(new Option('--op <op>', 'put, linearizable get, serializable get, load (transactions of 100 puts of new keys, as the size workload), keepalive (LeaseKeepAlive requests on one stream, as the leases workload), or watch (puts of new keys that --watchers watchers on a follower watch)').choices(['put', 'get', 'sget', 'load', 'keepalive', 'watch']).default('put'))
  .option('--in-flight <n>', 'requests in flight (one connection)', positive, 100)
  .option('--duration <s>', 'measured seconds', positive, 5)
  .option('--warm-up <s>', 'unmeasured seconds of the same load first, so that the members\' hot code is compiled (0: none)', nonNegative, WARM_UP_S)
  .option('--value-bytes <n>', 'bytes per value', positive, 256)
  .option('--leases <n>', 'leases --op keepalive keeps alive, in turn', positive, KEEPALIVE_LEASES)
  .option('--watchers <n>', 'watchers of --op watch, on one stream to a follower', positive, WATCHERS)
  .option('--cpu-prof <dir>', 'write a .cpuprofile per member here')
  .option('--heap-prof <dir>', 'write a .heapprofile per member here: what the measured part allocated, garbage included')
  .option('--old-prof <dir>', 'write a .heapprofile per member here: what the measured part allocated that outlived the young generation')
  .option('--trace <file>', 'write the members\' merged FULCRUM_TRACE timeline here')
  .option('--series <ms>', 'also print throughput and latency per slice of this many ms of the window', positive)
  .option('--gc', 'record the members\' garbage-collection pauses and print those of the window')
  .option('--gc-phases', 'run the members with V8\'s --trace-gc-nvp and print where their scavenges of the window spent the pause, and what survived')
  .option('--base-port <p>', 'first of the six loopback ports (two runs at once need different ones)', positive, BASE_PORT)
  .addOption(new Option('--client <stack>', 'client stack of the put and get operations: Fulcrum\'s HTTP/2 client (light) or grpc-js (the figures before the thirty-fifth session)').choices([...CLIENT_STACKS]).default('engine'))
  .option('--from-source', 'run the members from the TypeScript sources through tsx instead of the build (npm run build, run first)')
  .addOption(new Option('--system <system>', 'measure etcd (the `etcd` binary) under the same load instead, for CPU per operation side by side').choices(['fulcrum', 'etcd']).default('fulcrum'));

interface Options {
  op: 'put' | 'get' | 'sget' | 'load' | 'keepalive' | 'watch';
  leases: number;
  watchers: number;
  inFlight: number;
  duration: number;
  warmUp: number;
  valueBytes: number;
  cpuProf?: string;
  heapProf?: string;
  oldProf?: string;
  trace?: string;
  series?: number;
  gc?: boolean;
  gcPhases?: boolean;
  basePort: number;
  system: 'fulcrum' | 'etcd';
  fromSource?: boolean;
  client: ClientStack;
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

/** Context switches of all of a process's threads so far; NaN when it is unknown or gone. */
function contextSwitches(pid: number | undefined): number {
  return (pid === undefined ? undefined : processContextSwitches(pid)) ?? Number.NaN;
}

/** This process's (the load generator's) context switches so far, all threads. */
function ownContextSwitches(): number {
  const r = process.resourceUsage();
  return r.voluntaryContextSwitches + r.involuntaryContextSwitches;
}

/** --gc-phases: the members' scavenge lines, taken only while `on` (the measured window). */
interface ScavengeLines {
  on: boolean;
  readonly byMember: Map<string, string[]>;
}

function fulcrumMembers(o: Options, dir: string, traces: Array<[bigint, string]>, scavenges: ScavengeLines): Measured {
  const cluster = new ProcessCluster({
    members: [0, 1, 2].map((i) => ({
      name: `p${i + 1}`,
      clientPort: o.basePort + 2 * i,
      peerPort: o.basePort + 2 * i + 1,
      dataDir: join(dir, `p${i + 1}`),
      entry: o.fromSource === true ? 'source' : 'build',
      nodeFlags: o.gcPhases === true ? ['--trace-gc-nvp'] : [],
      env: {
        ...process.env,
        // FULCRUM_MEMBER_NODE_OPTIONS adds flags for the members only, e.g. --perf-basic-prof for `perf record`.
        NODE_OPTIONS: `${process.env.FULCRUM_MEMBER_NODE_OPTIONS ?? ''} --import ${HOOK}${o.gc === true ? ` --import ${GC_HOOK}` : ''}`.trim(),
        FULCRUM_GC_LOG: o.gc === true ? gcLogFile(dir, `p${i + 1}`) : '',
        FULCRUM_PROFILE_DIR: profileOf(o)?.dir ?? '',
        FULCRUM_PROFILE_KIND: profileOf(o)?.kind ?? 'cpu',
        FULCRUM_PROFILE_NAME: `p${i + 1}`,
        FULCRUM_TRACE: o.trace === undefined ? '' : '1',
      },
    })),
    token: 'fulcrum-profile',
    echo: (name, line) => {
      if (scavenges.on && isScavengeLine(line)) {
        let own = scavenges.byMember.get(name);
        if (own === undefined) scavenges.byMember.set(name, (own = []));
        if (own.length < SCAVENGE_LINES_MAX) own.push(line);
      }
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

/** The profile the members write (main() allows one at a time), as bench/lib/cpu-profile-hook.mjs names its kinds. */
function profileOf(o: Options): { dir: string; kind: 'cpu' | 'heap' | 'old' } | undefined {
  if (o.cpuProf !== undefined) return { dir: o.cpuProf, kind: 'cpu' };
  if (o.heapProf !== undefined) return { dir: o.heapProf, kind: 'heap' };
  if (o.oldProf !== undefined) return { dir: o.oldProf, kind: 'old' };
  return undefined;
}

function gcLogFile(dir: string, member: string): string {
  return join(dir, `gc-${member}.log`);
}

/** One collection of a member, as bench/lib/gc-hook.mjs wrote it. */
interface Collection {
  readonly member: string;
  /** Ms since the epoch. */
  readonly at: number;
  readonly pauseMs: number;
  readonly kind: number;
}

function readCollections(dir: string, member: string): Collection[] {
  let text: string;
  try {
    text = readFileSync(gcLogFile(dir, member), 'utf8');
  } catch {
    return []; // the member did not exit cleanly, so wrote nothing
  }
  return text.split('\n').filter((l) => l !== '').map((l) => {
    const [at, pause, kind] = l.split(' ').map(Number);
    return { member, at: at!, pauseMs: pause!, kind: kind! };
  });
}

/** Per member and kind: how many collections began in the window, their pauses in total and the longest. */
function printCollections(all: readonly Collection[], members: readonly string[]): void {
  process.stdout.write('garbage-collection pauses in the window (main thread):\n');
  for (const member of members) {
    const own = all.filter((c) => c.member === member);
    const kinds = [...new Set(own.map((c) => c.kind))].sort((a, b) => a - b);
    const parts = kinds.map((k) => {
      const of = own.filter((c) => c.kind === k);
      return `${GC_KINDS[k] ?? `kind ${k}`} ${of.length} (${of.reduce((s, c) => s + c.pauseMs, 0).toFixed(0)} ms, longest ${Math.max(...of.map((c) => c.pauseMs)).toFixed(1)})`;
    });
    process.stdout.write(`  ${member}  ${parts.length === 0 ? 'none recorded' : parts.join(', ')}\n`);
  }
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

/**
 * One LeaseKeepAlive stream with many requests outstanding: the server answers in request order, so each request's
 * promise takes the next answer. An answer with TTL 0 (the lease was not found) is counted, not hidden.
 */
class KeepAliveStream {
  private readonly waiting: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private readonly stream: grpc.ClientDuplexStream<{ ID: string }, LeaseKeepAliveResponse>;
  answered = 0;
  notFound = 0;
  /** Why the stream ended: every keep-alive after it fails at once instead of waiting for an answer. */
  private failed: Error | undefined;

  constructor(private readonly client: grpc.Client & { LeaseKeepAlive(): grpc.ClientDuplexStream<{ ID: string }, LeaseKeepAliveResponse> }) {
    this.stream = client.LeaseKeepAlive();
    this.stream.on('data', (r: LeaseKeepAliveResponse) => {
      this.answered++;
      if (Number(r.TTL) <= 0) this.notFound++;
      this.waiting.shift()?.resolve();
    });
    this.stream.on('error', (e: Error) => {
      this.failed = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    });
  }

  keepAlive(id: string): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.stream.write({ ID: id });
    });
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

/** Grant `leases` leases on the leader and open the stream that keeps them alive. */
async function keepAliveLoad(endpoint: string, leases: number): Promise<{ stream: KeepAliveStream; ids: string[] }> {
  const api = loadEtcdClientApi();
  const lease = new api.etcdserverpb.Lease(endpoint, grpc.credentials.createInsecure());
  const ids: string[] = [];
  const grant = (): Promise<LeaseGrantResponse> =>
    new Promise((resolve, reject) =>
      lease.LeaseGrant({ TTL: KEEPALIVE_TTL_S, ID: 0 } as never, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, res?: LeaseGrantResponse) => (err ? reject(err) : resolve(res!))),
    );
  let asked = 0;
  await Promise.all(
    Array.from({ length: KEEPALIVE_GRANTS_IN_FLIGHT }, async () => {
      while (asked < leases) {
        asked++; // before the await: the other workers see this grant as taken
        ids.push(String((await grant()).ID));
      }
    }),
  );
  return { stream: new KeepAliveStream(lease as never), ids };
}

/** `watchers` prefix watchers on one Watch stream to `endpoint`: it counts the events that reach them. */
class WatchFanOut {
  private readonly client: grpc.Client & { Watch(): grpc.ClientDuplexStream<unknown, WatchResponse> };
  private readonly stream: grpc.ClientDuplexStream<unknown, WatchResponse>;
  created = 0;
  events = 0;
  failed: Error | undefined;

  constructor(endpoint: string, watchers: number) {
    const api = loadEtcdClientApi();
    this.client = new api.etcdserverpb.Watch(endpoint, grpc.credentials.createInsecure()) as never;
    this.stream = this.client.Watch();
    this.stream.on('data', (r: WatchResponse) => {
      if (r.created) this.created++;
      this.events += r.events.length;
    });
    this.stream.on('error', (e: Error) => (this.failed = e));
    const key = Buffer.from(WATCH_PREFIX);
    const rangeEnd = Buffer.from(WATCH_PREFIX);
    rangeEnd[rangeEnd.length - 1]!++;
    for (let i = 0; i < watchers; i++) this.stream.write({ create_request: { key, range_end: rangeEnd } });
  }

  /** Until `done()` holds, the stream fails, or `ms` pass; whether `done()` held. */
  async until(done: () => boolean, ms: number): Promise<boolean> {
    const deadline = performance.now() + ms;
    while (!done() && this.failed === undefined && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return done();
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

/** The operation under measurement, `inFlight` at a time; `load` keeps writing new keys from one run to the next. */
class Load {
  private loaded = 0;

  constructor(
    private readonly o: Options,
    private readonly client: EtcdTestClient,
    /** Puts and gets go through these (the --client stack); the other operations through `client`. */
    private readonly calls: KvCalls,
    private readonly value: string,
    private readonly keepAlives?: { stream: KeepAliveStream; ids: string[] },
  ) {}

  async run(seconds: number): Promise<{ n: number; latencies: number[]; finished: number[]; startedAt: number }> {
    const { o, client, calls, value } = this;
    const valueBytes = Buffer.from(value);
    const latencies: number[] = [];
    /** When each operation of `latencies` finished, ms from the start of the run. */
    const finished: number[] = [];
    const start = performance.now();
    const end = start + seconds * 1000;
    let n = 0;
    await Promise.all(
      Array.from({ length: o.inFlight }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          if (o.op === 'put') await calls.put({ key: Buffer.from(`k-${n % 1000}`), value: valueBytes }, REQUEST_TIMEOUT_MS); // over 1,000 keys, as the side-by-side put workloads
          else if (o.op === 'watch') await client.put(`${WATCH_PREFIX}${(this.loaded++).toString().padStart(8, '0')}`, value);
          else if (o.op === 'keepalive') await this.keepAlives!.stream.keepAlive(this.keepAlives!.ids[n % this.keepAlives!.ids.length]!);
          else if (o.op === 'load') await client.putAll(Array.from({ length: LOAD_PUTS_PER_TXN }, () => `load/${(this.loaded++).toString().padStart(8, '0')}`), value);
          else await calls.range({ key: Buffer.from(`warm-${n % 50}`), serializable: o.op === 'sget' }, REQUEST_TIMEOUT_MS);
          const now = performance.now();
          latencies.push(now - t);
          finished.push(now - start);
          n++;
        }
      }),
    );
    return { n, latencies, finished, startedAt: performance.timeOrigin + start };
  }
}

async function main(o: Options): Promise<void> {
  const profiles = [o.cpuProf, o.heapProf, o.oldProf].filter((d) => d !== undefined).length;
  if (o.system === 'etcd' && (profiles > 0 || o.trace !== undefined || o.gc === true || o.gcPhases === true)) throw new InvalidArgumentError('--cpu-prof, --heap-prof, --old-prof, --trace, --gc and --gc-phases are for Fulcrum only');
  if (profiles > 1) throw new InvalidArgumentError('--cpu-prof, --heap-prof and --old-prof: one at a time (a heap sampler would show in the CPU profile)');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-profile-'));
  const traces: Array<[bigint, string]> = [];
  if (o.system === 'fulcrum' && o.fromSource !== true) buildFulcrum((line) => console.log(line));
  const scavenges: ScavengeLines = { on: false, byMember: new Map() };
  const cluster = o.system === 'etcd' ? etcdMembers(dir, o.basePort) : fulcrumMembers(o, dir, traces, scavenges);
  let series: Series | undefined;
  /** The measured window, ms since the epoch. */
  let window: { from: number; to: number } | undefined;
  let collections: Collection[] = [];
  let measuredOps = 0;
  try {
    const leader = await findLeader(cluster.endpoints, 30_000);
    const client = new EtcdTestClient(leader.endpoint, 5_000);
    const value = 'v'.repeat(o.valueBytes);
    for (let i = 0; i < 200; i++) await client.put(`warm-${i % 50}`, value);
    const keepAlives = o.op === 'keepalive' ? await keepAliveLoad(leader.endpoint, o.leases) : undefined;
    const watchedAt = o.op === 'watch' ? cluster.members.find((m) => m.endpoint !== leader.endpoint) : undefined;
    const fanOut = watchedAt === undefined ? undefined : new WatchFanOut(watchedAt.endpoint, o.watchers);
    if (fanOut !== undefined && !(await fanOut.until(() => fanOut.created === o.watchers, 30_000))) throw new Error(`watch: ${fanOut.created} of ${o.watchers} watchers created (${fanOut.failed?.message ?? 'timed out'})`);
    const pool = new ClientPool([leader.endpoint], 1, o.client);
    await pool.ready(10_000);
    const load = new Load(o, client, pool.for(0).calls, value, keepAlives);
    const warmedUp = await load.run(o.warmUp);
    const members = cluster.members;
    if (profileOf(o) !== undefined) for (const m of members) m.signal('SIGUSR2');
    traces.length = 0;
    const before = members.map((m) => cpuSeconds(m.pid));
    const switchesBefore = members.map((m) => contextSwitches(m.pid));
    const selfBefore = process.cpuUsage();
    const selfSwitchesBefore = ownContextSwitches();
    scavenges.on = true;
    const { n, latencies, finished, startedAt } = await load.run(o.duration);
    scavenges.on = false;
    const self = process.cpuUsage(selfBefore);
    const selfSwitches = ownContextSwitches() - selfSwitchesBefore;
    measuredOps = n;
    const after = members.map((m) => cpuSeconds(m.pid));
    const switchesAfter = members.map((m) => contextSwitches(m.pid));
    // The transactions really wrote their keys (counted after the window, so not in the figures).
    if (o.op === 'load') process.stdout.write(`load: ${await client.count('load/')} keys in the store after ${warmedUp.n + n} transactions of ${LOAD_PUTS_PER_TXN} puts (${warmedUp.n} in the warm-up)\n`);
    if (keepAlives !== undefined) {
      process.stdout.write(`keepalive: ${keepAlives.stream.answered} answers to ${warmedUp.n + n} keep-alives of ${o.leases} leases, ${keepAlives.stream.notFound} with TTL 0 (lease not found)\n`);
      keepAlives.stream.close();
    }
    if (fanOut !== undefined) {
      const expected = (warmedUp.n + n) * o.watchers;
      await fanOut.until(() => fanOut.events >= expected, WATCH_DRAIN_MS);
      process.stdout.write(`watch: ${fanOut.events} events of ${warmedUp.n + n} puts reached ${o.watchers} watchers on ${watchedAt!.name} (${expected - fanOut.events} missing ${WATCH_DRAIN_MS / 1000} s after the last put)\n`);
      fanOut.close();
    }
    window = { from: startedAt, to: startedAt + o.duration * 1000 };
    if (o.series !== undefined) series = { latencies: [...latencies], finished, sliceMs: o.series, startedAt };
    latencies.sort((a, b) => a - b);
    const pct = (p: number): string => nearestRank(latencies, p)!.toFixed(2);
    const leaderName = members.find((m) => m.endpoint === leader.endpoint)?.name;
    process.stdout.write(`${o.op} x${o.inFlight}: ${n} in ${o.duration} s = ${Math.round(n / o.duration)}/s, p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms\n`);
    process.stdout.write('CPU ms per operation:\n');
    members.forEach((m, i) => process.stdout.write(`  ${m.name}${m.name === leaderName ? ' (leader)' : ''}  ${(((after[i]! - before[i]!) * 1000) / n).toFixed(3)}\n`));
    process.stdout.write(`  load generator  ${((self.user + self.system) / 1000 / n).toFixed(3)}\n`);
    const perOp = (d: number): string => (Number.isNaN(d) ? '?' : (d / n).toFixed(1));
    const switches = members.map((m, i) => `${m.name}${m.name === leaderName ? ' (leader)' : ''} ${perOp(switchesAfter[i]! - switchesBefore[i]!)}`);
    process.stdout.write(`context switches per operation: ${[...switches, `load generator ${perOp(selfSwitches)}`].join(', ')}\n`);
    client.close();
    pool.close();
  } finally {
    // The members write their collections as they exit, so the figures that need them come after the stop.
    await cluster.stop();
    if (o.gc === true) collections = cluster.members.flatMap((m) => readCollections(dir, m.name));
    rmSync(dir, { recursive: true, force: true });
  }
  const inWindow = collections.filter((c) => window !== undefined && c.at >= window.from && c.at < window.to);
  if (series !== undefined) printSeries(series, o.gc === true ? inWindow : undefined);
  if (o.gc === true) printCollections(inWindow, cluster.members.map((m) => m.name));
  if (o.gcPhases === true) {
    process.stdout.write('scavenges in the window (V8 --trace-gc-nvp, means per scavenge):\n');
    for (const m of cluster.members) process.stdout.write(`${formatScavenges(m.name, summarizeScavenges(scavenges.byMember.get(m.name) ?? []))}\n`);
  }
  if (o.cpuProf !== undefined) process.stdout.write(`CPU profiles: ${o.cpuProf}/p1..p3.cpuprofile\n`);
  if (o.heapProf !== undefined) process.stdout.write(`allocation profiles: ${o.heapProf}/p1..p3.heapprofile (npx tsx bench/heap-summary.ts FILE --per ${measuredOps})\n`);
  if (o.oldProf !== undefined) process.stdout.write(`profiles of what was promoted: ${o.oldProf}/p1..p3.heapprofile (npx tsx bench/heap-summary.ts FILE --per ${measuredOps})\n`);
  if (o.trace !== undefined) {
    traces.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const t0 = traces[0]?.[0] ?? 0n;
    writeFileSync(o.trace, traces.map(([t, l]) => `${(Number(t - t0) / 1e6).toFixed(3)} ${l}`).join('\n') + '\n');
    // The first event's clock reading lets other timelines on the same clock (strace -ttt less the realtime-monotonic
    // offset) be laid beside this one.
    process.stdout.write(`trace: ${o.trace} (${traces.length} events; ms since the first, at monotonic ${t0} ns)\n`);
  }
}

/** The value at fraction `p` of an ascending list (nearest rank); undefined for an empty one. */
function nearestRank(sorted: readonly number[], p: number): number | undefined {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** The measured window's operations, for --series. */
interface Series {
  readonly latencies: readonly number[];
  /** When each operation finished, ms from the window's start. */
  readonly finished: readonly number[];
  readonly sliceMs: number;
  /** The window's start, ms since the epoch. */
  readonly startedAt: number;
}

/**
 * One line per slice of the window: operations finished in it, their p50, p99 and slowest latency; with
 * `collections`, the members whose mark-compact began in the slice or in the 100 ms before it (a pause there
 * delays requests that finish here).
 */
function printSeries(s: Series, collections: readonly Collection[] | undefined): void {
  const slices: number[][] = [];
  s.finished.forEach((at, i) => (slices[Math.floor(at / s.sliceMs)] ??= []).push(s.latencies[i]!));
  const gcColumn = collections === undefined ? '' : ', members whose mark-compact began in or just before the slice';
  process.stdout.write(`per ${s.sliceMs} ms of the window: from (ms), finished, p50, p99, max (ms)${gcColumn}\n`);
  for (let k = 0; k < slices.length; k++) {
    const l = (slices[k] ?? []).sort((a, b) => a - b);
    const at = (p: number): string => nearestRank(l, p)?.toFixed(1) ?? '-';
    const from = s.startedAt + k * s.sliceMs;
    const pausedBy = (collections ?? []).filter((c) => c.kind === MARK_COMPACT && c.at >= from - 100 && c.at < from + s.sliceMs).map((c) => `${c.member} ${c.pauseMs.toFixed(0)} ms`);
    process.stdout.write(`  ${String(k * s.sliceMs).padStart(6)} ${String(l.length).padStart(6)} ${at(0.5).padStart(7)} ${at(0.99).padStart(7)} ${(l.length === 0 ? '-' : l[l.length - 1]!.toFixed(1)).padStart(7)}  ${pausedBy.join(', ')}\n`);
  }
}

await main(program.parse().opts<Options>());
