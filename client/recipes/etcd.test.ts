// The recipes and the registry are plain etcd v3 underneath: the same code against a real etcd (3.4 here, when
// installed), and, on Fulcrum, a client-side Lock and the server's v3lock service standing in one line.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LockResponse } from '../../proto/index.js';
import { eventually } from '../../node/testing/eventually.js';
import { Client, Op } from '../index.js';
import { Registry } from '../registry/index.js';
import { Election, fencedTxn, Lock } from './index.js';
import { freePorts, startRecipeMember } from './testing/harness.js';

const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** One real etcd on loopback, in these tests' port range. */
async function startEtcd(slot: number): Promise<Client> {
  const [clientPort, peerPort] = await freePorts(2, slot);
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-recipes-etcd-'));
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    ETCD_BIN,
    ['--name', 'e1', '--data-dir', join(dir, 'data'), '--listen-client-urls', `http://127.0.0.1:${clientPort}`, '--advertise-client-urls', `http://127.0.0.1:${clientPort}`, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `e1=${peer}`, '--log-level', 'error'],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const client = new Client({ endpoints: [`127.0.0.1:${clientPort}`], attemptTimeoutMs: 2_000 });
  cleanups.push(async () => {
    await client.close();
    child.kill('SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });
  await eventually('etcd to serve', async () => ((await client.memberStatuses({ timeoutMs: 1_000 })).length === 1 ? true : undefined), 30_000, 200);
  return client;
}

describe.skipIf(!existsSync(ETCD_BIN))('against a real etcd', () => {
  it('locks with fencing, elections and the registry work unchanged', async () => {
    const client = await startEtcd(91);
    const lock = new Lock(client, 'locks/etcd', { ttlSeconds: 5 });
    const first = await lock.lock();
    const waiting = new Lock(client, 'locks/etcd', { ttlSeconds: 5 }).lock();
    await eventually('the waiter in line', async () => ((await client.count({ prefix: 'locks/etcd/' })) === 2 ? true : undefined));
    expect((await first.txn().then(Op.put('etcd/v', '1')).commit()).succeeded).toBe(true);
    await first.release();
    const second = await waiting;
    expect(second.token).toBeGreaterThan(first.token);
    expect((await fencedTxn(client, first.fence).then(Op.put('etcd/v', 'stale')).commit()).succeeded).toBe(false);
    await second.release();

    const election = new Election(client, 'elections/etcd', { ttlSeconds: 5 });
    const a = await election.campaign('a');
    const b = election.campaign('b');
    await eventually('b in line', async () => ((await client.count({ prefix: 'elections/etcd/' })) === 2 ? true : undefined));
    await a.resign();
    expect((await b).token).toBeGreaterThan(a.token);
    expect((await election.leader())?.valueText).toBe('b');
    await (await b).resign();

    const registry = new Registry(client);
    const discovery = await registry.discover('svc');
    const r = await registry.register('svc', { id: 'one', address: '127.0.0.1:1', ttl: 5 });
    await eventually('discovered', async () => (discovery.instances.length === 1 ? true : undefined));
    await r.close();
    await eventually('gone', async () => (discovery.instances.length === 0 ? true : undefined));
    discovery.close();
  }, 90_000);
});

describe('on Fulcrum', () => {
  it("a client-side Lock and the server's v3lock service stand in one line (etcd's key layout)", async () => {
    const server = await startRecipeMember(95);
    cleanups.push(() => server.close());
    const client = server.client();
    const held = await new Lock(client, 'locks/shared').lock();
    const lease = await client.grantLease(5);
    let granted = false;
    const viaService = client
      .unary<LockResponse>('idempotent', 'lock', (s, md, co, cb) => s.lock.Lock({ name: Buffer.from('locks/shared'), lease: String(lease.id) }, md, co, cb), { timeoutMs: 30_000 })
      .then((res) => {
        granted = true;
        return res;
      });
    await eventually('the service\'s waiter in line', async () => ((await client.count({ prefix: 'locks/shared/' })) === 2 ? true : undefined));
    await new Promise((r) => setTimeout(r, 300));
    expect(granted).toBe(false); // the server's Lock waits behind the recipe's holder
    await held.release();
    const res = await viaService;
    expect(res.key.toString()).toBe(`locks/shared/${lease.id.toString(16)}`);
    expect((await client.get(res.key))!.createRevision).toBeGreaterThan(held.token);
    await lease.close();
  }, 60_000);
});
