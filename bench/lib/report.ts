// Printing phase results: a fixed-width table for people, and the machine description that goes with figures.
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import type { PhaseResult } from './phase.js';

export interface MachineInfo {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly memoryTotalMiB: number;
  readonly memoryFreeMiB: number;
  readonly loadAverage: readonly number[];
  readonly node: string;
  readonly platform: string;
}

export function machineInfo(): MachineInfo {
  return {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryTotalMiB: Math.round(totalmem() / 1024 / 1024),
    memoryFreeMiB: Math.round(freemem() / 1024 / 1024),
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
}

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmtMs = (n: number): string => n.toFixed(n < 10 ? 2 : 1);

/** Errors by kind, most frequent first, one indented line each. */
export function formatErrorKinds(byKind: Readonly<Record<string, number>>): string[] {
  return Object.entries(byKind)
    .sort((a, b) => b[1] - a[1])
    .map(([kind, n]) => `  ${n} × ${kind}`);
}

/** The results as an aligned text table, errors listed by kind below it. */
export function formatTable(results: readonly PhaseResult[]): string {
  const header = ['phase', 'to', 'conns', 'in flight', 'ops/s', 'p50 ms', 'p99 ms', 'max ms', 'ops', 'errors', 'client cpu'];
  const rows = results.map((r) => [
    r.name,
    r.target,
    String(r.connections),
    String(r.inFlight),
    fmtInt(r.opsPerSec),
    fmtMs(r.latency.p50Ms),
    fmtMs(r.latency.p99Ms),
    fmtMs(r.latency.maxMs),
    fmtInt(r.ops),
    String(r.errorsTotal),
    r.clientCpuCores.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i <= 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  for (const r of results) {
    if (r.errorsTotal === 0) continue;
    out.push(`errors in ${r.name}: ${r.errors.warmup} in warm-up, ${r.errors.measured} measured, ${r.errors.drain} in drain`);
    out.push(...formatErrorKinds(r.errors.byKind));
  }
  return out.join('\n');
}
