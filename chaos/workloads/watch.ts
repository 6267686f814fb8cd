// watch: writers change keys under w/ (puts, deletes, two-key transactions: one revision each) while the store
// is compacted now and then; watchers (one from revision 1, others from later revisions) follow the prefix with
// prev_kv, reconnecting through faults from the revision after the last one they saw.
//
// Checked against the committed history (every acknowledged write, and what all watchers agree on):
//   ordered      revisions strictly increase across a watcher's responses; no (revision, key) twice
//   atomic       a revision's events arrive in one response
//   agreed       every watcher that saw a revision saw the same events
//   complete     a watcher saw every revision in the range it covered (compacted gaps excused), and every
//                acknowledged write inside some watcher's range was seen, with its key and value
//   prev_kv      an event's prev_kv is the key's previous event (revision and value)
//   compaction   a watch canceled as compacted asked for a revision below the compaction, and got no events there
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChaosClient, type WatchBatch } from '../harness/client.js';
import { sleep } from '../harness/cluster.js';
import { ANOMALIES_KEPT_MAX, backoff, clientFor, runWorkers, Worker, type CheckOutcome, type Workload, type WorkloadContext } from './types.js';

const PREFIX = 'w/';
const KEYS = 6;
const WATCHERS = 3;
/** Revisions kept behind the head when compacting: watchers that fall further behind see a compaction. */
const COMPACT_KEEP = 20;
/** Chance that a reconnecting watcher asks for all history again instead of resuming. */
const REWIND_PROBABILITY = 0.3;
/** A stream's life when no fault ends it first, ms. */
const STREAM_LIFETIME_MS = [3_000, 8_000] as const;
const COMPACT_EVERY_MS = 3_000;
/** How long the final phase waits for watchers to reach the last revision. */
const CATCH_UP_MS = 30_000;

export interface Stream {
  readonly start: number;
  readonly responses: WatchBatch[];
  compactedAt: number | undefined;
}

export interface Watcher {
  readonly streams: Stream[];
  lastRevision: number;
  stop: boolean;
  cancel: (() => void) | undefined;
  done: Promise<void> | undefined;
}

export interface Written {
  readonly revision: number;
  readonly changes: ReadonlyArray<{ key: string; value: string | undefined }>;
}

export interface WatchState {
  readonly watchers: Watcher[];
  readonly written: Written[];
  finalRevision: number;
  caughtUp: boolean;
  /** Highest compaction asked for (acknowledged or not). */
  maxCompaction: number;
}

const states = new WeakMap<WorkloadContext, WatchState>();

export const watch: Workload = {
  name: 'watch',
  async run(ctx) {
    const st: WatchState = { watchers: [], written: [], finalRevision: 0, caughtUp: false, maxCompaction: 0 };
    states.set(ctx, st);
    for (let i = 0; i < WATCHERS; i++) {
      const w: Watcher = { streams: [], lastRevision: 0, stop: false, cancel: undefined, done: undefined };
      st.watchers.push(w);
      // Watcher 0 starts at revision 1 (all of history, until compaction says otherwise); the others later.
      w.done = follow(ctx, w, i, i === 0 ? 1 : 0, st);
    }
    let n = 0;
    await Promise.all([
      runWorkers(Math.min(ctx.options.clients, 3), async (i) => {
        const wk = new Worker(ctx, clientFor(ctx, i));
        while (Date.now() < ctx.until) {
          const ok = await writeOnce(ctx, wk, n++, st);
          if (!ok) await backoff(50 + ctx.random() * 100);
        }
        wk.client.close();
      }),
      compactor(ctx, st),
    ]);
  },
  async final(ctx) {
    const st = states.get(ctx)!;
    const c = new ChaosClient(ctx.cluster.directEndpoint(0), 5_000);
    for (let i = 0; i < 20 && st.finalRevision === 0; i++) {
      const ep = new ChaosClient(ctx.cluster.directEndpoint(i % ctx.cluster.options.size), 5_000);
      st.finalRevision = await ep.put(`${PREFIX}final`, 'end').then((h) => h.revision, () => 0);
      ep.close();
      if (st.finalRevision === 0) await sleep(500);
    }
    c.close();
    if (st.finalRevision > 0) st.written.push({ revision: st.finalRevision, changes: [{ key: `${PREFIX}final`, value: 'end' }] });
    const deadline = Date.now() + CATCH_UP_MS;
    while (Date.now() < deadline && st.watchers.some((w) => w.lastRevision < st.finalRevision)) await sleep(200);
    st.caughtUp = st.finalRevision > 0 && st.watchers.every((w) => w.lastRevision >= st.finalRevision);
    for (const w of st.watchers) {
      w.stop = true;
      w.cancel?.();
    }
    await Promise.all(st.watchers.map((w) => w.done));
    // Every stream and what it received, for reading a violation: one line per stream.
    const lines = st.watchers.flatMap((w, wi) =>
      w.streams.map((s) => JSON.stringify({ watcher: wi, start: s.start, compactedAt: s.compactedAt, responses: s.responses.map((r) => ({ ...r, events: r.events.map((e) => `${e.kv.modRevision} ${e.type} ${e.kv.key}=${e.kv.value} prev=${e.prev ? `${e.prev.modRevision}:${e.prev.value}` : '-'}`) })) })),
    );
    writeFileSync(join(ctx.recorder.dir, 'watch.jsonl'), `${lines.join('\n')}\n`);
  },
  async check(ctx) {
    const st = states.get(ctx);
    if (st === undefined) return [{ checker: 'watch', verdict: 'unknown', summary: 'the workload did not run' }];
    return checkWatch(st);
  },
};

