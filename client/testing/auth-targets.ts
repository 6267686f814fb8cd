// Servers that implement etcd's Auth API, for tests written once and run against each: today etcd 3.4; Fulcrum
// joins the list when its server side of auth lands (then add a target that starts a member, as
// client/testing/servers.ts does). Ports 3000-3999 on 127.0.0.1.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from '../../node/testing/eventually.js';
import { Client } from '../index.js';

export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';

export interface AuthServer {
  readonly endpoint: string;
  close(): Promise<void>;
}

export interface AuthTargetOptions {
  /** Seconds a simple token lives (etcd's --auth-token-ttl); short values let tests see a token expire. */
  readonly tokenTtlSeconds?: number;
}

export interface AuthTarget {
  readonly name: string;
  /** AuthStatus is etcd 3.5's; etcd 3.4 answers UNIMPLEMENTED. */
  readonly hasAuthStatus: boolean;
  /** Why it cannot run here, or undefined when it can. */
  readonly unavailable: string | undefined;
  start(o?: AuthTargetOptions): Promise<AuthServer>;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Two free consecutive ports in 3000-3999, from a pid-dependent start. */
export async function authTestPorts(salt: number): Promise<[number, number]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const base = 3000 + ((process.pid * 31 + salt * 7 + attempt * 89) % 998);
    if ((await portFree(base)) && (await portFree(base + 1))) return [base, base + 1];
  }
  throw new Error('no two free consecutive ports in 3000-3999');
}

let started = 0;

/** A single etcd 3.4 member with its data in a temporary directory. */
export const ETCD_TARGET: AuthTarget = {
  name: 'etcd 3.4',
  hasAuthStatus: false,
  unavailable: existsSync(ETCD_BIN) ? undefined : `${ETCD_BIN} is not installed (ETCD_BIN overrides it)`,
  async start(o = {}) {
    const [clientPort, peerPort] = await authTestPorts(started++);
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-auth-etcd-'));
    const child: ChildProcess = spawn(
      ETCD_BIN,
      [
        '--data-dir', join(dir, 'data'),
        '--listen-client-urls', `http://127.0.0.1:${clientPort}`,
        '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
        '--listen-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
        '--initial-cluster', `default=http://127.0.0.1:${peerPort}`,
        '--log-level', 'error',
        ...(o.tokenTtlSeconds === undefined ? [] : ['--auth-token-ttl', String(o.tokenTtlSeconds)]),
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const endpoint = `127.0.0.1:${clientPort}`;
    const probe = new Client({ endpoints: [endpoint], attemptTimeoutMs: 1_000, requestTimeoutMs: 2_000 });
    try {
      await eventually('etcd to serve', async () => ((await probe.memberStatuses({ timeoutMs: 1_000 })).length === 1 ? true : undefined), 30_000, 200);
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    } finally {
      await probe.close();
    }
    return {
      endpoint,
      close: async () => {
        child.kill('SIGKILL');
        await exited;
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

/** Every target the auth tests run against. Add Fulcrum here once its server implements the Auth API. */
export const AUTH_TARGETS: readonly AuthTarget[] = [ETCD_TARGET];
