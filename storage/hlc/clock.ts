// The node's hybrid logical clock: issues HLC values that never go backwards, even across restarts and when the
// physical clock jumps back, and that stay close to physical time when it behaves.
//
// Durability by reservation. A restarted node must never issue a value lower than (or equal to) one it issued
// before, but its physical clock may have been set back while it was down. Writing every issued value to disk
// would cost a synced write per proposal, so instead the clock persists a *reservation*: an upper bound on the
// wall part of every value it will issue, taken ahead of time, like a lease on the future. On restart the clock
// starts above the persisted bound, which is at least as high as anything it issued.
//
//   time ->        issued values                reserved bound (durable)
//   ---------------|||||||||||||||-------------|-------------->
//                  ^ head                      ^ bound = head + reservationWindowMs when renewed
//
// Rules:
//   - `reserve(batch)` puts a new bound into the batch once the head comes within half a window of the durable
//     bound; the caller writes the batch with sync and then calls `reservationPersisted(bound)`.
//   - `now()` never issues a value whose wall part exceeds the *durable* bound. If the physical clock leaps past
//     it (a forward jump, or a slow disk), values are clamped to the bound with a rising logical counter; only
//     when those are used up does `now()` throw RESERVATION_EXHAUSTED, and the caller retries after persisting.
//   - After a restart the first value is above (bound, HLC_LOGICAL_MAX), so it is strictly greater than any value
//     issued before, whatever the physical clock says.
//
// This state is local to the member (not replicated, not in snapshots): each member reserves for itself.
import { assert } from '../../raft/errors.js';
import type { Backend, KvBatch } from '../backend.js';
import { errClockOffsetTooLarge, errReservationExhausted } from './errors.js';
import { HLC_LOGICAL_MAX, HLC_WALL_MS_MAX, HLC_ZERO, hlcLogical, hlcMax, hlcOf, hlcWallMs, isHlc, type Hlc } from './hlc.js';
import { readSafeU64, u64, utf8 } from './section.js';

/**
 * The one key the clock owns: the durable reservation (u64 wall milliseconds). Member-local keys live under
 * 'local/' (never in a snapshot image), which sorts after the revision rows: a key written every few seconds must
 * not sort in front of them (docs/storage.md, "Key order and LevelDB compaction").
 */
export const HLC_RESERVATION_KEY = utf8('local/hlc/reserved');
/** Where stores written before kept the reservation: read at open, deleted with the next reservation. */
export const LEGACY_HLC_RESERVATION_KEY = utf8('hlc/c/reserved');

export interface HybridClockConfig {
  /** Physical wall clock in milliseconds. Injected: tests drive it by hand; production passes Date.now. */
  readonly physicalNowMs: () => number;
  /** How far ahead of the head a new reservation reaches. Larger: fewer writes; restarts jump further ahead. */
  readonly reservationWindowMs: number;
  /** observe() refuses remote values further than this ahead of the physical clock (a broken remote clock). */
  readonly maxRemoteLeadMs: number;
}

export const HYBRID_CLOCK_DEFAULTS = { reservationWindowMs: 10_000, maxRemoteLeadMs: 60_000 } as const;

export function validateHybridClockConfig(
  config: Partial<HybridClockConfig> & Pick<HybridClockConfig, 'physicalNowMs'>,
): Readonly<HybridClockConfig> {
  const c = { ...HYBRID_CLOCK_DEFAULTS, ...config };
  if (!Number.isSafeInteger(c.reservationWindowMs) || c.reservationWindowMs < 2) {
    throw new RangeError(`reservationWindowMs must be an integer >= 2, got ${c.reservationWindowMs}`);
  }
  if (!(c.maxRemoteLeadMs > 0)) throw new RangeError(`maxRemoteLeadMs must be positive, got ${c.maxRemoteLeadMs}`);
  return Object.freeze(c);
}

export class HybridClock {
  private last: Hlc;
  private durableBoundMs: number;
  private pendingBoundMs: number;
  /** The store still holds LEGACY_HLC_RESERVATION_KEY: the next reservation deletes it. */
  private legacyKeyStored = false;

  private constructor(
    private readonly config: Readonly<HybridClockConfig>,
    durableBoundMs: number,
  ) {
    this.durableBoundMs = durableBoundMs;
    this.pendingBoundMs = durableBoundMs;
    // A bound of 0 means a fresh member: it never issued anything.
    this.last = durableBoundMs === 0 ? HLC_ZERO : hlcOf(durableBoundMs, HLC_LOGICAL_MAX);
  }

