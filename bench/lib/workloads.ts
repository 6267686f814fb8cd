// The side-by-side workloads of `npm run bench`. Each one drives a BenchCluster (Fulcrum or etcd) through the
// etcd v3 API only, so the same code measures both systems, and returns rows of named figures. A workload
// never throws for a failed request: errors are counted per kind (as in phase.ts) and travel with the row.
//
//   put       256-byte puts to the leader at several concurrency levels (1×1, 10×10, 10×100, 30×1000)
//   get       linearizable and serializable single-key gets, 100 in flight, spread over all members
//   cas       compare-and-set transactions (compare mod_revision, put on success, read on failure), 10 keys
//   watch     one paced writer, `watchers` prefix watchers spread over all members: events/s, delivery latency
//   leases    `leases` leases kept alive over keep-alive streams to the leader: keep-alives/s, server CPU
//   failover  steady writes, kill -9 of the leader: time until writes succeed again, acknowledged writes lost
//   size      load `keys` keys, then kill and restart a follower: time until it serves, RSS, bytes on disk
import * as grpc from '@grpc/grpc-js';
import { loadEtcdClientApi, type LeaseGrantResponse, type LeaseKeepAliveResponse, type PutResponse, type RangeResponse, type TxnResponse, type WatchResponse } from '../../proto/index.js';
import { ClientPool, type ClientStack, errorKey, separateChannelOptions, unary, type Connection } from './clients.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { findLeader } from './leader.js';
import { runPhase, type PhaseResult } from './phase.js';
import { cpuMeter, directoryBytes, processRssMiB, type BenchCluster, type SystemName } from './systems.js';

export const WORKLOAD_NAMES = ['put', 'get', 'cas', 'watch', 'leases', 'failover', 'size'] as const;
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

export interface WorkloadOptions {
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly valueBytes: number;
  /** Watchers of the fan-out workload. */
  readonly watchers: number;
  /** Puts per second of the fan-out workload's writer. */
  readonly watchRate: number;
  /** Leases kept alive. */
  readonly leases: number;
  /** Keys loaded by the size workload. */
  readonly sizeKeys: number;
  readonly requestTimeoutMs: number;
  /**
   * The client stack of the measured put, get and CAS workloads (clients.ts ClientStack): Fulcrum's HTTP/2 client
   * by default; grpc-js to compare with results before the thirty-fifth session, whose generator was grpc-js.
   */
  readonly client: ClientStack;
  /**
   * Unmeasured puts and gets each cluster gets once, after it starts and before the first workload (warmUpServers).
   * Node.js compiles hot code while it runs: Fulcrum's first seconds of load run slower code than its steady state
   * (in the quick suite at ce025d2 the first put-1x1 round had p50 3.1 ms, the second 1.7). etcd, compiled ahead
   * of time, gets the same load and does not need it.
   */
  readonly serverWarmupMs: number;
}

/** One line of results: a workload (or one level of it) on one system in one round. */
export interface Row {
  readonly row: string;
  readonly workload: WorkloadName;
  readonly system: SystemName;
  readonly round: number;
  readonly description: string;
  /** The figures, by metric name (see METRICS). */
  readonly metrics: Readonly<Record<string, number>>;
  readonly errors: number;
  readonly errorsByKind: Readonly<Record<string, number>>;
  /** Things a reader of the figures must know (a leader change, a saturated client, ...). */
  readonly notes: readonly string[];
  /** CPU of the load generator during the measured window, in cores: near 1, the client may be the limit. */
  readonly clientCpuCores?: number;
}

export interface MetricInfo {
  readonly label: string;
  readonly unit: string;
  /** Which way is better: decides how the ratio reads. */
  readonly better: 'higher' | 'lower' | 'zero' | 'info';
}

export const METRICS: Readonly<Record<string, MetricInfo>> = {
  opsPerSec: { label: 'ops/s', unit: 'ops/s', better: 'higher' },
  p50Ms: { label: 'p50', unit: 'ms', better: 'lower' },
  p99Ms: { label: 'p99', unit: 'ms', better: 'lower' },
  casSucceededPerSec: { label: 'successful CAS/s', unit: 'ops/s', better: 'higher' },
  eventsPerSec: { label: 'events delivered/s', unit: 'events/s', better: 'higher' },
  deliveryP50Ms: { label: 'delivery p50', unit: 'ms', better: 'lower' },
  deliveryP99Ms: { label: 'delivery p99', unit: 'ms', better: 'lower' },
  eventsMissing: { label: 'events missing', unit: 'events', better: 'zero' },
  keepAlivesPerSec: { label: 'keep-alives/s', unit: '/s', better: 'higher' },
  serverCpuCores: { label: 'server CPU (3 members)', unit: 'cores', better: 'lower' },
  cpuMsPer1kKeepAlives: { label: 'server CPU per 1,000 keep-alives', unit: 'ms', better: 'lower' },
  cpuMsPer1kOps: { label: 'server CPU per 1,000 ops (3 members)', unit: 'ms', better: 'lower' },
  slowestConnectionShare: { label: "slowest connection's rate, share of the mean", unit: 'share', better: 'higher' },
  unavailableMs: { label: 'writes unavailable after kill -9', unit: 'ms', better: 'lower' },
  lostWrites: { label: 'acknowledged writes lost', unit: 'writes', better: 'zero' },
  ackedWrites: { label: 'acknowledged writes (checked)', unit: 'writes', better: 'info' },
  loadKeysPerSec: { label: 'load rate (txns of 100 puts)', unit: 'keys/s', better: 'higher' },
  restartServeMs: { label: 'restarted member serving after', unit: 'ms', better: 'lower' },
  rssMiBMax: { label: 'RSS, largest member', unit: 'MiB', better: 'lower' },
  rssRestartedMiB: { label: 'RSS of the restarted member', unit: 'MiB', better: 'lower' },
  diskMiBMax: { label: 'on disk, largest member', unit: 'MiB', better: 'lower' },
};

