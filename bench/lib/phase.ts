// The phase runner: a closed loop of `inFlight` workers, each issuing one request at a time, for a warm-up and
// then a fixed measured window. Completions inside the window count towards the rate and the latency
// histogram; completions during the warm-up or after the window (the drain) do not. Every error is counted,
// in whichever part of the phase it happened, and reported by kind: nothing is retried or hidden.
//
//   t0 ──warm-up──▶ windowStart ──────── measured ────────▶ windowEnd ──drain (no new requests)──▶ done
import { errorKey } from './clients.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';

/** After a failed request a worker pauses this long, so a dead endpoint gives a count, not a busy loop. */
export const ERROR_BACKOFF_MS = 10;
/** The longest the warm-up may run past `warmupMs` while it waits for every worker's first answer. */
export const WARMUP_EXTENSION_MAX_MS = 30_000;

export interface PhaseSpec {
  readonly name: string;
  readonly description: string;
  /** Where the requests go, for the report: 'leader 127.0.0.1:2379', 'all endpoints'. */
  readonly target: string;
  /** Requests in flight: the number of closed-loop workers. */
  readonly inFlight: number;
  /** Connections the workers share (informational; the op decides which one it uses). */
  readonly connections: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** One request; `worker` in [0, inFlight), `seq` counts that worker's requests from 0. */
  readonly op: (worker: number, seq: number) => Promise<void>;
  /**
   * The connection a worker's requests use, in [0, connections): given, the result says how evenly the server
   * served the connections (slowestConnectionShare).
   */
  readonly connectionOf?: (worker: number) => number;
  /**
   * Started when the window opens; what it returns is called when the window closes and gives the CPU the
   * servers used meanwhile, in cores (bench/lib/systems.ts cpuMeter).
   */
  readonly serverCpu?: () => () => number;
}

export interface ErrorCounts {
  readonly warmup: number;
  readonly measured: number;
  readonly drain: number;
  /** Every error of the phase by kind (gRPC status and message). */
  readonly byKind: Readonly<Record<string, number>>;
}

export interface PhaseResult {
  readonly name: string;
  readonly description: string;
  readonly target: string;
  readonly inFlight: number;
  readonly connections: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** The measured window as it really was (ms). */
  readonly windowMs: number;
  /** The warm-up as it really was (ms): longer than `warmupMs` when the first answers took longer. */
  readonly warmupActualMs: number;
  /** Successful requests completed in the measured window. */
  readonly ops: number;
  readonly opsPerSec: number;
  readonly warmupOps: number;
  readonly latency: LatencySummary;
  readonly errors: ErrorCounts;
  /** All errors of the phase (warm-up, window and drain). */
  readonly errorsTotal: number;
  /**
   * CPU used by this load process (user + system) over the measured window, as a share of one core: near 1.0
   * means the client, not the server, may be what limits the rate (Node runs the client on one thread).
   */
  readonly clientCpuCores: number;
  /** CPU the servers used over the window, in cores, when the spec measured it. */
  readonly serverCpuCores?: number;
  /**
   * With `connectionOf` and more than one connection: the slowest connection's rate per worker over the window
   * as a share of the mean (1.0: every connection served alike). In a closed loop a connection whose answers come
   * late completes fewer requests, so this shows a server that keeps some clients waiting longer than others,
   * which the latency percentiles of all requests together blur.
   */
  readonly slowestConnectionShare?: number;
}

