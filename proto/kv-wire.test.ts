// proto/kv-wire.ts against protobufjs, the reference it stands in front of: on any message it takes, it must give
// exactly what protobufjs gives, and hand back the ones it does not take.
import { loadSync } from '@grpc/proto-loader';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { LOADER_OPTIONS, loadEtcdApi, loadProtoRoot, PROTO_FILES, PROTO_ROOT } from './index.js';
import { fromMvccRange } from '../node/api/convert.js';
import { decodePutRequest, encodePutResponse, encodeRangeResponse, encodeTxnResponse } from './kv-wire.js';
import type { Encodable, PutResponse, TxnResponse } from './types.js';
import { bytes, int64, unknownField, varint } from './wire.testutil.js';

/** What the KV service used before kv-wire.ts: proto-loader's own (protobufjs) functions, from a fresh load. */
const referenceKv = loadSync([...PROTO_FILES], { ...LOADER_OPTIONS, includeDirs: [PROTO_ROOT] })['etcdserverpb.KV'] as Record<string, {
  requestDeserialize(b: Buffer): unknown;
  responseSerialize(v: unknown): Buffer;
}>;
const reference = referenceKv.Put!;
const PutRequestType = loadProtoRoot().lookupType('etcdserverpb.PutRequest');

function protobufjsDecode(b: Buffer): unknown {
  return reference.requestDeserialize(b);
}

function protobufjsEncode(v: unknown): Buffer {
  return reference.responseSerialize(v);
}

/** One field of a PutRequest (bools in varints of up to 5 bytes), or an unknown field (every wire type but groups). */
const field = fc.oneof(
  bytes.map((b) => [0x0a, ...varint(BigInt(b.length)), ...b]),
  bytes.map((b) => [0x12, ...varint(BigInt(b.length)), ...b]),
  int64.map((v) => [0x18, ...varint(v)]),
  fc.tuple(fc.constantFrom(0x20, 0x28, 0x30), fc.oneof(fc.bigInt({ min: 0n, max: 3n }), fc.constant(2n ** 32n), fc.bigInt({ min: 0n, max: 2n ** 35n - 1n }))).map(([t, v]) => [t, ...varint(v)]),
  unknownField(7),
);

describe('PutRequest by hand', () => {
  it('decodes any well-formed request exactly as protobufjs does', () => {
    fc.assert(
      fc.property(fc.array(field, { maxLength: 8 }), (fields) => {
        const b = Buffer.from(fields.flat());
        const ours = decodePutRequest(b);
        expect(ours).toBeDefined();
        expect(ours).toEqual(protobufjsDecode(b));
      }),
      { numRuns: 2000 },
    );
  });

  it('takes a message protobufjs writes', () => {
    const b = Buffer.from(PutRequestType.encode(PutRequestType.fromObject({ key: Buffer.from('k'), value: Buffer.from('v'), lease: '-7', prev_kv: true, ignore_lease: true })).finish());
    expect(decodePutRequest(b)).toEqual({ key: Buffer.from('k'), value: Buffer.from('v'), lease: '-7', prev_kv: true, ignore_value: false, ignore_lease: true });
  });

  it('hands anything else to protobufjs: a known field with another wire type, a group, a truncated message', () => {
    expect(decodePutRequest(Buffer.from([0x08, 0x01]))).toBeUndefined(); // key (1) as a varint
    expect(decodePutRequest(Buffer.from([0x1a, 0x00]))).toBeUndefined(); // lease (3) as bytes
    expect(decodePutRequest(Buffer.from([0x3b, 0x3c]))).toBeUndefined(); // a group (7), which protobufjs skips
    expect(decodePutRequest(Buffer.from([0x0a, 0x05, 0x61]))).toBeUndefined(); // key runs past the end
    expect(decodePutRequest(Buffer.from([0x00]))).toBeUndefined(); // field number 0
    // A bool in a varint of more than 5 bytes: protobufjs 7 steps over 5 bytes after the fifth, not over the varint.
    expect(decodePutRequest(Buffer.from([0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))).toBeUndefined();
    expect(decodePutRequest(Buffer.from([0x20, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x0a, 0x00]))).toBeUndefined();
  });

  it('on random bytes, whatever it takes, it decodes as protobufjs does', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 30 }), (raw) => {
        const b = Buffer.from(raw);
        const ours = decodePutRequest(b);
        if (ours !== undefined) expect(ours).toEqual(protobufjsDecode(b));
      }),
      { numRuns: 5000 },
    );
  });

  it('is what the KV service decodes Put requests with, protobufjs still behind it', () => {
    const def = (loadEtcdApi().etcdserverpb.KV.service as unknown as Record<string, { requestDeserialize(b: Buffer): unknown }>).Put!;
    expect(def.requestDeserialize(Buffer.from([0x0a, 0x01, 0x61, 0x18, 0x05]))).toEqual(protobufjsDecode(Buffer.from([0x0a, 0x01, 0x61, 0x18, 0x05])));
    const group = Buffer.from([0x0a, 0x01, 0x61, 0x3b, 0x3c]);
    expect(def.requestDeserialize(group)).toEqual(protobufjsDecode(group));
  });
});