export interface WorkloadContext {
  readonly cluster: BenchCluster;
  readonly round: number;
  readonly o: WorkloadOptions;
  readonly log: (line: string) => void;
}

const CONNECT_WAIT_MS = 10_000;
const LEADER_WAIT_MS = 30_000;
/** Pause between attempts of the "serving again" probe after a restart. */
const SERVING_POLL_MS = 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));
const round2 = (n: number): number => Math.round(n * 100) / 100;
/** The first key after every key that starts with `prefix`: etcd's range_end for a prefix. */
export function prefixEnd(prefix: string): Uint8Array {
  const b = Buffer.from(prefix);
  b[b.length - 1]!++;
  return new Uint8Array(b);
}

async function openPool(endpoints: readonly string[], count: number, stack: ClientStack = 'grpc-js'): Promise<ClientPool> {
  const pool = new ClientPool(endpoints, count, stack);
  try {
    await pool.ready(CONNECT_WAIT_MS);
  } catch (err) {
    pool.close();
    throw err;
  }
  return pool;
}

async function leaderPool(c: BenchCluster, count: number, stack: ClientStack = 'grpc-js'): Promise<ClientPool> {
  const leader = await findLeader(c.endpoints, LEADER_WAIT_MS);
  return openPool([leader.endpoint], count, stack);
}

function countError(byKind: Record<string, number>, err: unknown): void {
  const kind = errorKey(err);
  byKind[kind] = (byKind[kind] ?? 0) + 1;
}

/** Starts measuring the members' CPU; the function it returns gives the cores used since. */
function clusterCpu(cluster: BenchCluster): () => number {
  const done = cpuMeter(cluster);
  return () => done().totalCores;
}

/** The servers' CPU over a phase's window, per 1,000 answered requests: what one request costs the cluster. */
function serverCpuPer1k(p: PhaseResult): Record<string, number> {
  if (p.serverCpuCores === undefined || p.ops === 0) return {};
  return { cpuMsPer1kOps: Math.round(((p.serverCpuCores * p.windowMs) / p.ops) * 1000 * 10) / 10 };
}

function phaseRow(ctx: WorkloadContext, workload: WorkloadName, p: PhaseResult, extra: Record<string, number> = {}, notes: string[] = []): Row {
  const n = [...notes];
  if (p.clientCpuCores > 0.85) n.push(`the load generator used ${p.clientCpuCores} of a core: it may be what limits the rate`);
  return {
    row: p.name,
    workload,
    system: ctx.cluster.system,
    round: ctx.round,
    description: p.description,
    metrics: {
      opsPerSec: p.opsPerSec,
      p50Ms: p.latency.p50Ms,
      p99Ms: p.latency.p99Ms,
      ...serverCpuPer1k(p),
      ...(p.slowestConnectionShare === undefined ? {} : { slowestConnectionShare: p.slowestConnectionShare }),
      ...extra,
    },
    errors: p.errorsTotal,
    errorsByKind: p.errors.byKind,
    notes: n,
    clientCpuCores: p.clientCpuCores,
  };
}

function put(c: Connection, key: Uint8Array, value: Uint8Array, timeoutMs: number): Promise<PutResponse> {
  return c.calls.put({ key, value }, timeoutMs);
}

function get(c: Connection, key: Uint8Array, serializable: boolean, timeoutMs: number): Promise<RangeResponse> {
  return c.calls.range({ key, serializable }, timeoutMs);
}

// -------------------------------------------------------------------------------------------------------------
// put and get
// -------------------------------------------------------------------------------------------------------------

/** The put levels: the first, third and fourth are the issue's; 10×10 adds a point to the latency/throughput chart. */
export const PUT_LEVELS = [
  { row: 'put-1x1', connections: 1, inFlight: 1 },
  { row: 'put-10x10', connections: 10, inFlight: 10 },
  { row: 'put-10x100', connections: 10, inFlight: 100 },
  { row: 'put-30x1000', connections: 30, inFlight: 1000 },
] as const;
const PUT_KEYS = 1_000;

