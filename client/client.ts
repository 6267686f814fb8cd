// The Client: one object per application (or per cluster it talks to), sharing one channel per member across
// every call, watch and lease. A namespace view (`client.namespace('app/')`) shares all of it.
import type * as grpc from '@grpc/grpc-js';
import type { AuthenticateResponse, LeaseLeasesResponse, ServerInfoResponse, StatusResponse } from '../proto/index.js';
import { AuthApi, authInterceptor, TokenSource } from './auth.js';
import { type Bytes, toBuffer } from './bytes.js';
import { ClientClosedError } from './errors.js';
import { KeySpace } from './keyspace.js';
import { KvCalls, type DeleteOptions, type DeleteResult, type IterateOptions, type PutOptions, type PutResult, type RangeOptions, type RangeResult, type ReadOptions } from './kv.js';
import { grantLease, type GrantOptions, Lease } from './lease.js';
import { type ClientOptions, type ResolvedClientOptions, validateClientOptions } from './options.js';
import { EndpointPool, type Services } from './pool.js';
import { type CallKind, type CallOptions, Rpc, withoutToken } from './rpc.js';
import { TxnBuilder, type TxnResult, type TxnSpec } from './txn.js';
import type { Header, Hlc, KeyRange, KeyValue } from './types.js';
import { num, toHeader } from './types.js';
import { Watch, type WatchOptions } from './watch.js';
import { WriteLanes } from './write-lanes.js';

/** What a client and all its namespace views share. */
interface Core {
  readonly options: ResolvedClientOptions;
  readonly pool: EndpointPool;
  readonly rpc: Rpc;
  readonly lanes: WriteLanes;
  readonly leases: Set<Lease>;
  readonly watches: Set<Watch>;
  closed: boolean;
  readonly auth: AuthApi;
}

/** Lets namespace() build a view without a public second constructor. */
const VIEW = Symbol('fulcrum.client.view');

export interface MemberStatus {
  readonly endpoint: string;
  readonly memberId: string;
  readonly leaderId: string;
  readonly raftTerm: number;
  readonly raftIndex: number;
  readonly raftAppliedIndex: number;
  readonly version: string;
  readonly dbSizeBytes: number;
  readonly isLearner: boolean;
  readonly errors: string[];
  readonly revision: number;
}

export class Client {
  private readonly core: Core;
  private readonly space: KeySpace;
  private readonly kv: KvCalls;

  constructor(options: ClientOptions);
  /** @internal */
  constructor(options: ClientOptions, view: typeof VIEW, core: Core, space: KeySpace);
  constructor(options: ClientOptions, view?: typeof VIEW, core?: Core, space?: KeySpace) {
    if (view === VIEW && core !== undefined && space !== undefined) {
      this.core = core;
      this.space = space;
    } else {
      const resolved = validateClientOptions(options);
      const tokens = resolved.auth === undefined ? undefined : new TokenSource(resolved.auth);
      const pool = new EndpointPool(resolved, tokens === undefined ? [] : [authInterceptor(tokens)]);
      const lanes = new WriteLanes(resolved.clientName, resolved.writesInFlightMax, resolved.writesQueuedMax);
      const rpc = new Rpc(pool, resolved, lanes, tokens);
      tokens?.setAuthenticator(async (c) => {
        const authenticate = withoutToken<AuthenticateResponse>((s, md, co, cb) => s.auth.Authenticate({ name: c.username, password: c.password }, md, co, cb));
        const r = await rpc.call<AuthenticateResponse>('read', 'Authenticate', authenticate);
        return r.token;
      });
      this.core = { options: resolved, pool, lanes, rpc, leases: new Set(), watches: new Set(), closed: false, auth: new AuthApi(rpc) };
      this.space = KeySpace.ROOT;
    }
    this.kv = new KvCalls(this.core.rpc, this.space);
  }

  /** The exactly-once identity of this client's writes (each write in flight adds `.<lane>`). */
  get clientId(): string {
    return this.core.lanes.baseId;
  }

  /** etcd's Auth API: enable/disable/status, users, roles and their permissions (keys are never namespaced). */
  get auth(): AuthApi {
    return this.core.auth;
  }

  /** The namespace prefix of this view (empty for the client itself). */
  get prefix(): Buffer {
    return this.space.prefix;
  }

  /** A view of this client whose keys all live under `prefix`: it never sees the prefix in keys it gets back. */
  namespace(prefix: Bytes): Client {
    return new Client(this.core.options, VIEW, this.core, this.space.child(toBuffer(prefix)));
  }

  // ---- KV

  /** One key, or undefined when it does not exist. */
  get(key: Bytes, options?: ReadOptions): Promise<KeyValue | undefined> {
    return this.kv.get(key, options);
  }

  /** The keys of a range: `{ prefix }`, `{ start, end }` or `{ key }`, with limit, sort, revision, `at`. */
  range(range: Bytes | KeyRange, options?: RangeOptions): Promise<RangeResult> {
    return this.kv.range(range, options);
  }

  /** Shorthand: every key with a prefix (one request; use `iterate` for large ranges). */
  async getPrefix(prefix: Bytes, options?: RangeOptions): Promise<KeyValue[]> {
    return (await this.kv.range({ prefix }, options)).kvs;
  }

  count(range: Bytes | KeyRange, options?: ReadOptions): Promise<number> {
    return this.kv.count(range, options);
  }

  /** Every key of a range in key order, a page at a time, all pages at one revision. */
  iterate(range: Bytes | KeyRange, options?: IterateOptions): AsyncGenerator<KeyValue> {
    return this.kv.iterate(range, options);
  }

  put(key: Bytes, value: Bytes, options?: PutOptions): Promise<PutResult> {
    return this.kv.put(key, value, options);
  }

