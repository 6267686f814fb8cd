// Lease.LeaseKeepAlive's request and response by hand (proto/wire.ts), in front of protobufjs, as proto/kv-wire.ts
// does for KV.Put: a member kept busy by keep-alives decoded each request through protobufjs's decode-then-toObject
// and encoded each answer through fromObject-then-encode, about 7 % of the leader's CPU per keep-alive (bench leases
// workload, V8 profile). They give exactly what protobufjs gives (lease-wire.test.ts compares them on random
// messages); a request that is not in canonical form, or a response value of a type this file does not write, goes
// to protobufjs itself.
import { bitsOf, field64, headerFieldSize, headerOf, int64String, size64, write64, writeHeader, type Field64 } from './kv-wire.js';
import type { Encodable, LeaseKeepAliveRequest, LeaseKeepAliveResponse } from './types.js';
import { ProtoReader, ProtoWireError, ProtoWriter, WIRE_VARINT } from './wire.js';

// ---- LeaseKeepAliveRequest: ID = 1 (int64)

/** The request as LOADER_OPTIONS decode it (the id a decimal string, "0" when absent), or undefined: ask protobufjs. */
export function decodeKeepAliveRequest(buf: Buffer): LeaseKeepAliveRequest | undefined {
  const r = new ProtoReader(buf);
  let id = '0';
  try {
    while (!r.done()) {
      const tag = r.tag();
      const wireType = tag & 7;
      if (tag >>> 3 !== 1) r.skip(wireType);
      else if (wireType !== WIRE_VARINT) return undefined;
      else id = int64String(r);
    }
  } catch (e) {
    if (e instanceof ProtoWireError) return undefined;
    throw e;
  }
  return { ID: id } as LeaseKeepAliveRequest;
}

// ---- LeaseKeepAliveResponse: header = 1 (ResponseHeader), ID = 2 (int64), TTL = 3 (int64)

const INT64_MAX = 2n ** 63n - 1n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** The response's bytes, the same protobufjs writes (a set field is written even when 0), or undefined: ask protobufjs. */
export function encodeKeepAliveResponse(res: Encodable<LeaseKeepAliveResponse>): Buffer | undefined {
  const h = res.header as unknown as Record<string, unknown> | null | undefined;
  const header = h === null || h === undefined ? undefined : headerOf(h);
  if (header === undefined && h !== null && h !== undefined) return undefined;
  const id = int64Field(res.ID);
  const ttl = int64Field(res.TTL);
  if (id === null || ttl === null) return undefined;
  const w = new ProtoWriter((header === undefined ? 0 : headerFieldSize(header)) + size64(1, id) + size64(1, ttl));
  if (header !== undefined) writeHeader(w, header);
  write64(w, 2, id);
  write64(w, 3, ttl);
  return w.finish();
}

/**
 * An int64 field's value to write: what field64 takes (a safe non-negative number, a Long, a decimal string), and
 * a non-negative bigint (the keep-alive handler's lease id). null: anything else (a negative value), for protobufjs.
 */
function int64Field(v: unknown): Field64 | null {
  if (typeof v !== 'bigint') return field64(v);
  if (v < 0n || v > INT64_MAX) return null;
  if (v <= MAX_SAFE) return Number(v);
  return bitsOf(v);
}
