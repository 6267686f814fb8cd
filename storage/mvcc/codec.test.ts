import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bytesToKeyString,
  copyBytes,
  crc32c,
  decodeRecord,
  decodeRecordHead,
  decodeRevisionKey,
  encodeRecord,
  encodeU64,
  recordKeyView,
  recordValueView,
  revisionKey,
  verifyRecord,
  viewRecord,
} from './codec.js';

/** Format 2 laid out with Buffer's own writers, field by field as the header of codec.ts describes it. */
function referenceRecord(tombstone: boolean, kv: Parameters<typeof encodeRecord>[0]['kv']): Buffer {
  const body = Buffer.alloc(1 + 1 + 4 + kv.key.length + 8 * 6 + 4 + kv.value.length);
  let o = body.writeUInt8(2, 0);
  o = body.writeUInt8(tombstone ? 1 : 0, o);
  o = body.writeUInt32BE(kv.key.length, o);
  o += Buffer.from(kv.key).copy(body, o);
  o = body.writeBigUInt64BE(BigInt(kv.createRevision), o);
  o = body.writeBigUInt64BE(BigInt(kv.modRevision), o);
  o = body.writeBigUInt64BE(BigInt(kv.version), o);
  o = body.writeBigInt64BE(kv.lease, o);
  o = body.writeBigUInt64BE(kv.createHlc, o);
  o = body.writeBigUInt64BE(kv.modHlc, o);
  o = body.writeUInt32BE(kv.value.length, o);
  Buffer.from(kv.value).copy(body, o);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32c(body));
  return Buffer.concat([body, crc]);
}

const u64Number = fc.oneof(fc.nat(), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(0, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER));
const kvArb = fc.record({
  key: fc.uint8Array({ maxLength: 300 }),
  value: fc.uint8Array({ maxLength: 600 }),
  createRevision: u64Number,
  modRevision: u64Number,
  version: u64Number,
  lease: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }),
  createHlc: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  modHlc: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
});

