// The Watch service end to end: a single-voter member, a grpc-js server with only the Watch service, writes
// through member.propose, and grpc-js clients (and etcdctl when installed) reading real Watch streams.
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Event, WatchResponse } from '../../proto/index.js';
import type { MvccEvent } from '../../storage/mvcc/index.js';
import { CANCEL_REASONS } from '../watch/index.js';
import { compact, dec, del, enc, put, startMember, startWatchServer, txn, WatchClient, type TestMember, type WatchServer } from '../watch/testdata/harness.js';
import { WATCH_ERRORS } from './watch.js';

let t: TestMember;
let srv: WatchServer;
const clients: WatchClient[] = [];
/** Every applied event, in order: what the streams are checked against. */
const log: MvccEvent[] = [];

beforeAll(async () => {
  t = await startMember();
  t.member.subscribeApplied((results) => {
    for (const r of results) log.push(...r.events);
  });
  srv = await startWatchServer(t.member, { stream: { watchesPerStreamMax: 8 } });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await srv.close();
  await t.close();
});

function client(address = srv.address): WatchClient {
  const c = new WatchClient(address);
  clients.push(c);
  return c;
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const showWire = (e: Event): string => `${e.type} ${dec(e.kv!.key)}@${e.kv!.mod_revision} v=${dec(e.kv!.value)}` + (e.prev_kv ? ` prev=${dec(e.prev_kv.value)}` : '');
const showLog = (e: MvccEvent, prev: boolean): string =>
  `${e.type} ${dec(e.kv.key)}@${e.kv.modRevision} v=${dec(e.kv.value)}` + (prev && e.prevKv ? ` prev=${dec(e.prevKv.value)}` : '');
const logFor = (prefix: string, from: number, prev = false): string[] =>
  log.filter((e) => dec(e.kv.key).startsWith(prefix) && e.kv.modRevision >= from).map((e) => showLog(e, prev));
const created = (id: string) => (rs: WatchResponse[]) => rs.some((r) => r.created && r.watch_id === id);
const nEvents = (c: WatchClient, id: string, n: number) => () => c.events(id).length >= n;
const rev = (): number => t.member.stateMachine.revision;

describe('Watch service', () => {
  it('live events for a key, a prefix and a range; created first, ids assigned from 0', async () => {
    const c = client();
    c.create({ key: b('lv/a') });
    c.create({ key: b('lv/'), range_end: b('lv0') });
    c.create({ key: b('lv/b'), range_end: b('lv/d') });
    await c.until((rs) => ['0', '1', '2'].every((id) => created(id)(rs)), 10_000, 'created');
    expect(c.responses.slice(0, 3).map((r) => r.created)).toEqual([true, true, true]);
    expect(c.responses[0]!.header).toMatchObject({ member_id: '1', revision: String(rev()) });
    await put(t.member, 'lv/a', '1');
    await put(t.member, 'lv/c', '2');
    await put(t.member, 'lv/d', '3');
    await del(t.member, 'lv/a');
    await c.until((rs) => rs.filter((r) => r.events.length > 0).length >= 7, 10_000, 'events');
    expect(c.events('0').map(showWire)).toEqual([expect.stringMatching(/^PUT lv\/a@\d+ v=1$/), expect.stringMatching(/^DELETE lv\/a@/)]);
    expect(c.events('1').map((e) => dec(e.kv!.key))).toEqual(['lv/a', 'lv/c', 'lv/d', 'lv/a']);
    expect(c.events('2').map((e) => dec(e.kv!.key))).toEqual(['lv/c']);
    // Each event response's header is at its last event's revision (watchers of one revision share the header).
    for (const r of c.responses.filter((x) => x.events.length > 0)) expect(r.header?.revision).toBe(r.events.at(-1)!.kv!.mod_revision);
  });

  it('starts in the past: replay then live under concurrent writes, no gap and no duplicate', async () => {
    const from = rev() + 1;
    for (let i = 0; i < 50; i++) await put(t.member, `past/${i % 7}`, `h${i}`);
    const writing = (async () => {
      for (let i = 0; i < 40; i++) await Promise.all([put(t.member, `past/${i % 5}`, `l${i}`), put(t.member, `past/x${i % 3}`, `m${i}`)]);
    })();
    const c = client();
    c.create({ key: b('past/'), range_end: b('past0'), start_revision: from, prev_kv: true });
    await writing;
    const want = logFor('past/', from, true);
    expect(want).toHaveLength(130);
    await c.until(nEvents(c, '0', want.length), 15_000, 'all events');
    expect(c.events('0').map(showWire)).toEqual(want);
  });

  it('filters NOPUT and NODELETE', async () => {
    const c = client();
    c.create({ key: b('flt/'), range_end: b('flt0'), filters: ['NOPUT'] });
    c.create({ key: b('flt/'), range_end: b('flt0'), filters: ['NODELETE'] });
    await c.until((rs) => created('1')(rs), 10_000, 'created');
    await put(t.member, 'flt/a', '1');
    await del(t.member, 'flt/a');
    await put(t.member, 'flt/b', '2');
    await c.until((rs) => rs.filter((r) => r.events.length > 0).length >= 3, 10_000, 'events');
    expect(c.events('0').map((e) => e.type)).toEqual(['DELETE']);
    expect(c.events('1').map((e) => `${e.type} ${dec(e.kv!.key)}`)).toEqual(['PUT flt/a', 'PUT flt/b']);
  });

  it('prev_kv on live and history events; a txn revision arrives in one response', async () => {
    await put(t.member, 'pkv/a', 'old');
    const from = rev();
    await txn(t.member, { success: [{ requestPut: { key: enc('pkv/a'), value: enc('new') } }, { requestPut: { key: enc('pkv/b'), value: enc('b1') } }] });
    const c = client();
    c.create({ key: b('pkv/'), range_end: b('pkv0'), start_revision: from, prev_kv: true }); // history
    c.create({ key: b('pkv/'), range_end: b('pkv0'), prev_kv: true }); // live
    await c.until(created('1'), 10_000, 'created');
    await del(t.member, 'pkv/a');
    await c.until(() => c.events('1').length >= 1 && c.events('0').length >= 4, 10_000, 'events');
    expect(c.events('0').map(showWire)).toEqual([
      `PUT pkv/a@${from} v=old`,
      `PUT pkv/a@${from + 1} v=new prev=old`,
      `PUT pkv/b@${from + 1} v=b1`,
      `DELETE pkv/a@${from + 2} v= prev=new`,
    ]);
    expect(c.events('1').map(showWire)).toEqual([`DELETE pkv/a@${from + 2} v= prev=new`]);
    const txnResponses = c.responses.filter((r) => r.watch_id === '0' && r.events.some((e) => e.kv!.mod_revision === String(from + 1)));
    expect(txnResponses).toHaveLength(1);
  });

  it('many watches on one stream: client ids, duplicate id and empty range refused, cancel, per-stream limit', async () => {
    const c = client();
    c.create({ key: b('many/a'), watch_id: 7 });
    c.create({ key: b('many/b'), watch_id: 7 });
    c.create({ key: b('many/z'), range_end: b('many/a') });
    c.create({ key: b('many/b') });
    await c.until((rs) => rs.length >= 4, 10_000, 'answers');
    expect(c.summary().slice(0, 4)).toEqual([
      expect.objectContaining({ id: '7', created: true }),
      expect.objectContaining({ id: '-1', created: true, canceled: true, reason: WATCH_ERRORS.duplicateId }),
      expect.objectContaining({ id: '-1', created: true, canceled: true, reason: 'mvcc: watcher range is empty' }),
      expect.objectContaining({ id: '0', created: true }),
    ]);
    c.send({ cancel_request: { watch_id: 7 } });
    await c.until((rs) => rs.some((r) => r.canceled && r.watch_id === '7'), 10_000, 'cancel');
    await put(t.member, 'many/a', 'x');
    await put(t.member, 'many/b', 'y');
    await c.until(nEvents(c, '0', 1), 10_000, 'event on 0');
    expect(c.events('7')).toEqual([]);
    for (let i = 0; i < 8; i++) c.create({ key: b(`many/k${i}`) });
    await c.until((rs) => rs.filter((r) => r.created).length >= 12, 10_000, 'limit');
    const refused = c.responses.filter((r) => r.canceled && r.cancel_reason === WATCH_ERRORS.tooManyWatches);
    expect(refused).toHaveLength(1); // 1 live + 7 new = 8 = watchesPerStreamMax
  });

  it('a compacted start revision: created, then canceled with compact_revision', async () => {
    await put(t.member, 'cmp/a', '1');
    const r = await put(t.member, 'cmp/a', '2');
    await compact(t.member, r.revision);
    const c = client();
    c.create({ key: b('cmp/a'), start_revision: r.revision - 1 });
    await c.until((rs) => rs.some((x) => x.canceled), 10_000, 'cancel');
    expect(c.summary()).toEqual([
      expect.objectContaining({ id: '0', created: true }),
      expect.objectContaining({ id: '0', canceled: true, compact: String(r.revision), reason: CANCEL_REASONS.compacted }),
    ]);
  });

  it('a progress request answers with the current revision once every watch is synced', async () => {
    const c = client();
    c.create({ key: b('prg/a') });
    await c.until(created('0'), 10_000, 'created');
    await put(t.member, 'other', 'x');
    c.send({ progress_request: {} });
    await c.until((rs) => rs.some((r) => r.watch_id === '-1'), 10_000, 'progress');
    const p = c.responses.find((r) => r.watch_id === '-1')!;
    expect(p.header?.revision).toBe(String(rev()));
    expect(p.events).toEqual([]);
    expect(p.created || p.canceled).toBe(false);
  });

  it('periodic progress notifications for watches that ask for them', async () => {
    const fast = await startWatchServer(t.member, { hub: { progressNotifyIntervalMs: 50 } });
    try {
      const c = client(fast.address);
      c.create({ key: b('prgn/a'), progress_notify: true });
      c.create({ key: b('prgn/b') });
      await c.until((rs) => rs.filter((r) => r.watch_id === '0' && !r.created).length >= 2, 10_000, 'notifications');
      expect(c.responses.filter((r) => r.watch_id === '1' && !r.created)).toEqual([]);
      expect(c.responses.at(-1)!.header?.revision).toBe(String(rev()));
    } finally {
      await fast.close();
    }
  });

  it('fragment splits a revision larger than the request size; without it the revision stays whole', async () => {
    const small = await startWatchServer(t.member, { api: { requestBytesMax: 4096 } });
    try {
      const c = client(small.address);
      c.create({ key: b('frag/'), range_end: b('frag0'), fragment: true });
      c.create({ key: b('frag/'), range_end: b('frag0') });
      await c.until(created('1'), 10_000, 'created');
      const big = 'x'.repeat(1500);
      await txn(t.member, { success: ['a', 'b', 'c', 'd', 'e'].map((k) => ({ requestPut: { key: enc(`frag/${k}`), value: enc(big) } })) });
      await c.until(() => c.events('0').length >= 5 && c.events('1').length >= 5, 10_000, 'events');
      const parts = c.responses.filter((r) => r.watch_id === '0' && r.events.length > 0);
      expect(parts.length).toBeGreaterThan(1);
      expect(parts.map((r) => r.fragment)).toEqual([...parts.slice(1).map(() => true), false]);
      expect(c.responses.filter((r) => r.watch_id === '1' && r.events.length > 0)).toHaveLength(1);
    } finally {
      await small.close();
    }
  });

  it('a client that stops reading keeps server memory bounded and still gets every event once, in order', async () => {
    const limits = { watcherEventsMax: 50, watcherBytesMax: 128 * 1024 };
    const slow = await startWatchServer(t.member, { hub: limits });
    try {
      const c = client(slow.address);
      c.create({ key: b('slw/'), range_end: b('slw0') });
      await c.until(created('0'), 10_000, 'created');
      const from = rev() + 1;
      c.stream.pause();
      const value = 'v'.repeat(4096);
      let maxQueued = { events: 0, bytes: 0 };
      for (let i = 0; i < 300; i++) {
        await Promise.all([put(t.member, `slw/${i % 11}`, `${i}${value}`), put(t.member, `slw/y${i % 5}`, `${i}`)]);
        const s = slow.hub.stats();
        maxQueued = { events: Math.max(maxQueued.events, s.queuedEvents), bytes: Math.max(maxQueued.bytes, s.queuedBytes) };
      }
      expect(slow.hub.stats().synced).toBe(0); // it fell back to reading the store
      expect(maxQueued.events).toBeLessThanOrEqual(limits.watcherEventsMax + 1);
      expect(maxQueued.bytes).toBeLessThanOrEqual(limits.watcherBytesMax + 8192);
      c.stream.resume();
      const want = log.filter((e) => dec(e.kv.key).startsWith('slw/') && e.kv.modRevision >= from).map((e) => `${dec(e.kv.key)}@${e.kv.modRevision}`);
      expect(want).toHaveLength(600);
      await c.until(nEvents(c, '0', want.length), 30_000, 'all events');
      expect(c.events('0').map((e) => `${dec(e.kv!.key)}@${e.kv!.mod_revision}`)).toEqual(want);
    } finally {
      await slow.close();
    }
  });
});

// ---- etcdctl (Debian's etcd-client 3.4 here; CI installs it)

const etcdctl = process.env.ETCDCTL_BIN ?? 'etcdctl';
const haveEtcdctl = ((): boolean => {
  try {
    execFileSync(etcdctl, ['version'], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
})();
if (!haveEtcdctl) console.warn(`node/api/watch.test.ts: etcdctl not found (${etcdctl}); skipping the etcdctl watch tests. Install etcd-client to run them.`);

/** Run `etcdctl watch ...` until its output contains `until`, then stop it. */
async function etcdctlWatch(args: string[], until: string, write?: () => Promise<void>): Promise<string> {
  const child = spawn(etcdctl, ['--endpoints', srv.address, 'watch', ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
  let out = '';
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`etcdctl watch printed only: ${JSON.stringify(out)}`)), 15_000);
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes(until)) {
          clearTimeout(timer);
          resolve(out);
        }
      });
      child.on('error', reject);
      // etcdctl prints nothing on create; give it a moment to open the stream, then write.
      if (write !== undefined) setTimeout(() => void write().catch(reject), 700);
    });
  } finally {
    child.kill('SIGTERM');
  }
}

