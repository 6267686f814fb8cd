import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadProtoRoot } from '../../proto/index.js';
import type { KeyValue, MvccEvent } from '../../storage/mvcc/index.js';
import { fromMvccKv } from './convert.js';
import { wire64 } from './header.js';
import { encodeEvent, encodeEventsResponse, encodeHeaderField } from './watch-wire.js';

// The hand-framed response must be exactly what protobufjs writes for the same object, byte for byte: etcd
// clients decode it, and a difference would show only as a corrupt event on someone's watch.
const root = loadProtoRoot();
const WatchResponse = root.lookupType('etcdserverpb.WatchResponse');

const bytes = fc.uint8Array({ maxLength: 300 });
const u63 = fc.bigInt({ min: 0n, max: 2n ** 63n - 1n });
const kv: fc.Arbitrary<KeyValue> = fc.record({
  key: fc.uint8Array({ minLength: 1, maxLength: 40 }),
  value: bytes,
  createRevision: fc.integer({ min: 1, max: 2 ** 40 }),
  modRevision: fc.integer({ min: 1, max: 2 ** 40 }),
  version: fc.integer({ min: 1, max: 1000 }),
  lease: fc.bigInt({ min: 0n, max: 2n ** 62n }),
  createHlc: u63,
  modHlc: u63,
});
const event: fc.Arbitrary<MvccEvent> = fc.record({ type: fc.constantFrom('PUT' as const, 'DELETE' as const), kv, prevKv: fc.option(kv, { nil: undefined }) }).map((e) =>
  e.prevKv === undefined ? { type: e.type, kv: e.kv } : e,
);
const header = fc.record({
  cluster_id: u63,
  member_id: u63,
  revision: fc.integer({ min: 0, max: 2 ** 50 }),
  raft_term: fc.integer({ min: 0, max: 1000 }),
  hlc: u63,
});

/**
 * How a 64-bit header value reaches the encoder: the server's form (wire64: a number when exact, else a Long), a
 * decimal string, or a value only protobufjs converts (a bigint; a negative number) and the encoder hands it on.
 */
const form = fc.constantFrom(
  (v: bigint): unknown => wire64(v),
  (v: bigint): unknown => String(v),
  (v: bigint): unknown => v,
  (v: bigint): unknown => (v === 0n ? -1 : wire64(v)),
);

function reference(h: Record<string, unknown>, watchId: bigint, events: readonly MvccEvent[], fragment: boolean): Uint8Array {
  const toEvent = (ev: MvccEvent): Record<string, unknown> => ({ type: ev.type, kv: fromMvccKv(ev.kv), ...(ev.prevKv === undefined ? {} : { prev_kv: fromMvccKv(ev.prevKv) }) });
  const obj = { header: h, watch_id: String(watchId), fragment, events: events.map(toEvent) };
  return WatchResponse.encode(WatchResponse.fromObject(obj)).finish();
}

describe('watch-wire', () => {
  it('frames a response exactly as protobufjs encodes it (any header, watch id, events, fragment flag)', () => {
    fc.assert(
      fc.property(header, fc.bigInt({ min: -1n, max: 2n ** 40n }), fc.array(event, { maxLength: 5 }), fc.boolean(), form, (h, id, events, fragment, as) => {
        const wire = { ...h, cluster_id: as(h.cluster_id), member_id: as(h.member_id), hlc: as(h.hlc) } as never;
        expect(Buffer.from(encodeEventsResponse(encodeHeaderField(wire), id, events, fragment)).toString('hex')).toBe(Buffer.from(reference(wire, id, events, fragment)).toString('hex'));
      }),
      { numRuns: 1000 },
    );
  });

  it('encodes an event object once, however many responses carry it', () => {
    const ev: MvccEvent = { type: 'PUT', kv: { key: Buffer.from('k'), value: Buffer.from('v'), createRevision: 2, modRevision: 2, version: 1, lease: 0n, createHlc: 5n, modHlc: 5n } };
    expect(encodeEvent(ev)).toBe(encodeEvent(ev));
    expect(encodeEvent({ ...ev })).not.toBe(encodeEvent(ev)); // another object: encoded on its own
  });
});
