import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32c } from './crc32c.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Bit-at-a-time reference: the definition of CRC-32C with no tables, to check the sliced tables against. */
function crc32cBitwise(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('crc32c', () => {
  // Published check values: the "123456789" check of the CRC catalogue, and RFC 3720 appendix B.4 vectors.
  it.each([
    ['empty', new Uint8Array(0), 0x00000000],
    ['"123456789"', ascii('123456789'), 0xe3069283],
    ['"a"', ascii('a'), 0xc1d04330],
    ['32 bytes of zeros', new Uint8Array(32), 0x8a9136aa],
    ['32 bytes of 0xff', new Uint8Array(32).fill(0xff), 0x62a8ab43],
    ['32 incrementing bytes', Uint8Array.from({ length: 32 }, (_, i) => i), 0x46dd794e],
    ['32 decrementing bytes', Uint8Array.from({ length: 32 }, (_, i) => 31 - i), 0x113fdb5c],
  ])('matches the known vector for %s', (_name, data, want) => {
    expect(crc32c(data)).toBe(want);
  });

  it('agrees with the bitwise definition on random input of every length and alignment', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 7 }), (bytes, skip) => {
        const view = bytes.subarray(Math.min(skip, bytes.length));
        expect(crc32c(view)).toBe(crc32cBitwise(view));
      }),
    );
  });

  it('can be extended piecewise: crc(a ++ b) = crc(b, crc(a))', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 100 }), (a, b) => {
        const joined = new Uint8Array(a.length + b.length);
        joined.set(a);
        joined.set(b, a.length);
        expect(crc32c(b, crc32c(a))).toBe(crc32c(joined));
      }),
    );
  });

  it('checksums a range [start, end) exactly like the subarray', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(), fc.nat(), fc.nat(), (bytes, a, b, seed) => {
        const start = bytes.length === 0 ? 0 : a % (bytes.length + 1);
        const end = start + (bytes.length - start === 0 ? 0 : b % (bytes.length - start + 1));
        expect(crc32c(bytes, seed >>> 0, start, end)).toBe(crc32c(bytes.subarray(start, end), seed >>> 0));
      }),
    );
  });

  it('detects every single-bit flip in a record-sized buffer', () => {
    const buf = Uint8Array.from({ length: 64 }, (_, i) => (i * 37) & 0xff);
    const good = crc32c(buf);
    for (let bit = 0; bit < buf.length * 8; bit++) {
      buf[bit >> 3]! ^= 1 << (bit & 7);
      expect(crc32c(buf)).not.toBe(good);
      buf[bit >> 3]! ^= 1 << (bit & 7);
    }
  });
});