  /** Delete one key or a range (`{ prefix }`, `{ start, end }`). */
  delete(range: Bytes | KeyRange, options?: DeleteOptions): Promise<DeleteResult> {
    return this.kv.delete(range, options);
  }

  /** A transaction builder: `.if(...compares).then(...ops).else(...ops).commit()`. */
  txn(): TxnBuilder {
    return new TxnBuilder((spec, o) => this.kv.txn(spec, o as CallOptions));
  }

  /** Run a transaction built elsewhere (a TxnSpec: compare, success, failure). */
  runTxn(spec: TxnSpec, options?: CallOptions): Promise<TxnResult> {
    return this.kv.txn(spec, options);
  }

  /** Drop history below `revision`. */
  compact(revision: number, options?: CallOptions & { physical?: boolean }): Promise<Header> {
    return this.kv.compact(revision, options);
  }

  /** The revision current at a wall-clock time, and its HLC stamp (Fulcrum only). */
  revisionAt(at: Date, options?: CallOptions & { serializable?: boolean }): Promise<{ revision: number; hlc: Hlc }> {
    return this.kv.revisionAt(at, options);
  }

  // ---- leases

  /** Grant a lease of `ttlSeconds`, kept alive until `lease.close()` (or the client closes) unless `keepAlive: false`. */
  async grantLease(ttlSeconds: number, options: GrantOptions = {}): Promise<Lease> {
    this.throwIfClosed();
    const lease = await grantLease(this.core.rpc, this.space, ttlSeconds, options, (l) => this.core.leases.delete(l));
    if (this.core.closed) {
      lease.shutdown();
      throw new ClientClosedError();
    }
    this.core.leases.add(lease);
    return lease;
  }

  /** Every lease the cluster holds (ids). */
  async leases(options?: CallOptions): Promise<bigint[]> {
    const res = await this.core.rpc.call<LeaseLeasesResponse>('read', 'lease list', (s, md, co, cb) => s.lease.LeaseLeases({}, md, co, cb), options);
    return res.leases.map((l) => BigInt(l.ID));
  }

  // ---- watches

  /** Watch a key or a range from now (or `startRevision`): resumes across failures, each event once, in order. */
  watch(range: Bytes | KeyRange, options: WatchOptions = {}): Watch {
    this.throwIfClosed();
    const w = new Watch(range, options, this.core.pool, this.core.options, this.space, (x) => this.core.watches.delete(x));
    this.core.watches.add(w);
    return w;
  }

  // ---- cluster and members

  /** Maintenance.Status of every endpoint (unreachable ones are left out). */
  async memberStatuses(options: CallOptions = {}): Promise<MemberStatus[]> {
    const all = await Promise.all(
      this.core.pool.endpoints.map(async (e) => {
        try {
          const s = await new Promise<StatusResponse>((resolve, reject) =>
            e.services.maintenance.Status({}, { deadline: Date.now() + (options.timeoutMs ?? this.core.options.attemptTimeoutMs) }, (err, res) => (err ? reject(err) : resolve(res!))),
          );
          return toMemberStatus(e.address, s);
        } catch {
          return undefined;
        }
      }),
    );
    return all.filter((s): s is MemberStatus => s !== undefined);
  }

  /** Fulcrum's ServerInfo from whichever member answers. */
  serverInfo(options?: CallOptions): Promise<ServerInfoResponse> {
    return this.core.rpc.call<ServerInfoResponse>('read', 'server info', (s, md, co, cb) => s.fulcrum.ServerInfo({}, md, co, cb), options);
  }

  /**
   * Any unary call of the etcd or Fulcrum API, with this client's failover, deadlines and retry rules (for the
   * recipes, fulcrumctl and the Election/Lock/Cluster/Maintenance services that have no method here yet).
   * `kind`: 'read' (retried freely), 'idempotent' (likewise), 'write' (exactly-once rules; see rpc.ts).
   */
  unary<R>(kind: CallKind, what: string, invoke: (services: Services, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<R>) => grpc.ClientUnaryCall, options?: CallOptions): Promise<R> {
    return this.core.rpc.call(kind, what, invoke, options);
  }

  /** The endpoints as given (host:port), in order. */
  get endpoints(): string[] {
    return this.core.pool.endpoints.map((e) => e.address);
  }

  /** Endpoints the client currently avoids (no leader, unreachable or too slow), for diagnostics. */
  get avoidedEndpoints(): string[] {
    return this.core.pool.endpoints.filter((e) => !e.healthy).map((e) => e.address);
  }

  // ---- lifecycle

  /**
   * Close the client (from any view): revoke its leases (best effort, bounded), end its watches with
   * ClientClosedError, and close every connection. Idempotent.
   */
  async close(): Promise<void> {
    if (this.core.closed) return;
    await Promise.all([...this.core.leases].map((l) => l.close()));
    this.core.closed = true;
    for (const w of [...this.core.watches]) w.shutdown();
    for (const l of [...this.core.leases]) l.shutdown();
    this.core.rpc.close();
    this.core.pool.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private throwIfClosed(): void {
    if (this.core.closed) throw new ClientClosedError();
  }
}

function toMemberStatus(endpoint: string, s: StatusResponse): MemberStatus {
  return {
    endpoint,
    memberId: s.header?.member_id ?? '0',
    leaderId: s.leader,
    raftTerm: num(s.raftTerm),
    raftIndex: num(s.raftIndex),
    raftAppliedIndex: num(s.raftAppliedIndex),
    version: s.version,
    dbSizeBytes: num(s.dbSize),
    isLearner: s.isLearner,
    errors: s.errors,
    revision: toHeader(s.header).revision,
  };
}


