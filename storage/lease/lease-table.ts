// The replicated lease table: which leases exist, their granted TTL and the last checkpointed remaining TTL.
// Which keys a lease holds is the MVCC store's to say (MvccStore.keysWithLease): one source of truth, derived
// from the key data itself. Every change comes from an applied log entry, so every member holds the same
// table; nothing here reads a clock. Whether a lease has *expired* is decided on the leader by the
// LeaseExpiryTracker, which then proposes a revoke through the log like any client would.
//
// Durable form (all under LEASE_PREFIX, written into the composer's batch):
//   lease/l/<u64 id>           -> u64 ttlSeconds | u8 hasCheckpoint | u64 remainingTtlMs
//   lease/m/next               -> u64 next id         only once an id was picked by the table
import { assert } from '../../raft/errors.js';
import type { Backend, KvBatch } from '../backend.js';
import { concatBytes, readPrefix, readSafeU64, readU64, startsWith, u64, utf8, type Pair } from '../hlc/section.js';
import { errInvalidLease, errLeaseExists, errLeaseNotFound, errLeaseTtlTooLarge, errTooManyLeases } from './errors.js';

/** etcd lease ids are positive int64 values; 0 means "no lease" (and, in a grant, "pick one for me"). */
export type LeaseId = bigint;
export const NO_LEASE: LeaseId = 0n;
export const LEASE_ID_MAX: LeaseId = (1n << 63n) - 1n;

export const LEASE_PREFIX = utf8('lease/');
const LEASE_RECORD_PREFIX = utf8('lease/l/');
const NEXT_ID_KEY = utf8('lease/m/next');
const LEASE_RECORD_BYTES = 17;

/** etcd's MaxLeaseTTL: 9,000,000,000 seconds (about 285 years). */
export const LEASE_TTL_MAX_SECONDS = 9_000_000_000;
/** Bound on live leases: the table lives in memory on every member. */
export const LEASES_MAX = 100_000;

export interface LeaseTableConfig {
  /** Shorter TTLs are raised to this, as etcd does (it derives it from 1.5 election timeouts, rounded up). */
  readonly minTtlSeconds: number;
  readonly maxTtlSeconds: number;
  readonly leasesMax: number;
}

export const LEASE_TABLE_DEFAULTS: LeaseTableConfig = { minTtlSeconds: 2, maxTtlSeconds: LEASE_TTL_MAX_SECONDS, leasesMax: LEASES_MAX };

export function validateLeaseTableConfig(config: Partial<LeaseTableConfig> = {}): Readonly<LeaseTableConfig> {
  const c = { ...LEASE_TABLE_DEFAULTS, ...config };
  const positive = (n: number): boolean => Number.isSafeInteger(n) && n > 0;
  if (!positive(c.minTtlSeconds)) throw new RangeError(`minTtlSeconds must be a positive integer, got ${c.minTtlSeconds}`);
  if (!positive(c.maxTtlSeconds) || c.maxTtlSeconds < c.minTtlSeconds) {
    throw new RangeError(`maxTtlSeconds must be an integer >= minTtlSeconds, got ${c.maxTtlSeconds}`);
  }
  if (!positive(c.leasesMax)) throw new RangeError(`leasesMax must be a positive integer, got ${c.leasesMax}`);
  return Object.freeze(c);
}

/** What every member knows about a lease. */
export interface LeaseInfo {
  readonly id: LeaseId;
  /** The granted TTL, after raising it to the minimum. */
  readonly ttlSeconds: number;
  /** Remaining TTL at the last checkpoint through the log; undefined: never checkpointed (count the full TTL). */
  readonly remainingTtlMs: number | undefined;
}

interface LeaseRecord {
  readonly id: LeaseId;
  readonly ttlSeconds: number;
  remainingTtlMs: number | undefined;
}

export class LeaseTable {
  private readonly leases = new Map<LeaseId, LeaseRecord>();
  /** The next id the table tries when a grant asks it to pick (id 0). */
  private nextId: LeaseId = 1n;

  private constructor(private readonly config: Readonly<LeaseTableConfig>) {}

  static empty(config: Partial<LeaseTableConfig> = {}): LeaseTable {
    return new LeaseTable(validateLeaseTableConfig(config));
  }

  static async open(backend: Backend, config: Partial<LeaseTableConfig> = {}): Promise<LeaseTable> {
    const table = LeaseTable.empty(config);
    table.load(await readPrefix(backend, LEASE_PREFIX));
    return table;
  }

  get size(): number {
    return this.leases.size;
  }

  has(id: LeaseId): boolean {
    return this.leases.has(id);
  }

  /**
   * Grant a lease. `id` 0 lets the table pick the lowest unused id at or above its counter, which is the same on
   * every member because it depends only on the log. A TTL below the minimum is raised to it (etcd's rule).
   */
  grant(id: LeaseId, ttlSeconds: number, batch: KvBatch): LeaseInfo {
    if (id < NO_LEASE || id > LEASE_ID_MAX) throw errInvalidLease(`lease id ${id} is not a positive int64`);
    if (!Number.isSafeInteger(ttlSeconds)) throw errInvalidLease(`ttl ${ttlSeconds} is not an integer number of seconds`);
    if (ttlSeconds > this.config.maxTtlSeconds) throw errLeaseTtlTooLarge();
    if (id !== NO_LEASE && this.leases.has(id)) throw errLeaseExists();
    if (this.leases.size >= this.config.leasesMax) throw errTooManyLeases(this.config.leasesMax);
    const leaseId = id === NO_LEASE ? this.pickId(batch) : id;
    const lease: LeaseRecord = { id: leaseId, ttlSeconds: Math.max(ttlSeconds, this.config.minTtlSeconds), remainingTtlMs: undefined };
    this.leases.set(leaseId, lease);
    batch.put(leaseKey(leaseId), encodeLease(lease));
    return info(lease);
  }

