// The limits of node/api/limits.ts, each at the edge: the txn shape check, that the nesting limit fits the command
// codec, the per-member call budget (and that it gives every slot back), per-member watches, and the response
// size of reads that cover everything.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdApi, type TxnRequest, type WatchResponse } from '../../proto/index.js';
import { encodeCommand } from '../../storage/command.js';
import { LEASES_MAX, LeaseError } from '../../storage/lease/index.js';
import type * as mvcc from '../../storage/mvcc/index.js';
import { startMember, startWatchServer, WatchClient, type TestMember } from '../watch/testdata/harness.js';
import { API_LIMITS_DEFAULTS } from './context.js';
import { toServiceError } from './errors.js';
import { b, failsWith, rpc, startHarness, type Harness } from './harness.testutil.js';
import { CallBudget, checkApiLimits, checkTxnShape, LIMIT_ERRORS } from './limits.js';
import { WATCH_ERRORS } from './watch.js';

/** A wire TxnRequest nested `depth` levels, `width` ranges at the bottom. */
function nestedWire(depth: number, width = 1): TxnRequest {
  let t: TxnRequest = { compare: [], success: Array.from({ length: width }, () => ({ request: 'request_range' as const, request_range: {} as never })), failure: [] };
  for (let i = 1; i < depth; i++) t = { compare: [], success: [{ request: 'request_txn', request_txn: t }], failure: [] };
  return t;
}

/** The same as an mvcc txn whose innermost level uses every kind of op and compare: the widest command there is. */
function nestedMvcc(depth: number): mvcc.TxnRequest {
  const key = new Uint8Array([1]);
  let t: mvcc.TxnRequest = {
    compare: [{ key, rangeEnd: key, target: 'VALUE', result: 'EQUAL', value: key }],
    success: [{ requestPut: { key, value: key, lease: 1n, prevKv: true } }, { requestDeleteRange: { key, rangeEnd: key } }],
    failure: [{ requestRange: { key, rangeEnd: key, limit: 1, sortOrder: 'ASCEND', sortTarget: 'KEY' } }],
  };
  for (let i = 1; i < depth; i++) t = { compare: [], success: [{ requestTxn: t }], failure: [] };
  return t;
}

describe('txn shape', () => {
  const limits = { txnNestingMax: 4, txnOpsTotalMax: 10 };

  it('counts levels without recursion, and refuses one level too many', () => {
    expect(() => checkTxnShape(nestedWire(4), limits)).not.toThrow();
    expect(() => checkTxnShape(nestedWire(5), limits)).toThrow(LIMIT_ERRORS.txnTooDeep(4));
    // Far deeper than a recursive walk could go: still a clean refusal.
    expect(() => checkTxnShape(nestedWire(200_000), { ...limits, txnOpsTotalMax: 1e9 })).toThrow(LIMIT_ERRORS.txnTooDeep(4));
  });

  it('sums operations over every level', () => {
    // 3 levels: 1 + 1 + 8 = 10 operations.
    expect(() => checkTxnShape(nestedWire(3, 8), limits)).not.toThrow();
    expect(() => checkTxnShape(nestedWire(3, 9), limits)).toThrow(LIMIT_ERRORS.txnTooManyOps(10));
  });

  it('the default nesting limit fits the command codec, which gives up a few levels further', () => {
    const encode = (depth: number): Uint8Array => encodeCommand({ hlc: 1n, op: { txn: nestedMvcc(depth) } });
    expect(() => encode(API_LIMITS_DEFAULTS.txnNestingMax)).not.toThrow();
    // Without the API's check, this is where a nested txn became an assertion (and an INTERNAL answer).
    expect(() => encode(API_LIMITS_DEFAULTS.txnNestingMax + 6)).toThrow(/nested too deeply/);
  });

  it('the limits must agree with each other', () => {
    expect(() => checkApiLimits(API_LIMITS_DEFAULTS)).not.toThrow();
    expect(() => checkApiLimits({ ...API_LIMITS_DEFAULTS, responseBytesMax: API_LIMITS_DEFAULTS.requestBytesMax })).toThrow(/max-response-bytes/);
    expect(() => checkApiLimits({ ...API_LIMITS_DEFAULTS, txnOpsTotalMax: 100 })).toThrow(/txnOpsTotalMax/);
    expect(() => checkApiLimits({ ...API_LIMITS_DEFAULTS, streamsPerMemberMax: 0 })).toThrow(/positive/);
  });
});

describe('leases per member', () => {
  // The table's bound (storage/lease, covered there) is a constant: 100,000 grants are too slow for this suite.
  it('the lease table\'s limit reaches clients as RESOURCE_EXHAUSTED with its message', () => {
    const e = toServiceError(new LeaseError('TOO_MANY_LEASES', `fulcrum: too many leases: the limit is ${LEASES_MAX}`));
    expect([e.code, e.details]).toEqual([grpc.status.RESOURCE_EXHAUSTED, 'fulcrum: too many leases: the limit is 100000']);
  });
});

