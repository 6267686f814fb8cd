// Running etcd's etcdctl (Debian's etcd-client 3.4 here; CI installs it) against Fulcrum members, in the
// foreground (run to completion) or the background (elect, lock, watch-like commands that wait), for
// node/interop-etcdctl.test.ts. ETCDCTL_BIN overrides the binary.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { eventually } from './interop-cluster.js';

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