export async function putWorkload(ctx: WorkloadContext): Promise<Row[]> {
  const { o } = ctx;
  const value = new Uint8Array(o.valueBytes).fill(0x61);
  const rows: Row[] = [];
  for (const level of PUT_LEVELS) {
    const pool = await leaderPool(ctx.cluster, level.connections, o.client);
    try {
      const p = await runPhase({
        name: level.row,
        description: `put ${o.valueBytes}-byte values, ${level.connections} conn × ${level.inFlight} in flight, to the leader`,
        target: pool.connections[0]!.endpoint,
        inFlight: level.inFlight,
        connections: level.connections,
        warmupMs: o.warmupMs,
        durationMs: o.durationMs,
        serverCpu: () => clusterCpu(ctx.cluster),
        connectionOf: (w) => pool.for(w).index,
        op: async (w, seq) => {
          await put(pool.for(w), bytes(`/bench/put/${((seq * level.inFlight + w) % PUT_KEYS).toString().padStart(6, '0')}`), value, o.requestTimeoutMs);
        },
      });
      rows.push(phaseRow(ctx, 'put', p));
    } finally {
      pool.close();
    }
  }
  return rows;
}

/**
 * Half of `serverWarmupMs` of puts at 10 connections x 100 in flight to the leader, then half of linearizable gets
 * spread over all members: the paths every workload uses. Nothing is recorded; the rates and errors are logged.
 */
export async function warmUpServers(ctx: WorkloadContext): Promise<void> {
  const { o } = ctx;
  const half = o.serverWarmupMs / 2;
  if (half <= 0) return;
  const value = new Uint8Array(o.valueBytes).fill(0x77);
  const key = (i: number): Uint8Array => bytes(`/bench/warm-up/${(i % PUT_KEYS).toString().padStart(6, '0')}`);
  for (const kind of ['put', 'get'] as const) {
    const pool = kind === 'put' ? await leaderPool(ctx.cluster, 10, o.client) : await openPool(ctx.cluster.endpoints, 10, o.client);
    try {
      const p = await runPhase({
        name: `server-warm-up-${kind}`,
        description: `unmeasured ${kind}s before the first workload`,
        target: kind === 'put' ? 'leader' : 'all members',
        inFlight: 100,
        connections: 10,
        warmupMs: 0,
        durationMs: half,
        op: async (w, seq) => {
          const k = key(seq * 100 + w);
          if (kind === 'put') await put(pool.for(w), k, value, o.requestTimeoutMs);
          else await get(pool.for(w), k, false, o.requestTimeoutMs);
        },
      });
      ctx.log(`  warm-up ${kind}s: ${p.opsPerSec} ops/s${p.errorsTotal > 0 ? `, ${p.errorsTotal} errors ${JSON.stringify(p.errors.byKind)}` : ''}`);
    } finally {
      pool.close();
    }
  }
}

const GET_KEYS = 1_000;
const GET_CONNECTIONS = 10;
const GET_IN_FLIGHT = 100;

export async function getWorkload(ctx: WorkloadContext): Promise<Row[]> {
  const { o } = ctx;
  const key = (i: number): Uint8Array => bytes(`/bench/get/${(i % GET_KEYS).toString().padStart(6, '0')}`);
  // Every key written once first, so the gets find a value of the same size as the puts wrote.
  const writer = await leaderPool(ctx.cluster, GET_CONNECTIONS, o.client);
  const prefillErrors: Record<string, number> = {};
  try {
    const value = new Uint8Array(o.valueBytes).fill(0x62);
    let next = 0;
    await Promise.all(
      Array.from({ length: GET_IN_FLIGHT }, async (_, w) => {
        while (next < GET_KEYS) {
          const i = next++;
          await put(writer.for(w), key(i), value, o.requestTimeoutMs).catch((err) => countError(prefillErrors, err));
        }
      }),
    );
  } finally {
    writer.close();
  }
  const rows: Row[] = [];
  for (const serializable of [false, true]) {
    const pool = await openPool(ctx.cluster.endpoints, GET_CONNECTIONS, o.client);
    try {
      const name = serializable ? 'get-serializable' : 'get-linearizable';
      const p = await runPhase({
        name,
        description: `${serializable ? 'serializable' : 'linearizable'} single-key gets, ${GET_CONNECTIONS} conns × ${GET_IN_FLIGHT} in flight, all members`,
        target: 'all members',
        inFlight: GET_IN_FLIGHT,
        connections: GET_CONNECTIONS,
        warmupMs: o.warmupMs,
        durationMs: o.durationMs,
        serverCpu: () => clusterCpu(ctx.cluster),
        op: async (w, seq) => void (await get(pool.for(w), key(seq * GET_IN_FLIGHT + w), serializable, o.requestTimeoutMs)),
      });
      const prefill = Object.values(prefillErrors).reduce((a, b) => a + b, 0);
      const row = phaseRow(ctx, 'get', p, {}, prefill > 0 ? [`prefill: ${prefill} failed puts`] : []);
      rows.push(row);
    } finally {
      pool.close();
    }
  }
  return rows;
}

// -------------------------------------------------------------------------------------------------------------
// compare-and-set
// -------------------------------------------------------------------------------------------------------------

const CAS_KEYS = 10;
const CAS_CONNECTIONS = 10;
const CAS_IN_FLIGHT = 100;

/**
 * A CAS loop as etcd clients write it, one round trip per attempt: Txn(if mod_revision(k) == last seen: put k;
 * else: get k). A failed attempt's get tells the worker the revision to try next, so with 100 workers on 10
 * keys most attempts lose the race: the figures are attempts/s and successful CAS/s.
 */