describe.skipIf(!haveEtcdctl)('etcdctl watch against the Watch service', () => {
  it('watch --prefix sees live puts and deletes', async () => {
    // Wait for the last line: etcdctl may print an event's key and value in separate writes.
    const out = await etcdctlWatch(['--prefix', 'ectl/'], 'ectl/b\ntwo\n', async () => {
      await put(t.member, 'ectl/a', 'one');
      await del(t.member, 'ectl/a');
      await put(t.member, 'ectl/b', 'two');
    });
    expect(out).toBe('PUT\nectl/a\none\nDELETE\nectl/a\n\nPUT\nectl/b\ntwo\n');
  });

  it('watch --rev replays history', async () => {
    const r1 = await put(t.member, 'ectlrev/k', 'v1');
    await put(t.member, 'ectlrev/k', 'v2');
    const out = await etcdctlWatch(['--rev', String(r1.revision), 'ectlrev/k'], 'v2\n');
    expect(out).toBe('PUT\nectlrev/k\nv1\nPUT\nectlrev/k\nv2\n');
  });

  it('watch --prev-kv prints the previous value (history and live)', async () => {
    const r1 = await put(t.member, 'ectlpkv/k', 'old');
    await put(t.member, 'ectlpkv/k', 'mid');
    const out = await etcdctlWatch(['--prev-kv', '--rev', String(r1.revision + 1), 'ectlpkv/k'], 'new\n', async () => {
      await put(t.member, 'ectlpkv/k', 'new');
    });
    expect(out).toBe('PUT\nectlpkv/k\nold\nectlpkv/k\nmid\nPUT\nectlpkv/k\nmid\nectlpkv/k\nnew\n');
  });
});
