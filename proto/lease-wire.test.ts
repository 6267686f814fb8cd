// proto/lease-wire.ts against protobufjs, the reference it stands in front of: on any message it takes, it must give
// exactly what protobufjs gives, and hand back the ones it does not take.
import { loadSync } from '@grpc/proto-loader';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { wire64 } from '../node/api/header.js';
import { LOADER_OPTIONS, loadEtcdApi, PROTO_FILES, PROTO_ROOT } from './index.js';
import { decodeKeepAliveRequest, encodeKeepAliveResponse } from './lease-wire.js';
import type { Encodable, LeaseKeepAliveResponse } from './types.js';
import { int64, unknownField, varint } from './wire.testutil.js';

/** What the Lease service used before lease-wire.ts: proto-loader's own (protobufjs) functions, from a fresh load. */
const reference = (
  loadSync([...PROTO_FILES], { ...LOADER_OPTIONS, includeDirs: [PROTO_ROOT] })['etcdserverpb.Lease'] as Record<string, {
    requestDeserialize(b: Buffer): unknown;
    responseSerialize(v: unknown): Buffer;
  }>
).LeaseKeepAlive!;
/** The definition the server uses, with lease-wire.ts in front. */
const inUse = (loadEtcdApi().etcdserverpb.Lease.service as unknown as Record<string, { requestDeserialize(b: Buffer): unknown; responseSerialize(v: unknown): Buffer }>)
  .LeaseKeepAlive!;

/** The ID field, or an unknown field of any wire type but groups. */
const field = fc.oneof(
  int64.map((v) => [0x08, ...varint(v)]),
  unknownField(2),
);

describe('LeaseKeepAliveRequest by hand', () => {
  it('decodes any well-formed request exactly as protobufjs does', () => {
    fc.assert(
      fc.property(fc.array(field, { maxLength: 6 }), (fields) => {
        const b = Buffer.from(fields.flat());
        const ours = decodeKeepAliveRequest(b);
        expect(ours).toBeDefined();
        expect(ours).toEqual(reference.requestDeserialize(b));
      }),
      { numRuns: 2000 },
    );
  });

  it('hands anything else to protobufjs, which decodes or refuses it as before', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 30 }), (raw) => {
        const b = Buffer.from(raw);
        const ours = decodeKeepAliveRequest(b);
        let theirs: unknown;
        try {
          theirs = reference.requestDeserialize(b);
        } catch {
          expect(ours).toBeUndefined(); // protobufjs refuses it: so must the server, through protobufjs
          return;
        }
        if (ours !== undefined) expect(ours).toEqual(theirs);
        expect(inUse.requestDeserialize(b)).toEqual(theirs);
      }),
      { numRuns: 3000 },
    );
    // The ID with the wrong wire type: protobufjs's business.
    expect(decodeKeepAliveRequest(Buffer.from([0x0a, 0x01, 0x07]))).toBeUndefined();
  });
});

/** A 64-bit value in each form a response may carry it: the server's (wire64), a string, a bigint, a Long. */
const form = fc.constantFrom(
  (v: bigint): unknown => wire64(v),
  (v: bigint): unknown => String(v),
  (v: bigint): unknown => v,
  (v: bigint): unknown => (protobuf.util.Long as unknown as { fromString(s: string, unsigned: boolean): unknown }).fromString(String(v), true),
);
const u64 = fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 1000n }), fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }));
const header = fc.oneof(
  fc.constantFrom(null, undefined),
  fc.record({ cluster_id: fc.tuple(u64, form), member_id: fc.tuple(u64, form), revision: fc.tuple(u64, form), raft_term: fc.tuple(u64, form), hlc: fc.tuple(u64, form) }).map((h) =>
    Object.fromEntries(Object.entries(h).map(([k, [v, as]]) => [k, as(v)])),
  ),
);
const int64Value = fc.oneof(
  fc.tuple(u64, form).map(([v, as]) => as(v)),
  fc.integer({ min: -5, max: 200 }),
  fc.constantFrom(-1n, undefined, null, '-3'),
);

describe('LeaseKeepAliveResponse by hand', () => {
  it('writes any response exactly as protobufjs does, or leaves it to protobufjs', () => {
    fc.assert(
      fc.property(header, int64Value, int64Value, (h, id, ttl) => {
        const res = { header: h, ID: id, TTL: ttl } as unknown as Encodable<LeaseKeepAliveResponse>;
        const theirs = reference.responseSerialize(res).toString('hex');
        const ours = encodeKeepAliveResponse(res);
        if (ours !== undefined) expect(ours.toString('hex')).toBe(theirs);
        expect(inUse.responseSerialize(res).toString('hex')).toBe(theirs);
      }),
      { numRuns: 3000 },
    );
  });

  it("takes the server's own answers by hand, not through the fallback", () => {
    const h = { cluster_id: wire64(0x1234567890abcdefn), member_id: wire64(0x2234567890abcdefn), revision: wire64(123456), raft_term: wire64(3), hlc: wire64(0n) };
    for (const [id, ttl] of [
      [7587888000000000123n, 120],
      [5n, 0],
      [0n, 0],
    ] as const) {
      const res = { header: h, ID: id, TTL: ttl } as unknown as Encodable<LeaseKeepAliveResponse>;
      const ours = encodeKeepAliveResponse(res);
      expect(ours).toBeDefined();
      expect(ours!.toString('hex')).toBe(reference.responseSerialize(res).toString('hex'));
    }
    expect(decodeKeepAliveRequest(Buffer.from([0x08, 0x07]))).toEqual({ ID: '7' });
  });
});