async function writeOnce(ctx: WorkloadContext, w: Worker, n: number, st: WatchState): Promise<boolean> {
  const key = `${PREFIX}${Math.floor(ctx.random() * KEYS)}`;
  const dice = ctx.random();
  if (dice < 0.15) {
    const r = await w.op('wdelete', key, null, false, () => w.client.delete(key), (d) => [d.header.revision, d.deleted]);
    if (r.ok && r.result.deleted > 0) st.written.push({ revision: r.result.header.revision, changes: [{ key, value: undefined }] });
    return r.ok;
  }
  if (dice < 0.35) {
    const other = `${PREFIX}${(Number(key.slice(PREFIX.length)) + 1) % KEYS}`;
    const pairs: Array<[string, string]> = [[key, `t${n}a`], [other, `t${n}b`]];
    const r = await w.op('wtxn', key, pairs, false, () => w.client.putAll(pairs), (h) => h.revision);
    if (r.ok) st.written.push({ revision: r.result.revision, changes: pairs.map(([k, v]) => ({ key: k, value: v })) });
    return r.ok;
  }
  const value = `v${n}`;
  const r = await w.op('wput', key, value, false, () => w.client.put(key, value), (h) => h.revision);
  if (r.ok) st.written.push({ revision: r.result.revision, changes: [{ key, value }] });
  return r.ok;
}

async function compactor(ctx: WorkloadContext, st: WatchState): Promise<void> {
  const c = clientFor(ctx, 2);
  while (Date.now() < ctx.until) {
    await sleep(COMPACT_EVERY_MS);
    const head = Math.max(0, ...st.written.map((x) => x.revision));
    if (head - COMPACT_KEEP < 2) continue;
    const rev = head - COMPACT_KEEP;
    st.maxCompaction = Math.max(st.maxCompaction, rev);
    const w = new Worker(ctx, c);
    await w.op('compact', undefined, rev, false, () => c.compact(rev), () => rev);
  }
  c.close();
}

