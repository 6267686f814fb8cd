// HPACK (RFC 7541): the header compression of HTTP/2, for the pure-JS HTTP/2 engine of the client API.
//
// A connection has one HpackDecoder for the header blocks it receives and one HpackEncoder for those it sends.
// Each keeps a dynamic table that must stay exactly in step with the peer's, so a block is always processed
// whole, in order, and any malformed byte is an HpackError: the connection cannot go on and answers with a
// COMPRESSION_ERROR.
//
// Names and values are latin1 JS strings, one char per byte, so any byte passes through unchanged and a string's
// length is its size in bytes (the unit of every HPACK size). Decoding UTF-8 (or rejecting it) is the caller's
// business.

import { HpackError, huffmanDecode, huffmanEncode, huffmanEncodedLength } from './huffman.js';

export { HpackError } from './huffman.js';

export interface HeaderField {
  name: string;
  value: string;
  /** Sent as "never indexed" (RFC 7541 6.2.3): sensitive, so a proxy must forward it the same way. */
  neverIndexed?: boolean;
}

export interface DecodedBlock {
  /** The fields in order; only those within headerListBytesMax when `oversized`. */
  fields: HeaderField[];
  /** The list passed headerListBytesMax: the connection refuses the stream (the table is still in step). */
  oversized: boolean;
}

/** SETTINGS_HEADER_TABLE_SIZE until SETTINGS say otherwise (RFC 9113 6.5.2). */
export const DEFAULT_TABLE_BYTES = 4096;
/**
 * The SETTINGS_MAX_HEADER_LIST_SIZE we enforce by default: gRPC metadata (auth tokens, tracing) is far smaller,
 * and it bounds the memory one stream's headers can take.
 */
export const DEFAULT_HEADER_LIST_BYTES_MAX = 64 * 1024;
/** An entry's size is its name and value plus 32 bytes for the bookkeeping (RFC 7541 4.1); so is a field's in a list (RFC 9113 6.5.2). */
export const ENTRY_OVERHEAD_BYTES = 32;
/**
 * Largest integer a block may carry. Lengths and indexes beyond it are nonsense for any table or block we accept,
 * and it keeps arithmetic on them exact.
 */
const INTEGER_MAX = 0x7fff_ffff;
/** Continuation bytes after the prefix: 5 * 7 bits cover INTEGER_MAX; more can only be padding or an overflow. */
const INTEGER_CONTINUATION_BYTES_MAX = 5;
/** Bytes an integer can take on the wire: the prefix byte and its continuation bytes. */
const INTEGER_BYTES_MAX = 1 + INTEGER_CONTINUATION_BYTES_MAX;
/**
 * Values longer than this are sent without indexing: long values are mostly unique (error messages, tokens), and
 * indexing them would push the short repeated fields that make a block cheap out of the table.
 */
export const INDEXED_VALUE_BYTES_MAX = 256;
/**
 * Blocks the encoder remembers to re-send as they are while the table has not changed: enough for the response
 * headers and trailers of a few kinds of response, which is where blocks repeat.
 */
const BLOCK_CACHE_ENTRIES = 4;
/** Largest block cached: steady-state repeats are a few index bytes, and a big block should not be held on to. */
const CACHED_BLOCK_BYTES_MAX = 64;

// Representations (RFC 7541 6): the leading bits of a field's first byte, and the bits left for its integer.
const INDEXED = 0x80;
const INDEXED_PREFIX_BITS = 7;
const LITERAL_INCREMENTAL = 0x40;
const LITERAL_INCREMENTAL_PREFIX_BITS = 6;
const SIZE_UPDATE = 0x20;
const SIZE_UPDATE_PREFIX_BITS = 5;
/** The leading bits that tell a size update (001) from the other representations. */
const SIZE_UPDATE_MASK = 0xe0;
const LITERAL_NEVER_INDEXED = 0x10;
const LITERAL_WITHOUT_INDEXING = 0x00;
const LITERAL_PREFIX_BITS = 4;
/** A string literal: the H bit (Huffman-encoded) and a 7-bit length prefix (RFC 7541 5.2). */
const HUFFMAN_FLAG = 0x80;
const STRING_LENGTH_PREFIX_BITS = 7;

