// The chaos suite's own small etcd v3 client over proto/: one grpc-js channel per (client, member), every call
// with a deadline, and NO retries: a workload must see each failure to record it honestly (a retry inside the
// client would turn one invoke into two effects). Works against Fulcrum and etcd alike (same wire API).
import * as grpc from '@grpc/grpc-js';
import { loadEtcdApi } from '../../proto/index.js';

type Cb = (err: grpc.ServiceError | null, res?: unknown) => void;
type UnaryFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: Cb) => void;
// The typed service clients are precise but verbose to thread through a test tool; calls go through one helper.
type AnyClient = grpc.Client & Record<string, UnaryFn & ((...a: unknown[]) => grpc.ClientDuplexStream<unknown, unknown>)>;

export interface KV {
  readonly key: string;
  readonly value: string;
  readonly modRevision: number;
  readonly createRevision: number;
  readonly version: number;
  readonly lease: string;
  readonly modHlc: string;
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly kv: KV;
  readonly prev: KV | undefined;
}

export interface WatchBatch {
  readonly created: boolean;
  readonly canceled: boolean;
  readonly compactRevision: number;
  readonly cancelReason: string;
  readonly headerRevision: number;
  readonly events: readonly WatchEvent[];
}

export interface Header {
  readonly revision: number;
  readonly memberId: string;
  readonly hlc: string;
}

/** gRPC codes that prove the request was not applied (it never reached a leader, or was refused up front). */
/** Keys per page of rangeAll: about 1 MB at the workloads' key and value sizes, well under the 4 MiB message limit. */
export const RANGE_PAGE_KEYS = 10_000;

const DEFINITE_FAILURES = new Set<number>([grpc.status.UNAVAILABLE, grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION, grpc.status.NOT_FOUND, grpc.status.OUT_OF_RANGE, grpc.status.RESOURCE_EXHAUSTED]);

/**
 * Whether an error proves a WRITE did not take effect. UNAVAILABLE is ambiguous in general (etcd answers it for
 * "leader changed" after proposing), so for writes only refusals before proposing count; for reads every error
 * is a definite failure (a read that fails changed nothing).
 */
export function writeCertainlyFailed(e: unknown): boolean {
  const code = (e as { code?: number }).code;
  if (code === undefined || !DEFINITE_FAILURES.has(code)) return false;
  if (code !== grpc.status.UNAVAILABLE) return true;
  // A connection that never opened cannot have carried the request; any other UNAVAILABLE may have.
  return /No connection established|ECONNREFUSED/i.test(String((e as { details?: string }).details ?? ''));
}

export function errorText(e: unknown): string {
  const x = e as { code?: number; details?: string; message?: string };
  return x.code !== undefined ? `${grpc.status[x.code] ?? x.code}: ${x.details ?? x.message}` : String(x.message ?? e);
}

function toKV(kv: Record<string, unknown>): KV {
  return {
    key: (kv.key as Buffer).toString(),
    value: (kv.value as Buffer).toString(),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    version: Number(kv.version),
    lease: String(kv.lease),
    modHlc: String(kv.mod_hlc ?? '0'),
  };
}

function toHeader(h: Record<string, unknown> | null): Header {
  return { revision: Number(h?.revision ?? 0), memberId: String(h?.member_id ?? ''), hlc: String(h?.hlc ?? '0') };
}

export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1]! += 1;
  return end;
}

export class ChaosClient {
  private readonly kv: AnyClient;
  private readonly lease: AnyClient;
  private readonly maintenance: AnyClient;
  private readonly cluster: AnyClient;
  readonly watchService: AnyClient;