  /**
   * Remove a lease. The composer deletes its keys (MvccStore.keysWithLease) from the MVCC store in the same applied
   * entry: etcd deletes a revoked lease's keys in one transaction.
   */
  revoke(id: LeaseId, batch: KvBatch): void {
    this.mustGet(id);
    batch.del(leaseKey(id));
    this.leases.delete(id);
  }

  /**
   * Record the leader's view of a lease's remaining TTL, so a new leader continues the countdown instead of
   * restarting it. A checkpoint for a lease already revoked is ignored (revoke and checkpoint race in the log),
   * and returns false. The value is clamped to the granted TTL.
   *
   * A checkpoint that changes nothing writes nothing: every renewal logs "full TTL left", so a lease kept alive
   * checkpoints the same value over and over, and each member rewrote the same record for each one.
   */
  checkpoint(id: LeaseId, remainingTtlMs: number, batch: KvBatch): boolean {
    if (!Number.isSafeInteger(remainingTtlMs) || remainingTtlMs < 0) throw errInvalidLease(`remaining ttl ${remainingTtlMs}ms`);
    const lease = this.leases.get(id);
    if (lease === undefined) return false;
    const remaining = Math.min(remainingTtlMs, lease.ttlSeconds * 1000);
    if (lease.remainingTtlMs === remaining) return true;
    lease.remainingTtlMs = remaining;
    batch.put(leaseKey(id), encodeLease(lease));
    return true;
  }

  get(id: LeaseId): LeaseInfo | undefined {
    const lease = this.leases.get(id);
    return lease === undefined ? undefined : info(lease);
  }

  /** Every lease, by id. */
  list(): LeaseInfo[] {
    return [...this.leases.values()].sort((a, b) => compareIds(a.id, b.id)).map(info);
  }

  /** Every durable pair of the table in key order: exactly what the backend holds under LEASE_PREFIX. */
  pairs(): Pair[] {
    const out: Pair[] = [];
    const ids = [...this.leases.keys()].sort(compareIds);
    for (const id of ids) out.push([leaseKey(id), encodeLease(this.leases.get(id)!)]);
    if (this.nextId !== 1n) out.push([NEXT_ID_KEY, u64(this.nextId)]);
    return out;
  }

  private mustGet(id: LeaseId): LeaseRecord {
    const lease = this.leases.get(id);
    if (lease === undefined) throw errLeaseNotFound();
    return lease;
  }

  private pickId(batch: KvBatch): LeaseId {
    let id = this.nextId;
    while (this.leases.has(id)) id++;
    assert(id <= LEASE_ID_MAX, 'lease id space exhausted');
    this.nextId = id + 1n;
    batch.put(NEXT_ID_KEY, u64(this.nextId));
    return id;
  }

  /** Rebuild memory from the pairs under LEASE_PREFIX. */
  private load(pairs: readonly Pair[]): void {
    for (const [k, v] of pairs) {
      if (startsWith(k, LEASE_RECORD_PREFIX)) {
        const lease = decodeLease(readU64(k, LEASE_RECORD_PREFIX.byteLength), v);
        this.leases.set(lease.id, lease);
      } else {
        assert(k.byteLength === NEXT_ID_KEY.byteLength && startsWith(k, NEXT_ID_KEY), () => `unknown lease key ${toHex(k)}`);
        this.nextId = readU64(v);
      }
    }
    assert(this.leases.size <= this.config.leasesMax, 'lease table holds more leases than its bound');
  }
}

function info(lease: LeaseRecord): LeaseInfo {
  return { id: lease.id, ttlSeconds: lease.ttlSeconds, remainingTtlMs: lease.remainingTtlMs };
}

function leaseKey(id: LeaseId): Uint8Array {
  return concatBytes(LEASE_RECORD_PREFIX, u64(id));
}

function encodeLease(lease: LeaseRecord): Uint8Array {
  const checkpointed = lease.remainingTtlMs !== undefined;
  return concatBytes(u64(lease.ttlSeconds), new Uint8Array([checkpointed ? 1 : 0]), u64(lease.remainingTtlMs ?? 0));
}

function decodeLease(id: LeaseId, bytes: Uint8Array): LeaseRecord {
  assert(bytes.byteLength === LEASE_RECORD_BYTES && (bytes[8] === 0 || bytes[8] === 1), () => `corrupt lease record ${id}`);
  const remaining = bytes[8] === 1 ? readSafeU64(bytes, 9) : undefined;
  return { id, ttlSeconds: readSafeU64(bytes, 0), remainingTtlMs: remaining };
}

function compareIds(a: LeaseId, b: LeaseId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