/** The static table (RFC 7541 Appendix A): index i is entry i - 1. */
export const STATIC_TABLE: readonly (readonly [name: string, value: string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_ENTRIES = STATIC_TABLE.length;

/** name -> value -> static index, for the encoder's exact matches. */
const STATIC_FIELD_INDEX = new Map<string, Map<string, number>>();
/** name -> lowest static index with that name, for the encoder's indexed names. */
const STATIC_NAME_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  let values = STATIC_FIELD_INDEX.get(name);
  if (values === undefined) STATIC_FIELD_INDEX.set(name, (values = new Map()));
  values.set(value, i + 1);
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
});

/** Size of a table entry or header list field (RFC 7541 4.1, RFC 9113 6.5.2). */
export function fieldBytes(name: string, value: string): number {
  return name.length + value.length + ENTRY_OVERHEAD_BYTES;
}

function checkTableBytes(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n > INTEGER_MAX) throw new RangeError(`${what} must be an integer in [0, ${INTEGER_MAX}], got ${n}`);
}

/** Called with an evicted entry and its insertion number. */
type EvictionListener = (name: string, value: string, insertion: number) => void;

/**
 * The dynamic table (RFC 7541 2.3.2): a FIFO of entries, newest at index 1, bounded by `maxBytes`. A ring of
 * slots that doubles when full, so adding and evicting never shift entries.
 */
class DynamicTable {
  private names: string[] = new Array<string>(16).fill('');
  private values: string[] = new Array<string>(16).fill('');
  /** Slot of the oldest entry. */
  private oldest = 0;
  count = 0;
  bytes = 0;
  /** Entries ever added: the next entry's insertion number. */
  inserted = 0;

  constructor(
    public maxBytes: number,
    private readonly onEvict?: EvictionListener,
  ) {}

  /** Slot of dynamic index `i` (1 = newest, at most `count`). */
  private slot(i: number): number {
    return (this.oldest + this.count - i) & (this.names.length - 1);
  }

  name(i: number): string {
    return this.names[this.slot(i)]!;
  }

  value(i: number): string {
    return this.values[this.slot(i)]!;
  }

  /** Adds an entry, evicting the oldest to make room; one larger than the table just empties it (RFC 7541 4.4). */
  add(name: string, value: string): void {
    const size = fieldBytes(name, value);
    this.evictDownTo(this.maxBytes - size);
    if (size > this.maxBytes) return;
    if (this.count === this.names.length) this.grow();
    const slot = (this.oldest + this.count) & (this.names.length - 1);
    this.names[slot] = name;
    this.values[slot] = value;
    this.count++;
    this.bytes += size;
    this.inserted++;
  }

  /** A new maximum size, evicting what no longer fits (RFC 7541 4.3). */
  resize(maxBytes: number): void {
    this.maxBytes = maxBytes;
    this.evictDownTo(maxBytes);
  }

  private evictDownTo(limit: number): void {
    while (this.bytes > limit && this.count > 0) {
      const slot = this.oldest;
      const name = this.names[slot]!;
      const value = this.values[slot]!;
      this.names[slot] = '';
      this.values[slot] = '';
      this.oldest = (slot + 1) & (this.names.length - 1);
      this.count--;
      this.bytes -= fieldBytes(name, value);
      this.onEvict?.(name, value, this.inserted - this.count - 1);
    }
  }

  private grow(): void {
    const names = new Array<string>(this.names.length * 2).fill('');
    const values = new Array<string>(this.names.length * 2).fill('');
    for (let i = 0; i < this.count; i++) {
      names[i] = this.names[(this.oldest + i) & (this.names.length - 1)]!;
      values[i] = this.values[(this.oldest + i) & (this.names.length - 1)]!;
    }
    this.names = names;
    this.values = values;
    this.oldest = 0;
  }

