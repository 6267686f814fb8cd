// What a Raft entry carries to the state machine: one command, encoded once by the proposer and decoded
// identically by every member. The codec is a small tagged binary format for plain data (no JSON: bytes and
// bigints survive as they are, and numbers keep their exact float64 bits).
//
//   tag u8 | payload
//   0 undefined  1 null  2 false  3 true  4 f64  5 i64 (bigint)  6 utf-8 string  7 bytes  8 array  9 object
//   strings, bytes: u32 length + data; arrays: u32 count + values; objects: u32 count + (string key, value)*
//
// A command that is a plain put (most of them) has a fixed layout of its own, tag 10 (PUT_COMMAND), which decodes
// to the same object the general form would: see encodePutCommand.
import { assert } from '../raft/errors.js';
import type { AuthOp, CommandAuth } from './auth/ops.js';
import type { DeleteRangeRequest, PutRequest, TxnRequest } from './mvcc/types.js';

export type Value = undefined | null | boolean | number | bigint | string | Uint8Array | Value[] | { [k: string]: Value };

/** A command larger than this is refused at the proposer (etcd's 1.5 MiB request limit plus framing). */
export const COMMAND_BYTES_MAX = 2 * 1024 * 1024;
const NESTING_MAX = 64;

export type Op =
  | { readonly put: PutRequest }
  | { readonly deleteRange: DeleteRangeRequest }
  | { readonly txn: TxnRequest }
  | { readonly compact: { readonly revision: number } }
  | { readonly leaseGrant: { readonly id: bigint; readonly ttlSeconds: number } }
  | { readonly leaseRevoke: { readonly id: bigint } }
  | { readonly leaseCheckpoint: { readonly checkpoints: ReadonlyArray<{ readonly id: bigint; readonly remainingTtlMs: number }> } }
  | { readonly alarm: { readonly action: 'activate' | 'deactivate'; readonly alarm: AlarmType } }
  /** A member publishes its name and client URLs once it serves (as etcd's publish). */
  | { readonly memberAttributes: { readonly id: number; readonly name: string; readonly clientUrls: readonly string[] } }
  /** MemberUpdate: new peer URLs for a member. */
  | { readonly memberUpdate: { readonly id: number; readonly peerUrls: readonly string[] } }
  /** Users, roles, permissions, enabling auth and token assignment (storage/auth/ops.ts). */
  | AuthOp;

export type AlarmType = 'NOSPACE' | 'CORRUPT';

type KeysOf<T> = T extends unknown ? keyof T : never;
/** Which command an entry carried: 'put', 'leaseGrant', ... */
export type OpKind = KeysOf<Op>;

export function opKind(op: Op): OpKind {
  return Object.keys(op)[0] as OpKind;
}

export interface Command {
  /** The proposer's hybrid logical clock when it proposed this command. */
  readonly hlc: bigint;
  /** Exactly-once: a client id and its sequence number (both or neither). */
  readonly clientId?: string;
  readonly seq?: number;
  /** A client request's requester and the auth revision the API checked it at (storage/auth/authorize.ts). */
  readonly auth?: CommandAuth;
  readonly op: Op;
}

export function encodeCommand(c: Command): Uint8Array {
  const out = encodePutCommand(c) ?? encodeValue(c as unknown as Value);
  assert(out.byteLength <= COMMAND_BYTES_MAX, () => `command of ${out.byteLength} bytes exceeds ${COMMAND_BYTES_MAX}`);
  return out;
}

export function decodeCommand(data: Uint8Array): Command {
  if (data[0] === PUT_COMMAND) return decodePutCommand(data);
  const r = new Reader(data);
  const v = r.value(0);
  assert(r.done(), () => `command has ${data.byteLength - r.offset} trailing bytes`);
  assert(typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array), 'command is not an object');
  const c = v as unknown as Command;
  assert(typeof c.hlc === 'bigint' && typeof c.op === 'object', 'command lacks hlc or op');
  return c;
}

export function encodeValue(v: Value): Uint8Array {
  const w = new Writer();
  try {
    w.value(v, 0);
    return w.finish();
  } finally {
    w.release();
  }
}

export function decodeValue(data: Uint8Array): Value {
  const r = new Reader(data);
  const v = r.value(0);
  assert(r.done(), 'trailing bytes after value');
  return v;
}

/**
 * Writers encode into one shared scratch buffer and copy the result out once: a fresh 256-byte buffer per command,
 * grown by doubling, cost three off-heap allocations and two copies for a typical put. The scratch is taken for
 * the length of one synchronous encode; a nested encode (none today) would get a buffer of its own.
 */
const SCRATCH_BYTES_INITIAL = 64 * 1024;
const SCRATCH_BYTES_KEPT_MAX = 1024 * 1024;
let scratch: Uint8Array | undefined = new Uint8Array(SCRATCH_BYTES_INITIAL);

