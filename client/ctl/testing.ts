// Test support for fulcrumctl (test code only): a real member serving gRPC on loopback, and runs of `main` with
// captured stdout/stderr, a given stdin and environment, and an interrupt the test fires (Ctrl-C).
//
// Ports: fulcrumctl's tests own 127.0.0.1:18600-18799, split so that test files running at the same time cannot
// take each other's ports:
//   18600-18699  in-process members (they bind at once, and retry elsewhere on EADDRINUSE)
//   18700-18789  the process cluster (its members bind seconds after the ports were found free: nothing else
//                may pick them meanwhile)
//   18790-18791  a real etcd, for the interoperability test (fixed: only that test uses them)
//   18792-18799  never bound: the unreachable endpoint, and peer URLs of members that are never started
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { startMember, type EmbeddedMember } from '../../node/embedded.js';
import { freeConsecutivePorts } from '../../node/testing/ports.js';
import { main, type CtlIo } from './cli.js';

const BLOCK_PORTS = 10;
const PORT_RANGES = { members: { first: 18_600, blocks: 10 }, cluster: { first: 18_700, blocks: 9 } } as const;
/** Nothing listens here in fulcrumctl's tests: an unreachable endpoint. */
export const DEAD_ENDPOINT = '127.0.0.1:18797';

/** `count` free consecutive ports of one block, picked by pid and `slot` (separates users in one process). */
/** Tries at starting a member before a port race (another process took one of its ports) fails the test. */
const ATTEMPTS = 8;

export function freePorts(count: number, slot: number, range: keyof typeof PORT_RANGES = 'members'): Promise<number[]> {
  const { first, blocks } = PORT_RANGES[range];
  return freeConsecutivePorts(count, { first, size: blocks * BLOCK_PORTS, align: BLOCK_PORTS }, slot);
}

export interface CtlMember {
  readonly member: EmbeddedMember;
  readonly endpoint: string;
  close(): Promise<void>;
}

/** One in-process member serving the etcd API on loopback. */
export async function startCtlMember(slot: number): Promise<CtlMember> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrumctl-'));
  for (let attempt = 0; ; attempt++) {
    const [clientPort, peerPort] = await freePorts(2, slot + attempt);
    try {
      const member = await startMember({ dataDir: dir, listen: { clientPort, peerPort }, heartbeatMs: 20, electionMs: 200, logLevel: 'error' });
      return {
        member,
        endpoint: member.endpoints[0]!,
        close: async () => {
          await member.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (e) {
      if (attempt + 1 >= ATTEMPTS || !/EADDRINUSE|address already in use|No address added/i.test(String(e))) throw e;
    }
  }
}

export interface CtlResult {
  readonly code: number;
  readonly out: string;
  readonly err: string;
  /** stdout and stderr as a terminal shows them, in the order they were written. */
  readonly all: string;
}

export interface RunOptions {
  readonly env?: Record<string, string | undefined>;
  readonly stdin?: string;
  readonly isTTY?: boolean;
}

/** A run of fulcrumctl in this process, still going; `interrupt()` is Ctrl-C. */
export interface CtlRun {
  readonly done: Promise<CtlResult>;
  output(): string;
  /** Resolves once the output matches (the command is ready: watching, holding, elected...). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  interrupt(): Promise<CtlResult>;
}

export function startCtl(argv: readonly string[], o: RunOptions = {}): CtlRun {
  const out: string[] = [];
  const err: string[] = [];
  const all: string[] = [];
  const controller = new AbortController();
  const stdin = Object.assign(Readable.from(o.stdin === undefined ? [] : [Buffer.from(o.stdin)]), { isTTY: o.isTTY ?? false });
  const io: CtlIo = {
    out: (c) => {
      out.push(c.toString());
      all.push(c.toString());
    },
    err: (t) => {
      err.push(t);
      all.push(t);
    },
    env: o.env ?? {},
    stdin,
    interrupt: controller.signal,
  };
  const done = main(argv, io).then((code) => ({ code, out: out.join(''), err: err.join(''), all: all.join('') }));
  return {
    done,
    output: () => all.join(''),
    waitFor: async (pattern, timeoutMs = 30_000) => {
      const until = Date.now() + timeoutMs;
      let finished = false;
      void done.then(() => (finished = true));
      while (!pattern.test(all.join(''))) {
        if (finished) throw new Error(`fulcrumctl ${argv.join(' ')} ended before printing ${pattern}: ${all.join('')}`);
        if (Date.now() > until) throw new Error(`fulcrumctl ${argv.join(' ')} did not print ${pattern} within ${timeoutMs} ms: ${all.join('')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    interrupt: () => {
      controller.abort();
      return done;
    },
  };
}

/** Run one command to its end. */
export function ctl(argv: readonly string[], o: RunOptions = {}): Promise<CtlResult> {
  return startCtl(argv, o).done;
}

/** A real etcd (when installed) on the fixed ports 18790-18791: fulcrumctl against plain etcd. */
export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';
export const haveEtcd = existsSync(ETCD_BIN);
const ETCD_CLIENT_PORT = 18_790;
const ETCD_PEER_PORT = 18_791;

export interface CtlEtcd {
  readonly endpoint: string;
  close(): Promise<void>;
}

export async function startCtlEtcd(): Promise<CtlEtcd> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrumctl-etcd-'));
  const url = (port: number): string => `http://127.0.0.1:${port}`;
  const args = ['--name', 'e1', '--data-dir', join(dir, 'data'), '--log-level', 'error'];
  args.push('--listen-client-urls', url(ETCD_CLIENT_PORT), '--advertise-client-urls', url(ETCD_CLIENT_PORT));
  args.push('--listen-peer-urls', url(ETCD_PEER_PORT), '--initial-advertise-peer-urls', url(ETCD_PEER_PORT), '--initial-cluster', `e1=${url(ETCD_PEER_PORT)}`);
  const child = spawn(ETCD_BIN, args, { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const endpoint = `127.0.0.1:${ETCD_CLIENT_PORT}`;
  const close = async (): Promise<void> => {
    child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const until = Date.now() + 30_000;
  while ((await ctl(['endpoint', 'health', '--endpoints', endpoint, '--dial-timeout', '500ms', '--command-timeout', '1s'])).code !== 0) {
    if (Date.now() > until || child.exitCode !== null) {
      await close();
      throw new Error(`etcd did not serve on ${endpoint} within 30 s (port taken?)`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { endpoint, close };
}
