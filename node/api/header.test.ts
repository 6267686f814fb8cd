import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadProtoRoot } from '../../proto/index.js';
import type { Member } from '../member.js';
import { responseHeader, wire64 } from './header.js';

// wire64 hands protobufjs numbers or Longs instead of decimal strings; what goes on the wire must not change.
describe('wire64', () => {
  const root = loadProtoRoot();
  const header = root.lookupType('etcdserverpb.ResponseHeader');
  const kv = root.lookupType('mvccpb.KeyValue');
  const roundTrip = (type: typeof header, fields: Record<string, unknown>): Record<string, string> =>
    type.toObject(type.decode(type.encode(type.fromObject(fields)).finish()), { longs: String, defaults: true }) as Record<string, string>;

  it('encodes every uint64 exactly: small, at 2^53, HLC-sized and up to 2^64-1', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
        const out = roundTrip(header, { cluster_id: wire64(v), member_id: wire64(v), raft_term: wire64(v) });
        expect([out.cluster_id, out.member_id, out.raft_term]).toEqual([v.toString(), v.toString(), v.toString()]);
      }),
      { numRuns: 500 },
    );
    for (const v of [0n, 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n]) expect(roundTrip(header, { member_id: wire64(v) }).member_id).toBe(v.toString());
  });

  it('encodes every int64 exactly, negative ones included', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (v) => {
        expect(roundTrip(kv, { lease: wire64(v), version: wire64(v) }).lease).toBe(v.toString());
      }),
      { numRuns: 500 },
    );
    expect(roundTrip(kv, { create_revision: wire64(-1), mod_revision: wire64(Number.MAX_SAFE_INTEGER) })).toMatchObject({ create_revision: '-1', mod_revision: String(Number.MAX_SAFE_INTEGER) });
  });
});

describe('responseHeader', () => {
  const member = (clusterId: number, id: number): Member =>
    ({ clusterId, id, term: () => 3, stateMachine: { revision: 9 } }) as unknown as Member;

  it('carries each member\'s own ids, however headers of different members interleave', () => {
    const a = member(2 ** 60, 2 ** 61 + 4096);
    const b = member(7, 2 ** 62);
    const decimal = (v: unknown): string => String(typeof v === 'number' ? v : BigInt.asUintN(64, BigInt((v as { toString(): string }).toString())));
    for (const [m, cluster, id] of [[a, 2 ** 60, 2 ** 61 + 4096], [b, 7, 2 ** 62], [a, 2 ** 60, 2 ** 61 + 4096]] as const) {
      const h = responseHeader(m, 5, 11n);
      expect([decimal(h.cluster_id), decimal(h.member_id), h.revision, h.raft_term, h.hlc]).toEqual([String(BigInt(cluster)), String(BigInt(id)), 5, 3, 11]);
    }
  });
});
