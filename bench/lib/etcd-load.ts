// The etcd v3 load workload behind bench/load.ts, as a function so that the side-by-side benchmark (and the
// smoke test) can run it without a child process. Speaks only the etcd v3 API, so it runs against etcd too.
//
// Phases (each: warm-up, then a fixed measured window; see phase.ts):
//   seq-put           1 connection to the leader, 1 put in flight
//   put               `connections` connections to the leader, `inFlight` puts in flight
//   get-linearizable  `connections` connections spread over all endpoints, `inFlight` gets in flight
//   get-serializable  the same with serializable: true (answered by the member itself, no ReadIndex)
// Values are `valueBytes` bytes; keys cycle over `keys` keys under `prefix`. Before the get phases every key
// is written once (the prefill), so gets find a value.
import type { PutResponse, RangeResponse } from '../../proto/index.js';
import { ClientPool, errorKey, unary, type Connection } from './clients.js';
import { findLeader, type LeaderInfo } from './leader.js';
import { runPhase, type PhaseResult, type PhaseSpec } from './phase.js';
import { machineInfo, type MachineInfo } from './report.js';

export const PHASE_NAMES = ['seq-put', 'put', 'get-linearizable', 'get-serializable'] as const;
export type PhaseName = (typeof PHASE_NAMES)[number];

export interface LoadOptions {
  readonly endpoints: readonly string[];
  readonly phases: readonly PhaseName[];
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly connections: number;
  readonly inFlight: number;
  readonly valueBytes: number;
  readonly keys: number;
  readonly prefix: string;
  readonly requestTimeoutMs: number;
  /** A free-form name for the system under test ('fulcrum', 'etcd'), carried into the JSON. */
  readonly label: string;
}

export const LOAD_DEFAULTS: Omit<LoadOptions, 'endpoints'> = Object.freeze({
  phases: PHASE_NAMES,
  durationMs: 10_000,
  warmupMs: 2_000,
  connections: 10,
  inFlight: 100,
  valueBytes: 256,
  keys: 1_000,
  prefix: '/bench/load/',
  requestTimeoutMs: 5_000,
  label: '',
});

export interface PrefillResult {
  readonly keys: number;
  readonly ms: number;
  readonly errors: number;
  readonly byKind: Readonly<Record<string, number>>;
}

export interface LoadReport {
  readonly tool: 'bench/load.ts';
  readonly label: string;
  readonly startedAt: string;
  readonly options: LoadOptions;
  readonly machine: MachineInfo;
  readonly leader: LeaderInfo;
  readonly prefill: PrefillResult | null;
  readonly phases: readonly PhaseResult[];
}

const LEADER_WAIT_MS = 15_000;
const CONNECT_WAIT_MS = 10_000;

export function keyOf(prefix: string, i: number): Uint8Array {
  return new Uint8Array(Buffer.from(`${prefix}${i.toString().padStart(8, '0')}`));
}

function put(c: Connection, key: Uint8Array, value: Uint8Array, timeoutMs: number): Promise<PutResponse> {
  return unary(c.kv.Put.bind(c.kv), { key, value }, timeoutMs);
}

function get(c: Connection, key: Uint8Array, serializable: boolean, timeoutMs: number): Promise<RangeResponse> {
  return unary(c.kv.Range.bind(c.kv), { key, serializable }, timeoutMs);
}

/** Writes every key once, `inFlight` at a time; errors are counted, not thrown. */
async function prefill(pool: ClientPool, o: LoadOptions, value: Uint8Array): Promise<PrefillResult> {
  const start = performance.now();
  const byKind: Record<string, number> = {};
  let errors = 0;
  let next = 0;
  const worker = async (w: number): Promise<void> => {
    while (next < o.keys) {
      const i = next++;
      try {
        await put(pool.for(w), keyOf(o.prefix, i), value, o.requestTimeoutMs);
      } catch (err) {
        errors++;
        const kind = errorKey(err);
        byKind[kind] = (byKind[kind] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.inFlight, o.keys) }, (_, w) => worker(w)));
  return { keys: o.keys, ms: Math.round(performance.now() - start), errors, byKind };
}

/** Key index for a worker's seq-th request: workers interleave so that all keys are touched evenly. */
const keyIndex = (o: LoadOptions, inFlight: number, worker: number, seq: number): number => (seq * inFlight + worker) % o.keys;

