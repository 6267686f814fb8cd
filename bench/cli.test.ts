// Smoke test of `npm run bench` (not a speed test: nothing here asserts a rate or a latency). Runs the real
// harness as a child process, with tiny durations and sizes, against real Fulcrum members (and etcd's when the
// `etcd` binary is installed), and checks what it writes: the JSON has every workload with sane figures
// (positive throughput, no acknowledged write lost, no failed workload) and the SVG chart exists.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { BenchReport } from './lib/suite.js';
import { etcdVersion } from './lib/systems.js';
import { PUT_LEVELS } from './lib/workloads.js';

const CLI = fileURLToPath(new URL('./cli.ts', import.meta.url));
const TSX = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;
// This engineer's range is 12400-13999; `npm run bench` defaults to 12400, so the test stays above 13400.
const BASE_PORT = 13_400 + (process.pid % 25) * 20;
const HAS_ETCD = etcdVersion() !== undefined;

function run(args: readonly string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', TSX, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('npm run bench (smoke)', () => {
  const out = mkdtempSync(join(tmpdir(), 'fulcrum-bench-smoke-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it(`runs every workload against Fulcrum${HAS_ETCD ? ' and etcd' : ' (etcd not installed)'} and writes sane JSON and an SVG`, { timeout: 170_000 }, async () => {
    const { code, output } = await run(
      [
        '--suite', 'quick', '--rounds', '1', '--duration', '0.5', '--warmup', '0.2', '--server-warmup', '0.4',
        '--keys', '2000', '--leases', '200', '--watchers', '20', '--watch-rate', '20',
        '--base-port', String(BASE_PORT), '--out-dir', out, '--no-docs',
      ],
      160_000,
    );
    expect({ code, tail: code === 0 ? '' : output.slice(-3000) }).toEqual({ code: 0, tail: '' });
    const files = readdirSync(out);
    const json = files.find((f) => f.endsWith('.json'));
    const svg = files.find((f) => f.endsWith('.svg'));
    expect(json).toBeDefined();
    expect(svg).toBeDefined();
    const report = JSON.parse(readFileSync(join(out, json!), 'utf8')) as BenchReport;
    const systems = HAS_ETCD ? ['fulcrum', 'etcd'] : ['fulcrum'];
    expect(report.options.targets).toEqual(systems);
    expect(report.options.fulcrumEntry).toBe('build'); // the compiled server, as the container image runs it
    expect(report.options.serverWarmupMs).toBe(400);
    expect(output).toMatch(/fulcrum: 0\.4 s of unmeasured puts and gets[\s\S]*warm-up puts: [\d.]+ ops\/s[\s\S]*warm-up gets: [\d.]+ ops\/s/);
    expect(report.failures).toEqual([]);
    const expectedRows = [...PUT_LEVELS.map((l) => l.row), 'get-linearizable', 'get-serializable', 'cas', 'watch', 'leases', 'failover', 'size'];
    for (const system of systems) {
      const rows = report.rows.filter((r) => r.system === system);
      expect(rows.map((r) => r.row)).toEqual(expectedRows);
      const metric = (row: string, m: string): number => rows.find((r) => r.row === row)!.metrics[m]!;
      for (const row of [...PUT_LEVELS.map((l) => l.row), 'get-linearizable', 'get-serializable', 'cas']) {
        expect({ system, row, positive: metric(row, 'opsPerSec') > 0 }).toEqual({ system, row, positive: true });
        expect(metric(row, 'p99Ms')).toBeGreaterThanOrEqual(metric(row, 'p50Ms'));
        expect(rows.find((r) => r.row === row)!.errors).toBe(0);
      }
      for (const row of [...PUT_LEVELS.map((l) => l.row), 'get-linearizable', 'get-serializable']) {
        expect({ system, row, measured: metric(row, 'cpuMsPer1kOps') > 0 }).toEqual({ system, row, measured: true });
      }
      // How evenly the connections were served: a share of the mean, so within [0, 1]; one connection has none.
      for (const level of PUT_LEVELS) {
        const share = rows.find((r) => r.row === level.row)!.metrics.slowestConnectionShare;
        const ok = level.connections === 1 ? share === undefined : share !== undefined && share >= 0 && share <= 1;
        expect({ system, row: level.row, share, ok }).toEqual({ system, row: level.row, share, ok: true });
      }
      expect(metric('watch', 'eventsPerSec')).toBeGreaterThan(0);
      expect(metric('watch', 'eventsMissing')).toBe(0);
      expect(metric('leases', 'keepAlivesPerSec')).toBeGreaterThan(0);
      expect(metric('leases', 'serverCpuCores')).toBeGreaterThan(0);
      expect(metric('failover', 'ackedWrites')).toBeGreaterThan(0);
      expect(metric('failover', 'lostWrites')).toBe(0);
      expect(metric('failover', 'unavailableMs')).toBeGreaterThan(0);
      expect(metric('size', 'rssMiBMax')).toBeGreaterThan(0);
      expect(metric('size', 'diskMiBMax')).toBeGreaterThan(0);
      expect(metric('size', 'restartServeMs')).toBeGreaterThan(0);
    }
    // Every summary line has a figure for each system measured.
    for (const line of report.summary) for (const system of systems) expect(line[system as 'fulcrum' | 'etcd']).not.toBeNull();
    const chart = readFileSync(join(out, svg!), 'utf8');
    expect(chart.startsWith('<svg')).toBe(true);
    for (const system of systems) expect(chart).toContain(`${system} p99`);
    expect(existsSync(join(out, json!))).toBe(true);
  });
});