const Long = protobuf.util.Long as unknown as { fromBits(low: number, high: number, unsigned: boolean): unknown };
const u64 = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 0, max: 2 ** 31 }),
  fc.maxSafeNat(),
  fc.tuple(fc.integer(), fc.integer(), fc.boolean()).map(([lo, hi, u]) => Long.fromBits(lo, hi, u)),
  fc.bigInt({ min: 0n, max: 10n ** 19n - 1n }).map(String),
);
const header = fc.record(
  { cluster_id: u64, member_id: u64, revision: u64, raft_term: u64, hlc: u64 },
  { requiredKeys: [] },
);

describe('PutResponse by hand', () => {
  it('writes the bytes protobufjs writes', () => {
    fc.assert(
      fc.property(fc.option(header, { nil: null }), fc.constantFrom(null, undefined), (h, prev) => {
        const res = { header: h, ...(prev === undefined ? {} : { prev_kv: prev }) } as unknown as Encodable<PutResponse>;
        const ours = encodePutResponse(res);
        expect(ours).toBeDefined();
        expect(ours!.toString('hex')).toBe(protobufjsEncode(res).toString('hex'));
      }),
      { numRuns: 2000 },
    );
  });

  it('hands a prev_kv, or a value it does not know how protobufjs converts, to protobufjs', () => {
    const kv = { key: Buffer.from('k'), value: Buffer.from('v'), create_revision: 1, mod_revision: 1, version: 1, lease: 0 };
    expect(encodePutResponse({ header: { revision: 1 }, prev_kv: kv } as unknown as Encodable<PutResponse>)).toBeUndefined();
    expect(encodePutResponse({ header: { revision: 1n } } as unknown as Encodable<PutResponse>)).toBeUndefined();
    expect(encodePutResponse({ header: { revision: 1.5 } } as unknown as Encodable<PutResponse>)).toBeUndefined();
    expect(encodePutResponse({ header: { cluster_id: -1 } } as unknown as Encodable<PutResponse>)).toBeUndefined();
    expect(encodePutResponse({ header: { revision: '18446744073709551615' } } as unknown as Encodable<PutResponse>)).toBeUndefined();
  });

  it('is what the KV service encodes Put responses with, protobufjs still behind it', () => {
    const def = (loadEtcdApi().etcdserverpb.KV.service as unknown as Record<string, { responseSerialize(v: unknown): Buffer }>).Put!;
    const plain = { header: { cluster_id: 7, member_id: Long.fromBits(1, -1, true), revision: 9, raft_term: 2, hlc: 0 }, prev_kv: null };
    expect(def.responseSerialize(plain).toString('hex')).toBe(protobufjsEncode(plain).toString('hex'));
    const withPrev = { header: { revision: 3 }, prev_kv: { key: Buffer.from('k'), value: Buffer.from('old'), create_revision: 1, mod_revision: 2, version: 2, lease: 0 } };
    expect(def.responseSerialize(withPrev).toString('hex')).toBe(protobufjsEncode(withPrev).toString('hex'));
  });
});

describe('RangeResponse by hand', () => {
  const revision = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.maxSafeNat());
  const u64 = fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 300n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
  const kv = fc.record(
    {
      key: fc.uint8Array({ maxLength: 20 }),
      createRevision: revision,
      modRevision: revision,
      version: revision,
      value: fc.uint8Array({ maxLength: 300 }),
      lease: fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 2n ** 63n - 1n })),
      createHlc: u64,
      modHlc: u64,
    },
    { requiredKeys: ['key', 'createRevision', 'modRevision', 'version', 'value', 'lease'] },
  );
  const answer = fc.record({ kvs: fc.array(kv, { maxLength: 5 }), more: fc.boolean(), count: revision });

  it('writes the bytes protobufjs writes for fromMvccRange of the same answer', () => {
    fc.assert(
      fc.property(header, answer, (h, r) => {
        const ours = encodeRangeResponse(h as never, r);
        expect(ours).toBeDefined();
        const theirs = referenceKv.Range!.responseSerialize(fromMvccRange({ ...r, header: { revision: 0 } }, h as never));
        expect(ours!.toString('hex')).toBe(theirs.toString('hex'));
      }),
      { numRuns: 1000 },
    );
  });

  it('leaves a number it does not write to protobufjs', () => {
    const one = { key: Buffer.from('k'), createRevision: 1, modRevision: 1, version: 1, value: Buffer.from('v'), lease: 0n };
    expect(encodeRangeResponse({ revision: 1 } as never, { kvs: [one], more: false, count: -1 })).toBeUndefined();
    expect(encodeRangeResponse({ revision: 1 } as never, { kvs: [{ ...one, version: 1.5 }], more: false, count: 1 })).toBeUndefined();
    expect(encodeRangeResponse({ revision: 1n } as never, { kvs: [one], more: false, count: 1 })).toBeUndefined();
  });

  it('is passed through by the KV service as it is', () => {
    const def = (loadEtcdApi().etcdserverpb.KV.service as unknown as Record<string, { responseSerialize(v: unknown): Buffer }>).Range!;
    const b = encodeRangeResponse({ revision: 3 } as never, { kvs: [], more: false, count: 0 })!;
    expect(def.responseSerialize(b)).toBe(b);
  });
});

