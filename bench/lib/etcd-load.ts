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
import { type ClientStack, ClientPool, errorKey, type Connection } from './clients.js';
import { findLeader, type LeaderInfo } from './leader.js';
import { runPhase, type PhaseResult } from './phase.js';
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
  /** The client stack of every call (clients.ts ClientStack): Fulcrum's HTTP/2 client unless told grpc-js. */
  readonly client: ClientStack;
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
  client: 'engine',
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
  /** Found before the first phase; write phases look for the leader again just before they start. */
  readonly leader: LeaderInfo;
  /** Status after the last phase: compare raft terms with `leader` to see whether an election happened. */
  readonly leaderAfter: LeaderInfo;
  /** True when the leader or the highest raft term changed between the first and the last status. */
  readonly leaderChanged: boolean;
  readonly prefill: PrefillResult | null;
  readonly phases: readonly PhaseResult[];
}

const LEADER_WAIT_MS = 15_000;
const CONNECT_WAIT_MS = 10_000;

export function keyOf(prefix: string, i: number): Uint8Array {
  return new Uint8Array(Buffer.from(`${prefix}${i.toString().padStart(8, '0')}`));
}

function put(c: Connection, key: Uint8Array, value: Uint8Array, timeoutMs: number): Promise<PutResponse> {
  return c.calls.put({ key, value }, timeoutMs);
}

function get(c: Connection, key: Uint8Array, serializable: boolean, timeoutMs: number): Promise<RangeResponse> {
  return c.calls.range({ key, serializable }, timeoutMs);
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

const highestTerm = (l: LeaderInfo): bigint => l.statuses.reduce((t, x) => (BigInt(x.raftTerm) > t ? BigInt(x.raftTerm) : t), 0n);

/** Runs the chosen phases in order; `log` hears progress lines (leader, prefill, phase starts). */
export async function runEtcdLoad(options: LoadOptions, log: (line: string) => void = () => {}): Promise<LoadReport> {
  const o = validateLoadOptions(options);
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const leader = await findLeader(o.endpoints, LEADER_WAIT_MS);
  log(`leader: ${leader.endpoint} (member ${leader.memberId}); ${leader.statuses.map((s) => `${s.endpoint} ${s.version} term ${s.raftTerm}`).join(', ')}`);
  for (const u of leader.unreachable) log(`unreachable: ${u.endpoint}: ${u.error}`);
  const value = new Uint8Array(o.valueBytes).fill(0x61);
  const openPool = async (endpoints: readonly string[], count: number): Promise<ClientPool> => {
    const p = new ClientPool(endpoints, count, o.client);
    try {
      await p.ready(CONNECT_WAIT_MS);
    } catch (err) {
      p.close();
      throw err;
    }
    return p;
  };
  /** Writes go to the leader as it is now (it may have changed since the last phase). */
  const openLeaderPool = async (count: number): Promise<ClientPool> => {
    const now = await findLeader(o.endpoints, LEADER_WAIT_MS);
    if (now.endpoint !== leader.endpoint) log(`leader is now ${now.endpoint} (member ${now.memberId})`);
    return openPool([now.endpoint], count);
  };
  const phases: PhaseResult[] = [];
  let prefilled: PrefillResult | null = null;
  const base = { warmupMs: o.warmupMs, durationMs: o.durationMs };
  const runWrites = async (name: 'seq-put' | 'put', connections: number, inFlight: number): Promise<PhaseResult> => {
    const pool = await openLeaderPool(connections);
    try {
      return await runPhase({
        ...base,
        name,
        description: `puts, ${connections} connection${connections === 1 ? '' : 's'}, ${inFlight} in flight, ${o.valueBytes}-byte values`,
        target: `leader ${pool.connections[0]!.endpoint}`,
        inFlight,
        connections,
        op: async (w, seq) => void (await put(pool.for(w), keyOf(o.prefix, keyIndex(o, inFlight, w, seq)), value, o.requestTimeoutMs)),
      });
    } finally {
      pool.close();
    }
  };
  const runReads = async (name: 'get-linearizable' | 'get-serializable'): Promise<PhaseResult> => {
    if (prefilled === null) {
      const pool = await openLeaderPool(o.connections);
      try {
        prefilled = await prefill(pool, o, value);
      } finally {
        pool.close();
      }
      log(`prefill: ${prefilled.keys} keys in ${prefilled.ms} ms, ${prefilled.errors} errors`);
    }
    const pool = await openPool(o.endpoints, o.connections);
    const serializable = name === 'get-serializable';
    try {
      return await runPhase({
        ...base,
        name,
        description: `${serializable ? 'serializable' : 'linearizable'} single-key gets, ${o.connections} connections, ${o.inFlight} in flight`,
        target: `all endpoints (${o.endpoints.length})`,
        inFlight: o.inFlight,
        connections: o.connections,
        op: async (w, seq) => void (await get(pool.for(w), keyOf(o.prefix, keyIndex(o, o.inFlight, w, seq)), serializable, o.requestTimeoutMs)),
      });
    } finally {
      pool.close();
    }
  };
  for (const name of o.phases) {
    log(`phase ${name}: ${o.warmupMs / 1000} s warm-up + ${o.durationMs / 1000} s`);
    const result =
      name === 'seq-put' ? await runWrites(name, 1, 1) : name === 'put' ? await runWrites(name, o.connections, o.inFlight) : await runReads(name);
    phases.push(result);
  }
  const leaderAfter = await findLeader(o.endpoints, LEADER_WAIT_MS);
  const leaderChanged = leaderAfter.memberId !== leader.memberId || highestTerm(leaderAfter) !== highestTerm(leader);
  if (leaderChanged) {
    log(`leader changed during the run: ${leader.endpoint} term ${highestTerm(leader)} -> ${leaderAfter.endpoint} term ${highestTerm(leaderAfter)}`);
  }
  return { tool: 'bench/load.ts', label: o.label, startedAt, options: o, machine, leader, leaderAfter, leaderChanged, prefill: prefilled, phases };
}
