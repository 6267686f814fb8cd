// set: every client adds unique elements (one key each), then a final linearizable read on the healed cluster:
// nothing acknowledged may be missing, nothing never attempted may appear. The read is the ground truth, so
// this checker needs no model search and also catches lost writes that a register history cannot see.
import { ChaosClient, errorText } from '../harness/client.js';
import { sleep } from '../harness/cluster.js';
import { ANOMALIES_KEPT_MAX, backoff, clientFor, runWorkers, Worker, type CheckOutcome, type Workload, type WorkloadContext } from './types.js';

const PREFIX = 'set/';
/** How long the final read keeps trying on a cluster that is still recovering. */
export const FINAL_READ_TIMEOUT_MS = 60_000;

const finalReads = new WeakMap<WorkloadContext, Set<number> | string>();

export const set: Workload = {
  name: 'set',
  async run(ctx) {
    let next = 0;
    await runWorkers(ctx.options.clients, async (i) => {
      const w = new Worker(ctx, clientFor(ctx, i));
      while (Date.now() < ctx.until) {
        const e = next++;
        const key = `${PREFIX}${String(e).padStart(8, '0')}`;
        const res = await w.op('add', undefined, e, false, () => w.client.put(key, String(e)), () => e);
        if (!res.ok) await backoff(50 + ctx.random() * 100);
      }
      w.client.close();
    });
  },
  async final(ctx) {
    finalReads.set(ctx, await readFinal(ctx, PREFIX));
  },
  async check(ctx) {
    return [checkSet(ctx, finalReads.get(ctx) ?? 'no final read')];
  },
};

/** A linearizable range read of everything under `prefix`, through any member that answers. */
export async function readFinal(ctx: WorkloadContext, prefix: string): Promise<Set<number> | string> {
  const deadline = Date.now() + FINAL_READ_TIMEOUT_MS;
  let last = 'no member answered';
  const inv = ctx.recorder.invoke(ctx.recorder.newProcess(), 'read-all', undefined, prefix);
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const c = new ChaosClient(ctx.cluster.directEndpoint(attempt % ctx.cluster.options.size), 10_000);
    try {
      const r = await c.rangeAll(prefix);
      const values = new Set(r.kvs.map((kv) => Number(kv.value)));
      ctx.recorder.complete(inv, 'ok', values.size);
      return values;
    } catch (e) {
      last = errorText(e);
      await sleep(500);
    } finally {
      c.close();
    }
  }
  ctx.recorder.complete(inv, 'fail', undefined, last);
  return `final read failed for ${FINAL_READ_TIMEOUT_MS} ms: ${last}`;
}

export function checkSet(ctx: WorkloadContext, final: Set<number> | string): CheckOutcome {
  if (typeof final === 'string') return { checker: 'set', verdict: 'unknown', summary: final };
  const outcome = new Map<number, 'ok' | 'fail' | 'info'>();
  const pending = new Map<number, number>();
  for (const e of ctx.recorder.events) {
    if (e.f !== 'add') continue;
    if (e.type === 'invoke') pending.set(e.process, e.value as number);
    else {
      outcome.set(pending.get(e.process)!, e.type);
      pending.delete(e.process);
    }
  }
  const lost: number[] = [];
  const unexpected: number[] = [];
  const revived: number[] = [];
  let acked = 0;
  let unknown = 0;
  for (const [el, o] of outcome) {
    if (o === 'ok') {
      acked++;
      if (!final.has(el)) lost.push(el);
    } else if (o === 'fail' && final.has(el)) revived.push(el);
    else if (o === 'info') unknown++;
  }
  for (const el of final) if (!outcome.has(el)) unexpected.push(el);
  const bad = lost.length + unexpected.length + revived.length;
  const unknownIn = [...outcome].filter(([el, o]) => o === 'info' && final.has(el)).length;
  return {
    checker: 'set',
    verdict: bad === 0 ? 'valid' : 'invalid',
    summary: `${acked} acknowledged adds, ${unknown} unknown (${unknownIn} of them present); lost ${lost.length}, failed-but-present ${revived.length}, never-attempted ${unexpected.length}`,
    ...(bad > 0 ? { anomalies: [{ lost: lost.slice(0, ANOMALIES_KEPT_MAX), failedButPresent: revived.slice(0, ANOMALIES_KEPT_MAX), neverAttempted: unexpected.slice(0, ANOMALIES_KEPT_MAX) }] } : {}),
  };
}
