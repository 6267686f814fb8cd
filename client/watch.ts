// Watches that do not silently stop: each one follows its place in history (watch-cursor.ts) and, whenever its
// stream breaks, goes quiet, or its member loses its leader, opens a new stream on a healthy member from the next
// revision it has not delivered. The caller sees one unbroken sequence of events, each once, in order.
//
//   const watch = client.watch({ prefix: 'config/' });
//   for await (const event of watch) console.log(event.type, event.kv.keyText, event.revision);
//
// or with listeners: watch.on('event', fn) (then nothing is buffered for an iterator), 'progress', 'error'.
//
// A watch ends with an error only when resuming is impossible: its next revision was compacted
// (CompactedError), or the server keeps refusing it (WatchCanceledError), or the client closed.
//
// Liveness: a stream that has been silent for watchIdleProbeMs gets a progress request, and its member a
// Status call with hasleader; no answer within watchProbeTimeoutMs, or no leader, and the watch moves. A paused
// (SIGSTOP) or partitioned member is thus left within about idle + probe time, without losing an event.
//
// Back-pressure: events wait in a queue of watchBufferEventsMax for a slow iterator; when it is full the watch
// stops reading its stream, so the server holds (and, in Fulcrum, falls back to reading history) instead.
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { Event as WireEvent, WatchResponse } from '../proto/index.js';
import { type Bytes } from './bytes.js';
import { ClientClosedError, CompactedError, FulcrumClientError, WatchCanceledError } from './errors.js';
import type { KeySpace } from './keyspace.js';
import type { Endpoint, EndpointPool } from './pool.js';
import { Rpc } from './rpc.js';
import { type KeyRange, type KeyValue, num, toKeyValue, toKeyValueOrUndefined, keyFields, wireRange } from './types.js';
import { WatchCursor } from './watch-cursor.js';
import type { ResolvedClientOptions } from './options.js';

/** Streams in a row that the server cancels (not for compaction) before the watch gives up. */
export const WATCH_REFUSALS_MAX = 3;
/** Events of one revision collected from `fragment` responses; a bigger revision ends the watch with an error. */
export const WATCH_FRAGMENT_EVENTS_MAX = 1_000_000;
const STREAM_RETRY_FIRST_MS = 50;
const STREAM_RETRY_MAX_MS = 1_000;
/** etcd's watch id for stream-wide answers (progress of every watch on the stream). */
const STREAM_WIDE_WATCH_ID = '-1';

export interface WatchOptions {
  /** Deliver events from this revision on (it must not be compacted). Default: from now. */
  readonly startRevision?: number;
  /** Each event carries the key's previous version. */
  readonly prevKv?: boolean;
  /** Leave out puts / deletes. */
  readonly noPut?: boolean;
  readonly noDelete?: boolean;
  /** Ask the server for periodic progress notifications (every 10 minutes in etcd and Fulcrum). */
  readonly progressNotify?: boolean;
  /** Cancels the watch (the iterator ends without error). */
  readonly signal?: AbortSignal;
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  /** The key's new version; for a delete, the key with an empty value at the delete's revision. */
  readonly kv: KeyValue;
  readonly prevKv: KeyValue | undefined;
  /** The revision of the write (all events of one transaction share it). */
  readonly revision: number;
}

type WatchStreamCall = grpc.ClientDuplexStream<object, WatchResponse>;

/** How one stream ended: what the watch does next. */
type StreamEnd =
  | { readonly kind: 'retry'; readonly avoid: boolean; readonly delivered: boolean }
  | { readonly kind: 'refused'; readonly reason: string }
  | { readonly kind: 'fatal'; readonly error: FulcrumClientError }
  | { readonly kind: 'closed' };

export interface WatchEvents {
  event: [WatchEvent];
  /** Every event of the watch up to this revision has been delivered. */
  progress: [revision: number];
  /** The watch moved to a new stream (after a failure) and resumed from this revision. */
  resumed: [info: { endpoint: string; fromRevision: number }];
  /** The watch ended with this error (only emitted when someone listens). */
  error: [FulcrumClientError];
  end: [];
}