  /** The entries, newest first (for tests and debugging). */
  entries(): [name: string, value: string][] {
    const out: [string, string][] = [];
    for (let i = 1; i <= this.count; i++) out.push([this.name(i), this.value(i)]);
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export interface HpackDecoderOptions {
  /**
   * The SETTINGS_HEADER_TABLE_SIZE the peer is held to (default 4096): its size updates may not exceed it. The
   * table starts at 4096, the protocol's initial size (a peer that wants more says so with a size update), or at
   * this value when it is smaller. A connection that advertises less than 4096 passes 4096 here, as the peer
   * encodes for 4096 until it has read our SETTINGS, and lowers it with lowerTableBytesMax() on their ACK.
   */
  tableBytesMax?: number;
  /** Decoded list size (RFC 9113 6.5.2) past which a block is `oversized`. */
  headerListBytesMax?: number;
}

/** Decodes the header blocks one peer sends on one connection, in order. */
export class HpackDecoder {
  private tableBytesMax: number;
  private readonly headerListBytesMax: number;
  private readonly table: DynamicTable;
  // The block being decoded and the position in it.
  private buf: Buffer = EMPTY;
  private pos = 0;
  private end = 0;

  constructor(options: HpackDecoderOptions = {}) {
    this.tableBytesMax = options.tableBytesMax ?? DEFAULT_TABLE_BYTES;
    this.headerListBytesMax = options.headerListBytesMax ?? DEFAULT_HEADER_LIST_BYTES_MAX;
    checkTableBytes('tableBytesMax', this.tableBytesMax);
    if (!Number.isSafeInteger(this.headerListBytesMax) || this.headerListBytesMax < 0) {
      throw new RangeError(`headerListBytesMax must be a non-negative integer, got ${this.headerListBytesMax}`);
    }
    this.table = new DynamicTable(Math.min(this.tableBytesMax, DEFAULT_TABLE_BYTES));
  }

  /**
   * The peer acknowledged a SETTINGS_HEADER_TABLE_SIZE below tableBytesMax. Its encoder shrank its table on
   * reading it, so if ours is still larger its next block must open with a size update down to `n` at most
   * (RFC 7541 4.2); from then on its size updates may not exceed `n`.
   */
  lowerTableBytesMax(n: number): void {
    checkTableBytes('tableBytesMax', n);
    if (n > this.tableBytesMax) throw new RangeError(`lowerTableBytesMax(${n}) is above the current ${this.tableBytesMax}`);
    this.tableBytesMax = n;
  }

  /** Decodes a complete header block (HEADERS or PUSH_PROMISE plus its CONTINUATIONs). Throws HpackError. */
  decode(block: Uint8Array): DecodedBlock {
    this.buf = asBuffer(block);
    this.pos = 0;
    this.end = block.length;
    try {
      return this.fields();
    } finally {
      this.buf = EMPTY;
    }
  }

  /** The dynamic table's entries, newest first, and its size (for tests and debugging). */
  get dynamicTable(): { entries: [name: string, value: string][]; bytes: number; maxBytes: number } {
    return { entries: this.table.entries(), bytes: this.table.bytes, maxBytes: this.table.maxBytes };
  }

  private fields(): DecodedBlock {
    this.leadingSizeUpdates();
    const fields: HeaderField[] = [];
    let listBytes = 0;
    let oversized = false;
    while (this.pos < this.end) {
      const first = this.buf[this.pos]!;
      let field: HeaderField;
      if (first >= INDEXED) {
        field = this.indexedField();
      } else if (first >= LITERAL_INCREMENTAL) {
        field = this.literalField(LITERAL_INCREMENTAL_PREFIX_BITS, false);
        this.table.add(field.name, field.value);
      } else if (first >= SIZE_UPDATE) {
        // RFC 7541 4.2: only before the block's first field.
        throw new HpackError('dynamic table size update after a header field');
      } else {
        field = this.literalField(LITERAL_PREFIX_BITS, (first & LITERAL_NEVER_INDEXED) !== 0);
      }
      // Past the limit the fields are still decoded (the table must follow the peer's) but no longer kept.
      listBytes += fieldBytes(field.name, field.value);
      if (listBytes > this.headerListBytesMax) oversized = true;
      else fields.push(field);
    }
    return { fields, oversized };
  }

  private indexedField(): HeaderField {
    const index = this.integer(INDEXED_PREFIX_BITS);
    this.checkIndex(index);
    return { name: this.nameAt(index), value: this.valueAt(index) };
  }

  /** A literal field (RFC 7541 6.2): an indexed name (index > 0) or a literal one, then a literal value. */
  private literalField(prefixBits: number, neverIndexed: boolean): HeaderField {
    const index = this.integer(prefixBits);
    let name: string;
    if (index === 0) {
      name = this.string();
    } else {
      this.checkIndex(index);
      name = this.nameAt(index);
    }
    const value = this.string();
    return neverIndexed ? { name, value, neverIndexed } : { name, value };
  }

  /**
   * The size updates that may open a block (RFC 7541 4.2; the encoder sends at most two, but more do no harm).
   * After them the table must fit tableBytesMax: it may not, just after lowerTableBytesMax().
   */
  private leadingSizeUpdates(): void {
    while (this.pos < this.end && (this.buf[this.pos]! & SIZE_UPDATE_MASK) === SIZE_UPDATE) this.sizeUpdate();
    if (this.table.maxBytes > this.tableBytesMax) {
      throw new HpackError(`the block does not open with a dynamic table size update down to SETTINGS_HEADER_TABLE_SIZE ${this.tableBytesMax}`);
    }
  }

  private sizeUpdate(): void {
    const maxBytes = this.integer(SIZE_UPDATE_PREFIX_BITS);
    if (maxBytes > this.tableBytesMax) {
      throw new HpackError(`dynamic table size update to ${maxBytes} exceeds SETTINGS_HEADER_TABLE_SIZE ${this.tableBytesMax}`);
    }
    this.table.resize(maxBytes);
  }

  /** Index 0 is not an entry; past the static table come the dynamic table's entries (RFC 7541 2.3.3). */
  private checkIndex(index: number): void {
    if (index === 0 || index > STATIC_ENTRIES + this.table.count) {
      throw new HpackError(`index ${index} is outside the tables (${STATIC_ENTRIES} static + ${this.table.count} dynamic)`);
    }
  }

  private nameAt(index: number): string {
    return index <= STATIC_ENTRIES ? STATIC_TABLE[index - 1]![0] : this.table.name(index - STATIC_ENTRIES);
  }

  private valueAt(index: number): string {
    return index <= STATIC_ENTRIES ? STATIC_TABLE[index - 1]![1] : this.table.value(index - STATIC_ENTRIES);
  }

  /** An integer with an N-bit prefix (RFC 7541 5.1); the caller has checked the prefix byte is there. */
  private integer(prefixBits: number): number {
    const mask = (1 << prefixBits) - 1;
    const prefix = this.buf[this.pos++]! & mask;
    if (prefix < mask) return prefix;
    let value = mask;
    let scale = 1;
    for (let i = 0; i < INTEGER_CONTINUATION_BYTES_MAX; i++) {
      if (this.pos >= this.end) throw new HpackError('truncated integer');
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (value > INTEGER_MAX) throw new HpackError(`integer ${value} exceeds ${INTEGER_MAX}`);
        return value;
      }
      scale *= 0x80;
    }
    throw new HpackError(`integer longer than ${INTEGER_CONTINUATION_BYTES_MAX} continuation bytes`);
  }

  /** A string literal (RFC 7541 5.2), raw or Huffman-encoded. */
  private string(): string {
    if (this.pos >= this.end) throw new HpackError('truncated string literal');
    const huffman = this.buf[this.pos]! >= HUFFMAN_FLAG;
    const length = this.integer(STRING_LENGTH_PREFIX_BITS);
    if (length > this.end - this.pos) throw new HpackError(`string literal of ${length} bytes runs past the end of the block`);
    const start = this.pos;
    this.pos += length;
    return huffman ? huffmanDecode(this.buf, start, this.pos) : this.buf.toString('latin1', start, this.pos);
  }
}

interface CachedBlock {
  /** The fields as they were (the caller may reuse its objects), neverIndexed made explicit. */
  fields: Required<HeaderField>[];
  block: Buffer;
  tableVersion: number;
}

/** Same fields, compared by value: constant strings compare as fast as references. */
function sameFields(cached: readonly Required<HeaderField>[], fields: readonly HeaderField[]): boolean {
  if (cached.length !== fields.length) return false;
  for (let i = 0; i < fields.length; i++) {
    const a = cached[i]!;
    const b = fields[i]!;
    if (a.name !== b.name || a.value !== b.value || a.neverIndexed !== (b.neverIndexed === true)) return false;
  }
  return true;
}

/** The first `n` bytes of `b` in a Buffer of their own. */
function copy(b: Buffer, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  b.copy(out, 0, 0, n);
  return out;
}

export interface HpackEncoderOptions {
  /** Our dynamic table's size (default 4096); it is further held to the peer's SETTINGS_HEADER_TABLE_SIZE. */
  tableBytesMax?: number;
}

/**
 * Encodes the header blocks sent on one connection, in the order they are sent. A field is sent as an index when
 * the static or the dynamic table holds it; otherwise as a literal, added to the dynamic table when it is worth
 * it, so a field repeated on every response costs one byte from its second time on.
 */
export class HpackEncoder {
  private readonly ownTableBytesMax: number;
  private readonly table: DynamicTable;
  /** name -> value -> insertion number of the newest entry holding that field. */
  private readonly fieldInsertions = new Map<string, Map<string, number>>();
  /** name -> insertion number of the newest entry with that name. */
  private readonly nameInsertions = new Map<string, number>();
  /** The smallest table size since the last block, when a size update is owed (RFC 7541 4.2); else -1. */
  private lowestPendingSize = -1;
  /** Bumped whenever the table changes (an entry added, a new size): a cached block is valid while it stands still. */
  private tableVersion = 0;
  private readonly cache: CachedBlock[] = [];
  private nextCacheSlot = 0;
  private out = Buffer.allocUnsafe(1024);
  private len = 0;

