// The two systems under test as one shape: a 3-member cluster of real processes on loopback whose members can
// be killed (SIGKILL), restarted on the same data, and measured from outside (/proc CPU time and RSS, bytes on
// disk). Fulcrum runs through node/testing/process-cluster.ts; etcd is Debian's `etcd` binary (3.4) started
// with the same heartbeat, election timeout and snapshot count.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { onOutputLines } from '../../node/testing/output-lines.js';
import { ProcessCluster, type ProcessMember } from '../../node/testing/process-cluster.js';

export type SystemName = 'fulcrum' | 'etcd';

export interface ClusterSettings {
  readonly heartbeatMs: number;
  readonly electionMs: number;
  readonly snapshotCount: number;
}

/** One member, whichever system: enough to kill it, restart it and read its figures from /proc. */
export interface BenchMember {
  readonly name: string;
  readonly clientEndpoint: string;
  readonly dataDir: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  kill(): Promise<void>;
  restart(): void;
}

export interface BenchCluster {
  readonly system: SystemName;
  readonly members: readonly BenchMember[];
  readonly endpoints: readonly string[];
  /** `etcd --version` or Fulcrum's package version, for the report. */
  readonly version: string;
  start(): void;
  stop(): Promise<void>;
  /** The last lines a member printed, for diagnosing a failed start. */
  tail(name: string, lines: number): string[];
}

/** Member i of a system uses clientPort basePort + 2i and peerPort basePort + 2i + 1. */
export const PORTS_PER_CLUSTER = 6;

// -------------------------------------------------------------------------------------------------------------
// Fulcrum
// -------------------------------------------------------------------------------------------------------------

class FulcrumBenchMember implements BenchMember {
  constructor(private readonly m: ProcessMember) {}
  get name(): string {
    return this.m.spec.name;
  }
  get clientEndpoint(): string {
    return this.m.clientEndpoint;
  }
  get dataDir(): string {
    return this.m.spec.dataDir;
  }
  get pid(): number | undefined {
    return this.m.running ? this.m.child?.pid : undefined;
  }
  get running(): boolean {
    return this.m.running;
  }
  kill(): Promise<void> {
    return this.m.kill();
  }
  restart(): void {
    // ProcessMember re-runs its original arguments; a member whose data directory already holds state ignores
    // --initial-cluster-state new, as etcd does.
    this.m.start();
  }
}

export function fulcrumCluster(dir: string, basePort: number, s: ClusterSettings, version: string, entry: 'source' | 'build'): BenchCluster {
  const pc = new ProcessCluster({
    members: [0, 1, 2].map((i) => ({
      name: `f${i + 1}`,
      clientPort: basePort + 2 * i,
      peerPort: basePort + 2 * i + 1,
      dataDir: join(dir, `f${i + 1}`),
      // Info is where Fulcrum logs Raft state changes and snapshots (a few lines per event, none per request):
      // the tail goes into the report when the leader changes during a workload.
      extraArgs: ['--log-level', 'info'],
      entry,
    })),
    token: 'fulcrum-bench',
    heartbeatMs: s.heartbeatMs,
    electionMs: s.electionMs,
    snapshotCount: s.snapshotCount,
  });
  const members = pc.members.map((m) => new FulcrumBenchMember(m));
  return {
    system: 'fulcrum',
    members,
    endpoints: pc.endpoints,
    version,
    start: () => pc.start(),
    stop: async () => {
      // SIGTERM first (a clean shutdown), SIGKILL for a member that does not exit within 10 s.
      await Promise.all(
        pc.members.map(async (m) => {
          const timer = setTimeout(() => void m.kill(), 10_000);
          await m.stop();
          clearTimeout(timer);
        }),
      );
    },
    tail: (name, lines) => pc.member(name).output.slice(-lines),
  };
}

// -------------------------------------------------------------------------------------------------------------
// etcd
// -------------------------------------------------------------------------------------------------------------

const ETCD_OUTPUT_LINES_MAX = 500;

/** `etcd --version`'s first line, or undefined when no `etcd` binary is on the PATH. */
export function etcdVersion(binary = 'etcd'): string | undefined {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) return undefined;
  return /etcd Version: (\S+)/.exec(r.stdout)?.[1] ?? r.stdout.split('\n')[0]?.trim();
}

class EtcdMember implements BenchMember {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  readonly output: string[] = [];

  constructor(
    readonly name: string,
    readonly clientEndpoint: string,
    readonly dataDir: string,
    private readonly args: readonly string[],
    private readonly binary: string,
  ) {}

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }
  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }
  restart(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    mkdirSync(this.dataDir, { recursive: true });
    const child = spawn(this.binary, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    onOutputLines(child, (line) => {
      this.output.push(line);
      if (this.output.length > ETCD_OUTPUT_LINES_MAX) this.output.shift();
    });
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
  }
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGKILL');
    await this.exited;
  }
  async stop(): Promise<void> {
    if (!this.running) return;
    const timer = setTimeout(() => void this.kill(), 10_000);
    this.child!.kill('SIGTERM');
    await this.exited;
    clearTimeout(timer);
  }
}