describe('codec', () => {
  it('orders revision keys by revision and round-trips them', () => {
    const revs = [
      [1, 0],
      [1, 1],
      [2, 0],
      [255, 7],
      [256, 0],
      [2 ** 40, 3],
    ] as const;
    const keys = revs.map(([m, s]) => revisionKey(m, s));
    const sorted = [...keys].sort(Buffer.compare);
    expect(sorted).toEqual(keys);
    expect(keys.map(decodeRevisionKey)).toEqual(revs.map(([main, sub]) => ({ main, sub })));
  });

  it('round-trips records and refuses corrupted ones', () => {
    const kv = {
      key: Uint8Array.from([0, 255, 97]),
      value: new Uint8Array([1, 2, 3]),
      createRevision: 5,
      modRevision: 9,
      version: 3,
      lease: -7n,
      createHlc: (1_700_000_000_000n << 16n) | 3n,
      modHlc: 0xffff_ffff_ffff_ffffn, // the whole u64 range survives
    };
    const row = encodeRecord({ tombstone: false, kv });
    expect(row[0]).toBe(2);
    expect(decodeRecord(row)).toEqual({ tombstone: false, kv });
    expect(decodeRecordHead(row)).toEqual({ tombstone: false, keyString: '\u0000\u00ffa', createRevision: 5, version: 3, lease: -7n, createHlc: kv.createHlc });
    const corrupt = row.slice();
    corrupt[8] = corrupt[8]! ^ 1;
    expect(() => decodeRecord(corrupt)).toThrow(/checksum/);
    expect(() => decodeRecordHead(corrupt)).toThrow(/checksum/);
    expect(() => decodeRecordHead(row.subarray(0, 20))).toThrow(/truncated/);
    const longKey = row.slice();
    longKey[5] = 200; // a key length running past the fields
    expect(() => decodeRecordHead(longKey)).toThrow(/truncated/);
  });

  it('gives the key and value inside a record as views of it, and refuses lengths it was not made with (property)', () => {
    fc.assert(
      fc.property(kvArb, (kv) => {
        const row = encodeRecord({ tombstone: false, kv });
        const key = recordKeyView(row, kv.key.length);
        const value = recordValueView(row, kv.key.length, kv.value.length);
        expect([Buffer.from(key).toString('hex'), Buffer.from(value).toString('hex')]).toEqual([Buffer.from(kv.key).toString('hex'), Buffer.from(kv.value).toString('hex')]);
        expect(key.buffer).toBe(row.buffer);
        expect(value.buffer).toBe(row.buffer);
        expect(() => recordKeyView(row, kv.key.length + 1)).toThrow(/record key view/);
      }),
    );
  });

  it('views a checked record as decodeRecord reads it, key and value as plain Uint8Arrays over its bytes (property)', () => {
    fc.assert(
      fc.property(kvArb, fc.boolean(), fc.boolean(), (kv, tombstone, asBuffer) => {
        const encoded = encodeRecord({ tombstone, kv });
        // A backend row is a Buffer: the views must still be plain Uint8Arrays, as decodeRecord's copies are.
        const row = asBuffer ? Buffer.from(encoded) : encoded;
        verifyRecord(row);
        const viewed = viewRecord(row);
        expect(viewed).toEqual(decodeRecord(row));
        expect(Object.getPrototypeOf(viewed.kv.key)).toBe(Uint8Array.prototype);
        expect(Object.getPrototypeOf(viewed.kv.value)).toBe(Uint8Array.prototype);
        expect(viewed.kv.key.buffer).toBe(row.buffer);
        expect(viewed.kv.value.buffer).toBe(row.buffer);
      }),
    );
  });

  it('checks a record coming into memory (verifyRecord); viewRecord itself only checks the format and lengths', () => {
    const kv = { key: Uint8Array.from([1, 2]), value: new Uint8Array([3]), createRevision: 1, modRevision: 2, version: 1, lease: 0n, createHlc: 0n, modHlc: 0n };
    const corrupt = encodeRecord({ tombstone: false, kv });
    corrupt[7] = corrupt[7]! ^ 1;
    expect(() => verifyRecord(corrupt)).toThrow(/checksum/);
    expect(viewRecord(corrupt).kv.key).toEqual(Uint8Array.from([1, 3]));
    const longKey = encodeRecord({ tombstone: false, kv });
    longKey[5] = 200;
    expect(() => viewRecord(longKey)).toThrow(/truncated/);
    const future = encodeRecord({ tombstone: false, kv });
    future[0] = 3;
    expect(() => viewRecord(future)).toThrow(/format 3/);
  });

  it('still reads format-1 records (written before records carried HLCs) with both HLCs 0', () => {
    // Format 1, laid out by hand: format, flags, key length, key, create, mod, version, lease, value length,
    // value, CRC-32C over everything before it.
    const key = Buffer.from('k1');
    const value = Buffer.from('old');
    const body = Buffer.alloc(1 + 1 + 4 + key.length + 8 * 4 + 4 + value.length);
    let o = body.writeUInt8(1, 0);
    o = body.writeUInt8(0, o);
    o = body.writeUInt32BE(key.length, o);
    o += key.copy(body, o);
    o = body.writeBigUInt64BE(4n, o);
    o = body.writeBigUInt64BE(6n, o);
    o = body.writeBigUInt64BE(2n, o);
    o = body.writeBigInt64BE(5n, o);
    o = body.writeUInt32BE(value.length, o);
    value.copy(body, o);
    const row = Buffer.alloc(body.length + 4);
    body.copy(row);
    row.writeUInt32BE(crc32c(body), body.length);

    const kv = { key: Uint8Array.from(key), value: Uint8Array.from(value), createRevision: 4, modRevision: 6, version: 2, lease: 5n, createHlc: 0n, modHlc: 0n };
    expect(decodeRecord(row)).toEqual({ tombstone: false, kv });
    expect(decodeRecordHead(row)).toEqual({ tombstone: false, keyString: 'k1', createRevision: 4, version: 2, lease: 5n, createHlc: 0n });
    // A format-1 tombstone too (flag set, fields zero).
    const tomb = Buffer.from(body);
    tomb.writeUInt8(1, 1);
    const tombRow = Buffer.concat([tomb, Buffer.alloc(4)]);
    tombRow.writeUInt32BE(crc32c(tomb), tomb.length);
    expect(decodeRecord(tombRow).tombstone).toBe(true);
    // An unknown format is refused, not guessed at.
    const future = Buffer.from(row);
    future[0] = 3;
    expect(() => decodeRecord(future)).toThrow(/format 3/);
  });

  it('lays records, revision keys and u64 fields out byte for byte as the format says (random fields)', () => {
    fc.assert(
      fc.property(fc.boolean(), kvArb, (tombstone, kv) => {
        const row = encodeRecord({ tombstone, kv });
        expect(Buffer.from(row).equals(referenceRecord(tombstone, kv))).toBe(true);
        expect(decodeRecord(row)).toEqual({ tombstone, kv });
        // The head decoder (byte by byte, for restarts) agrees with the full one on every field it reads.
        expect(decodeRecordHead(row)).toEqual({ tombstone, keyString: bytesToKeyString(kv.key), createRevision: kv.createRevision, version: kv.version, lease: kv.lease, createHlc: kv.createHlc });
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(u64Number, u64Number, (main, sub) => {
        const ref = Buffer.alloc(18);
        ref.write('k/', 'latin1');
        ref.writeBigUInt64BE(BigInt(main), 2);
        ref.writeBigUInt64BE(BigInt(sub), 10);
        expect(Buffer.from(revisionKey(main, sub)).equals(ref)).toBe(true);
        expect(Buffer.from(encodeU64(main)).equals(ref.subarray(2, 10))).toBe(true);
        expect(decodeRevisionKey(new Uint8Array(ref))).toEqual({ main, sub });
      }),
      { numRuns: 500 },
    );
    expect(() => revisionKey(-1, 0)).toThrow(/u64 field out of range: -1/);
    expect(() => encodeRecord({ tombstone: false, kv: { key: new Uint8Array(1), value: new Uint8Array(0), createRevision: 1, modRevision: 1, version: 1, lease: 0n, createHlc: -1n, modHlc: 0n } })).toThrow(
      /hlc out of range: -1/,
    );
  });

  it('copies bytes into plain arrays and reads keys as latin1, whatever the source (random bytes, Buffers, views)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(), fc.nat(), (bytes, a, b) => {
        const start = bytes.length === 0 ? 0 : a % bytes.length;
        const end = start + (bytes.length === 0 ? 0 : b % (bytes.length - start + 1));
        const framed = Buffer.concat([Buffer.from([9]), bytes]);
        for (const src of [bytes, Buffer.from(bytes), new Uint8Array(framed.buffer, framed.byteOffset + 1, bytes.length)]) {
          const copy = copyBytes(src, start, end);
          expect(copy.constructor).toBe(Uint8Array);
          expect([...copy]).toEqual([...bytes.subarray(start, end)]);
          expect(bytesToKeyString(src)).toBe(Buffer.from(bytes).toString('latin1'));
        }
        expect(copyBytes(bytes)).not.toBe(bytes);
      }),
      { numRuns: 500 },
    );
  });
});
