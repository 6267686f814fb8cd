// One watcher's state inside the hub: where it is in the history, and the bounded queue of events waiting for
// its consumer. The consumer (a gRPC stream) pulls with take() when it can write, so a slow consumer leaves
// events here, never in an unbounded socket buffer.
//
// States:
//
//   catchingUp --(history read up to H, live buffer fits)--> synced --(queue full)--> catchingUp
//        \                                                      /
//         `------------------> closed (canceled) <-------------'
//
// `queuedRev` is the invariant that makes the handoffs exact: every event of this watcher at or below it is in
// the queue or already taken, and none above it is. A live group is accepted only above it (no duplicate), and a
// history read always starts right after it (no gap).
import type { MvccEvent } from '../../storage/mvcc/index.js';
import type { KeyRange } from './key-range.js';

export interface WatchSpec {
  readonly key: Uint8Array;
  /** etcd's range_end: empty for one key, [0] for every key >= key, else the exclusive end. */
  readonly rangeEnd?: Uint8Array;
  /** First revision to report; 0 means the next revision after the current one. */
  readonly startRevision: number;
  readonly prevKv: boolean;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly progressNotify: boolean;
}

/** Events of one revision for one watcher, after its filters. */
export interface EventGroup {
  readonly revision: number;
  readonly events: MvccEvent[];
  bytes: number;
}

export interface CancelInfo {
  readonly reason: string;
  /** The compact revision when the watcher was canceled because its history is gone; 0 otherwise. */
  readonly compactRevision: number;
}

export interface WatcherListener {
  /**
   * Something to look at: events were queued, the watcher became synced, or it was canceled. Called
   * synchronously from the apply path, so it must be cheap (schedule work, do not do it here). It may also be
   * called before WatchHub.watch() returns (a watcher that is synced, or canceled, at once).
   */
  onReady(): void;
  /** A periodic progress notification (only for watchers created with progressNotify, only when synced and idle). */
  onProgress?(revision: number): void;
}

export interface WatcherLimits {
  readonly watcherEventsMax: number;
  readonly watcherBytesMax: number;
}

/** What the hub does for a watcher whose live queue overflowed. */
export interface OverflowHandler {
  overflowed(w: Watcher): void;
}

type State = 'catchingUp' | 'synced' | 'closed';

/** Rough wire size of an event, for the byte limits (key, value, prev kv and per-field overhead). */
export function eventBytes(ev: MvccEvent): number {
  const kvBytes = (kv: MvccEvent['kv']): number => kv.key.byteLength + kv.value.byteLength + KV_OVERHEAD_BYTES;
  return kvBytes(ev.kv) + (ev.prevKv === undefined ? 0 : kvBytes(ev.prevKv)) + EVENT_OVERHEAD_BYTES;
}
const KV_OVERHEAD_BYTES = 48;
const EVENT_OVERHEAD_BYTES = 8;

export class Watcher {
  private state: State = 'catchingUp';
  private queuedRev: number;
  private readonly pending: EventGroup[] = [];
  private pendingEvents = 0;
  private pendingBytes = 0;
  // Live groups that arrive during a history pass (bounded by the same limits; overflow means another pass).
  private liveBuf: EventGroup[] = [];
  private liveEvents = 0;
  private liveBytes = 0;
  private liveOverflow = false;
  private roomWaiters: Array<() => void> = [];
  private cancelInfo: CancelInfo | undefined;

  constructor(
    readonly id: number,
    readonly spec: WatchSpec,
    readonly range: KeyRange,
    /** The revision before the first one to report. */
    afterRevision: number,
    private readonly listener: WatcherListener,
    private readonly limits: WatcherLimits,
    private readonly overflow: OverflowHandler,
  ) {
    this.queuedRev = afterRevision;
  }

  // ---- consumer side

