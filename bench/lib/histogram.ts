// Latency histograms for the load programs: HdrHistogram (3 significant digits) over microseconds, summarised
// in milliseconds. One histogram per phase; merge per-worker histograms with `add` if a phase ever needs them.
import * as hdr from 'hdr-histogram-js';

/** Latencies above this are clamped (and still counted): a request slower than a minute is a failure anyway. */
export const LATENCY_US_MAX = 60_000_000;

export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

export class LatencyHistogram {
  private readonly histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: LATENCY_US_MAX,
    numberOfSignificantValueDigits: 3,
  });

  /** Records one latency given in milliseconds (performance.now() differences). */
  recordMs(ms: number): void {
    const us = Math.min(LATENCY_US_MAX, Math.max(1, Math.round(ms * 1000)));
    this.histogram.recordValue(us);
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  summary(): LatencySummary {
    const h = this.histogram;
    const ms = (us: number): number => Math.round(us) / 1000;
    if (h.totalCount === 0) return { count: 0, meanMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0 };
    return {
      count: h.totalCount,
      meanMs: ms(h.mean),
      p50Ms: ms(h.getValueAtPercentile(50)),
      p90Ms: ms(h.getValueAtPercentile(90)),
      p99Ms: ms(h.getValueAtPercentile(99)),
      p999Ms: ms(h.getValueAtPercentile(99.9)),
      maxMs: ms(h.maxValue),
    };
  }

  destroy(): void {
    this.histogram.destroy();
  }
}