  /** Open the clock, resuming above the reservation persisted by the previous run (if any). */
  static async open(
    backend: Backend,
    config: Partial<HybridClockConfig> & Pick<HybridClockConfig, 'physicalNowMs'>,
  ): Promise<HybridClock> {
    const stored = await backend.get(HLC_RESERVATION_KEY);
    const legacy = await backend.get(LEGACY_HLC_RESERVATION_KEY);
    const bound = Math.max(stored === undefined ? 0 : readSafeU64(stored), legacy === undefined ? 0 : readSafeU64(legacy));
    const clock = new HybridClock(validateHybridClockConfig(config), bound);
    clock.legacyKeyStored = legacy !== undefined;
    return clock;
  }

  /** Issue a value greater than every value issued or observed before. */
  now(): Hlc {
    const next = this.clampToReservation(this.successor(this.physicalMs()));
    this.last = next;
    return next;
  }

  /** Merge a value seen from elsewhere (a peer's message, a log entry) so later values sort after it. */
  observe(remote: Hlc): void {
    assert(isHlc(remote), () => `observe: not an hlc: ${remote}`);
    const physical = this.physicalMs();
    const remoteWall = hlcWallMs(remote);
    if (remoteWall > physical + this.config.maxRemoteLeadMs) {
      throw errClockOffsetTooLarge(remoteWall, physical, this.config.maxRemoteLeadMs);
    }
    this.last = hlcMax(this.last, remote);
  }

  /** The highest value issued or observed so far. */
  current(): Hlc {
    return this.last;
  }

  /** The reservation that is durable: no issued value has a wall part above it. */
  reservedThroughMs(): number {
    return this.durableBoundMs;
  }

  /**
   * If the head is within half a window of the reserved bound, put a new bound into the batch and return it.
   * The caller writes the batch with `{ sync: true }` and then calls `reservationPersisted(bound)`.
   */
  reserve(batch: KvBatch): number | undefined {
    const head = this.head();
    if (!this.nearBound(head)) return undefined;
    const bound = Math.min(head + this.config.reservationWindowMs, HLC_WALL_MS_MAX);
    batch.put(HLC_RESERVATION_KEY, u64(bound));
    if (this.legacyKeyStored) batch.del(LEGACY_HLC_RESERVATION_KEY);
    this.pendingBoundMs = bound;
    return bound;
  }

  /** Whether reserve() would write a new bound now (callers skip building a batch when it would not). */
  needsReservation(): boolean {
    return this.nearBound(this.head());
  }

  private head(): number {
    return Math.max(this.physicalMs(), hlcWallMs(this.last));
  }

  private nearBound(head: number): boolean {
    return head + Math.floor(this.config.reservationWindowMs / 2) > this.pendingBoundMs;
  }

  /** The batch holding `bound` is durable: values up to it may be issued. */
  reservationPersisted(boundMs: number): void {
    assert(Number.isSafeInteger(boundMs) && boundMs <= this.pendingBoundMs, () => `unknown reservation ${boundMs}`);
    this.durableBoundMs = Math.max(this.durableBoundMs, boundMs);
    this.legacyKeyStored = false; // deleted by the batch that held the bound
  }

  private physicalMs(): number {
    const ms = Math.floor(this.config.physicalNowMs());
    assert(Number.isSafeInteger(ms) && ms >= 0, () => `physical clock returned ${ms}`);
    return Math.min(ms, HLC_WALL_MS_MAX);
  }

  /** The classic HLC send rule: the later of physical time and the last value, with the logical counter breaking ties. */
  private successor(physicalMs: number): Hlc {
    const lastWall = hlcWallMs(this.last);
    if (physicalMs > lastWall) return hlcOf(physicalMs, 0);
    const logical = hlcLogical(this.last);
    // A full logical counter borrows the next millisecond: the clock runs slightly ahead of physical time instead
    // of going backwards or repeating a value.
    return logical < HLC_LOGICAL_MAX ? hlcOf(lastWall, logical + 1) : hlcOf(lastWall + 1, 0);
  }

  /** Never issue above the durable reservation: clamp to it while logical values remain, else refuse. */
  private clampToReservation(candidate: Hlc): Hlc {
    if (hlcWallMs(candidate) <= this.durableBoundMs) return candidate;
    // A fresh member has reserved nothing: clamping to 0 would issue values from 1970. Reserve first.
    if (this.durableBoundMs === 0) throw errReservationExhausted(0);
    const lastWall = hlcWallMs(this.last);
    if (lastWall < this.durableBoundMs) return hlcOf(this.durableBoundMs, 0);
    if (lastWall === this.durableBoundMs && hlcLogical(this.last) < HLC_LOGICAL_MAX) {
      return hlcOf(this.durableBoundMs, hlcLogical(this.last) + 1);
    }
    throw errReservationExhausted(this.durableBoundMs);
  }
}
