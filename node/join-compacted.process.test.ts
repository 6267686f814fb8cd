// A member added to a cluster whose log was compacted behind a snapshot can only catch up from a snapshot. The
// stored snapshot predates the conf change that adds it, and a member refuses a snapshot whose configuration
// does not include it (Raft's rule): before the fix, the leader resent that refused snapshot every few tens of
// milliseconds and the new member never served, on an idle cluster for good.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdTestClient } from './testing/etcd-client.js';
import { eventually } from './testing/eventually.js';
import { memberArgs, ProcessCluster, ProcessMember } from './testing/process-cluster.js';

// Ports 8000-8999, below Linux's ephemeral range.
const BASE_PORT = 8_000 + (process.pid % 120) * 8;
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-join-compacted-'));
const timing = { heartbeatMs: 50, electionMs: 500, snapshotCount: 20 };
const extraArgs = ['--experimental-snapshot-catchup-entries', '5'];
const specs = [0, 1, 2, 3].map((i) => ({ name: `j${i + 1}`, clientPort: BASE_PORT + 2 * i, peerPort: BASE_PORT + 2 * i + 1, dataDir: join(dir, `j${i + 1}`), extraArgs }));
const cluster = new ProcessCluster({ members: specs.slice(0, 3), ...timing });
const peerUrl = (i: number): string => `http://127.0.0.1:${specs[i]!.peerPort}`;
const joiner = new ProcessMember(specs[3]!, memberArgs(specs[3]!, specs.map((s, i) => `${s.name}=${peerUrl(i)}`).join(','), timing, 'existing'), undefined);

afterAll(async () => {
  await cluster.kill();
  await joiner.kill();
  rmSync(dir, { recursive: true, force: true });
});

describe('joining a cluster whose log was compacted', () => {
  it('a member added after the last snapshot catches up with no further writes', async () => {
    cluster.start();
    const c1 = new EtcdTestClient(`127.0.0.1:${specs[0]!.clientPort}`, 3_000);
    await eventually('a leader', async () => ((await c1.status()).leader !== '0' ? true : undefined));
    for (let i = 0; i < 100; i++) await eventually('a write', () => c1.put(`k-${i}`, 'x'));
    // Let every member snapshot and compact its log behind the snapshot.
    await new Promise((r) => setTimeout(r, 1_000));

    await c1.memberAdd([peerUrl(3)], true);
    joiner.start();
    const c4 = new EtcdTestClient(`127.0.0.1:${specs[3]!.clientPort}`, 3_000);
    // No write after the add: the only way in is a snapshot that already lists the new member.
    const count = await eventually('the new member to serve every key', async () => ((await c4.count('k-', true)) === 100 ? 100 : undefined), 20_000);
    expect(count).toBe(100);
    expect(joiner.running).toBe(true);
    c1.close();
    c4.close();
  }, 90_000);
});
