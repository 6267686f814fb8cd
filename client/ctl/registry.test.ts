// fulcrumctl registry list / watch against a real in-process member, with instances registered by the client's
// Registry (leases kept alive by a client of this test).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Registry } from '../index.js';
import { ctl, type CtlResult, startCtl, startCtlMember, type CtlMember } from './testing.js';

let m: CtlMember;
let client: Client;
let env: Record<string, string>;

beforeAll(async () => {
  m = await startCtlMember(8);
  client = new Client({ endpoints: [m.endpoint] });
  env = { FULCRUMCTL_ENDPOINTS: m.endpoint };
});
afterAll(async () => {
  await client?.close();
  await m?.close();
});

const run = (...argv: string[]): Promise<CtlResult> => ctl(argv, { env });

describe('registry', () => {
  it('lists the instances of one service or of all, as table, simple and json', async () => {
    const registry = new Registry(client);
    const a = await registry.register('payments', { id: 'p1', address: '10.0.0.1:50051', metadata: { zone: 'a' } });
    await registry.register('payments', { id: 'p2', address: '10.0.0.2:50051' });
    await registry.register('search', { id: 's1', address: '10.0.0.9:8080' });

    const table = await run('registry', 'list', 'payments');
    expect(table.code).toBe(0);
    const rows = table.out.split('\n').filter((l) => l.startsWith('| payments'));
    expect(rows.map((r) => r.split('|').slice(1, 5).map((c) => c.trim()))).toEqual([
      ['payments', 'p1', '10.0.0.1:50051', '{"zone":"a"}'],
      ['payments', 'p2', '10.0.0.2:50051', '{}'],
    ]);
    expect((await run('registry', 'list', '-w', 'simple')).out).toBe('payments p1 10.0.0.1:50051\npayments p2 10.0.0.2:50051\nsearch s1 10.0.0.9:8080\n');
    const json = JSON.parse((await run('registry', 'list', 'payments', '-w', 'json')).out) as { instances: Array<Record<string, unknown>> };
    expect(json.instances[0]).toMatchObject({ service: 'payments', id: 'p1', address: '10.0.0.1:50051', metadata: { zone: 'a' }, lease: a.leaseId!.toString(16) });
    expect((await run('registry', 'list', 'nothing-here', '-w', 'json')).out).toBe('{"instances":[]}\n');
  });

  it('watches a service: the instances now, then each change, until Ctrl-C', async () => {
    const registry = new Registry(client);
    await registry.register('orders', { id: 'o1', address: '10.0.1.1:9000' });
    const watch = startCtl(['registry', 'watch', 'orders', '-w', 'json'], { env });
    await watch.waitFor(/"id":"o1"/);
    expect(watch.output()).toContain('watching service orders: 1 instance at revision');
    const o2 = await registry.register('orders', { id: 'o2', address: '10.0.1.2:9000' });
    await watch.waitFor(/"id":"o2"/);
    await o2.close(); // deregisters at once
    await watch.waitFor(/"type":"down"/);
    const r = await watch.interrupt();
    expect(r.code).toBe(0);
    const events = r.out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; initial: boolean; instance: { id: string } });
    expect(events.map((e) => `${e.type} ${e.instance.id} ${e.initial}`)).toEqual(['up o1 true', 'up o2 false', 'down o2 false']);
  });

  it('refuses a bad service name in one line (exit 1, INVALID_ARGUMENT)', async () => {
    const r = await run('registry', 'list', 'a/b');
    expect([r.code, r.out]).toEqual([1, '']);
    expect(r.err).toMatch(/^Error: .*service.*\(INVALID_ARGUMENT\)\n$/);
  });
});
