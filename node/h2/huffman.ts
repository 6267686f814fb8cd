// The HPACK Huffman code (RFC 7541 section 5.2 and Appendix B), for the strings of header fields.
//
// Strings are latin1 JS strings: one char per byte (0-255), so they pass any byte through unchanged and a
// string's length is its byte length. The code is canonical: codes of one length are consecutive in symbol
// order and each length starts where the previous one ended, doubled, so the code lengths alone define it.
//
// Decoding walks a byte at a time through a table built once at module load: one state per internal node of
// the code tree (256 of them for 257 symbols), and for each state and input byte the state reached, the symbols
// completed on the way (at most two, as no code is shorter than 5 bits) and whether EOS was met.

/** Raised for bytes that are not valid HPACK; the connection answers with a COMPRESSION_ERROR. */
export class HpackError extends Error {
  constructor(message: string) {
    super(`malformed HPACK: ${message}`);
    this.name = 'HpackError';
  }
}

/** The end-of-string symbol: only its leading 1s may appear, as padding; the symbol itself is an error. */
export const EOS = 256;
const SYMBOLS = 257;
/** Longest code (the rarest bytes and EOS). */
const CODE_BITS_MAX = 30;
/** Padding is the start of EOS, at most 7 bits: just enough to reach the next byte boundary. */
const PADDING_BITS_MAX = 7;

/**
 * Code length of each symbol, as RFC 7541 Appendix B gives it: `[bits, symbols]`, where symbols are single
 * values or inclusive ranges.
 */
const CODE_LENGTHS: readonly (readonly [number, string])[] = [
  [5, '48-50 97 99 101 105 111 115 116'],
  [6, '32 37 45-47 51-57 61 65 95 98 100 102-104 108-110 112 114 117'],
  [7, '58 66-87 89 106 107 113 118-122'],
  [8, '38 42 44 59 88 90'],
  [10, '33 34 40 41 63'],
  [11, '39 43 124'],
  [12, '35 62'],
  [13, '0 36 64 91 93 126'],
  [14, '94 125'],
  [15, '60 96 123'],
  [19, '92 195 208'],
  [20, '128 130 131 162 184 194 224 226'],
  [21, '153 161 167 172 176 177 179 209 216 217 227 229 230'],
  [22, '129 132-134 136 146 154 156 160 163 164 169 170 173 178 181 185-187 189 190 196 198 228 232 233'],
  [23, '1 135 137-141 143 147 149-152 155 157 158 165 166 168 174 175 180 182 183 188 191 197 231 239'],
  [24, '9 142 144 145 148 159 171 206 215 225 236 237'],
  [25, '199 207 234 235'],
  [26, '192 193 200-202 205 210 213 218 219 238 240 242 243 255'],
  [27, '203 204 211 212 214 221-223 241 244-248 250-254'],
  [28, '2-8 11 12 14-21 23-31 127 220 249'],
  [30, '10 13 22 256'],
];

/** Bits of each symbol's code. */
export const HUFFMAN_LENGTHS: Uint8Array = buildLengths();
/** Each symbol's code, right-aligned. */
export const HUFFMAN_CODES: Uint32Array = buildCodes(HUFFMAN_LENGTHS);

function buildLengths(): Uint8Array {
  const lengths = new Uint8Array(SYMBOLS);
  for (const [bits, spec] of CODE_LENGTHS) {
    for (const part of spec.split(' ')) {
      const [first, last = first] = part.split('-').map(Number);
      for (let s = first!; s <= last!; s++) lengths[s] = bits;
    }
  }
  if (lengths.includes(0)) throw new Error('HPACK Huffman table: a symbol has no code length');
  return lengths;
}

/** Canonical codes: in (length, symbol) order, each code is the previous plus one, shifted left on longer lengths. */
function buildCodes(lengths: Uint8Array): Uint32Array {
  const codes = new Uint32Array(SYMBOLS);
  let code = 0;
  for (let bits = 1; bits <= CODE_BITS_MAX; bits++) {
    for (let s = 0; s < SYMBOLS; s++) if (lengths[s] === bits) codes[s] = code++;
    code *= 2;
  }
  return codes;
}

// ---- Encoding ----

/** Bytes `s` (latin1) takes Huffman-encoded, padding included. Throws RangeError on a char above 0xff. */
export function huffmanEncodedLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`header string is not latin1: char ${c} at ${i}`);
    bits += HUFFMAN_LENGTHS[c]!;
  }
  return (bits + 7) >>> 3;
}

/**
 * Writes `s` (latin1, already checked by huffmanEncodedLength) Huffman-encoded into `out` at `pos`, padded with
 * the leading 1s of EOS, and returns the position after it.
 */