describe('TxnResponse by hand', () => {
  const referenceTxn = referenceKv.Txn!;
  /** An op answering a put: with or without a header, the oneof's name or not, a null or absent prev_kv and other members. */
  const putOp = fc.record({
    put: fc.record({ header: fc.option(header, { nil: null }), prev_kv: fc.constantFrom(null, undefined) }, { requiredKeys: ['header'] }),
    named: fc.boolean(),
    others: fc.constantFrom(null, undefined),
  }).map(({ put, named, others }) => ({
    ...(named ? { response: 'response_put' } : {}),
    response_put: put,
    ...(others === undefined ? {} : { response_range: others, response_delete_range: others, response_txn: others }),
  }));

  it('writes the bytes protobufjs writes for a txn whose every op answered a put', () => {
    fc.assert(
      fc.property(header, fc.boolean(), fc.array(putOp, { maxLength: 12 }), (h, succeeded, responses) => {
        const res = { header: h, succeeded, responses } as unknown as Encodable<TxnResponse>;
        const ours = encodeTxnResponse(res);
        expect(ours).toBeDefined();
        expect(ours!.toString('hex')).toBe(referenceTxn.responseSerialize(res).toString('hex'));
      }),
      { numRuns: 2000 },
    );
  });

  it('hands anything else to protobufjs: another op, a prev_kv, a value it does not know how protobufjs converts', () => {
    const put = { response_put: { header: { revision: 4 } } };
    const ok = { header: { revision: 4 }, succeeded: true, responses: [put] };
    expect(encodeTxnResponse(ok as unknown as Encodable<TxnResponse>)).toBeDefined();
    const kv = { key: Buffer.from('k'), value: Buffer.from('v'), create_revision: 1, mod_revision: 1, version: 1, lease: 0 };
    const refused = [
      { ...ok, responses: [put, { response_range: { header: { revision: 4 }, kvs: [], more: false, count: 0 } }] },
      { ...ok, responses: [{ response_delete_range: { header: { revision: 4 }, deleted: 1, prev_kvs: [] } }] },
      { ...ok, responses: [{ response_txn: { header: { revision: 4 }, succeeded: true, responses: [] } }] },
      { ...ok, responses: [{ response_put: { header: { revision: 4 }, prev_kv: kv } }] },
      { ...ok, responses: [{ response_put: { header: { revision: 1.5 } } }] },
      { ...ok, header: { revision: 1n } },
      { ...ok, header: null },
      { ...ok, succeeded: 1 },
      { ...ok, responses: [{}] },
    ];
    for (const res of refused) expect(encodeTxnResponse(res as unknown as Encodable<TxnResponse>), JSON.stringify(res, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))).toBeUndefined();
  });

  it('is what the KV service encodes Txn responses with, protobufjs still behind it', () => {
    const def = (loadEtcdApi().etcdserverpb.KV.service as unknown as Record<string, { responseSerialize(v: unknown): Buffer }>).Txn!;
    const puts = { header: { cluster_id: 7, member_id: Long.fromBits(1, -1, true), revision: 9, raft_term: 2, hlc: 0 }, succeeded: true, responses: [{ response_put: { header: { revision: 9 }, prev_kv: null } }] };
    expect(def.responseSerialize(puts).toString('hex')).toBe(referenceTxn.responseSerialize(puts).toString('hex'));
    const range = { header: { revision: 9 }, succeeded: false, responses: [{ response_range: { header: { revision: 9 }, kvs: [], more: false, count: 0 } }] };
    expect(def.responseSerialize(range).toString('hex')).toBe(referenceTxn.responseSerialize(range).toString('hex'));
  });
});
