// The KV service end to end: a grpc-js client against a real single-voter Member, every request field and every
// error path with etcd's status code and message.
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfChangeType } from '../../raft/types.js';
import type { CompareResult, CompareTarget, Encodable, RangeRequest, RangeResponse, TxnRequest } from '../../proto/index.js';
import { b, failsWith, rpc, metadata, startHarness, type Harness } from './harness.testutil.js';

const keysOf = (r: RangeResponse): string[] => r.kvs.map((kv) => kv.key.toString());

describe('KV service', () => {
  let h: Harness;
  const range = (req: Encodable<RangeRequest>): Promise<RangeResponse> => rpc(h.kv, 'Range', req);
  const put = (key: string, value: string, extra: Record<string, unknown> = {}) => rpc(h.kv, 'Put', { key: b(key), value: b(value), ...extra });
  const txn = (req: Encodable<TxnRequest>) => rpc(h.kv, 'Txn', req);

  beforeAll(async () => {
    h = await startHarness({ limits: { requestBytesMax: 64 * 1024, txnOpsMax: 6 } });
  });
  afterAll(async () => h.close());

  it('Put then Range: etcd header fields, the kv, and the HLC extension', async () => {
    const p = await put('a/1', 'one');
    expect(p.header).toMatchObject({ cluster_id: String(h.member.clusterId), member_id: '1', raft_term: String(h.member.term()) });
    const rev = Number(p.header!.revision);
    expect(BigInt(p.header!.hlc)).toBeGreaterThan(0n);
    const r = await range({ key: b('a/1') });
    expect(r.count).toBe('1');
    expect(r.more).toBe(false);
    expect(r.header!.revision).toBe(String(rev));
    expect(r.kvs[0]).toMatchObject({ create_revision: String(rev), mod_revision: String(rev), version: '1', lease: '0' });
    expect(r.kvs[0]!.value.toString()).toBe('one');
    // The kv carries the write's stamp (create and mod: the put created the key), and so does the read's header.
    expect(r.kvs[0]!.mod_hlc).toBe(p.header!.hlc);
    expect(r.kvs[0]!.create_hlc).toBe(p.header!.hlc);
    expect(r.header!.hlc).toBe(p.header!.hlc);
  });

  it('Range: prefix, "\\0" range end, limit/more/count, sort orders and targets, keys_only, count_only', async () => {
    for (const [k, v] of [['p/c', '1'], ['p/a', '3'], ['p/b', '2'], ['q/z', '0']] as const) await put(k, v);
    await put('p/b', '9'); // version 2, latest mod revision
    const prefix = { key: b('p/'), range_end: b('p0') };
    expect(keysOf(await range(prefix))).toEqual(['p/a', 'p/b', 'p/c']);
    expect(keysOf(await range({ key: b('p/b'), range_end: Buffer.from([0]) }))).toEqual(['p/b', 'p/c', 'q/z']);
    const limited = await range({ ...prefix, limit: 2 });
    expect([keysOf(limited), limited.more, limited.count]).toEqual([['p/a', 'p/b'], true, '3']);
    expect(keysOf(await range({ ...prefix, sort_order: 'DESCEND' }))).toEqual(['p/c', 'p/b', 'p/a']);
    expect(keysOf(await range({ ...prefix, sort_target: 'VALUE', sort_order: 'ASCEND' }))).toEqual(['p/c', 'p/a', 'p/b']);
    expect(keysOf(await range({ ...prefix, sort_target: 'MOD', sort_order: 'DESCEND' }))[0]).toBe('p/b');
    expect(keysOf(await range({ ...prefix, sort_target: 'CREATE' }))).toEqual(['p/c', 'p/a', 'p/b']); // NONE sorts ascending
    expect(keysOf(await range({ ...prefix, sort_target: 'VERSION', sort_order: 'DESCEND', limit: 1 }))).toEqual(['p/b']);
    const keysOnly = await range({ ...prefix, keys_only: true });
    expect(keysOnly.kvs.every((kv) => kv.value.byteLength === 0)).toBe(true);
    const countOnly = await range({ ...prefix, count_only: true });
    expect([countOnly.kvs.length, countOnly.count]).toEqual([0, '3']);
    expect(keysOf(await range({ ...prefix, serializable: true }))).toEqual(['p/a', 'p/b', 'p/c']);
  });

  it('Range: revision, min/max mod and create revision filters', async () => {
    const first = await put('r/x', 'v1');
    const r1 = Number(first.header!.revision);
    await put('r/x', 'v2');
    await put('r/y', 'y');
    const old = await range({ key: b('r/x'), revision: r1 });
    expect(old.kvs[0]!.value.toString()).toBe('v1');
    const all = { key: b('r/'), range_end: b('r0') };
    expect(keysOf(await range({ ...all, min_mod_revision: r1 + 2 }))).toEqual(['r/y']);
    expect(keysOf(await range({ ...all, max_mod_revision: r1 + 1 }))).toEqual(['r/x']);
    expect(keysOf(await range({ ...all, min_create_revision: r1 + 1 }))).toEqual(['r/y']);
    expect(keysOf(await range({ ...all, max_create_revision: r1 }))).toEqual(['r/x']);
    expect(await failsWith(rpc(h.kv, 'Range', { key: b('r/x'), revision: 1_000_000 }))).toEqual([
      status.OUT_OF_RANGE,
      'etcdserver: mvcc: required revision is a future revision',
    ]);
    // Beyond 2^53: saturates, still a future revision rather than a wrapped number.
    expect((await failsWith(rpc(h.kv, 'Range', { key: b('r/x'), revision: '9223372036854775807' })))[0]).toBe(status.OUT_OF_RANGE);
  });

  it('every version carries its own create_hlc and mod_hlc: a Range in the past, prev_kv, a txn read', async () => {
    const created = await put('h/x', 'v1');
    const updated = await put('h/x', 'v2', { prev_kv: true });
    await put('h/other', 'later'); // the key's versions are no longer the newest revision
    const [c, u] = [created.header!.hlc, updated.header!.hlc];
    expect(BigInt(c)).toBeGreaterThan(0n);
    expect(BigInt(u)).toBeGreaterThan(BigInt(c));
    const past = await range({ key: b('h/x'), revision: created.header!.revision });
    expect(past.kvs[0]).toMatchObject({ version: '1', create_hlc: c, mod_hlc: c });
    expect(past.kvs[0]!.value.toString()).toBe('v1');
    expect((await range({ key: b('h/x') })).kvs[0]).toMatchObject({ version: '2', create_hlc: c, mod_hlc: u });
    expect(updated.prev_kv).toMatchObject({ version: '1', create_hlc: c, mod_hlc: c });
    // Reads inside a txn convert the same way; the txn's header carries the txn's own HLC.
    const t = await txn({ success: [{ request_range: { key: b('h/x'), revision: created.header!.revision } }] });
    const read = t.responses[0];
    if (read?.response !== 'response_range') throw new Error('shape');
    expect(read.response_range.kvs[0]).toMatchObject({ create_hlc: c, mod_hlc: c });
    expect(BigInt(t.header!.hlc)).toBeGreaterThan(BigInt(u));
    // Deleted and created again: a new generation, a new create_hlc.
    const del = await rpc(h.kv, 'DeleteRange', { key: b('h/x'), prev_kv: true });
    expect(del.prev_kvs[0]).toMatchObject({ create_hlc: c, mod_hlc: u });
    const again = await put('h/x', 'v3');
    expect((await range({ key: b('h/x') })).kvs[0]).toMatchObject({ version: '1', create_hlc: again.header!.hlc, mod_hlc: again.header!.hlc });
  });

  it('Put: prev_kv, ignore_value, ignore_lease and their errors', async () => {
    await put('u', 'first');
    const p = await put('u', 'second', { prev_kv: true });
    expect(p.prev_kv!.value.toString()).toBe('first');
    expect((await put('u', 'x')).prev_kv).toBeNull();
    await rpc(h.kv, 'Put', { key: b('u'), ignore_value: true });
    expect((await range({ key: b('u') })).kvs[0]!.value.toString()).toBe('x');
    await rpc(h.kv, 'Put', { key: b('u'), value: b('y'), ignore_lease: true });
    const e = (req: Record<string, unknown>) => failsWith(rpc(h.kv, 'Put', { key: b('u'), ...req }));
    expect(await e({ value: b('v'), ignore_value: true })).toEqual([status.INVALID_ARGUMENT, 'etcdserver: value is provided']);
    expect(await e({ lease: 7, ignore_lease: true })).toEqual([status.INVALID_ARGUMENT, 'etcdserver: lease is provided']);
    expect(await e({ lease: 7 })).toEqual([status.NOT_FOUND, 'etcdserver: requested lease not found']);
    expect(await failsWith(rpc(h.kv, 'Put', { key: b('missing'), ignore_value: true }))).toEqual([
      status.INVALID_ARGUMENT,
      'etcdserver: key not found',
    ]);
  });

  it('DeleteRange: single key, range, prev_kv, nothing to delete', async () => {
    for (const k of ['d/1', 'd/2', 'd/3']) await put(k, k);
    const one = await rpc(h.kv, 'DeleteRange', { key: b('d/1') });
    expect([one.deleted, one.prev_kvs]).toEqual(['1', []]);
    const rest = await rpc(h.kv, 'DeleteRange', { key: b('d/'), range_end: b('d0'), prev_kv: true });
    expect(rest.deleted).toBe('2');
    expect(rest.prev_kvs.map((kv) => kv.value.toString())).toEqual(['d/2', 'd/3']);
    const before = Number((await range({ key: b('d/1') })).header!.revision);
    const none = await rpc(h.kv, 'DeleteRange', { key: b('d/'), range_end: b('d0') });
    expect([none.deleted, Number(none.header!.revision)]).toEqual(['0', before]); // nothing changed: same revision
  });

  it('Txn: every compare target and result, both branches, nested txns, and the responses', async () => {
    const p = await put('t/k', 'v');
    const rev = p.header!.revision;
    const cmp = (target: CompareTarget, result: CompareResult, operand: Record<string, unknown>) => ({ key: b('t/k'), target, result, ...operand });
    const ok = await txn({
      compare: [
        cmp('VALUE', 'EQUAL', { value: b('v') }),
        cmp('VERSION', 'GREATER', { version: 0 }),
        cmp('CREATE', 'EQUAL', { create_revision: rev }),
        cmp('MOD', 'LESS', { mod_revision: Number(rev) + 1 }),
      ],
      success: [
        { request_put: { key: b('t/k2'), value: b('w'), prev_kv: true } },
        { request_range: { key: b('t/'), range_end: b('t0') } },
        { request_txn: { compare: [cmp('LEASE', 'NOT_EQUAL', { lease: 0 })], success: [], failure: [{ request_delete_range: { key: b('t/k') } }] } },
      ],
      failure: [],
    });
    expect(ok.succeeded).toBe(true);
    expect(ok.responses.map((r) => r.response)).toEqual(['response_put', 'response_range', 'response_txn']);
    const [putR, rangeR, nested] = ok.responses;
    if (putR?.response !== 'response_put' || rangeR?.response !== 'response_range' || nested?.response !== 'response_txn') throw new Error('shape');
    expect(putR.response_put.prev_kv).toBeNull();
    expect(keysOf(rangeR.response_range)).toEqual(['t/k', 't/k2']); // reads see the txn's own earlier writes
    expect(nested.response_txn.succeeded).toBe(false);
    expect(nested.response_txn.responses[0]).toMatchObject({ response: 'response_delete_range', response_delete_range: { deleted: '1' } });
    expect(ok.header!.revision).toBe(String(Number(rev) + 1)); // one revision for the whole txn

    const no = await txn({ compare: [cmp('VALUE', 'EQUAL', { value: b('gone') })], success: [], failure: [{ request_range: { key: b('t/k2') } }] });
    expect(no.succeeded).toBe(false);
    expect(no.responses[0]).toMatchObject({ response: 'response_range' });
  });

  it('Txn: a read-only txn is served after a ReadIndex without a log entry, and sees every acknowledged write', async () => {
    await put('ro/a', '1');
    await put('ro/b', '2');
    const before = h.member.stateMachine.appliedIndex;
    const r = await txn({
      compare: [{ key: b('ro/a'), target: 'VALUE', result: 'EQUAL', value: b('1') }],
      success: [{ request_range: { key: b('ro/'), range_end: b('ro0') } }, { request_txn: { compare: [], success: [{ request_range: { key: b('ro/b') } }], failure: [] } }],
      failure: [{ request_range: { key: b('ro/b') } }],
    });
    expect(r.succeeded).toBe(true);
    const [range, nested] = r.responses;
    if (range?.response !== 'response_range' || nested?.response !== 'response_txn') throw new Error('shape');
    expect(keysOf(range.response_range)).toEqual(['ro/a', 'ro/b']);
    expect(r.header!.revision).toBe(String(h.member.stateMachine.revision));
    expect(h.member.stateMachine.appliedIndex).toBe(before); // nothing went through the log
    // A write in either branch, even one that would not be taken, sends the txn through Raft.
    const w = await txn({ compare: [{ key: b('ro/a'), target: 'VALUE', result: 'EQUAL', value: b('1') }], success: [], failure: [{ request_put: { key: b('ro/c'), value: b('3') } }] });
    expect(w.succeeded).toBe(true);
    expect(h.member.stateMachine.appliedIndex).toBe(before + 1);
  });

  it('Txn: etcd errors for too many ops, duplicate keys, empty keys and empty ops', async () => {
    const putOp = (k: string) => ({ request_put: { key: b(k), value: b('v') } });
    expect(await failsWith(rpc(h.kv, 'Txn', { success: ['1', '2', '3', '4', '5', '6', '7'].map(putOp) }))).toEqual([
      status.INVALID_ARGUMENT,
      'etcdserver: too many operations in txn request',
    ]);
    expect(await failsWith(rpc(h.kv, 'Txn', { success: [putOp('x'), putOp('x')] }))).toEqual([
      status.INVALID_ARGUMENT,
      'etcdserver: duplicate key given in txn request',
    ]);
    expect(await failsWith(rpc(h.kv, 'Txn', { compare: [{ key: b(''), target: 'VERSION', result: 'EQUAL', version: 0 }] }))).toEqual([
      status.INVALID_ARGUMENT,
      'etcdserver: key is not provided',
    ]);
    expect(await failsWith(rpc(h.kv, 'Txn', { success: [{}] }))).toEqual([status.INVALID_ARGUMENT, 'etcdserver: key not found']);
    expect(await failsWith(rpc(h.kv, 'Txn', { success: [{ request_range: { key: b('k'), sort_order: 9 } }] }))).toEqual([
      status.INVALID_ARGUMENT,
      'etcdserver: invalid sort option',
    ]);
  });

  it('refuses bad requests before proposing: empty key, invalid sort option, request too large', async () => {
    const before = h.member.status().commit;
    const empty: [number, string] = [status.INVALID_ARGUMENT, 'etcdserver: key is not provided'];
    expect(await failsWith(rpc(h.kv, 'Range', { key: b('') }))).toEqual(empty);
    expect(await failsWith(rpc(h.kv, 'Put', { key: b(''), value: b('v') }))).toEqual(empty);
    expect(await failsWith(rpc(h.kv, 'DeleteRange', { key: b('') }))).toEqual(empty);
    expect(await failsWith(rpc(h.kv, 'Range', { key: b('k'), sort_order: 7 }))).toEqual([status.INVALID_ARGUMENT, 'etcdserver: invalid sort option']);
    expect(await failsWith(rpc(h.kv, 'Range', { key: b('k'), sort_target: 42 }))).toEqual([status.INVALID_ARGUMENT, 'etcdserver: invalid sort option']);
    const big = Buffer.alloc(64 * 1024, 1);
    const tooLarge: [number, string] = [status.INVALID_ARGUMENT, 'etcdserver: request is too large'];
    expect(await failsWith(rpc(h.kv, 'Put', { key: b('big'), value: big }))).toEqual(tooLarge);
    expect(await failsWith(rpc(h.kv, 'Txn', { success: [{ request_put: { key: b('big'), value: big } }] }))).toEqual(tooLarge);
    expect(h.member.status().commit).toBe(before); // nothing reached the log
  });

  it('Compact: reads below fail as compacted; compacting again or into the future fails with etcd messages', async () => {
    const p1 = await put('c/k', '1');
    const p2 = await put('c/k', '2');
    const rev = Number(p2.header!.revision);
    const res = await rpc(h.kv, 'Compact', { revision: rev, physical: true });
    expect(Number(res.header!.revision)).toBe(rev);
    expect(await failsWith(rpc(h.kv, 'Range', { key: b('c/k'), revision: p1.header!.revision }))).toEqual([
      status.OUT_OF_RANGE,
      'etcdserver: mvcc: required revision has been compacted',
    ]);
    expect((await range({ key: b('c/k'), revision: rev })).kvs[0]!.value.toString()).toBe('2'); // at the compact revision: fine
    expect(await failsWith(rpc(h.kv, 'Compact', { revision: rev }))).toEqual([status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted']);
    expect(await failsWith(rpc(h.kv, 'Compact', { revision: rev + 100 }))).toEqual([
      status.OUT_OF_RANGE,
      'etcdserver: mvcc: required revision is a future revision',
    ]);
  });

  it('exactly-once: the same Put twice with one fulcrum-request-id is applied once, both answers alike', async () => {
    const md = () => metadata({ 'fulcrum-request-id': 'client-7:1' });
    const first = await rpc(h.kv, 'Put', { key: b('once'), value: b('v') }, md());
    const second = await rpc(h.kv, 'Put', { key: b('once'), value: b('v') }, md());
    expect(second.header!.revision).toBe(first.header!.revision);
    const r = await range({ key: b('once') });
    expect([r.kvs[0]!.version, r.kvs[0]!.mod_revision, r.header!.revision]).toEqual(['1', first.header!.revision, first.header!.revision]);
    // The next sequence number is a new request.
    const third = await rpc(h.kv, 'Put', { key: b('once'), value: b('w') }, metadata({ 'fulcrum-request-id': 'client-7:2' }));
    expect(Number(third.header!.revision)).toBe(Number(first.header!.revision) + 1);
  });

  it('exactly-once: a malformed fulcrum-request-id is INVALID_ARGUMENT', async () => {
    for (const bad of ['nocolon', 'c:', ':5', 'c:-1', 'c:x']) {
      const [code, details] = await failsWith(rpc(h.kv, 'Put', { key: b('k'), value: b('v') }, metadata({ 'fulcrum-request-id': bad })));
      expect([code, details.startsWith('fulcrum: malformed fulcrum-request-id')]).toEqual([status.INVALID_ARGUMENT, true]);
    }
  });

  it('hasleader: true is accepted while the member has a leader', async () => {
    const r = await rpc(h.kv, 'Range', { key: b('a/1') }, metadata({ hasleader: 'true' }));
    expect(r.count).toBe('1');
  });
});

describe('KV service without a quorum', () => {
  // Two voters, the second never started: the leader cannot commit, then steps down (check quorum) between
  // one and two election timeouts after the add. The election timeout (6 s) leaves the tests before the step-down
  // room for their request timeouts (1 s each) on a loaded machine.
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ limits: { requestTimeoutMs: 1_000 }, member: { heartbeatMs: 100, electionTicks: 60 } });
    await h.member.changeMembership(ConfChangeType.AddVoter, 2, { peerUrls: ['http://127.0.0.1:12390'] });
  });
  afterAll(async () => h.close());

  it('a write that cannot commit fails with etcd\'s "request timed out" after the request timeout', async () => {
    const started = Date.now();
    expect(await failsWith(rpc(h.kv, 'Put', { key: b('k'), value: b('v') }))).toEqual([status.UNAVAILABLE, 'etcdserver: request timed out']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('a linearizable read times out too; a serializable one answers locally', async () => {
    expect(await failsWith(rpc(h.kv, 'Range', { key: b('k') }))).toEqual([status.UNAVAILABLE, 'etcdserver: request timed out']);
    expect((await rpc(h.kv, 'Range', { key: b('k'), serializable: true })).count).toBe('0');
  });

  it("the client's deadline ends the wait before the request timeout", async () => {
    // Two timers end this call at the same instant: the client's own deadline (DEADLINE_EXCEEDED) and the
    // member's wait, bounded by the deadline the client sent (etcd's answer then: UNAVAILABLE "request timed out").
    // Whichever runs first answers; CI saw both. What matters is that the wait ends long before the request timeout.
    expect(h.member.leaderId()).not.toBe(0);
    const started = Date.now();
    const [code, details] = await failsWith(rpc(h.kv, 'Put', { key: b('k'), value: b('v') }, undefined, { deadline: Date.now() + 100 }));
    expect(Date.now() - started).toBeLessThan(1_000);
    if (code === status.UNAVAILABLE) expect(details).toBe('etcdserver: request timed out');
    else expect(code).toBe(status.DEADLINE_EXCEEDED);
  });

  it('hasleader without a leader fails fast with "etcdserver: no leader"', async () => {
    const deadline = Date.now() + 20_000;
    while (h.member.leaderId() !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(h.member.leaderId()).toBe(0);
    const md = metadata({ hasleader: 'true' });
    expect(await failsWith(rpc(h.kv, 'Range', { key: b('k'), serializable: true }, md))).toEqual([status.UNAVAILABLE, 'etcdserver: no leader']);
    expect(await failsWith(rpc(h.kv, 'Put', { key: b('k'), value: b('v') }, md))).toEqual([status.UNAVAILABLE, 'etcdserver: no leader']);
    // Without the header a proposal is dropped by the core for want of a leader: the same answer.
    expect(await failsWith(rpc(h.kv, 'Put', { key: b('k'), value: b('v') }))).toEqual([status.UNAVAILABLE, 'etcdserver: no leader']);
  });
});
