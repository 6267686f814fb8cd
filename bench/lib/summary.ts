// From every run's rows to the figures people read: the median per system of each metric of each row, and the
// ratio Fulcrum/etcd. Medians over alternating rounds: a noisy neighbour that slowed one round slows one value
// of each system, and the median drops it.
import { METRICS, type Row } from './workloads.js';
import type { SystemName } from './systems.js';

export interface SummaryLine {
  readonly row: string;
  readonly metric: string;
  readonly label: string;
  readonly unit: string;
  readonly better: 'higher' | 'lower' | 'zero' | 'info';
  readonly fulcrum: number | null;
  readonly etcd: number | null;
  /** fulcrum / etcd to two decimals (as printed), null when either is missing or etcd's is 0. */
  readonly ratio: number | null;
  /** The same ratio unrounded: what a target is checked against (0.996 must not pass "at least 1.0"). */
  readonly ratioExact: number | null;
  /** How many rounds each median is over. */
  readonly runs: Readonly<Record<SystemName, number>>;
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const round = (n: number): number => (Math.abs(n) >= 100 ? Math.round(n) : Math.round(n * 1000) / 1000);

export function summarize(rows: readonly Row[]): SummaryLine[] {
  const order: string[] = [];
  for (const r of rows) if (!order.includes(r.row)) order.push(r.row);
  const lines: SummaryLine[] = [];
  for (const name of order) {
    const mine = rows.filter((r) => r.row === name);
    const metricNames: string[] = [];
    for (const r of mine) for (const m of Object.keys(r.metrics)) if (!metricNames.includes(m)) metricNames.push(m);
    for (const metric of metricNames) {
      const of = (system: SystemName): number[] => mine.filter((r) => r.system === system && metric in r.metrics).map((r) => r.metrics[metric]!);
      const f = median(of('fulcrum'));
      const e = median(of('etcd'));
      const info = METRICS[metric] ?? { label: metric, unit: '', better: 'lower' as const };
      const exact = f !== null && e !== null && e !== 0 ? f / e : null;
      lines.push({
        row: name,
        metric,
        label: info.label,
        unit: info.unit,
        better: info.better,
        fulcrum: f === null ? null : round(f),
        etcd: e === null ? null : round(e),
        ratio: exact === null ? null : Math.round(exact * 100) / 100,
        ratioExact: exact,
        runs: { fulcrum: of('fulcrum').length, etcd: of('etcd').length },
      });
    }
  }
  return lines;
}

const fmt = (n: number | null): string => {
  if (n === null) return '–';
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 100) return String(Math.round(n));
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
};

const BETTER_TEXT: Readonly<Record<SummaryLine['better'], string>> = { higher: 'higher is better', lower: 'lower is better', zero: 'must be 0', info: 'for information' };
const betterText = (b: SummaryLine['better']): string => BETTER_TEXT[b];

/** The summary as cells: workload, figure, Fulcrum, etcd, Fulcrum/etcd, which way is better. */
export function summaryCells(lines: readonly SummaryLine[]): string[][] {
  return lines.map((l) => [l.row, `${l.label}${l.unit === '' || l.unit === 'ops/s' || l.label.includes(l.unit) ? '' : ` (${l.unit})`}`, fmt(l.fulcrum), fmt(l.etcd), l.ratio === null ? '–' : l.ratio.toFixed(2), betterText(l.better)]);
}

export const SUMMARY_HEADER = ['workload', 'figure', 'Fulcrum', 'etcd', 'Fulcrum/etcd', 'better'];

