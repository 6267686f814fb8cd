// The members a client talks to: one gRPC channel per endpoint, every service stub on that channel, and which
// members are worth asking right now.
//
// Selection: calls go round-robin over the healthy members (every endpoint is used). A member that fails in a
// way that says "not me" (no leader, unreachable, no answer within the attempt deadline) becomes `avoided`; it
// gets no calls until a background probe — Maintenance.Status with `hasleader: true` — succeeds. When every
// member is avoided, the one avoided longest ago is tried anyway, so the client never refuses to try.
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import {
  loadEtcdApi,
  type AuthMethods,
  type ClusterMethods,
  type ElectionMethods,
  type FulcrumMethods,
  type KVMethods,
  type LeaseMethods,
  type LockMethods,
  type MaintenanceMethods,
  type TypedClient,
  type WatchMethods,
} from '../proto/index.js';
import { parseEndpoint, type ResolvedClientOptions, type TlsOptions } from './options.js';

/** etcd's WithRequireLeader: a member without a leader answers "etcdserver: no leader" at once. */
export const REQUIRE_LEADER_KEY = 'hasleader';

/** Reconnection backoff to a member that went away (grpc-js doubles from the first to the max). */
const RECONNECT_BACKOFF_FIRST_MS = 100;
const RECONNECT_BACKOFF_MAX_MS = 2_000;
/** Bytes of a message the client accepts (etcd's default client limit is MaxInt32; a bound is safer). */
const RECEIVE_MESSAGE_BYTES_MAX = 64 * 1024 * 1024;

export interface Services {
  readonly kv: TypedClient<KVMethods>;
  readonly watch: TypedClient<WatchMethods>;
  readonly lease: TypedClient<LeaseMethods>;
  readonly cluster: TypedClient<ClusterMethods>;
  readonly maintenance: TypedClient<MaintenanceMethods>;
  readonly election: TypedClient<ElectionMethods>;
  readonly lock: TypedClient<LockMethods>;
  readonly fulcrum: TypedClient<FulcrumMethods>;
  readonly auth: TypedClient<AuthMethods>;
}

export class Endpoint {
  readonly services: Services;
  /** performance.now() when it was last avoided; undefined while healthy. */
  avoidedAtMs: number | undefined;
  /** Whether the member applies writes with a request id exactly once; undefined until asked. */
  exactlyOnce: boolean | undefined;
  private readonly channel: grpc.Channel;

  constructor(
    readonly address: string,
    credentials: grpc.ChannelCredentials,
    channelOptions: grpc.ChannelOptions,
    /** Run on every call and stream of every service (the auth token: client/auth.ts). */
    interceptors: readonly grpc.Interceptor[] = [],
  ) {
    this.channel = new grpc.Channel(address, credentials, channelOptions);
    const api = loadEtcdApi();
    const o = { channelOverride: this.channel, interceptors: [...interceptors] };
    this.services = {
      kv: new api.etcdserverpb.KV(address, credentials, o),
      watch: new api.etcdserverpb.Watch(address, credentials, o),
      lease: new api.etcdserverpb.Lease(address, credentials, o),
      cluster: new api.etcdserverpb.Cluster(address, credentials, o),
      maintenance: new api.etcdserverpb.Maintenance(address, credentials, o),
      election: new api.v3electionpb.Election(address, credentials, o),
      lock: new api.v3lockpb.Lock(address, credentials, o),
      fulcrum: new api.fulcrum.v1.Fulcrum(address, credentials, o),
      auth: new api.etcdserverpb.Auth(address, credentials, o),
    };
  }

  get healthy(): boolean {
    return this.avoidedAtMs === undefined;
  }

  /** Resolves true once connected, false if not within the deadline (nothing was sent). */
  waitReady(deadlineMs: number): Promise<boolean> {
    if (this.channel.getConnectivityState(true) === grpc.connectivityState.READY) return Promise.resolve(true);
    return new Promise((resolve) => this.services.kv.waitForReady(Date.now() + Math.max(0, deadlineMs - performance.now()), (err) => resolve(err === undefined || err === null)));
  }

  close(): void {
    this.channel.close();
  }
}

