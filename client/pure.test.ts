// Unit tests of the client's pure parts: the txn builder and its wire form, namespace mapping, error mapping,
// lease deadline arithmetic, watch resume bookkeeping, exactly-once lanes, option validation.
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { keyAfter, prefixEnd } from './bytes.js';
import { classifyServiceError, CompactedError, fromServiceError, InvalidArgumentError, LeaseNotFoundError, UnavailableError } from './errors.js';
import { KeySpace } from './keyspace.js';
import { defaultLeaseMarginMs, KEEPALIVES_UNANSWERED_MAX, LeaseClock } from './lease-clock.js';
import { parseEndpoint, validateClientOptions } from './options.js';
import { Compare, fromWireTxn, Op, toWireTxn, TxnBuilder } from './txn.js';
import { wireRange } from './types.js';
import { WatchCursor } from './watch-cursor.js';
import { WriteLanes } from './write-lanes.js';

const s = (b: Buffer): string => b.toString('latin1');
const wire = (r: Parameters<typeof wireRange>[0], space = KeySpace.ROOT): [string, string] => {
  const w = wireRange(r, space);
  return [s(w.key), s(w.rangeEnd)];
};

describe('bytes', () => {
  it('prefixEnd is the first key after every key with the prefix', () => {
    expect(s(prefixEnd(Buffer.from('app/')))).toBe('app0');
    expect(s(prefixEnd(Buffer.from([0x61, 0xff])))).toBe('b');
    expect([...prefixEnd(Buffer.from([0xff, 0xff]))]).toEqual([0]);
    expect(s(keyAfter(Buffer.from('k')))).toBe('k\0');
  });
});

describe('key ranges and namespaces', () => {
  it('maps user ranges to etcd key/range_end at the root', () => {
    expect(wire('a')).toEqual(['a', '']);
    expect(wire({ key: 'a' })).toEqual(['a', '']);
    expect(wire({ prefix: 'a/' })).toEqual(['a/', 'a0']);
    expect(wire({ prefix: '' })).toEqual(['\0', '\0']);
    expect(wire({ start: 'b', end: 'd' })).toEqual(['b', 'd']);
    expect(wire({ start: 'b' })).toEqual(['b', '\0']);
    expect(() => wire('')).toThrow(InvalidArgumentError);
    expect(() => wire({ start: 'a', end: '' })).toThrow(/range end/);
  });

  it('prefixes everything in a namespace, with "to the end" meaning the end of the namespace', () => {
    const ns = KeySpace.ROOT.child(Buffer.from('ns/'));
    expect(wire('a', ns)).toEqual(['ns/a', '']);
    expect(wire({ prefix: 'a/' }, ns)).toEqual(['ns/a/', 'ns/a0']);
    expect(wire({ prefix: '' }, ns)).toEqual(['ns/', 'ns0']);
    expect(wire({ start: 'b', end: 'd' }, ns)).toEqual(['ns/b', 'ns/d']);
    expect(wire({ start: 'b' }, ns)).toEqual(['ns/b', 'ns0']);
    const nested = ns.child(Buffer.from('x/'));
    expect(wire('k', nested)).toEqual(['ns/x/k', '']);
    expect(s(nested.strip(Buffer.from('ns/x/k')))).toBe('k');
    expect(() => ns.strip(Buffer.from('other/k'))).toThrow(/outside the namespace/);
    expect(() => ns.child(Buffer.alloc(0))).toThrow(/must not be empty/);
    // A prefix of 0xff bytes has no prefix end: "to the end" is every key after it.
    const top = KeySpace.ROOT.child(Buffer.from([0xff]));
    expect([...wireRange({ prefix: '' }, top).rangeEnd]).toEqual([0]);
  });
});

