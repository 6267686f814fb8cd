// The entry records of the write-ahead log: what encodeEntries seals, decodeEntry reads back and verifies. The
// log's own tests go through LevelDB; these pin the codec alone, including that records sharing one allocation
// stay independent of each other.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EntryType, type Entry } from '../../raft/types.js';
import { decodeEntry, encodeEntries, entryKey, indexOfKey, isBad, KEY_ENTRY } from './codec.js';

const entryArb: fc.Arbitrary<Entry> = fc.record({
  index: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  term: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange),
  data: fc.uint8Array({ maxLength: 600 }),
});

describe('wal codec: entries', () => {
  it('every encoded record decodes to its entry, under the key of its index', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 40 }), (entries) => {
        const records = encodeEntries(entries);
        expect(records).toHaveLength(entries.length);
        records.forEach((r, i) => {
          expect(r.key).toEqual(entryKey(entries[i]!.index));
          expect(indexOfKey(KEY_ENTRY, r.key)).toBe(entries[i]!.index);
          expect(decodeEntry(r.key, r.value)).toEqual({ ...entries[i]!, data: new Uint8Array(entries[i]!.data) });
        });
      }),
    );
  });

  it('records of one save share an allocation but no bytes: overwriting one leaves the others intact', () => {
    const entries = [1, 2, 3].map((index): Entry => ({ index, term: 7, type: EntryType.Normal, data: Uint8Array.of(index, index, index) }));
    const records = encodeEntries(entries);
    expect(records[0]!.value.buffer).toBe(records[2]!.value.buffer);
    records[1]!.key.fill(0xff);
    records[1]!.value.fill(0xff);
    expect(decodeEntry(records[0]!.key, records[0]!.value)).toEqual(entries[0]);
    expect(decodeEntry(records[2]!.key, records[2]!.value)).toEqual(entries[2]);
  });

  it('a decoded entry owns its data: it does not pin or alias the record it came from', () => {
    const [r] = encodeEntries([{ index: 5, term: 1, type: EntryType.Normal, data: Uint8Array.of(1, 2, 3) }]);
    const e = decodeEntry(r!.key, r!.value) as Entry;
    r!.value[r!.value.length - 1] = 9;
    expect([...e.data]).toEqual([1, 2, 3]);
    expect(e.data.buffer).not.toBe(r!.value.buffer);
  });

  it('negative control: a flipped bit anywhere in a record, or the record under another index, fails its checksum', () => {
    const [r] = encodeEntries([{ index: 42, term: 3, type: EntryType.Normal, data: new Uint8Array(64).fill(0x5a) }]);
    for (let byte = 0; byte < r!.value.length; byte++) {
      const value = Uint8Array.from(r!.value);
      value[byte]! ^= 1 << byte % 8;
      expect(decodeEntry(r!.key, value)).toEqual({ bad: 'checksum mismatch' });
    }
    expect(isBad(decodeEntry(entryKey(43), r!.value))).toBe(true);
    expect(decodeEntry(r!.key, r!.value.subarray(0, 12))).toEqual({ bad: 'short record: 12 bytes' });
  });
});
