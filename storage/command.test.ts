import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCommand, decodeValue, encodeCommand, encodeValue, type Command, type Value } from './command.js';

const value: fc.Arbitrary<Value> = fc.letrec<{ v: Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.string(),
    fc.string({ unit: 'binary', maxLength: 80 }), // any code point, and longer than the ASCII fast path
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('v'), { maxLength: 5 }),
    fc.dictionary(fc.string().filter((k) => k !== '__proto__'), tie('v'), { maxKeys: 5 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 70 }).filter((k) => k !== '__proto__'), tie('v'), { maxKeys: 3 }),
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
    // Views that end before their buffer does, as a Uint8Array and as a Buffer (how a follower gets its entries).
    const inMessage = Buffer.concat([good, good]);
    for (let cut = 0; cut < good.byteLength; cut++) {
      expect(() => decodeValue(good.subarray(0, cut))).toThrow();
      expect(() => decodeValue(inMessage.subarray(0, cut))).toThrow();
    }
    expect(encodeValue(decodeValue(inMessage.subarray(good.byteLength)))).toEqual(good);
    expect(() => decodeValue(Uint8Array.of(42))).toThrow(/unknown value tag 42/);
    expect(() => decodeCommand(encodeValue([1, 2]))).toThrow(/not an object/);
  });
  it('gives each encoding bytes of its own, also after an encode that failed half-way (shared scratch buffer)', () => {
    const first = encodeValue({ a: 'x'.repeat(100) });
    const firstCopy = first.slice();
    let deep: Value = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    expect(() => encodeValue(deep)).toThrow(/nested too deeply/);
    const big = encodeValue({ b: new Uint8Array(200_000).fill(7) }); // larger than the scratch: grows a buffer of its own
    const second = encodeValue({ a: 'y'.repeat(100) });
    expect(first).toEqual(firstCopy);
    expect(decodeValue(first)).toEqual({ a: 'x'.repeat(100) });
    expect(decodeValue(second)).toEqual({ a: 'y'.repeat(100) });
    expect((decodeValue(big) as { b: Uint8Array }).b.byteLength).toBe(200_000);
    expect(first.buffer).not.toBe(second.buffer);
  });

  it('keeps the byte format of commands already in WALs (a golden encoding made before the codec was sped up)', () => {
    const te = new TextEncoder();
    const c = {
      hlc: 123456789012345678n,
      clientId: 'client-Ω-1',
      seq: 42,
      op: { txn: { compare: [{ key: te.encode('k'), target: 'VALUE', result: 'EQUAL', value: te.encode('v') }], success: [{ requestPut: { key: te.encode('k'), value: te.encode('é'.repeat(3)), lease: 7n } }], failure: [] } },
      note: 'x'.repeat(70) + 'ü',
    };
    const golden =
      '090000000500000003686c630501b69b4ba630f34e00000008636c69656e744964060000000b636c69656e742dcea92d3100000003736571044045000000000000000000026f7009000000010000000374786e090000000300000007636f6d7061726508000000010900000004000000036b657907000000016b00000006746172676574060000000556414c554500000006726573756c740600000005455155414c0000000576616c75650700000001760000000773756363657373080000000109000000010000000a726571756573745075740900000003000000036b657907000000016b0000000576616c75650700000006c3a9c3a9c3a9000000056c65617365050000000000000007000000076661696c7572650800000000000000046e6f7465060000004878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878c3bc';
    expect(Buffer.from(encodeCommand(c as unknown as Command)).toString('hex')).toBe(golden);
    expect(decodeCommand(new Uint8Array(Buffer.from(golden, 'hex')))).toEqual(c);
  });

  describe('a put\'s own layout (tag 10)', () => {
    const flag = fc.constantFrom(undefined, true, false);
    const put = fc.record(
      {
        key: fc.uint8Array({ maxLength: 40 }),
        value: fc.uint8Array({ maxLength: 300 }),
        lease: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
        prevKv: flag,
        ignoreValue: flag,
        ignoreLease: flag,
      },
      { requiredKeys: ['key', 'value'] },
    );
    const command = fc.record(
      {
        hlc: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
        clientId: fc.string({ unit: 'binary', maxLength: 20 }),
        seq: fc.double(),
        auth: fc.record({ user: fc.string(), revision: fc.nat() }),
        op: put.map((p) => ({ put: p })),
      },
      { requiredKeys: ['hlc', 'op'] },
    );

    it('decodes to exactly what the general form decodes to, and is used for every put the general form would decode alike (property)', () => {
      fc.assert(
        fc.property(command, (c) => {
          const encoded = encodeCommand(c as Command);
          const general = decodeValue(encodeValue(c as unknown as Value));
          expect(decodeCommand(encoded)).toEqual(general);
          // Also from a Buffer view inside a larger message (how a follower gets its entries).
          const inMessage = (b: Uint8Array): Buffer => Buffer.concat([Buffer.from([7, 7]), b, Buffer.from([9])]).subarray(2, 2 + b.byteLength);
          expect(decodeCommand(inMessage(encoded))).toEqual(decodeValue(inMessage(encodeValue(c as unknown as Value))));
          const p = c.op.put;
          const plain = [p.prevKv, p.ignoreValue, p.ignoreLease].every((f) => f !== false) && (c.clientId === undefined) === (c.seq === undefined);
          expect(encoded[0]).toBe(plain ? 10 : 9);
        }),
        { numRuns: 500 },
      );
    });

    it('leaves any other command, or a put with other fields, to the general form', () => {
      const key = Uint8Array.of(1);
      expect(encodeCommand({ hlc: 1n, op: { deleteRange: { key } } })[0]).toBe(9);
      expect(encodeCommand({ hlc: 1n, op: { put: { key, value: key, extra: 1 } } } as unknown as Command)[0]).toBe(9);
      expect(encodeCommand({ hlc: 1n, note: 'x', op: { put: { key, value: key } } } as unknown as Command)[0]).toBe(9);
      expect(encodeCommand({ hlc: 1n, op: { put: { key, value: key, lease: 5 } } } as unknown as Command)[0]).toBe(9);
      expect(encodeCommand({ hlc: 1n, op: { put: { key, value: key } } })[0]).toBe(10);
    });

    it('refuses every truncation, trailing bytes and unknown flags with an assertion', () => {
      const c = { hlc: 5n, clientId: 'c', seq: 2, auth: { user: 'u', revision: 3 }, op: { put: { key: Uint8Array.of(1, 2), value: Uint8Array.of(3), lease: 9n, prevKv: true } } };
      const good = encodeCommand(c);
      expect(good[0]).toBe(10);
      for (let cut = 1; cut < good.byteLength; cut++) expect(() => decodeCommand(good.subarray(0, cut))).toThrow();
      expect(() => decodeCommand(Uint8Array.of(...good, 0))).toThrow(/trailing/);
      const strange = good.slice();
      strange[9] = strange[9]! | 64;
      expect(() => decodeCommand(strange)).toThrow(/unknown flags/);
    });
  });
});