class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;
  private readonly ownsScratch: boolean;

  constructor() {
    this.ownsScratch = scratch !== undefined;
    this.buf = scratch ?? new Uint8Array(256);
    scratch = undefined;
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.byteLength) return;
    let size = this.buf.byteLength * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** The encoded bytes, copied out. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  /** Give the scratch buffer back for the next writer (a buffer grown too large is dropped). */
  release(): void {
    if (this.ownsScratch) scratch = this.buf.byteLength <= SCRATCH_BYTES_KEPT_MAX ? this.buf : new Uint8Array(SCRATCH_BYTES_INITIAL);
  }

  private u8(v: number): void {
    this.ensure(1);
    this.buf[this.len++] = v;
  }

  private u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.len, v);
    this.len += 4;
  }

  private bytes(b: Uint8Array): void {
    this.u32(b.byteLength);
    this.ensure(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }

  value(v: Value, depth: number): void {
    assert(depth <= NESTING_MAX, 'value nested too deeply');
    if (v === undefined) return this.u8(0);
    if (v === null) return this.u8(1);
    if (typeof v === 'boolean') return this.u8(v ? 3 : 2);
    if (typeof v === 'number') {
      this.u8(4);
      this.ensure(8);
      this.view.setFloat64(this.len, v);
      this.len += 8;
      return;
    }
    if (typeof v === 'bigint') {
      this.u8(5);
      this.ensure(8);
      this.view.setBigInt64(this.len, v);
      this.len += 8;
      return;
    }
    if (typeof v === 'string') {
      this.u8(6);
      return this.bytes(UTF8.encode(v));
    }
    if (v instanceof Uint8Array) {
      this.u8(7);
      return this.bytes(v);
    }
    if (Array.isArray(v)) {
      this.u8(8);
      this.u32(v.length);
      for (const x of v) this.value(x, depth + 1);
      return;
    }
    // Absent optional fields are left out, so an object encodes the same whether a field is missing or undefined.
    // The count is written once the fields are (no key arrays per object: a put has five objects).
    this.u8(9);
    this.ensure(4);
    const countAt = this.len;
    this.len += 4;
    let count = 0;
    for (const k in v) {
      const x = v[k];
      if (x === undefined || !Object.hasOwn(v, k)) continue;
      this.bytes(encodedKey(k));
      this.value(x, depth + 1);
      count++;
    }
    this.view.setUint32(countAt, count);
  }

}

// Shared: constructing a TextEncoder or TextDecoder per string cost more than the encoding itself.
const UTF8 = new TextEncoder();
const UTF8_STRICT = new TextDecoder('utf-8', { fatal: true });

/** Object keys come from a small vocabulary (field names); their bytes are made once. */
const KEY_CACHE_ENTRIES_MAX = 1024;
const KEY_CACHE_LENGTH_MAX = 64;
const keyBytes = new Map<string, Uint8Array>();

function encodedKey(k: string): Uint8Array {
  const cached = keyBytes.get(k);
  if (cached !== undefined) return cached;
  const b = UTF8.encode(k);
  if (k.length <= KEY_CACHE_LENGTH_MAX && keyBytes.size < KEY_CACHE_ENTRIES_MAX) keyBytes.set(k, b);
  return b;
}

/**
 * Short ASCII strings (every field name) are looked up by a hash of their bytes, checked byte for byte, so decoding
 * a command's dozen field names makes no new strings; anything else is decoded strictly as UTF-8.
 */
const decodedText = new Map<number, string>();

function decodeText(buf: Uint8Array, at: number, n: number): string {
  if (n > KEY_CACHE_LENGTH_MAX) return UTF8_STRICT.decode(buf.subarray(at, at + n));
  let h = 0x811c9dc5 ^ n; // FNV-1a over the bytes, seeded with the length
  for (let i = at; i < at + n; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  const known = decodedText.get(h);
  if (known !== undefined && sameLatin1(known, buf, at, n)) return known;
  let s = '';
  for (let i = at; i < at + n; i++) {
    const c = buf[i]!;
    if (c >= 0x80) return UTF8_STRICT.decode(buf.subarray(at, at + n));
    s += String.fromCharCode(c);
  }
  if (known === undefined && decodedText.size < KEY_CACHE_ENTRIES_MAX) decodedText.set(h, s);
  return s;
}

function sameLatin1(s: string, buf: Uint8Array, at: number, n: number): boolean {
  if (s.length !== n) return false;
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) !== buf[at + i]) return false;
  return true;
}

class Reader {
  offset = 0;
  private readonly view: DataView;
  /**
   * The buffer's length, read once: need() runs for every value, and byteLength is a getter that V8 does not
   * inline when buffers of two classes (a Uint8Array from the leader's own proposal, a Buffer from the network)
   * pass through here, which made the checks a sixth of decoding a put.
   */
  private readonly end: number;

