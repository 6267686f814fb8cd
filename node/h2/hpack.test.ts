import fc from 'fast-check';
import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { HpackDecoder, HpackEncoder, HpackError, INDEXED_VALUE_BYTES_MAX, STATIC_TABLE, type HeaderField } from './hpack.js';
import { EOS, huffmanDecode, huffmanEncode, huffmanEncodedLength, HUFFMAN_CODES, HUFFMAN_LENGTHS } from './huffman.js';

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

function huffman(s: string): Buffer {
  const out = Buffer.alloc(huffmanEncodedLength(s));
  expect(huffmanEncode(s, out, 0)).toBe(out.length);
  return out;
}

function unhuffman(b: Uint8Array): string {
  return huffmanDecode(b, 0, b.length);
}

function fields(...pairs: [string, string][]): HeaderField[] {
  return pairs.map(([name, value]) => ({ name, value }));
}

/** RFC 7541 Appendix B, symbol by symbol from 0 to EOS: the code (hex, right-aligned) and its length in bits. */
const RFC_CODES = `
  1ff8:13 7fffd8:23 fffffe2:28 fffffe3:28 fffffe4:28 fffffe5:28 fffffe6:28 fffffe7:28
  fffffe8:28 ffffea:24 3ffffffc:30 fffffe9:28 fffffea:28 3ffffffd:30 fffffeb:28 fffffec:28
  fffffed:28 fffffee:28 fffffef:28 ffffff0:28 ffffff1:28 ffffff2:28 3ffffffe:30 ffffff3:28
  ffffff4:28 ffffff5:28 ffffff6:28 ffffff7:28 ffffff8:28 ffffff9:28 ffffffa:28 ffffffb:28
  14:6 3f8:10 3f9:10 ffa:12 1ff9:13 15:6 f8:8 7fa:11
  3fa:10 3fb:10 f9:8 7fb:11 fa:8 16:6 17:6 18:6
  0:5 1:5 2:5 19:6 1a:6 1b:6 1c:6 1d:6
  1e:6 1f:6 5c:7 fb:8 7ffc:15 20:6 ffb:12 3fc:10
  1ffa:13 21:6 5d:7 5e:7 5f:7 60:7 61:7 62:7
  63:7 64:7 65:7 66:7 67:7 68:7 69:7 6a:7
  6b:7 6c:7 6d:7 6e:7 6f:7 70:7 71:7 72:7
  fc:8 73:7 fd:8 1ffb:13 7fff0:19 1ffc:13 3ffc:14 22:6
  7ffd:15 3:5 23:6 4:5 24:6 5:5 25:6 26:6
  27:6 6:5 74:7 75:7 28:6 29:6 2a:6 7:5
  2b:6 76:7 2c:6 8:5 9:5 2d:6 77:7 78:7
  79:7 7a:7 7b:7 7ffe:15 7fc:11 3ffd:14 1ffd:13 ffffffc:28
  fffe6:20 3fffd2:22 fffe7:20 fffe8:20 3fffd3:22 3fffd4:22 3fffd5:22 7fffd9:23
  3fffd6:22 7fffda:23 7fffdb:23 7fffdc:23 7fffdd:23 7fffde:23 ffffeb:24 7fffdf:23
  ffffec:24 ffffed:24 3fffd7:22 7fffe0:23 ffffee:24 7fffe1:23 7fffe2:23 7fffe3:23
  7fffe4:23 1fffdc:21 3fffd8:22 7fffe5:23 3fffd9:22 7fffe6:23 7fffe7:23 ffffef:24
  3fffda:22 1fffdd:21 fffe9:20 3fffdb:22 3fffdc:22 7fffe8:23 7fffe9:23 1fffde:21
  7fffea:23 3fffdd:22 3fffde:22 fffff0:24 1fffdf:21 3fffdf:22 7fffeb:23 7fffec:23
  1fffe0:21 1fffe1:21 3fffe0:22 1fffe2:21 7fffed:23 3fffe1:22 7fffee:23 7fffef:23
  fffea:20 3fffe2:22 3fffe3:22 3fffe4:22 7ffff0:23 3fffe5:22 3fffe6:22 7ffff1:23
  3ffffe0:26 3ffffe1:26 fffeb:20 7fff1:19 3fffe7:22 7ffff2:23 3fffe8:22 1ffffec:25
  3ffffe2:26 3ffffe3:26 3ffffe4:26 7ffffde:27 7ffffdf:27 3ffffe5:26 fffff1:24 1ffffed:25
  7fff2:19 1fffe3:21 3ffffe6:26 7ffffe0:27 7ffffe1:27 3ffffe7:26 7ffffe2:27 fffff2:24
  1fffe4:21 1fffe5:21 3ffffe8:26 3ffffe9:26 ffffffd:28 7ffffe3:27 7ffffe4:27 7ffffe5:27
  fffec:20 fffff3:24 fffed:20 1fffe6:21 3fffe9:22 1fffe7:21 1fffe8:21 7ffff3:23
  3fffea:22 3fffeb:22 1ffffee:25 1ffffef:25 fffff4:24 fffff5:24 3ffffea:26 7ffff4:23
  3ffffeb:26 7ffffe6:27 3ffffec:26 3ffffed:26 7ffffe7:27 7ffffe8:27 7ffffe9:27 7ffffea:27
  7ffffeb:27 ffffffe:28 7ffffec:27 7ffffed:27 7ffffee:27 7ffffef:27 7fffff0:27 3ffffee:26
  3fffffff:30`
  .trim()
  .split(/\s+/)
  .map((entry) => entry.split(':').map((part, i) => parseInt(part, i === 0 ? 16 : 10)) as [number, number]);

