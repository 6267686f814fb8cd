// The service registry: self-registration bound to a lease, and discovery as a snapshot plus a watch from the
// snapshot's next revision (no gap, no repeat).
//
// Key schema (docs/registry.md), the one of etcd's naming/endpoints package, so a Go service using etcd's gRPC
// resolver with target `etcd:///services/payments` sees what this registry registers, and the other way round:
//
//   <prefix><service>/<id>   ->   {"Addr":"10.0.0.7:50051","Metadata":{...}}     bound to the instance's lease
//   services/payments/payments-1
//
// prefix defaults to "services/"; service and id are non-empty and contain no "/".
import { EventEmitter } from 'node:events';
import type { Client } from '../client.js';
import { FulcrumClientError, InvalidArgumentError, type LeaseLostError } from '../errors.js';
import type { Lease } from '../lease.js';
import type { CallOptions } from '../rpc.js';
import type { KeyValue } from '../types.js';
import type { Watch, WatchEvent } from '../watch.js';
import { cancelWatch } from '../recipes/line.js';

export const REGISTRY_PREFIX_DEFAULT = 'services/';
/** Lease TTL of a registration: how long a crashed instance stays listed at most (plus the server's expiry round). */
export const REGISTRATION_TTL_SECONDS_DEFAULT = 10;
/** Pause before registering again after the lease was lost, doubling up to the max while attempts fail. */
const REREGISTER_RETRY_FIRST_MS = 100;
const REREGISTER_RETRY_MAX_MS = 5_000;
/** Changes a Discovery keeps for a slow async iterator; beyond that the iterator fails (instances stay current). */
export const DISCOVERY_CHANGES_QUEUED_MAX = 10_000;

export interface Instance {
  readonly service: string;
  readonly id: string;
  /** host:port */
  readonly address: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** The lease the entry is bound to. */
  readonly lease: bigint;
  /** The revision of the entry's latest write. */
  readonly revision: number;
}

export interface RegisterOptions extends CallOptions {
  readonly id: string;
  readonly address: string;
  readonly metadata?: Readonly<Record<string, unknown>>;
  /** Lease TTL in seconds (default 10). */
  readonly ttl?: number;
}

export interface RegistryOptions {
  /** Where services live (default "services/"); ends with "/". */
  readonly prefix?: string;
}

function checkName(what: string, s: string): string {
  if (typeof s !== 'string' || s.length === 0 || s.includes('/')) throw new InvalidArgumentError(`fulcrum registry: a ${what} is a non-empty string without "/", got ${JSON.stringify(s)}`);
  return s;
}

/** The stored value: etcd naming's Endpoint {Addr, Metadata}. */
export function encodeInstance(address: string, metadata: Readonly<Record<string, unknown>>): string {
  return JSON.stringify({ Addr: address, Metadata: metadata });
}

/** An entry of a service, or undefined when its value is not a registry entry (it is then ignored). */
export function decodeInstance(service: string, servicePrefix: Buffer, kv: KeyValue): Instance | undefined {
  const id = kv.key.subarray(servicePrefix.length).toString('utf8');
  if (id.length === 0 || id.includes('/')) return undefined;
  try {
    const v = JSON.parse(kv.valueText) as { Addr?: unknown; Metadata?: unknown };
    if (typeof v.Addr !== 'string' || v.Addr.length === 0) return undefined;
    const metadata = typeof v.Metadata === 'object' && v.Metadata !== null ? (v.Metadata as Record<string, unknown>) : {};
    return { service, id, address: v.Addr, metadata, lease: kv.lease, revision: kv.modRevision };
  } catch {
    return undefined;
  }
}

export class Registry {
  readonly prefix: string;

  constructor(
    private readonly client: Client,
    options: RegistryOptions = {},
  ) {
    this.prefix = options.prefix ?? REGISTRY_PREFIX_DEFAULT;
    if (!this.prefix.endsWith('/')) throw new InvalidArgumentError(`fulcrum registry: the prefix must end with "/", got ${JSON.stringify(this.prefix)}`);
  }

  /** `<prefix><service>/`: every instance's key starts with it. */
  servicePrefix(service: string): string {
    return `${this.prefix}${checkName('service', service)}/`;
  }

  /** `<prefix><service>/<id>` */
  instanceKey(service: string, id: string): string {
    return `${this.servicePrefix(service)}${checkName('instance id', id)}`;
  }

