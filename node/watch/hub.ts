// The watch hub: one per member. It listens to every applied command's events (in log order) and fans them out
// to watchers through an index of their key ranges; a watcher that starts in the past, or whose consumer fell
// behind, reads the store's history until it reaches the live stream (etcd's "unsynced" watchers).
//
// The handoff from history to live, worked example. A watcher wants revisions from 5; the store is at 9.
//
//   t0  beginPass: live groups are buffered from now on.   head := mvcc.revision = 9
//   t1  history 5..9 is read and queued (revision 10 is applied meanwhile: its group lands in the live buffer)
//   t2  finishPass(9): queuedRev = 9; buffered live groups above 9 (10) are queued; the watcher is synced.
//
// A revision is published to the hub only after it is applied to the store, so every revision above `head` is
// published after t0 and reaches the live buffer, while every revision at or below `head` is in the history:
// nothing is missed. Groups at or below queuedRev are dropped: nothing is repeated. A revision applied but not
// yet published at t0 (the apply loop publishes a whole Raft batch at once) is in the history and is dropped
// when it is published.
import type { Logger } from 'pino';
import type { Member } from '../member.js';
import type { StateMachine } from '../../storage/state-machine.js';
import type { CommandResult } from '../../storage/state-machine.js';
import { MvccError, type MvccEvent, type MvccStore } from '../../storage/mvcc/index.js';
import { KeyRangeIndex } from './interval-index.js';
import { isEmptyRange, keyRangeOf, keyString } from './key-range.js';
import { eventBytes, Watcher, type CancelInfo, type EventGroup, type WatcherListener, type WatchSpec } from './watcher.js';

export interface WatchHubOptions {
  /** Events one watcher may hold for a slow consumer before it falls back to reading the store. */
  readonly watcherEventsMax: number;
  /** Bytes (estimated) one watcher may hold likewise. */
  readonly watcherBytesMax: number;
  /** Interval of progress notifications for watchers that asked for them (etcd: 10 minutes). */
  readonly progressNotifyIntervalMs: number;
  /** A watcher whose queue overflows: read the rest from the store ('resync', as etcd) or cancel it. */
  readonly overflowPolicy: 'resync' | 'cancel';
  readonly logger?: Logger;
}

export const WATCH_HUB_DEFAULTS: WatchHubOptions = {
  watcherEventsMax: 10_000,
  watcherBytesMax: 16 * 1024 * 1024,
  progressNotifyIntervalMs: 10 * 60 * 1000,
  overflowPolicy: 'resync',
};

export const CANCEL_REASONS = {
  compacted: 'mvcc: required revision has been compacted',
  overflow: 'fulcrum: watcher fell too far behind (slow consumer)',
  stopped: 'fulcrum: watch hub stopped',
  failed: 'fulcrum: watch failed while reading history',
} as const;

export class WatchError extends Error {
  constructor(
    readonly code: 'INVALID_ARGUMENT' | 'STOPPED',
    message: string,
  ) {
    super(message);
    this.name = 'WatchError';
  }
}