export function channelCredentials(tls: TlsOptions | undefined, secure: boolean): grpc.ChannelCredentials {
  if (tls === undefined && !secure) return grpc.credentials.createInsecure();
  const pem = (v: string | Buffer | undefined): Buffer | null => (v === undefined ? null : Buffer.from(v));
  return grpc.credentials.createSsl(pem(tls?.ca), pem(tls?.key), pem(tls?.cert));
}

export class EndpointPool extends EventEmitter<{ avoided: [Endpoint]; restored: [Endpoint] }> {
  readonly endpoints: readonly Endpoint[];
  private next = 0;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private closed = false;

  constructor(
    private readonly options: ResolvedClientOptions,
    interceptors: readonly grpc.Interceptor[] = [],
  ) {
    super();
    this.setMaxListeners(0); // every watch and lease listens for 'avoided'
    this.endpoints = options.endpoints.map((e) => {
      const { address, secure } = parseEndpoint(e);
      const channelOptions: grpc.ChannelOptions = {
        'grpc.max_receive_message_length': RECEIVE_MESSAGE_BYTES_MAX,
        // grpc-js waits up to 2 minutes between reconnects by default; a member back from a restart should be
        // found within a couple of seconds.
        'grpc.initial_reconnect_backoff_ms': RECONNECT_BACKOFF_FIRST_MS,
        'grpc.max_reconnect_backoff_ms': RECONNECT_BACKOFF_MAX_MS,
        ...(options.tls?.serverName === undefined ? {} : { 'grpc.ssl_target_name_override': options.tls.serverName }),
      };
      return new Endpoint(address, channelCredentials(options.tls, secure || options.tls !== undefined), channelOptions, interceptors);
    });
  }

  /** The next member to ask, round-robin over the healthy ones; `exclude` are members this call already failed on. */
  pick(exclude: ReadonlySet<Endpoint> = new Set()): Endpoint {
    const n = this.endpoints.length;
    for (let i = 0; i < n; i++) {
      const e = this.endpoints[(this.next + i) % n]!;
      if (e.healthy && !exclude.has(e)) {
        this.next = (this.next + i + 1) % n;
        return e;
      }
    }
    // Nothing healthy and untried: the member avoided longest ago (then anything not yet tried by this call).
    const candidates = this.endpoints.filter((e) => !exclude.has(e));
    const from = candidates.length > 0 ? candidates : this.endpoints;
    return from.reduce((a, b) => ((a.avoidedAtMs ?? -Infinity) <= (b.avoidedAtMs ?? -Infinity) ? a : b));
  }

  /** Stop sending to this member until a probe finds it healthy again. */
  avoid(e: Endpoint): void {
    if (this.closed) return;
    const wasHealthy = e.healthy;
    e.avoidedAtMs = performance.now();
    if (wasHealthy) this.emit('avoided', e);
    this.scheduleProbe();
  }

  markHealthy(e: Endpoint): void {
    if (e.healthy) return;
    e.avoidedAtMs = undefined;
    this.emit('restored', e);
  }

  private scheduleProbe(): void {
    if (this.probeTimer !== undefined || this.closed) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      void this.probeAvoided();
    }, this.options.healthProbeIntervalMs);
    this.probeTimer.unref();
  }

  private async probeAvoided(): Promise<void> {
    if (this.probing || this.closed) return;
    this.probing = true;
    try {
      await Promise.all(this.endpoints.filter((e) => !e.healthy).map(async (e) => {
        if (await this.hasLeader(e, this.options.attemptTimeoutMs)) this.markHealthy(e);
      }));
    } finally {
      this.probing = false;
    }
    if (this.endpoints.some((e) => !e.healthy)) this.scheduleProbe();
  }

  /** One Status call with hasleader: true when the member answers and knows a leader. */
  hasLeader(e: Endpoint, timeoutMs: number): Promise<boolean> {
    const md = new grpc.Metadata();
    md.set(REQUIRE_LEADER_KEY, 'true');
    return new Promise((resolve) => {
      e.services.maintenance.Status({}, md, { deadline: Date.now() + timeoutMs }, (err, res) => resolve(err === null && res !== undefined && res.leader !== '0'));
    });
  }

  close(): void {
    this.closed = true;
    if (this.probeTimer !== undefined) clearTimeout(this.probeTimer);
    for (const e of this.endpoints) e.close();
    this.removeAllListeners();
  }
}