  constructor(options: HpackEncoderOptions = {}) {
    this.ownTableBytesMax = options.tableBytesMax ?? DEFAULT_TABLE_BYTES;
    checkTableBytes('tableBytesMax', this.ownTableBytesMax);
    const maxBytes = Math.min(this.ownTableBytesMax, DEFAULT_TABLE_BYTES);
    this.table = new DynamicTable(maxBytes, (name, value, insertion) => this.forget(name, value, insertion));
    // The peer's decoder starts at its SETTINGS_HEADER_TABLE_SIZE, 4096 until it says otherwise: tell it if we use less.
    if (maxBytes !== DEFAULT_TABLE_BYTES) this.lowestPendingSize = maxBytes;
  }

  /** The peer's SETTINGS_HEADER_TABLE_SIZE changed: our table follows, signalled at the start of the next block. */
  setPeerTableBytesMax(n: number): void {
    checkTableBytes('SETTINGS_HEADER_TABLE_SIZE', n);
    const maxBytes = Math.min(this.ownTableBytesMax, n);
    if (maxBytes === this.table.maxBytes) return;
    this.table.resize(maxBytes);
    this.tableVersion++;
    this.lowestPendingSize = this.lowestPendingSize < 0 ? maxBytes : Math.min(this.lowestPendingSize, maxBytes);
  }