export class WatchHub {
  readonly options: WatchHubOptions;
  private readonly index = new KeyRangeIndex<Watcher>();
  private readonly watchers = new Set<Watcher>();
  private nextId = 1;
  private published = 0;
  private sm: StateMachine | undefined;
  private unsubscribe: (() => void) | undefined;
  private progressTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly member: Member,
    options: Partial<WatchHubOptions> = {},
  ) {
    this.options = Object.freeze({ ...WATCH_HUB_DEFAULTS, ...options });
    if (!(this.options.watcherEventsMax >= 1 && this.options.watcherBytesMax >= 1)) throw new WatchError('INVALID_ARGUMENT', 'watch hub limits must be positive');
  }

  start(): void {
    if (this.unsubscribe !== undefined) return;
    this.sm = this.member.stateMachine;
    this.published = this.sm.revision;
    this.unsubscribe = this.member.subscribeApplied((results) => this.onApplied(results));
    this.progressTimer = setInterval(() => this.notifyProgress(), this.options.progressNotifyIntervalMs);
    this.progressTimer.unref();
  }

  stop(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    clearInterval(this.progressTimer);
    for (const w of [...this.watchers]) this.closeWatcher(w, { reason: CANCEL_REASONS.stopped, compactRevision: 0 });
  }

  /** The last revision whose events every synced watcher has been offered. */
  get publishedRevision(): number {
    return this.published;
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /** Events and estimated bytes queued across all watchers, and how many are synced (for metrics and tests). */
  stats(): { watchers: number; synced: number; queuedEvents: number; queuedBytes: number } {
    let synced = 0;
    let queuedEvents = 0;
    let queuedBytes = 0;
    for (const w of this.watchers) {
      if (w.synced) synced++;
      queuedEvents += w.queued.events;
      queuedBytes += w.queued.bytes;
    }
    return { watchers: this.watchers.size, synced, queuedEvents, queuedBytes };
  }

  /**
   * Register a watcher. It starts synced when its start revision is not in the past, else it replays history
   * first. A start revision below the compact revision gives a watcher that is already canceled (its consumer
   * sees `canceled.compactRevision`).
   */
  watch(spec: WatchSpec, listener: WatcherListener): Watcher {
    if (this.unsubscribe === undefined) throw new WatchError('STOPPED', 'fulcrum: watch hub is not running');
    const range = keyRangeOf(spec.key, spec.rangeEnd);
    if (isEmptyRange(range)) throw new WatchError('INVALID_ARGUMENT', 'mvcc: watcher range is empty');
    if (spec.startRevision < 0) throw new WatchError('INVALID_ARGUMENT', 'fulcrum: negative start revision');
    const mvcc = this.member.stateMachine.mvcc;
    const after = spec.startRevision === 0 ? mvcc.revision : spec.startRevision - 1;
    const w = new Watcher(this.nextId++, spec, range, after, listener, this.options, { overflowed: (x) => this.overflowed(x) });
    this.watchers.add(w);
    this.index.add(w, range);
    if (spec.startRevision > 0 && spec.startRevision < mvcc.compactRevision) {
      this.closeWatcher(w, { reason: CANCEL_REASONS.compacted, compactRevision: mvcc.compactRevision });
    } else if (after >= mvcc.revision) {
      w.finishPass(after); // nothing to replay: synced at once
    } else {
      this.runCatchUp(w);
    }
    return w;
  }

  /** The consumer is done with it (client cancel, stream closed). */
  cancel(w: Watcher): void {
    this.closeWatcher(w, undefined);
  }

  private closeWatcher(w: Watcher, info: CancelInfo | undefined): void {
    if (!this.watchers.delete(w)) return;
    this.index.remove(w);
    w.close(info);
  }

  // ---- live path

  private onApplied(results: readonly CommandResult[]): void {
    this.checkStateMachine();
    // Matching an event formats its key for the watcher index; with no watchers at all (every follower of a
    // cluster whose clients watch elsewhere) that was a third of the apply path's cost, for nothing.
    const anyone = this.watchers.size > 0;
    for (const r of results) {
      if (anyone && r.events.length > 0) this.dispatch(r.events);
      this.published = Math.max(this.published, r.revision);
    }
  }

  /** One command's events (one revision): each watcher gets its filtered group. */
  private dispatch(events: readonly MvccEvent[]): void {
    if (events.length === 1) return this.dispatchOne(events[0]!);
    const revision = events[0]!.kv.modRevision;
    const groups = new Map<Watcher, EventGroup>();
    for (const ev of events) {
      this.index.forEachMatch(keyString(ev.kv.key), (w) => {
        if (!w.accepts(ev)) return;
        const shaped = w.shape(ev);
        let g = groups.get(w);
        if (g === undefined) groups.set(w, (g = { revision, events: [], bytes: 0 }));
        g.events.push(shaped);
        g.bytes += eventBytes(shaped);
      });
    }
    for (const [w, g] of groups) w.offerLive(g);
  }

  /**
   * A revision of one event (a put, a delete of one key): every watcher that takes it gets the same group, one
   * with the prev kv and one without, instead of a group, an array and a map entry each. Watchers never modify
   * a group they were offered. Offered after the index walk, as dispatch does: an offer can close a watcher
   * (overflow with the 'cancel' policy), which removes it from the index.
   */
  private dispatchOne(ev: MvccEvent): void {
    const takers: Watcher[] = [];
    this.index.forEachMatch(keyString(ev.kv.key), (w) => {
      if (w.accepts(ev)) takers.push(w);
    });
    let asIs: EventGroup | undefined;
    let stripped: EventGroup | undefined;
    for (const w of takers) {
      const shaped = w.shape(ev);
      w.offerLive(shaped === ev ? (asIs ??= groupOf(ev)) : (stripped ??= groupOf(shaped)));
    }
  }

  /**
   * A follower that installs a Raft snapshot gets a new state machine, and the revisions the snapshot covers are
   * never published as events. Every synced watcher goes back to reading the (new) store after what it has.
   */
  private checkStateMachine(): void {
    const current = this.member.stateMachine;
    if (current === this.sm) return;
    this.sm = current;
    for (const w of this.watchers) w.resync();
  }

  private overflowed(w: Watcher): void {
    if (this.options.overflowPolicy === 'cancel') {
      this.closeWatcher(w, { reason: CANCEL_REASONS.overflow, compactRevision: 0 });
      return;
    }
    this.runCatchUp(w);
  }

  private notifyProgress(): void {
    for (const w of this.watchers) w.notifyProgress(this.published);
  }

  // ---- history path

  private runCatchUp(w: Watcher): void {
    void this.catchUp(w).catch((e: unknown) => {
      this.options.logger?.warn({ component: 'watch', err: e, watcher: w.id }, 'watch catch-up failed');
      this.closeWatcher(w, { reason: CANCEL_REASONS.failed, compactRevision: 0 });
    });
  }

  private async catchUp(w: Watcher): Promise<void> {
    while (!w.closed && !w.synced) {
      await w.waitForRoom();
      if (w.closed) return;
      const mvcc = this.member.stateMachine.mvcc;
      w.beginPass();
      const head = mvcc.revision;
      const outcome = head > w.lastQueuedRevision ? await this.replay(w, mvcc, head) : 'done';
      if (outcome === 'ended') return;
      if (outcome === 'done') w.finishPass(head);
    }
  }

  /**
   * Queue the watcher's history in (lastQueuedRevision, head]. 'partial' when its queue filled up first: the pass
   * stops at a revision boundary instead of waiting, so a stalled consumer never pins a store iterator (and the
   * LevelDB snapshot under it); the next pass resumes after the last queued revision. 'ended' when the watcher
   * ended (compacted, closed).
   */
  private async replay(w: Watcher, mvcc: MvccStore, head: number): Promise<'done' | 'partial' | 'ended'> {
    const from = w.lastQueuedRevision + 1;
    if (from < mvcc.compactRevision) return this.compacted(w, mvcc);
    let open: EventGroup | undefined;
    try {
      for await (const batch of mvcc.events(from, { key: w.spec.key, rangeEnd: w.spec.rangeEnd })) {
        for (const ev of batch) {
          const revision = ev.kv.modRevision;
          // Revisions after head arrive through the live buffer (see the worked example above).
          if (revision > head) continue;
          if (open !== undefined && open.revision !== revision) {
            if (w.closed) return 'ended';
            if (!w.hasRoom) return 'partial';
            w.queueHistory(open);
            open = undefined;
          }
          if (!w.accepts(ev)) continue;
          const shaped = await this.withHistoryPrevKv(w, mvcc, ev);
          open ??= { revision, events: [], bytes: 0 };
          open.events.push(shaped);
          open.bytes += eventBytes(shaped);
        }
      }
    } catch (e) {
      if (e instanceof MvccError && e.code === 'COMPACTED') return this.compacted(w, mvcc);
      throw e;
    }
    if (open === undefined) return w.closed ? 'ended' : 'done';
    // The last group is complete (the history ends at head); it may exceed the limits by itself.
    await w.waitForRoom();
    if (w.closed) return 'ended';
    w.queueHistory(open);
    return 'done';
  }

  private compacted(w: Watcher, mvcc: MvccStore): 'ended' {
    this.closeWatcher(w, { reason: CANCEL_REASONS.compacted, compactRevision: mvcc.compactRevision });
    return 'ended';
  }

  /**
   * History carries no prev kv: read the key as of the revision before the event. As etcd does, leave it out
   * when that revision is compacted (or the key did not exist then).
   */
  private async withHistoryPrevKv(w: Watcher, mvcc: MvccStore, ev: MvccEvent): Promise<MvccEvent> {
    if (!w.spec.prevKv) return ev;
    try {
      const r = await mvcc.range({ key: ev.kv.key, revision: ev.kv.modRevision - 1 });
      const prevKv = r.kvs[0];
      return prevKv === undefined ? ev : { ...ev, prevKv };
    } catch (e) {
      if (e instanceof MvccError && e.code === 'COMPACTED') return ev;
      throw e;
    }
  }
}

function groupOf(ev: MvccEvent): EventGroup {
  return { revision: ev.kv.modRevision, events: [ev], bytes: eventBytes(ev) };
}
