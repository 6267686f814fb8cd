// register: get / put / compare-and-set on a handful of keys from many clients, checked for linearizability by
// the checker (kv model, one register per key: P-compositionality).
import { join } from 'node:path';
import * as checker from '../checker/index.js';
import type { HistoryEvent } from '../history.js';
import { ANOMALIES_KEPT_MAX, backoff, clientFor, runWorkers, Worker, type CheckOutcome, type Workload, type WorkloadContext } from './types.js';

export const REGISTER_KEYS = 5;
/** The checker's budget for a history; past it the verdict is `unknown`, never a false pass. */
export const CHECK_TIME_LIMIT_MS = 60_000;

export const register: Workload = {
  name: 'register',
  async run(ctx) {
    let nextValue = 1;
    await runWorkers(ctx.options.clients, async (i) => {
      const w = new Worker(ctx, clientFor(ctx, i));
      /** The last value this client saw per key: a good guess for a cas that can succeed. */
      const seen = new Map<string, number | null>();
      while (Date.now() < ctx.until) {
        const key = `r/${Math.floor(ctx.random() * REGISTER_KEYS)}`;
        const dice = ctx.random();
        let res;
        if (dice < 0.5) {
          res = await w.op('get', key, null, true, () => w.client.get(key, ctx.options.serializableReads), (r) => (r.kv ? Number(r.kv.value) : null));
          if (res.ok) seen.set(key, res.result.kv ? Number(res.result.kv.value) : null);
        } else if (dice < 0.8) {
          const v = nextValue++;
          res = await w.op('put', key, v, false, () => w.client.put(key, String(v)), () => v);
        } else {
          const expected = seen.get(key) ?? null;
          const v = nextValue++;
          res = await w.op('cas', key, [expected, v], false, () => w.client.cas(key, expected === null ? undefined : String(expected), String(v)), (r) => (r.succeeded ? [expected, v] : false));
        }
        if (!res.ok) await backoff(50 + ctx.random() * 100);
      }
      w.client.close();
    });
  },
  async check(ctx) {
    return [linearizable(ctx, 'kv', (e) => e.key?.startsWith('r/') === true)];
  },
};

/** Checks the events `mine` selects (a run may mix workloads; each checker reads its own operations). */
export function linearizable(ctx: WorkloadContext, model: 'kv' | 'register', mine: (e: HistoryEvent) => boolean): CheckOutcome {
  const events = ctx.recorder.events.filter(mine);
  const r = checker.checkHistory(events, { model, timeLimitMs: CHECK_TIME_LIMIT_MS });
  const verdict = r.verdict === 'linearizable' ? 'valid' : r.verdict === 'not-linearizable' ? 'invalid' : 'unknown';
  const v = r.violation;
  const summary =
    `${r.verdict}: ${r.operations} operations over ${r.keys} keys in ${Math.round(r.elapsedMs)} ms` +
    (v !== undefined ? `; key ${v.key}: no order can place ${JSON.stringify(v.blocking)} after state ${v.state}` : '');
  try {
    checker.writeReport(r, events, join(ctx.recorder.dir, 'linearizability.html'), ctx.recorder.nemesis);
  } catch (e) {
    ctx.log(`could not write the linearizability report: ${String(e)}`);
  }
  return { checker: 'linearizable', verdict, summary, ...(v !== undefined ? { anomalies: [{ key: v.key, state: v.state, blocking: v.blocking, pending: v.pending.slice(0, ANOMALIES_KEPT_MAX) }] } : {}) };
}
