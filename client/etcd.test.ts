// The client against a real etcd (3.4 here): plain KV, transactions, leases and watches work as against
// Fulcrum; Fulcrum-only features say so (NOT_SUPPORTED); and a write whose answer is lost is never retried
// (etcd has no exactly-once table), it fails with OutcomeUnknownError.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Compare, NotSupportedError, Op, OutcomeUnknownError, type WatchEvent } from './index.js';
import { FaultProxy } from './testing/proxy.js';
import { ETCD_BIN, freePorts, haveEtcd, startTestEtcd, type TestEtcd } from './testing/servers.js';

if (!haveEtcd) console.warn(`client/etcd.test.ts: etcd not found at ${ETCD_BIN}; skipping the etcd interoperability tests. Install etcd (Debian's etcd-server) or set ETCD_BIN to run them.`);

describe.skipIf(!haveEtcd)('against etcd', () => {
  let etcd: TestEtcd;
  let client: Client;
  beforeAll(async () => {
    etcd = await startTestEtcd(4);
    client = new Client({ endpoints: [etcd.endpoint], attemptTimeoutMs: 2_000 });
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await etcd?.close();
  });

  it('KV, ranges, paging and transactions', async () => {
    const a = await client.put('e/a', '1');
    await client.put('e/b', '2', { prevKv: true });
    expect((await client.get('e/a'))?.valueText).toBe('1');
    expect((await client.get('e/a'))?.modHlc).toBe(0n); // etcd has no HLC
    expect(a.hlc).toBe(0n);
    expect((await client.getPrefix('e/')).map((kv) => kv.keyText)).toEqual(['e/a', 'e/b']);
    const keys: string[] = [];
    for await (const kv of client.iterate({ prefix: 'e/' }, { pageSize: 1 })) keys.push(kv.keyText);
    expect(keys).toEqual(['e/a', 'e/b']);
    const t = await client.txn().if(Compare.value('e/a', '=', '1')).then(Op.put('e/a', '3')).else(Op.get('e/a')).commit();
    expect(t.succeeded).toBe(true);
    expect((await client.delete({ prefix: 'e/' })).deleted).toBe(2);
    await expect(client.revisionAt(new Date())).rejects.toBeInstanceOf(NotSupportedError);
  });

  it('watches and leases', async () => {
    const watch = client.watch({ prefix: 'ew/' }, { prevKv: true });
    await watch.ready;
    const lease = await client.grantLease(5);
    await client.put('ew/x', '1', { lease });
    await client.put('ew/x', '2');
    await client.delete('ew/x');
    const got: WatchEvent[] = [];
    for await (const e of watch) {
      got.push(e);
      if (got.length === 3) break;
    }
    expect(got.map((e) => `${e.type} ${e.kv.valueText} prev=${e.prevKv?.valueText ?? '-'}`)).toEqual(['put 1 prev=-', 'put 2 prev=1', 'delete  prev=2']);
    expect(lease.lost).toBeUndefined();
    expect((await lease.timeToLive()).ttlSeconds).toBeGreaterThan(0);
    await lease.close();
    expect((await lease.timeToLive()).ttlSeconds).toBe(-1);
  });

  it('a single key is that key only: get, count, compare and txn ops of a missing key see nothing after it', async () => {
    // etcd reads a range_end sent present but empty as "every key from key on"; the client leaves it off.
    for (const k of ['m/b', 'm/c']) await client.put(k, 'x');
    expect(await client.get('m/a')).toBeUndefined();
    expect(await client.count('m/a')).toBe(0);
    expect((await client.range('m/b')).kvs.map((kv) => kv.keyText)).toEqual(['m/b']);
    const t = await client.txn().if(Compare.version('m/a', '=', 0)).then(Op.get('m/a'), Op.delete('m/a')).commit();
    expect(t.succeeded).toBe(true);
    expect(t.results.map((r) => (r.type === 'get' ? r.kvs.length : r.type === 'delete' ? r.deleted : -1))).toEqual([0, 0]);
    expect((await client.delete('m/a')).deleted).toBe(0);
    expect((await client.getPrefix('m/')).map((kv) => kv.keyText)).toEqual(['m/b', 'm/c']);
  });

  it('a write whose answer is lost is not retried: OutcomeUnknownError (and it did apply)', async () => {
    const [port] = await freePorts(1, 5);
    const proxy = await FaultProxy.start(etcd.endpoint, port!);
    const c = new Client({ endpoints: [proxy.endpoint], attemptTimeoutMs: 2_000 });
    try {
      await c.put('eu/warm', 'x');
      proxy.dropAnswers(1);
      await expect(c.put('eu/k', 'v')).rejects.toBeInstanceOf(OutcomeUnknownError);
      expect((await c.get('eu/k'))?.version).toBe(1);
      // Reads are retried after a lost answer.
      proxy.dropAnswers(1);
      expect((await c.get('eu/k'))?.valueText).toBe('v');
    } finally {
      await c.close();
      await proxy.close();
    }
  });
});

describe.skipIf(!haveEtcd)('against etcd with TLS and client certificates', () => {
  let etcd: TestEtcd;
  beforeAll(async () => {
    etcd = await startTestEtcd(7, { tls: true });
  }, 60_000);
  afterAll(async () => {
    await etcd?.close();
  });

  it('connects with the CA, certificate and key given as tls options', async () => {
    const c = new Client({ endpoints: [etcd.endpoint], tls: etcd.tls, attemptTimeoutMs: 2_000 });
    try {
      await c.put('tls/k', 'secret');
      expect((await c.get('tls/k'))?.valueText).toBe('secret');
    } finally {
      await c.close();
    }
  });

  it('negative control: without the client certificate the server refuses the connection', async () => {
    const c = new Client({ endpoints: [etcd.endpoint], tls: { ca: etcd.tls!.ca }, attemptTimeoutMs: 1_000, requestTimeoutMs: 3_000 });
    try {
      await expect(c.get('tls/k')).rejects.toMatchObject({ retryable: true });
    } finally {
      await c.close();
    }
  });
});