  constructor(
    readonly endpoint: string,
    private readonly deadlineMs = 2_000,
  ) {
    const api = loadEtcdApi();
    const creds = grpc.credentials.createInsecure();
    // Reconnect quickly after a healed fault; the workload, not the channel, decides when to give up.
    const options = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1_000, 'grpc.enable_retries': 0 };
    const e = api.etcdserverpb as unknown as Record<string, new (ep: string, c: grpc.ChannelCredentials, o: object) => AnyClient>;
    this.kv = new e.KV!(endpoint, creds, options);
    this.lease = new e.Lease!(endpoint, creds, options);
    this.maintenance = new e.Maintenance!(endpoint, creds, options);
    this.cluster = new e.Cluster!(endpoint, creds, options);
    this.watchService = new e.Watch!(endpoint, creds, options);
  }

  private call<R>(client: AnyClient, method: string, req: unknown, deadlineMs = this.deadlineMs): Promise<R> {
    return new Promise((resolve, reject) => {
      client[method]!(req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res as R)));
    });
  }

  async get(key: string, serializable = false): Promise<{ kv: KV | undefined; header: Header }> {
    const r = await this.call<{ kvs: Array<Record<string, unknown>>; header: Record<string, unknown> }>(this.kv, 'Range', { key: Buffer.from(key), serializable });
    return { kv: r.kvs[0] ? toKV(r.kvs[0]) : undefined, header: toHeader(r.header) };
  }

  async range(prefix: string, serializable = false): Promise<{ kvs: KV[]; header: Header }> {
    const r = await this.call<{ kvs: Array<Record<string, unknown>>; header: Record<string, unknown> }>(this.kv, 'Range', { key: Buffer.from(prefix), range_end: prefixEnd(prefix), serializable }, this.deadlineMs * 3);
    return { kvs: r.kvs.map(toKV), header: toHeader(r.header) };
  }

  /**
   * Every key under `prefix` as of one revision, in pages of RANGE_PAGE_KEYS: the first page is a linearizable
   * read, the rest read at its revision. One range of a long run's keys outgrew gRPC's 4 MiB message limit on
   * the client (a soak's set workload: 4,246,216 bytes), which left its checker without a final read.
   * `betweenPages` is for tests: it runs after each page that has a next one.
   */
  async rangeAll(prefix: string, pageKeys = RANGE_PAGE_KEYS, betweenPages?: () => Promise<unknown>): Promise<{ kvs: KV[]; header: Header }> {
    const end = prefixEnd(prefix);
    const kvs: KV[] = [];
    let from = Buffer.from(prefix);
    let header: Header | undefined;
    for (;;) {
      const page = { key: from, range_end: end, limit: String(pageKeys), ...(header === undefined ? {} : { revision: String(header.revision) }) };
      const r = await this.call<{ kvs: Array<Record<string, unknown>>; header: Record<string, unknown>; more: boolean }>(this.kv, 'Range', page, this.deadlineMs * 3);
      header ??= toHeader(r.header);
      for (const kv of r.kvs) kvs.push(toKV(kv));
      if (!r.more || r.kvs.length === 0) return { kvs, header };
      await betweenPages?.();
      from = Buffer.concat([r.kvs[r.kvs.length - 1]!.key as Buffer, Buffer.of(0)]);
    }
  }

  async put(key: string, value: string, lease?: string): Promise<Header> {
    const r = await this.call<{ header: Record<string, unknown> }>(this.kv, 'Put', { key: Buffer.from(key), value: Buffer.from(value), ...(lease ? { lease } : {}) });
    return toHeader(r.header);
  }

  /** A put carrying Fulcrum's exactly-once identity (`fulcrum-request-id: <client>:<seq>`; etcd ignores it). */
  async putOnce(key: string, value: string, requestId: string | undefined): Promise<Header> {
    const md = new grpc.Metadata();
    if (requestId !== undefined) md.set('fulcrum-request-id', requestId);
    const r = await new Promise<{ header: Record<string, unknown> }>((resolve, reject) => {
      this.kv.Put!({ key: Buffer.from(key), value: Buffer.from(value) }, md, { deadline: Date.now() + this.deadlineMs }, (err, res) => (err ? reject(err) : resolve(res as { header: Record<string, unknown> })));
    });
    return toHeader(r.header);
  }

  /** Compare-and-set on the value; a missing key compares as version 0 when `expected` is undefined. */
  async cas(key: string, expected: string | undefined, value: string): Promise<{ succeeded: boolean; header: Header }> {
    const compare =
      expected === undefined
        ? { result: 'EQUAL', target: 'VERSION', key: Buffer.from(key), version: '0' }
        : { result: 'EQUAL', target: 'VALUE', key: Buffer.from(key), value: Buffer.from(expected) };
    const r = await this.call<{ succeeded: boolean; header: Record<string, unknown> }>(this.kv, 'Txn', {
      compare: [compare],
      success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value) } }],
      failure: [],
    });
    return { succeeded: r.succeeded, header: toHeader(r.header) };
  }

  /** Put `value` only if the key was not modified since `modRevision` (0: the key must not exist). */
  async putIfUnchanged(key: string, modRevision: number, value: string, lease?: string): Promise<{ succeeded: boolean; header: Header }> {
    const r = await this.call<{ succeeded: boolean; header: Record<string, unknown> }>(this.kv, 'Txn', {
      compare: [{ result: 'EQUAL', target: 'MOD', key: Buffer.from(key), mod_revision: String(modRevision) }],
      success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value), ...(lease ? { lease } : {}) } }],
      failure: [],
    });
    return { succeeded: r.succeeded, header: toHeader(r.header) };
  }

  /** Several puts in one transaction: one revision, which a watcher must see whole. */
  async putAll(pairs: ReadonlyArray<readonly [string, string]>): Promise<Header> {
    const r = await this.call<{ header: Record<string, unknown> }>(this.kv, 'Txn', {
      compare: [],
      success: pairs.map(([key, value]) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } })),
      failure: [],
    });
    return toHeader(r.header);
  }

  /** `deleted` 0: the key did not exist, nothing changed, and the header's revision is not this request's. */
  async delete(key: string): Promise<{ header: Header; deleted: number }> {
    const r = await this.call<{ header: Record<string, unknown>; deleted: string }>(this.kv, 'DeleteRange', { key: Buffer.from(key) });
    return { header: toHeader(r.header), deleted: Number(r.deleted) };
  }

  async compact(revision: number): Promise<void> {
    await this.call(this.kv, 'Compact', { revision: String(revision), physical: false });
  }

  async leaseGrant(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    const r = await this.call<{ ID: string; TTL: string; error: string }>(this.lease, 'LeaseGrant', { TTL: String(ttlSeconds), ID: '0' });
    if (r.error) throw new Error(`lease grant: ${r.error}`);
    return { id: r.ID, ttl: Number(r.TTL) };
  }

  async leaseRevoke(id: string): Promise<void> {
    await this.call(this.lease, 'LeaseRevoke', { ID: id });
  }

  /** Remaining TTL in seconds (-1: the lease does not exist). */
  async leaseTimeToLive(id: string): Promise<number> {
    const r = await this.call<{ TTL: string }>(this.lease, 'LeaseTimeToLive', { ID: id, keys: false });
    return Number(r.TTL);
  }

  /** One keep-alive round trip on a fresh stream; resolves with the TTL the server granted (0: lease gone). */
  leaseKeepAliveOnce(id: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const stream = this.lease.LeaseKeepAlive!(new grpc.Metadata(), { deadline: Date.now() + this.deadlineMs }) as grpc.ClientDuplexStream<unknown, { TTL: string }>;
      stream.on('data', (r) => {
        resolve(Number(r.TTL));
        stream.cancel();
      });
      stream.on('error', (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
      stream.on('end', () => reject(new Error('keep-alive stream ended without an answer')));
      stream.write({ ID: id });
    });
  }

  /**
   * Watch everything under `prefix` from `startRevision` with prev_kv. Each response (a whole revision or more:
   * servers never split one) goes to `onResponse`; the stream's end or failure to `onEnd`. Returns a cancel.
   */
  watch(prefix: string, startRevision: number, onResponse: (r: WatchBatch) => void, onEnd: (why: string) => void): () => void {
    const stream = this.watchService.Watch!(new grpc.Metadata()) as grpc.ClientDuplexStream<unknown, Record<string, unknown>>;
    let ended = false;
    const end = (why: string): void => {
      if (ended) return;
      ended = true;
      onEnd(why);
    };
    stream.on('data', (r) => {
      const events = (r.events as Array<{ type: string; kv: Record<string, unknown> | null; prev_kv: Record<string, unknown> | null }>).map((e) => ({
        type: e.type === 'DELETE' || (e.type as unknown) === 1 ? ('delete' as const) : ('put' as const),
        kv: toKV(e.kv!),
        prev: e.prev_kv ? toKV(e.prev_kv) : undefined,
      }));
      onResponse({
        created: r.created === true,
        canceled: r.canceled === true,
        compactRevision: Number(r.compact_revision ?? 0),
        cancelReason: String(r.cancel_reason ?? ''),
        headerRevision: Number((r.header as Record<string, unknown> | null)?.revision ?? 0),
        events,
      });
      if (r.canceled === true) {
        stream.cancel();
        end(`canceled: ${String(r.cancel_reason || 'compacted')}`);
      }
    });
    stream.on('error', (e) => end(errorText(e)));
    stream.on('end', () => end('stream ended'));
    stream.write({ create_request: { key: Buffer.from(prefix), range_end: prefixEnd(prefix), start_revision: String(startRevision), prev_kv: true } });
    return () => {
      stream.cancel();
      end('cancelled by the client');
    };
  }

  async status(): Promise<{ leader: string; memberId: string; raftTerm: number; isLearner: boolean }> {
    const s = await this.call<{ leader: string; raftTerm: string; isLearner: boolean; header: { member_id: string } }>(this.maintenance, 'Status', {});
    return { leader: s.leader, memberId: s.header.member_id, raftTerm: Number(s.raftTerm), isLearner: s.isLearner };
  }

  async moveLeader(targetId: string): Promise<void> {
    await this.call(this.maintenance, 'MoveLeader', { targetID: targetId }, 10_000);
  }

  async memberList(): Promise<Array<{ id: string; name: string; peerURLs: string[]; isLearner: boolean }>> {
    const r = await this.call<{ members: Array<{ ID: string; name: string; peerURLs: string[]; isLearner: boolean }> }>(this.cluster, 'MemberList', { linearizable: false });
    return r.members.map((m) => ({ id: m.ID, name: m.name, peerURLs: m.peerURLs, isLearner: m.isLearner }));
  }

  async memberRemove(id: string): Promise<void> {
    await this.call(this.cluster, 'MemberRemove', { ID: id }, 10_000);
  }

  async memberAdd(peerUrls: string[], isLearner: boolean): Promise<string> {
    const r = await this.call<{ member: { ID: string } }>(this.cluster, 'MemberAdd', { peerURLs: peerUrls, isLearner }, 10_000);
    return r.member.ID;
  }

  async memberPromote(id: string): Promise<void> {
    await this.call(this.cluster, 'MemberPromote', { ID: id }, 10_000);
  }

  close(): void {
    for (const c of [this.kv, this.lease, this.maintenance, this.cluster, this.watchService]) c.close();
  }
}
