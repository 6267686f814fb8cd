// Test harness for the lease, election and lock services: one single-voter Member on disk, a LeaseManager and a
// grpc-js server on 127.0.0.1:0 with the three services, plus typed clients. Not a test file itself.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { loadEtcdApi, type ElectionMethods, type LeaseMethods, type LockMethods, type TypedClient } from '../../proto/index.js';
import { API_LIMITS_DEFAULTS, type ApiContext } from '../api/context.js';
import { createElectionService } from '../api/election.js';
import { createLeaseService } from '../api/lease.js';
import { createLockService } from '../api/lock.js';
import { Member } from '../member.js';
import { LeaseManager, type LeaseManagerOptions } from './manager.js';

export interface Harness {
  readonly dir: string;
  readonly member: Member;
  readonly leases: LeaseManager;
  readonly target: string;
  readonly lease: TypedClient<LeaseMethods>;
  readonly election: TypedClient<ElectionMethods>;
  readonly lock: TypedClient<LockMethods>;
  /** Stop everything; the data dir is removed unless `keepDir`. */
  close(opts?: { keepDir?: boolean }): Promise<void>;
}

export async function startHarness(opts: { dir?: string; manager?: Partial<LeaseManagerOptions> } = {}): Promise<Harness> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'fulcrum-lease-'));
  const member = await Member.start({ id: 1, dataDir: dir, initialVoters: [1], heartbeatMs: 20 });
  const server = new grpc.Server();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const target = `127.0.0.1:${port}`;
  await member.publishAttributes('m1', [`http://${target}`]);
  const leases = new LeaseManager(member, { tickIntervalMs: 50, ...opts.manager });
  leases.start();
  const ctx: ApiContext = {
    member,
    logger: pino({ level: 'silent' }),
    limits: API_LIMITS_DEFAULTS,
    self: { name: 'm1', clientUrls: [`http://${target}`], peerUrls: [] },
    registry: new Map(),
  };
  const api = loadEtcdApi();
  server.addService(api.etcdserverpb.Lease.service, createLeaseService(ctx, leases));
  server.addService(api.v3electionpb.Election.service, createElectionService(ctx, leases));
  server.addService(api.v3lockpb.Lock.service, createLockService(ctx, leases));
  const creds = grpc.credentials.createInsecure();
  const clients = {
    lease: new api.etcdserverpb.Lease(target, creds),
    election: new api.v3electionpb.Election(target, creds),
    lock: new api.v3lockpb.Lock(target, creds),
  };
  return {
    dir,
    member,
    leases,
    target,
    ...clients,
    async close(closeOpts = {}) {
      for (const c of Object.values(clients)) c.close();
      server.forceShutdown();
      leases.stop();
      await member.close();
      if (closeOpts.keepDir !== true) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A unary call as a promise: `await unary<R>((cb) => client.Method(req, cb))`. */
export function unaryCall<R>(invoke: (cb: grpc.requestCallback<R>) => unknown): Promise<R> {
  return new Promise((resolve, reject) => {
    invoke((err, res) => (err !== null || res === undefined ? reject(err ?? new Error('no response')) : resolve(res)));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll until `check` holds (or fail after `timeoutMs`). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, stepMs = 20): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await sleep(stepMs);
  }
}

export const enc = (s: string): Buffer => Buffer.from(s);
