// etcd's Watch service: one bidirectional stream carries many watches. Requests create, cancel or ask for
// progress; responses carry events of whole revisions, in revision order, each watch's first response being its
// `created` answer and its last (when the server ends it) a `canceled` one with the reason.
//
// Back-pressure: events wait in the hub's bounded per-watcher queues, not here. This stream pulls from its
// watchers only while grpc-js accepts writes (write() returned true, or 'drain' came), so a client that stops
// reading makes its watchers fall back to reading the store (see node/watch/hub.ts), and memory stays bounded.
import type * as grpc from '@grpc/grpc-js';
import type {
  Encodable,
  Handlers,
  WatchCancelRequest,
  WatchCreateRequest,
  WatchMethods,
  WatchRequest,
  WatchResponse,
} from '../../proto/index.js';
import type { MvccEvent } from '../../storage/mvcc/index.js';
import { WatchError, type EventGroup, type Watcher, type WatchHub, type WatchSpec } from '../watch/index.js';
import { watchDenial } from './authz.js';
import type { ApiContext } from './context.js';
import { endStreamWithError } from './errors.js';
import { responseHeader } from './header.js';
import { encodeEventsResponse, encodeHeaderField } from './watch-wire.js';

export interface WatchStreamLimits {
  /** Watches one stream may hold at once (etcd has no limit; an unbounded map per stream is a memory hazard). */
  readonly watchesPerStreamMax: number;
  /** Events in one response. Whole revisions are never split to honour it (only `fragment` splits a revision). */
  readonly responseEventsMax: number;
}

export const WATCH_STREAM_DEFAULTS: WatchStreamLimits = {
  watchesPerStreamMax: 1_000,
  responseEventsMax: 1_000,
};

/** etcd's watch id for "no watch": failed creates and stream-wide progress responses. */
const INVALID_WATCH_ID = -1n;

export const WATCH_ERRORS = {
  duplicateId: 'mvcc: duplicate watch ID provided on the WatchStream',
  tooManyWatches: 'fulcrum: too many watches on this stream',
  tooManyWatchesOnMember: 'fulcrum: too many watches on this member',
  tooManyWatchedKeyBytes: 'fulcrum: the watches on this member hold too many key bytes',
  negativeWatchId: 'fulcrum: watch id must not be negative',
} as const;

type Call = grpc.ServerDuplexStream<WatchRequest, Encodable<WatchResponse>>;
type Response = Encodable<WatchResponse>;

export function createWatchService(ctx: ApiContext, hub: WatchHub, limits: Partial<WatchStreamLimits> = {}): Handlers<WatchMethods> {
  const merged = Object.freeze({ ...WATCH_STREAM_DEFAULTS, ...limits });
  // One service per member: the bytes of the keys and range ends its watches hold, over all streams.
  const keyBytes = { used: 0 };
  return {
    Watch: (call) => new WatchStream(ctx, hub, call, merged, keyBytes).start(),
  };
}

interface StreamWatch {
  readonly watcher: Watcher;
  readonly fragment: boolean;
  /** Its key and range end, counted against the member's watchKeyBytesPerMemberMax while it lives. */
  readonly keyBytes: number;
}

class WatchStream {
  private readonly watches = new Map<bigint, StreamWatch>();
  /**
   * Watches with something to send (events or their cancel), in the order they became ready. An id can be here
   * more than once (a watcher reports ready when its queue stops being empty, when it syncs, when it is canceled;
   * drainOne re-queues it while it has more): a few times per watch between two pumps at most, and drainOne of an
   * id with nothing left sends nothing. Not a Set: V8 allocates a rehashed table of a Set in the old generation
   * when the Set is old, so a long-lived Set that grows to a hundred ids and empties again on every put sent its
   * tables through the old generation (half of what the watchers' member promoted, and a mark-compact every few
   * hundred ms); arrays made per pump die young.
   */
  private ready: bigint[] = [];
  private nextAutoId = 0n;
  private blocked = false;
  private pumpScheduled = false;
  private progressWanted = false;
  private closed = false;
  private lastHeader: { readonly revision: number; readonly term: number; readonly bytes: Uint8Array } | undefined;

  constructor(
    private readonly ctx: ApiContext,
    private readonly hub: WatchHub,
    private readonly call: Call,
    private readonly limits: WatchStreamLimits,
    private readonly keyBytes: { used: number },
  ) {}

  start(): void {
    this.call.on('data', (req: WatchRequest) => this.onRequest(req));
    this.call.on('end', () => {
      this.close();
      this.call.end();
    });
    this.call.on('error', () => this.close());
    this.call.on('cancelled', () => this.close());
    this.call.on('close', () => this.close());
    this.call.on('drain', () => {
      this.blocked = false;
      this.call.resume();
      this.schedulePump();
    });
  }