/** RFC 7541 Appendix C: Huffman-encoded strings of the examples. */
const HUFFMAN_VECTORS: [string, string][] = [
  ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
  ['no-cache', 'a8eb 1064 9cbf'],
  ['custom-key', '25a8 49e9 5ba9 7d7f'],
  ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
  ['302', '6402'],
  ['307', '640e ff'],
  ['private', 'aec3 771a 4b'],
  ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
  ['https://www.example.com', '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
  ['gzip', '9bd9 ab'],
  ['foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1', '94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07'],
];

describe('HPACK Huffman code (RFC 7541 Appendix B)', () => {
  it('gives every symbol the code and length of the RFC table', () => {
    expect(RFC_CODES).toHaveLength(EOS + 1);
    RFC_CODES.forEach(([code, bits], symbol) => {
      expect({ symbol, code: HUFFMAN_CODES[symbol], bits: HUFFMAN_LENGTHS[symbol] }).toEqual({ symbol, code, bits });
    });
  });

  it('is a complete canonical prefix code: in (length, symbol) order each code follows the previous one', () => {
    const order = [...Array(EOS + 1).keys()].sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
    let kraft = 0;
    let previous = -1;
    let previousBits = 0;
    for (const s of order) {
      const bits = HUFFMAN_LENGTHS[s]!;
      const code = HUFFMAN_CODES[s]!;
      expect(code).toBeLessThan(2 ** bits);
      if (previous >= 0) expect(code).toBe((previous + 1) * 2 ** (bits - previousBits));
      previous = code;
      previousBits = bits;
      kraft += 2 ** -bits;
    }
    expect(HUFFMAN_CODES[order[0]!]).toBe(0);
    expect(kraft).toBe(1);
    expect(HUFFMAN_CODES[EOS]).toBe(2 ** 30 - 1);
  });

  it('encodes and decodes the strings of RFC 7541 Appendix C', () => {
    for (const [text, encoded] of HUFFMAN_VECTORS) {
      expect(huffman(text).toString('hex')).toBe(hex(encoded).toString('hex'));
      expect(huffmanEncodedLength(text)).toBe(hex(encoded).length);
      expect(unhuffman(hex(encoded))).toBe(text);
    }
  });

  it('round-trips any byte string, each symbol alone and random ones (property)', () => {
    for (let b = 0; b < 256; b++) {
      const s = String.fromCharCode(b).repeat(3);
      expect(unhuffman(huffman(s))).toBe(s);
    }
    expect(unhuffman(new Uint8Array(0))).toBe('');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(8), (bytes, offset) => {
        const s = Buffer.from(bytes).toString('latin1');
        const out = new Uint8Array(offset + huffmanEncodedLength(s) + 4);
        const end = huffmanEncode(s, out, offset);
        expect(end - offset).toBe(huffmanEncodedLength(s));
        expect(huffmanDecode(out, offset, end)).toBe(s);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects padding longer than 7 bits, padding that is not 1s, and the EOS symbol', () => {
    // '0' is 00000: one byte with three bits of padding.
    expect(unhuffman(hex('07'))).toBe('0');
    const invalid = [
      ['07ff', 'longer than 7 bits'], // '0' then 11 bits of 1s
      ['ff', 'longer than 7 bits'], // 8 bits of padding and no symbol
      ['06', 'not all 1s'], // '0' then 110
      ['00', 'not all 1s'], // '0' then 000
      ['fe', 'not all 1s'], // the first 7 bits of '!' (11111110|00), cut short: a prefix, not padding
      ['ffffffff', 'EOS'], // 30 1s: EOS itself
      ['07ffffffff', 'EOS'], // '0', then EOS across byte boundaries
      ['ffff ffff 07', 'EOS'],
    ] as const;
    for (const [bytes, reason] of invalid) {
      const attempt = (): string => unhuffman(hex(bytes));
      expect(attempt, bytes).toThrow(HpackError);
      expect(attempt, bytes).toThrow(reason === 'EOS' ? 'EOS' : 'padding');
    }
  });

  it('refuses to encode a string that is not latin1', () => {
    expect(() => huffmanEncodedLength('snow\u2603')).toThrow(RangeError);
    expect(() => new HpackEncoder().encode(fields(['x', '\u0100']))).toThrow(RangeError);
  });
});

describe('HPACK decoder and encoder on the examples of RFC 7541 Appendix C', () => {
  it('has the 61 entries of the static table (Appendix A)', () => {
    expect(STATIC_TABLE).toHaveLength(61);
    const spots: [number, string, string][] = [
      [1, ':authority', ''],
      [2, ':method', 'GET'],
      [8, ':status', '200'],
      [16, 'accept-encoding', 'gzip, deflate'],
      [31, 'content-type', ''],
      [43, 'if-unmodified-since', ''],
      [58, 'user-agent', ''],
      [61, 'www-authenticate', ''],
    ];
    for (const [index, name, value] of spots) {
      expect(STATIC_TABLE[index - 1]).toEqual([name, value]);
      expect(new HpackDecoder().decode(Buffer.from([0x80 | index])).fields).toEqual(fields([name, value]));
    }
  });

  it('C.2: one representation of each kind', () => {
    const cases: [string, HeaderField[], [string, string][]][] = [
      ['400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', fields(['custom-key', 'custom-header']), [['custom-key', 'custom-header']]],
      ['040c 2f73 616d 706c 652f 7061 7468', fields([':path', '/sample/path']), []],
      ['1008 7061 7373 776f 7264 0673 6563 7265 74', [{ name: 'password', value: 'secret', neverIndexed: true }], []],
      ['82', fields([':method', 'GET']), []],
    ];
    for (const [block, expected, table] of cases) {
      const decoder = new HpackDecoder();
      expect(decoder.decode(hex(block))).toEqual({ fields: expected, oversized: false });
      expect(decoder.dynamicTable.entries).toEqual(table);
    }
    expect(new HpackDecoder().dynamicTable.bytes).toBe(0);
    const d = new HpackDecoder();
    d.decode(hex(cases[0]![0]));
    expect(d.dynamicTable.bytes).toBe(55);
  });

  const requests = [
    fields([':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']),
    fields([':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']),
    fields([':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']),
  ];
  const requestTables: [[string, string][], number][] = [
    [[[':authority', 'www.example.com']], 57],
    [[['cache-control', 'no-cache'], [':authority', 'www.example.com']], 110],
    [[['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']], 164],
  ];

  it('C.3: requests without Huffman coding', () => {
    const blocks = [
      '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '8286 84be 5808 6e6f 2d63 6163 6865',
      '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
    ];
    const decoder = new HpackDecoder();
    blocks.forEach((block, i) => {
      expect(decoder.decode(hex(block))).toEqual({ fields: requests[i], oversized: false });
      expect([decoder.dynamicTable.entries, decoder.dynamicTable.bytes]).toEqual(requestTables[i]);
    });
  });

  it('C.4: requests with Huffman coding, decoded, and encoded byte for byte', () => {
    const blocks = [
      '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
      '8286 84be 5886 a8eb 1064 9cbf',
      '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
    ];
    const decoder = new HpackDecoder();
    const encoder = new HpackEncoder();
    blocks.forEach((block, i) => {
      expect(decoder.decode(hex(block))).toEqual({ fields: requests[i], oversized: false });
      expect([decoder.dynamicTable.entries, decoder.dynamicTable.bytes]).toEqual(requestTables[i]);
      expect(encoder.encode(requests[i]!).toString('hex')).toBe(hex(block).toString('hex'));
      expect([encoder.dynamicTable.entries, encoder.dynamicTable.bytes]).toEqual(requestTables[i]);
    });
  });

  const responses = [
    fields([':status', '302'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']),
    fields([':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']),
    fields(
      [':status', '200'],
      ['cache-control', 'private'],
      ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
      ['location', 'https://www.example.com'],
      ['content-encoding', 'gzip'],
      ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
    ),
  ];
  const responseTables: [[string, string][], number][] = [
    [
      [
        ['location', 'https://www.example.com'],
        ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
        ['cache-control', 'private'],
        [':status', '302'],
      ],
      222,
    ],
    [
      [
        [':status', '307'],
        ['location', 'https://www.example.com'],
        ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
        ['cache-control', 'private'],
      ],
      222,
    ],
    [
      [
        ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
        ['content-encoding', 'gzip'],
        ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
      ],
      215,
    ],
  ];

  it('C.5: responses without Huffman coding, with evictions from a 256-byte table', () => {
    const blocks = [
      `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
       2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
      '4803 3330 37c1 c0bf',
      `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
       54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
       5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
    ];
    const decoder = new HpackDecoder({ tableBytesMax: 256 });
    blocks.forEach((block, i) => {
      expect(decoder.decode(hex(block))).toEqual({ fields: responses[i], oversized: false });
      expect([decoder.dynamicTable.entries, decoder.dynamicTable.bytes]).toEqual(responseTables[i]);
    });
  });

  it('C.6: responses with Huffman coding, decoded, and encoded byte for byte after the size update we owe', () => {
    const blocks = [
      `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
       2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
      '4883 640e ffc1 c0bf',
      `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
       77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
       9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
    ];
    const decoder = new HpackDecoder({ tableBytesMax: 256 });
    const encoder = new HpackEncoder();
    encoder.setPeerTableBytesMax(256);
    blocks.forEach((block, i) => {
      expect(decoder.decode(hex(block))).toEqual({ fields: responses[i], oversized: false });
      expect([decoder.dynamicTable.entries, decoder.dynamicTable.bytes]).toEqual(responseTables[i]);
      // The example assumes both ends start at 256; the encoder starts at the protocol's 4096, so it first says
      // 256. And it sends '307' raw, not Huffman-encoded: both take 3 bytes, and raw is cheaper to decode.
      const expected = [`3fe101${hex(block).toString('hex')}`, '4803333037c1c0bf', hex(block).toString('hex')][i];
      expect(encoder.encode(responses[i]!).toString('hex')).toBe(expected);
      expect([encoder.dynamicTable.entries, encoder.dynamicTable.bytes]).toEqual(responseTables[i]);
    });
  });
});

describe('HPACK decoder errors', () => {
  function decodeError(block: string, options?: ConstructorParameters<typeof HpackDecoder>[0]): string {
    try {
      new HpackDecoder(options).decode(hex(block));
    } catch (e) {
      expect(e).toBeInstanceOf(HpackError);
      return (e as Error).message;
    }
    throw new Error(`block ${block} decoded`);
  }

  it('rejects a truncated integer', () => {
    expect(decodeError('ff')).toContain('truncated integer');
    expect(decodeError('ff 80')).toContain('truncated integer');
    expect(decodeError('40 7f 80')).toContain('truncated integer'); // a string length
  });

  it('rejects an integer that overflows or runs on too long', () => {
    expect(decodeError('ff ff ff ff ff 0f')).toContain('exceeds');
    expect(decodeError('ff 80 80 80 80 80 00')).toContain('continuation bytes');
    // The largest accepted integer is 2^31 - 1 (as an index it is merely out of range); one more overflows.
    expect(decodeError('ff 80 ff ff ff 07')).toContain('index 2147483647');
    expect(decodeError('ff 81 ff ff ff 07')).toContain('exceeds');
  });

  it('rejects index 0 and indexes past the tables, for fields and for names', () => {
    expect(decodeError('80')).toContain('index 0');
    expect(decodeError('be')).toContain('index 62');
    expect(decodeError('7e 01 61')).toContain('index 62');
    expect(decodeError('0f 2f 01 61')).toContain('index 62');
    expect(decodeError('400161 0162 bf')).toContain('index 63'); // one dynamic entry: 62 is valid, 63 is not
    expect(new HpackDecoder().decode(hex('400161 0162 be')).fields).toEqual(fields(['a', 'b'], ['a', 'b']));
  });

  it('rejects a string literal that runs past the end or is missing', () => {
    expect(decodeError('40 05 61')).toContain('runs past the end');
    expect(decodeError('41 85 ffff')).toContain('runs past the end');
    expect(decodeError('40')).toContain('truncated string');
    expect(decodeError('04')).toContain('truncated string');
    expect(decodeError('40 01 61')).toContain('truncated string');
  });

  it('never decodes a Huffman string with one bit flipped to the original (negative control)', () => {
    const block = hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'); // C.4.1: bytes 5 to 16 are 'www.example.com'
    const intact = new HpackDecoder().decode(block).fields;
    for (let bit = 5 * 8; bit < block.length * 8; bit++) {
      const corrupted = Buffer.from(block);
      corrupted[bit >>> 3]! ^= 0x80 >>> (bit & 7);
      let decoded: HeaderField[] | undefined;
      try {
        decoded = new HpackDecoder().decode(corrupted).fields;
      } catch (e) {
        expect(e).toBeInstanceOf(HpackError);
      }
      if (decoded !== undefined) expect(decoded, `bit ${bit}`).not.toEqual(intact);
    }
  });

  it('rejects invalid Huffman inside a literal', () => {
    expect(decodeError('41 81 06')).toContain('padding');
    expect(decodeError('41 84 ffffffff')).toContain('EOS');
  });

  it('rejects a size update above SETTINGS_HEADER_TABLE_SIZE, and accepts one up to it', () => {
    expect(decodeError('3f e2 1f')).toContain('exceeds SETTINGS_HEADER_TABLE_SIZE 4096');
    expect(decodeError('3f 82 01', { tableBytesMax: 100 })).toContain('exceeds SETTINGS_HEADER_TABLE_SIZE 100');
    const decoder = new HpackDecoder({ tableBytesMax: 8192 });
    decoder.decode(hex('3f e1 3f'));
    expect(decoder.dynamicTable.maxBytes).toBe(8192);
  });

  it('rejects a size update after a field, and accepts several at the start', () => {
    expect(decodeError('82 20')).toContain('size update after a header field');
    const decoder = new HpackDecoder();
    decoder.decode(hex('400161 0162'));
    expect(decoder.decode(hex('20 3f e1 1f 82'))).toEqual({ fields: fields([':method', 'GET']), oversized: false });
    expect(decoder.dynamicTable).toEqual({ entries: [], bytes: 0, maxBytes: 4096 }); // the 0 emptied it
  });

  it('after lowerTableBytesMax() the next block must open with a size update down to it (RFC 7541 4.2)', () => {
    const decoder = new HpackDecoder();
    decoder.decode(hex('400161 0162')); // a: b, indexed
    decoder.lowerTableBytesMax(0);
    expect(() => decoder.decode(hex('82'))).toThrow('does not open with a dynamic table size update down to SETTINGS_HEADER_TABLE_SIZE 0');
    const next = new HpackDecoder();
    next.decode(hex('400161 0162'));
    next.lowerTableBytesMax(100);
    expect(() => next.decode(hex('3f 82 01'))).toThrow('exceeds SETTINGS_HEADER_TABLE_SIZE 100'); // 127 is still too big
    expect(next.decode(hex('3f 45 82'))).toEqual({ fields: fields([':method', 'GET']), oversized: false });
    expect(next.dynamicTable).toEqual({ entries: [['a', 'b']], bytes: 34, maxBytes: 100 });
    // Once it fits, blocks need no size update; a later one may not exceed the new maximum.
    expect(next.decode(hex('be'))).toEqual({ fields: fields(['a', 'b']), oversized: false });
    expect(() => next.decode(hex('3f 46'))).toThrow('exceeds SETTINGS_HEADER_TABLE_SIZE 100');
    // A peer that shrank its table before we lowered the maximum owes nothing more.
    const early = new HpackDecoder();
    early.decode(hex('20'));
    early.lowerTableBytesMax(0);
    expect(early.decode(hex('82'))).toEqual({ fields: fields([':method', 'GET']), oversized: false });
    expect(() => early.lowerTableBytesMax(1)).toThrow(RangeError);
  });

  it('rejects a bad option', () => {
    expect(() => new HpackDecoder({ tableBytesMax: -1 })).toThrow(RangeError);
    expect(() => new HpackEncoder({ tableBytesMax: 1.5 })).toThrow(RangeError);
    expect(() => new HpackEncoder().setPeerTableBytesMax(2 ** 32)).toThrow(RangeError);
  });
});

describe('HPACK oversized header lists', () => {
  it('marks the list oversized, keeps the fields within the limit, and stays in step with the peer', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder({ headerListBytesMax: 200 });
    const big = fields(['a', 'x'.repeat(60)], ['b', 'y'.repeat(60)], ['c', 'z'.repeat(60)]); // 93 bytes each
    expect(decoder.decode(encoder.encode(big))).toEqual({ fields: big.slice(0, 2), oversized: true });
    expect(decoder.dynamicTable).toEqual(encoder.dynamicTable);
    // The next block refers to all three by index: it decodes right because the table took them all.
    const next = encoder.encode([big[2]!, big[0]!]);
    expect(next).toHaveLength(2);
    expect(decoder.decode(next)).toEqual({ fields: [big[2], big[0]], oversized: false });
    // Exactly at the limit is not oversized.
    expect(new HpackDecoder({ headerListBytesMax: 186 }).decode(new HpackEncoder().encode(big.slice(0, 2))).oversized).toBe(false);
    expect(new HpackDecoder({ headerListBytesMax: 185 }).decode(new HpackEncoder().encode(big.slice(0, 2))).oversized).toBe(true);
  });
});

describe('HPACK encoder', () => {
  const response = fields([':status', '200'], ['content-type', 'application/grpc'], ['grpc-encoding', 'identity']);
  const trailers = fields(['grpc-status', '0'], ['grpc-message', '']);

  it('sends a repeated field as one byte: static matches at once, others from their second time on', () => {
    const encoder = new HpackEncoder();
    const first = encoder.encode(response);
    expect(first[0]).toBe(0x88); // :status 200 is static index 8
    expect(encoder.encode(response)).toEqual(Buffer.from([0x88, 0xbf, 0xbe]));
    expect(encoder.encode(trailers).length).toBeGreaterThan(2);
    expect(encoder.encode(trailers)).toHaveLength(2);
    expect(encoder.encode(response)).toHaveLength(3);
  });

  it('re-sends a block that changed nothing from its cache, and only while the table stands still', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const roundTrip = (list: HeaderField[]): Buffer => {
      const block = encoder.encode(list);
      expect(decoder.decode(block).fields).toEqual(list);
      return block;
    };
    const list: HeaderField[] = [...response, { name: 'x-secret', value: 'kept out of the table', neverIndexed: true }];
    roundTrip(list);
    const second = roundTrip(list);
    const third = roundTrip(list); // from the cache
    expect(third).toEqual(second);
    expect(third).not.toBe(second);
    third.fill(0); // the caller owns what it gets
    expect(roundTrip(list)).toEqual(second);
    // The same array with a field changed in place, or an equal list in new objects.
    list[0] = { name: ':status', value: '404' };
    expect(roundTrip(list)[0]).toBe(0x8d);
    list[0] = { name: ':status', value: '200' };
    expect(roundTrip(list.map((f) => ({ ...f })))).toEqual(second);
    expect(roundTrip([{ ...list[0]!, neverIndexed: true }, ...list.slice(1)])[0]).toBe(0x18); // never indexed, name 8
    // A table change (a new entry, a new size) makes the cached bytes stale.
    roundTrip(fields(['x-new', '1']));
    expect(roundTrip(list)).not.toEqual(second);
    encoder.setPeerTableBytesMax(4000);
    expect(roundTrip(list).subarray(0, 3).toString('hex')).toBe('3f811f'); // the size update comes first
  });

  it('sends never-indexed fields and long values as literals that stay out of the table', () => {
    const encoder = new HpackEncoder();
    const decoder = new HpackDecoder();
    const secret: HeaderField = { name: 'authorization', value: 'Bearer abc', neverIndexed: true };
    const long = { name: 'x-long', value: 'v'.repeat(INDEXED_VALUE_BYTES_MAX + 1) };
    const block = encoder.encode([secret, long]);
    expect(block[0]! & 0xf0).toBe(0x10); // literal never indexed, indexed name (authorization is static 23)
    expect(block[0]! & 0x0f).toBe(0x0f);
    expect(encoder.dynamicTable.entries).toEqual([]);
    expect(decoder.decode(block).fields).toEqual([secret, long]);
    expect(encoder.encode([secret, long]).length).toBe(block.length);
  });

  it('does not index a field larger than the whole table', () => {
    const encoder = new HpackEncoder({ tableBytesMax: 64 });
    const decoder = new HpackDecoder();
    const block = encoder.encode(fields(['k', 'v'.repeat(40)], ['a', 'b']));
    expect(decoder.decode(block).fields).toEqual(fields(['k', 'v'.repeat(40)], ['a', 'b']));
    expect(encoder.dynamicTable.entries).toEqual([['a', 'b']]);
    expect(decoder.dynamicTable).toEqual(encoder.dynamicTable);
  });

  it('signals a table size change at the start of the next block, the smallest first when it went down and up', () => {
    const encoder = new HpackEncoder();
    encoder.encode(fields(['a', 'b']));
    encoder.setPeerTableBytesMax(1000);
    expect(encoder.encode([]).toString('hex')).toBe('3fc907'); // 1000
    expect(encoder.encode([]).toString('hex')).toBe(''); // said once
    encoder.setPeerTableBytesMax(0);
    encoder.setPeerTableBytesMax(4096);
    expect(encoder.dynamicTable.entries).toEqual([]);
    expect(encoder.encode(fields(['a', 'b'])).subarray(0, 4).toString('hex')).toBe('203fe11f'); // 0 then 4096
    encoder.setPeerTableBytesMax(2000);
    encoder.setPeerTableBytesMax(3000);
    expect(encoder.encode([]).toString('hex')).toBe('3fb10f3f9917'); // 2000 (we evicted down to it), then 3000
  });

  it('uses a smaller table of its own, and says so in its first block', () => {
    const encoder = new HpackEncoder({ tableBytesMax: 100 });
    expect(encoder.encode([]).toString('hex')).toBe('3f45');
    encoder.setPeerTableBytesMax(8192); // still held to its own 100
    expect(encoder.encode([]).toString('hex')).toBe('');
  });

  it('round-trips random header lists with random table sizes and size changes (property)', () => {
    const latin1 = fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b).toString('latin1'));
    const name = fc.oneof(fc.constantFrom(':status', ':path', 'content-type', 'grpc-status', 'grpc-message', 'te', 'x-a', 'x-b'), latin1);
    const value = fc.oneof(
      fc.constantFrom('', '0', '200', 'application/grpc', 'trailers', 'gzip, deflate'),
      latin1,
      fc.string({ maxLength: 40 }),
      fc.integer({ min: 200, max: 400 }).map((n) => 'w'.repeat(n)),
    );
    const field = fc.record({ name, value, neverIndexed: fc.boolean() }).map(({ name, value, neverIndexed }) => (neverIndexed ? { name, value, neverIndexed } : { name, value }));
    const step = fc.oneof(
      { weight: 5, arbitrary: fc.array(field, { maxLength: 12 }).map((list) => ({ list })) },
      { weight: 1, arbitrary: fc.nat(5000).map((peerTableBytes) => ({ peerTableBytes })) },
      { weight: 2, arbitrary: fc.constant({ repeat: true }) }, // the previous list again: the encoder's cache
    );
    fc.assert(
      fc.property(fc.nat(6000), fc.nat(6000), fc.array(step, { maxLength: 25 }), (ownBytes, advertised, steps) => {
        const encoder = new HpackEncoder({ tableBytesMax: ownBytes });
        const decoder = new HpackDecoder({ tableBytesMax: advertised });
        encoder.setPeerTableBytesMax(advertised);
        let previous: HeaderField[] = [];
        for (const s of steps) {
          if ('peerTableBytes' in s) {
            encoder.setPeerTableBytesMax(Math.min(s.peerTableBytes, advertised));
            continue;
          }
          const list = 'list' in s ? s.list : previous;
          previous = list;
          const latin1Only = list.map((f) => ({ ...f, value: Buffer.from(f.value, 'latin1').toString('latin1') }));
          expect(decoder.decode(encoder.encode(latin1Only))).toEqual({ fields: latin1Only, oversized: false });
          expect(decoder.dynamicTable).toEqual(encoder.dynamicTable);
        }
      }),
      { numRuns: 300 },
    );
  });
});

