// The exactly-once table: for each client, the last applied sequence number and its encoded response.
//
// A mutating request may carry (clientId, seq). At apply time the composer asks check():
//   seq == last applied  -> a retry: return the stored response, apply nothing
//   seq <  last applied  -> STALE_SEQUENCE (the response it would need is gone)
//   seq >  last applied  -> apply, then record() the response
// so a retry that reaches the log twice (client timeout, leader change) takes effect once.
//
// Bounded and deterministic. Every member must forget the same clients at the same point in the log, so nothing
// here reads a clock: "idle" is measured in LOG time, the HLC wall time of the applied entries, which the composer
// passes in. A client idle for clientIdleMs of log time is dropped by expireIdle(); when the table is full, a new
// client evicts the one seen least recently, ties broken by client id. Both orders are the total order
// (lastSeenMs, clientId), kept in a min-heap, so two members with the same log forget the same clients even if one
// of them restarted and rebuilt the heap from disk in another order.
//
// Durable form: once/c/<client id, utf-8> -> u64 seq | u64 lastSeenMs | response bytes. The prefix sorts after the
// revision rows ('k/'): with exactly-once clients nearly every backend batch writes here, and a family written
// with every batch must not sort in front of the rows (docs/storage.md, "Key order and LevelDB compaction").
// Stores written before kept the table under 'dedup/'; open() moves it.
import { assert } from '../../raft/errors.js';
import type { Backend, KvBatch } from '../backend.js';
import { batchBytes, concatBytes, fromUtf8, movePrefix, readPrefix, readSafeU64, startsWith, utf8, writeU64, type Pair } from '../hlc/section.js';
import { errInvalidDedupRequest, errStaleSequence } from './errors.js';

export const DEDUP_PREFIX = utf8('once/');
const CLIENT_PREFIX = utf8('once/c/');
/** Where stores written before the move kept the table (same layout after the prefix). */
export const LEGACY_DEDUP_PREFIX = utf8('dedup/');
const CLIENT_RECORD_HEADER_BYTES = 16;

/** Clients remembered at once: about one per live client process. */
export const DEDUP_CLIENTS_MAX = 10_000;
/** A client silent for this long in log time is forgotten; its retries after that are applied again. */
export const DEDUP_CLIENT_IDLE_MS = 10 * 60_000;
export const DEDUP_CLIENT_ID_BYTES_MAX = 128;
/** Stored responses are small (a header and a revision); anything larger is a bug in the caller. */
export const DEDUP_RESPONSE_BYTES_MAX = 64 * 1024;
/** expireIdle() forgets at most this many clients per call, so one applied batch stays bounded. */
export const DEDUP_EXPIRIES_PER_CALL_MAX = 1_000;

export interface DedupTableConfig {
  readonly clientsMax: number;
  readonly clientIdleMs: number;
  readonly clientIdBytesMax: number;
  readonly responseBytesMax: number;
  readonly expiriesPerCallMax: number;
}

export const DEDUP_TABLE_DEFAULTS: DedupTableConfig = {
  clientsMax: DEDUP_CLIENTS_MAX,
  clientIdleMs: DEDUP_CLIENT_IDLE_MS,
  clientIdBytesMax: DEDUP_CLIENT_ID_BYTES_MAX,
  responseBytesMax: DEDUP_RESPONSE_BYTES_MAX,
  expiriesPerCallMax: DEDUP_EXPIRIES_PER_CALL_MAX,
};