  /**
   * Register an instance under a lease kept alive by this client, until `close()` (which deletes the entry at
   * once). If the process dies the entry goes when the lease expires. If the lease is lost while the process
   * lives (a long partition), the registration emits 'lost' and registers again as soon as it can.
   */
  async register(service: string, o: RegisterOptions): Promise<Registration> {
    const key = this.instanceKey(service, o.id);
    if (typeof o.address !== 'string' || o.address.length === 0) throw new InvalidArgumentError('fulcrum registry: an instance needs an address (host:port)');
    const ttl = o.ttl ?? REGISTRATION_TTL_SECONDS_DEFAULT;
    const r = new Registration(this.client, key, encodeInstance(o.address, o.metadata ?? {}), ttl);
    // Only the call options go on: RegisterOptions' `id` is the instance's, not a lease id.
    await r.start({ ...(o.signal ? { signal: o.signal } : {}), ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}) });
    return r;
  }

  /** The instances of a service now (one linearizable read). */
  async list(service: string, o: CallOptions = {}): Promise<Instance[]> {
    const prefix = Buffer.from(this.servicePrefix(service));
    const r = await this.client.range({ prefix }, o);
    return r.kvs.flatMap((kv) => decodeInstance(service, prefix, kv) ?? []);
  }

  /** The instances of a service and every change after them; see Discovery. */
  async discover(service: string, o: { signal?: AbortSignal } = {}): Promise<Discovery> {
    const d = new Discovery(this.client, service, Buffer.from(this.servicePrefix(service)), o.signal);
    await d.start();
    return d;
  }
}

export class Registration extends EventEmitter<{ lost: [LeaseLostError]; registered: [lease: bigint] }> {
  private lease: Lease | undefined;
  private closed = false;
  private readonly closing = new AbortController();
  private retrying: Promise<void> | undefined;

  constructor(
    private readonly client: Client,
    /** The entry's key. */
    readonly key: string,
    private readonly value: string,
    readonly ttl: number,
  ) {
    super();
  }

  /** The lease of the current registration (undefined while registering again after a loss). */
  get leaseId(): bigint | undefined {
    return this.lease?.lost === undefined ? this.lease?.id : undefined;
  }

  /** @internal first registration: failures go to the caller */
  async start(o: CallOptions): Promise<void> {
    await this.registerOnce(o);
  }

  /** Deregister: revoke the lease (its entry goes with it) and stop registering again. Never throws. */
  async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    await this.lease?.close();
    await this.retrying;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async registerOnce(o: CallOptions = {}): Promise<void> {
    const lease = await this.client.grantLease(this.ttl, o);
    try {
      await this.client.put(this.key, this.value, { ...o, lease });
    } catch (e) {
      await lease.close();
      throw e;
    }
    if (this.closed) return lease.close();
    this.lease = lease;
    lease.once('lost', (e) => this.onLost(e));
    this.emit('registered', lease.id);
  }

  private onLost(e: LeaseLostError): void {
    if (this.closed || e.reason === 'closed') return;
    this.emit('lost', e);
    this.retrying = this.registerAgain();
  }

  private async registerAgain(): Promise<void> {
    for (let failures = 0; !this.closed; failures++) {
      await sleep(Math.min(REREGISTER_RETRY_MAX_MS, REREGISTER_RETRY_FIRST_MS * 2 ** failures), this.closing.signal);
      if (this.closed) return;
      try {
        await this.registerOnce({ signal: this.closing.signal });
        return;
      } catch (e) {
        if (e instanceof FulcrumClientError && e.code === 'CLIENT_CLOSED') return;
      }
    }
  }
}

export type ServiceChange =
  /** A new instance, or a new address or metadata of one (then `previous` is set). */
  | { readonly type: 'up'; readonly instance: Instance; readonly previous: Instance | undefined; readonly revision: number }
  | { readonly type: 'down'; readonly instance: Instance; readonly revision: number };

/**
 * The instances of one service, kept current, and the changes to them in the order they happened. It starts
 * with one read of the service's prefix at revision R and watches from R + 1: every change after the read is
 * seen, none before it is repeated. If the watch cannot resume (its revision was compacted), the service is
 * read again and the difference is reported as changes.
 */
