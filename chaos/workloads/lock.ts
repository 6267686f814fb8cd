// lock with fencing: holders take a lock (a key created on a lease, etcd style: the revision of the creating
// write is the fencing token), keep the lease alive, and do read-modify-write on a resource outside the store.
// The resource accepts a read or write only with a token at least as high as any it has seen (the fencing
// check), so a holder whose lease ran out while it was paused is refused instead of overwriting newer work.
//
// Checked: tokens are unique and strictly increase in real-time order; no write with a stale token was
// accepted; no update was lost (the resource's final value equals the writes it accepted); and no grant came
// while the previous holder's lease was still promised (last acknowledged keep-alive + TTL, not released).
// Negative control (--no-fencing): the same workload with holders that pause past their TTL loses updates.
import { ChaosClient } from '../harness/client.js';
import { ANOMALIES_KEPT_MAX, backoff, clientFor, runWorkers, Worker, type CheckOutcome, type Workload, type WorkloadContext } from './types.js';

const LOCK_KEY = 'lock/mutex';
export const LOCK_TTL_S = 2;
/** Chance that a holder stalls (a GC pause, a stopped VM) past its TTL inside the critical section. */
const PAUSE_PROBABILITY = 0.25;

interface Grant {
  readonly holder: number;
  readonly token: number;
  readonly lease: string;
  /** The TTL the server granted (it may round a short one up): what it promised. */
  readonly ttlS: number;
  readonly invokedNs: number;
  readonly grantedNs: number;
  /** Invoke times of keep-alives answered with a live lease (TTL > 0); the lease is promised TTL after each. */
  readonly acks: number[];
  releasedNs: number | undefined;
}

/** A resource outside the store that fences with tokens (or, for the negative control, does not). */
class FencedResource {
  value = 0;
  maxToken = 0;
  readonly accepted: Array<{ token: number; wrote: number }> = [];
  readonly refused: number[] = [];
  /** Accepted writes whose token was below one seen earlier: only possible without fencing. */
  readonly stale: Array<{ token: number; maxSeen: number }> = [];

  constructor(private readonly fencing: boolean) {}

  private admit(token: number): boolean {
    if (this.fencing && token < this.maxToken) {
      this.refused.push(token);
      return false;
    }
    if (token < this.maxToken) this.stale.push({ token, maxSeen: this.maxToken });
    this.maxToken = Math.max(this.maxToken, token);
    return true;
  }

  read(token: number): number | undefined {
    return this.admit(token) ? this.value : undefined;
  }

  write(token: number, v: number): boolean {
    if (!this.admit(token)) return false;
    this.value = v;
    this.accepted.push({ token, wrote: v });
    return true;
  }
}

const state = new WeakMap<WorkloadContext, { grants: Grant[]; resource: FencedResource }>();

export const lock: Workload = {
  name: 'lock',
  async run(ctx) {
    const resource = new FencedResource(!ctx.options.noFencing);
    const grants: Grant[] = [];
    state.set(ctx, { grants, resource });
    // Few holders: contention is the point, and each holder spends most of its time waiting.
    await runWorkers(Math.min(ctx.options.clients, 5), async (i) => {
      const w = new Worker(ctx, clientFor(ctx, i));
      while (Date.now() < ctx.until) {
        const g = await acquire(ctx, w, i);
        if (g === undefined) {
          await backoff(100 + ctx.random() * 200);
          continue;
        }
        grants.push(g);
        await critical(ctx, w, g, resource);
        await release(w, g);
      }
      w.client.close();
    });
  },
  async check(ctx) {
    const s = state.get(ctx);
    if (s === undefined) return [{ checker: 'lock', verdict: 'unknown', summary: 'the workload did not run' }];
    return checkLock(s.grants, s.resource, !ctx.options.noFencing);
  },
};

async function acquire(ctx: WorkloadContext, w: Worker, holder: number): Promise<Grant | undefined> {
  // The lease's first promise runs from before its grant was asked for: the server granted it after this.
  const leaseAskedNs = ctx.recorder.now();
  const lease = await w.op('lease-grant', LOCK_KEY, LOCK_TTL_S, false, () => w.client.leaseGrant(LOCK_TTL_S), (r) => r.id);
  if (!lease.ok) return undefined;
  const id = lease.result.id;
  const invokedNs = ctx.recorder.now();
  const r = await w.op('acquire', LOCK_KEY, id, false, () => w.client.putIfUnchanged(LOCK_KEY, 0, `holder-${holder}`, id), (x) => (x.succeeded ? x.header.revision : false));
  if (!r.ok || !r.result.succeeded) {
    await w.client.leaseRevoke(id).catch(() => undefined);
    return undefined;
  }
  return { holder, token: r.result.header.revision, lease: id, ttlS: lease.result.ttl, invokedNs, grantedNs: ctx.recorder.now(), acks: [leaseAskedNs], releasedNs: undefined };
}