export class Watch extends EventEmitter<WatchEvents> implements AsyncIterable<WatchEvent> {
  /** Resolves once the server has accepted the watch the first time (the watch then sees every later write). */
  readonly ready: Promise<void>;
  private readyResolve!: () => void;
  private readyReject!: (e: unknown) => void;
  private readonly cursor: WatchCursor;
  private readonly queue: WatchEvent[] = [];
  private wake: (() => void) | undefined;
  private failure: FulcrumClientError | undefined;
  private ended = false;
  private stream: WatchStreamCall | undefined;
  private paused = false;
  private readonly progressWaiters: Array<{ resolve: (revision: number) => void; reject: (e: unknown) => void }> = [];
  private readonly wire: { key: Buffer; rangeEnd: Buffer };
  private endStream: ((end: StreamEnd) => void) | undefined;
  private streamEndpoint: string | undefined;
  private streamsOpened = 0;

  constructor(
    target: Bytes | KeyRange,
    private readonly options: WatchOptions,
    private readonly pool: EndpointPool,
    private readonly config: ResolvedClientOptions,
    private readonly space: KeySpace,
    private readonly onClosed: (w: Watch) => void,
  ) {
    super();
    this.wire = wireRange(target, space);
    this.cursor = new WatchCursor(options.startRevision ?? 0);
    this.ready = new Promise((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    this.ready.catch(() => undefined); // the same error reaches the iterator or 'error'
    if (options.signal?.aborted) {
      queueMicrotask(() => this.cancel());
    } else {
      options.signal?.addEventListener('abort', () => this.cancel(), { once: true });
      void this.run();
    }
  }

  /** Every event at or below this revision has been delivered (-1 before a "from now" watch is created). */
  get revision(): number {
    return this.cursor.deliveredThrough;
  }

  /** The member the watch's stream is on now (host:port), undefined between streams. */
  get endpoint(): string | undefined {
    return this.streamEndpoint;
  }

  /** Whether the watch has ended (cancelled, failed or the client closed). */
  get closed(): boolean {
    return this.ended;
  }

  /**
   * Ask the server where the watch stands; resolves with a revision once every event up to it has been
   * delivered (Fulcrum orders the answer after them on the stream). Rejects if the watch ends first.
   */
  requestProgress(): Promise<number> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.ended) return Promise.reject(new WatchCanceledError('fulcrum client: the watch has ended'));
    return new Promise((resolve, reject) => {
      this.progressWaiters.push({ resolve, reject });
      this.stream?.write({ progress_request: {} });
    });
  }

  /** Stop watching: the iterator ends at once (events still queued are dropped); never throws. */
  cancel(): void {
    this.finish(undefined);
  }

  close(): void {
    this.cancel();
  }

