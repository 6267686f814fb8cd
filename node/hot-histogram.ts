// A Prometheus histogram for values observed on a member's hot path (every persist, every applied batch).
//
// Why not prom-client's Histogram there: each of its observe() calls wraps the labels in a new object, validates
// them, builds the label string the series is found by, and looks the bucket up by its bound converted to a
// string. At one put in flight, where every put runs on caches the other processes have just emptied, that was
// 2-2.6 % of a follower's main thread (`perf` with --perf-basic-prof, docs/performance.md, thirty-third session).
// Here a member resolves its series once (child()) and observe() is a search over the bounds and three additions.
//
// The exposition is prom-client's own: the registry formats what get() returns exactly as it formats its
// Histogram's (hot-histogram.test.ts compares the two byte for byte), so scrapes and dashboards see no change.
import type { Registry } from 'prom-client';

/** One series (one set of label values) of a HotHistogram. */
export interface HistogramSeries {
  /** Count `value` (seconds, say) into its bucket. A value that is not a finite number is refused, as prom-client does. */
  observe(value: number): void;
}

interface Series extends HistogramSeries {
  readonly labels: Readonly<Record<string, string>>;
  /** Observations per bucket, not cumulative; the last slot is above every bound (+Inf). */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

interface ExportedValue {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly sharedLabels?: Record<string, string>;
  readonly metricName: string;
  /** Always null on buckets and absent on sum and count (no exemplars here), as prom-client reports it without them. */
  readonly exemplar?: null;
}

export interface HotHistogramOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  /** Upper bounds, strictly increasing and finite (+Inf is implied). */
  readonly buckets: readonly number[];
  readonly registers: readonly Registry[];
}

/** Series one histogram may hold: label values come from the member set, never from requests. */
export const HOT_HISTOGRAM_SERIES_MAX = 1_000;

export class HotHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly labelNames: readonly L[];
  private readonly bounds: Float64Array;
  private readonly series = new Map<string, Series>();

  constructor(o: HotHistogramOptions<L>) {
    if (o.labelNames.includes('le' as L)) throw new Error('le is a reserved label name');
    o.buckets.forEach((b, i) => {
      if (!Number.isFinite(b) || (i > 0 && b <= o.buckets[i - 1]!)) throw new RangeError(`histogram ${o.name}: bucket bounds must be finite and increasing, got ${o.buckets.join(', ')}`);
    });
    this.name = o.name;
    this.help = o.help;
    this.labelNames = [...o.labelNames];
    this.bounds = Float64Array.from(o.buckets);
    for (const r of o.registers) r.registerMetric(this as never);
  }

  /** The series of these label values, created with every bucket at zero the first time (so a scrape shows it). */
  child(labels: Readonly<Record<L, string>>): HistogramSeries {
    const key = this.keyOf(labels);
    let s = this.series.get(key);
    if (s === undefined) {
      if (this.series.size >= HOT_HISTOGRAM_SERIES_MAX) throw new RangeError(`histogram ${this.name}: more than ${HOT_HISTOGRAM_SERIES_MAX} series`);
      s = newSeries({ ...labels }, this.bounds);
      this.series.set(key, s);
    }
    return s;
  }

  /** Forget the series of these label values (a member that closed). */
  remove(labels: Readonly<Record<L, string>>): void {
    this.series.delete(this.keyOf(labels));
  }

  /** Zero every series (Registry.resetMetrics). Series handed out by child() stay valid. */
  reset(): void {
    for (const s of this.series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }

  /** What Registry.metrics() formats: bucket labels apart from the series' own, as prom-client's Histogram does. */
  getForPromString(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ExportedValue[] }> {
    const values: ExportedValue[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ value: cumulative, labels: { le }, sharedLabels: s.labels, metricName: `${this.name}_bucket`, exemplar: null });
      });
      values.push({ value: s.count, labels: { le: '+Inf' }, sharedLabels: s.labels, metricName: `${this.name}_bucket`, exemplar: null });
      values.push({ value: s.sum, labels: {}, sharedLabels: s.labels, metricName: `${this.name}_sum` });
      values.push({ value: s.count, labels: {}, sharedLabels: s.labels, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  /** What Registry.getMetricsAsJSON() returns: every value's labels in one object. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ExportedValue[] }> {
    const data = await this.getForPromString();
    return { ...data, values: data.values.map(({ sharedLabels, ...v }) => ({ ...v, labels: { ...v.labels, ...sharedLabels } })) };
  }

  private keyOf(labels: Readonly<Record<L, string>>): string {
    return this.labelNames.map((n) => {
      const v = labels[n];
      if (typeof v !== 'string') throw new TypeError(`histogram ${this.name}: label ${n} is missing`);
      return v;
    }).join('\u0000');
  }
}

function newSeries(labels: Record<string, string>, bounds: Float64Array): Series {
  const s: Series = {
    labels,
    counts: new Float64Array(bounds.length + 1),
    sum: 0,
    count: 0,
    observe(value: number): void {
      if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${String(value)}`);
      let i = 0;
      while (i < bounds.length && value > bounds[i]!) i++;
      s.counts[i] = s.counts[i]! + 1;
      s.sum += value;
      s.count++;
    },
  };
  return s;
}