export async function casWorkload(ctx: WorkloadContext): Promise<Row[]> {
  const { o } = ctx;
  const pool = await leaderPool(ctx.cluster, CAS_CONNECTIONS, o.client);
  try {
    const keys = Array.from({ length: CAS_KEYS }, (_, k) => bytes(`/bench/cas/${ctx.round}/${k}`));
    const seen: string[] = [];
    for (const k of keys) {
      const r = await put(pool.for(0), k, bytes('0'), o.requestTimeoutMs);
      seen.push(r.header?.revision ?? '0');
    }
    let attempts = 0;
    let succeeded = 0;
    // The workers share what they learn of each key, and only ever move it forward: answers of one applied batch
    // can arrive in any order across connections, and a failed attempt applied before the batch's success would
    // otherwise set the key back to the revision the success replaced, failing every attempt until the next.
    const learn = (k: number, revision: string | undefined): void => {
      if (revision !== undefined && Number(revision) > Number(seen[k])) seen[k] = revision;
    };
    const value = new Uint8Array(o.valueBytes).fill(0x63);
    const p = await runPhase({
      name: 'cas',
      description: `CAS txns on ${CAS_KEYS} keys, ${CAS_CONNECTIONS} conns × ${CAS_IN_FLIGHT} in flight, to the leader`,
      target: pool.connections[0]!.endpoint,
      inFlight: CAS_IN_FLIGHT,
      connections: CAS_CONNECTIONS,
      warmupMs: o.warmupMs,
      durationMs: o.durationMs,
      op: async (w, seq) => {
        const k = (w + seq) % CAS_KEYS;
        const c = pool.for(w);
        const r: TxnResponse = await c.calls.txn(
          {
            compare: [{ result: 'EQUAL', target: 'MOD', key: keys[k], target_union: 'mod_revision', mod_revision: seen[k] }],
            success: [{ request: 'request_put', request_put: { key: keys[k], value } }],
            failure: [{ request: 'request_range', request_range: { key: keys[k] } }],
          },
          o.requestTimeoutMs,
        );
        attempts++;
        if (r.succeeded) {
          succeeded++;
          learn(k, r.header?.revision);
        } else {
          const op = r.responses[0];
          const kv = op?.response === 'response_range' ? op.response_range.kvs[0] : undefined;
          learn(k, kv?.mod_revision);
        }
      },
    });
    const share = attempts === 0 ? 0 : succeeded / attempts;
    return [phaseRow(ctx, 'cas', p, { casSucceededPerSec: round2(p.opsPerSec * share) })];
  } finally {
    pool.close();
  }
}

// -------------------------------------------------------------------------------------------------------------
// watch fan-out
// -------------------------------------------------------------------------------------------------------------

/** Watchers share streams as etcd clients do (one stream per connection, many watches on it). */
const WATCH_STREAMS_MAX = 10;
/** After the writer stops, how long watchers may take to receive what was written before it counts as missing. */
const WATCH_DRAIN_MS = 10_000;

