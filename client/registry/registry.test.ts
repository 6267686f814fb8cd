// The registry against a real member over real gRPC: registration and discovery in order, an instance process
// killed -9 (its entry goes with its lease), the grpc-js resolver routing to live instances only, and the
// registrar following an HTTP health check, as a function and as `fulcrum registrar` (SIGTERM deregisters).
import { createServer, type Server } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../../node/testing/eventually.js';
import type { Client } from '../index.js';
import { freePorts, listenInRange, spawnScript, startRecipeMember, type ChildScript, type RecipeMember } from '../recipes/testing/harness.js';
import { registerFulcrumResolver, Registry, runRegistrar, type ServiceChange } from './index.js';
import { callWho, startWhoServer, WhoClient } from './testing/who.js';

let server: RecipeMember;
let client: Client;
const children: ChildScript[] = [];
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  server = await startRecipeMember(11);
  client = server.client({ attemptTimeoutMs: 2_000 });
}, 60_000);
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await Promise.all(children.map((c) => c.kill()));
  await server?.close();
});

const describeChange = (c: ServiceChange): string => `${c.type} ${c.instance.id} ${c.instance.address}`;

function instanceProcess(service: string, id: string, ttl: number, port: number): ChildScript {
  const c = spawnScript(['client/registry/testdata/instance.ts', server.endpoint, service, id, String(ttl), String(port)]);
  children.push(c);
  return c;
}

describe('Registry', () => {
  it('registers under services/<service>/<id>, discovers a snapshot then every change in order, deregisters on close', async () => {
    const registry = new Registry(client);
    const one = await registry.register('orders', { id: 'o-1', address: '127.0.0.1:7001', metadata: { zone: 'a' }, ttl: 5 });
    const raw = await client.get('services/orders/o-1');
    expect(JSON.parse(raw!.valueText)).toEqual({ Addr: '127.0.0.1:7001', Metadata: { zone: 'a' } });
    expect(raw!.lease).toBe(one.leaseId);
    const discovery = await registry.discover('orders');
    expect(discovery.instances.map((i) => `${i.id} ${i.address} ${JSON.stringify(i.metadata)}`)).toEqual(['o-1 127.0.0.1:7001 {"zone":"a"}']);
    const changes: string[] = [];
    const reading = (async () => {
      for await (const c of discovery) changes.push(describeChange(c));
    })();
    const two = await registry.register('orders', { id: 'o-2', address: '127.0.0.1:7002', ttl: 5 });
    await client.put('services/orders/garbage', 'not json'); // not an entry: ignored
    await one.close();
    const three = await registry.register('orders', { id: 'o-3', address: '127.0.0.1:7003', ttl: 5 });
    await two.close();
    await eventually('every change', async () => (changes.length >= 4 ? true : undefined));
    expect(changes).toEqual(['up o-2 127.0.0.1:7002', 'down o-1 127.0.0.1:7001', 'up o-3 127.0.0.1:7003', 'down o-2 127.0.0.1:7002']);
    expect(discovery.instances.map((i) => i.id)).toEqual(['o-3']);
    expect((await registry.list('orders')).map((i) => i.id)).toEqual(['o-3']);
    discovery.close();
    await reading;
    await three.close();
    expect(await client.count({ prefix: 'services/orders/o' })).toBe(0);
  });

  it('a registration whose lease is lost (revoked elsewhere) registers again with a new lease', async () => {
    const registry = new Registry(client);
    const r = await registry.register('phoenix', { id: 'p-1', address: '127.0.0.1:7100', ttl: 5 });
    const firstLease = r.leaseId!;
    const lost = new Promise((resolve) => r.once('lost', resolve));
    const back = new Promise<bigint>((resolve) => r.once('registered', resolve));
    await server.client().unary('idempotent', 'lease revoke', (s, md, co, cb) => s.lease.LeaseRevoke({ ID: String(firstLease) }, md, co, cb));
    await lost;
    const secondLease = await back;
    expect(secondLease).not.toBe(firstLease);
    expect((await client.get('services/phoenix/p-1'))?.lease).toBe(secondLease);
    await r.close();
    expect(await client.get('services/phoenix/p-1')).toBeUndefined();
  });

  it('kill -9 of a registered process: its entry is gone within the TTL (plus slack), and discovery sees up then down', async () => {
    const ttl = 2;
    const registry = new Registry(client);
    const discovery = await registry.discover('crashy');
    const changes: string[] = [];
    discovery.on('change', (c) => changes.push(describeChange(c)));
    const [port] = await freePorts(1, 21);
    const child = instanceProcess('crashy', 'c-1', ttl, port!);
    const leaseHex = await child.line('registered');
    await eventually('the instance to show up', async () => (discovery.instances.length === 1 ? true : undefined));
    const killedAt = performance.now();
    await child.kill();
    await eventually('the entry to go', async () => ((await client.get('services/crashy/c-1')) === undefined ? true : undefined), 30_000, 50);
    const goneMs = performance.now() - killedAt;
    console.log(`registry entry of a kill -9'ed process gone after ${Math.round(goneMs)} ms (TTL ${ttl} s, lease ${leaseHex})`);
    // The lease outlives the last keep-alive by its TTL plus at most the leader's expiry round (500 ms).
    expect(goneMs).toBeLessThan(ttl * 1000 + 2_000);
    await eventually('discovery to see it go', async () => (changes.length === 2 ? true : undefined));
    expect(changes).toEqual([`up c-1 127.0.0.1:${port}`, `down c-1 127.0.0.1:${port}`]);
    discovery.close();
  }, 60_000);
});