/** A fixed-width table for the terminal. */
export function formatSummaryText(lines: readonly SummaryLine[]): string {
  const rows = summaryCells(lines);
  const widths = SUMMARY_HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i <= 1 || i === 5 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(SUMMARY_HEADER), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The same table in Markdown. */
export function formatSummaryMarkdown(lines: readonly SummaryLine[]): string {
  const rows = summaryCells(lines);
  return [`| ${SUMMARY_HEADER.join(' | ')} |`, '|---|---|---:|---:|---:|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** One of issue 7's targets for Fulcrum against etcd, checked against a run's medians. */
export interface TargetCheck {
  readonly target: string;
  /** The ratio Fulcrum/etcd (or Fulcrum's own figure, for "nothing lost"). */
  readonly value: number | null;
  readonly met: boolean | null;
}

/** The targets Fulcrum is to reach on the same machine (issue 7); null `met` when the run lacks the figure. */
export function targetChecks(lines: readonly SummaryLine[]): TargetCheck[] {
  const find = (row: string, metric: string): SummaryLine | undefined => lines.find((l) => l.row === row && l.metric === metric);
  const ratioCheck = (target: string, row: string, metric: string, ok: (r: number) => boolean): TargetCheck => {
    const line = find(row, metric);
    // Reports written before ratioExact existed have the medians (rounded to the unit above 100) to work it out from.
    const exact = line === undefined ? null : (line.ratioExact ?? (line.fulcrum !== null && line.etcd !== null && line.etcd !== 0 ? line.fulcrum / line.etcd : null));
    // Three decimals, so a figure just short of its target does not print as the target itself.
    return { target, value: exact === null ? null : Math.round(exact * 1000) / 1000, met: exact === null ? null : ok(exact) };
  };
  const lost = find('failover', 'lostWrites')?.fulcrum ?? null;
  return [
    ratioCheck('put throughput, 100 in flight: ratio >= 1.0', 'put-10x100', 'opsPerSec', (r) => r >= 1),
    ratioCheck('put p99, 100 in flight: ratio <= 1.0', 'put-10x100', 'p99Ms', (r) => r <= 1),
    ratioCheck('linearizable get throughput, 100 in flight: ratio >= 1.0', 'get-linearizable', 'opsPerSec', (r) => r >= 1),
    ratioCheck('linearizable get p99, 100 in flight: ratio <= 1.0', 'get-linearizable', 'p99Ms', (r) => r <= 1),
    ratioCheck('single-request put latency (p50, 1 in flight): ratio <= 1.2', 'put-1x1', 'p50Ms', (r) => r <= 1.2),
    ratioCheck('failover, time until writes succeed: ratio <= 1.0', 'failover', 'unavailableMs', (r) => r <= 1),
    { target: 'failover, acknowledged writes lost by Fulcrum: 0', value: lost, met: lost === null ? null : lost === 0 },
    ratioCheck('memory per member (largest RSS after the size load): ratio <= 1.0', 'size', 'rssMiBMax', (r) => r <= 1),
  ];
}

export function formatTargetsMarkdown(checks: readonly TargetCheck[]): string {
  const met = (m: boolean | null): string => (m === null ? 'not measured' : m ? 'met' : '**not met**');
  return ['| target (Fulcrum against etcd) | this run | |', '|---|---:|---|', ...checks.map((c) => `| ${c.target} | ${c.value === null ? '–' : c.value} | ${met(c.met)} |`)].join('\n');
}

export function formatTargetsText(checks: readonly TargetCheck[]): string {
  return checks.map((c) => `${c.met === null ? 'n/a    ' : c.met ? 'met    ' : 'NOT MET'}  ${c.target}: ${c.value ?? '–'}`).join('\n');
}

/** The figure that answers "how does it compare" for each workload row, for the one-line standing. */
const HEADLINE_METRICS: readonly (readonly [string, string])[] = [
  ['put-1x1', 'p50Ms'],
  ['put-10x10', 'opsPerSec'],
  ['put-10x100', 'opsPerSec'],
  ['put-30x1000', 'opsPerSec'],
  ['get-linearizable', 'opsPerSec'],
  ['get-serializable', 'opsPerSec'],
  ['cas', 'casSucceededPerSec'],
  ['watch', 'deliveryP99Ms'],
  ['leases', 'cpuMsPer1kKeepAlives'],
  ['failover', 'unavailableMs'],
  ['size', 'rssMiBMax'],
];
/** Ratios within this share of 1.0 count as level: this machine's run-to-run noise is larger than that. */
const LEVEL_BAND = 0.1;

/**
 * Where Fulcrum stands in each workload's headline figure: ahead of etcd, level (within ±10 %) or behind,
 * worked out from the ratios so that the sentence stays true of the table it sits under.
 */
export function standing(lines: readonly SummaryLine[]): { ahead: string[]; level: string[]; behind: string[] } {
  const out = { ahead: [] as string[], level: [] as string[], behind: [] as string[] };
  for (const [row, metric] of HEADLINE_METRICS) {
    const l = lines.find((x) => x.row === row && x.metric === metric);
    if (l === undefined || l.ratio === null || (l.better !== 'higher' && l.better !== 'lower')) continue;
    const text = `${row} ${l.label} ${l.ratio.toFixed(2)}`;
    const good = l.better === 'higher' ? l.ratio : 1 / l.ratio;
    if (Math.abs(good - 1) <= LEVEL_BAND) out.level.push(text);
    else (good > 1 ? out.ahead : out.behind).push(text);
  }
  return out;
}