export async function watchWorkload(ctx: WorkloadContext): Promise<Row[]> {
  const { o, cluster } = ctx;
  const api = loadEtcdClientApi();
  const prefix = `/bench/watch/${ctx.round}/`;
  const streamsCount = Math.min(WATCH_STREAMS_MAX, o.watchers);
  const clients = Array.from({ length: streamsCount }, (_, i) => new api.etcdserverpb.Watch(cluster.endpoints[i % cluster.endpoints.length]!, grpc.credentials.createInsecure(), separateChannelOptions(i)));
  const sentAt: number[] = [];
  const histogram = new LatencyHistogram();
  let windowStart = Infinity;
  let windowEnd = Infinity;
  // Events of the puts sent inside the window, whenever they arrive (during the window or the drain), and when
  // the last of them arrived: a system whose delivery lags behind the writer shows it as a lower rate and a
  // higher latency, not as events left out of the count.
  let eventsOfWindow = 0;
  let lastArrival = 0;
  let eventsTotal = 0;
  const errorsByKind: Record<string, number> = {};
  const streams: grpc.ClientDuplexStream<unknown, WatchResponse>[] = [];
  let closing = false;
  try {
    // Open the streams and create every watch; wait until the server confirmed all of them.
    let created = 0;
    const allCreated = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`watch: only ${created}/${o.watchers} watches created after 60 s`)), 60_000);
      clients.forEach((client, s) => {
        const stream = client.Watch();
        streams.push(stream as grpc.ClientDuplexStream<unknown, WatchResponse>);
        stream.on('data', (r: WatchResponse) => {
          if (r.created && ++created === o.watchers) {
            clearTimeout(timer);
            resolve();
          }
          if (closing) return;
          if (r.canceled) countError(errorsByKind, new Error(`watch canceled: ${r.cancel_reason}`));
          if (r.events.length === 0) return;
          const now = performance.now();
          for (const e of r.events) {
            eventsTotal++;
            const seq = Number(e.kv?.key.subarray(prefix.length).toString());
            const at = sentAt[seq];
            if (at !== undefined && at >= windowStart && at < windowEnd) {
              eventsOfWindow++;
              lastArrival = now;
              histogram.recordMs(now - at);
            }
          }
        });
        stream.on('error', (err) => {
          if (!closing) countError(errorsByKind, err);
        });
        for (let w = s; w < o.watchers; w += streamsCount) {
          stream.write({ create_request: { key: bytes(prefix), range_end: prefixEnd(prefix) } });
        }
      });
    });
    await allCreated;
    // One writer, paced: a put every 1/watchRate s, never two at once. After a slow put the next one goes at
    // once but the writer does not catch up on the ones it missed: a burst of catch-up puts would make the
    // offered rate depend on the system's own latency.
    const writer = await leaderPool(cluster, 1);
    const cpu = cpuMeter(cluster);
    const clientCpuStart = process.cpuUsage();
    let acked = 0;
    let ackedInWindow = 0;
    try {
      const value = new Uint8Array(o.valueBytes).fill(0x64);
      const t0 = performance.now();
      windowStart = t0 + o.warmupMs;
      windowEnd = windowStart + o.durationMs;
      const intervalMs = 1000 / o.watchRate;
      for (let seq = 0, due = t0; due < windowEnd; seq++, due = Math.max(due + intervalMs, performance.now())) {
        const now = performance.now();
        if (due > now) await sleep(due - now);
        sentAt[seq] = performance.now();
        try {
          await put(writer.for(0), bytes(`${prefix}${seq}`), value, o.requestTimeoutMs);
          acked++;
          if (sentAt[seq]! >= windowStart) ackedInWindow++;
        } catch (err) {
          countError(errorsByKind, err);
        }
      }
    } finally {
      writer.close();
    }
    const cpuUsed = cpu();
    const clientCpu = process.cpuUsage(clientCpuStart);
    const clientCpuCores = round2((clientCpu.user + clientCpu.system) / 1000 / (o.warmupMs + o.durationMs));
    // Wait for the events still on their way; anything not here by then is missing.
    const expected = acked * o.watchers;
    const drainUntil = performance.now() + WATCH_DRAIN_MS;
    while (eventsTotal < expected && performance.now() < drainUntil) await sleep(50);
    const latency: LatencySummary = histogram.summary();
    const windowSec = o.durationMs / 1000;
    const notes = [`writer: ${ackedInWindow} puts acknowledged in the window (${round2(ackedInWindow / windowSec)}/s); ${o.watchers} watchers on ${streamsCount} streams; server CPU ${cpuUsed.totalCores} cores`];
    if (clientCpuCores > 0.85) notes.push(`the load generator used ${clientCpuCores} of a core: it may be what limits the rate`);
    return [
      {
        row: 'watch',
        workload: 'watch',
        system: cluster.system,
        round: ctx.round,
        description: `1 writer at ${o.watchRate} puts/s, ${o.watchers} prefix watchers over ${streamsCount} streams on all members`,
        metrics: {
          eventsPerSec: round2(eventsOfWindow / (Math.max(o.durationMs, lastArrival - windowStart) / 1000)),
          deliveryP50Ms: latency.p50Ms,
          deliveryP99Ms: latency.p99Ms,
          eventsMissing: Math.max(0, expected - eventsTotal),
          serverCpuCores: cpuUsed.totalCores,
        },
        errors: Object.values(errorsByKind).reduce((a, b) => a + b, 0),
        errorsByKind,
        notes,
        clientCpuCores,
      },
    ];
  } finally {
    closing = true;
    histogram.destroy();
    for (const s of streams) s.cancel();
    for (const c of clients) c.close();
  }
}

// -------------------------------------------------------------------------------------------------------------
// leases
// -------------------------------------------------------------------------------------------------------------

const LEASE_TTL_S = 120;
const LEASE_STREAMS = 10;
/** Keep-alive requests outstanding per stream: a window, so the stream is never idle and never unbounded. */
const LEASE_WINDOW = 100;
const LEASE_ADMIN_IN_FLIGHT = 100;

