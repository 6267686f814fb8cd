// The handoff rules of one watcher, step by step, without a store: which groups it queues, drops or leaves to
// the next history pass. (The hub tests check the same end to end; here the racy interleavings are forced.)
import { describe, expect, it } from 'vitest';
import { keyRangeOf } from './key-range.js';
import { Watcher, type EventGroup, type WatchSpec } from './watcher.js';
import { enc } from './testdata/harness.js';

const SPEC: WatchSpec = { key: enc('k'), startRevision: 1, prevKv: false, noPut: false, noDelete: false, progressNotify: false };

function group(revision: number, events = 1): EventGroup {
  const kv = { key: enc('k'), value: enc(`v${revision}`), createRevision: 1, modRevision: revision, version: 1, lease: 0n };
  return { revision, events: Array.from({ length: events }, () => ({ type: 'PUT' as const, kv })), bytes: 10 * events };
}

function make(after: number, eventsMax = 100): { w: Watcher; overflows: number[]; ready: { n: number } } {
  const overflows: number[] = [];
  const ready = { n: 0 };
  const w = new Watcher(1, SPEC, keyRangeOf(SPEC.key, undefined), after, { onReady: () => ready.n++ }, { watcherEventsMax: eventsMax, watcherBytesMax: 1e9 }, {
    overflowed: (x) => overflows.push(x.lastQueuedRevision),
  });
  return { w, overflows, ready };
}

const revs = (gs: EventGroup[]): number[] => gs.map((g) => g.revision);

describe('Watcher handoff', () => {
  it('drops live groups at or below the history head (applied before the pass, published after it)', () => {
    const { w } = make(4);
    w.beginPass();
    // head = 9, but revisions 8 and 9 were applied and not yet published when the pass began.
    w.offerLive(group(8));
    w.offerLive(group(9));
    for (const r of [5, 7, 8, 9]) w.queueHistory(group(r));
    w.offerLive(group(10));
    expect(w.finishPass(9)).toBe(true);
    expect(w.synced).toBe(true);
    expect(revs(w.take(100, Infinity))).toEqual([5, 7, 8, 9, 10]);
    w.offerLive(group(10)); // published twice? never queued twice
    w.offerLive(group(11));
    expect(revs(w.take(100, Infinity))).toEqual([11]);
  });

  it('an overflowing live buffer means another pass, which starts right after the head', () => {
    const { w } = make(0, 3);
    w.beginPass();
    for (const r of [6, 7, 8, 9]) w.offerLive(group(r)); // 4 events > 3: the buffer is dropped
    w.queueHistory(group(5));
    expect(w.finishPass(5)).toBe(false);
    expect(w.synced).toBe(false);
    expect(w.lastQueuedRevision).toBe(5); // the next pass reads from 6
  });

  it('a full queue stops live queueing at a revision boundary and asks for a store read', () => {
    const { w, overflows } = make(0, 3);
    w.finishPass(0);
    w.offerLive(group(1, 2));
    w.offerLive(group(2, 2)); // would make 4 > 3
    w.offerLive(group(3, 1)); // not queued either: the watcher is catching up now
    expect(overflows).toEqual([1]);
    expect(w.synced).toBe(false);
    expect(revs(w.take(100, Infinity))).toEqual([1]);
  });

  it('take returns whole groups up to the limits, at least one', () => {
    const { w } = make(0);
    w.finishPass(0);
    w.offerLive(group(1, 5));
    w.offerLive(group(2, 1));
    w.offerLive(group(3, 1));
    expect(revs(w.take(2, Infinity))).toEqual([1]);
    expect(revs(w.take(2, Infinity))).toEqual([2, 3]);
    expect(w.hasPending).toBe(false);
  });

  it('a server cancel keeps what is queued for the consumer, then reports the reason', () => {
    const { w, ready } = make(0);
    w.finishPass(0);
    w.offerLive(group(1));
    const before = ready.n;
    w.close({ reason: 'gone', compactRevision: 7 });
    expect(ready.n).toBe(before + 1);
    expect(revs(w.take(10, Infinity))).toEqual([1]);
    expect(w.canceled).toEqual({ reason: 'gone', compactRevision: 7 });
    w.offerLive(group(2));
    expect(w.hasPending).toBe(false);
  });
});
