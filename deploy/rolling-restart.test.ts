// A rolling restart, as the StatefulSet's RollingUpdate under the PodDisruptionBudget (maxUnavailable 1) does
// it: each member of a 3-member cluster in turn, highest first, gets SIGTERM, exits, starts again, and must be
// ready (/readyz) before the next one goes. A client that knows all three endpoints writes all the while.
// Checked: the longest time without an acknowledged write stays within a loose bound (one election, with room
// for a slow shared machine), and every acknowledged write is there afterwards. A negative control then breaks
// the budget (two members down at once) and shows the same measurement exceeding the bound.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdTestClient } from '../node/testing/etcd-client.js';
import { eventually } from '../node/testing/eventually.js';
import { ProcessCluster, type ProcessMember } from '../node/testing/process-cluster.js';
import { freePorts } from './ports.js';

// The deployed timing (the StatefulSet and compose.yaml leave etcd's defaults).
const HEARTBEAT_MS = 100;
const ELECTION_MS = 1_000;
/**
 * The bound on the longest time without an acknowledged write. When the leader stops (Fulcrum does not hand
 * over leadership on SIGTERM), the followers wait one randomized election timeout (1–2 × ELECTION_MS), elect,
 * and the client needs up to one request deadline (ELECTION_MS) to notice and try the next endpoint: about
 * 3 × ELECTION_MS on an idle machine. Ten times ELECTION_MS leaves room for a shared 2-core machine under load;
 * losing the quorum (the negative control) keeps writes failing for as long as it lasts, well past this.
 */
const WRITE_GAP_BOUND_MS = 10 * ELECTION_MS;
/** Each write's deadline: a write to a stopped or leaderless member gives up within one election timeout. */
const WRITE_DEADLINE_MS = ELECTION_MS;

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-rolling-'));
let cluster: ProcessCluster | undefined;
const metricsPorts = new Map<string, number>();

afterAll(async () => {
  await cluster?.kill();
  rmSync(dir, { recursive: true, force: true });
});

async function makeCluster(): Promise<ProcessCluster> {
  const ports = await freePorts(2, 9);
  const members = [0, 1, 2].map((i) => {
    const name = `r${i}`;
    metricsPorts.set(name, ports[3 * i + 2]!);
    return {
      name,
      clientPort: ports[3 * i]!,
      peerPort: ports[3 * i + 1]!,
      dataDir: join(dir, name),
      extraArgs: ['--listen-metrics-urls', `http://127.0.0.1:${ports[3 * i + 2]}`],
    };
  });
  return new ProcessCluster({ members, heartbeatMs: HEARTBEAT_MS, electionMs: ELECTION_MS });
}