export async function leaseWorkload(ctx: WorkloadContext): Promise<Row[]> {
  const { o, cluster } = ctx;
  const api = loadEtcdClientApi();
  const leader = await findLeader(cluster.endpoints, LEADER_WAIT_MS);
  const pool = await openPool([leader.endpoint], LEASE_STREAMS);
  const errorsByKind: Record<string, number> = {};
  const ids: string[] = [];
  const admin = async (fn: (c: Connection, i: number) => Promise<void>, n: number): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(LEASE_ADMIN_IN_FLIGHT, n) }, async (_, w) => {
        while (next < n) {
          const i = next++;
          await fn(pool.for(w), i).catch((err) => countError(errorsByKind, err));
        }
      }),
    );
  };
  // Lease clients share the pool's channels: one connection per stream, already connected.
  const leaseClients = pool.connections.map((c) => new api.etcdserverpb.Lease(c.endpoint, grpc.credentials.createInsecure(), { channelOverride: c.kv.getChannel() }));
  const keepAliveStreams: grpc.ClientDuplexStream<unknown, LeaseKeepAliveResponse>[] = [];
  let closing = false;
  try {
    const grantStart = performance.now();
    await admin(async (_c, i) => {
      const client = leaseClients[i % leaseClients.length]!;
      const r: LeaseGrantResponse = await unary(client.LeaseGrant.bind(client), { TTL: LEASE_TTL_S }, o.requestTimeoutMs);
      ids.push(r.ID);
    }, o.leases);
    const grantMs = performance.now() - grantStart;
    ctx.log(`  ${ids.length} leases granted in ${Math.round(grantMs)} ms`);
    const histogram = new LatencyHistogram();
    let inWindow = 0;
    let expired = 0;
    const t0 = performance.now();
    const windowStart = t0 + o.warmupMs;
    const windowEnd = windowStart + o.durationMs;
    let cpuDone: ReturnType<typeof cpuMeter> | undefined;
    const cpuTimer = setTimeout(() => (cpuDone = cpuMeter(cluster)), o.warmupMs);
    let cpuUsed: ReturnType<ReturnType<typeof cpuMeter>> | undefined;
    const cpuEndTimer = setTimeout(() => (cpuUsed = cpuDone?.()), o.warmupMs + o.durationMs);
    // Stream s keeps its share of the leases alive, LEASE_WINDOW requests outstanding, cycling through them.
    await Promise.all(
      leaseClients.map(
        (client, s) =>
          new Promise<void>((resolve) => {
            const mine = ids.filter((_, i) => i % LEASE_STREAMS === s);
            if (mine.length === 0) return resolve();
            const stream = client.LeaseKeepAlive();
            keepAliveStreams.push(stream as grpc.ClientDuplexStream<unknown, LeaseKeepAliveResponse>);
            // A server that stops answering must not hang the benchmark: give up 10 s after the window.
            const stuck = setTimeout(() => {
              countError(errorsByKind, new Error(`keep-alive stream: ${outstanding} requests unanswered 10 s after the window`));
              resolve();
            }, windowEnd + 10_000 - performance.now());
            const finish = (): void => {
              clearTimeout(stuck);
              resolve();
            };
            const sent: number[] = [];
            let next = 0;
            let outstanding = 0;
            const send = (): void => {
              sent.push(performance.now());
              outstanding++;
              stream.write({ ID: mine[next++ % mine.length] });
            };
            stream.on('data', (r: LeaseKeepAliveResponse) => {
              const now = performance.now();
              const at = sent.shift()!;
              outstanding--;
              if (r.TTL === '0') expired++;
              if (now >= windowStart && now <= windowEnd) {
                inWindow++;
                histogram.recordMs(now - at);
              }
              if (now < windowEnd) send();
              else if (outstanding === 0) {
                stream.end();
                finish();
              }
            });
            stream.on('error', (err) => {
              if (!closing) countError(errorsByKind, err);
              finish();
            });
            stream.on('end', finish);
            for (let i = 0; i < LEASE_WINDOW; i++) send();
          }),
      ),
    );
    clearTimeout(cpuTimer);
    clearTimeout(cpuEndTimer);
    cpuUsed ??= cpuDone?.();
    const latency = histogram.summary();
    histogram.destroy();
    if (expired > 0) countError(errorsByKind, new Error(`keep-alive answered TTL 0 (lease expired or unknown)`));
    // Revoke, so that 10,000 expiries do not land in the middle of a later workload.
    await admin(async (_c, i) => {
      const client = leaseClients[i % leaseClients.length]!;
      await unary(client.LeaseRevoke.bind(client), { ID: ids[i] }, o.requestTimeoutMs);
    }, ids.length);
    const perSec = round2(inWindow / (o.durationMs / 1000));
    const cores = cpuUsed?.totalCores ?? 0;
    return [
      {
        row: 'leases',
        workload: 'leases',
        system: cluster.system,
        round: ctx.round,
        description: `${o.leases} leases (TTL ${LEASE_TTL_S} s) kept alive over ${LEASE_STREAMS} streams to the leader, ${LEASE_WINDOW} outstanding per stream`,
        metrics: {
          keepAlivesPerSec: perSec,
          p50Ms: latency.p50Ms,
          p99Ms: latency.p99Ms,
          serverCpuCores: cores,
          cpuMsPer1kKeepAlives: perSec > 0 ? round2((cores * 1000 * 1000) / perSec) : 0,
        },
        errors: Object.values(errorsByKind).reduce((a, b) => a + b, 0) + (expired > 0 ? expired - 1 : 0),
        errorsByKind,
        notes: [`grants: ${ids.length} in ${Math.round(grantMs)} ms; server CPU by member ${JSON.stringify(cpuUsed?.perMemberCores ?? {})} (leader ${leader.endpoint})`],
      },
    ];
  } finally {
    closing = true;
    for (const s of keepAliveStreams) s.cancel();
    for (const c of leaseClients) c.close();
    pool.close();
  }
}

// -------------------------------------------------------------------------------------------------------------
// failover
// -------------------------------------------------------------------------------------------------------------

const FAILOVER_WRITERS = 10;
/** A request to the dead leader's endpoint fails at once (connection refused); this bounds one stuck in a pipe. */
const FAILOVER_REQUEST_TIMEOUT_MS = 2_000;
const FAILOVER_GIVE_UP_MS = 60_000;
const FAILOVER_PAGE = 5_000;

