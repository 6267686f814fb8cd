// Reconnect delays: exponential from min to max, with jitter so that members restarting together do not
// reconnect in lock-step (and a recovering peer is not hit by every other member at the same instant).

export class Backoff {
  private failures = 0;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt: in [d/2, d] where d = min * 2^failures, capped at max. */
  next(): number {
    const d = Math.min(this.maxMs, this.minMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return Math.round(d / 2 + (this.random() * d) / 2);
  }

  reset(): void {
    this.failures = 0;
  }
}