/** One watcher's life: streams one after another, each resuming after the last revision seen. */
async function follow(ctx: WorkloadContext, w: Watcher, index: number, firstStart: number, st: WatchState): Promise<void> {
  let start = firstStart;
  // Later watchers join once there is history behind them.
  if (firstStart === 0) await sleep(2_000 + index * 2_000);
  for (let attempt = 0; !w.stop; attempt++) {
    if (start === 0) {
      // A watcher that starts "now": from the newest revision anyone has acknowledged (or 1 if none yet).
      start = Math.max(1, ...st.written.map((x) => x.revision));
    }
    const client = new ChaosClient(ctx.cluster.clientEndpoint((index + attempt) % ctx.cluster.options.size), 5_000);
    const s: Stream = { start, responses: [], compactedAt: undefined };
    w.streams.push(s);
    await new Promise<void>((resolve) => {
      w.cancel = client.watch(
        PREFIX,
        start,
        (r) => {
          s.responses.push(r);
          if (r.compactRevision > 0 && r.canceled) s.compactedAt = r.compactRevision;
          for (const e of r.events) w.lastRevision = Math.max(w.lastRevision, e.kv.modRevision);
        },
        (why) => {
          clearTimeout(lifetime);
          ctx.log(`watcher ${index}: stream from ${start} ended: ${why}`);
          resolve();
        },
      );
      // Streams also end on their own, so resuming (and rewinding into compacted history) happens without faults.
      const lifetime = setTimeout(() => w.cancel?.(), STREAM_LIFETIME_MS[0] + ctx.random() * (STREAM_LIFETIME_MS[1] - STREAM_LIFETIME_MS[0]));
    });
    client.close();
    start = s.compactedAt !== undefined && s.compactedAt > w.lastRevision + 1 ? s.compactedAt : w.lastRevision + 1;
    // Now and then go back to the beginning: a watch into compacted history must be refused as compacted.
    if (s.compactedAt === undefined && ctx.random() < REWIND_PROBABILITY) start = 1;
    if (!w.stop) await backoff(200);
  }
}

interface SeenEvent {
  readonly revision: number;
  readonly text: string;
}