/** Every key under `prefix`, read linearizably in pages. */
async function keysUnder(c: Connection, prefix: string, timeoutMs: number): Promise<Set<string>> {
  const found = new Set<string>();
  const end = prefixEnd(prefix);
  let from: Uint8Array = bytes(prefix);
  while (true) {
    const r: RangeResponse = await unary(c.kv.Range.bind(c.kv), { key: from, range_end: end, keys_only: true, limit: FAILOVER_PAGE }, timeoutMs);
    for (const kv of r.kvs) found.add(kv.key.toString());
    if (!r.more || r.kvs.length === 0) return found;
    // The next page starts just after the last key: the key with a 0x00 byte appended.
    from = new Uint8Array(Buffer.concat([r.kvs[r.kvs.length - 1]!.key, Buffer.from([0])]));
  }
}

/**
 * Polls until a linearizable get on `endpoint` succeeds; returns the ms waited. Each attempt has a channel of its
 * own: a channel whose first connect was refused (the member not listening yet) waits out grpc-js's reconnect
 * back-off (1 s, growing) before trying again, which would measure the probe, not the member.
 */
async function waitServing(endpoint: string, key: Uint8Array, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (performance.now() - start < timeoutMs) {
    const pool = new ClientPool([endpoint], 1);
    try {
      await get(pool.for(0), key, false, 1_000);
      return Math.round(performance.now() - start);
    } catch {
      await sleep(SERVING_POLL_MS);
    } finally {
      pool.close();
    }
  }
  throw new Error(`${endpoint} did not serve a linearizable get within ${timeoutMs} ms`);
}

export async function failoverWorkload(ctx: WorkloadContext): Promise<Row[]> {
  const { o, cluster } = ctx;
  const prefix = `/bench/failover/${ctx.round}/`;
  const leader = await findLeader(cluster.endpoints, LEADER_WAIT_MS);
  const victim = cluster.members.find((m) => m.clientEndpoint === leader.endpoint)!;
  // One connection per writer per member, so a writer can move to another member without connecting first.
  const pools = cluster.endpoints.map((e) => new ClientPool([e], FAILOVER_WRITERS));
  const acked = new Set<string>();
  const errorsByKind: Record<string, number> = {};
  const value = new Uint8Array(o.valueBytes).fill(0x66);
  let killedAt = Infinity;
  let firstAckAfterKill = Infinity;
  let stop = false;
  const writer = async (w: number): Promise<void> => {
    let at = cluster.endpoints.indexOf(leader.endpoint);
    for (let seq = 0; !stop; seq++) {
      const key = `${prefix}${w}-${seq}`;
      const sent = performance.now();
      try {
        await put(pools[at]!.for(w), bytes(key), value, FAILOVER_REQUEST_TIMEOUT_MS);
        acked.add(key);
        if (sent >= killedAt && firstAckAfterKill === Infinity) firstAckAfterKill = performance.now();
      } catch (err) {
        // Try the next member: a follower forwards writes to whichever leader it knows (etcd and Fulcrum alike).
        countError(errorsByKind, err);
        at = (at + 1) % cluster.endpoints.length;
        await sleep(10);
      }
    }
  };
  try {
    const writers = Array.from({ length: FAILOVER_WRITERS }, (_, w) => writer(w));
    // Steady writes first, then the kill.
    await sleep(Math.max(1_000, o.warmupMs));
    const ackedBeforeKill = acked.size;
    killedAt = performance.now();
    await victim.kill();
    ctx.log(`  killed the leader ${victim.name} (${leader.endpoint}) after ${ackedBeforeKill} acknowledged writes`);
    const giveUp = killedAt + FAILOVER_GIVE_UP_MS;
    while (firstAckAfterKill === Infinity && performance.now() < giveUp) await sleep(20);
    // A second of writes under the new leader, then stop.
    await sleep(1_000);
    stop = true;
    await Promise.all(writers);
    const unavailableMs = firstAckAfterKill === Infinity ? FAILOVER_GIVE_UP_MS : Math.round(firstAckAfterKill - killedAt);
    // Bring the old leader back on its data and let it catch up, then read every acknowledged write back.
    const restartAt = performance.now();
    victim.restart();
    const rejoinMs = await waitServing(victim.clientEndpoint, bytes(prefix), 60_000);
    const reader = new ClientPool([victim.clientEndpoint], 1);
    let lost = 0;
    try {
      const found = await keysUnder(reader.for(0), prefix, 30_000);
      for (const k of acked) if (!found.has(k)) lost++;
    } finally {
      reader.close();
    }
    ctx.log(`  writes again after ${unavailableMs} ms; old leader serving again ${Math.round(performance.now() - restartAt)} ms after restart; ${acked.size} acknowledged, ${lost} lost`);
    const stateErrors = Object.values(errorsByKind).reduce((a, b) => a + b, 0);
    return [
      {
        row: 'failover',
        workload: 'failover',
        system: cluster.system,
        round: ctx.round,
        description: `${FAILOVER_WRITERS} writers of unique keys, kill -9 of the leader, writers move to the next member on an error`,
        metrics: { unavailableMs, lostWrites: lost, ackedWrites: acked.size, restartServeMs: rejoinMs },
        // Errors while the leader is down are the point of this workload, not a fault: reported, not counted.
        errors: 0,
        errorsByKind,
        notes: [
          `${stateErrors} requests failed during the failover (expected: the leader was killed); the restarted old leader served a linearizable get ${rejoinMs} ms after it was started`,
          ...(firstAckAfterKill === Infinity ? [`no write succeeded within ${FAILOVER_GIVE_UP_MS} ms of the kill`] : []),
        ],
      },
    ];
  } finally {
    for (const p of pools) p.close();
  }
}