export class Discovery extends EventEmitter<{ change: [ServiceChange]; error: [FulcrumClientError] }> implements AsyncIterable<ServiceChange> {
  private readonly byId = new Map<string, Instance>();
  private readonly queue: ServiceChange[] = [];
  private wake: (() => void) | undefined;
  private watch: Watch | undefined;
  private ended = false;
  private failure: FulcrumClientError | undefined;
  private snapshotRevision = 0;

  constructor(
    private readonly client: Client,
    readonly service: string,
    private readonly prefix: Buffer,
    signal: AbortSignal | undefined,
  ) {
    super();
    signal?.addEventListener('abort', () => this.close(), { once: true });
  }

  /** The live instances, by id. */
  get instances(): Instance[] {
    return [...this.byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The revision the instances reflect (at least). */
  get revision(): number {
    return Math.max(this.snapshotRevision, this.watch?.revision ?? 0);
  }

  /** @internal the first read: its instances are the starting point, not changes */
  async start(): Promise<void> {
    await this.resync(true);
  }

  close(): void {
    this.end(undefined);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ServiceChange> {
    try {
      for (;;) {
        const c = this.queue.shift();
        if (c !== undefined) {
          yield c;
          continue;
        }
        if (this.ended) {
          if (this.failure !== undefined) throw this.failure;
          return;
        }
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      this.close();
    }
  }

  /** Read the service, report what differs from what is known, and watch from the read's next revision. */
  private async resync(initial = false): Promise<void> {
    if (this.watch !== undefined) cancelWatch(this.watch);
    const r = await this.client.range({ prefix: this.prefix });
    if (this.ended) return;
    const now = new Map<string, Instance>();
    for (const kv of r.kvs) {
      const i = decodeInstance(this.service, this.prefix, kv);
      if (i !== undefined) now.set(i.id, i);
    }
    if (initial) for (const i of now.values()) this.byId.set(i.id, i);
    for (const [id, old] of this.byId) if (!now.has(id)) this.apply({ type: 'down', instance: old, revision: r.revision });
    for (const i of now.values()) {
      const old = this.byId.get(i.id);
      if (old === undefined || old.revision !== i.revision) this.apply({ type: 'up', instance: i, previous: old, revision: i.revision });
    }
    this.snapshotRevision = r.revision;
    const watch = this.client.watch({ prefix: this.prefix }, { startRevision: r.revision + 1, prevKv: true });
    this.watch = watch;
    // Events of a watch being replaced (cancelWatch may take a moment) must not count twice.
    watch.on('event', (e) => {
      if (watch === this.watch && !this.ended) this.onEvent(e);
    });
    watch.on('error', (e) => {
      if (watch !== this.watch) return;
      if (e.code === 'COMPACTED' && !this.ended) this.resync().catch((x: unknown) => this.end(x instanceof FulcrumClientError ? x : new FulcrumClientError('INTERNAL', String(x), false)));
      else this.end(e);
    });
  }

  private onEvent(e: WatchEvent): void {
    const id = e.kv.key.subarray(this.prefix.length).toString('utf8');
    if (e.type === 'delete') {
      const old = this.byId.get(id);
      if (old !== undefined) this.apply({ type: 'down', instance: old, revision: e.revision });
      return;
    }
    const i = decodeInstance(this.service, this.prefix, e.kv);
    if (i !== undefined) this.apply({ type: 'up', instance: i, previous: this.byId.get(id), revision: e.revision });
    else if (this.byId.has(id)) this.apply({ type: 'down', instance: this.byId.get(id)!, revision: e.revision }); // overwritten with garbage
  }

  private apply(c: ServiceChange): void {
    if (c.type === 'up') this.byId.set(c.instance.id, c.instance);
    else this.byId.delete(c.instance.id);
    this.emit('change', c);
    if (this.queue.length >= DISCOVERY_CHANGES_QUEUED_MAX) {
      return this.end(new FulcrumClientError('TOO_MANY_REQUESTS', `fulcrum registry: more than ${DISCOVERY_CHANGES_QUEUED_MAX} changes of ${this.service} waited for the iterator; discover again`, true));
    }
    this.queue.push(c);
    this.wakeIterator();
  }

  private end(error: FulcrumClientError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    if (this.watch !== undefined) cancelWatch(this.watch);
    this.wakeIterator();
    if (error !== undefined && this.listenerCount('error') > 0) this.emit('error', error);
  }

  private wakeIterator(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

/** Resolves after `ms`, or at once when the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
  });
}
