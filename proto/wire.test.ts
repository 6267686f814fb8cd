import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { ProtoReader, ProtoWireError, ProtoWriter, UNSAFE, varint64Size, varintSize, WIRE_FIXED32, WIRE_FIXED64, WIRE_LENGTH_DELIMITED, WIRE_VARINT } from './wire.js';

/** protobufjs's varint of a safe integer, as the reference. */
function referenceVarint(v: number): Uint8Array {
  return protobuf.Writer.create().uint64(protobuf.util.LongBits.fromNumber(v).toLong(true)).finish();
}

describe('protobuf wire format by hand', () => {
  it('writes varints exactly as protobufjs does, sized by varintSize, and reads them back (property)', () => {
    const boundaries = [0, 1, 127, 128, 16_383, 16_384, 2 ** 21 - 1, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 35, 2 ** 49, Number.MAX_SAFE_INTEGER];
    fc.assert(
      fc.property(fc.oneof(fc.constantFrom(...boundaries), fc.maxSafeNat()), (v) => {
        const w = new ProtoWriter(1);
        w.uint(v);
        const bytes = w.finish();
        expect([...bytes]).toEqual([...referenceVarint(v)]);
        expect(bytes.length).toBe(varintSize(v));
        const r = new ProtoReader(bytes);
        expect(r.uint()).toBe(v);
        expect(r.done()).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('writes a 64-bit varint from its two halves as from the bigint, and reads it back whole (property)', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
        const halves = new ProtoWriter(1);
        halves.uint64Bits(Number(v & 0xffff_ffffn) | 0, Number(v >> 32n) | 0);
        const whole = new ProtoWriter(1);
        whole.uint64(v);
        expect(halves.finish().toString('hex')).toBe(whole.finish().toString('hex'));
        expect(varint64Size(Number(v & 0xffff_ffffn) | 0, Number(v >> 32n) | 0)).toBe(halves.length);
        const r = new ProtoReader(halves.finish());
        const n = r.uint();
        expect(n === UNSAFE ? r.lastVarint64() : BigInt(n)).toBe(v);
        expect(r.lastVarintBytes()).toBe(halves.length);
      }),
    );
  });

  it('reads a varint above 2^53 - 1 (a negative int32 among them) as UNSAFE, never rounded', () => {
    for (const big of [2n ** 53n, 2n ** 53n + 1n, 2n ** 64n - 1n]) {
      const w = new ProtoWriter(1);
      w.uint64(big);
      expect(new ProtoReader(w.finish()).uint()).toBe(UNSAFE);
    }
    const minusOne = protobuf.Writer.create().int32(-1).finish();
    expect(minusOne.length).toBe(10);
    expect(new ProtoReader(minusOne).uint()).toBe(UNSAFE);
  });

  it('refuses to write what it could not read back', () => {
    const w = new ProtoWriter(1);
    expect(() => w.uint(-1)).toThrow(RangeError);
    expect(() => w.uint(1.5)).toThrow(RangeError);
    expect(() => w.uint(2 ** 53)).toThrow(RangeError);
  });

  it('fails on bytes that are not protobuf: truncated, too long a varint, a length past the end, a group, tag 0', () => {
    expect(() => new ProtoReader(Uint8Array.of(0x80)).uint()).toThrow(ProtoWireError);
    expect(() => new ProtoReader(new Uint8Array(11).fill(0xff)).uint()).toThrow('longer than 10 bytes');
    expect(() => new ProtoReader(Uint8Array.of(5, 1, 2)).bytes()).toThrow('runs past the end');
    expect(() => new ProtoReader(Uint8Array.of(0)).tag()).toThrow('bad field tag');
    expect(() => new ProtoReader(Uint8Array.of(0x0b)).skip(3)).toThrow('unsupported wire type 3');
    expect(() => new ProtoReader(Uint8Array.of(1, 2, 3)).skip(WIRE_FIXED32)).toThrow('truncated');
  });

  it('skips every wire type it knows and reads repeated ids packed or not', () => {
    const w = protobuf.Writer.create();
    w.uint32((1 << 3) | WIRE_VARINT).uint64(300);
    w.uint32((2 << 3) | WIRE_FIXED64).fixed64(7);
    w.uint32((3 << 3) | WIRE_FIXED32).fixed32(9);
    w.uint32((4 << 3) | WIRE_LENGTH_DELIMITED).bytes(Uint8Array.of(1, 2, 3));
    w.uint32((5 << 3) | WIRE_LENGTH_DELIMITED).fork().uint64(1).uint64(2 ** 40).ldelim();
    w.uint32((5 << 3) | WIRE_VARINT).uint64(3);
    const r = new ProtoReader(w.finish());
    for (let i = 0; i < 4; i++) r.skip(r.tag() & 7);
    const ids: number[] = [];
    while (!r.done()) r.uints(r.tag() & 7, ids);
    expect(ids).toEqual([1, 2 ** 40, 3]);
  });

  it('gives length-delimited values as views of the input, not copies', () => {
    const input = Buffer.from([3, 7, 8, 9]);
    const view = new ProtoReader(input).bytes();
    input[1] = 42;
    expect([...view]).toEqual([42, 8, 9]);
  });
});
