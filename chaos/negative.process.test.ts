// Negative controls: the same harness and checkers, pointed at behaviour that is wrong on purpose, must report
// a violation. A checker that passes these is not just saying "valid" to everything.
import { describe, expect, it } from 'vitest';
import { run, RUN_TIMEOUT_MS } from './harness/test-runs.js';

describe('chaos: negative controls (real processes)', () => {
  it(
    'serializable (local) reads under partitions are caught as not linearizable',
    async () => {
      const s = await run({ workloads: ['register'], nemeses: 'partition', timeS: 12, serializableReads: true, clients: 6, quietMs: [300, 800], faultMs: [2_500, 3_500] }, true);
      expect(s.checks[0]!.verdict).toBe('invalid');
      expect(s.valid).toBe(false);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'members without fsync lose acknowledged writes in a power loss, and the set checker says so',
    async () => {
      const s = await run({ workloads: ['set'], nemeses: 'none', timeS: 8, failpoints: 'no-fsync', powerLoss: true }, true);
      const set = s.checks.find((c) => c.checker === 'set')!;
      expect(set.verdict).toBe('invalid');
      expect(set.summary).toMatch(/lost [1-9]/);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'the same power loss with fsync on loses nothing (the control above is about fsync, not the harness)',
    async () => {
      const s = await run({ workloads: ['set'], nemeses: 'none', timeS: 8, powerLoss: true });
      expect(s.checks.map((c) => c.verdict)).toEqual(['valid']);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'a leader that never revokes expired leases leaves keys past their expiry bound, and the lease checker says so',
    async () => {
      const s = await run({ workloads: ['lease'], nemeses: 'none', timeS: 8, failpoints: 'no-lease-expiry' }, true);
      const lease = s.checks.find((c) => c.checker === 'lease-promise')!;
      expect(lease.verdict).toBe('invalid');
      expect(lease.summary).toMatch(/; [1-9]\d* keys still there past their expiry bound/);
      expect(lease.summary).toMatch(/ 0 reads found a key gone while its lease was promised/);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    'locks without fencing lose updates when holders stall past their lease',
    async () => {
      // Every holder stalls past its lease, so the next one gets the lock meanwhile: at the workload's usual 1 in 4, a
      // slow machine could go through a run with no overlap at all, and the control would have nothing to catch.
      const s = await run({ workloads: ['lock'], nemeses: 'none', timeS: 15, noFencing: true, lockStallProbability: 1 }, true);
      const fencing = s.checks.find((c) => c.checker.startsWith('fencing'))!;
      expect(fencing.verdict).toBe('invalid');
      expect(fencing.summary).toMatch(/lost updates [1-9]|stale writes accepted [1-9]/);
    },
    RUN_TIMEOUT_MS,
  );
});
