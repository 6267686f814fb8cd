// The workload checkers on hand-made histories: each must accept a correct one and name what is wrong in a
// broken one (the process-level negative controls cover register, set and lock end to end; these cover the
// lease and watch checkers, whose faults a healthy server never produces).
import { describe, expect, it } from 'vitest';
import type { KV, WatchBatch } from '../harness/client.js';
import { checkClock, type Observation } from './clock.js';
import type { NemesisEvent } from '../history.js';
import { checkLeases, EXPIRY_BOUND_NS, expiryBoundNs, FAULT_RECOVERY_BOUND_NS, faultSpans, type LeaseTrack } from './lease.js';
import { checkWatch, type WatchState, type Watcher } from './watch.js';

const S = 1e9;

describe('lease checker', () => {
  /** A lease promised until `promisedUntilS` (and, at the latest, `expiresByS`), reads that found it gone, and the last that found it there. */
  const track = (goneAtS: number[], promisedUntilS: number, lastPresentS?: number, expiresByS = promisedUntilS + 0.1): LeaseTrack => ({
    id: '7',
    key: 'lease/0/0',
    promisedUntilNs: promisedUntilS * S,
    expiresByNs: expiresByS * S,
    lastPresentInvokeNs: lastPresentS === undefined ? undefined : lastPresentS * S,
    goneAtNs: goneAtS.map((g) => g * S),
    firstGoneNs: goneAtS[0] === undefined ? undefined : goneAtS[0] * S,
  });
  const fault = (fault: string, startS: number, stopS?: number): NemesisEvent[] => [
    { time: startS * S, phase: 'start', fault },
    ...(stopS === undefined ? [] : [{ time: stopS * S, phase: 'stop' as const, fault }]),
  ];

  it('accepts keys that go after the promise', () => {
    expect(checkLeases([track([10.5], 10), track([], 12)]).verdict).toBe('valid');
  });

  it('flags a key gone while its lease was still promised', () => {
    const r = checkLeases([track([9.2], 10)]);
    expect(r.verdict).toBe('invalid');
    expect(r.anomalies).toEqual([{ lease: '7', key: 'lease/0/0', goneAtMs: 9200, promisedUntilMs: 10000 }]);
  });

  it('flags a key still there past its expiry bound when no fault intervened, and judges only leases watched that long', () => {
    // Bound: expiresBy (10.1 s) + EXPIRY_BOUND_NS.
    const bound = 10.1 + EXPIRY_BOUND_NS / S;
    const r = checkLeases([track([], 10, bound + 0.3), track([], 10, bound - 0.3), track([14], 10, 13.9)]);
    expect(r.verdict).toBe('invalid');
    expect(r.anomalies).toHaveLength(1);
    const a = r.anomalies![0] as { lease: string; boundMs: number; stillThereAtMs: number };
    expect([a.lease, Math.round(a.boundMs), Math.round(a.stillThereAtMs)]).toEqual(['7', Math.round(bound * 1000), Math.round((bound + 0.3) * 1000)]);
    expect(r.summary).toContain('1 keys still there past their expiry bound (2 of 3 leases judged on that side; the nearest went 2100 ms before its bound)');
  });

  it('moves the bound past a fault that began before it, and past the faults that began before the moved bound', () => {
    const late = 10.1 + EXPIRY_BOUND_NS / S + 5;
    // A partition from 12 to 14 s, then a kill from 23 to 26 s (before 14 + recovery): bound 26 + recovery.
    const faults = [...fault('partition', 12, 14), ...fault('kill', 23, 26)];
    expect(expiryBoundNs(10.1 * S, faultSpans(faults))).toBe(26 * S + FAULT_RECOVERY_BOUND_NS);
    expect(checkLeases([track([], 10, late)], faults).verdict).toBe('valid');
    // A fault that began after the bound does not move it.
    expect(checkLeases([track([], 10, late)], fault('pause', 17, 20)).verdict).toBe('invalid');
    // A fault never healed: no bound at all.
    expect(expiryBoundNs(10.1 * S, faultSpans(fault('partition', 12)))).toBe(Infinity);
  });

  it('pairs each fault start with the next stop of the same fault, whatever else happens in between', () => {
    const events = [...fault('member', 1), ...fault('pause', 2, 3), { time: 4 * S, phase: 'stop' as const, fault: 'member' }, ...fault('member', 5, 6)];
    expect(faultSpans(events).map((f) => [f.fault, f.startNs / S, f.stopNs / S])).toEqual([
      ['member', 1, 4],
      ['pause', 2, 3],
      ['member', 5, 6],
    ]);
  });
});

