// What a workload is: client loops that record every operation while nemeses run, an optional final phase on
// the healed cluster, and checkers that judge the history.
import type { ChaosCluster } from '../harness/cluster.js';
import type { Recorder } from '../harness/recorder.js';
import { ChaosClient, errorText, writeCertainlyFailed } from '../harness/client.js';
import type { HistoryEvent } from '../history.js';

export interface WorkloadOptions {
  /** Concurrent clients. */
  readonly clients: number;
  /** Negative control: reads are served locally by whichever member answers (no ReadIndex). */
  readonly serializableReads: boolean;
  /** Negative control for the lock workload: the resource does not check fencing tokens. */
  readonly noFencing: boolean;
  /** Chance that a lock holder stalls past its lease inside the critical section (default: the workload's own). */
  readonly lockStallProbability?: number;
  /** Negative control for the exactly-once workload: retries carry no request identity. */
  readonly noDedup: boolean;
  /** Per-operation deadline, ms. */
  readonly opTimeoutMs: number;
}

export interface WorkloadContext {
  readonly cluster: ChaosCluster;
  readonly recorder: Recorder;
  readonly random: () => number;
  readonly log: (line: string) => void;
  readonly options: WorkloadOptions;
  /** Date.now() deadline of the faulty phase. */
  readonly until: number;
}

export type Verdict = 'valid' | 'invalid' | 'unknown';

export interface CheckOutcome {
  readonly checker: string;
  readonly verdict: Verdict;
  /** One line for the summary. */
  readonly summary: string;
  /** Examples of what went wrong, for the report (bounded). */
  readonly anomalies?: readonly unknown[];
}

/** Anomalies kept per checker: enough to reproduce, not enough to flood a report. */
export const ANOMALIES_KEPT_MAX = 20;

export interface Workload {
  readonly name: string;
  /** Client loops; returns when ctx.until passes. */
  run(ctx: WorkloadContext): Promise<void>;
  /** After every fault is healed: final reads and the like. */
  final?(ctx: WorkloadContext): Promise<void>;
  check(ctx: WorkloadContext): Promise<CheckOutcome[]>;
}

/** Client i talks to member i mod n, through that member's client proxy. */
export function clientFor(ctx: WorkloadContext, i: number): ChaosClient {
  return new ChaosClient(ctx.cluster.clientEndpoint(i % ctx.cluster.options.size), ctx.options.opTimeoutMs);
}

/**
 * One logical client: a process id that changes after an operation with an unknown outcome (the history's
 * rule), and a helper that records invoke + completion around a call.
 */
export class Worker {
  process: number;

  constructor(
    readonly ctx: WorkloadContext,
    public client: ChaosClient,
  ) {
    this.process = ctx.recorder.newProcess();
  }

  /**
   * Runs `call` as one operation. `toValue` turns the result into the recorded completion value; a thrown error
   * is a `fail` for reads (nothing changed) and for writes refused up front, otherwise `info`.
   */
  async op<R>(f: string, key: string | undefined, value: unknown, isRead: boolean, call: () => Promise<R>, toValue: (r: R) => unknown): Promise<{ ok: true; result: R } | { ok: false; error: unknown }> {
    const inv: HistoryEvent = this.ctx.recorder.invoke(this.process, f, key, value);
    try {
      const result = await call();
      this.ctx.recorder.complete(inv, 'ok', toValue(result));
      return { ok: true, result };
    } catch (e) {
      if (isRead || writeCertainlyFailed(e)) this.ctx.recorder.complete(inv, 'fail', undefined, errorText(e));
      else {
        this.ctx.recorder.complete(inv, 'info', undefined, errorText(e));
        this.process = this.ctx.recorder.newProcess();
      }
      return { ok: false, error: e };
    }
  }
}

/** Await every worker loop; a loop that throws is a harness bug and fails the run loudly. */
export async function runWorkers(n: number, loop: (i: number) => Promise<void>): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, i) => loop(i)));
}

export function backoff(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
