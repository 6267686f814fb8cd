// lease: keys attached to leases while leaders change. Each client grants a lease, attaches a key, keeps the
// lease alive for a while, then lets it go and watches the key disappear (linearizable reads).
//
// Checked, the server's promise: a lease never expires sooner than its TTL after the last acknowledged
// keep-alive (measured from the keep-alive's invoke: the server renewed it after that). A linearizable read that
// *completed* before that deadline and did not find the key is a violation. Reported, not judged: how long past
// the promise keys took to go (a lease may outlive its TTL by an election or so; etcd extends leases when the
// leader changes).
import { ANOMALIES_KEPT_MAX, backoff, clientFor, runWorkers, Worker, type CheckOutcome, type Workload, type WorkloadContext } from './types.js';

export const LEASE_TTL_S = 3;
/** How long after the promise a client keeps looking for its key to go before moving on. */
const EXPIRY_WAIT_S = 15;

export interface LeaseTrack {
  readonly id: string;
  readonly key: string;
  /** Deadline the server promised, ns on the run's clock: last acked keep-alive invoke (or grant invoke) + TTL. */
  promisedUntilNs: number;
  /** Reads that found the key gone: completion times (ns). */
  readonly goneAtNs: number[];
  /** First read that found the key gone, if any. */
  firstGoneNs: number | undefined;
}

const tracks = new WeakMap<WorkloadContext, LeaseTrack[]>();

export const lease: Workload = {
  name: 'lease',
  async run(ctx) {
    const all: LeaseTrack[] = [];
    tracks.set(ctx, all);
    await runWorkers(Math.min(ctx.options.clients, 4), async (i) => {
      const w = new Worker(ctx, clientFor(ctx, i + 1));
      for (let n = 0; Date.now() < ctx.until; n++) {
        const t = await attach(ctx, w, `lease/${i}/${n}`);
        if (t === undefined) {
          await backoff(200 + ctx.random() * 300);
          continue;
        }
        all.push(t);
        await keepAlive(ctx, w, t, 1_000 + ctx.random() * 5_000);
        await watchExpiry(ctx, w, t);
      }
      w.client.close();
    });
  },
  async check(ctx) {
    return [checkLeases(tracks.get(ctx) ?? [])];
  },
};

async function attach(ctx: WorkloadContext, w: Worker, key: string): Promise<LeaseTrack | undefined> {
  const askedNs = ctx.recorder.now();
  const g = await w.op('lease-grant', key, LEASE_TTL_S, false, () => w.client.leaseGrant(LEASE_TTL_S), (r) => r.id);
  if (!g.ok) return undefined;
  const put = await w.op('lease-put', key, g.result.id, false, () => w.client.put(key, 'x', g.result.id), () => g.result.id);
  if (!put.ok) return undefined;
  return { id: g.result.id, key, promisedUntilNs: askedNs + g.result.ttl * 1e9, goneAtNs: [], firstGoneNs: undefined };
}

/** Keep-alives every TTL/3 for `forMs`, each one reading the key too (it must be there while promised). */
async function keepAlive(ctx: WorkloadContext, w: Worker, t: LeaseTrack, forMs: number): Promise<void> {
  const end = Date.now() + forMs;
  while (Date.now() < end) {
    const at = ctx.recorder.now();
    const k = await w.op('keepalive', t.key, t.id, false, () => w.client.leaseKeepAliveOnce(t.id), (ttl) => ttl);
    if (k.ok && k.result > 0) t.promisedUntilNs = Math.max(t.promisedUntilNs, at + k.result * 1e9);
    await read(ctx, w, t);
    await backoff((LEASE_TTL_S * 1000) / 3);
  }
}

async function read(ctx: WorkloadContext, w: Worker, t: LeaseTrack): Promise<boolean | undefined> {
  const r = await w.op('lease-read', t.key, null, true, () => w.client.get(t.key), (x) => (x.kv ? x.kv.lease : null));
  if (!r.ok) return undefined;
  const present = r.result.kv !== undefined;
  if (!present) {
    const at = ctx.recorder.now();
    t.goneAtNs.push(at);
    t.firstGoneNs ??= at;
  }
  return present;
}

async function watchExpiry(ctx: WorkloadContext, w: Worker, t: LeaseTrack): Promise<void> {
  const giveUp = Date.now() + (t.promisedUntilNs - ctx.recorder.now()) / 1e6 + EXPIRY_WAIT_S * 1000;
  while (Date.now() < giveUp && Date.now() < ctx.until + EXPIRY_WAIT_S * 1000) {
    if ((await read(ctx, w, t)) === false) return;
    await backoff(300);
  }
}

export function checkLeases(all: readonly LeaseTrack[]): CheckOutcome {
  const early = all.flatMap((t) => t.goneAtNs.filter((g) => g < t.promisedUntilNs).map((g) => ({ lease: t.id, key: t.key, goneAtMs: g / 1e6, promisedUntilMs: t.promisedUntilNs / 1e6 })));
  const lateness = all.filter((t) => t.firstGoneNs !== undefined).map((t) => (t.firstGoneNs! - t.promisedUntilNs) / 1e6);
  const expired = lateness.length;
  const maxLate = expired === 0 ? 0 : Math.max(...lateness);
  return {
    checker: 'lease-promise',
    verdict: early.length === 0 ? 'valid' : 'invalid',
    summary: `${all.length} leases, ${expired} seen expiring (at most ${Math.round(maxLate)} ms past the promise); ${early.length} reads found a key gone while its lease was promised`,
    ...(early.length > 0 ? { anomalies: early.slice(0, ANOMALIES_KEPT_MAX) } : {}),
  };
}