  private onRequest(req: WatchRequest): void {
    if (this.closed) return;
    try {
      if (req.request_union === 'create_request') this.onCreate(req.create_request);
      else if (req.request_union === 'cancel_request') this.onCancel(req.cancel_request);
      else if (req.request_union === 'progress_request') this.onProgressRequest();
      // An empty or unknown request is ignored, as etcd does.
    } catch (e) {
      this.ctx.logger.warn({ component: 'watch', err: e }, 'watch request failed');
      this.close();
      endStreamWithError(this.call, e);
    }
  }

  // ---- create / cancel

  private onCreate(c: WatchCreateRequest): void {
    const requested = BigInt(c.watch_id);
    const keyBytes = c.key.byteLength + c.range_end.byteLength;
    const refusal = watchDenial(this.ctx, this.call, toSpec(c)) ?? this.checkCreate(requested, keyBytes);
    if (refusal !== undefined) return this.refuseCreate(refusal);
    const id = requested === 0n ? this.autoId() : requested;
    let watcher: Watcher;
    try {
      watcher = this.hub.watch(toSpec(c), { onReady: () => this.markReady(id), onProgress: (rev) => this.sendProgress(id, rev) });
    } catch (e) {
      if (requested === 0n) this.nextAutoId = id; // a refused create uses no id
      if (e instanceof WatchError && e.code === 'INVALID_ARGUMENT') return this.refuseCreate(e.message);
      throw e;
    }
    this.watches.set(id, { watcher, fragment: c.fragment, keyBytes });
    this.keyBytes.used += keyBytes;
    const revision = c.start_revision === '0' ? watcher.lastQueuedRevision : this.ctx.member.stateMachine.revision;
    this.send({ header: responseHeader(this.ctx.member, revision), watch_id: id, created: true });
    this.schedulePump();
  }

  private checkCreate(requested: bigint, keyBytes: number): string | undefined {
    if (requested < 0n) return WATCH_ERRORS.negativeWatchId;
    if (requested !== 0n && this.watches.has(requested)) return WATCH_ERRORS.duplicateId;
    if (this.watches.size >= this.limits.watchesPerStreamMax) return WATCH_ERRORS.tooManyWatches;
    if (this.hub.watcherCount >= this.ctx.limits.watchesPerMemberMax) return WATCH_ERRORS.tooManyWatchesOnMember;
    if (this.keyBytes.used + keyBytes > this.ctx.limits.watchKeyBytesPerMemberMax) return WATCH_ERRORS.tooManyWatchedKeyBytes;
    return undefined;
  }

  /** etcd answers a create it refuses with created + canceled, watch id -1 and the reason. */
  private refuseCreate(reason: string): void {
    this.send({ header: responseHeader(this.ctx.member), watch_id: INVALID_WATCH_ID, created: true, canceled: true, cancel_reason: reason });
  }

  /** etcd hands out the lowest unused id from a counter starting at 0. */
  private autoId(): bigint {
    while (this.watches.has(this.nextAutoId)) this.nextAutoId++;
    return this.nextAutoId++;
  }

  /** A client cancel drops what is queued and answers at once; an unknown id gets no answer (as etcd). */
  private onCancel(c: WatchCancelRequest): void {
    const id = BigInt(c.watch_id);
    const sw = this.watches.get(id);
    if (sw === undefined) return;
    this.hub.cancel(sw.watcher);
    this.forget(id, sw);
    this.ready = this.ready.filter((x) => x !== id);
    this.send({ header: responseHeader(this.ctx.member), watch_id: id, canceled: true });
    this.maybeSendProgress();
  }

  // ---- progress

  private onProgressRequest(): void {
    this.progressWanted = true;
    this.maybeSendProgress();
  }

  /**
   * Answer a progress request once every watch on the stream is synced and has nothing queued: then every event
   * at or below the revision sent has been written before this response (etcd's RequestProgressAll).
   */
  private maybeSendProgress(): void {
    if (!this.progressWanted || this.closed || this.ready.length > 0) return;
    let revision = Infinity;
    for (const { watcher } of this.watches.values()) {
      if (!watcher.synced || watcher.hasPending) return;
      revision = Math.min(revision, Math.max(this.hub.publishedRevision, watcher.lastQueuedRevision));
    }
    if (revision === Infinity) revision = this.hub.publishedRevision;
    this.progressWanted = false;
    this.send({ header: responseHeader(this.ctx.member, revision), watch_id: INVALID_WATCH_ID });
  }

  /** A periodic notification for one watch (the hub calls it only when the watch is synced and idle). */
  private sendProgress(id: bigint, revision: number): void {
    if (this.closed || !this.watches.has(id)) return;
    this.send({ header: responseHeader(this.ctx.member, revision), watch_id: id });
  }

  // ---- events

  private markReady(id: bigint): void {
    this.ready.push(id);
    this.schedulePump();
  }

