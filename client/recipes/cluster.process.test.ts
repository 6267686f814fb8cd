// Locks under failure on a 3-member cluster of real processes: workers contend for one lock and write through
// its fence while the leader is killed (-9) and restarted. Two checks on what happened, each with a negative
// control on a made-up history: no two holders ever believed they held the lock at the same time (all workers
// share this process's monotonic clock; a belief ends at release or at `lost`), and no fenced write with a
// smaller token landed after one with a greater token.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../../node/testing/eventually.js';
import { ProcessCluster } from '../../node/testing/process-cluster.js';
import { Client, Op } from '../index.js';
import { Lock } from './index.js';
import { freePorts } from './testing/harness.js';

interface Belief {
  readonly worker: number;
  readonly token: number;
  readonly fromMs: number;
  toMs: number;
}

interface FencedWrite {
  readonly token: number;
  readonly revision: number;
}

/** Pairs of beliefs of different workers that overlap in time. */
export function overlappingBeliefs(beliefs: readonly Belief[]): Array<[Belief, Belief]> {
  const sorted = [...beliefs].sort((a, b) => a.fromMs - b.fromMs);
  const out: Array<[Belief, Belief]> = [];
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i + 1; j < sorted.length && sorted[j]!.fromMs < sorted[i]!.toMs; j++) {
      if (sorted[j]!.worker !== sorted[i]!.worker) out.push([sorted[i]!, sorted[j]!]);
    }
  }
  return out;
}

/** Fenced writes, in the store's order, whose token is below one that landed before. */
export function staleWritesAccepted(writes: readonly FencedWrite[]): FencedWrite[] {
  let highest = 0;
  const out: FencedWrite[] = [];
  for (const w of [...writes].sort((a, b) => a.revision - b.revision)) {
    if (w.token < highest) out.push(w);
    highest = Math.max(highest, w.token);
  }
  return out;
}

let cluster: ProcessCluster;
let endpoints: string[];
let dir: string;
const clients: Client[] = [];

beforeAll(async () => {
  const ports = await freePorts(6, 101);
  dir = mkdtempSync(join(tmpdir(), 'fulcrum-recipes-cluster-'));
  cluster = new ProcessCluster({
    members: [0, 1, 2].map((i) => ({ name: `r${i + 1}`, clientPort: ports[2 * i]!, peerPort: ports[2 * i + 1]!, dataDir: join(dir, `r${i + 1}`), extraArgs: ['--log-level', 'warn'] })),
    heartbeatMs: 100,
    electionMs: 1_000,
  });
  cluster.start();
  endpoints = cluster.endpoints;
  await leaderIndex();
}, 120_000);
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await cluster?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function client(): Client {
  const c = new Client({ endpoints, attemptTimeoutMs: 1_000, requestTimeoutMs: 20_000, healthProbeIntervalMs: 250 });
  clients.push(c);
  return c;
}

/** The member that every running member says leads. */
async function leaderIndex(): Promise<number> {
  const probes = cluster.members.map((m) => new Client({ endpoints: [m.clientEndpoint], attemptTimeoutMs: 1_000, requestTimeoutMs: 2_000 }));
  try {
    return await eventually('one agreed leader', async () => {
      const views = await Promise.all(cluster.members.map(async (m, i) => (m.running ? (await probes[i]!.memberStatuses({ timeoutMs: 1_000 }))[0] : undefined)));
      const running = views.filter((v) => v !== undefined);
      const leaders = new Set(running.map((v) => v.leaderId));
      if (running.length < 2 || leaders.size !== 1 || leaders.has('0')) return undefined;
      const i = views.findIndex((v) => v !== undefined && v.memberId === v.leaderId);
      return i >= 0 ? i : undefined;
    }, 60_000, 200);
  } finally {
    await Promise.all(probes.map((p) => p.close()));
  }
}

describe('the checkers (negative controls)', () => {
  it('flag overlapping beliefs and a stale write landing after a newer one', () => {
    expect(overlappingBeliefs([{ worker: 1, token: 5, fromMs: 0, toMs: 10 }, { worker: 2, token: 6, fromMs: 9, toMs: 20 }])).toHaveLength(1);
    expect(overlappingBeliefs([{ worker: 1, token: 5, fromMs: 0, toMs: 10 }, { worker: 2, token: 6, fromMs: 10, toMs: 20 }])).toHaveLength(0);
    expect(staleWritesAccepted([{ token: 5, revision: 10 }, { token: 6, revision: 11 }, { token: 5, revision: 12 }])).toEqual([{ token: 5, revision: 12 }]);
    expect(staleWritesAccepted([{ token: 5, revision: 10 }, { token: 5, revision: 11 }, { token: 6, revision: 12 }])).toEqual([]);
  });
});

describe('a lock on a 3-member cluster of real processes', () => {
  it('kill -9 and restart of the leader while 3 workers contend: one believed holder at a time, fenced writes in token order', async () => {
    const beliefs: Belief[] = [];
    const writes: FencedWrite[] = [];
    let refused = 0;
    let failed = 0;
    let stopped = false;
    const worker = async (n: number): Promise<void> => {
      const c = client();
      const lock = new Lock(c, 'locks/contended', { ttlSeconds: 5 });
      while (!stopped) {
        let held;
        try {
          held = await lock.lock({ timeoutMs: 20_000 });
        } catch {
          failed++;
          continue;
        }
        const belief: Belief = { worker: n, token: held.token, fromMs: performance.now(), toMs: Infinity };
        beliefs.push(belief);
        held.once('lost', () => (belief.toMs = Math.min(belief.toMs, performance.now())));
        try {
          for (let i = 0; i < 3 && held.held; i++) {
            const r = await held.txn().then(Op.put('contended/owner', `${n}:${held.token}`)).commit({ timeoutMs: 10_000 });
            if (r.succeeded) writes.push({ token: held.token, revision: r.revision });
            else refused++;
          }
        } catch {
          failed++; // unknown outcome or unavailable during the failover: the fence still decides
        } finally {
          belief.toMs = Math.min(belief.toMs, performance.now());
          await held.release().catch(() => undefined);
        }
      }
    };
    const workers = [1, 2, 3].map(worker);
    const grants = (): number => beliefs.length;
    await eventually('grants before the kill', async () => (grants() >= 10 ? true : undefined), 60_000, 50);
    const leader = await leaderIndex();
    await cluster.members[leader]!.kill();
    const atKill = grants();
    await eventually('grants after the leader was killed', async () => (grants() >= atKill + 10 ? true : undefined), 60_000, 50);
    cluster.members[leader]!.start();
    await leaderIndex();
    const atRestart = grants();
    await eventually('grants after the restart', async () => (grants() >= atRestart + 10 ? true : undefined), 60_000, 50);
    stopped = true;
    await Promise.all(workers);
    console.log(`lock through a leader kill: ${beliefs.length} grants, ${writes.length} fenced writes landed, ${refused} refused, ${failed} calls failed during the failover`);
    expect(overlappingBeliefs(beliefs)).toEqual([]);
    expect(staleWritesAccepted(writes)).toEqual([]);
    const tokens = beliefs.map((b) => b.token).sort((a, b) => a - b);
    expect(new Set(tokens).size).toBe(tokens.length); // every grant its own token
  }, 180_000);
});
