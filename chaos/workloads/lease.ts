// lease: keys attached to leases while leaders change. Each client grants a lease, attaches a key, keeps the
// lease alive for a while, then lets it go and watches the key disappear (linearizable reads).
//
// Checked, both sides of the server's promise (docs/leases.md, "The promise, with the numbers"):
//   - never early: a lease never expires sooner than its TTL after the last acknowledged keep-alive (measured
//     from the keep-alive's invoke: the server renewed it after that). A linearizable read that *completed*
//     before that deadline and did not find the key is a violation.
//   - never much later: once let go, its keys are gone within EXPIRY_BOUND_NS of the last acknowledged keep-alive's
//     completion + TTL, or within FAULT_RECOVERY_BOUND_NS of the end of a fault that began before that bound (a
//     failover renews every lease for a TTL past the new leader's promotion, as etcd does). A read *invoked*
//     after the bound that still found the key is a violation. A lease whose client stopped watching before the
//     bound, without seeing the key go, is not judged (the summary counts those that were).
import type { NemesisEvent } from '../history.js';
import { ANOMALIES_KEPT_MAX, backoff, clientFor, runWorkers, Worker, type CheckOutcome, type Workload, type WorkloadContext } from './types.js';

export const LEASE_TTL_S = 3;
/** How long after the promise a client keeps looking for its key to go before moving on. */
const EXPIRY_WAIT_S = 15;
/**
 * Keys of a lease let go are gone this long after its deadline (last acknowledged keep-alive + TTL) when no fault
 * intervenes. The documented bound is the deadline + 0.5 s (renewals within 0.5 s of a logged one) + 0.5 s (the
 * leader's expiry tick) + one commit; this leaves room for one leader change nobody caused (the new leader's lease
 * lasts until its promotion, about an election timeout and a half later) and for a slow read.
 */
export const EXPIRY_BOUND_NS = 6e9;
/**
 * After a fault ends: a new leader within about 3 s (a healed partition, a resumed or restarted leader), every
 * lease lasting up to a TTL past its promotion, then the expiry tick, the commit and the read.
 */
export const FAULT_RECOVERY_BOUND_NS = 10e9;

export interface LeaseTrack {
  readonly id: string;
  readonly key: string;
  /** Deadline the server promised, ns on the run's clock: last acked keep-alive invoke (or grant invoke) + TTL. */
  promisedUntilNs: number;
  /** The latest the server's deadline can be: last acked keep-alive's (or the grant's) completion + TTL. */
  expiresByNs: number;
  /** Invoke time of the last read that found the key still there. */
  lastPresentInvokeNs: number | undefined;
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
    return [checkLeases(tracks.get(ctx) ?? [], ctx.recorder.nemesis)];
  },
};

async function attach(ctx: WorkloadContext, w: Worker, key: string): Promise<LeaseTrack | undefined> {
  const askedNs = ctx.recorder.now();
  const g = await w.op('lease-grant', key, LEASE_TTL_S, false, () => w.client.leaseGrant(LEASE_TTL_S), (r) => r.id);
  const grantedNs = ctx.recorder.now(); // at or after the grant's completion
  if (!g.ok) return undefined;
  const put = await w.op('lease-put', key, g.result.id, false, () => w.client.put(key, 'x', g.result.id), () => g.result.id);
  if (!put.ok) return undefined;
  return { id: g.result.id, key, promisedUntilNs: askedNs + g.result.ttl * 1e9, expiresByNs: grantedNs + g.result.ttl * 1e9, lastPresentInvokeNs: undefined, goneAtNs: [], firstGoneNs: undefined };
}

/** Keep-alives every TTL/3 for `forMs`, each one reading the key too (it must be there while promised). */
async function keepAlive(ctx: WorkloadContext, w: Worker, t: LeaseTrack, forMs: number): Promise<void> {
  const end = Date.now() + forMs;
  while (Date.now() < end) {
    const at = ctx.recorder.now();
    const k = await w.op('keepalive', t.key, t.id, false, () => w.client.leaseKeepAliveOnce(t.id), (ttl) => ttl);
    const answeredNs = ctx.recorder.now(); // at or after the keep-alive's completion
    if (k.ok && k.result > 0) {
      t.promisedUntilNs = Math.max(t.promisedUntilNs, at + k.result * 1e9);
      t.expiresByNs = Math.max(t.expiresByNs, answeredNs + k.result * 1e9);
    }
    await read(ctx, w, t);
    await backoff((LEASE_TTL_S * 1000) / 3);
  }
}

