// The hub against a real single-voter member: the events each watcher receives must equal the store's history,
// filtered by its range, from its start revision — whatever the interleaving of writes, watcher starts and a
// consumer that reads slowly.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MvccEvent, RequestOp } from '../../storage/mvcc/index.js';
import { CANCEL_REASONS, WatchHub, type WatchHubOptions } from './hub.js';
import { keyRangeOf, rangeContains } from './key-range.js';
import type { CancelInfo, Watcher, WatchSpec } from './watcher.js';
import { compact, dec, del, enc, put, startMember, txn, type TestMember } from './testdata/harness.js';

let t: TestMember;
/** Every event ever applied, in order: the model the watchers are checked against. */
const log: MvccEvent[] = [];

beforeAll(async () => {
  t = await startMember();
  t.member.subscribeApplied((results) => {
    for (const r of results) log.push(...r.events);
  });
});
afterAll(async () => {
  await t.close();
});

/** A consumer that takes what the watcher queues, optionally slowly (a few events per turn, with delays). */
class Collector {
  readonly events: MvccEvent[] = [];
  readonly watcher!: Watcher;
  canceled: CancelInfo | undefined;
  paused = false;
  maxQueuedEvents = 0;
  private scheduled = false;

  constructor(
    hub: WatchHub,
    readonly spec: WatchSpec,
    private readonly pace: { takeEvents: number; delayMs: number } = { takeEvents: 1000, delayMs: 0 },
  ) {
    // onReady may come before watch() returns (a watcher that is synced or canceled at once), hence the defer.
    this.watcher = hub.watch(spec, { onReady: () => this.schedule() });
  }

  /** The first revision this watcher reports. */
  get start(): number {
    return this.spec.startRevision;
  }

  resume(): void {
    this.paused = false;
    this.schedule();
  }

  schedule(): void {
    if (this.watcher !== undefined) this.maxQueuedEvents = Math.max(this.maxQueuedEvents, this.watcher.queued.events);
    if (this.scheduled || this.paused) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      this.drain();
    };
    if (this.pace.delayMs > 0) setTimeout(run, this.pace.delayMs);
    else setImmediate(run);
  }

  private drain(): void {
    if (this.paused) return;
    for (const g of this.watcher.take(this.pace.takeEvents, Infinity)) this.events.push(...g.events);
    if (this.watcher.hasPending) this.schedule();
    else if (this.watcher.canceled !== undefined) this.canceled = this.watcher.canceled;
  }

  /** Synced with nothing queued, and the hub has published `revision`. */
  caughtUp(hub: WatchHub, revision: number): boolean {
    return (this.watcher.synced && !this.watcher.hasPending && hub.publishedRevision >= revision) || this.canceled !== undefined;
  }
}