async function ready(m: ProcessMember): Promise<boolean> {
  const r = await fetch(`http://127.0.0.1:${metricsPorts.get(m.spec.name)}/readyz`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
  return r?.status === 200;
}

/**
 * Writes unique keys until stopped, like a client given every endpoint: on a failure it tries the next
 * endpoint. Records what was acknowledged and the longest time between two acknowledgements.
 */
class Writer {
  readonly acked = new Map<string, string>();
  longestGapMs = 0;
  private lastAckAt = Date.now();
  private stopped = false;
  private readonly clients: EtcdTestClient[];
  private readonly done: Promise<void>;

  constructor(endpoints: readonly string[], private readonly prefix: string) {
    this.clients = endpoints.map((e) => new EtcdTestClient(e, WRITE_DEADLINE_MS));
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    let at = 0;
    for (let n = 0; !this.stopped; n++) {
      const key = `${this.prefix}${String(n).padStart(6, '0')}`;
      try {
        await this.clients[at]!.put(key, `v${n}`);
        this.acked.set(key, `v${n}`);
        const now = Date.now();
        this.longestGapMs = Math.max(this.longestGapMs, now - this.lastAckAt);
        this.lastAckAt = now;
      } catch {
        at = (at + 1) % this.clients.length;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** The gap still open at the end counts too. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    this.longestGapMs = Math.max(this.longestGapMs, Date.now() - this.lastAckAt);
    for (const c of this.clients) c.close();
  }

  /** Measure from now on (after the cluster first came up). */
  resetGap(): void {
    this.lastAckAt = Date.now();
    this.longestGapMs = 0;
  }
}

/** Every key under the prefix, read linearizably in one range. */
async function readAll(client: EtcdTestClient, prefix: string): Promise<Map<string, string>> {
  const end = Buffer.from(prefix);
  end[end.length - 1]! += 1;
  const r = await new Promise<{ kvs: Array<{ key: Buffer; value: Buffer }> }>((resolve, reject) =>
    client.kv.Range({ key: Buffer.from(prefix), range_end: end }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, ((err: Error | null, res: never) =>
      err ? reject(err) : resolve(res)) as never),
  );
  return new Map(r.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
}

function lost(acked: ReadonlyMap<string, string>, stored: ReadonlyMap<string, string>): string[] {
  return [...acked].filter(([k, v]) => stored.get(k) !== v).map(([k]) => k);
}

describe('a rolling restart of a 3-member cluster under write load', () => {
  it('keeps writes flowing (no gap beyond the bound) and loses nothing acknowledged; breaking the budget does exceed the bound', async () => {
    cluster = await makeCluster();
    const c = cluster;
    c.start();
    await eventually('all three ready', async () => ((await Promise.all(c.members.map(ready))).every(Boolean) ? true : undefined), 60_000);

    const writer = new Writer(c.endpoints, 'roll/');
    await eventually('writes flowing', async () => (writer.acked.size >= 50 ? true : undefined), 30_000);
    writer.resetGap();
    const exitCodes: Array<number | null> = [];
    // Highest ordinal first, as a StatefulSet's RollingUpdate goes; the next only after this one is ready.
    for (const m of [...c.members].reverse()) {
      const before = writer.acked.size;
      exitCodes.push(await m.stop());
      m.start();
      await eventually(`${m.spec.name} ready again`, async () => ((await ready(m)) ? true : undefined), 60_000);
      // Some writes land between restarts, so each restart is measured under load.
      await eventually('writes after the restart', async () => (writer.acked.size >= before + 20 ? true : undefined), 30_000);
    }
    await writer.stop();
    console.log(`rolling restart: ${writer.acked.size} writes acknowledged, longest gap ${writer.longestGapMs} ms (bound ${WRITE_GAP_BOUND_MS} ms)`);
    expect(exitCodes).toEqual([0, 0, 0]);
    expect(writer.longestGapMs).toBeLessThan(WRITE_GAP_BOUND_MS);
    const reader = new EtcdTestClient(c.members[0]!.clientEndpoint, 10_000);
    const stored = await readAll(reader, 'roll/');
    expect(lost(writer.acked, stored)).toEqual([]);

    // Negative control: two members down at once (what the disruption budget forbids). No quorum, so no write
    // is acknowledged until one is back; held down past the bound, the same measurement must exceed it.
    const control = new Writer(c.endpoints, 'control/');
    await eventually('control writes flowing', async () => (control.acked.size >= 20 ? true : undefined), 30_000);
    control.resetGap();
    const [a, b] = [c.members[1]!, c.members[2]!];
    await Promise.all([a.stop(), b.stop()]);
    await new Promise((r) => setTimeout(r, WRITE_GAP_BOUND_MS + 2_000));
    a.start();
    b.start();
    await eventually('the quorum back', async () => ((await ready(a)) ? true : undefined), 60_000);
    const ackedBefore = control.acked.size;
    await eventually('a write after recovery', async () => (control.acked.size > ackedBefore ? true : undefined), 30_000);
    await control.stop();
    console.log(`negative control: longest gap ${control.longestGapMs} ms with two of three members down`);
    expect(control.longestGapMs).toBeGreaterThan(WRITE_GAP_BOUND_MS);
    expect(lost(control.acked, await readAll(reader, 'control/'))).toEqual([]);
    reader.close();
  }, 240_000);
});
