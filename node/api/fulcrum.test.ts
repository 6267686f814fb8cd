// Fulcrum's own service (RevisionAt, ServerInfo) and the pure conversions of convert.ts.
import { Metadata, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Compare, RangeRequest } from '../../proto/index.js';
import { hlcWallMs } from '../../storage/hlc/index.js';
import { requestIdentity, requestSizeBound, requiresLeader, toMvccCompare, toMvccRange, toNumber } from './convert.js';
import { b, failsWith, rpc, startHarness, type Harness } from './harness.testutil.js';
import { FULCRUM_VERSION } from './maintenance.js';

describe('Fulcrum service', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => h.close());

  it('RevisionAt: the revision current at a wall time, with its HLC; reads as of then', async () => {
    const p1 = await rpc(h.kv, 'Put', { key: b('t'), value: b('old') });
    await new Promise((r) => setTimeout(r, 20));
    const p2 = await rpc(h.kv, 'Put', { key: b('t'), value: b('new') });
    const at1 = hlcWallMs(BigInt(p1.header!.hlc));
    const r1 = await rpc(h.fulcrum, 'RevisionAt', { wall_time_ms: at1 });
    expect([r1.revision, r1.hlc]).toEqual([p1.header!.revision, p1.header!.hlc]);
    const asOf = await rpc(h.kv, 'Range', { key: b('t'), revision: r1.revision });
    expect(asOf.kvs[0]!.value.toString()).toBe('old');
    const now = await rpc(h.fulcrum, 'RevisionAt', { wall_time_ms: Date.now() + 60_000, serializable: true });
    expect([now.revision, now.hlc]).toEqual([p2.header!.revision, p2.header!.hlc]);
  });

  it('RevisionAt errors: negative time, before the first revision', async () => {
    const [code, details] = await failsWith(rpc(h.fulcrum, 'RevisionAt', { wall_time_ms: -1 }));
    expect([code, details]).toEqual([status.INVALID_ARGUMENT, 'fulcrum: wall_time_ms must not be negative']);
    expect(await failsWith(rpc(h.fulcrum, 'RevisionAt', { wall_time_ms: 1000 }))).toEqual([
      status.FAILED_PRECONDITION,
      'fulcrum: wall time is before the first recorded revision',
    ]);
  });

  it('ServerInfo: who the member is and what it knows', async () => {
    const s = await rpc(h.fulcrum, 'ServerInfo', {});
    expect(s).toMatchObject({ name: 'one', version: FULCRUM_VERSION, etcd_api_version: '3.5.0', leader: '1', role: 'leader', alarms: [] });
    expect(s.features).toContain('exactly-once');
    expect(s.client_urls).toEqual([`http://${h.endpoint}`]);
    expect(Number(s.raft_applied_index)).toBeGreaterThan(0);
    expect(hlcWallMs(BigInt(s.hlc))).toBeGreaterThan(Date.now() - 60_000);
  });
});

describe('convert', () => {
  const rangeReq = (over: Partial<RangeRequest>): RangeRequest => ({
    key: b('k'),
    range_end: Buffer.alloc(0),
    limit: '0',
    revision: '0',
    sort_order: 'NONE',
    sort_target: 'KEY',
    serializable: false,
    keys_only: false,
    count_only: false,
    min_mod_revision: '0',
    max_mod_revision: '0',
    min_create_revision: '0',
    max_create_revision: '0',
    ...over,
  });

  it('range_end: empty is a single key, "\\0" stays [0]', () => {
    expect(toMvccRange(rangeReq({})).rangeEnd).toBeUndefined();
    expect(toMvccRange(rangeReq({ range_end: Buffer.from([0]) })).rangeEnd).toEqual(Buffer.from([0]));
  });

  it('int64 strings saturate to safe integers', () => {
    expect(toNumber('9223372036854775807')).toBe(Number.MAX_SAFE_INTEGER);
    expect(toNumber('-9223372036854775808')).toBe(Number.MIN_SAFE_INTEGER);
    expect(toNumber('42')).toBe(42);
  });

  it('compare operands come from the union member matching the target, else zero', () => {
    const base = { key: b('k'), range_end: Buffer.alloc(0), result: 'EQUAL' as const };
    expect(toMvccCompare({ ...base, target: 'MOD', target_union: 'mod_revision', mod_revision: '7' } as Compare)).toMatchObject({ modRevision: 7 });
    expect(toMvccCompare({ ...base, target: 'VERSION', target_union: 'value', value: b('x') } as Compare)).toMatchObject({ version: 0 });
    expect(toMvccCompare({ ...base, target: 'LEASE', target_union: 'lease', lease: '9223372036854775807' } as Compare)).toMatchObject({
      lease: 9223372036854775807n,
    });
    expect(() => toMvccCompare({ ...base, target: 17 } as unknown as Compare)).toThrow('unknown compare target');
  });

  it('metadata: hasleader and fulcrum-request-id', () => {
    const md = new Metadata();
    expect([requiresLeader(md), requestIdentity(md)]).toEqual([false, {}]);
    md.set('hasleader', 'true');
    md.set('fulcrum-request-id', 'a:b:12');
    expect([requiresLeader(md), requestIdentity(md)]).toEqual([true, { clientId: 'a:b', seq: 12 }]);
  });

  it('request size bound covers the bytes it carries', () => {
    expect(requestSizeBound({ key: Buffer.alloc(10), value: Buffer.alloc(1000), lease: '0' })).toBeGreaterThanOrEqual(1010);
  });
});