async function until(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const show = (e: MvccEvent): string =>
  `${e.type} ${dec(e.kv.key)}@${e.kv.modRevision} v=${dec(e.kv.value)}` + (e.prevKv ? ` prev=${dec(e.prevKv.value)}@${e.prevKv.modRevision}` : '');

/** What a watcher must see: the log filtered by range, filters and start revision, prev kv only when asked. */
function expected(spec: WatchSpec, from: number): string[] {
  const range = keyRangeOf(spec.key, spec.rangeEnd);
  return log
    .filter((e) => e.kv.modRevision >= from && rangeContains(range, dec(e.kv.key)))
    .filter((e) => (e.type === 'PUT' ? !spec.noPut : !spec.noDelete))
    .map((e) => show(spec.prevKv ? e : { type: e.type, kv: e.kv }));
}

function spec(key: string, rangeEnd: string | undefined, startRevision: number, extra: Partial<WatchSpec> = {}): WatchSpec {
  return {
    key: enc(key),
    ...(rangeEnd === undefined ? {} : { rangeEnd: enc(rangeEnd) }),
    startRevision,
    prevKv: false,
    noPut: false,
    noDelete: false,
    progressNotify: false,
    ...extra,
  };
}

function withHub<T>(opts: Partial<WatchHubOptions>, fn: (hub: WatchHub) => Promise<T>): Promise<T> {
  const hub = new WatchHub(t.member, opts);
  hub.start();
  return fn(hub).finally(() => hub.stop());
}

describe('WatchHub', () => {
  it('live events for a key, a prefix and a range; history replay then live', async () => {
    await withHub({}, async (hub) => {
      const base = t.member.stateMachine.revision;
      await put(t.member, 'live/a', '1');
      const exact = new Collector(hub, spec('live/a', undefined, 0));
      const prefix = new Collector(hub, spec('live/', 'live0', 0, { prevKv: true }));
      const past = new Collector(hub, spec('live/', 'live0', base + 1, { prevKv: true }));
      await put(t.member, 'live/a', '2');
      await put(t.member, 'live/b', '1');
      await del(t.member, 'live/', 'live0');
      const head = t.member.stateMachine.revision;
      await until(() => [exact, prefix, past].every((c) => c.caughtUp(hub, head)), 'collectors');
      expect(exact.events.map(show)).toEqual(expected(exact.spec, base + 2));
      expect(prefix.events.map(show)).toEqual(expected(prefix.spec, base + 2));
      expect(past.events.map(show)).toEqual(expected(past.spec, base + 1));
      expect(past.events.map(show)[1]).toMatch(/^PUT live\/a@\d+ v=2 prev=1@/); // history prev kv
    });
  });

  it('a start revision below the compact revision is canceled with the compact revision', async () => {
    await withHub({}, async (hub) => {
      await put(t.member, 'cmp/a', '1');
      const r = await put(t.member, 'cmp/a', '2');
      await compact(t.member, r.revision);
      const c = new Collector(hub, spec('cmp/a', undefined, r.revision - 1));
      await until(() => c.canceled !== undefined, 'cancel');
      expect(c.canceled).toEqual({ reason: CANCEL_REASONS.compacted, compactRevision: r.revision });
      // At exactly the compact revision the history is still there.
      const ok = new Collector(hub, spec('cmp/a', undefined, r.revision));
      await until(() => ok.caughtUp(hub, r.revision), 'replay at compact revision');
      expect(ok.events.map(show)).toEqual([`PUT cmp/a@${r.revision} v=2`]);
    });
  });

  it('a paused consumer keeps memory bounded, then receives every event exactly once', async () => {
    const limits = { watcherEventsMax: 20, watcherBytesMax: 64 * 1024 };
    await withHub(limits, async (hub) => {
      const from = t.member.stateMachine.revision + 1;
      const c = new Collector(hub, spec('slow/', 'slow0', 0, { prevKv: true }));
      c.paused = true;
      for (let i = 0; i < 30; i++) await Promise.all(Array.from({ length: 10 }, (_, j) => put(t.member, `slow/${j}`, `${i}`)));
      expect(c.watcher.queued.events).toBeLessThanOrEqual(limits.watcherEventsMax);
      expect(c.maxQueuedEvents).toBeLessThanOrEqual(limits.watcherEventsMax);
      expect(c.watcher.synced).toBe(false); // it overflowed and fell back to the store
      c.resume();
      // Keep writing while it catches up: the handoff back to live must not lose or repeat anything.
      for (let i = 0; i < 20; i++) await put(t.member, `slow/${i % 3}`, `late${i}`);
      const head = t.member.stateMachine.revision;
      await until(() => c.caughtUp(hub, head), 'slow consumer');
      expect(c.maxQueuedEvents).toBeLessThanOrEqual(limits.watcherEventsMax + 1);
      expect(c.events.map(show)).toEqual(expected(c.spec, from));
      expect(c.events).toHaveLength(320);
    });
  });

  it('a slow watcher whose unread history is compacted meanwhile is canceled with the compact revision', async () => {
    await withHub({ watcherEventsMax: 5 }, async (hub) => {
      const from = t.member.stateMachine.revision + 1;
      const c = new Collector(hub, spec('slowcmp/', 'slowcmp0', 0));
      c.paused = true;
      let last = 0;
      for (let i = 0; i < 20; i++) last = (await put(t.member, `slowcmp/${i % 4}`, `${i}`)).revision;
      await compact(t.member, last);
      c.resume();
      await until(() => c.canceled !== undefined, 'cancel');
      expect(c.canceled).toEqual({ reason: CANCEL_REASONS.compacted, compactRevision: last });
      // Everything it did receive is the true history, in order, with no gap before the cancel.
      expect(c.events.map(show)).toEqual(expected(c.spec, from).slice(0, c.events.length));
      expect(c.events.length).toBeGreaterThanOrEqual(5);
    });
  });

  it("with overflowPolicy 'cancel' an overflowing watcher is canceled with a reason, never skipped", async () => {
    await withHub({ watcherEventsMax: 5, overflowPolicy: 'cancel' }, async (hub) => {
      const from = t.member.stateMachine.revision + 1;
      const c = new Collector(hub, spec('ovf/', 'ovf0', 0));
      c.paused = true;
      for (let i = 0; i < 10; i++) await put(t.member, `ovf/${i}`, 'x');
      c.resume();
      await until(() => c.canceled !== undefined, 'cancel');
      expect(c.canceled?.reason).toBe(CANCEL_REASONS.overflow);
      // What it did get is a prefix of the truth, in order.
      expect(c.events.map(show)).toEqual(expected(c.spec, from).slice(0, c.events.length));
    });
  });

  it('property: every watcher sees exactly the filtered history from its start revision', async () => {
    let run = 0;
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const key = fc.constantFrom(...keys);
    const op = fc.oneof(
      fc.record({ kind: fc.constant('put' as const), key, value: fc.string({ maxLength: 4 }) }),
      fc.record({ kind: fc.constant('del' as const), key, end: fc.option(key, { nil: undefined }) }),
      fc.record({ kind: fc.constant('txn' as const), keys: fc.uniqueArray(key, { minLength: 1, maxLength: 3 }), del: fc.boolean() }),
      fc.record({ kind: fc.constant('concurrent' as const), keys: fc.array(key, { minLength: 2, maxLength: 6 }) }),
      // A watcher that starts while a burst of writes is being applied: its history pass begins mid-apply.
      fc.record({ kind: fc.constant('watchDuringWrites' as const), keys: fc.array(key, { minLength: 4, maxLength: 12 }), ticks: fc.nat({ max: 6 }), back: fc.nat({ max: 10 }) }),
      fc.record({
        kind: fc.constant('watch' as const),
        shape: fc.constantFrom('key', 'prefix', 'range', 'all'),
        key,
        end: key,
        back: fc.integer({ min: -2, max: 25 }),
        prevKv: fc.boolean(),
        filter: fc.constantFrom('none', 'noPut', 'noDelete'),
        slow: fc.boolean(),
      }),
    );
    const hubOpts = fc.record({ watcherEventsMax: fc.constantFrom(2, 7, 10_000), watcherBytesMax: fc.constantFrom(600, 1 << 20) });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 30 }), hubOpts, async (ops, opts) => {
        const p = `p${run++}/`;
        await withHub(opts, async (hub) => {
          const watchers: Array<{ c: Collector; from: number }> = [];
          let i = 0;
          for (const o of ops) {
            i++;
            if (o.kind === 'put') await put(t.member, p + o.key, o.value);
            else if (o.kind === 'del') await del(t.member, p + o.key, o.end === undefined ? undefined : p + o.end);
            else if (o.kind === 'txn') await txn(t.member, { success: o.keys.map((k, j) => txnOp(p + k, o.del && j === 0, `t${i}`)) });
            else if (o.kind === 'concurrent') await Promise.all(o.keys.map((k, j) => put(t.member, p + k, `c${i}.${j}`)));
            else if (o.kind === 'watchDuringWrites') {
              const writes = o.keys.map((k, j) => put(t.member, p + k, `w${i}.${j}`));
              for (let n = 0; n < o.ticks; n++) await new Promise((r) => setImmediate(r));
              const w = { shape: 'all', key: 'a', end: 'a', back: o.back, prevKv: true, filter: 'none', slow: false };
              watchers.push(startWatcher(hub, p, w));
              await Promise.all(writes);
            }
            else watchers.push(startWatcher(hub, p, o));
          }
          const head = t.member.stateMachine.revision;
          await until(() => watchers.every(({ c }) => c.caughtUp(hub, head)), 'all watchers');
          for (const { c, from } of watchers) {
            expect(c.canceled).toBeUndefined();
            expect(c.events.map(show)).toEqual(expected(c.spec, from));
          }
        });
      }),
      { numRuns: 40 },
    );
  });
});