  /** The client is closing. */
  shutdown(): void {
    this.finish(new ClientClosedError());
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    try {
      for (;;) {
        const e = this.queue.shift();
        if (e !== undefined) {
          if (this.paused && this.queue.length <= this.config.watchBufferEventsMax / 2) this.resumeReading();
          yield e;
          continue;
        }
        if (this.ended) {
          if (this.failure !== undefined) throw this.failure;
          return;
        }
        await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      this.cancel();
    }
  }

  // ---- the stream loop

  private async run(): Promise<void> {
    const tried = new Set<Endpoint>();
    let failures = 0;
    let refusals = 0;
    while (!this.ended) {
      if (tried.size >= this.pool.endpoints.length) tried.clear();
      const endpoint = this.pool.pick(tried);
      tried.add(endpoint);
      const end = await this.runStream(endpoint);
      if (end.kind === 'closed' || this.ended) return;
      if (end.kind === 'fatal') return this.finish(end.error);
      if (end.kind === 'refused') {
        if (++refusals >= WATCH_REFUSALS_MAX) return this.finish(new WatchCanceledError(`fulcrum client: the server cancelled the watch ${refusals} times: ${end.reason}`));
      } else {
        if (end.delivered) {
          failures = 0;
          refusals = 0;
        }
        if (end.avoid) this.pool.avoid(endpoint);
      }
      await sleep(Math.min(STREAM_RETRY_MAX_MS, STREAM_RETRY_FIRST_MS * 2 ** failures++));
    }
  }

  /** One stream on one member, until it ends; resolves how. */
  private runStream(endpoint: Endpoint): Promise<StreamEnd> {
    this.streamsOpened++;
    return new Promise((resolve) => {
      const session = new StreamSession(this, endpoint, this.cursor.resumeRevision, this.streamsOpened > 1, (how) => {
        if (this.endStream === endStream) this.endStream = undefined;
        if (this.stream === session.stream) {
          this.stream = undefined;
          this.streamEndpoint = undefined;
        }
        this.paused = false;
        resolve(how);
      });
      const endStream = (how: StreamEnd): void => session.end(how);
      this.endStream = endStream;
      this.stream = session.stream;
      this.streamEndpoint = endpoint.address;
      session.start(this.createRequest(session.fromRevision), this.progressWaiters.length > 0);
    });
  }

  private createRequest(fromRevision: number): object {
    return {
      create_request: {
        ...keyFields(this.wire.key, this.wire.rangeEnd),
        start_revision: fromRevision,
        prev_kv: this.options.prevKv ?? false,
        progress_notify: this.options.progressNotify ?? false,
        filters: [...(this.options.noPut ? ['NOPUT'] : []), ...(this.options.noDelete ? ['NODELETE'] : [])],
        fragment: true,
      },
    };
  }

  // ---- what a stream session reports (called by StreamSession)

  /** @internal The server accepted the watch on a stream. */
  accepted(headerRevision: number, resumed: { endpoint: string; fromRevision: number } | undefined): void {
    this.cursor.created(headerRevision);
    if (resumed !== undefined) this.emit('resumed', resumed);
    this.readyResolve();
  }

  /** @internal An empty response: progress for this watch (`own`) or for the whole stream. */
  progressed(headerRevision: number, own: boolean): void {
    if (own) this.cursor.progressed(headerRevision);
    this.onProgress(headerRevision);
  }

  /** @internal Whole revisions arrived; returns whether any was new, and pauses the stream when the queue is full. */
  received(events: readonly WireEvent[], stream: WatchStreamCall): boolean {
    const fresh = this.deliver(events);
    if (this.queue.length >= this.config.watchBufferEventsMax && !this.paused) {
      this.paused = true;
      stream.pause();
    }
    return fresh;
  }

  /** @internal */
  get readingPaused(): boolean {
    return this.paused;
  }

  /** @internal */
  get settings(): { pool: EndpointPool; config: ResolvedClientOptions } {
    return { pool: this.pool, config: this.config };
  }

  /** @internal Why the server cancelled the watch, as a stream end. */
  refusal(res: WatchResponse): StreamEnd {
    if (num(res.compact_revision) > 0) {
      const at = num(res.compact_revision);
      return { kind: 'fatal', error: new CompactedError(`fulcrum client: the watch cannot resume from revision ${this.cursor.resumeRevision}: history was compacted up to ${at}`, at) };
    }
    return { kind: 'refused', reason: res.cancel_reason || 'no reason given' };
  }

  /** Events of whole revisions: drop what was delivered already, hand out the rest. */
  private deliver(wire: readonly WireEvent[]): boolean {
    const events = this.cursor.accept(wire.map((e) => this.toEvent(e)));
    const listening = this.listenerCount('event') > 0;
    for (const e of events) {
      if (listening) this.emit('event', e);
      else this.queue.push(e);
    }
    this.wakeIterator();
    return events.length > 0;
  }

  private toEvent(e: WireEvent): WatchEvent {
    const kv = toKeyValue(e.kv!, this.space);
    return { type: e.type === 'DELETE' ? 'delete' : 'put', kv, prevKv: toKeyValueOrUndefined(e.prev_kv, this.space), revision: kv.modRevision };
  }

  private onProgress(revision: number): void {
    for (const w of this.progressWaiters.splice(0)) w.resolve(revision);
    this.emit('progress', revision);
  }

  private resumeReading(): void {
    this.paused = false;
    this.stream?.resume();
  }

  private wakeIterator(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private finish(error: FulcrumClientError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    this.endStream?.({ kind: 'closed' });
    this.readyReject(error ?? new WatchCanceledError('fulcrum client: the watch was cancelled before the server accepted it'));
    for (const w of this.progressWaiters.splice(0)) w.reject(error ?? new WatchCanceledError('fulcrum client: the watch ended'));
    // Cancelled: nothing more is wanted. Failed: what arrived before the failure is still delivered, then the error.
    if (error === undefined) this.queue.length = 0;
    this.wakeIterator();
    if (error !== undefined && this.listenerCount('error') > 0) this.emit('error', error);
    this.emit('end');
    this.onClosed(this);
  }
}

/**
 * One gRPC watch stream on one member: creates the watch from the cursor's revision, joins fragments, feeds
 * whole revisions to the Watch, and watches the stream's health (the idle probe, the member being avoided).
 * It ends once, with how it ended; the Watch then decides where to go next.
 */
class StreamSession {
  readonly stream: WatchStreamCall;
  private delivered = false;
  private watchId: string | undefined;
  private fragments: WireEvent[] = [];
  private lastActivity = performance.now();
  private probeSentAt: number | undefined;
  private readonly idleTimer: NodeJS.Timeout;
  private ended = false;
  private readonly onAvoided = (e: Endpoint): void => {
    if (e === this.endpoint) this.end({ kind: 'retry', avoid: false, delivered: this.delivered });
  };

  constructor(
    private readonly watch: Watch,
    private readonly endpoint: Endpoint,
    readonly fromRevision: number,
    private readonly isResume: boolean,
    private readonly onEnd: (how: StreamEnd) => void,
  ) {
    this.stream = endpoint.services.watch.Watch(Rpc.streamMetadata()) as unknown as WatchStreamCall;
    const { config } = watch.settings;
    this.idleTimer = setInterval(() => this.probe(), Math.max(10, Math.min(config.watchIdleProbeMs, config.watchProbeTimeoutMs) / 2));
    this.idleTimer.unref();
  }

  start(createRequest: object, progressWanted: boolean): void {
    this.watch.settings.pool.on('avoided', this.onAvoided);
    this.stream.on('data', (res: WatchResponse) => this.onResponse(res));
    this.stream.on('error', (e: grpc.ServiceError) => this.end({ kind: 'retry', avoid: e.code !== grpc.status.CANCELLED, delivered: this.delivered }));
    this.stream.on('end', () => this.end({ kind: 'retry', avoid: true, delivered: this.delivered }));
    this.stream.write(createRequest);
    // A progress request made between streams was never sent: ask on this one.
    if (progressWanted) this.stream.write({ progress_request: {} });
  }

  end(how: StreamEnd): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.idleTimer);
    this.watch.settings.pool.off('avoided', this.onAvoided);
    this.stream.removeAllListeners();
    this.stream.on('error', () => undefined);
    this.stream.cancel();
    this.onEnd(how);
  }