/** Read the resource, maybe stall past the TTL (keep-alives stop too: the process is frozen), write it back. */
async function critical(ctx: WorkloadContext, w: Worker, g: Grant, resource: FencedResource): Promise<void> {
  let holding = true;
  const keepAlive = (async () => {
    while (holding) {
      await backoff((LOCK_TTL_S * 1000) / 4);
      if (!holding) break;
      const at = ctx.recorder.now();
      const ttl = await w.client.leaseKeepAliveOnce(g.lease).catch(() => 0);
      if (ttl > 0) g.acks.push(at);
    }
  })();
  const seen = resource.read(g.token);
  if (seen !== undefined) {
    if (ctx.random() < (ctx.options.lockStallProbability ?? PAUSE_PROBABILITY)) {
      holding = false; // a frozen process sends no keep-alives
      await backoff(LOCK_TTL_S * 1000 * 1.5 + ctx.random() * 1000);
    }
    resource.write(g.token, seen + 1);
  }
  holding = false;
  await keepAlive;
}

async function release(w: Worker, g: Grant): Promise<void> {
  g.releasedNs = w.ctx.recorder.now();
  // Delete only our own lock key (it may already belong to someone else if our lease expired), then the lease.
  await w.op('release', LOCK_KEY, g.token, false, () => revoke(w.client, g.lease), () => g.token);
}

function revoke(c: ChaosClient, lease: string): Promise<void> {
  return c.leaseRevoke(lease);
}

export function checkLock(grants: readonly Grant[], resource: FencedResource, fencing: boolean): CheckOutcome[] {
  const out: CheckOutcome[] = [];
  const tokens = grants.map((g) => g.token);
  const dupes = tokens.filter((t, i) => tokens.indexOf(t) !== i);
  const order: Array<{ earlier: number; later: number }> = [];
  const early: Array<{ previous: number; next: number; promisedUntilMs: number; grantedAtMs: number }> = [];
  const byGrant = [...grants].sort((a, b) => a.grantedNs - b.grantedNs);
  for (let i = 0; i < byGrant.length; i++) {
    for (let j = 0; j < byGrant.length; j++) {
      const a = byGrant[i]!;
      const b = byGrant[j]!;
      if (a.grantedNs < b.invokedNs && a.token >= b.token) order.push({ earlier: a.token, later: b.token });
    }
    const next = byGrant[i + 1];
    if (next === undefined) continue;
    const prev = byGrant[i]!;
    // The previous holder's lease is promised until its last acknowledged keep-alive + TTL, unless it let go.
    const promisedUntil = Math.min(prev.acks[prev.acks.length - 1]! + prev.ttlS * 1e9, prev.releasedNs ?? Infinity);
    if (next.grantedNs < promisedUntil) early.push({ previous: prev.token, next: next.token, promisedUntilMs: promisedUntil / 1e6, grantedAtMs: next.grantedNs / 1e6 });
  }
  out.push({
    checker: 'tokens',
    verdict: dupes.length === 0 && order.length === 0 ? 'valid' : 'invalid',
    summary: `${grants.length} grants; duplicate tokens ${dupes.length}, out-of-order tokens ${order.length}`,
    ...(dupes.length + order.length > 0 ? { anomalies: [{ duplicates: dupes.slice(0, ANOMALIES_KEPT_MAX), outOfOrder: order.slice(0, ANOMALIES_KEPT_MAX) }] } : {}),
  });
  out.push({
    checker: 'lease-promise',
    verdict: early.length === 0 ? 'valid' : 'invalid',
    summary: `${early.length} grants while the previous holder's lease was still promised`,
    ...(early.length > 0 ? { anomalies: early.slice(0, ANOMALIES_KEPT_MAX) } : {}),
  });
  const lost = resource.accepted.length - resource.value;
  out.push({
    checker: fencing ? 'fencing' : 'fencing (disabled: negative control)',
    verdict: resource.stale.length === 0 && lost === 0 ? 'valid' : 'invalid',
    summary: `${resource.accepted.length} writes accepted, ${resource.refused.length} refused as stale; stale writes accepted ${resource.stale.length}, lost updates ${lost}`,
    ...(resource.stale.length > 0 ? { anomalies: resource.stale.slice(0, ANOMALIES_KEPT_MAX) } : {}),
  });
  return out;
}