  /** The dynamic table's entries, newest first, and its size (for tests and debugging). */
  get dynamicTable(): { entries: [name: string, value: string][]; bytes: number; maxBytes: number } {
    return { entries: this.table.entries(), bytes: this.table.bytes, maxBytes: this.table.maxBytes };
  }

  /** The header block for `fields`, in a Buffer of its own. Names and values must be latin1 (else RangeError). */
  encode(fields: readonly HeaderField[]): Buffer {
    const cached = this.lowestPendingSize < 0 ? this.cachedBlock(fields) : undefined;
    if (cached !== undefined) return copy(cached, cached.length);
    const version = this.tableVersion;
    const sizeUpdates = this.lowestPendingSize >= 0;
    this.len = 0;
    if (sizeUpdates) this.sizeUpdates();
    for (const field of fields) this.field(field);
    const block = copy(this.out, this.len);
    // A block that changed nothing (all indexes, or literals kept out of the table) encodes the same next time.
    if (!sizeUpdates && this.tableVersion === version && block.length <= CACHED_BLOCK_BYTES_MAX) this.cacheBlock(fields, block);
    return block;
  }

  private cachedBlock(fields: readonly HeaderField[]): Buffer | undefined {
    for (const entry of this.cache) {
      if (entry.tableVersion === this.tableVersion && sameFields(entry.fields, fields)) return entry.block;
    }
    return undefined;
  }

  private cacheBlock(fields: readonly HeaderField[], block: Buffer): void {
    const snapshot = fields.map(({ name, value, neverIndexed }) => ({ name, value, neverIndexed: neverIndexed === true }));
    this.cache[this.nextCacheSlot] = { fields: snapshot, block: copy(block, block.length), tableVersion: this.tableVersion };
    this.nextCacheSlot = (this.nextCacheSlot + 1) % BLOCK_CACHE_ENTRIES;
  }

  /**
   * The size updates owed: the smallest size reached since the last block, if it is below the current one (so the
   * peer evicts what we evicted), then the current size (RFC 7541 4.2).
   */
  private sizeUpdates(): void {
    if (this.lowestPendingSize < this.table.maxBytes) this.integer(SIZE_UPDATE, SIZE_UPDATE_PREFIX_BITS, this.lowestPendingSize);
    this.integer(SIZE_UPDATE, SIZE_UPDATE_PREFIX_BITS, this.table.maxBytes);
    this.lowestPendingSize = -1;
  }

