// Three real member processes on loopback: kill -9 the leader under a steady write load, and nothing
// acknowledged is lost; the killed member comes back and catches up, by snapshot when it fell behind compaction.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdTestClient } from './testing/etcd-client.js';
import { eventually } from './testing/eventually.js';
import { ProcessCluster, type ProcessMember } from './testing/process-cluster.js';

const HEARTBEAT_MS = 50;
const ELECTION_MS = 500;
// Test ports stay below Linux's ephemeral range (32768+), where outgoing connections could take them.
const BASE_PORT = 14_000 + (process.pid % 190) * 10;
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-procs-'));
/** Members' log lines saying their transport lost the leader and its lease ended early (raft/raft.ts leaderUnreachable). */
const leaderLossLines: string[] = [];
const cluster = new ProcessCluster({
  members: [0, 1, 2].map((i) => ({ name: `p${i + 1}`, clientPort: BASE_PORT + 2 * i, peerPort: BASE_PORT + 2 * i + 1, dataDir: join(dir, `p${i + 1}`) })),
  heartbeatMs: HEARTBEAT_MS,
  electionMs: ELECTION_MS,
  snapshotCount: 100,
  echo: (name, line) => {
    if (line.includes('lost the connection to leader')) leaderLossLines.push(`${name} ${line}`);
  },
});
for (const m of cluster.members) (m.spec as { extraArgs?: string[] }).extraArgs = ['--experimental-snapshot-catchup-entries', '20'];
const clients = new Map(cluster.members.map((m) => [m.spec.name, new EtcdTestClient(m.clientEndpoint, 2_000)]));

afterAll(async () => {
  for (const c of clients.values()) c.close();
  await cluster.kill();
  rmSync(dir, { recursive: true, force: true });
});


/** The member every live member agrees is leader. */
async function leader(): Promise<ProcessMember> {
  return eventually('a leader', async () => {
    const ids = new Set<string>();
    let byId: ProcessMember | undefined;
    for (const m of cluster.members.filter((x) => x.running)) {
      const s = await clients.get(m.spec.name)!.status();
      ids.add(s.leader);
      if (s.leader === s.memberId) byId = m;
    }
    return ids.size === 1 && !ids.has('0') ? byId : undefined;
  });
}

describe('a 3-member cluster of real processes', () => {
  it('survives kill -9 of the leader without losing an acknowledged write, and the member catches up by snapshot', async () => {
    cluster.start();
    const first = await leader();
    const acked = new Map<string, string>();
    let stop = false;
    let killedAt = 0;
    let firstWriteAfterKill = 0;
    // One writer per member, each with a short deadline and retries, as a real client would: only
    // acknowledged writes are recorded; a write whose outcome is unknown is simply not counted.
    const writers = cluster.members.map(async (m, w) => {
      const client = new EtcdTestClient(m.clientEndpoint, ELECTION_MS);
      for (let n = 0; !stop; n++) {
        const key = `steady-${w}-${n}`;
        const attemptStart = Date.now();
        try {
          await client.put(key, `v${n}`);
          acked.set(key, `v${n}`);
          // Only a write begun after the leader's process is gone shows the cluster writing again.
          if (killedAt > 0 && attemptStart >= killedAt && firstWriteAfterKill === 0) firstWriteAfterKill = Date.now();
        } catch {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      client.close();
    });
    await eventually('writes before the kill', async () => (acked.size >= 50 ? true : undefined));
    const ackedBeforeKill = acked.size;
    await first.kill();
    killedAt = Date.now();
    await eventually('writes after the kill', async () => (acked.size >= ackedBeforeKill + 300 ? true : undefined), 30_000);
    const second = await leader();
    expect(second).not.toBe(first);
    // The survivors did not wait out a heartbeat-less election timeout: the closed connections told them.
    expect(leaderLossLines.filter((l) => !l.startsWith(`${first.spec.name} `)).length, leaderLossLines.join('\n')).toBeGreaterThan(0);
    stop = true;
    await Promise.all(writers);
    // Reported, and bounded loosely: a wedged election fails here; speed is the benchmark's business.
    const failoverMs = firstWriteAfterKill - killedAt;
    console.log(`failover: first write acknowledged ${failoverMs} ms after kill -9 of the leader (election timeout ${ELECTION_MS} ms)`);
    expect(failoverMs).toBeLessThan(10 * ELECTION_MS);

    const reader = clients.get(second.spec.name)!;
    for (const [k, v] of acked) expect(await reader.get(k), `acknowledged ${k}`).toBe(v);

    // The killed member missed more than a snapshot interval: it restarts and catches up by snapshot.
    first.start();
    const back = clients.get(first.spec.name)!;
    await eventually('the restarted member to catch up', async () => ((await back.count('steady-', true)) === (await reader.count('steady-')) ? true : undefined), 30_000);
    expect(await reader.count('steady-')).toBeGreaterThanOrEqual(acked.size);
    for (const [k, v] of [...acked].slice(-20)) expect(await back.get(k, true)).toBe(v);
    // It was down for more than snapshot-count + catch-up entries: the leader no longer had its entries.
    expect(acked.size - ackedBeforeKill).toBeGreaterThan(100 + 20);
  }, 120_000);
});
