// Requests waiting on Raft (a proposal's apply, a read barrier), each bounded by the request timeout or the
// client's deadline and ended early by the client's cancel: one timer per member sweeps them all.
//
// Why: a timer, a 'cancelled' listener and four closures per request were ~1 KB of garbage per put (the largest
// single item of a leader's allocation profile at 1,000 puts in flight, thirty-fifth session), and setTimeout /
// clearTimeout and the listener's add and remove ran for every request. A sweep every DEADLINE_SWEEP_MS costs one
// pass over the waiting requests instead; a request times out or notices its cancel at most that much late.
import { apiError } from './errors.js';
import type { SurfaceCall } from './kv.js';

/** How often the waiting requests' deadlines and cancels are checked. */
export const DEADLINE_SWEEP_MS = 25;
/** Requests one member waits for at once; past it a request fails at once (etcd's "too many requests"). */
export const WAITING_REQUESTS_MAX = 1_000_000;

/** What the sweep sees of a waiting request. */
interface Pending {
  readonly call: SurfaceCall;
  /** Date.now() at which it times out. */
  readonly at: number;
  fail(e: unknown): void;
}

class Waiter<T> implements Pending {
  private done = false;

  constructor(
    readonly call: SurfaceCall,
    readonly at: number,
    private readonly resolve: (v: T) => void,
    private readonly reject: (e: unknown) => void,
    private readonly owner: WaitingRequests,
  ) {}

  settle(v: T): void {
    if (this.done) return;
    this.done = true;
    this.owner.forget(this);
    this.resolve(v);
  }

  fail(e: unknown): void {
    if (this.done) return;
    this.done = true;
    this.owner.forget(this);
    this.reject(e);
  }
}

export class WaitingRequests {
  private readonly waiting = new Set<Pending>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sweepMs = DEADLINE_SWEEP_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** How many requests wait now. */
  get size(): number {
    return this.waiting.size;
  }

  /**
   * `work`'s outcome, or etcd's "request timed out" once `waitMs` have passed, or a TIMEOUT saying the client
   * cancelled. `work` is handled whatever happens (both handlers), so its failure after we stopped waiting is not
   * an unhandled rejection; the work itself may still complete later (a proposal cannot be taken back).
   */
  wait<T>(call: SurfaceCall, waitMs: number, work: Promise<T>): Promise<T> {
    if (this.waiting.size >= WAITING_REQUESTS_MAX) {
      work.catch(() => {});
      return Promise.reject(apiError('TOO_MANY_REQUESTS'));
    }
    return new Promise<T>((resolve, reject) => {
      const w = new Waiter<T>(call, this.now() + waitMs, resolve, reject, this);
      this.waiting.add(w);
      this.timer ??= setInterval(() => this.sweep(), this.sweepMs).unref();
      work.then(
        (v) => w.settle(v),
        (e: unknown) => w.fail(e),
      );
    });
  }

  forget(w: Pending): void {
    this.waiting.delete(w);
    if (this.waiting.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Fail every request whose client cancelled or whose time is up. */
  sweep(): void {
    const now = this.now();
    for (const w of this.waiting) {
      if (w.call.cancelled) w.fail(apiError('TIMEOUT', 'fulcrum: call cancelled by the client'));
      else if (now >= w.at) w.fail(apiError('TIMEOUT'));
    }
  }
}

const byContext = new WeakMap<object, WaitingRequests>();

/** The member's waiting requests (one set per API context, made on first use). */
export function waitingRequestsOf(ctx: object): WaitingRequests {
  let w = byContext.get(ctx);
  if (w === undefined) byContext.set(ctx, (w = new WaitingRequests()));
  return w;
}
