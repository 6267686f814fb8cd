import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCommand, decodeValue, encodeCommand, encodeValue, type Value } from './command.js';

const value: fc.Arbitrary<Value> = fc.letrec<{ v: Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.string(),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('v'), { maxLength: 5 }),
    fc.dictionary(fc.string().filter((k) => k !== '__proto__'), tie('v'), { maxKeys: 5 }),
  ),
})).v;

describe('command codec', () => {
  it('round-trips any plain value exactly (including -0, NaN and 64-bit ints)', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(decodeValue(encodeValue(v))).toEqual(v);
      }),
      { numRuns: 500 },
    );
  });

  it('encodes the same value to the same bytes (members must agree)', () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(encodeValue(decodeValue(encodeValue(v)))).toEqual(encodeValue(v));
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips a command', () => {
    const c = { hlc: 123456789n << 16n, clientId: 'c-1', seq: 7, op: { put: { key: Uint8Array.of(1, 2), value: Uint8Array.of(3), lease: 5n } } };
    expect(decodeCommand(encodeCommand(c))).toEqual(c);
  });

  it('rejects truncated or garbage input with an assertion, never a wrong value', () => {
    const good = encodeValue({ a: [1, 'x', Uint8Array.of(9)] });
    for (let cut = 0; cut < good.byteLength; cut++) expect(() => decodeValue(good.subarray(0, cut))).toThrow();
    expect(() => decodeValue(Uint8Array.of(42))).toThrow(/unknown value tag 42/);
    expect(() => decodeCommand(encodeValue([1, 2]))).toThrow(/not an object/);
  });
});
