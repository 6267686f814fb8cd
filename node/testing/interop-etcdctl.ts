// Running etcd's etcdctl (Debian's etcd-client 3.4 here; CI installs it) against Fulcrum members, in the
// foreground (run to completion) or the background (elect, lock, watch-like commands that wait), for
// node/interop-etcdctl.test.ts. ETCDCTL_BIN overrides the binary.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, interopBasePort, portFree } from './interop-cluster.js';
import { ProcessCluster } from './process-cluster.js';

export const ETCDCTL_BIN = process.env.ETCDCTL_BIN ?? 'etcdctl';

/** `command -v etcdctl`: the path, or undefined when it is not installed. Synchronous, for skipIf at collection. */
export function findEtcdctl(): string | undefined {
  try {
    const out = execFileSync('sh', ['-c', 'command -v "$0"', ETCDCTL_BIN], { encoding: 'utf8', timeout: 10_000 }).trim();
    return out === '' ? undefined : out;
  } catch {
    return undefined;
  }
}

export interface EtcdctlRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const env = (): NodeJS.ProcessEnv => ({ ...process.env, ETCDCTL_API: '3' });

function argv(endpoints: readonly string[], args: readonly string[]): string[] {
  return ['--endpoints', endpoints.join(','), '--dial-timeout', '5s', ...args];
}

/** Run etcdctl to completion; never throws on a non-zero exit (the tests assert on it). */
export function runEtcdctl(endpoints: readonly string[], args: readonly string[], options: { timeoutMs?: number; input?: string } = {}): Promise<EtcdctlRun> {
  return new Promise((resolve) => {
    const child = execFile(ETCDCTL_BIN, argv(endpoints, args), { env: env(), timeout: options.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1;
      resolve({ code, stdout, stderr: err !== null && stderr === '' ? String(err) : stderr });
    });
    child.stdin?.end(options.input ?? '');
  });
}

/** etcdctl in the background (elect, elect -l, lock): its output so far, and a way to wait for a line and stop it. */
export class BackgroundEtcdctl {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  private readonly exited: Promise<number | null>;

  constructor(endpoints: readonly string[], args: readonly string[]) {
    this.child = spawn(ETCDCTL_BIN, argv(endpoints, args), { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code) => resolve(code));
      this.child.on('error', () => resolve(null));
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Wait until stdout contains text (polled; throws with the output so far on timeout or early exit). */
  async waitFor(text: string, timeoutMs = 20_000): Promise<void> {
    await eventually(
      `etcdctl ${this.child.spawnargs.slice(1).join(' ')} to print ${JSON.stringify(text)} (stdout so far ${JSON.stringify(this.stdout)}, stderr ${JSON.stringify(this.stderr)})`,
      async () => {
        if (this.stdout.includes(text)) return true;
        if (!this.running) throw new Error(`exited with ${this.child.exitCode ?? this.child.signalCode}`);
        return undefined;
      },
      timeoutMs,
    );
  }

  /** Send a signal (etcdctl resigns / unlocks on SIGINT and SIGTERM) and wait for the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGINT'): Promise<number | null> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }

  wait(): Promise<number | null> {
    return this.exited;
  }

  /** Last resort in afterAll: kill -9 if still running. */
  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}

/**
 * Three real member processes (node/testing/process-cluster.ts) for load that should not share the test worker's
 * event loop (etcdctl check perf). Ports: another pid slot than InteropCluster's; a taken port moves on.
 */
export async function startProcessCluster(options: { portOffset: number; attempts?: number }): Promise<{ cluster: ProcessCluster; endpoints: string[]; dir: string; close(): Promise<void> }> {
  const attempts = options.attempts ?? 5;
  for (let attempt = 0; ; attempt++) {
    const base = interopBasePort(attempt + 150) + options.portOffset;
    const ports = Array.from({ length: 6 }, (_, i) => base + i);
    if (!(await Promise.all(ports.map(portFree))).every((f) => f)) {
      if (attempt + 1 >= attempts) throw new Error(`EADDRINUSE: no free port block for a process cluster after ${attempts} attempts`);
      continue;
    }
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-interop-procs-'));
    const cluster = new ProcessCluster({
      members: [0, 1, 2].map((i) => ({ name: `p${i + 1}`, clientPort: base + 2 * i, peerPort: base + 2 * i + 1, dataDir: join(dir, `p${i + 1}`), extraArgs: ['--log-level', 'warn'] })),
      // etcd's defaults: under a minute of load on a busy machine, no spurious elections.
      heartbeatMs: 100,
      electionMs: 1000,
    });
    const close = async (): Promise<void> => {
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    };
    cluster.start();
    try {
      // Healthy once every member answers `endpoint health` (a linearizable read through the leader).
      await eventually(
        'the process cluster to be healthy',
        async () => ((await runEtcdctl(cluster.endpoints, ['endpoint', 'health'])).code === 0 ? true : undefined),
        60_000,
        250,
      );
    } catch (e) {
      const tails = cluster.members.map((m) => `${m.spec.name}: ${m.output.slice(-5).join('\n')}`).join('\n');
      await close();
      throw new Error(`${String(e)}\n${tails}`);
    }
    return { cluster, endpoints: cluster.endpoints, dir, close };
  }
}
