// Servers that implement etcd's Auth API, for tests written once and run against each: etcd 3.4 (the reference for
// wire behaviour, codes and messages) and a Fulcrum member (a real `fulcrum` process, node/cli.ts, started as
// node/testing/process-cluster.ts starts members). Ports 3000-3999 on 127.0.0.1.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from '../../node/testing/eventually.js';
import { freeConsecutivePorts } from '../../node/testing/ports.js';
import { ProcessCluster } from '../../node/testing/process-cluster.js';
import { Client } from '../index.js';
import { ETCD_BIN, startTestEtcd } from './servers.js';

export { ETCD_BIN };

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
  /**
   * With auth on, whether a caller without credentials may grant a lease and compact: etcd 3.4 lets it; Fulcrum,
   * deliberately stricter (docs/security.md), wants an authenticated user and answers `etcdserver: user name is empty`.
   */
  readonly anonymousLeaseAndCompact: boolean;
  /**
   * Whether a lease's TimeToLive with `keys` names keys the caller may not read: etcd 3.4 does; Fulcrum wants READ
   * on every key it would name (docs/security.md) and answers `etcdserver: permission denied`.
   */
  readonly leaseKeysUnchecked: boolean;
  /** Whether failed logins slow down the next ones (Fulcrum: up to LOGIN_DELAY_MAX_MS, node/auth/tokens.ts; etcd: no). */
  readonly throttlesLogins: boolean;

  /** Why it cannot run here, or undefined when it can. */
  readonly unavailable: string | undefined;
  start(o?: AuthTargetOptions): Promise<AuthServer>;
}

/** Two free consecutive ports in 3000-3999, from a pid-dependent start. */
export async function authTestPorts(salt: number): Promise<[number, number]> {
  const [client, peer] = await freeConsecutivePorts(2, { first: 3000, size: 1000, align: 2 }, salt); // pairs never overlap
  return [client!, peer!];
}

let started = 0;

/** A single etcd 3.4 member with its data in a temporary directory. */
export const ETCD_TARGET: AuthTarget = {
  name: 'etcd 3.4',
  hasAuthStatus: false,
  anonymousLeaseAndCompact: true,
  leaseKeysUnchecked: true,
  throttlesLogins: false,
  unavailable: existsSync(ETCD_BIN) ? undefined : `${ETCD_BIN} is not installed (ETCD_BIN overrides it)`,
  async start(o = {}) {
    const extraArgs = o.tokenTtlSeconds === undefined ? [] : ['--auth-token-ttl', String(o.tokenTtlSeconds)];
    return startTestEtcd(0, { ports: await authTestPorts(started++), extraArgs });
  },
};

/** A single Fulcrum member, a real process (`node --import tsx node/cli.ts`), with its data in a temporary directory. */
export const FULCRUM_TARGET: AuthTarget = {
  name: 'Fulcrum',
  hasAuthStatus: true,
  anonymousLeaseAndCompact: false,
  leaseKeysUnchecked: false,
  throttlesLogins: true,
  unavailable: undefined,
  async start(o = {}) {
    const [clientPort, peerPort] = await authTestPorts(started++);
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-auth-member-'));
    const cluster = new ProcessCluster({
      members: [
        {
          name: 'f1',
          clientPort,
          peerPort,
          dataDir: join(dir, 'f1'),
          extraArgs: ['--log-level', 'warn', ...(o.tokenTtlSeconds === undefined ? [] : ['--auth-token-ttl', String(o.tokenTtlSeconds)])],
        },
      ],
      heartbeatMs: 50,
      electionMs: 500,
    });
    cluster.start();
    const member = cluster.members[0]!;
    const endpoint = member.clientEndpoint;
    const probe = new Client({ endpoints: [endpoint], attemptTimeoutMs: 1_000, requestTimeoutMs: 2_000 });
    try {
      await eventually(
        'the Fulcrum member to lead and serve',
        async () => {
          if (!member.running) throw new Error(`the member exited: ${member.output.slice(-10).join('\n')}`);
          const [s] = await probe.memberStatuses({ timeoutMs: 1_000 });
          return s !== undefined && s.leaderId !== '0' && s.leaderId === s.memberId ? true : undefined;
        },
        60_000,
        200,
      );
    } catch (e) {
      await cluster.kill();
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${String(e)}\n${member.output.slice(-10).join('\n')}`);
    } finally {
      await probe.close();
    }
    return {
      endpoint,
      close: async () => {
        await cluster.kill();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

/** Every target the auth tests run against. */
export const AUTH_TARGETS: readonly AuthTarget[] = [ETCD_TARGET, FULCRUM_TARGET];
