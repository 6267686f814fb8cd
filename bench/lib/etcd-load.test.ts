// Smoke test of the load workload (not a speed test: nothing here asserts a rate or a latency). One in-process
// Fulcrum member, every phase for a fraction of a second: each phase completes requests and none fails.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServerConfig } from '../../node/config.js';
import { startServer, type FulcrumServer } from '../../node/server.js';
import { LOAD_DEFAULTS, PHASE_NAMES, runEtcdLoad } from './etcd-load.js';

// Below Linux's ephemeral range (32768+), where outgoing connections could take the port.
const CLIENT_PORT = 25_000 + (process.pid % 900) * 2;
const PEER_PORT = CLIENT_PORT + 1;

describe('bench/load workload against one in-process member', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-load-'));
  let server: FulcrumServer;

  beforeAll(async () => {
    server = await startServer(
      parseServerConfig(
        [
          '--name', 'bench',
          '--data-dir', join(dir, 'bench'),
          '--listen-client-urls', `http://127.0.0.1:${CLIENT_PORT}`,
          '--listen-peer-urls', `http://127.0.0.1:${PEER_PORT}`,
          '--initial-cluster', `bench=http://127.0.0.1:${PEER_PORT}`,
          '--log-level', 'error',
        ],
        {},
      ),
    );
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs every phase with requests completed and no errors', async () => {
    const report = await runEtcdLoad({
      ...LOAD_DEFAULTS,
      endpoints: [`127.0.0.1:${CLIENT_PORT}`],
      durationMs: 1_000,
      warmupMs: 100,
      connections: 2,
      inFlight: 8,
      keys: 50,
    });
    expect(report.leader.endpoint).toBe(`127.0.0.1:${CLIENT_PORT}`);
    expect(report.prefill?.errors).toBe(0);
    expect(report.phases.map((p) => p.name)).toEqual([...PHASE_NAMES]);
    for (const p of report.phases) {
      expect({ phase: p.name, errors: p.errorsTotal, byKind: p.errors.byKind }).toEqual({ phase: p.name, errors: 0, byKind: {} });
      expect(p.ops).toBeGreaterThan(0);
      expect(p.latency.count).toBe(p.ops);
      expect(p.latency.p99Ms).toBeGreaterThanOrEqual(p.latency.p50Ms);
    }
  });
});