// ---- Interoperability with node:http2 (nghttp2) over a raw socket ----

const FRAME_HEADER_BYTES = 9;
const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const TYPE_HEADERS = 0x1;
const TYPE_SETTINGS = 0x4;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
const SETTINGS_HEADER_TABLE_SIZE = 0x1;

function frame(type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/** A raw HTTP/2 server: hands each request's header block to `onRequest` and writes the block it returns as the response. */
interface RawServer {
  port: number;
  close(): Promise<void>;
}

async function rawServer(onRequest: (block: Buffer, streamId: number) => Buffer, onPeerTableBytes: (n: number) => void = () => {}): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let pending = Buffer.alloc(0);
    let prefaceSeen = false;
    let block: Buffer[] = [];
    let blockStream = 0;
    const onFrame = (type: number, flags: number, streamId: number, payload: Buffer): void => {
      if (type === TYPE_SETTINGS && (flags & FLAG_ACK) === 0) {
        for (let i = 0; i + 6 <= payload.length; i += 6) {
          if (payload.readUInt16BE(i) === SETTINGS_HEADER_TABLE_SIZE) onPeerTableBytes(payload.readUInt32BE(i + 2));
        }
        socket.write(Buffer.concat([frame(TYPE_SETTINGS, 0, 0), frame(TYPE_SETTINGS, FLAG_ACK, 0)]));
        return;
      }
      if (type !== TYPE_HEADERS && type !== TYPE_CONTINUATION) return;
      let fragment = payload;
      if (type === TYPE_HEADERS) {
        const padding = flags & FLAG_PADDED ? fragment[0]! : 0;
        if (flags & FLAG_PADDED) fragment = fragment.subarray(1);
        if (flags & FLAG_PRIORITY) fragment = fragment.subarray(5);
        fragment = fragment.subarray(0, fragment.length - padding);
        block = [];
        blockStream = streamId;
      }
      block.push(fragment);
      if (flags & FLAG_END_HEADERS) {
        const response = onRequest(Buffer.concat(block), blockStream);
        socket.write(frame(TYPE_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, blockStream, response));
      }
    };
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (!prefaceSeen) {
        if (pending.length < PREFACE.length) return;
        expect(pending.subarray(0, PREFACE.length).toString('latin1')).toBe(PREFACE);
        pending = pending.subarray(PREFACE.length);
        prefaceSeen = true;
      }
      while (pending.length >= FRAME_HEADER_BYTES) {
        const length = pending.readUIntBE(0, 3);
        if (pending.length < FRAME_HEADER_BYTES + length) break;
        const payload = pending.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length);
        onFrame(pending[3]!, pending[4]!, pending.readUInt32BE(5) & 0x7fff_ffff, payload);
        pending = pending.subarray(FRAME_HEADER_BYTES + length);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

type ResponseHeaders = http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader & { [http2.sensitiveHeaders]?: string[] };

/** A response comes within milliseconds; none by then means the client rejected the block (and said so in a GOAWAY). */
const RESPONSE_TIMEOUT_MS = 2000;

/** Makes the requests one after another on one connection, returning each response's headers. */
async function requestAll(port: number, requests: http2.OutgoingHttpHeaders[], settings: http2.Settings = {}): Promise<ResponseHeaders[]> {
  const client = http2.connect(`http://127.0.0.1:${port}`, { settings });
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  const errors: Error[] = [];
  client.on('error', (e: Error) => errors.push(e));
  const responses: ResponseHeaders[] = [];
  try {
    for (const headers of requests) {
      const stream = client.request(headers, { endStream: true });
      stream.on('error', (e: Error) => errors.push(e));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<[undefined]>((resolve) => (timer = setTimeout(() => resolve([undefined]), RESPONSE_TIMEOUT_MS)));
      const [response] = (await Promise.race([once(stream, 'response'), once(stream, 'close'), timeout])) as [ResponseHeaders | undefined];
      clearTimeout(timer);
      if (response === undefined) {
        client.destroy();
        throw new Error(`no response: ${errors.map((e) => e.message).join('; ') || 'timed out'}`);
      }
      responses.push(response);
      stream.resume();
      await once(stream, 'close');
    }
  } finally {
    client.close();
    await closed;
  }
  return responses;
}

const LONG_VALUE = 'trace-'.repeat(500);
/** The request headers node:http2 is told to send as never indexed. */
const SENSITIVE = ['x-secret'];

function varietyRequest(i: number): http2.OutgoingHttpHeaders {
  return {
    ':method': 'POST',
    ':path': i % 2 === 0 ? '/etcdserverpb.KV/Range' : '/etcdserverpb.KV/Put',
    'content-type': 'application/grpc',
    te: 'trailers',
    'grpc-timeout': `${100 + i}m`,
    'user-agent': 'grpc-node-js/1.14.7',
    'x-request-id': `req-${i}-${'abcdefghij'.repeat(i)}`,
    'x-repeated': 'the same value on every request',
    'x-multi': ['one', `two-${i}`],
    'x-long': i === 1 ? LONG_VALUE : 'short',
    'x-bytes': 'caf\u00e9 \u00ff\u0001',
    'x-secret': `token-${i}`,
    [http2.sensitiveHeaders]: SENSITIVE,
  };
}

/** What the client sent, with the pseudo-headers it adds, as sorted fieldStrings. */
function sentFields(request: http2.OutgoingHttpHeaders, port: number): string[] {
  const out = [`:scheme: http`, `:authority: 127.0.0.1:${port}`];
  for (const [name, value] of Object.entries(request)) {
    const flag = SENSITIVE.includes(name) ? ' (never indexed)' : '';
    for (const v of Array.isArray(value) ? value : [value]) out.push(`${name}: ${String(v)}${flag}`);
  }
  return out.sort();
}

function fieldStrings(list: readonly HeaderField[]): string[] {
  return list.map((f) => `${f.name}: ${f.value}${f.neverIndexed === true ? ' (never indexed)' : ''}`).sort();
}

describe('HPACK interoperability with node:http2', () => {
  it('decodes the header blocks a node:http2 client sends (dynamic table, Huffman, never-indexed)', async () => {
    const decoder = new HpackDecoder();
    const blocks: Buffer[] = [];
    const decoded: HeaderField[][] = [];
    const responder = new HpackEncoder();
    const server = await rawServer((block) => {
      blocks.push(block);
      decoded.push(decoder.decode(block).fields);
      return responder.encode(fields([':status', '200']));
    });
    try {
      const requests = [0, 1, 2, 3, 4].map(varietyRequest);
      await requestAll(server.port, requests);
      expect(decoded).toHaveLength(requests.length);
      requests.forEach((request, i) => {
        expect(fieldStrings(decoded[i]!)).toEqual(sentFields(request, server.port));
      });
      // The client used its dynamic table (a repeat costs far less than the first time)...
      expect(blocks[2]!.length).toBeLessThan(blocks[0]!.length / 2);
      // ...and Huffman: the first block is shorter than the raw strings it carries.
      const rawBytes = decoded[0]!.reduce((n, f) => n + f.name.length + f.value.length, 0);
      expect(blocks[0]!.length).toBeLessThan(rawBytes * 0.85);

      // Negative control: a block with a bit flipped is rejected or decodes to something else (a field, or at least
      // the table, as when a literal turns into one with incremental indexing), so the comparisons above can fail.
      // The rare exceptions are flips to an equivalent representation, such as a name index moving to another
      // static entry with the same name.
      const block = blocks[0]!;
      const decodeWithTable = (b: Buffer): unknown => {
        const d = new HpackDecoder();
        return [fieldStrings(d.decode(b).fields), d.dynamicTable.entries];
      };
      const intact = decodeWithTable(block);
      let rejected = 0;
      let same = 0;
      for (let bit = 0; bit < block.length * 8; bit++) {
        const corrupted = Buffer.from(block);
        corrupted[bit >>> 3]! ^= 0x80 >>> (bit & 7);
        let result: unknown;
        try {
          result = decodeWithTable(corrupted);
        } catch (e) {
          expect(e).toBeInstanceOf(HpackError);
          rejected++;
          continue;
        }
        if (JSON.stringify(result) === JSON.stringify(intact)) same++;
      }
      expect(rejected).toBeGreaterThan(block.length);
      expect(same).toBeLessThanOrEqual(4);
    } finally {
      await server.close();
    }
  });

  it('produces header blocks a node:http2 client decodes, whatever header table size it asks for', async () => {
    const responses = (i: number): HeaderField[] => [
      { name: ':status', value: i === 2 ? '404' : '200' },
      { name: 'content-type', value: 'application/grpc' },
      { name: 'grpc-encoding', value: 'identity' },
      { name: 'x-response', value: `response number ${i}` },
      { name: 'x-repeated', value: 'the same value on every response' },
      { name: 'x-long', value: i === 1 ? 'L'.repeat(INDEXED_VALUE_BYTES_MAX + 100) : 'short' },
      { name: 'x-bytes', value: 'caf\u00e9 \u00ff' },
      { name: 'x-secret', value: `s${i}`, neverIndexed: true },
    ];
    for (const headerTableSize of [undefined, 0, 100, 256, 65536]) {
      const encoder = new HpackEncoder();
      const sent: HeaderField[][] = [];
      const blocks: Buffer[] = [];
      const server = await rawServer(
        () => {
          const list = responses(sent.length);
          sent.push(list);
          blocks.push(encoder.encode(list));
          return blocks[blocks.length - 1]!;
        },
        (n) => encoder.setPeerTableBytesMax(n),
      );
      try {
        const settings = headerTableSize === undefined ? {} : { headerTableSize };
        const got = await requestAll(server.port, [0, 1, 2, 3].map(varietyRequest), settings);
        expect(got).toHaveLength(4);
        got.forEach((headers, i) => {
          const expected = Object.fromEntries(sent[i]!.map((f) => [f.name, f.name === ':status' ? Number(f.value) : f.value]));
          expect(Object.fromEntries(Object.entries(headers))).toEqual(expected);
          expect(headers[http2.sensitiveHeaders]).toEqual(['x-secret']);
        });
        if ((headerTableSize ?? 4096) >= 4096) expect(blocks[3]!.length).toBeLessThan(blocks[0]!.length / 2);
      } finally {
        await server.close();
      }
    }
  });
});