  private onResponse(res: WatchResponse): void {
    this.lastActivity = performance.now();
    this.probeSentAt = undefined;
    const headerRevision = num(res.header?.revision ?? '0');
    if (res.canceled) return this.end(this.watch.refusal(res));
    if (res.created) {
      this.watchId = res.watch_id;
      this.watch.accepted(headerRevision, this.isResume ? { endpoint: this.endpoint.address, fromRevision: this.fromRevision } : undefined);
      return;
    }
    if (res.events.length === 0) {
      const own = res.watch_id === this.watchId;
      if (own || res.watch_id === STREAM_WIDE_WATCH_ID) this.watch.progressed(headerRevision, own);
      return;
    }
    this.fragments = this.fragments.concat(res.events);
    if (this.fragments.length > WATCH_FRAGMENT_EVENTS_MAX) {
      return this.end({ kind: 'fatal', error: new WatchCanceledError(`fulcrum client: one revision carried more than ${WATCH_FRAGMENT_EVENTS_MAX} events`) });
    }
    if (res.fragment) return;
    const events = this.fragments;
    this.fragments = [];
    if (this.watch.received(events, this.stream)) this.delivered = true;
  }

  /** A silent stream gets a progress request and its member a hasleader Status; no answer in time and it ends. */
  private probe(): void {
    const { pool, config } = this.watch.settings;
    const now = performance.now();
    if (this.probeSentAt !== undefined) {
      if (now - this.probeSentAt >= config.watchProbeTimeoutMs) this.end({ kind: 'retry', avoid: true, delivered: this.delivered });
      return;
    }
    // A paused stream is silent because the caller is not reading, not because the member is gone.
    if (now - this.lastActivity < config.watchIdleProbeMs || this.watch.readingPaused) return;
    this.probeSentAt = now;
    this.stream.write({ progress_request: {} });
    void pool.hasLeader(this.endpoint, config.watchProbeTimeoutMs).then((ok) => {
      if (!ok) this.end({ kind: 'retry', avoid: true, delivered: this.delivered });
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