// -------------------------------------------------------------------------------------------------------------
// size
// -------------------------------------------------------------------------------------------------------------

/** Puts per load transaction: below both systems' default --max-txn-ops (128). */
const SIZE_PUTS_PER_TXN = 100;
const SIZE_LOAD_IN_FLIGHT = 10;

export async function sizeWorkload(ctx: WorkloadContext): Promise<Row[]> {
  const { o, cluster } = ctx;
  const prefix = '/bench/size/';
  const key = (i: number): Uint8Array => bytes(`${prefix}${i.toString().padStart(8, '0')}`);
  const errorsByKind: Record<string, number> = {};
  const value = new Uint8Array(o.valueBytes).fill(0x73);
  const pool = await leaderPool(cluster, SIZE_LOAD_IN_FLIGHT);
  const loadStart = performance.now();
  let next = 0;
  let lastReport = loadStart;
  try {
    await Promise.all(
      Array.from({ length: SIZE_LOAD_IN_FLIGHT }, async (_, w) => {
        while (next < o.sizeKeys) {
          const first = next;
          next = Math.min(o.sizeKeys, next + SIZE_PUTS_PER_TXN);
          const success = [];
          for (let i = first; i < next; i++) success.push({ request: 'request_put' as const, request_put: { key: key(i), value } });
          const c = pool.for(w);
          // Retried: a lost batch would leave the store smaller than claimed.
          for (let attempt = 0; ; attempt++) {
            try {
              await unary(c.kv.Txn.bind(c.kv), { success }, 30_000);
              break;
            } catch (err) {
              countError(errorsByKind, err);
              if (attempt >= 5) throw err;
              await sleep(500);
            }
          }
          if (performance.now() - lastReport > 10_000) {
            lastReport = performance.now();
            ctx.log(`  loaded ${next.toLocaleString('en-US')} keys`);
          }
        }
      }),
    );
  } finally {
    pool.close();
  }
  const loadMs = performance.now() - loadStart;
  // Let both systems settle (a snapshot or compaction just triggered by the load) before measuring memory.
  await sleep(2_000);
  const rss = Object.fromEntries(cluster.members.map((m) => [m.name, m.pid === undefined ? 0 : (processRssMiB(m.pid) ?? 0)]));
  const disk = Object.fromEntries(cluster.members.map((m) => [m.name, Math.round((directoryBytes(m.dataDir) / 1024 / 1024) * 10) / 10]));
  const leader = await findLeader(cluster.endpoints, LEADER_WAIT_MS);
  const follower = cluster.members.find((m) => m.clientEndpoint !== leader.endpoint)!;
  await follower.kill();
  follower.restart();
  const serveMs = await waitServing(follower.clientEndpoint, key(o.sizeKeys - 1), 300_000);
  // The restarted member has just rebuilt its state from disk: its RSS is what a member costs after a restart.
  await sleep(1_000);
  const rssRestarted = follower.pid === undefined ? 0 : (processRssMiB(follower.pid) ?? 0);
  ctx.log(`  ${o.sizeKeys} keys loaded in ${Math.round(loadMs)} ms; RSS ${JSON.stringify(rss)} MiB; disk ${JSON.stringify(disk)} MiB; ${follower.name} serving ${serveMs} ms after restart (RSS ${rssRestarted} MiB)`);
  return [
    {
      row: 'size',
      workload: 'size',
      system: cluster.system,
      round: ctx.round,
      description: `${o.sizeKeys.toLocaleString('en-US')} keys of ${o.valueBytes} bytes, loaded in txns of ${SIZE_PUTS_PER_TXN} puts; then kill -9 and restart of a follower`,
      metrics: {
        loadKeysPerSec: round2(o.sizeKeys / (loadMs / 1000)),
        restartServeMs: serveMs,
        rssMiBMax: Math.max(...Object.values(rss)),
        rssRestartedMiB: rssRestarted,
        diskMiBMax: Math.max(...Object.values(disk)),
      },
      errors: Object.values(errorsByKind).reduce((a, b) => a + b, 0),
      errorsByKind,
      notes: [`RSS by member after the load (MiB): ${JSON.stringify(rss)}; on disk (MiB): ${JSON.stringify(disk)}; restarted ${follower.name}`],
    },
  ];
}

export const WORKLOADS: Readonly<Record<WorkloadName, (ctx: WorkloadContext) => Promise<Row[]>>> = {
  put: putWorkload,
  get: getWorkload,
  cas: casWorkload,
  watch: watchWorkload,
  leases: leaseWorkload,
  failover: failoverWorkload,
  size: sizeWorkload,
};