  constructor(private readonly buf: Uint8Array) {
    this.end = buf.byteLength;
    this.view = new DataView(buf.buffer, buf.byteOffset, this.end);
  }

  done(): boolean {
    return this.offset === this.end;
  }

  private need(n: number): void {
    // A plain test first: assert's message closure would be allocated on every call of this hot path.
    if (this.offset + n > this.end) assert(false, `truncated value at byte ${this.offset}`);
  }

  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.offset);
    this.offset += 4;
    return v;
  }

  private bytes(): Uint8Array {
    const n = this.u32();
    this.need(n);
    const b = this.buf.slice(this.offset, this.offset + n);
    this.offset += n;
    return b;
  }

  /** A string's bytes, decoded in place (no copy: the bytes are not kept). */
  private text(): string {
    const n = this.u32();
    this.need(n);
    const s = decodeText(this.buf, this.offset, n);
    this.offset += n;
    return s;
  }

  value(depth: number): Value {
    assert(depth <= NESTING_MAX, 'value nested too deeply');
    this.need(1);
    const tag = this.buf[this.offset++]!;
    switch (tag) {
      case 0:
        return undefined;
      case 1:
        return null;
      case 2:
        return false;
      case 3:
        return true;
      case 4: {
        this.need(8);
        const v = this.view.getFloat64(this.offset);
        this.offset += 8;
        return v;
      }
      case 5: {
        this.need(8);
        const v = this.view.getBigInt64(this.offset);
        this.offset += 8;
        return v;
      }
      case 6:
        return this.text();
      case 7:
        return this.bytes();
      case 8: {
        const n = this.u32();
        const out: Value[] = [];
        for (let i = 0; i < n; i++) out.push(this.value(depth + 1));
        return out;
      }
      case 9: {
        const n = this.u32();
        const out: { [k: string]: Value } = {};
        for (let i = 0; i < n; i++) {
          const k = this.text();
          assert(k !== '__proto__', 'forbidden key in value');
          out[k] = this.value(depth + 1);
        }
        return out;
      }
      default:
        assert(false, () => `unknown value tag ${tag} at byte ${this.offset - 1}`);
    }
  }
}

// ---- a put's own layout
//
//   10 | hlc i64 | flags u8 | key: u32 length + bytes | value: u32 length + bytes
//      | lease i64 (LEASE) | clientId: u32 length + utf-8, seq f64 (IDENTITY) | auth: a general value (AUTH)
//
// Why: the general form writes and reads every field name and walks objects key by key; for a put that was ~6 us
// of the leader's propose and ~3 us of every member's apply at 1,000 puts in flight (thirty-fifth session). Only a
// command the general form would decode to exactly the same object takes this form: the put's flags absent or
// true (a `false` is kept by the general form, so such a put goes that way), clientId and seq both present or both
// absent, and no other fields. Members older than this layout refuse it ("unknown value tag 10").
const PUT_COMMAND = 10;
const PUT_FLAG_LEASE = 1;
const PUT_FLAG_PREV_KV = 2;
const PUT_FLAG_IGNORE_VALUE = 4;
const PUT_FLAG_IGNORE_LEASE = 8;
const PUT_FLAG_IDENTITY = 16;
const PUT_FLAG_AUTH = 32;
const PUT_FLAGS_ALL = 63;
const COMMAND_FIELDS = new Set(['hlc', 'clientId', 'seq', 'auth', 'op']);
const PUT_OP_FIELDS = new Set(['put']);
const PUT_FIELDS = new Set(['key', 'value', 'lease', 'prevKv', 'ignoreValue', 'ignoreLease']);

/** Whether every own, defined field of `o` is one of `names`. */
function onlyFields(o: object, names: ReadonlySet<string>): boolean {
  for (const k in o) if (Object.hasOwn(o, k) && (o as Record<string, unknown>)[k] !== undefined && !names.has(k)) return false;
  return true;
}

/** A flag that is absent or true (false would decode differently from the general form). */
function flagOf(v: boolean | undefined, bit: number): number | undefined {
  if (v === undefined) return 0;
  return v === true ? bit : undefined;
}

