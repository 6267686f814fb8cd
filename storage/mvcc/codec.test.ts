import { describe, expect, it } from 'vitest';
import { crc32c, decodeRecord, decodeRecordHead, decodeRevisionKey, encodeRecord, revisionKey } from './codec.js';

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
});