  get synced(): boolean {
    return this.state === 'synced';
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  /** Why it was canceled by the server (compaction, overflow, shutdown), once it was. */
  get canceled(): CancelInfo | undefined {
    return this.cancelInfo;
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /** Events and estimated bytes queued for the consumer (bounded by the hub's watcher limits plus one group). */
  get queued(): { readonly events: number; readonly bytes: number } {
    return { events: this.pendingEvents, bytes: this.pendingBytes };
  }

  /** Every event of this watcher at or below this revision is queued or taken. */
  get lastQueuedRevision(): number {
    return this.queuedRev;
  }

  /**
   * Whole revision groups, oldest first, up to the limits (at least one group when any is queued, however large:
   * a revision is never split here).
   */
  take(eventsMax: number, bytesMax: number): EventGroup[] {
    const out: EventGroup[] = [];
    let events = 0;
    let bytes = 0;
    while (this.pending.length > 0) {
      const g = this.pending[0]!;
      if (out.length > 0 && (events + g.events.length > eventsMax || bytes + g.bytes > bytesMax)) break;
      this.pending.shift();
      out.push(g);
      events += g.events.length;
      bytes += g.bytes;
    }
    this.pendingEvents -= events;
    this.pendingBytes -= bytes;
    if (this.hasRoom) this.wakeRoomWaiters();
    return out;
  }

  // ---- hub side

  /** Whether this watcher wants the event at all (its filters). */
  accepts(ev: MvccEvent): boolean {
    return ev.type === 'PUT' ? !this.spec.noPut : !this.spec.noDelete;
  }

  /** The event as this watcher reports it: without prev kv unless asked for. */
  shape(ev: MvccEvent): MvccEvent {
    if (this.spec.prevKv || ev.prevKv === undefined) return ev;
    return withoutPrevKv(ev);
  }

  /** A live group from the apply path. */
  offerLive(g: EventGroup): void {
    if (this.state === 'closed' || g.revision <= this.queuedRev) return;
    if (this.state === 'catchingUp') return this.bufferLive(g);
    if (this.fits(g.events.length, g.bytes)) return this.enqueue(g);
    // The consumer is behind: stop queueing and let the hub read the rest from the store when there is room.
    this.state = 'catchingUp';
    this.overflow.overflowed(this);
  }

  private bufferLive(g: EventGroup): void {
    if (this.liveOverflow) return;
    if (this.liveEvents + g.events.length > this.limits.watcherEventsMax || this.liveBytes + g.bytes > this.limits.watcherBytesMax) {
      this.liveOverflow = true;
      this.liveBuf = [];
      return;
    }
    this.liveBuf.push(g);
    this.liveEvents += g.events.length;
    this.liveBytes += g.bytes;
  }

  /** A history pass starts: live groups from now on are kept, earlier ones are covered by the pass. */
  beginPass(): void {
    this.liveBuf = [];
    this.liveEvents = 0;
    this.liveBytes = 0;
    this.liveOverflow = false;
  }

  /** A group read from history (the hub waited for room first). */
  queueHistory(g: EventGroup): void {
    if (this.state === 'closed' || g.revision <= this.queuedRev) return;
    this.enqueue(g);
  }

  /**
   * The pass has read the history through `head`. Hand off to live delivery if every live group since the pass
   * began is still buffered and fits; otherwise another pass reads on from `head`.
   */
  finishPass(head: number): boolean {
    if (this.state !== 'catchingUp') return false;
    this.queuedRev = Math.max(this.queuedRev, head);
    if (this.liveOverflow) return false;
    const live = this.liveBuf.filter((g) => g.revision > this.queuedRev);
    const events = live.reduce((n, g) => n + g.events.length, 0);
    const bytes = live.reduce((n, g) => n + g.bytes, 0);
    if (!this.fits(events, bytes)) return false;
    this.beginPass();
    for (const g of live) this.enqueue(g);
    this.state = 'synced';
    this.listener.onReady();
    return true;
  }

  /** Resume reading from the store after queuedRev (the state machine was replaced under us). */
  resync(): void {
    if (this.state !== 'synced') return;
    this.state = 'catchingUp';
    this.overflow.overflowed(this);
  }

  /** Resolves when the queue is below its limits (or the watcher is closed). */
  waitForRoom(): Promise<void> {
    if (this.hasRoom || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Server-side cancel: the consumer still takes what is queued, then sees `canceled`. */
  close(info: CancelInfo | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.cancelInfo = info;
    this.liveBuf = [];
    this.wakeRoomWaiters();
    if (info !== undefined) this.listener.onReady();
  }

  notifyProgress(revision: number): void {
    if (this.spec.progressNotify && this.state === 'synced' && this.pending.length === 0) {
      this.listener.onProgress?.(Math.max(revision, this.queuedRev));
    }
  }

  private enqueue(g: EventGroup): void {
    const wasEmpty = this.pending.length === 0;
    this.pending.push(g);
    this.pendingEvents += g.events.length;
    this.pendingBytes += g.bytes;
    this.queuedRev = g.revision;
    if (wasEmpty) this.listener.onReady();
  }

  private fits(events: number, bytes: number): boolean {
    return this.pendingEvents + events <= this.limits.watcherEventsMax && this.pendingBytes + bytes <= this.limits.watcherBytesMax;
  }

  /** The queue is below its limits: one more group may be queued. */
  get hasRoom(): boolean {
    return this.pendingEvents < this.limits.watcherEventsMax && this.pendingBytes < this.limits.watcherBytesMax;
  }

  private wakeRoomWaiters(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w();
  }
}

/**
 * One stripped copy per event, shared by every watcher that did not ask for prev kv: responses are encoded once
 * per event object (node/api/watch-wire.ts), so watchers must share the objects, not make their own.
 */
const stripped = new WeakMap<MvccEvent, MvccEvent>();

function withoutPrevKv(ev: MvccEvent): MvccEvent {
  let s = stripped.get(ev);
  if (s === undefined) stripped.set(ev, (s = { type: ev.type, kv: ev.kv }));
  return s;
}
