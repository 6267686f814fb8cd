// Hand-built protobuf for the property tests of the hand-written codecs (kv-wire.test.ts, lease-wire.test.ts):
// varints, int64 values with their edges, and unknown fields of every wire type but groups, which a decoder must
// step over exactly as protobufjs does.
import fc from 'fast-check';

/** A varint's bytes (an int64 as its two's complement, as protobuf writes a negative one). */
export function varint(v: bigint): number[] {
  const out: number[] = [];
  let n = BigInt.asUintN(64, v);
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}

/** An int64: zero, small, or anywhere in the signed range. */
export const int64 = fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 300n }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));

/** Up to 40 bytes, for bytes fields and unknown length-delimited ones. */
export const bytes = fc.uint8Array({ maxLength: 40 });

/** A field numbered `firstUnknown` or above, of wire type 2, 0, 1 or 5, as its bytes. */
export function unknownField(firstUnknown: number): fc.Arbitrary<number[]> {
  return fc.oneof(
    fc.tuple(fc.integer({ min: firstUnknown, max: 40 }), bytes).map(([f, b]) => [...varint(BigInt(f * 8 + 2)), ...varint(BigInt(b.length)), ...b]),
    fc.tuple(fc.integer({ min: firstUnknown, max: 1000 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })).map(([f, v]) => [...varint(BigInt(f * 8)), ...varint(v)]),
    fc.integer({ min: firstUnknown, max: 40 }).map((f) => [...varint(BigInt(f * 8 + 1)), 1, 2, 3, 4, 5, 6, 7, 8]),
    fc.integer({ min: firstUnknown, max: 40 }).map((f) => [...varint(BigInt(f * 8 + 5)), 1, 2, 3, 4]),
  );
}