describe('the transaction builder', () => {
  it('builds etcd TxnRequests with every compare target, through a namespace', () => {
    const ns = KeySpace.ROOT.child(Buffer.from('p/'));
    const spec = new TxnBuilder()
      .if(Compare.value('k', '=', 'v'), Compare.version('k', '>', 2), Compare.createRevision('k', '<', 9), Compare.modRevision('k', '!=', 3), Compare.lease('k', '=', 7n))
      .then(Op.put('k', 'w', { lease: { id: 5n }, prevKv: true }), Op.get({ prefix: 'q/' }, { limit: 3 }))
      .else(Op.delete({ start: 'a', end: 'b' }), Op.txn({ compare: [], success: [Op.get('z')], failure: [] }))
      .spec();
    const req = toWireTxn(spec, ns);
    const cmp = req.compare!.map((c) => [c!.target, c!.result, s(c!.key as Buffer)]);
    expect(cmp).toEqual([
      ['VALUE', 'EQUAL', 'p/k'],
      ['VERSION', 'GREATER', 'p/k'],
      ['CREATE', 'LESS', 'p/k'],
      ['MOD', 'NOT_EQUAL', 'p/k'],
      ['LEASE', 'EQUAL', 'p/k'],
    ]);
    expect(req.compare![1]).toMatchObject({ version: '2' });
    expect(req.compare![4]).toMatchObject({ lease: '7' });
    expect(req.success![0]).toMatchObject({ request_put: { lease: '5', prev_kv: true } });
    expect(s((req.success![1] as { request_range: { range_end: Buffer } }).request_range.range_end)).toBe('p/q0');
    expect(s((req.failure![0] as { request_delete_range: { key: Buffer } }).request_delete_range.key)).toBe('p/a');
    expect((req.failure![1] as { request_txn: unknown }).request_txn).toBeDefined();
  });

  it('refuses misuse: wrong order, bad operators and operands, commit without a client', () => {
    expect(() => new TxnBuilder().then().if()).toThrow(/cannot follow/);
    expect(() => new TxnBuilder().else().then()).toThrow(/cannot follow/);
    expect(() => Compare.value('k', '==' as never, 'v')).toThrow(/operator/);
    expect(() => Compare.version('k', '=', -1)).toThrow(/non-negative/);
    expect(() => Compare.modRevision('k', '=', 1.5)).toThrow(/non-negative/);
    expect(() => new TxnBuilder().commit()).toThrow(/client/);
  });

  it('reads answers back, stripping the namespace', () => {
    const ns = KeySpace.ROOT.child(Buffer.from('p/'));
    const kv = { key: Buffer.from('p/k'), value: Buffer.from('v'), create_revision: '2', mod_revision: '3', version: '2', lease: '0', create_hlc: '0', mod_hlc: '0' } as const;
    const r = fromWireTxn(
      {
        header: { cluster_id: '1', member_id: '2', revision: '9', raft_term: '1', hlc: '65536' },
        succeeded: true,
        responses: [
          { response: 'response_range', response_range: { header: null, kvs: [kv], more: false, count: '1' } },
          { response: 'response_put', response_put: { header: null, prev_kv: kv } },
          { response: 'response_delete_range', response_delete_range: { header: null, deleted: '1', prev_kvs: [] } },
        ],
      },
      ns,
    );
    expect(r.revision).toBe(9);
    expect(r.header.hlc).toBe(65536n);
    expect(r.results[0]).toMatchObject({ type: 'get', count: 1 });
    expect(r.results[0]!.type === 'get' && r.results[0]!.kvs[0]!.keyText).toBe('k');
    expect(r.results[1]!.type === 'put' && r.results[1]!.prevKv?.modRevision).toBe(3);
    expect(r.results[2]).toMatchObject({ type: 'delete', deleted: 1 });
  });
});

function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