export function validateDedupTableConfig(config: Partial<DedupTableConfig> = {}): Readonly<DedupTableConfig> {
  const c = { ...DEDUP_TABLE_DEFAULTS, ...config };
  for (const [name, value] of Object.entries(c)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return Object.freeze(c);
}

export type DedupVerdict = { readonly kind: 'apply' } | { readonly kind: 'duplicate'; readonly response: Uint8Array };

export interface DedupClient {
  readonly clientId: string;
  readonly lastSeq: number;
  readonly lastSeenMs: number;
  readonly response: Uint8Array;
}

interface ClientRecord {
  /** The client's backend key, made once: every applied request of the client rewrites its pair. */
  readonly key: Uint8Array;
  lastSeq: number;
  lastSeenMs: number;
  response: Uint8Array;
}

interface AgeEntry {
  readonly lastSeenMs: number;
  readonly clientId: string;
}

export class DedupTable {
  private readonly clients = new Map<string, ClientRecord>();
  /** Min-heap on (lastSeenMs, clientId). Lazily cleaned: entries that no longer match a client are skipped. */
  private ages: AgeEntry[] = [];

  private constructor(private readonly config: Readonly<DedupTableConfig>) {}

  static empty(config: Partial<DedupTableConfig> = {}): DedupTable {
    return new DedupTable(validateDedupTableConfig(config));
  }

  static async open(backend: Backend, config: Partial<DedupTableConfig> = {}): Promise<DedupTable> {
    const table = DedupTable.empty(config);
    await movePrefix(backend, LEGACY_DEDUP_PREFIX, DEDUP_PREFIX);
    table.load(await readPrefix(backend, DEDUP_PREFIX));
    return table;
  }

  get size(): number {
    return this.clients.size;
  }

  /** Decide what to do with (clientId, seq). Pure: it changes nothing. */
  check(clientId: string, seq: number): DedupVerdict {
    this.validateRequest(clientId, seq);
    const client = this.clients.get(clientId);
    if (client === undefined || seq > client.lastSeq) return { kind: 'apply' };
    if (seq === client.lastSeq) return { kind: 'duplicate', response: Uint8Array.from(client.response) };
    throw errStaleSequence(clientId, seq, client.lastSeq);
  }

  /**
   * Remember the response of an applied request. `seq` must be newer than the last one (check() said "apply").
   * A new client in a full table evicts the least recently seen client first.
   */
  record(clientId: string, seq: number, response: Uint8Array, logWallMs: number, batch: KvBatch): void {
    this.validateRequest(clientId, seq);
    if (response.byteLength > this.config.responseBytesMax) throw errInvalidDedupRequest(`response of ${response.byteLength} bytes exceeds ${this.config.responseBytesMax}`);
    assert(Number.isSafeInteger(logWallMs) && logWallMs >= 0, () => `record: bad log time ${logWallMs}`);
    let client = this.clients.get(clientId);
    assert(client === undefined || seq > client.lastSeq, () => `record: seq ${seq} of "${clientId}" is not newer than ${client?.lastSeq}`);
    if (client === undefined) {
      while (this.clients.size >= this.config.clientsMax) this.evictOldest(batch);
      client = { key: clientKey(clientId), lastSeq: seq, lastSeenMs: logWallMs, response: Uint8Array.from(response) };
      this.clients.set(clientId, client);
      this.pushAge(clientId, client.lastSeenMs);
    } else {
      client.lastSeq = seq;
      client.response = Uint8Array.from(response);
      // Log time can step back when a new leader's clock lags; a client's age never does.
      if (logWallMs > client.lastSeenMs) {
        client.lastSeenMs = logWallMs;
        this.pushAge(clientId, logWallMs);
      }
    }
    batch.put(client.key, encodeClient(client));
    assert(this.clients.size <= this.config.clientsMax, 'dedup table over its bound');
  }

  /** Forget clients idle for clientIdleMs of log time, oldest first, at most expiriesPerCallMax. */
  expireIdle(logWallMs: number, batch: KvBatch): string[] {
    assert(Number.isSafeInteger(logWallMs) && logWallMs >= 0, () => `expireIdle: bad log time ${logWallMs}`);
    const expired: string[] = [];
    while (expired.length < this.config.expiriesPerCallMax) {
      const oldest = this.peekOldest();
      if (oldest === undefined || oldest.lastSeenMs + this.config.clientIdleMs > logWallMs) break;
      this.forget(oldest.clientId, batch);
      expired.push(oldest.clientId);
    }
    return expired;
  }

  get(clientId: string): DedupClient | undefined {
    const c = this.clients.get(clientId);
    return c === undefined ? undefined : { clientId, lastSeq: c.lastSeq, lastSeenMs: c.lastSeenMs, response: Uint8Array.from(c.response) };
  }

  /** Every durable pair in key order: exactly what the backend holds under DEDUP_PREFIX. */
  pairs(): Pair[] {
    return [...this.clients.entries()]
      .map(([, c]): Pair => [c.key, encodeClient(c)])
      .sort(([a], [b]) => Buffer.compare(a, b));
  }

  private validateRequest(clientId: string, seq: number): void {
    const idBytes = utf8Bytes(clientId);
    // A lone surrogate would not survive the trip through UTF-8: the reloaded table would hold another id.
    if (idBytes === undefined) throw errInvalidDedupRequest('client id is not well-formed unicode');
    if (idBytes === 0 || idBytes > this.config.clientIdBytesMax) throw errInvalidDedupRequest(`client id must be 1..${this.config.clientIdBytesMax} bytes`);
    if (!Number.isSafeInteger(seq) || seq < 0) throw errInvalidDedupRequest(`sequence ${seq} is not a non-negative integer`);
  }

  private load(pairs: readonly Pair[]): void {
    for (const [k, v] of pairs) {
      assert(startsWith(k, CLIENT_PREFIX), () => `unknown dedup key ${Buffer.from(k).toString('hex')}`);
      assert(v.byteLength >= CLIENT_RECORD_HEADER_BYTES, 'corrupt dedup record');
      const clientId = fromUtf8(k.subarray(CLIENT_PREFIX.byteLength));
      const client = { key: clientKey(clientId), lastSeq: readSafeU64(v, 0), lastSeenMs: readSafeU64(v, 8), response: v.slice(CLIENT_RECORD_HEADER_BYTES) };
      this.clients.set(clientId, client);
      this.pushAge(clientId, client.lastSeenMs);
    }
    assert(this.clients.size <= this.config.clientsMax, 'dedup table holds more clients than its bound');
  }

  private evictOldest(batch: KvBatch): void {
    const oldest = this.peekOldest();
    assert(oldest !== undefined, 'evictOldest on an empty table');
    this.forget(oldest.clientId, batch);
  }

  private forget(clientId: string, batch: KvBatch): void {
    const client = this.clients.get(clientId);
    assert(client !== undefined && this.clients.delete(clientId), () => `forget: unknown client "${clientId}"`);
    batch.del(client.key);
  }

  /** The live client with the smallest (lastSeenMs, clientId), dropping stale heap entries on the way. */
  private peekOldest(): AgeEntry | undefined {
    while (this.ages.length > 0) {
      const top = this.ages[0]!;
      if (this.clients.get(top.clientId)?.lastSeenMs === top.lastSeenMs) return top;
      this.popAge();
    }
    return undefined;
  }

  private pushAge(clientId: string, lastSeenMs: number): void {
    // Stale entries pile up as clients are touched; rebuild before the heap outgrows the table by much.
    if (this.ages.length > 2 * this.clients.size + 64) this.rebuildAges();
    this.ages.push({ lastSeenMs, clientId });
    let i = this.ages.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!older(this.ages[i]!, this.ages[parent]!)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private popAge(): void {
    const last = this.ages.pop()!;
    if (this.ages.length === 0) return;
    this.ages[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let smallest = i;
      if (l < this.ages.length && older(this.ages[l]!, this.ages[smallest]!)) smallest = l;
      if (r < this.ages.length && older(this.ages[r]!, this.ages[smallest]!)) smallest = r;
      if (smallest === i) return;
      this.swap(i, smallest);
      i = smallest;
    }
  }

  private rebuildAges(): void {
    const live = [...this.clients.entries()].map(([clientId, c]) => ({ clientId, lastSeenMs: c.lastSeenMs }));
    live.sort((a, b) => (older(a, b) ? -1 : older(b, a) ? 1 : 0));
    this.ages = live; // a sorted array is a valid min-heap
  }

  private swap(i: number, j: number): void {
    const t = this.ages[i]!;
    this.ages[i] = this.ages[j]!;
    this.ages[j] = t;
  }
}

/** The total order of eviction: least recently seen first, then by client id. */
function older(a: AgeEntry, b: AgeEntry): boolean {
  return a.lastSeenMs < b.lastSeenMs || (a.lastSeenMs === b.lastSeenMs && a.clientId < b.clientId);
}

function clientKey(clientId: string): Uint8Array {
  return concatBytes(CLIENT_PREFIX, utf8(clientId));
}

function encodeClient(c: ClientRecord): Uint8Array {
  const out = batchBytes(CLIENT_RECORD_HEADER_BYTES + c.response.byteLength);
  writeU64(out, 0, c.lastSeq);
  writeU64(out, 8, c.lastSeenMs);
  out.set(c.response, CLIENT_RECORD_HEADER_BYTES);
  return out;
}

/**
 * The UTF-8 length of a client id, or undefined when it is not well-formed (a lone surrogate would not survive the
 * trip through UTF-8). Ids are nearly always ASCII, whose length is the answer, with no encoding and decoding per
 * request; anything else takes that round trip.
 */
function utf8Bytes(s: string): number | undefined {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) >= 0x80) {
      const encoded = utf8(s);
      return fromUtf8(encoded) === s ? encoded.byteLength : undefined;
    }
  }
  return s.length;
}