export async function runPhase(spec: PhaseSpec): Promise<PhaseResult> {
  if (!Number.isSafeInteger(spec.inFlight) || spec.inFlight < 1) throw new Error(`${spec.name}: bad inFlight ${spec.inFlight}`);
  const histogram = new LatencyHistogram();
  const byKind: Record<string, number> = {};
  let ops = 0;
  let warmupOps = 0;
  const errs = { warmup: 0, measured: 0, drain: 0 };
  const perConnection = connectionCounts(spec);
  const t0 = performance.now();
  // The window opens when the warm-up time is over AND every worker has had one answer: with 1,000 requests in
  // flight on a slow server, the first answers can take longer than a short warm-up, and a window opened during
  // that first burst would measure the burst (or nothing at all), not the steady state.
  let windowStart = Infinity;
  let windowEnd = Infinity;
  let warmupOver = false;
  let answered = 0;
  let cpuAtWindowStart: NodeJS.CpuUsage | undefined;
  let cpuWindow: NodeJS.CpuUsage | undefined;
  let cpuEndTimer: NodeJS.Timeout | undefined;
  let serverCpuDone: (() => number) | undefined;
  let serverCpuCores: number | undefined;
  const closeWindowMeters = (): void => {
    cpuWindow ??= cpuAtWindowStart && process.cpuUsage(cpuAtWindowStart);
    serverCpuCores ??= serverCpuDone?.();
  };
  const openWindow = (): void => {
    if (windowStart !== Infinity) return;
    windowStart = performance.now();
    windowEnd = windowStart + spec.durationMs;
    cpuAtWindowStart = process.cpuUsage();
    serverCpuDone = spec.serverCpu?.();
    cpuEndTimer = setTimeout(closeWindowMeters, spec.durationMs);
  };
  const warmupTimer = setTimeout(() => {
    warmupOver = true;
    if (answered === spec.inFlight) openWindow();
  }, spec.warmupMs);
  // A bound on the wait for the first answers, for an op without a deadline: open the window anyway.
  const warmupCapTimer = setTimeout(openWindow, spec.warmupMs + WARMUP_EXTENSION_MAX_MS);
  const worker = async (w: number): Promise<void> => {
    for (let seq = 0; performance.now() < windowEnd; seq++) {
      const start = performance.now();
      let failure: unknown;
      let failed = false;
      try {
        await spec.op(w, seq);
      } catch (err) {
        failed = true;
        failure = err;
      }
      const end = performance.now();
      if (seq === 0 && ++answered === spec.inFlight && warmupOver) openWindow();
      const part = end < windowStart ? 'warmup' : end <= windowEnd ? 'measured' : 'drain';
      // A request sent before the window opened but answered inside it counts: it is a request the server
      // answered during the window, and leaving it out would bias the window towards short requests.
      if (failed) {
        errs[part]++;
        const kind = errorKey(failure);
        byKind[kind] = (byKind[kind] ?? 0) + 1;
        await new Promise((r) => setTimeout(r, ERROR_BACKOFF_MS));
      } else if (part === 'measured') {
        ops++;
        histogram.recordMs(end - start);
        if (perConnection !== undefined) perConnection.ops[perConnection.of[w]!]!++;
      } else if (part === 'warmup') {
        warmupOps++;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.inFlight }, (_, w) => worker(w)));
  clearTimeout(warmupTimer);
  clearTimeout(warmupCapTimer);
  clearTimeout(cpuEndTimer);
  const windowMs = Math.min(performance.now(), windowEnd) - windowStart;
  closeWindowMeters();
  const clientCpuCores = cpuWindow === undefined || windowMs <= 0 ? 0 : Math.round(((cpuWindow.user + cpuWindow.system) / 1000 / windowMs) * 100) / 100;
  const latency = histogram.summary();
  histogram.destroy();
  return {
    name: spec.name,
    description: spec.description,
    target: spec.target,
    inFlight: spec.inFlight,
    connections: spec.connections,
    warmupMs: spec.warmupMs,
    durationMs: spec.durationMs,
    windowMs: Math.round(windowMs),
    warmupActualMs: Math.round(windowStart - t0),
    ops,
    opsPerSec: windowMs > 0 ? Math.round((ops / windowMs) * 1000 * 10) / 10 : 0,
    warmupOps,
    latency,
    errors: { ...errs, byKind },
    errorsTotal: errs.warmup + errs.measured + errs.drain,
    clientCpuCores,
    ...(serverCpuCores === undefined ? {} : { serverCpuCores }),
    ...(perConnection === undefined || ops === 0 ? {} : { slowestConnectionShare: slowestShare(perConnection, ops, spec.inFlight) }),
  };
}

interface ConnectionCounts {
  /** The connection of each worker. */
  readonly of: readonly number[];
  /** Workers per connection, and requests each connection completed in the window. */
  readonly workers: number[];
  readonly ops: number[];
}

function connectionCounts(spec: PhaseSpec): ConnectionCounts | undefined {
  if (spec.connectionOf === undefined || spec.connections < 2) return undefined;
  const of = Array.from({ length: spec.inFlight }, (_, w) => spec.connectionOf!(w));
  const workers = new Array<number>(spec.connections).fill(0);
  for (const c of of) {
    if (!Number.isSafeInteger(c) || c < 0 || c >= spec.connections) throw new Error(`${spec.name}: connectionOf gave ${c}, outside [0, ${spec.connections})`);
    workers[c]!++;
  }
  return { of, workers, ops: new Array<number>(spec.connections).fill(0) };
}

/** The lowest requests-per-worker of any connection that has workers, over the mean per worker, to 2 places. */
function slowestShare(c: ConnectionCounts, ops: number, inFlight: number): number {
  const mean = ops / inFlight;
  let lowest = Infinity;
  c.workers.forEach((n, i) => {
    if (n > 0) lowest = Math.min(lowest, c.ops[i]! / n);
  });
  return Math.round((lowest / mean) * 100) / 100;
}
