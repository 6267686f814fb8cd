import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { MvccEvent } from '../storage/mvcc/types.js';
import { startMember, type EmbeddedMember } from '../index.js';
import { EtcdTestClient } from './testing/etcd-client.js';

const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const dirs: string[] = [];
const running: EmbeddedMember[] = [];
afterEach(async () => {
  for (const m of running.splice(0)) await m.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'fulcrum-embedded-'));
  dirs.push(d);
  return d;
}

describe('startMember (embedded)', () => {
  it('serves reads, writes, transactions, watches and leases in-process, and keeps data across restarts', async () => {
    const dataDir = tempDir();
    let m = await startMember({ dataDir, heartbeatMs: 20 });
    running.push(m);
    const c = m.client;
    const events: MvccEvent[] = [];
    const watch = c.watch('app/', { prefix: true });
    const collecting = (async () => {
      for await (const e of watch) {
        events.push(e);
        if (events.length === 3) break;
      }
    })();
    const { revision } = await c.put('app/a', '1');
    await c.put('app/b', '2');
    expect(dec((await c.get('app/a'))!.value)).toBe('1');
    expect((await c.getPrefix('app/')).map((kv) => dec(kv.key))).toEqual(['app/a', 'app/b']);
    const t = await c.txn({
      compare: [{ key: new TextEncoder().encode('app/a'), target: 'VALUE', result: 'EQUAL', value: new TextEncoder().encode('1') }],
      success: [{ requestDeleteRange: { key: new TextEncoder().encode('app/b') } }],
    });
    expect(t.succeeded).toBe(true);
    await collecting;
    expect(events.map((e) => `${e.type} ${dec(e.kv.key)}`)).toEqual(['PUT app/a', 'PUT app/b', 'DELETE app/b']);
    expect(events[0]!.kv.modRevision).toBe(revision);

    const lease = await c.grantLease(60);
    await c.put('session', 'x', { lease: lease.id });
    expect(await lease.keepAlive()).toBe(60);
    await lease.revoke();
    expect(await c.get('session')).toBeUndefined();

    await m.close();
    running.length = 0;
    m = await startMember({ dataDir, heartbeatMs: 20 });
    running.push(m);
    expect(dec((await m.client.get('app/a'))!.value)).toBe('1');
    // A watch from a past revision replays history.
    const replay: string[] = [];
    for await (const e of m.client.watch('app/', { prefix: true, startRevision: revision })) {
      replay.push(`${e.type} ${dec(e.kv.key)}`);
      if (replay.length === 3) break;
    }
    expect(replay).toEqual(['PUT app/a', 'PUT app/b', 'DELETE app/b']);
  });

  it('gives each watcher events of its own: changing a value it got changes nothing the store or others see', async () => {
    const m = await startMember({ dataDir: tempDir(), heartbeatMs: 20 });
    running.push(m);
    const c = m.client;
    const first = async (): Promise<MvccEvent> => {
      for await (const e of c.watch('shared', { prevKv: true })) return e;
      throw new Error('the watch ended');
    };
    const [a, b] = [first(), first()];
    await c.put('shared', 'original');
    const [ea, eb] = await Promise.all([a, b]);
    ea.kv.value.fill(0x21);
    expect(dec(eb.kv.value)).toBe('original');
    // The store's row (cached after the put) is untouched: reading it back checks its CRC and finds the value.
    expect(dec((await c.get('shared'))!.value)).toBe('original');
  });

  it('reports refusals with the same codes and messages as the gRPC API', async () => {
    const m = await startMember({ dataDir: tempDir(), heartbeatMs: 20 });
    running.push(m);
    await expect(m.client.put('k', 'v', { lease: 12345n })).rejects.toMatchObject({ code: 'LEASE_NOT_FOUND', message: 'etcdserver: requested lease not found' });
  });

  it('also serves the etcd v3 API on the network when asked', async () => {
    const base = 18_000 + (process.pid % 140) * 4; // 18000-18559: below the ephemeral range (32768+), clear of fulcrumctl tests (18600+)
    const m = await startMember({ dataDir: tempDir(), listen: { clientPort: base, peerPort: base + 1 }, heartbeatMs: 20, electionMs: 200 });
    running.push(m);
    expect(m.endpoints).toEqual([`127.0.0.1:${base}`]);
    await m.client.put('shared', 'from-inside');
    const remote = new EtcdTestClient(m.endpoints[0]!);
    expect(await remote.get('shared')).toBe('from-inside');
    await remote.put('shared', 'from-outside');
    expect(dec((await m.client.get('shared'))!.value)).toBe('from-outside');
    remote.close();
  });
});
