// The lease lifetime promise across leader changes, on a fake cluster with a fake clock: two (or three) lease
// managers share one replicated LeaseTable (what every member holds after applying the same log), each reads a
// monotonic clock with its own origin, and the test decides who leads and when ticks happen.
import { describe, expect, it } from 'vitest';
import { Role, type SoftState } from '../../raft/types.js';
import type { KvBatch } from '../../storage/backend.js';
import { opKind, type Op } from '../../storage/command.js';
import { LeaseTable } from '../../storage/lease/index.js';
import { SeededRandom } from '../../raft/rng.js';
import type { CommandResult } from '../../storage/state-machine.js';
import { LEASE_RENEWAL_COALESCE_MS, LeaseManager, type LeaseMember } from './manager.js';
import { LoopError } from '../raft-loop.js';

const NULL_BATCH: KvBatch = { put: () => undefined, del: () => undefined };
const TICK_MS = 100;

class FakeCluster {
  realNowMs = 0;
  readonly table = LeaseTable.empty({ minTtlSeconds: 1 });
  readonly hosts: FakeHost[] = [];
  private index = 0;
  /** When each lease's revoke was applied, in real time. */
  readonly revokedAt = new Map<bigint, number>();

  leader(): FakeHost | undefined {
    return this.hosts.find((h) => h.leading);
  }

  async propose(op: Op): Promise<CommandResult> {
    if (this.leader() === undefined) throw Object.assign(new Error('etcdserver: no leader'), { code: 'NO_LEADER' });
    await Promise.resolve(); // a proposal is never answered synchronously
    const result = this.apply(op);
    for (const h of this.hosts) for (const fn of h.applied) fn([result]);
    return result;
  }

  private apply(op: Op): CommandResult {
    const base = { index: ++this.index, hlc: 0n, revision: 1, events: [], op: opKind(op) };
    try {
      if ('leaseGrant' in op) return { ...base, response: this.table.grant(op.leaseGrant.id, op.leaseGrant.ttlSeconds, NULL_BATCH) as never };
      if ('leaseRevoke' in op) {
        this.table.revoke(op.leaseRevoke.id, NULL_BATCH);
        this.revokedAt.set(op.leaseRevoke.id, this.realNowMs);
        return { ...base, response: { revision: 1 } };
      }
      if ('leaseCheckpoint' in op) {
        const reached = op.leaseCheckpoint.checkpoints.filter((c) => this.table.checkpoint(c.id, c.remainingTtlMs, NULL_BATCH)).map((c) => c.id);
        return { ...base, response: { leases: reached } };
      }
    } catch (e) {
      const err = e as { code: string; message: string };
      return { ...base, error: { code: err.code, message: err.message } };
    }
    throw new Error('the fake cluster applies lease commands only');
  }
}

class FakeHost implements LeaseMember {
  leading = false;
  readonly applied = new Set<(r: readonly CommandResult[]) => void>();
  private readonly soft = new Set<(s: SoftState) => void>();
  readonly manager: LeaseManager;

  constructor(
    readonly cluster: FakeCluster,
    readonly id: number,
    /** This member's monotonic clock origin: clocks on different machines agree on rate, not on zero. */
    clockOriginMs: number,
  ) {
    cluster.hosts.push(this);
    this.manager = new LeaseManager(this, {
      monotonicNowMs: () => clockOriginMs + cluster.realNowMs,
      ticker: { every: () => () => undefined },
      tickIntervalMs: TICK_MS,
      revokeRetryIntervalMs: 500,
    });
    this.manager.start();
  }

  get stateMachine(): LeaseMember['stateMachine'] {
    return { leases: this.cluster.table, mvcc: { keysWithLease: () => [] } };
  }
  /** As Member.propose: `leaderOnly` is refused unless this member leads; anything else is forwarded. */
  propose = async (op: Op, _opts?: unknown, how: { leaderOnly?: boolean } = {}): Promise<CommandResult> => {
    if (how.leaderOnly === true && !this.leading) throw new LoopError('PROPOSAL_DROPPED', 'fulcrum: not the leader');
    return this.cluster.propose(op);
  };
  subscribeApplied(fn: (r: readonly CommandResult[]) => void): () => void {
    this.applied.add(fn);
    return () => this.applied.delete(fn);
  }
  subscribeRestored(): () => void {
    return () => undefined; // the fake cluster never installs snapshots
  }
  subscribeSoftState(fn: (s: SoftState) => void): () => void {
    this.soft.add(fn);
    return () => this.soft.delete(fn);
  }
  isLeader(): boolean {
    return this.leading;
  }
  leaderId(): number {
    return this.cluster.leader()?.id ?? 0;
  }
  members(): ReturnType<LeaseMember['members']> {
    return [];
  }
  async linearizableBarrier(): Promise<void> {
    if (this.cluster.leader() === undefined) throw new Error('no leader');
  }