/** The put layout of `c`, or undefined when `c` is not a plain put (then the general form is used). */
function encodePutCommand(c: Command): Uint8Array | undefined {
  const op = c.op as { readonly put?: PutRequest };
  const put = op.put;
  if (put === undefined || typeof c.hlc !== 'bigint' || !onlyFields(op, PUT_OP_FIELDS) || !onlyFields(c, COMMAND_FIELDS) || !onlyFields(put, PUT_FIELDS)) return undefined;
  if (!(put.key instanceof Uint8Array) || !(put.value instanceof Uint8Array)) return undefined;
  if (put.lease !== undefined && typeof put.lease !== 'bigint') return undefined;
  const hasIdentity = c.clientId !== undefined;
  if (hasIdentity !== (c.seq !== undefined) || (hasIdentity && (typeof c.clientId !== 'string' || typeof c.seq !== 'number'))) return undefined;
  const prevKv = flagOf(put.prevKv, PUT_FLAG_PREV_KV);
  const ignoreValue = flagOf(put.ignoreValue, PUT_FLAG_IGNORE_VALUE);
  const ignoreLease = flagOf(put.ignoreLease, PUT_FLAG_IGNORE_LEASE);
  if (prevKv === undefined || ignoreValue === undefined || ignoreLease === undefined) return undefined;
  const clientId = hasIdentity ? UTF8.encode(c.clientId) : undefined;
  const auth = c.auth === undefined ? undefined : encodeValue(c.auth as unknown as Value);
  const flags =
    (put.lease !== undefined ? PUT_FLAG_LEASE : 0) | prevKv | ignoreValue | ignoreLease | (hasIdentity ? PUT_FLAG_IDENTITY : 0) | (auth !== undefined ? PUT_FLAG_AUTH : 0);
  const size =
    1 + 8 + 1 + 4 + put.key.byteLength + 4 + put.value.byteLength + (put.lease !== undefined ? 8 : 0) + (clientId !== undefined ? 4 + clientId.byteLength + 8 : 0) + (auth?.byteLength ?? 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = PUT_COMMAND;
  view.setBigInt64(1, c.hlc);
  out[9] = flags;
  let o = putBytes(out, view, 10, put.key);
  o = putBytes(out, view, o, put.value);
  if (put.lease !== undefined) {
    view.setBigInt64(o, put.lease);
    o += 8;
  }
  if (clientId !== undefined) {
    o = putBytes(out, view, o, clientId);
    view.setFloat64(o, c.seq!);
    o += 8;
  }
  if (auth !== undefined) {
    out.set(auth, o);
    o += auth.byteLength;
  }
  assert(o === size, 'put command size');
  return out;
}

function putBytes(out: Uint8Array, view: DataView, at: number, b: Uint8Array): number {
  view.setUint32(at, b.byteLength);
  out.set(b, at + 4);
  return at + 4 + b.byteLength;
}

/** A put command's layout, decoded to the object the general form gives (byte fields as views of `data`). */
function decodePutCommand(data: Uint8Array): Command {
  const end = data.byteLength;
  const view = new DataView(data.buffer, data.byteOffset, end);
  if (end < 18) assert(false, `truncated put command of ${end} bytes`);
  const hlc = view.getBigInt64(1);
  const flags = data[9]!;
  if ((flags & ~PUT_FLAGS_ALL) !== 0) assert(false, `put command with unknown flags ${flags}`);
  let o = 10;
  const bytesAt = (): Uint8Array => {
    if (o + 4 > end) assert(false, `truncated put command at byte ${o}`);
    const n = view.getUint32(o);
    if (o + 4 + n > end) assert(false, `truncated put command at byte ${o}`);
    // A view, as the general form's slice of a Buffer (a follower's entries) already is: the payload is not
    // written after it is made, and the store copies key and value into the row it encodes. On the leader the
    // payload is a Uint8Array, whose slice() copied both (~1.6 us per put at 100 in flight).
    const b = data.subarray(o + 4, o + 4 + n);
    o += 4 + n;
    return b;
  };
  const need = (n: number): void => {
    if (o + n > end) assert(false, `truncated put command at byte ${o}`);
  };
  const put: { -readonly [F in keyof PutRequest]: PutRequest[F] } = { key: bytesAt(), value: bytesAt() };
  if ((flags & PUT_FLAG_LEASE) !== 0) {
    need(8);
    put.lease = view.getBigInt64(o);
    o += 8;
  }
  if ((flags & PUT_FLAG_PREV_KV) !== 0) put.prevKv = true;
  if ((flags & PUT_FLAG_IGNORE_VALUE) !== 0) put.ignoreValue = true;
  if ((flags & PUT_FLAG_IGNORE_LEASE) !== 0) put.ignoreLease = true;
  const command: { -readonly [F in keyof Command]: Command[F] } = { hlc, op: { put } };
  if ((flags & PUT_FLAG_IDENTITY) !== 0) {
    command.clientId = UTF8_STRICT.decode(bytesAt());
    need(8);
    command.seq = view.getFloat64(o);
    o += 8;
  }
  if ((flags & PUT_FLAG_AUTH) !== 0) {
    const r = new Reader(data);
    r.offset = o;
    command.auth = r.value(0) as unknown as CommandAuth;
    o = r.offset;
  }
  if (o !== end) assert(false, `put command has ${end - o} trailing bytes`);
  return command;
}