describe('error mapping', () => {
  it('maps etcd messages to stable codes first, then statuses', () => {
    const cases: Array<[status, string, string, boolean]> = [
      [status.UNAVAILABLE, 'etcdserver: no leader', 'NO_LEADER', true],
      [status.UNAVAILABLE, 'etcdserver: request timed out', 'TIMEOUT', true],
      [status.UNAVAILABLE, 'etcdserver: leader changed', 'LEADER_CHANGED', true],
      [status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted', 'COMPACTED', false],
      [status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision', 'FUTURE_REVISION', false],
      [status.NOT_FOUND, 'etcdserver: requested lease not found', 'LEASE_NOT_FOUND', false],
      [status.FAILED_PRECONDITION, 'etcdserver: lease already exists', 'LEASE_EXISTS', false],
      [status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request', 'DUPLICATE_KEY', false],
      [status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded', 'NO_SPACE', false],
      [status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests', 'TOO_MANY_REQUESTS', true],
      [status.FAILED_PRECONDITION, 'fulcrum: request 3 of client "c.0" is older than its last applied request 4', 'STALE_SEQUENCE', false],
      [status.UNAVAILABLE, 'Connection dropped', 'UNAVAILABLE', true],
      [status.DEADLINE_EXCEEDED, 'Deadline exceeded', 'DEADLINE_EXCEEDED', true],
      [status.UNIMPLEMENTED, 'unknown service fulcrum.v1.Fulcrum', 'NOT_SUPPORTED', false],
      [status.UNKNOWN, 'election: not leader', 'INTERNAL', false],
    ];
    for (const [code, details, want, retryable] of cases) expect([details, classifyServiceError(serviceError(code, details))]).toEqual([details, { code: want, retryable }]);
  });

  it('builds the matching error classes, keeping the status and endpoint', () => {
    const c = fromServiceError(serviceError(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'), 'h:1');
    expect(c).toBeInstanceOf(CompactedError);
    expect([c.code, c.grpcCode, c.endpoint, c.message]).toEqual(['COMPACTED', status.OUT_OF_RANGE, 'h:1', 'etcdserver: mvcc: required revision has been compacted']);
    expect(fromServiceError(serviceError(status.NOT_FOUND, 'etcdserver: requested lease not found'))).toBeInstanceOf(LeaseNotFoundError);
    const u = fromServiceError(serviceError(status.UNAVAILABLE, 'etcdserver: no leader'));
    expect(u).toBeInstanceOf(UnavailableError);
    expect([u.code, u.retryable]).toEqual(['NO_LEADER', true]);
  });
});

describe('lease deadline arithmetic', () => {
  it('counts from the send time of the acknowledged keep-alive, minus the margin', () => {
    const c = new LeaseClock(1_000, 10, 500);
    expect(c.validUntilMs).toBe(1_000 + 10_000 - 500);
    c.sent(4_000);
    c.sent(5_000);
    // The first answer belongs to the keep-alive sent at 4000, however late it arrives.
    expect(c.answered(10)).toBe(4_000 + 10_000 - 500);
    expect(c.answered(10)).toBe(5_000 + 10_000 - 500);
    expect(c.answered(10)).toBe('unexpected');
  });

  it('never moves the deadline back, and a TTL of 0 means expired', () => {
    const c = new LeaseClock(1_000, 10, 0);
    c.sent(2_000);
    expect(c.answered(3)).toBe(11_000); // 2000 + 3 s is earlier than the grant's 11000
    c.sent(3_000);
    expect(c.answered(0)).toBe('expired');
  });

  it('forgets unanswered keep-alives of a broken stream, and bounds them', () => {
    const c = new LeaseClock(0, 10, 0);
    c.sent(1_000);
    c.streamLost();
    c.sent(2_000);
    expect(c.answered(10)).toBe(12_000); // paired with 2000, not the lost 1000
    for (let i = 0; i < KEEPALIVES_UNANSWERED_MAX; i++) expect(c.sent(3_000 + i)).toBe(true);
    expect(c.sent(9_999)).toBe(false);
    expect(c.oldestUnansweredMs).toBe(3_000);
  });

  it('awaits answers a few smoothed round trips, bounded, and the cap before any was timed', () => {
    const c = new LeaseClock(0, 10, 0);
    expect(c.answerTimeoutMs(500, 1_600)).toBe(1_600);
    c.sent(1_000);
    c.answered(10, 1_010); // 10 ms
    expect(c.answerTimeoutMs(500, 1_600)).toBe(500);
    c.sent(2_000);
    c.answered(10, 2_150); // a slow one counts at once
    expect(c.answerTimeoutMs(500, 1_600)).toBe(1_200);
    for (let i = 0; i < 30; i++) {
      c.sent(3_000 + i);
      c.answered(10, 3_000 + i + 10);
    }
    expect(c.answerTimeoutMs(500, 1_600)).toBe(500); // and fades
    c.answerTimedOut(); // 10 ms -> 20 ms: still the floor
    expect(c.answerTimeoutMs(500, 1_600)).toBe(500);
    for (let i = 0; i < 3; i++) c.answerTimedOut(); // about 160 ms: each timeout waits longer
    expect(c.answerTimeoutMs(500, 1_600)).toBeGreaterThan(1_250);
    expect(c.answerTimeoutMs(500, 1_600)).toBeLessThan(1_350);
    c.sent(9_000);
    c.answered(10, 9_000 + 1_000);
    expect(c.answerTimeoutMs(500, 1_600)).toBe(1_600);
  });

  it('validates the margin and picks a sensible default', () => {
    expect(() => new LeaseClock(0, 1, 1_000)).toThrow(/margin/);
    expect(() => new LeaseClock(0, 0, 0)).toThrow(/TTL/);
    expect([defaultLeaseMarginMs(1), defaultLeaseMarginMs(5), defaultLeaseMarginMs(60)]).toEqual([100, 500, 1_000]);
  });
});

describe('watch resume bookkeeping', () => {
  const ev = (revision: number): { revision: number } => ({ revision });

  it('resumes after the last delivered revision and drops anything replayed twice', () => {
    const c = new WatchCursor(5);
    expect(c.resumeRevision).toBe(5);
    expect(c.accept([ev(5), ev(7), ev(7), ev(9)]).map((e) => e.revision)).toEqual([5, 7, 7, 9]);
    expect(c.resumeRevision).toBe(10);
    // A new stream that (wrongly) replays 9 again: dropped.
    expect(c.accept([ev(9), ev(10)]).map((e) => e.revision)).toEqual([10]);
    expect(c.deliveredThrough).toBe(10);
  });

  it('anchors a "from now" watch at its created revision, and only then', () => {
    const c = new WatchCursor(0);
    expect(c.deliveredThrough).toBe(-1);
    c.created(41);
    expect(c.resumeRevision).toBe(42);
    c.created(50); // a later stream's created (resuming from 42) does not move it
    expect(c.resumeRevision).toBe(42);
    const past = new WatchCursor(3);
    past.created(100); // history 3..100 still to come
    expect(past.resumeRevision).toBe(3);
  });

  it('advances on progress, never backwards', () => {
    const c = new WatchCursor(10);
    c.progressed(20);
    expect(c.resumeRevision).toBe(21);
    c.progressed(15);
    expect(c.resumeRevision).toBe(21);
  });
});

describe('exactly-once lanes', () => {
  it('gives each concurrent write its own identity with rising sequence numbers, and queues beyond the limit', async () => {
    const lanes = new WriteLanes('app', 2, 1);
    const a = await lanes.acquire();
    const b = await lanes.acquire();
    expect(a.identity.clientId).not.toBe(b.identity.clientId);
    expect([a.identity.seq, b.identity.seq]).toEqual([1, 1]);
    expect(a.identity.header).toBe(`${a.identity.clientId}:1`);
    let third: Awaited<ReturnType<WriteLanes['acquire']>> | undefined;
    const waiting = lanes.acquire().then((x) => (third = x));
    await expect(lanes.acquire()).rejects.toMatchObject({ code: 'TOO_MANY_REQUESTS' });
    expect(third).toBeUndefined();
    a.release();
    a.release(); // twice is once
    await waiting;
    expect(third!.identity.clientId).toBe(a.identity.clientId);
    expect(third!.identity.seq).toBe(2);
    expect(lanes.inFlight).toBe(2);
  });

  it('a waiting write can be aborted', async () => {
    const lanes = new WriteLanes('app', 1, 5);
    await lanes.acquire();
    const ac = new AbortController();
    const p = lanes.acquire(ac.signal);
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'ABORTED' });
  });
});

describe('options', () => {
  it('validates endpoints and numbers, with the option named', () => {
    expect(parseEndpoint('https://h.example:2379')).toEqual({ address: 'h.example:2379', secure: true });
    expect(parseEndpoint('127.0.0.1:2379')).toEqual({ address: '127.0.0.1:2379', secure: false });
    expect(() => parseEndpoint('127.0.0.1')).toThrow(/bad endpoint/);
    expect(() => validateClientOptions({ endpoints: ['a:1'], attemptTimeoutMs: 0 })).toThrow(/attemptTimeoutMs/);
    expect(() => validateClientOptions({ endpoints: ['a:1'], clientName: 'has space' })).toThrow(/clientName/);
    expect(() => validateClientOptions({ endpoints: ['a:1'], tls: { cert: 'x' } })).toThrow(/cert and tls.key/);
    const o = validateClientOptions({ endpoints: ['a:1', 'a:1', 'b:2'] });
    expect(o.endpoints).toEqual(['a:1', 'b:2']);
    expect(Object.isFrozen(o)).toBe(true);
  });
});