  renew(id: bigint): Promise<number> {
    return this.manager.renew(id);
  }

  async setLeading(leading: boolean): Promise<void> {
    this.leading = leading;
    for (const fn of this.soft) fn({ lead: leading ? this.id : 0, role: leading ? Role.Leader : Role.Follower });
    await this.manager.whenSettled();
  }
}

/** Grant a lease through the cluster's log; its id. */
async function grant(cluster: FakeCluster, ttlSeconds: number): Promise<bigint> {
  const granted = await cluster.propose({ leaseGrant: { id: 0n, ttlSeconds } });
  return (granted.response as unknown as { id: bigint }).id;
}

/** A uniform integer in [lo, hi]. */
function between(rng: SeededRandom, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

/**
 * Advance real time to `untilMs`, ticking the current leader's manager (a dead one is silent) at every multiple of
 * TICK_MS on the way, as a timer would: the ticks keep their rhythm whatever else happens in between.
 */
async function runUntil(cluster: FakeCluster, untilMs: number, leader: FakeHost | undefined): Promise<void> {
  for (let t = (Math.floor(cluster.realNowMs / TICK_MS) + 1) * TICK_MS; t <= untilMs; t += TICK_MS) {
    cluster.realNowMs = t;
    if (leader !== undefined) await leader.manager.tick();
  }
  cluster.realNowMs = untilMs;
}

describe('LeaseManager across leader changes (fake clock)', () => {
  it('a new leader continues the countdown: expiry is TTL after the last keep-alive, not TTL after the failover', async () => {
    const cluster = new FakeCluster();
    const a = new FakeHost(cluster, 1, 1_000_000);
    const b = new FakeHost(cluster, 2, 42);
    await a.setLeading(true);
    const TTL_MS = 10_000;
    const id = await grant(cluster, TTL_MS / 1000);

    await runUntil(cluster, 3_000, a);
    const keepAliveAt = cluster.realNowMs;
    expect(await a.manager.renew(id)).toBe(10);
    expect(cluster.table.get(id)!.remainingTtlMs).toBe(TTL_MS); // the renewal is on the log
    await runUntil(cluster, 5_350, a);

    // A dies (silent), B is elected 1.5 s later.
    a.leading = false;
    await runUntil(cluster, 6_850, undefined);
    await b.setLeading(true);
    await a.setLeading(false); // A hears of the new term eventually and steps down
    await runUntil(cluster, 30_000, b);

    const expiredAt = cluster.revokedAt.get(id);
    expect(expiredAt).toBeDefined();
    expect(expiredAt!).toBeGreaterThanOrEqual(keepAliveAt + TTL_MS);
    // B applied the renewal when it was committed: the failover adds nothing but the coalescing allowance and the
    // tick that notices.
    expect(expiredAt!).toBeLessThanOrEqual(keepAliveAt + TTL_MS + LEASE_RENEWAL_COALESCE_MS + TICK_MS);
  });

  it('a renewal queued on a leader that lost the lead is refused, not committed under the next leader after its promotion', async () => {
    const cluster = new FakeCluster();
    const a = new FakeHost(cluster, 1, 0);
    const b = new FakeHost(cluster, 2, 5_000);
    await a.setLeading(true);
    const id = await grant(cluster, 3);
    // A's first renewal entry is committed at once, but A hears of it only after B leads (A was cut off).
    let hear!: () => void;
    const heard = new Promise<void>((r) => (hear = r));
    const propose = a.propose;
    let held = false;
    a.propose = async (op, opts, how) => {
      const r = await propose(op, opts, how);
      if (!held) {
        held = true;
        await heard;
      }
      return r;
    };
    await runUntil(cluster, 1_000, a);
    const first = a.manager.renew(id);
    await runUntil(cluster, 1_900, a);
    const second = a.manager.renew(id).then((ttl) => ({ ttl }), (e: unknown) => ({ error: (e as Error).message }));
    a.leading = false; // A no longer leads, and does not know yet
    await runUntil(cluster, 2_500, undefined);
    await b.setLeading(true); // B builds its deadlines from the log: the first renewal, at 1 s
    hear();
    expect(await first).toBe(3); // committed before B's term: B counts it
    // The second renewal would be proposed now, by a member that no longer leads: committed under B after B built
    // its deadlines, B would never count it, and its acknowledgement would promise until 1.9 s + 3 s.
    const outcome = await second;
    await a.setLeading(false);
    await runUntil(cluster, 20_000, b);
    const promisedUntil = 'ttl' in outcome ? 1_900 + 3_000 : 1_000 + 3_000;
    expect(cluster.revokedAt.get(id)).toBeGreaterThanOrEqual(promisedUntil);
    expect(outcome).toEqual({ error: 'etcdserver: leader changed' });
  });

  it('a lease whose holder died long before the failover is revoked at the new leader’s first round', async () => {
    const cluster = new FakeCluster();
    const a = new FakeHost(cluster, 1, 0);
    const b = new FakeHost(cluster, 2, 777);
    await a.setLeading(true);
    const id = await grant(cluster, 2);
    a.leading = false; // the leader dies right after the grant, and no one leads for 5 s
    await runUntil(cluster, 5_000, undefined);
    await b.setLeading(true);
    await runUntil(cluster, 5_000 + TICK_MS, b);
    expect(cluster.revokedAt.get(id)).toBe(5_000 + TICK_MS);
  });

  it('keeps both bounds over random keep-alives and leader changes (200 seeded runs, three members)', async () => {
    for (let seed = Number(process.env.LEASE_SEED ?? 1); seed <= Number(process.env.LEASE_SEED ?? 200); seed++) {
      const rng = new SeededRandom(seed);
      const cluster = new FakeCluster();
      const hosts = [0, 1, 2].map((i) => new FakeHost(cluster, i + 1, between(rng, 0, 1_000_000_000)));
      let leader: FakeHost | undefined = hosts[0]!;
      await leader.setLeading(true);
      const ttlMs = 1_000 * between(rng, 1, 12);
      const id = await grant(cluster, ttlMs / 1000);
      let lastAckAt = 0;
      let lastPromotionAt = 0;
      for (let step = 0; step < 12 && cluster.revokedAt.get(id) === undefined; step++) {
        const action = between(rng, 0, 9);
        if (action < 6 && leader !== undefined) {
          await runUntil(cluster, cluster.realNowMs + between(rng, 0, ttlMs - 1), leader);
          if (cluster.revokedAt.has(id)) break;
          try {
            await leader.renew(id);
            lastAckAt = cluster.realNowMs;
            if (process.env.LEASE_STATS) console.log('ack', cluster.realNowMs, leader.id);
          } catch (e) {
            if (process.env.LEASE_STATS) console.log('renew failed', cluster.realNowMs, leader.id, String(e));
            // expired already
          }
        } else {
          // The leader dies; another is elected after an election timeout of 0.5-2 s.
          const old: FakeHost | undefined = leader;
          if (old !== undefined) old.leading = false;
          await runUntil(cluster, cluster.realNowMs + between(rng, 500, 2_000), undefined);
          leader = hosts[between(rng, 0, 2)]!;
          if (old === leader) await old.setLeading(false);
          await leader.setLeading(true);
          if (old !== undefined && old !== leader) await old.setLeading(false);
          lastPromotionAt = cluster.realNowMs;
          if (process.env.LEASE_STATS) console.log('promoted', cluster.realNowMs, leader.id);
        }
      }
      await runUntil(cluster, cluster.realNowMs + ttlMs + 20_000, leader);
      const expiredAt = cluster.revokedAt.get(id);
      expect(expiredAt, `seed ${seed}`).toBeDefined();
      if (process.env.LEASE_STATS) console.log(seed, { ttlMs, lastAckAt, expiredAt, lastPromotionAt, late: expiredAt! - lastAckAt - ttlMs });
      expect(expiredAt!, `seed ${seed}: too soon`).toBeGreaterThanOrEqual(lastAckAt + ttlMs);
      expect(expiredAt!, `seed ${seed}: too late`).toBeLessThanOrEqual(Math.max(lastAckAt + ttlMs + LEASE_RENEWAL_COALESCE_MS, lastPromotionAt) + TICK_MS);
    }
  });

  it('refuses keep-alives for leases the log revoked behind the tracker, and forwarded calls on a follower', async () => {
    const cluster = new FakeCluster();
    const a = new FakeHost(cluster, 1, 0);
    const b = new FakeHost(cluster, 2, 0);
    await a.setLeading(true);
    const granted = await cluster.propose({ leaseGrant: { id: 5n, ttlSeconds: 30 } });
    expect(granted.error).toBeUndefined();
    expect(await a.manager.renew(5n)).toBe(30);
    // Revoked through another member's proposal: the leader's tracker learns it lazily from the table.
    await b.propose({ leaseRevoke: { id: 5n } });
    await expect(a.manager.renew(5n)).rejects.toMatchObject({ code: 'LEASE_NOT_FOUND' });
    expect(await a.manager.timeToLive(5n, false)).toBeUndefined();
    await expect(b.manager.renew(5n, { forwarded: true })).rejects.toMatchObject({ code: 'NOT_LEADER' });
  });
});