describe('calls in flight per member', () => {
  const budget = new CallBudget({ unaryCallsPerMemberMax: 3, streamsPerMemberMax: 2 });
  const gate: Array<() => void> = [];
  let server: grpc.Server;
  let endpoint: string;
  const api = loadEtcdApi();

  beforeAll(async () => {
    server = new grpc.Server({ interceptors: [budget.interceptor] });
    server.addService(api.etcdserverpb.KV.service, {
      // Held until the test opens the gate: the call is in flight all that time.
      Range: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => gate.push(() => cb(null, { kvs: [], count: '0' })),
    });
    server.addService(api.etcdserverpb.Watch.service, {
      Watch: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.on('data', () => {}).on('end', () => call.end()),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    endpoint = `127.0.0.1:${port}`;
  });
  afterAll(() => server.forceShutdown());

  it('refuses unary calls beyond the budget with etcd\'s "too many requests", and gives every slot back', async () => {
    const kv = new api.etcdserverpb.KV(endpoint, grpc.credentials.createInsecure());
    try {
      const calls = Array.from({ length: 8 }, () => rpc(kv, 'Range', { key: b('k') }).then(() => 'ok', (e: grpc.ServiceError) => `${e.code} ${e.details}`));
      await until(() => gate.length === 3);
      expect(budget.inFlight.unary).toBe(3);
      for (const open of gate.splice(0)) open();
      const results = await Promise.all(calls);
      expect(results.filter((r) => r === 'ok')).toHaveLength(3);
      expect(results.filter((r) => r === `${grpc.status.RESOURCE_EXHAUSTED} ${LIMIT_ERRORS.tooManyUnaryCalls}`)).toHaveLength(5);
      await until(() => budget.inFlight.unary === 0);
      // A call the client gives up on (deadline) gives its slot back too, though the handler never answers.
      const [code] = await failsWith(rpc(kv, 'Range', { key: b('k') }, new grpc.Metadata(), { deadline: Date.now() + 200 }));
      expect(code).toBe(grpc.status.DEADLINE_EXCEEDED);
      await until(() => budget.inFlight.unary === 0);
      gate.splice(0);
    } finally {
      kv.close();
    }
  });

  it('streams have their own budget: a third stream is refused while unary calls still pass', async () => {
    const watch = new api.etcdserverpb.Watch(endpoint, grpc.credentials.createInsecure());
    const kv = new api.etcdserverpb.KV(endpoint, grpc.credentials.createInsecure());
    try {
      const open = [watch.Watch(), watch.Watch()];
      for (const s of open) s.on('error', () => {});
      await until(() => budget.inFlight.streams === 2);
      const third = watch.Watch();
      const status = await new Promise<grpc.StatusObject>((resolve) => {
        third.on('error', () => {});
        third.on('status', resolve);
      });
      expect([status.code, status.details]).toEqual([grpc.status.RESOURCE_EXHAUSTED, LIMIT_ERRORS.tooManyStreams]);
      const pending = rpc(kv, 'Range', { key: b('k') });
      await until(() => gate.length === 1);
      gate.splice(0)[0]!();
      await pending;
      for (const s of open) s.end();
      await until(() => budget.inFlight.streams === 0);
    } finally {
      watch.close();
      kv.close();
    }
  });
});

describe('watches per member', () => {
  let t: TestMember;

  beforeAll(async () => {
    t = await startMember();
  });
  afterAll(async () => {
    await t.close();
  });

  it('counts every stream\'s watches; beyond the limit a create is refused with the reason, and a cancel frees a place', async () => {
    const srv = await startWatchServer(t.member, { stream: { watchesPerStreamMax: 8 }, api: { watchesPerMemberMax: 10 } });
    const [a, c] = [new WatchClient(srv.address), new WatchClient(srv.address)];
    try {
      for (let i = 0; i < 8; i++) a.create({ key: b(`a${i}`) });
      await a.until((rs) => rs.filter((r) => r.created).length === 8, 10_000, 'a created');
      for (let i = 0; i < 4; i++) c.create({ key: b(`c${i}`) });
      await c.until((rs) => rs.filter((r) => r.created).length === 4, 10_000, 'c answered');
      const refused = (rs: WatchResponse[]): WatchResponse[] => rs.filter((r) => r.canceled && r.watch_id === '-1');
      expect(refused(c.responses).map((r) => r.cancel_reason)).toEqual([WATCH_ERRORS.tooManyWatchesOnMember, WATCH_ERRORS.tooManyWatchesOnMember]);
      expect(srv.hub.watcherCount).toBe(10);
      a.send({ cancel_request: { watch_id: '0' } });
      await a.until((rs) => rs.some((r) => r.canceled && r.watch_id === '0'), 10_000, 'canceled');
      c.create({ key: b('c-again') });
      await c.until((rs) => rs.filter((r) => r.created).length === 5, 10_000, 'created again');
      expect(refused(c.responses)).toHaveLength(2);
    } finally {
      a.close();
      c.close();
      await srv.close();
    }
  });
});

describe('watched key bytes per member', () => {
  let t: TestMember;

  beforeAll(async () => {
    t = await startMember();
  });
  afterAll(async () => {
    await t.close();
  });

  it('counts the keys and range ends of every stream\'s watches; a cancel or a closed stream gives them back', async () => {
    const srv = await startWatchServer(t.member, { api: { watchKeyBytesPerMemberMax: 3_000 } });
    const [a, c] = [new WatchClient(srv.address), new WatchClient(srv.address)];
    try {
      const key = (s: string): Buffer => Buffer.concat([b(s), Buffer.alloc(999, 0x61)]); // 1,000 bytes
      a.create({ key: key('a'), range_end: key('b') }); // 2,000 bytes
      await a.until((rs) => rs.some((r) => r.created && r.watch_id === '0'), 10_000, 'a created');
      c.create({ key: key('c') }); // 1,000 more: exactly the budget
      c.create({ key: b('d') }); // one byte too many
      await c.until((rs) => rs.filter((r) => r.created).length === 2, 10_000, 'c answered');
      expect(c.responses.filter((r) => r.canceled).map((r) => r.cancel_reason)).toEqual([WATCH_ERRORS.tooManyWatchedKeyBytes]);
      a.close(); // the stream's watches give their bytes back
      await until(() => srv.hub.watcherCount === 1);
      c.create({ key: key('e'), range_end: key('f') });
      await c.until((rs) => rs.filter((r) => r.created && !r.canceled).length === 2, 10_000, 'created after a closed');
    } finally {
      c.close();
      await srv.close();
    }
  });
});

describe('response size', () => {
  let h: Harness;
  const bytesMax = 256 * 1024;

  beforeAll(async () => {
    h = await startHarness({ limits: { responseBytesMax: bytesMax } });
    const value = Buffer.alloc(16 * 1024, 7);
    for (let i = 0; i < 40; i++) await rpc(h.kv, 'Put', { key: b(`big/${String(i).padStart(2, '0')}`), value }); // 640 KiB
  });
  afterAll(async () => {
    await h.close();
  });

  it('a range that covers everything is refused with RESOURCE_EXHAUSTED naming the limit; with limit it pages', async () => {
    const everything = { key: Buffer.from([0]), range_end: Buffer.from([0]) };
    expect(await failsWith(rpc(h.kv, 'Range', everything))).toEqual([grpc.status.RESOURCE_EXHAUSTED, LIMIT_ERRORS.responseTooLarge(bytesMax)]);
    const page = await rpc(h.kv, 'Range', { ...everything, limit: 10 });
    expect([page.kvs.length, page.more, page.count]).toEqual([10, true, '40']);
    // keys_only and count_only cost no values: served.
    expect((await rpc(h.kv, 'Range', { ...everything, keys_only: true })).kvs).toHaveLength(40);
    expect((await rpc(h.kv, 'Range', { ...everything, count_only: true })).count).toBe('40');
  });

  it('a read-only txn whose ranges add up past the limit is refused the same way', async () => {
    const op = { request_range: { key: b('big/'), range_end: b('big0'), limit: 12 } }; // ~200 KiB each
    expect((await rpc(h.kv, 'Txn', { success: [op] })).succeeded).toBe(true);
    expect(await failsWith(rpc(h.kv, 'Txn', { success: [op, op] }))).toEqual([grpc.status.RESOURCE_EXHAUSTED, LIMIT_ERRORS.responseTooLarge(bytesMax)]);
    // A compare of every value reads them all: it pays like a read of them.
    const compareAll = { key: Buffer.from([0]), range_end: Buffer.from([0]), target: 'VALUE' as const, result: 'NOT_EQUAL' as const, value: b('x') };
    expect(await failsWith(rpc(h.kv, 'Txn', { compare: [compareAll] }))).toEqual([grpc.status.RESOURCE_EXHAUSTED, LIMIT_ERRORS.responseTooLarge(bytesMax)]);
    const compareSome = { ...compareAll, key: b('big/00'), range_end: b('big/10') };
    expect((await rpc(h.kv, 'Txn', { compare: [compareSome] })).succeeded).toBe(true);
  });
});

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