async function read(ctx: WorkloadContext, w: Worker, t: LeaseTrack): Promise<boolean | undefined> {
  const invokedNs = ctx.recorder.now();
  const r = await w.op('lease-read', t.key, null, true, () => w.client.get(t.key), (x) => (x.kv ? x.kv.lease : null));
  if (!r.ok) return undefined;
  const present = r.result.kv !== undefined;
  if (present) {
    t.lastPresentInvokeNs = Math.max(t.lastPresentInvokeNs ?? 0, invokedNs);
  } else {
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

/** A fault's time span on the run's clock; a fault never healed lasts forever. */
export interface FaultSpan {
  readonly fault: string;
  readonly startNs: number;
  readonly stopNs: number;
}

/** The nemesis timeline as spans: each start paired with the next stop of the same fault. */
export function faultSpans(events: readonly NemesisEvent[]): FaultSpan[] {
  const open = new Map<string, number[]>();
  const spans: FaultSpan[] = [];
  for (const e of events) {
    const starts = open.get(e.fault) ?? [];
    open.set(e.fault, starts);
    if (e.phase === 'start') starts.push(e.time);
    else if (starts.length > 0) spans.push({ fault: e.fault, startNs: starts.shift()!, stopNs: e.time });
  }
  for (const [fault, starts] of open) for (const startNs of starts) spans.push({ fault, startNs, stopNs: Infinity });
  return spans.sort((a, b) => a.startNs - b.startNs);
}

/** When a lease's keys must be gone by: its own bound, pushed past every fault that began before it. */
export function expiryBoundNs(expiresByNs: number, spans: readonly FaultSpan[]): number {
  let bound = expiresByNs + EXPIRY_BOUND_NS;
  for (const f of spans) {
    if (f.startNs >= bound) break; // sorted by start: no later fault began in time either
    bound = Math.max(bound, f.stopNs + FAULT_RECOVERY_BOUND_NS);
  }
  return bound;
}

export function checkLeases(all: readonly LeaseTrack[], nemesis: readonly NemesisEvent[] = []): CheckOutcome {
  const early = all.flatMap((t) => t.goneAtNs.filter((g) => g < t.promisedUntilNs).map((g) => ({ lease: t.id, key: t.key, goneAtMs: g / 1e6, promisedUntilMs: t.promisedUntilNs / 1e6 })));
  const lateness = all.filter((t) => t.firstGoneNs !== undefined).map((t) => (t.firstGoneNs! - t.promisedUntilNs) / 1e6);
  const expired = lateness.length;
  const maxLate = expired === 0 ? 0 : Math.max(...lateness);
  const spans = faultSpans(nemesis);
  let judged = 0;
  /** How close an expiry came to its bound (the first read that found the key gone, against the bound). */
  let nearestNs = Infinity;
  const late: Array<{ lease: string; key: string; boundMs: number; stillThereAtMs: number }> = [];
  for (const t of all) {
    const bound = expiryBoundNs(t.expiresByNs, spans);
    const seenAfterBound = t.lastPresentInvokeNs !== undefined && t.lastPresentInvokeNs > bound;
    if (seenAfterBound) late.push({ lease: t.id, key: t.key, boundMs: bound / 1e6, stillThereAtMs: t.lastPresentInvokeNs! / 1e6 });
    if (seenAfterBound || t.firstGoneNs !== undefined) judged++;
    if (t.firstGoneNs !== undefined) nearestNs = Math.min(nearestNs, bound - t.firstGoneNs);
  }
  const anomalies = [...early, ...late];
  return {
    checker: 'lease-promise',
    verdict: anomalies.length === 0 ? 'valid' : 'invalid',
    summary:
      `${all.length} leases, ${expired} seen expiring (at most ${Math.round(maxLate)} ms past the promise); ` +
      `${early.length} reads found a key gone while its lease was promised; ` +
      `${late.length} keys still there past their expiry bound (${judged} of ${all.length} leases judged on that side` +
      `${Number.isFinite(nearestNs) ? `; the nearest went ${Math.round(nearestNs / 1e6)} ms before its bound` : ''})`,
    ...(anomalies.length > 0 ? { anomalies: anomalies.slice(0, ANOMALIES_KEPT_MAX) } : {}),
  };
}
