// One short run of each workload under a mix of nemeses, on real member processes. Each must find no violation
// and must really have been faulted (a run with no faults proves nothing). Failing runs stay in chaos-runs/test.
import { describe, expect, it } from 'vitest';
import { run, RUN_TIMEOUT_MS } from './harness/test-runs.js';
import type { RunSummary } from './run.js';

function okOps(s: RunSummary): number {
  return Object.values(s.ops).reduce((n, c) => n + c.ok, 0);
}

describe('chaos: workloads under faults (real processes)', () => {
  it(
    'register stays linearizable under partitions, kill -9, pauses and clock jumps',
    async () => {
      const s = await run({ workloads: ['register'], nemeses: 'partition,kill,pause,clock', timeS: 20 });
      expect(s.checks.map((c) => [c.checker, c.verdict])).toEqual([['linearizable', 'valid']]);
      expect(Object.values(s.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(okOps(s)).toBeGreaterThan(50);
      expect(s.unexpectedExits).toEqual([]);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'set, lock and exactly-once lose nothing and apply nothing twice under crash points, torn WAL writes, leader transfers and slow links',
    async () => {
      const s = await run({ workloads: ['set', 'lock', 'exactly-once'], nemeses: 'crashpoint,torn,transfer,slow,member', timeS: 25, snapshotCount: 200 });
      for (const c of s.checks) expect([c.workload, c.checker, c.verdict, c.summary]).toEqual([c.workload, c.checker, 'valid', c.summary]);
      expect(s.checks.length).toBe(5);
      expect(Object.values(s.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(s.unexpectedExits).toEqual([]);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'watch streams, leases and HLC stamps keep their promises under partitions, pauses, kill -9 and clock skew',
    async () => {
      const s = await run({ workloads: ['watch', 'lease', 'clock'], nemeses: 'partition,pause,kill,clock', timeS: 20 });
      for (const c of s.checks) expect([c.workload, c.checker, c.verdict, c.summary]).toEqual([c.workload, c.checker, c.checker === 'watch-caught-up' ? c.verdict : 'valid', c.summary]);
      expect(s.checks.find((c) => c.checker === 'watch-caught-up')!.verdict).toBe('valid');
      expect(Object.values(s.faults).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      expect(s.unexpectedExits).toEqual([]);
    },
    RUN_TIMEOUT_MS,
  );
});
