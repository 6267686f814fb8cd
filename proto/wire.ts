// Protobuf's wire format by hand, for the few hot messages where protobufjs's object conversions cost more than
// the encoding itself: the peer transport's batches of Raft messages (node/transport/batch-codec.ts), watch
// responses shared by many watchers (node/api/watch-wire.ts), and KV.Put's request and response and KV.Range's
// response (proto/kv-wire.ts). Everything else goes through protobufjs.
//
// Numbers are JS numbers, exact up to 2^53 - 1: Raft's ids, terms and indexes stay below that (node/ids.ts), and
// the reader says so when a value does not (UNSAFE) rather than rounding it.

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LENGTH_DELIMITED = 2;
export const WIRE_FIXED32 = 5;

/** What ProtoReader.uint returns for a varint above Number.MAX_SAFE_INTEGER (a negative int32 among them). */
export const UNSAFE = -1;

/** Longest varint: 64 bits in 7-bit groups. */
const VARINT_BYTES_MAX = 10;
const TWO_POW_31 = 0x8000_0000;
/** Largest tag: field number 2^29 - 1, wire type 7. */
const TAG_MAX = 0xffff_ffff;

/** Bytes that cannot be protobuf (truncated, a varint too long, a group, a length past the end). */
export class ProtoWireError extends Error {
  constructor(message: string) {
    super(`malformed protobuf: ${message}`);
    this.name = 'ProtoWireError';
  }
}

function checkUint(v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`not a safe non-negative integer: ${v}`);
}

/** Bytes the varint of `v` (a safe non-negative integer) takes. */
export function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x20_0000) return 3;
  if (v < 0x1000_0000) return 4;
  let n = 4;
  for (let rest = Math.floor(v / 0x1000_0000); rest > 0; rest = Math.floor(rest / 0x80)) n++;
  return n;
}