  /** The hub calls back from the apply path: do the work in a microtask, never inside the apply. */
  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    queueMicrotask(() => this.pump());
  }

  private pump(): void {
    this.pumpScheduled = false;
    while (!this.blocked && !this.closed && this.ready.length > 0) {
      // A watch with more to send goes to the end of the next turn: round robin.
      const turn = this.ready;
      this.ready = [];
      let i = 0;
      while (i < turn.length && !this.blocked && !this.closed) {
        const id = turn[i++]!;
        const sw = this.watches.get(id);
        if (sw !== undefined) this.drainOne(id, sw);
      }
      // Blocked mid-turn: the rest of it goes first after 'drain'.
      if (i < turn.length) this.ready = turn.slice(i).concat(this.ready);
    }
    if (!this.blocked) this.maybeSendProgress();
  }

  /** One response's worth of events from one watch (round robin), or its cancel once its queue is empty. */
  private drainOne(id: bigint, sw: StreamWatch): void {
    const groups = sw.watcher.take(this.limits.responseEventsMax, this.ctx.limits.requestBytesMax);
    if (groups.length > 0) {
      this.sendEvents(id, sw, groups);
      if (sw.watcher.hasPending || sw.watcher.canceled !== undefined) this.ready.push(id);
      return;
    }
    const info = sw.watcher.canceled;
    if (info === undefined) return;
    this.forget(id, sw);
    this.send({
      header: responseHeader(this.ctx.member),
      watch_id: id,
      canceled: true,
      cancel_reason: info.reason,
      compact_revision: info.compactRevision,
    });
  }

  private sendEvents(id: bigint, sw: StreamWatch, groups: readonly EventGroup[]): void {
    const header = this.headerFieldAt(groups[groups.length - 1]!.revision);
    // Usually one group (a watcher that keeps up): its own array, no copy.
    let { events, bytes } = groups[0]!;
    if (groups.length > 1) {
      events = [];
      bytes = 0;
      for (const g of groups) {
        for (const ev of g.events) events.push(ev);
        bytes += g.bytes;
      }
    }
    // Framed around each event's shared bytes (watch-wire.ts): a put seen by many watchers is encoded once.
    if (!sw.fragment || bytes <= this.ctx.limits.requestBytesMax) {
      this.send(encodeEventsResponse(header, id, events, false));
      return;
    }
    const parts = fragments(groups, this.ctx.limits.requestBytesMax);
    parts.forEach((part, i) => this.send(encodeEventsResponse(header, id, part, i < parts.length - 1)));
  }

  /**
   * The encoded header of an event response at `revision`. Every watcher of the stream that a revision reaches
   * gets the same header, so the last one is kept: a put seen by 100 watchers encodes it once, not 100 times.
   * The term is part of the key (a response carries the term it was sent in); the member's ids never change.
   */
  private headerFieldAt(revision: number): Uint8Array {
    const term = this.ctx.member.term();
    const last = this.lastHeader;
    if (last !== undefined && last.revision === revision && last.term === term) return last.bytes;
    const bytes = encodeHeaderField(responseHeader(this.ctx.member, revision));
    this.lastHeader = { revision, term, bytes };
    return bytes;
  }

  /**
   * While grpc-js has no room, the stream also stops reading requests: each create, cancel and progress request
   * is answered, so a client that sends them without reading the answers would otherwise grow the write buffer
   * without bound. HTTP/2 flow control then holds the client's requests on its side.
   */
  private send(res: Response | Buffer): void {
    if (this.closed) return;
    // A Buffer is a response encoded already; the service definition passes it through (proto/index.ts).
    if (!this.call.write(res as Response)) {
      this.blocked = true;
      this.call.pause();
    }
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, sw] of this.watches) {
      this.hub.cancel(sw.watcher);
      this.forget(id, sw);
    }
    this.ready = [];
  }

  private forget(id: bigint, sw: StreamWatch): void {
    if (this.watches.delete(id)) this.keyBytes.used -= sw.keyBytes;
  }
}

/** Split a too-large response into parts of at most `bytesMax` (estimated), each with at least one event. */
function fragments(groups: readonly EventGroup[], bytesMax: number): MvccEvent[][] {
  const parts: MvccEvent[][] = [];
  let part: MvccEvent[] = [];
  let bytes = 0;
  for (const ev of groups.flatMap((g) => g.events)) {
    const size = eventSize(ev);
    if (part.length > 0 && bytes + size > bytesMax) {
      parts.push(part);
      part = [];
      bytes = 0;
    }
    part.push(ev);
    bytes += size;
  }
  if (part.length > 0) parts.push(part);
  return parts;
}

function eventSize(ev: MvccEvent): number {
  return ev.kv.key.byteLength + ev.kv.value.byteLength + (ev.prevKv ? ev.prevKv.key.byteLength + ev.prevKv.value.byteLength : 0) + 64;
}

/** etcd normalizes a create request: an empty key is "\0" (the smallest key). */
function toSpec(c: WatchCreateRequest): WatchSpec {
  const has = (name: 'NOPUT' | 'NODELETE', num: number): boolean => c.filters.some((f) => f === name || f === num);
  return {
    key: c.key.length === 0 ? Buffer.from([0]) : c.key,
    rangeEnd: c.range_end,
    startRevision: Number(c.start_revision),
    prevKv: c.prev_kv,
    noPut: has('NOPUT', 0),
    noDelete: has('NODELETE', 1),
    progressNotify: c.progress_notify,
  };
}