export function validateLoadOptions(o: LoadOptions): LoadOptions {
  const positive = (name: string, v: number): void => {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number, got ${v}`);
  };
  if (o.endpoints.length === 0) throw new Error('--endpoints: at least one endpoint');
  for (const p of o.phases) if (!PHASE_NAMES.includes(p)) throw new Error(`--phases: unknown phase ${p} (known: ${PHASE_NAMES.join(', ')})`);
  positive('duration', o.durationMs);
  if (!Number.isFinite(o.warmupMs) || o.warmupMs < 0) throw new Error(`--warmup must be >= 0, got ${o.warmupMs}`);
  for (const [name, v] of [['connections', o.connections], ['in-flight', o.inFlight], ['value-bytes', o.valueBytes], ['keys', o.keys]] as const) {
    positive(name, v);
    if (!Number.isSafeInteger(v)) throw new Error(`--${name} must be an integer, got ${v}`);
  }
  positive('timeout-ms', o.requestTimeoutMs);
  return Object.freeze({ ...o, endpoints: Object.freeze([...o.endpoints]), phases: Object.freeze([...o.phases]) });
}

/** Runs the chosen phases in order; `log` hears progress lines (phase starts, prefill). */
export async function runEtcdLoad(options: LoadOptions, log: (line: string) => void = () => {}): Promise<LoadReport> {
  const o = validateLoadOptions(options);
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const leader = await findLeader(o.endpoints, LEADER_WAIT_MS);
  log(`leader: ${leader.endpoint} (member ${leader.memberId}); ${leader.statuses.map((s) => `${s.endpoint} ${s.version}`).join(', ')}`);
  for (const u of leader.unreachable) log(`unreachable: ${u.endpoint}: ${u.error}`);
  const value = new Uint8Array(o.valueBytes).fill(0x61);
  const pools: ClientPool[] = [];
  const pool = async (endpoints: readonly string[], count: number): Promise<ClientPool> => {
    const p = new ClientPool(endpoints, count);
    pools.push(p);
    await p.ready(CONNECT_WAIT_MS);
    return p;
  };
  const phases: PhaseResult[] = [];
  let prefilled: PrefillResult | null = null;
  try {
    const seqPool = await pool([leader.endpoint], 1);
    const writePool = await pool([leader.endpoint], o.connections);
    const readPool = await pool(o.endpoints, o.connections);
    const base = { warmupMs: o.warmupMs, durationMs: o.durationMs };
    const specs: Record<PhaseName, PhaseSpec> = {
      'seq-put': {
        ...base,
        name: 'seq-put',
        description: `sequential puts to the leader, 1 connection, 1 in flight, ${o.valueBytes}-byte values`,
        inFlight: 1,
        connections: 1,
        op: async (w, seq) => void (await put(seqPool.for(w), keyOf(o.prefix, keyIndex(o, 1, w, seq)), value, o.requestTimeoutMs)),
      },
      put: {
        ...base,
        name: 'put',
        description: `puts to the leader, ${o.connections} connections, ${o.inFlight} in flight, ${o.valueBytes}-byte values`,
        inFlight: o.inFlight,
        connections: o.connections,
        op: async (w, seq) => void (await put(writePool.for(w), keyOf(o.prefix, keyIndex(o, o.inFlight, w, seq)), value, o.requestTimeoutMs)),
      },
      'get-linearizable': {
        ...base,
        name: 'get-linearizable',
        description: `linearizable single-key gets over all endpoints, ${o.connections} connections, ${o.inFlight} in flight`,
        inFlight: o.inFlight,
        connections: o.connections,
        op: async (w, seq) => void (await get(readPool.for(w), keyOf(o.prefix, keyIndex(o, o.inFlight, w, seq)), false, o.requestTimeoutMs)),
      },
      'get-serializable': {
        ...base,
        name: 'get-serializable',
        description: `serializable single-key gets over all endpoints, ${o.connections} connections, ${o.inFlight} in flight`,
        inFlight: o.inFlight,
        connections: o.connections,
        op: async (w, seq) => void (await get(readPool.for(w), keyOf(o.prefix, keyIndex(o, o.inFlight, w, seq)), true, o.requestTimeoutMs)),
      },
    };
    for (const name of o.phases) {
      if (name.startsWith('get-') && prefilled === null) {
        prefilled = await prefill(writePool, o, value);
        log(`prefill: ${prefilled.keys} keys in ${prefilled.ms} ms, ${prefilled.errors} errors`);
      }
      log(`phase ${name}: ${specs[name].description}; ${o.warmupMs / 1000} s warm-up + ${o.durationMs / 1000} s`);
      phases.push(await runPhase(specs[name]));
    }
  } finally {
    for (const p of pools) p.close();
  }
  return { tool: 'bench/load.ts', label: o.label, startedAt, options: o, machine, leader, prefill: prefilled, phases };
}