function kv(key: string, value: string, rev: number): KV {
  return { key, value, modRevision: rev, createRevision: rev, version: 1, lease: '0', modHlc: '0' };
}
function batch(events: WatchBatch['events'], extra: Partial<WatchBatch> = {}): WatchBatch {
  return { created: false, canceled: false, compactRevision: 0, cancelReason: '', headerRevision: 0, events, ...extra };
}
function watcher(streams: Watcher['streams'], last: number): Watcher {
  return { streams, lastRevision: last, stop: true, cancel: undefined, done: undefined };
}
/** History: rev 2 put a=1; rev 3 put a=2 (prev 2:1) and b=1 in one txn; rev 4 delete a. */
const good = (): WatchBatch[] => [
  batch([{ type: 'put', kv: kv('w/a', '1', 2), prev: undefined }]),
  batch([
    { type: 'put', kv: kv('w/a', '2', 3), prev: kv('w/a', '1', 2) },
    { type: 'put', kv: kv('w/b', '1', 3), prev: undefined },
  ]),
  batch([{ type: 'delete', kv: kv('w/a', '', 4), prev: kv('w/a', '2', 3) }]),
];
const written = [
  { revision: 2, changes: [{ key: 'w/a', value: '1' }] },
  { revision: 3, changes: [{ key: 'w/a', value: '2' }, { key: 'w/b', value: '1' }] },
  { revision: 4, changes: [{ key: 'w/a', value: undefined }] },
];
function state(watchers: Watcher[]): WatchState {
  return { watchers, written, finalRevision: 4, caughtUp: true, maxCompaction: 0 };
}
const verdicts = (st: WatchState): Record<string, string> => Object.fromEntries(checkWatch(st).map((c) => [c.checker, c.verdict]));

