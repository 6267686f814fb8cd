// clock: Fulcrum stamps every revision with a hybrid logical clock value (response headers carry it as `hlc`).
// Clients write and read while member wall clocks are skewed and jumped (the clock nemesis) and members restart;
// every response's (revision, hlc) pair is kept with the harness's own wall time around the call.
//
// Checked: a higher revision never has a lower or equal HLC, and one revision always has the same HLC (values
// never go backwards, across leader changes and restarts); and the HLC's wall part stays within a bound of real
// time: the largest clock offset injected so far + the clock's reservation window (10 s) + 5 s of slack.
// Against etcd (no HLC: the field is 0) the checker says `unknown`.
import { ANOMALIES_KEPT_MAX, backoff, clientFor, runWorkers, Worker, type CheckOutcome, type Workload, type WorkloadContext } from './types.js';

/** How far ahead a member may issue (HYBRID_CLOCK_DEFAULTS.reservationWindowMs) plus slack for this machine. */
export const HLC_REAL_TIME_SLACK_MS = 10_000 + 5_000;

export interface Observation {
  readonly revision: number;
  readonly hlc: bigint;
  readonly invokedMs: number;
  readonly completedMs: number;
  /** Largest injected offset at the time of the response, ms. */
  readonly offsetBoundMs: number;
}

const observations = new WeakMap<WorkloadContext, Observation[]>();

export const clock: Workload = {
  name: 'clock',
  async run(ctx) {
    const obs: Observation[] = [];
    observations.set(ctx, obs);
    await runWorkers(Math.min(ctx.options.clients, 4), async (i) => {
      const w = new Worker(ctx, clientFor(ctx, i));
      for (let n = 0; Date.now() < ctx.until; n++) {
        const key = `c/${i}`;
        const invokedMs = Date.now();
        const write = ctx.random() < 0.6;
        const r = write
          ? await w.op('hlc-put', key, n, false, () => w.client.put(key, String(n)), (h) => [h.revision, h.hlc])
          : await w.op('hlc-get', key, null, true, () => w.client.get(key).then((x) => x.header), (h) => [h.revision, h.hlc]);
        if (!r.ok) {
          await backoff(50 + ctx.random() * 100);
          continue;
        }
        obs.push({ revision: r.result.revision, hlc: BigInt(r.result.hlc), invokedMs, completedMs: Date.now(), offsetBoundMs: ctx.cluster.maxClockOffsetS * 1000 });
      }
      w.client.close();
    });
  },
  async check(ctx) {
    return checkClock(observations.get(ctx) ?? []);
  },
};

export function checkClock(observed: readonly Observation[]): CheckOutcome[] {
  let obs = observed;
  // "0" means the member does not know that revision's stamp (docs/api.md: only the newest revision's is kept;
  // a member that just restarted knows none yet): such a response says nothing about the clock.
  const unknown = obs.filter((o) => o.hlc === 0n).length;
  obs = obs.filter((o) => o.hlc !== 0n);
  if (obs.length === 0) return [{ checker: 'hlc', verdict: 'unknown', summary: `no HLC values in ${unknown} responses (etcd has none)` }];
  const byRevision = new Map<number, bigint>();
  const conflicts: unknown[] = [];
  for (const o of obs) {
    const known = byRevision.get(o.revision);
    if (known === undefined) byRevision.set(o.revision, o.hlc);
    else if (known !== o.hlc && conflicts.length < ANOMALIES_KEPT_MAX) conflicts.push({ revision: o.revision, hlc: [String(known), String(o.hlc)] });
  }
  const backwards: unknown[] = [];
  const revisions = [...byRevision.keys()].sort((a, b) => a - b);
  for (let i = 1; i < revisions.length; i++) {
    const a = byRevision.get(revisions[i - 1]!)!;
    const b = byRevision.get(revisions[i]!)!;
    if (b <= a && backwards.length < ANOMALIES_KEPT_MAX) backwards.push({ revisions: [revisions[i - 1], revisions[i]], hlc: [String(a), String(b)] });
  }
  const far: unknown[] = [];
  let worstMs = 0;
  for (const o of obs) {
    const wall = Number(o.hlc >> 16n);
    const ahead = wall - o.completedMs;
    const behind = o.invokedMs - wall;
    worstMs = Math.max(worstMs, ahead, behind);
    if ((ahead > o.offsetBoundMs + HLC_REAL_TIME_SLACK_MS || behind > o.offsetBoundMs + HLC_REAL_TIME_SLACK_MS) && far.length < ANOMALIES_KEPT_MAX) {
      far.push({ revision: o.revision, hlcWallMs: wall, realMs: [o.invokedMs, o.completedMs], boundMs: o.offsetBoundMs + HLC_REAL_TIME_SLACK_MS });
    }
  }
  return [
    {
      checker: 'hlc-monotonic',
      verdict: conflicts.length + backwards.length === 0 ? 'valid' : 'invalid',
      summary: `${obs.length} stamped responses (${unknown} without a stamp) over ${revisions.length} revisions; ${backwards.length} HLC steps backwards, ${conflicts.length} revisions with two HLCs`,
      ...(conflicts.length + backwards.length > 0 ? { anomalies: [...backwards, ...conflicts] } : {}),
    },
    {
      checker: 'hlc-real-time',
      verdict: far.length === 0 ? 'valid' : 'invalid',
      summary: `largest distance from real time ${worstMs} ms; ${far.length} beyond the bound`,
      ...(far.length > 0 ? { anomalies: far } : {}),
    },
  ];
}