/** Bytes the varint of an unsigned 64-bit value given as its 32-bit halves takes (what uint64Bits writes). */
export function varint64Size(low: number, high: number): number {
  let n = 1;
  for (let lo = low >>> 0, hi = high >>> 0; hi !== 0 || lo >= 0x80; n++) {
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  return n;
}

/** Bytes of a varint field (tag below 16, so one byte) that is left out when 0, as proto3 does. */
export function uintFieldSize(v: number): number {
  return v === 0 ? 0 : 1 + varintSize(v);
}

/** Bytes of a length-delimited field (tag below 16) whose body is `length` bytes. */
export function lengthDelimitedSize(length: number): number {
  return 1 + varintSize(length) + length;
}

/** A growable buffer of protobuf fields. Sized right at construction, it never copies. */
export class ProtoWriter {
  private buf: Buffer;
  private len = 0;

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(Math.max(capacity, 16));
  }

  get length(): number {
    return this.len;
  }

  tag(field: number, wireType: number): void {
    this.uint(field * 8 + wireType);
  }

  /** A varint of a safe non-negative integer. */
  uint(v: number): void {
    checkUint(v);
    this.ensure(VARINT_BYTES_MAX);
    let n = v;
    while (n >= TWO_POW_31) {
      this.buf[this.len++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    while (n >= 0x80) {
      this.buf[this.len++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.buf[this.len++] = n;
  }

  /** A varint of an unsigned 64-bit value (a negative int64 arrives here as its two's complement). */
  uint64(v: bigint): void {
    this.ensure(VARINT_BYTES_MAX);
    let n = v;
    while (n >= 0x80n) {
      this.buf[this.len++] = Number(n & 0x7fn) | 0x80;
      n >>= 7n;
    }
    this.buf[this.len++] = Number(n);
  }

  /** A varint of an unsigned 64-bit value given as its two 32-bit halves (a Long's bits): no bigint arithmetic. */
  uint64Bits(low: number, high: number): void {
    this.ensure(VARINT_BYTES_MAX);
    let lo = low >>> 0;
    let hi = high >>> 0;
    while (hi !== 0 || lo >= 0x80) {
      this.buf[this.len++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.buf[this.len++] = lo;
  }

  /** A varint field, left out when 0 (proto3's default). */
  uintField(field: number, v: number): void {
    if (v === 0) return;
    this.tag(field, WIRE_VARINT);
    this.uint(v);
  }

  /** A varint field of an unsigned 64-bit value, written even when 0. */
  uint64Field(field: number, v: bigint): void {
    this.tag(field, WIRE_VARINT);
    this.uint64(v);
  }

  /** A bool field, left out when false. */
  boolField(field: number, v: boolean): void {
    if (!v) return;
    this.tag(field, WIRE_VARINT);
    this.uint(1);
  }

  /** A bytes (or embedded message) field, written even when empty: the caller decides what to leave out. */
  bytesField(field: number, b: Uint8Array): void {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.uint(b.length);
    this.raw(b);
  }

  /** A bytes field, left out when empty. */
  nonEmptyBytesField(field: number, b: Uint8Array): void {
    if (b.length > 0) this.bytesField(field, b);
  }

  /** A packed repeated uint64 field, left out when empty. */
  packedUintField(field: number, values: readonly number[]): void {
    if (values.length === 0) return;
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.uint(packedUintSize(values));
    for (const v of values) this.uint(v);
  }

  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  finish(): Buffer {
    // Sized right, the buffer is the message: a view of it would be one more object per message.
    return this.len === this.buf.length ? this.buf : this.buf.subarray(0, this.len);
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
}

/** Body bytes of a packed repeated uint64 field. */
export function packedUintSize(values: readonly number[]): number {
  let n = 0;
  for (const v of values) n += varintSize(v);
  return n;
}

/** Reads fields from `buf[pos, end)`. Length-delimited values are views of `buf`, not copies. */
export class ProtoReader {
  private pos: number;
  /** Where the last varint uint() read started (lastVarint64 reads it again). */
  private varintAt = 0;

  constructor(
    private readonly buf: Uint8Array,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.pos = start;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** The next field's tag: its field number is `tag >>> 3` and its wire type `tag & 7`. */
  tag(): number {
    const t = this.uint();
    if (t < 8 || t > TAG_MAX) throw new ProtoWireError(`bad field tag ${t}`);
    return t;
  }

  /** A varint as an exact number, or UNSAFE when it is above Number.MAX_SAFE_INTEGER. */
  uint(): number {
    const buf = this.buf;
    if (this.pos >= this.end) throw new ProtoWireError('truncated varint');
    this.varintAt = this.pos;
    const first = buf[this.pos++]!;
    if (first < 0x80) return first;
    let value = first & 0x7f;
    let scale = 0x80;
    for (let i = 1; i < VARINT_BYTES_MAX; i++) {
      if (this.pos >= this.end) throw new ProtoWireError('truncated varint');
      const b = buf[this.pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value <= Number.MAX_SAFE_INTEGER ? value : UNSAFE;
      scale *= 0x80;
    }
    throw new ProtoWireError('varint longer than 10 bytes');
  }

  /** How many bytes the varint uint() just read took. */
  lastVarintBytes(): number {
    return this.pos - this.varintAt;
  }

  /** The varint uint() just read, as its low 64 bits: for the values it answers UNSAFE for. */
  lastVarint64(): bigint {
    let value = 0n;
    for (let i = 0, at = this.varintAt; i < VARINT_BYTES_MAX && at < this.end; i++, at++) {
      const b = this.buf[at]!;
      value |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (b < 0x80) break;
    }
    return BigInt.asUintN(64, value);
  }

  /** A length-delimited value: a view of the buffer. */
  bytes(): Uint8Array {
    const n = this.uint();
    if (n === UNSAFE || n > this.end - this.pos) throw new ProtoWireError(`length ${n} runs past the end`);
    const start = this.pos;
    this.pos += n;
    return this.buf.subarray(start, this.pos);
  }

  /** A length-delimited value read as a reader of its own. */
  nested(): ProtoReader {
    const b = this.bytes();
    return new ProtoReader(b);
  }

  /** Pass over a field this reader does not know, as protobuf requires. */
  skip(wireType: number): void {
    if (wireType === WIRE_VARINT) this.uint();
    else if (wireType === WIRE_LENGTH_DELIMITED) this.bytes();
    else if (wireType === WIRE_FIXED64) this.advance(8);
    else if (wireType === WIRE_FIXED32) this.advance(4);
    else throw new ProtoWireError(`unsupported wire type ${wireType}`);
  }

  /** Repeated uint64 values, packed (one length-delimited field) or not (one varint per field). */
  uints(wireType: number, into: number[]): void {
    if (wireType === WIRE_VARINT) {
      into.push(this.uint());
      return;
    }
    expectWireType(wireType, WIRE_LENGTH_DELIMITED);
    const packed = this.nested();
    while (!packed.done()) into.push(packed.uint());
  }

  private advance(n: number): void {
    if (n > this.end - this.pos) throw new ProtoWireError('truncated fixed-width value');
    this.pos += n;
  }
}

export function expectWireType(actual: number, expected: number): void {
  if (actual !== expected) throw new ProtoWireError(`wire type ${actual} where ${expected} was expected`);
}