describe('the grpc-js resolver', () => {
  it('fulcrum:///<service> balances over the registered instances and follows deregistration and registration', async () => {
    registerFulcrumResolver(new Registry(client));
    const registry = new Registry(client);
    const ports = await freePorts(3, 31);
    const servers = await Promise.all(['w-1', 'w-2', 'w-3'].map((id, i) => startWhoServer(id, ports[i]!)));
    cleanups.push(() => servers.forEach((s) => s.forceShutdown()));
    const r1 = await registry.register('who-live', { id: 'w-1', address: `127.0.0.1:${ports[0]}`, ttl: 5 });
    const r2 = await registry.register('who-live', { id: 'w-2', address: `127.0.0.1:${ports[1]}`, ttl: 5 });
    const stub = new WhoClient('fulcrum:///who-live', grpc.credentials.createInsecure());
    cleanups.push(() => stub.close());
    const answered = async (n: number): Promise<Set<string>> => {
      const ids = new Set<string>();
      for (let i = 0; i < n; i++) ids.add(await callWho(stub));
      return ids;
    };
    await eventually('both instances to answer', async () => ((await answered(6)).size === 2 ? true : undefined), 30_000);
    // w-1 deregisters while its server still runs: only the resolver can take it out of the rotation.
    await r1.close();
    await eventually('w-1 out of rotation', async () => (!(await answered(6)).has('w-1') ? true : undefined), 30_000);
    expect([...(await answered(10))]).toEqual(['w-2']);
    // A new instance is picked up without touching the channel.
    const r3 = await registry.register('who-live', { id: 'w-3', address: `127.0.0.1:${ports[2]}`, ttl: 5 });
    await eventually('w-3 in rotation', async () => ((await answered(6)).has('w-3') ? true : undefined), 30_000);
    expect([...(await answered(10))].sort()).toEqual(['w-2', 'w-3']);
    await r2.close();
    await r3.close();
  }, 60_000);

  it('kill -9 of one of two instance processes: calls keep succeeding on the other', async () => {
    registerFulcrumResolver(new Registry(client));
    const ttl = 2;
    const ports = await freePorts(2, 41);
    const a = instanceProcess('who-crash', 'k-1', ttl, ports[0]!);
    const b = instanceProcess('who-crash', 'k-2', ttl, ports[1]!);
    await Promise.all([a.line('registered'), b.line('registered')]);
    const stub = new WhoClient('fulcrum:///who-crash', grpc.credentials.createInsecure());
    cleanups.push(() => stub.close());
    await eventually('both instances to answer', async () => {
      const ids = new Set<string>();
      for (let i = 0; i < 6; i++) ids.add(await callWho(stub));
      return ids.size === 2 ? true : undefined;
    }, 30_000);
    await a.kill();
    const answers: string[] = [];
    const failures: string[] = [];
    const registry = new Registry(client);
    // Keep calling through the kill and until the dead instance's entry is gone, and a while after.
    let goneAt: number | undefined;
    for (const until = performance.now() + 30_000; performance.now() < until; ) {
      try {
        answers.push(await callWho(stub));
      } catch (e) {
        failures.push((e as grpc.ServiceError).details ?? String(e));
      }
      if (goneAt === undefined && (await registry.list('who-crash')).length === 1) goneAt = performance.now();
      if (goneAt !== undefined && performance.now() - goneAt > 1_000) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    console.log(`resolver through a kill -9: ${answers.length} calls answered (by ${[...new Set(answers)].join(', ')}), ${failures.length} failed ${failures.slice(0, 3).join('; ')}`);
    expect(goneAt).toBeDefined();
    // A call that raced the kill on the dying connection may fail (grpc-js had not seen it close); none after.
    expect(failures.length).toBeLessThanOrEqual(1);
    expect(new Set(answers)).toEqual(new Set(['k-2']));
    expect(answers.length).toBeGreaterThan(10);
    await b.kill();
  }, 90_000);
});

describe('the registrar', () => {
  /** A tiny app whose /healthz answers 200 or 503 as the test says. */
  async function healthApp(slot: number): Promise<{ url: string; setHealthy: (h: boolean) => void; close: () => Promise<void> }> {
    let healthy = true;
    const http: Server = createServer((req, res) => res.writeHead(req.url === '/healthz' && healthy ? 200 : 503).end());
    const port = await listenInRange(http, slot);
    return { url: `http://127.0.0.1:${port}/healthz`, setHealthy: (h) => (healthy = h), close: () => new Promise((r) => http.close(() => r())) };
  }

  it('runRegistrar: registered while /healthz passes, gone while it fails, back when it passes, gone on stop', async () => {
    const app = await healthApp(51);
    const registrar = runRegistrar({ endpoints: [server.endpoint], service: 'billing', address: '127.0.0.1:9100', check: app.url, intervalMs: 200, ttl: 5 });
    const entry = (): Promise<unknown> => client.get('services/billing/127.0.0.1:9100');
    try {
      await eventually('registered', async () => ((await entry()) !== undefined ? true : undefined));
      app.setHealthy(false);
      await eventually('deregistered while unhealthy', async () => ((await entry()) === undefined ? true : undefined));
      expect(registrar.registered).toBe(false);
      app.setHealthy(true);
      await eventually('registered again', async () => ((await entry()) !== undefined ? true : undefined));
      await app.close(); // the app is gone altogether: connection refused is a failed check
      await eventually('deregistered when the app is gone', async () => ((await entry()) === undefined ? true : undefined));
    } finally {
      await registrar.stop();
    }
    expect(await entry()).toBeUndefined();
  }, 60_000);

  it('`fulcrum registrar` registers an app and deregisters it on SIGTERM (exit 0)', async () => {
    const app = await healthApp(61);
    try {
      const child = spawnScript(['bin/fulcrum.js', 'registrar', '--service', 'search', '--address', '127.0.0.1:9200', '--check', app.url, '--endpoints', server.endpoint, '--interval-ms', '200', '--ttl', '30']);
      children.push(child);
      await child.line('registrar: registered search/127.0.0.1:9200');
      const kv = await client.get('services/search/127.0.0.1:9200');
      expect(JSON.parse(kv!.valueText).Addr).toBe('127.0.0.1:9200');
      child.signal('SIGTERM');
      expect(await child.waitExit()).toBe(0);
      // Deregistered by the registrar itself, long before its 30 s lease could have expired.
      expect(await client.get('services/search/127.0.0.1:9200')).toBeUndefined();
      expect(child.lines.join('\n')).toContain('deregistered search/127.0.0.1:9200 (stopping)');
    } finally {
      await app.close();
    }
  }, 60_000);
});
