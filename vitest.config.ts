import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**', 'chaos-runs/**'],
    // Two cores: the simulator and crash tests are CPU-bound, so run files on both but no more. `npm test` runs
    // node/interop-etcdctl.test.ts on its own afterwards (npm run test:alone): etcdctl's `check perf` measures
    // throughput and latency, which a CPU-heavy neighbour (chaos, crash tests) would decide instead of Fulcrum.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