describe('watch checker', () => {
  it('accepts two watchers that saw the same history, one of them resuming', () => {
    const [r2, r3, r4] = good();
    const st = state([
      watcher([{ start: 1, responses: good(), compactedAt: undefined }], 4),
      watcher([{ start: 1, responses: [r2!], compactedAt: undefined }, { start: 3, responses: [r3!, r4!], compactedAt: undefined }], 4),
    ]);
    expect(Object.values(verdicts(st)).every((v) => v === 'valid')).toBe(true);
  });

  it('catches a missed revision, a split revision, a duplicate, a wrong prev_kv and a disagreement', () => {
    const [r2, r3, r4] = good();
    const missed = state([watcher([{ start: 1, responses: [r2!, r4!], compactedAt: undefined }], 4)]);
    expect(verdicts(missed)['watch-complete']).toBe('invalid');
    const split = state([watcher([{ start: 1, responses: [r2!, batch([r3!.events[0]!]), batch([r3!.events[1]!]), r4!], compactedAt: undefined }], 4)]);
    expect(verdicts(split)['watch-atomic']).toBe('invalid');
    const dup = state([watcher([{ start: 1, responses: [r2!, r3!, r3!, r4!], compactedAt: undefined }], 4)]);
    expect(verdicts(dup)['watch-ordered']).toBe('invalid');
    const wrongPrev = batch([{ type: 'delete', kv: kv('w/a', '', 4), prev: kv('w/a', '1', 2) }]);
    const prev = state([watcher([{ start: 1, responses: [r2!, r3!, wrongPrev], compactedAt: undefined }], 4)]);
    expect(verdicts(prev)['watch-prevKv']).toBe('invalid');
    const other = batch([{ type: 'put', kv: kv('w/a', 'X', 2), prev: undefined }]);
    const disagree = state([watcher([{ start: 1, responses: good(), compactedAt: undefined }], 4), watcher([{ start: 1, responses: [other, r3!, r4!], compactedAt: undefined }], 4)]);
    expect(verdicts(disagree)['watch-agreed']).toBe('invalid');
  });

  it('across revisions no watcher saw, takes a prev_kv from the gap if it fits what is known, and flags one that does not', () => {
    // Every watcher resumed past a compaction at 6: nobody saw revisions 3-5, where the client wrote a=2 at 4.
    const before = batch([{ type: 'put', kv: kv('w/a', '1', 2), prev: undefined }]);
    const after = (prev: KV | undefined): WatchBatch => batch([{ type: 'put', kv: kv('w/a', '3', 6), prev }]);
    const gapWritten = [
      { revision: 2, changes: [{ key: 'w/a', value: '1' }] },
      { revision: 4, changes: [{ key: 'w/a', value: '2' }] },
      { revision: 5, changes: [{ key: 'w/b', value: '1' }] },
      { revision: 6, changes: [{ key: 'w/a', value: '3' }] },
    ];
    const run = (prev: KV | undefined, known = gapWritten): string => {
      const streams = [
        { start: 1, responses: [before], compactedAt: undefined },
        { start: 6, responses: [after(prev)], compactedAt: undefined },
      ];
      return verdicts({ watchers: [watcher(streams, 6)], written: known, finalRevision: 6, caughtUp: true, maxCompaction: 6 })['watch-prevKv']!;
    };
    expect(run(kv('w/a', '2', 4))).toBe('valid'); // the acknowledged write in the gap
    expect(run(kv('w/a', '1', 2))).toBe('invalid'); // skips the acknowledged write of a at 4
    expect(run(kv('w/a', '9', 3))).toBe('invalid'); // also skips the write at 4
    expect(run(kv('w/a', '9', 3), gapWritten.filter((w) => w.revision !== 4))).toBe('valid'); // nothing known after 2
    expect(run(undefined)).toBe('valid'); // a delete may hide in the gap
    expect(run(kv('w/a', 'X', 4))).toBe('invalid'); // 4 wrote a=2
    expect(run(kv('w/a', '1', 5))).toBe('invalid'); // 5 wrote only b
    expect(run(kv('w/a', '0', 1))).toBe('invalid'); // older than the version seen at 2
    // Without the gap (a second watcher saw 3-5, none of them touching a) the previous version must be the one at 2.
    const seen = watcher([{ start: 3, responses: [batch([{ type: 'put', kv: kv('w/b', '1', 5), prev: undefined }])], compactedAt: undefined }], 5);
    const covered = verdicts({ watchers: [watcher([{ start: 1, responses: [before, after(kv('w/a', '2', 4))], compactedAt: undefined }], 6), seen], written: [], finalRevision: 6, caughtUp: true, maxCompaction: 0 });
    expect(covered['watch-prevKv']).toBe('invalid');
  });

  it('excuses a delete at the compaction revision missing from a stream that starts there (etcd drops that tombstone), and nothing else', () => {
    const [r2, r3, r4] = good();
    const r5 = batch([{ type: 'put', kv: kv('w/b', '2', 5), prev: kv('w/b', '1', 3) }]);
    const written5 = [...written, { revision: 5, changes: [{ key: 'w/b', value: '2' }] }];
    const canceled = batch([], { canceled: true, compactRevision: 4 });
    // Watcher 1 saw everything. Watcher 0's second stream covers 4..5 without the delete at 4.
    const check = (first: Watcher['streams'][number], second: Watcher['streams'][number], maxCompaction: number): string =>
      verdicts({ watchers: [watcher([first, second], 5), watcher([{ start: 1, responses: [...good(), r5], compactedAt: undefined }], 5)], written: written5, finalRevision: 5, caughtUp: true, maxCompaction })['watch-complete']!;
    const toldCompacted = { start: 1, responses: [canceled], compactedAt: 4 };
    // Told "compacted at 4", it resumed at 4, where the only change is a delete: etcd has dropped that tombstone.
    expect(check(toldCompacted, { start: 4, responses: [r5], compactedAt: undefined }, 4)).toBe('valid');
    // Nothing was compacted: the delete at 4 was there to read.
    expect(check(toldCompacted, { start: 4, responses: [r5], compactedAt: undefined }, 0)).toBe('invalid');
    // A stream that started before the delete (at 2) and went on past it must have it, compaction or not.
    expect(check({ start: 1, responses: [r2!], compactedAt: undefined }, { start: 2, responses: [r3!, r5], compactedAt: undefined }, 4)).toBe('invalid');
    // A put at the compaction revision is kept: a stream starting at 3 must see it.
    expect(check({ start: 1, responses: [r2!], compactedAt: undefined }, { start: 3, responses: [r4!, r5], compactedAt: undefined }, 3)).toBe('invalid');
  });

  it('excuses a compacted gap, and flags a compaction cancel for a revision that was not compacted', () => {
    const [, r3, r4] = good();
    const canceled = batch([], { canceled: true, compactRevision: 3 });
    const ok = state([watcher([{ start: 1, responses: [canceled], compactedAt: 3 }, { start: 3, responses: [r3!, r4!], compactedAt: undefined }], 4)]);
    expect(Object.values(verdicts(ok)).every((v) => v === 'valid')).toBe(true);
    const wrong = state([watcher([{ start: 3, responses: [canceled], compactedAt: 3 }, { start: 3, responses: [r3!, r4!], compactedAt: undefined }], 4)]);
    expect(verdicts(wrong)['watch-compaction']).toBe('invalid');
  });
});