function txnOp(key: string, isDelete: boolean, value: string): RequestOp {
  return isDelete ? { requestDeleteRange: { key: enc(key) } } : { requestPut: { key: enc(key), value: enc(value) } };
}

interface WatchOp {
  shape: string;
  key: string;
  end: string;
  back: number;
  prevKv: boolean;
  filter: string;
  slow: boolean;
}

function startWatcher(hub: WatchHub, p: string, o: WatchOp): { c: Collector; from: number } {
  const cur = t.member.stateMachine.revision;
  // back < 0 starts in the future; 0..25 revisions back (0 means "from now": startRevision 0).
  // (Never below what earlier tests compacted: that case is tested on its own.)
  const start = o.back === 0 ? 0 : Math.max(1, t.member.stateMachine.mvcc.compactRevision + 1, cur - o.back + 1);
  const [lo, hi] = o.key <= o.end ? [o.key, o.end] : [o.end, o.key];
  const range: [string, string | undefined] =
    o.shape === 'key' ? [p + o.key, undefined] : o.shape === 'prefix' ? [p + o.key, p + o.key + '\u0000'] : o.shape === 'all' ? [p, p.slice(0, -1) + '0'] : [p + lo, p + hi + '\u0000'];
  const s = spec(range[0], range[1], start, { prevKv: o.prevKv, noPut: o.filter === 'noPut', noDelete: o.filter === 'noDelete' });
  const c = new Collector(hub, s, o.slow ? { takeEvents: 1, delayMs: 2 } : undefined);
  return { c, from: start === 0 ? c.watcher.lastQueuedRevision + 1 : start };
}