  private field({ name, value, neverIndexed }: HeaderField): void {
    if (neverIndexed === true) {
      this.literal(LITERAL_NEVER_INDEXED, LITERAL_PREFIX_BITS, name, value);
      return;
    }
    const index = STATIC_FIELD_INDEX.get(name)?.get(value) ?? this.dynamicFieldIndex(name, value);
    if (index > 0) {
      this.integer(INDEXED, INDEXED_PREFIX_BITS, index);
    } else if (value.length <= INDEXED_VALUE_BYTES_MAX && fieldBytes(name, value) <= this.table.maxBytes) {
      this.literal(LITERAL_INCREMENTAL, LITERAL_INCREMENTAL_PREFIX_BITS, name, value);
      this.remember(name, value);
    } else {
      // Too long to be worth a place in the table, or larger than the whole table (adding it would only empty it).
      this.literal(LITERAL_WITHOUT_INDEXING, LITERAL_PREFIX_BITS, name, value);
    }
  }

  private literal(representation: number, prefixBits: number, name: string, value: string): void {
    const nameIndex = STATIC_NAME_INDEX.get(name) ?? this.dynamicNameIndex(name);
    this.integer(representation, prefixBits, nameIndex);
    if (nameIndex === 0) this.string(name);
    this.string(value);
  }

  /** Index of the newest dynamic entry holding the field, or 0. */
  private dynamicFieldIndex(name: string, value: string): number {
    const insertion = this.fieldInsertions.get(name)?.get(value);
    return insertion === undefined ? 0 : this.indexOf(insertion);
  }

  private dynamicNameIndex(name: string): number {
    const insertion = this.nameInsertions.get(name);
    return insertion === undefined ? 0 : this.indexOf(insertion);
  }

  /** The newest entry (insertion `inserted - 1`) is index 62, just past the static table. */
  private indexOf(insertion: number): number {
    return STATIC_ENTRIES + this.table.inserted - insertion;
  }

  /** Adds the field to the table, as the peer's decoder does on reading a literal with incremental indexing. */
  private remember(name: string, value: string): void {
    this.table.add(name, value);
    this.tableVersion++;
    const insertion = this.table.inserted - 1;
    let values = this.fieldInsertions.get(name);
    if (values === undefined) this.fieldInsertions.set(name, (values = new Map()));
    values.set(value, insertion);
    this.nameInsertions.set(name, insertion);
  }

  /** An entry left the table: drop the lookups that pointed at it (a newer duplicate keeps its own). */
  private forget(name: string, value: string, insertion: number): void {
    const values = this.fieldInsertions.get(name);
    if (values?.get(value) === insertion) {
      values.delete(value);
      if (values.size === 0) this.fieldInsertions.delete(name);
    }
    if (this.nameInsertions.get(name) === insertion) this.nameInsertions.delete(name);
  }

  /** An integer with an N-bit prefix after the representation's leading bits (RFC 7541 5.1). */
  private integer(leading: number, prefixBits: number, value: number): void {
    this.ensure(INTEGER_BYTES_MAX);
    const mask = (1 << prefixBits) - 1;
    if (value < mask) {
      this.out[this.len++] = leading | value;
      return;
    }
    this.out[this.len++] = leading | mask;
    let rest = value - mask;
    while (rest >= 0x80) {
      this.out[this.len++] = (rest & 0x7f) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.out[this.len++] = rest;
  }

  /** A string literal, Huffman-encoded when that is shorter (RFC 7541 5.2). */
  private string(s: string): void {
    const huffmanLength = huffmanEncodedLength(s);
    if (huffmanLength < s.length) {
      this.integer(HUFFMAN_FLAG, STRING_LENGTH_PREFIX_BITS, huffmanLength);
      this.ensure(huffmanLength);
      this.len = huffmanEncode(s, this.out, this.len);
    } else {
      this.integer(0, STRING_LENGTH_PREFIX_BITS, s.length);
      this.ensure(s.length);
      this.len += this.out.write(s, this.len, 'latin1');
    }
  }

  private ensure(n: number): void {
    if (this.len + n <= this.out.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.len + n));
    this.out.copy(next, 0, 0, this.len);
    this.out = next;
  }
}