export function huffmanEncode(s: string, out: Uint8Array, pos: number): number {
  // `pending` holds fewer than 8 bits between symbols; adding a code of up to 24 bits keeps it within 31 bits,
  // so longer codes go in as two halves.
  let pending = 0;
  let pendingBits = 0;
  let p = pos;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const code = HUFFMAN_CODES[c]!;
    const bits = HUFFMAN_LENGTHS[c]!;
    if (bits > 24) {
      pending = (pending << (bits - 16)) | (code >>> 16);
      pendingBits += bits - 16;
      while (pendingBits >= 8) out[p++] = pending >>> (pendingBits -= 8);
      pending &= (1 << pendingBits) - 1;
      pending = (pending << 16) | (code & 0xffff);
      pendingBits += 16;
    } else {
      pending = (pending << bits) | code;
      pendingBits += bits;
    }
    while (pendingBits >= 8) out[p++] = pending >>> (pendingBits -= 8);
    pending &= (1 << pendingBits) - 1;
  }
  if (pendingBits > 0) out[p++] = (pending << (8 - pendingBits)) | (0xff >>> pendingBits);
  return p;
}

// ---- Decoding ----

/** The code tree's internal nodes, root first: 256 for 257 symbols, so a state fits a byte. */
const STATES = 256;
/** Transition entry: next state in bits 0-7, first symbol in 8-15, second in 16-23, then these flags. */
const EMITS_ONE = 1 << 24;
const EMITS_TWO = 1 << 25;
const FAILS = 1 << 26;

interface Tree {
  /** For node n and bit b, `child[2n + b]`: an internal node (>= 0) or a symbol s as `-1 - s`. */
  child: Int16Array;
  /** Whether ending a string at this node is valid padding: at most 7 bits, all of them 1s. */
  acceptsEnd: Uint8Array;
}

function buildTree(): Tree {
  const child = new Int16Array(STATES * 2).fill(0);
  const depth = new Uint8Array(STATES);
  const allOnes = new Uint8Array(STATES).fill(1);
  let nodes = 1;
  for (let s = 0; s < SYMBOLS; s++) {
    const bits = HUFFMAN_LENGTHS[s]!;
    const code = HUFFMAN_CODES[s]!;
    let node = 0;
    for (let i = bits - 1; i > 0; i--) {
      const b = (code >>> i) & 1;
      let next = child[node * 2 + b]!;
      if (next === 0) {
        next = nodes++;
        child[node * 2 + b] = next;
        depth[next] = depth[node]! + 1;
        allOnes[next] = allOnes[node]! & b;
      }
      node = next;
    }
    child[node * 2 + (code & 1)] = -1 - s;
  }
  if (nodes !== STATES) throw new Error(`HPACK Huffman table: ${nodes} internal nodes`);
  const acceptsEnd = new Uint8Array(STATES);
  for (let n = 0; n < STATES; n++) acceptsEnd[n] = allOnes[n]! && depth[n]! <= PADDING_BITS_MAX ? 1 : 0;
  return { child, acceptsEnd };
}

function buildTransitions(tree: Tree): Uint32Array {
  const table = new Uint32Array(STATES * 256);
  for (let state = 0; state < STATES; state++) {
    for (let byte = 0; byte < 256; byte++) table[state * 256 + byte] = transition(tree, state, byte);
  }
  return table;
}

function transition(tree: Tree, state: number, byte: number): number {
  let node = state;
  let emitted = 0;
  let symbols = 0;
  for (let i = 7; i >= 0; i--) {
    const next = tree.child[node * 2 + ((byte >>> i) & 1)]!;
    if (next >= 0) {
      node = next;
      continue;
    }
    const symbol = -1 - next;
    if (symbol === EOS) return FAILS;
    symbols |= symbol << (8 * emitted++);
    node = 0;
  }
  const flags = emitted === 0 ? 0 : emitted === 1 ? EMITS_ONE : EMITS_TWO;
  return flags | (symbols << 8) | node;
}

const TREE = buildTree();
const TRANSITIONS = buildTransitions(TREE);
const ACCEPTS_END = TREE.acceptsEnd;

/** Decoded bytes, reused: a string of n bytes decodes to at most 8n/5 bytes (5 bits being the shortest code). */
let scratch = Buffer.allocUnsafe(1024);

/** Decodes the Huffman-encoded bytes `buf[start, end)` into a latin1 string. Throws HpackError if invalid. */
export function huffmanDecode(buf: Uint8Array, start: number, end: number): string {
  const most = Math.ceil(((end - start) * 8) / 5);
  if (scratch.length < most) scratch = Buffer.allocUnsafe(Math.max(most, scratch.length * 2));
  const out = scratch;
  let n = 0;
  let state = 0;
  for (let i = start; i < end; i++) {
    const t = TRANSITIONS[(state << 8) | buf[i]!]!;
    if (t >= EMITS_ONE) {
      if (t & FAILS) throw new HpackError('EOS symbol inside a Huffman-encoded string');
      out[n++] = t >>> 8;
      if (t & EMITS_TWO) out[n++] = t >>> 16;
    }
    state = t & 0xff;
  }
  if (ACCEPTS_END[state] === 0) throw new HpackError('Huffman padding longer than 7 bits or not all 1s');
  return out.toString('latin1', 0, n);
}
