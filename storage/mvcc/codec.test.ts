import { describe, expect, it } from 'vitest';
import { decodeRecord, decodeRecordHead, decodeRevisionKey, encodeRecord, revisionKey } from './codec.js';

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
    const kv = { key: Uint8Array.from([0, 255, 97]), value: new Uint8Array([1, 2, 3]), createRevision: 5, modRevision: 9, version: 3, lease: -7n };
    const row = encodeRecord({ tombstone: false, kv });
    expect(decodeRecord(row)).toEqual({ tombstone: false, kv });
    expect(decodeRecordHead(row)).toEqual({ tombstone: false, keyString: '\u0000\u00ffa', createRevision: 5, version: 3, lease: -7n });
    const corrupt = row.slice();
    corrupt[8] = corrupt[8]! ^ 1;
    expect(() => decodeRecord(corrupt)).toThrow(/checksum/);
  });
});