/** Revision ranges joined where they overlap or touch: [[1, 5], [6, 9], [12, 14]] -> [[1, 9], [12, 14]]. */
export function mergedSpans(ranges: ReadonlyArray<readonly [number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last !== undefined && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

export function checkWatch(st: WatchState): CheckOutcome[] {
  // etcd (and Fulcrum, like it) sends an event without prev_kv when the previous version was compacted away
  // (it reads revision - 1 and drops prev_kv on ErrCompacted): not a violation when a compaction could cover it.
  const prevCompacted = (rev: number): boolean => rev - 1 < st.maxCompaction;
  const withoutPrev = (text: string): string => text.replace(/ prev=[^;]*/g, '');
  const problems: Record<string, unknown[]> = { ordered: [], atomic: [], agreed: [], complete: [], prevKv: [], compaction: [] };
  const note = (kind: string, x: unknown): void => void (problems[kind]!.length < ANOMALIES_KEPT_MAX ? problems[kind]!.push(x) : undefined);
  /** revision -> canonical text of its events, as the first watcher to see it reported them. */
  const union = new Map<number, string>();
  const unionEvents = new Map<number, Array<{ key: string; type: string; value: string; prevRev: number | undefined; prevValue: string | undefined }>>();
  let seenTotal = 0;
  /** Per watcher, the revision ranges its streams covered (from a stream's start, or its compaction, to its last event). */
  const coveredBy: Array<Array<[number, number]>> = [];
  st.watchers.forEach((w, wi) => {
    const perRevisionResponse = new Map<number, number>();
    let responseNo = 0;
    const covered: Array<[number, number]> = [];
    for (const s of w.streams) {
      // Order and duplicates are per stream: a stream that rewinds sees old revisions again, legitimately.
      let last = s.start - 1;
      const keysAt = new Set<string>();
      perRevisionResponse.clear();
      let streamLast = s.start - 1;
      for (const r of s.responses) {
        responseNo++;
        if (r.canceled && r.compactRevision > 0 && !(s.start < r.compactRevision)) note('compaction', { watcher: wi, start: s.start, compactRevision: r.compactRevision });
        const byRev = new Map<number, SeenEvent[]>();
        for (const e of r.events) {
          const rev = e.kv.modRevision;
          seenTotal++;
          if (rev < last || rev < s.start) note('ordered', { watcher: wi, revision: rev, after: last, streamStart: s.start });
          const id = `${rev}/${e.kv.key}`;
          if (keysAt.has(id)) note('ordered', { watcher: wi, duplicate: id });
          keysAt.add(id);
          if (s.compactedAt !== undefined && rev < s.compactedAt) note('compaction', { watcher: wi, revision: rev, compactRevision: s.compactedAt });
          const prev = perRevisionResponse.get(rev);
          if (prev !== undefined && prev !== responseNo) note('atomic', { watcher: wi, revision: rev });
          perRevisionResponse.set(rev, responseNo);
          const list = byRev.get(rev) ?? [];
          list.push({ revision: rev, text: `${e.type} ${e.kv.key}=${e.type === 'put' ? e.kv.value : ''} prev=${e.prev ? `${e.prev.modRevision}:${e.prev.value}` : '-'}` });
          byRev.set(rev, list);
          const ue = unionEvents.get(rev) ?? [];
          if (!union.has(rev)) {
            ue.push({ key: e.kv.key, type: e.type, value: e.kv.value, prevRev: e.prev?.modRevision, prevValue: e.prev?.value });
            unionEvents.set(rev, ue);
          }
        }
        for (const [rev, list] of byRev) {
          const text = list.map((x) => x.text).join('; ');
          const known = union.get(rev);
          if (known === undefined) union.set(rev, text);
          else if (known !== text && !(prevCompacted(rev) && withoutPrev(known) === withoutPrev(text))) note('agreed', { watcher: wi, revision: rev, saw: text, other: known });
          last = Math.max(last, rev);
          streamLast = Math.max(streamLast, rev);
        }
      }
      const from = s.compactedAt !== undefined && s.compactedAt > s.start ? s.compactedAt : s.start;
      if (streamLast >= from) covered.push([from, streamLast]);
    }
    coveredBy[wi] = covered;
  });
  // Completeness: within each covered range, every revision anyone saw (or anyone wrote) must be there.
  const written = new Map(st.written.map((x) => [x.revision, x]));
  // One exception, as in etcd: compacting at a revision whose only change is a delete drops that tombstone (the
  // key's life is over and history before the compaction is gone), so a stream that starts at the compaction
  // revision, as a watcher told "compacted" does, cannot see that delete. Only the first revision of a stream, only
  // deletes, and only at or below a requested compaction.
  const onlyDeletesAt = (rev: number): boolean => {
    const seen = unionEvents.get(rev);
    if (seen !== undefined) return seen.length > 0 && seen.every((e) => e.type === 'delete');
    const w = written.get(rev);
    return w !== undefined && w.changes.every((c) => c.value === undefined);
  };
  const compactedTombstone = (rev: number, streamFrom: number): boolean => rev === streamFrom && rev <= st.maxCompaction && onlyDeletesAt(rev);
  st.watchers.forEach((w, wi) => {
    const covered = coveredBy[wi] ?? [];
    const seen = new Set<number>();
    for (const s of w.streams) for (const r of s.responses) for (const e of r.events) seen.add(e.kv.modRevision);
    for (const [from, to] of covered) {
      for (const rev of [...union.keys(), ...written.keys()]) {
        if (rev >= from && rev <= to && !seen.has(rev) && !compactedTombstone(rev, from)) note('complete', { watcher: wi, missing: rev, range: [from, to] });
      }
    }
  });
  for (const [rev, wr] of written) {
    const ev = unionEvents.get(rev);
    const inSomeRange = coveredBy.some((ranges) => ranges.some(([a, b]) => rev >= a && rev <= b && !compactedTombstone(rev, a)));
    if (!inSomeRange) continue;
    if (ev === undefined) {
      note('complete', { acknowledgedWriteNeverSeen: rev });
      continue;
    }
    for (const ch of wr.changes) {
      const e = ev.find((x) => x.key === ch.key);
      if (e === undefined || (ch.value === undefined ? e.type !== 'delete' : e.type !== 'put' || e.value !== ch.value)) note('complete', { revision: rev, wrote: ch, saw: ev });
    }
  }
  // prev_kv: the previous event on the same key. The union is that key's whole history between two of its events
  // only where some watcher covered every revision in between; a gap that every watcher missed (each resumed past a
  // compaction, say) may hold writes to the key that no one saw. Across such a gap the previous version must still
  // lie between the two events, and match what is known at its revision (an event someone saw, or a write the
  // client had acknowledged).
  const spans = mergedSpans(coveredBy.flat());
  const observedThrough = (from: number, to: number): boolean => spans.some(([a, b]) => from >= a && to <= b);
  const knownAt = (rev: number, key: string): { type: string; value: string | undefined } | 'unknown' | 'not-written' => {
    const seen = unionEvents.get(rev);
    const w = written.get(rev);
    const e = seen?.find((x) => x.key === key);
    if (e !== undefined) return { type: e.type, value: e.value };
    const ch = w?.changes.find((x) => x.key === key);
    if (ch !== undefined) return { type: ch.value === undefined ? 'delete' : 'put', value: ch.value };
    // A revision someone saw, or one of an acknowledged write, lists all of its changes: the key was not among them.
    return seen !== undefined || w !== undefined ? 'not-written' : 'unknown';
  };
  /** Per key, the revisions known to have changed it (seen by a watcher, or an acknowledged write), ascending. */
  const changedAt = new Map<string, number[]>();
  const changed = (key: string, rev: number): void => void (changedAt.get(key) ?? changedAt.set(key, []).get(key)!).push(rev);
  for (const [rev, events] of unionEvents) for (const e of events) changed(e.key, rev);
  for (const [rev, w] of written) for (const ch of w.changes) changed(ch.key, rev);
  for (const revs of changedAt.values()) revs.sort((a, b) => a - b);
  const changedBetween = (key: string, from: number, to: number): number | undefined => changedAt.get(key)?.find((r) => r > from && r < to);
  const lastOnKey = new Map<string, { rev: number; type: string; value: string }>();
  for (const rev of [...unionEvents.keys()].sort((a, b) => a - b)) {
    for (const e of unionEvents.get(rev)!) {
      const before = lastOnKey.get(e.key);
      lastOnKey.set(e.key, { rev, type: e.type, value: e.value });
      if (before === undefined || (e.prevRev === undefined && prevCompacted(rev))) continue;
      const prev = [e.prevRev, e.prevValue];
      if (observedThrough(before.rev, rev)) {
        if (before.type === 'put' && (e.prevRev !== before.rev || e.prevValue !== before.value)) note('prevKv', { revision: rev, key: e.key, prev, expected: [before.rev, before.value] });
        if (before.type === 'delete' && e.prevRev !== undefined) note('prevKv', { revision: rev, key: e.key, prev, expected: 'none (deleted before)' });
        continue;
      }
      if (e.prevRev === undefined) continue; // the key may have been deleted in the gap
      if (e.prevRev < before.rev || e.prevRev >= rev) {
        note('prevKv', { revision: rev, key: e.key, prev, expected: `a version between ${before.rev} and ${rev}` });
        continue;
      }
      const later = changedBetween(e.key, e.prevRev, rev);
      if (later !== undefined) {
        note('prevKv', { revision: rev, key: e.key, prev, expected: `the change of ${e.key} at ${later} or a later one` });
        continue;
      }
      const at = knownAt(e.prevRev, e.key);
      if (at === 'unknown') continue;
      if (at === 'not-written' || at.type !== 'put' || at.value !== e.prevValue) note('prevKv', { revision: rev, key: e.key, prev, expected: at === 'not-written' ? `no write of ${e.key} at ${e.prevRev}` : [e.prevRev, at.value] });
    }
  }
  const outcomes: CheckOutcome[] = Object.entries(problems).map(([kind, list]) => ({
    checker: `watch-${kind}`,
    verdict: list.length === 0 ? 'valid' : 'invalid',
    summary: list.length === 0 ? 'ok' : `${list.length}${list.length >= ANOMALIES_KEPT_MAX ? '+' : ''} anomalies`,
    ...(list.length > 0 ? { anomalies: list } : {}),
  }));
  outcomes.push({
    checker: 'watch-caught-up',
    verdict: st.caughtUp ? 'valid' : 'unknown',
    summary: `${st.watchers.length} watchers, ${st.watchers.reduce((n, w) => n + w.streams.length, 0)} streams, ${seenTotal} events seen, ${union.size} revisions, ${st.written.length} acknowledged writes; final revision ${st.finalRevision} ${st.caughtUp ? 'reached by all' : 'NOT reached by all watchers'}`,
  });
  return outcomes;
}

