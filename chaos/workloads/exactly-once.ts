// exactly-once: each client puts to its own key with Fulcrum's request identity (client id + sequence number)
// and, when the outcome is unknown, retries the SAME request (same identity) through other members until it is
// answered. A put is not idempotent in one visible way: every applied put raises the key's `version`. So after
// healing, each key's version must be exactly 1 + the puts acknowledged, plus at most the ones given up on.
// A retry applied twice shows up as a version above that. Negative control: `--no-dedup` retries without the
// identity (what a plain etcd client does); against etcd, which has no exactly-once, duplicates are expected.
import { ChaosClient, errorText, writeCertainlyFailed } from '../harness/client.js';
import { sleep } from '../harness/cluster.js';
import { backoff, runWorkers, type CheckOutcome, type Workload, type WorkloadContext } from './types.js';

const PREFIX = 'x/';
/** Attempts of one request (the first and its retries) before it is given up as unknown. */
export const ATTEMPTS_MAX = 20;

interface KeyTally {
  readonly key: string;
  acked: number;
  givenUp: number;
  retried: number;
  finalVersion: number | undefined;
}

const tallies = new WeakMap<WorkloadContext, KeyTally[]>();

export const exactlyOnce: Workload = {
  name: 'exactly-once',
  async run(ctx) {
    const all: KeyTally[] = [];
    tallies.set(ctx, all);
    const runId = Math.floor(ctx.random() * 1e9).toString(36);
    await runWorkers(Math.min(ctx.options.clients, 4), async (i) => {
      const t: KeyTally = { key: `${PREFIX}${i}`, acked: 0, givenUp: 0, retried: 0, finalVersion: undefined };
      all.push(t);
      const clients = ctx.cluster.members.map((_, m) => new ChaosClient(ctx.cluster.clientEndpoint(m), ctx.options.opTimeoutMs));
      let process = ctx.recorder.newProcess();
      for (let seq = 1; Date.now() < ctx.until; seq++) {
        const requestId = ctx.options.noDedup ? undefined : `chaos-${runId}-${i}:${seq}`;
        const inv = ctx.recorder.invoke(process, 'xput', t.key, seq);
        let outcome: 'ok' | 'fail' | 'info' = 'info';
        let last = '';
        for (let attempt = 0; attempt < ATTEMPTS_MAX; attempt++) {
          if (attempt > 0) t.retried++;
          try {
            await clients[(i + attempt) % clients.length]!.putOnce(t.key, String(seq), requestId);
            outcome = 'ok';
            break;
          } catch (e) {
            last = errorText(e);
            if (writeCertainlyFailed(e) && attempt === 0) {
              outcome = 'fail';
              break;
            }
            await backoff(100 + ctx.random() * 200);
          }
        }
        ctx.recorder.complete(inv, outcome, outcome === 'ok' ? seq : undefined, outcome === 'ok' ? undefined : last);
        if (outcome === 'fail') await backoff(100 + ctx.random() * 200);
        if (outcome === 'ok') t.acked++;
        else if (outcome === 'info') {
          t.givenUp++;
          process = ctx.recorder.newProcess();
        }
      }
      for (const c of clients) c.close();
    });
  },
  async final(ctx) {
    for (const t of tallies.get(ctx) ?? []) {
      for (let attempt = 0; attempt < 30 && t.finalVersion === undefined; attempt++) {
        const c = new ChaosClient(ctx.cluster.directEndpoint(attempt % ctx.cluster.options.size), 5_000);
        t.finalVersion = await c.get(t.key).then((r) => r.kv?.version ?? 0, () => undefined);
        c.close();
        if (t.finalVersion === undefined) await sleep(500);
      }
    }
  },
  async check(ctx) {
    return [checkExactlyOnce(tallies.get(ctx) ?? [])];
  },
};

export function checkExactlyOnce(all: readonly KeyTally[]): CheckOutcome {
  if (all.some((t) => t.finalVersion === undefined)) return { checker: 'exactly-once', verdict: 'unknown', summary: 'the final read failed' };
  const doubled = all.filter((t) => t.finalVersion! > t.acked + t.givenUp).map((t) => ({ key: t.key, version: t.finalVersion, acked: t.acked, givenUp: t.givenUp }));
  const lost = all.filter((t) => t.finalVersion! < t.acked).map((t) => ({ key: t.key, version: t.finalVersion, acked: t.acked }));
  const acked = all.reduce((n, t) => n + t.acked, 0);
  const retried = all.reduce((n, t) => n + t.retried, 0);
  return {
    checker: 'exactly-once',
    verdict: doubled.length + lost.length === 0 ? 'valid' : 'invalid',
    summary: `${acked} puts acknowledged after ${retried} retries; keys applied more often than asked ${doubled.length}, fewer than acknowledged ${lost.length}`,
    ...(doubled.length + lost.length > 0 ? { anomalies: [...doubled, ...lost] } : {}),
  };
}