describe('clock checker', () => {
  const now = 1_800_000_000_000;
  const o = (revision: number, wallMs: number, logical = 0, offsetBoundMs = 0): Observation => ({ revision, hlc: (BigInt(wallMs) << 16n) | BigInt(logical), invokedMs: now, completedMs: now + 5, offsetBoundMs });
  const v = (obs: Observation[]): Record<string, string> => Object.fromEntries(checkClock(obs).map((c) => [c.checker, c.verdict]));

  it('accepts increasing HLCs near real time, logical counters included', () => {
    expect(v([o(2, now), o(3, now, 1), o(3, now, 1), o(4, now + 2)])).toEqual({ 'hlc-monotonic': 'valid', 'hlc-real-time': 'valid' });
  });

  it('flags a step backwards, a revision with two HLCs, and a value far from real time', () => {
    expect(v([o(2, now + 1), o(3, now)])['hlc-monotonic']).toBe('invalid');
    expect(v([o(2, now), o(2, now + 1)])['hlc-monotonic']).toBe('invalid');
    expect(v([o(2, now + 60_000)])['hlc-real-time']).toBe('invalid');
    // ... unless a clock was skewed that far: the bound grows with the largest offset injected.
    expect(v([o(2, now + 60_000, 0, 60_000)])['hlc-real-time']).toBe('valid');
  });

  it('ignores responses without a stamp (0: the member does not know that revision\'s HLC)', () => {
    expect(v([o(2, now), { revision: 3, hlc: 0n, invokedMs: now, completedMs: now, offsetBoundMs: 0 }, o(4, now + 1)])).toEqual({ 'hlc-monotonic': 'valid', 'hlc-real-time': 'valid' });
  });

  it('says unknown for a system without HLC values', () => {
    expect(checkClock([{ revision: 2, hlc: 0n, invokedMs: now, completedMs: now, offsetBoundMs: 0 }])[0]!.verdict).toBe('unknown');
  });
});