export function etcdCluster(dir: string, basePort: number, s: ClusterSettings, version: string, binary = 'etcd'): BenchCluster {
  const names = ['e1', 'e2', 'e3'];
  const peer = (i: number): string => `http://127.0.0.1:${basePort + 2 * i + 1}`;
  const client = (i: number): string => `127.0.0.1:${basePort + 2 * i}`;
  const initialCluster = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  const members = names.map((name, i) => {
    const dataDir = join(dir, name);
    const args = [
      '--name', name,
      '--data-dir', dataDir,
      '--listen-client-urls', `http://${client(i)}`,
      '--advertise-client-urls', `http://${client(i)}`,
      '--listen-peer-urls', peer(i),
      '--initial-advertise-peer-urls', peer(i),
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', 'etcd-bench',
      '--heartbeat-interval', String(s.heartbeatMs),
      '--election-timeout', String(s.electionMs),
      '--snapshot-count', String(s.snapshotCount),
      // etcd 3.4 logs every request slower than 100 ms at warning level; the bench does not read them.
      '--logger', 'zap',
      '--log-level', 'error',
    ];
    return new EtcdMember(name, client(i), dataDir, args, binary);
  });
  return {
    system: 'etcd',
    members,
    endpoints: members.map((m) => m.clientEndpoint),
    version,
    start: () => members.forEach((m) => m.restart()),
    stop: async () => void (await Promise.all(members.map((m) => m.stop()))),
    tail: (name, lines) => (members.find((m) => m.name === name)?.output ?? []).slice(-lines),
  };
}

// -------------------------------------------------------------------------------------------------------------
// Measuring members from outside
// -------------------------------------------------------------------------------------------------------------

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ): 100 on every Linux we run on. */
const CLOCK_TICKS_PER_SEC = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** CPU time (user + system) a process has used, in ms; undefined when it is gone. */
export function processCpuMs(pid: number): number | undefined {
  return statCpuMs(`/proc/${pid}/stat`);
}

/**
 * Context switches (voluntary and not) of all of a process's live threads; undefined when it is gone. Linux counts
 * them per thread, in /proc/<pid>/task/<tid>/status; a thread that ended in between is not counted.
 */
export function processContextSwitches(pid: number): number | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let sum = 0;
  for (const tid of tids) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue; // the thread ended while we listed them
    }
    for (const m of status.matchAll(/^(?:nonvoluntary|voluntary)_ctxt_switches:\s+(\d+)$/gm)) sum += Number(m[1]);
  }
  return sum;
}

/** CPU time (user + system) one thread of a process has used, in ms (the main thread's id is the pid). */
export function threadCpuMs(pid: number, tid: number): number | undefined {
  return statCpuMs(`/proc/${pid}/task/${tid}/stat`);
}

function statCpuMs(path: string): number | undefined {
  try {
    const stat = readFileSync(path, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SEC;
  } catch {
    return undefined;
  }
}

/** Resident memory of a process in MiB (VmRSS), undefined when it is gone. */
export function processRssMiB(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
    return Number.isFinite(kb) ? Math.round((kb / 1024) * 10) / 10 : undefined;
  } catch {
    return undefined;
  }
}

/** Bytes of the files under a directory (apparent sizes, as `du -sb`). */
export function directoryBytes(dir: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    const path = join(dir, name);
    try {
      const st = statSync(path);
      total += st.isDirectory() ? directoryBytes(path) : st.size;
    } catch {
      // A file removed while walking (a compacted LevelDB table): it no longer takes space.
    }
  }
  return total;
}

/** CPU used by every running member between two calls: `const done = cpuMeter(c); ...; done()`. */
export function cpuMeter(cluster: BenchCluster): () => { perMemberCores: Record<string, number>; totalCores: number } {
  const start = performance.now();
  const before = new Map(cluster.members.map((m) => [m.name, m.pid === undefined ? undefined : { pid: m.pid, ms: processCpuMs(m.pid) }]));
  return () => {
    const elapsedMs = performance.now() - start;
    const perMemberCores: Record<string, number> = {};
    let total = 0;
    for (const m of cluster.members) {
      const b = before.get(m.name);
      if (b === undefined || b.ms === undefined || m.pid !== b.pid) continue;
      const now = processCpuMs(b.pid);
      if (now === undefined) continue;
      const cores = (now - b.ms) / elapsedMs;
      perMemberCores[m.name] = Math.round(cores * 100) / 100;
      total += cores;
    }
    return { perMemberCores, totalCores: Math.round(total * 100) / 100 };
  };
}
