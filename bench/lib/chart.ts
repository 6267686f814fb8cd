// The latency-against-throughput chart of the put workload: one point per concurrency level (1, 10, 100, 1,000
// in flight), p50 as a solid line and p99 as a dashed one, Fulcrum and etcd in two colours, both axes
// logarithmic (the levels span three orders of magnitude). Plain SVG written by hand: no dependency, and the
// file is readable in a browser or a diff.
import type { SystemName } from './systems.js';
import type { Row } from './workloads.js';
import { median } from './summary.js';

export interface ChartPoint {
  readonly level: string;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

const W = 760;
const H = 480;
const M = { left: 70, right: 170, top: 40, bottom: 60 };
const COLOURS: Record<SystemName, string> = { fulcrum: '#1f77b4', etcd: '#d62728' };

/** The median point of each put level for one system, in level order. */
export function putPoints(rows: readonly Row[], system: SystemName): ChartPoint[] {
  const levels: string[] = [];
  for (const r of rows) if (r.workload === 'put' && !levels.includes(r.row)) levels.push(r.row);
  const points: ChartPoint[] = [];
  for (const level of levels) {
    const mine = rows.filter((r) => r.row === level && r.system === system);
    const m = (k: string): number | null => median(mine.map((r) => r.metrics[k] ?? 0));
    const ops = m('opsPerSec');
    const p50 = m('p50Ms');
    const p99 = m('p99Ms');
    if (ops === null || p50 === null || p99 === null || ops <= 0 || p50 <= 0 || p99 <= 0) continue;
    points.push({ level: level.replace(/^put-/, ''), opsPerSec: ops, p50Ms: p50, p99Ms: p99 });
  }
  return points;
}

/** Decades that cover [lo, hi] on a log axis, with some room so that no point sits on the frame. */
function decades(lo: number, hi: number): [number, number] {
  return [Math.floor(Math.log10(lo) - 0.15), Math.ceil(Math.log10(hi) + 0.15)];
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function latencyThroughputSvg(series: Partial<Record<SystemName, readonly ChartPoint[]>>, title: string): string {
  const all = Object.values(series).flatMap((s) => [...(s ?? [])]);
  const xs = all.map((p) => p.opsPerSec);
  const ys = all.flatMap((p) => [p.p50Ms, p.p99Ms]);
  const [x0, x1] = xs.length === 0 ? [0, 4] : decades(Math.min(...xs), Math.max(...xs));
  const [y0, y1] = ys.length === 0 ? [-1, 3] : decades(Math.min(...ys), Math.max(...ys));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (v: number): number => M.left + ((Math.log10(v) - x0) / Math.max(1, x1 - x0)) * pw;
  const sy = (v: number): number => M.top + ph - ((Math.log10(v) - y0) / Math.max(1, y1 - y0)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${M.left}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`);
  // Grid and tick labels: 1, 2, 5 in each decade.
  for (let d = x0; d <= x1; d++) {
    for (const k of d === x1 ? [1] : [1, 2, 5]) {
      const v = k * 10 ** d;
      const x = sx(v).toFixed(1);
      out.push(`<line x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + ph}" stroke="${k === 1 ? '#bbb' : '#eee'}"/>`);
      out.push(`<text x="${x}" y="${M.top + ph + 16}" text-anchor="middle" fill="#444">${v.toLocaleString('en-US')}</text>`);
    }
  }
  for (let d = y0; d <= y1; d++) {
    for (const k of d === y1 ? [1] : [1, 2, 5]) {
      const v = k * 10 ** d;
      const y = sy(v).toFixed(1);
      out.push(`<line x1="${M.left}" y1="${y}" x2="${M.left + pw}" y2="${y}" stroke="${k === 1 ? '#bbb' : '#eee'}"/>`);
      out.push(`<text x="${M.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#444">${Number(v.toPrecision(3))}</text>`);
    }
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 18}" text-anchor="middle">throughput (puts/s, log scale)</text>`);
  out.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">latency (ms, log scale)</text>`);
  let legendY = M.top + 10;
  for (const [system, points] of Object.entries(series) as [SystemName, readonly ChartPoint[]][]) {
    if (points.length === 0) continue;
    const colour = COLOURS[system];
    for (const [key, dash] of [['p50Ms', ''], ['p99Ms', ' stroke-dasharray="6 4"']] as const) {
      const path = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${sx(p.opsPerSec).toFixed(1)},${sy(p[key]).toFixed(1)}`).join(' ');
      out.push(`<path d="${path}" fill="none" stroke="${colour}" stroke-width="2"${dash}/>`);
      for (const p of points) {
        out.push(`<circle cx="${sx(p.opsPerSec).toFixed(1)}" cy="${sy(p[key]).toFixed(1)}" r="3.5" fill="${key === 'p50Ms' ? colour : 'white'}" stroke="${colour}"/>`);
        if (key === 'p50Ms') out.push(`<text x="${(sx(p.opsPerSec) + 6).toFixed(1)}" y="${(sy(p[key]) + 14).toFixed(1)}" fill="${colour}" font-size="10">${esc(p.level)}</text>`);
      }
      const lx = M.left + pw + 14;
      out.push(`<line x1="${lx}" y1="${legendY}" x2="${lx + 28}" y2="${legendY}" stroke="${colour}" stroke-width="2"${dash}/>`);
      out.push(`<text x="${lx + 34}" y="${legendY}" dominant-baseline="middle">${system} ${key === 'p50Ms' ? 'p50' : 'p99'}</text>`);
      legendY += 20;
    }
  }
  out.push(`<text x="${M.left + pw + 14}" y="${legendY + 10}" font-size="10" fill="#444">labels: conns×in flight</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
