import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryBackend } from '../backend.js';
import { batchBytes, MOVE_BATCH_BYTES_MAX, movePrefix, readPrefix, readSafeU64, readU64, u64, utf8, writeU64 } from './section.js';

/** What u64() wrote before it had a path for numbers: every value through BigInt and a DataView. */
function reference(value: bigint | number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value), false);
  return out;
}

describe('u64', () => {
  it('writes the same bytes as BigInt through a DataView, for numbers and bigints', () => {
    const numbers = fc.oneof(
      fc.nat(),
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      // Integers past 2^53 are exact doubles too: every one below 2^64 must survive the split into halves.
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map((b) => Number(b)).filter((n) => n < 2 ** 64),
      fc.constantFrom(0, -0, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 2 ** 63, 2 ** 64 - 2 ** 11),
    );
    fc.assert(
      fc.property(numbers, (n) => {
        expect(u64(n)).toEqual(reference(n));
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (b) => {
        expect(u64(b)).toEqual(reference(b));
      }),
      { numRuns: 2000 },
    );
  });

  it('writes at an offset and reads back', () => {
    const out = new Uint8Array(20).fill(0xee);
    writeU64(out, 3, 0x0102030405n);
    writeU64(out, 11, 2 ** 40 + 7);
    expect(Buffer.from(out).toString('hex')).toBe('eeeeee' + '0000000102030405' + '0000010000000007' + 'ee');
    expect(readU64(out, 3)).toBe(0x0102030405n);
    expect(readU64(out, 11)).toBe(2n ** 40n + 7n);
  });

  it('reads back what a DataView wrote: every u64 as a bigint, and the safe integers as numbers', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.nat(5), (b, at) => {
        const bytes = new Uint8Array(at + 8 + 3).fill(0xa5);
        bytes.set(reference(b), at);
        expect(readU64(bytes, at)).toBe(b);
        if (b <= BigInt(Number.MAX_SAFE_INTEGER)) expect(readSafeU64(bytes, at)).toBe(Number(b));
        else expect(() => readSafeU64(bytes, at)).toThrow(`u64 ${b} does not fit a safe integer`);
      }),
      { numRuns: 2000 },
    );
    for (const n of [0, 1, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) expect(readSafeU64(reference(n))).toBe(n);
    expect(() => readSafeU64(reference(2 ** 53))).toThrow('does not fit a safe integer');
    expect(() => readSafeU64(new Uint8Array(7))).toThrow('readU64 past the end');
    expect(() => readU64(new Uint8Array(9), 2)).toThrow('readU64 past the end');
  });

  it('refuses what it always refused: fractions (RangeError), negatives and values past 2^64 - 1', () => {
    expect(() => u64(1.5)).toThrow(RangeError);
    expect(() => u64(NaN)).toThrow(RangeError);
    expect(() => u64(-1)).toThrow(/u64 out of range: -1/);
    expect(() => u64(-1n)).toThrow(/u64 out of range: -1/);
    expect(() => u64(2 ** 64)).toThrow(/u64 out of range: 18446744073709551616/);
    expect(() => u64(1n << 64n)).toThrow(/u64 out of range/);
  });
});

describe('batchBytes', () => {
  it('gives zeroed, independent plain arrays of the size asked, across slabs', () => {
    const arrays = Array.from({ length: 3000 }, (_, i) => batchBytes(1 + (i % 40)));
    arrays.forEach((a, i) => {
      expect(a.constructor).toBe(Uint8Array);
      expect(a.byteLength).toBe(1 + (i % 40));
      expect(a.every((x) => x === 0)).toBe(true);
      a.fill(i & 0xff);
    });
    arrays.forEach((a, i) => expect(a.every((x) => x === (i & 0xff))).toBe(true));
    const large = batchBytes(64 * 1024);
    expect([large.byteLength, large.byteOffset, large.buffer.byteLength]).toEqual([64 * 1024, 0, 64 * 1024]);
  });
});

describe('movePrefix', () => {
  it('moves every pair under one prefix to the same key under another, in batches of bounded size, once', async () => {
    const backend = new MemoryBackend();
    const big = new Uint8Array(MOVE_BATCH_BYTES_MAX / 2).fill(7);
    const seed = backend.batch();
    for (const id of ['a', 'b', 'c']) seed.put(utf8(`old/c/${id}`), big);
    seed.put(utf8('old/m'), Uint8Array.of(1));
    seed.put(utf8('olden'), Uint8Array.of(2)); // shares bytes with the prefix, is not under it
    await seed.write({ sync: true });
    const batches: number[] = [];
    const counting = Object.assign(Object.create(backend) as MemoryBackend, {
      batch: () => {
        const b = backend.batch();
        const write = b.write.bind(b);
        return Object.assign(b, { write: (o: { sync: boolean }) => (batches.push(b.length), write(o)) });
      },
    });
    expect(await movePrefix(counting, utf8('old/'), utf8('new/'))).toBe(4);
    // 4 pairs of which three are half the byte bound: at most two per batch, each a put and a delete.
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.every((n) => n <= 4)).toBe(true);
    expect((await readPrefix(backend, utf8('new/'))).map(([k, v]) => [Buffer.from(k).toString(), v.byteLength])).toEqual([
      ['new/c/a', big.byteLength],
      ['new/c/b', big.byteLength],
      ['new/c/c', big.byteLength],
      ['new/m', 1],
    ]);
    expect(await readPrefix(backend, utf8('old/'))).toEqual([]);
    expect(await readPrefix(backend, utf8('olden'))).toEqual([[utf8('olden'), Uint8Array.of(2)]]);
    expect(await movePrefix(backend, utf8('old/'), utf8('new/'))).toBe(0);
  });
});
