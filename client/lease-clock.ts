// When a kept-alive lease is certainly still alive, by the client's own monotonic clock (performance.now()).
//
// The server renews a lease when a keep-alive reaches it, which is after the client sent it; it then keeps the
// lease for at least the TTL it answers (docs/leases-hlc-dedup.md: "never sooner than T after the last
// acknowledged keep-alive", counted from a moment after the request arrived). So if the client sent a
// keep-alive at s and the answer says TTL T, the server cannot expire the lease before s + T on any clock that
// runs at the same rate. Only differences on one clock are used, never the server's time.
//
//   sent at 100 ─────► server renews at 103 (deadline 103+T) ─────► answer "TTL T" arrives at 106
//   the client's deadline: 100 + T  (≤ 103 + T, however long each leg took)
//
// Answers on one keep-alive stream come in request order (node/api/lease.ts and etcd), so the oldest
// unanswered send time belongs to the next answer. A stream that breaks forgets its unanswered sends: their
// answers will never come, and a late renewal that the client never heard of only makes the lease live longer.
//
// `validUntil` is that deadline minus a margin, which covers clock-rate differences and the time a timer may
// fire late in a busy event loop: the lease's `lost` signal fires then, before the server could expire it.
import { InvalidArgumentError } from './errors.js';

/** Keep-alives sent and not answered on one stream: more means the stream is stuck, and it is replaced first. */
export const KEEPALIVES_UNANSWERED_MAX = 16;
/** The default margin: a tenth of the TTL, at least this and at most LEASE_MARGIN_MAX_MS. */
export const LEASE_MARGIN_MIN_MS = 50;
export const LEASE_MARGIN_MAX_MS = 1_000;

/** An answer is awaited this many smoothed round trips (lease.ts bounds it). */
export const ANSWER_TIMEOUT_LATENCIES = 8;
/** Weight of a new round-trip sample in the smoothed one. */
const LATENCY_WEIGHT = 0.2;

export function defaultLeaseMarginMs(ttlSeconds: number): number {
  return Math.min(LEASE_MARGIN_MAX_MS, Math.max(LEASE_MARGIN_MIN_MS, ttlSeconds * 100));
}

export class LeaseClock {
  /** Monotonic ms before which the server cannot have expired the lease. */
  private serverDeadlineMs: number;
  private readonly unanswered: number[] = [];

  /**
   * @param grantSentAtMs when the grant request was first sent (the earliest moment the lease can have begun)
   * @param ttlSeconds the TTL the grant answered
   * @param marginMs how long before the server's earliest expiry the lease counts as lost
   */
  constructor(
    grantSentAtMs: number,
    ttlSeconds: number,
    readonly marginMs: number,
  ) {
    if (!(ttlSeconds > 0)) throw new InvalidArgumentError(`fulcrum client: a lease TTL must be positive, got ${ttlSeconds}`);
    if (!(marginMs >= 0) || marginMs >= ttlSeconds * 1000) throw new InvalidArgumentError(`fulcrum client: the lease margin (${marginMs} ms) must be below the TTL (${ttlSeconds} s)`);
    this.serverDeadlineMs = grantSentAtMs + ttlSeconds * 1000;
  }

  /** The client's deadline: the lease is certainly alive before it. */
  get validUntilMs(): number {
    return this.serverDeadlineMs - this.marginMs;
  }

  /** The earliest moment the server may expire the lease (no margin). */
  get earliestExpiryMs(): number {
    return this.serverDeadlineMs;
  }

  get unansweredCount(): number {
    return this.unanswered.length;
  }

  /** The send time of the oldest unanswered keep-alive (to notice a stream that stopped answering). */
  get oldestUnansweredMs(): number | undefined {
    return this.unanswered[0];
  }

  /** A keep-alive was written to the stream at `nowMs`. False when too many are unanswered (replace the stream). */
  sent(nowMs: number): boolean {
    if (this.unanswered.length >= KEEPALIVES_UNANSWERED_MAX) return false;
    this.unanswered.push(nowMs);
    return true;
  }

  /**
   * The next answer arrived with this TTL. Returns 'expired' when the server says the lease is gone (TTL <= 0),
   * otherwise the new validUntil. An answer with no request outstanding is a protocol error: ignore it.
   */
  answered(ttlSeconds: number, nowMs?: number): number | 'expired' | 'unexpected' {
    const sentAt = this.unanswered.shift();
    if (sentAt === undefined) return 'unexpected';
    if (nowMs !== undefined) this.observeLatency(nowMs - sentAt);
    return this.renewed(sentAt, ttlSeconds);
  }

  /**
   * How long to wait for an answer before trying another member: a few times the answers seen so far (a
   * smoothed round trip), never below `floorMs` nor above `capMs`; the cap until anything was measured.
   * A member that died or lost its leader is then left within about a second, however long the TTL, instead
   * of half a keep-alive interval; a slow but healthy cluster raises the estimate and is waited for.
   */
  answerTimeoutMs(floorMs: number, capMs: number): number {
    if (this.latencyMs === undefined) return capMs;
    return Math.min(capMs, Math.max(floorMs, ANSWER_TIMEOUT_LATENCIES * this.latencyMs));
  }

  /** No answer came within answerTimeoutMs: wait twice as long next time (an answer slower than the timeout is never timed). */
  answerTimedOut(): void {
    if (this.latencyMs !== undefined) this.latencyMs *= 2;
  }

  private latencyMs: number | undefined;

  private observeLatency(ms: number): void {
    // An exponentially weighted mean that rises at once (max) and falls slowly: a slow answer is taken seriously.
    this.latencyMs = this.latencyMs === undefined ? ms : Math.max(ms, this.latencyMs * (1 - LATENCY_WEIGHT) + ms * LATENCY_WEIGHT);
  }

  /** A keep-alive sent at `sentAtMs` (on any stream or call) was answered with this TTL. */
  renewed(sentAtMs: number, ttlSeconds: number): number | 'expired' {
    if (ttlSeconds <= 0) return 'expired';
    this.serverDeadlineMs = Math.max(this.serverDeadlineMs, sentAtMs + ttlSeconds * 1000);
    return this.validUntilMs;
  }

  /** The stream broke: answers to what it carried will never come. */
  streamLost(): void {
    this.unanswered.length = 0;
  }
}
