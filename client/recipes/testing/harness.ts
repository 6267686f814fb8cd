// Test harness of the recipes and the registry: an in-process member serving gRPC on loopback, and child
// processes that run client code (the lock holders, registered services and registrars the tests kill -9).
// Ports come from these tests' own ranges, 18800-18999 and 22000-22299, in blocks of 10 chosen by pid and
// slot; a taken port moves to another block. Test code only.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { onOutputLines } from '../../../node/testing/output-lines.js';
import { TSX_LOADER as TSX } from '../../testing/examples.js';
import { portFree, startTestMember, type TestMember } from '../../testing/servers.js';

const PORT_RANGES: ReadonlyArray<readonly [number, number]> = [
  [18_800, 18_999],
  [22_000, 22_299],
];
const BLOCK_PORTS = 10;
const BLOCKS = PORT_RANGES.map(([a, b]) => Math.floor((b - a + 1) / BLOCK_PORTS));
const BLOCKS_TOTAL = BLOCKS.reduce((a, b) => a + b, 0);
const ATTEMPTS = 10;
/** Lines of a child's output kept for assertions and diagnostics. */
const CHILD_LINES_MAX = 2_000;

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function blockBase(block: number): number {
  let b = block % BLOCKS_TOTAL;
  for (let i = 0; i < PORT_RANGES.length; i++) {
    if (b < BLOCKS[i]!) return PORT_RANGES[i]![0] + b * BLOCK_PORTS;
    b -= BLOCKS[i]!;
  }
  throw new Error('unreachable');
}

/** `count` (<= 10) free consecutive ports of one block; `slot` separates users within one test file. */
export async function freePorts(count: number, slot: number): Promise<number[]> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const base = blockBase(process.pid + slot * 7 + attempt * 13);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return ports;
  }
  throw new Error(`EADDRINUSE: no ${count} free ports in 18800-18999/22000-22299 after ${ATTEMPTS} attempts`);
}

export type RecipeMember = TestMember;

/** One in-process Fulcrum member serving the etcd API on loopback (real gRPC), on these tests' ports. */
export function startRecipeMember(slot: number): Promise<RecipeMember> {
  return startTestMember(slot, freePorts);
}

/** A child process running a TypeScript file, with its output as lines. */
export class ChildScript {
  readonly lines: string[] = [];
  private readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];

  constructor(readonly child: ChildProcess) {
    onOutputLines(child, (line) => {
      this.lines.push(line);
      if (this.lines.length > CHILD_LINES_MAX) this.lines.shift();
      for (const w of this.waiters.splice(0)) w();
    });
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first output line starting with `prefix` (the rest of it), waiting up to `timeoutMs`. */
  async line(prefix: string, timeoutMs = 60_000): Promise<string> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find((l) => l.startsWith(prefix));
      if (hit !== undefined) return hit.slice(prefix.length).trim();
      if (!this.running) throw new Error(`child exited (${String(this.child.exitCode ?? this.child.signalCode)}) before printing "${prefix}":\n${this.lines.join('\n')}`);
      const left = until - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for "${prefix}" from the child:\n${this.lines.join('\n')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 500));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** kill -9 and wait for the exit. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  waitExit(): Promise<number | null> {
    return this.exited;
  }
}

/** Run `node --import tsx <file> ...args` (or any argv after node) in the repository's root. */
export function spawnScript(args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildScript {
  const child = spawn(process.execPath, ['--import', TSX, ...args], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  return new ChildScript(child);
}

/** Listen on a free port of these tests' ranges (never an ephemeral one); resolves with the port. */
export async function listenInRange(server: { listen(port: number, host: string, cb: () => void): unknown; once(event: 'error', fn: (e: Error) => void): unknown; off(event: 'error', fn: (e: Error) => void): unknown }, slot: number): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const [port] = await freePorts(1, slot + attempt * 5);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port!, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
      return port!;
    } catch (e) {
      if (attempt + 1 >= ATTEMPTS || !/EADDRINUSE/.test(String(e))) throw e;
    }
  }
}
