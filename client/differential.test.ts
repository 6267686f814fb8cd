// Differential: random sequences of KV operations (puts, gets, ranges with limits and sorting, counts, deletes,
// compactions, leases granted, used and revoked, transactions whose compares look at present and missing keys)
// sent through this client to a Fulcrum member and to a real etcd 3.4, and the answers compared, with what a watch
// on the sequence's keys (all of them, a range, or the one key a step first puts) saw, live and replayed. Each
// sequence runs in a fresh namespace; revisions are compared relative to a marker write made just before it, so
// the two stores' earlier histories do not matter. A difference is either a Fulcrum server bug or a client bug
// that only one server shows (the empty range_end that etcd read as "every key from here on" was one). The
// negative control sends that request raw and checks that the comparison tells the two answers apart.
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdApi, type RangeResponse } from '../proto/index.js';
import { Client, Compare, FulcrumClientError, Op, type CompareSpec, type KeyRange, type KeyValue, type Lease, type OpResult, type OpSpec, type TxnSpec, type Watch } from './index.js';
import { haveEtcd, startTestCluster, startTestEtcd, startTestMember, type TestEtcd, type TestMember } from './testing/servers.js';

/** Keys of a sequence: two levels, so that prefixes and ranges select different sets. */
const KEYS = ['a', 'ab', 'b', 'ba', 'c'] as const;
const VALUES = ['', '0', '1', '22'] as const;
/** Operations per sequence and sequences per run of the property (DIFF_OPS, DIFF_RUNS for a longer search). */
const OPS_MAX = Number(process.env.DIFF_OPS ?? 12);
const SEQUENCES = Number(process.env.DIFF_RUNS ?? 100);
/** Sequences sent to a follower of a 3-member cluster (each write a Raft round over real member processes). */
const CLUSTER_SEQUENCES = Number(process.env.DIFF_CLUSTER_RUNS ?? 30);
/** The cluster's sequences are numbered from here: their namespaces and lease ids on etcd stay apart. */
const CLUSTER_FIRST_SEQUENCE = 1_000_000;

type Step =
  | { readonly t: 'put'; readonly k: string; readonly v: string; readonly prevKv: boolean; readonly ignoreValue: boolean }
  | { readonly t: 'get'; readonly k: string; readonly revision?: number }
  | { readonly t: 'compact'; readonly revision: number }
  | { readonly t: 'grant'; readonly id?: number }
  | { readonly t: 'putLease'; readonly k: string; readonly lease: number }
  | { readonly t: 'revoke'; readonly lease: number }
  | { readonly t: 'leaseKeys'; readonly lease: number }
  | { readonly t: 'putKeepLease'; readonly k: string; readonly v: string }
  | { readonly t: 'range'; readonly start: string; readonly end?: string; readonly limit: number; readonly countOnly: boolean; readonly keysOnly: boolean; readonly descend: boolean; readonly revision?: number }
  | { readonly t: 'sorted'; readonly prefix: string; readonly target: 'version' | 'createRevision' | 'modRevision' | 'value'; readonly descend: boolean }
  | { readonly t: 'delete'; readonly start: string; readonly end?: string; readonly prevKv: boolean }
  | { readonly t: 'txn'; readonly compares: readonly CompareStep[]; readonly then: readonly TxnOpStep[]; readonly otherwise: readonly TxnOpStep[] };

interface CompareStep {
  readonly target: 'version' | 'value' | 'modRevision' | 'createRevision';
  readonly k: string;
  /** Compare every key of [k, end) instead of k alone (etcd 3.3+). */
  readonly end?: string;
  readonly op: '=' | '!=' | '<' | '>';
  /** A version, a value's index, or a revision relative to the sequence's marker write. */
  readonly operand: number;
}

type TxnOpStep =
  | { readonly t: 'get'; readonly start: string; readonly end?: string }
  | { readonly t: 'put'; readonly k: string; readonly v: string }
  | { readonly t: 'delete'; readonly k: string }
  | { readonly t: 'txn'; readonly compares: readonly CompareStep[]; readonly then: readonly TxnOpStep[]; readonly otherwise: readonly TxnOpStep[] };

const key = fc.constantFrom(...KEYS);
const end = fc.option(fc.constantFrom(...KEYS, 'bz', 'z'), { nil: undefined });
const compareStep: fc.Arbitrary<CompareStep> = fc.record({
  target: fc.constantFrom('version' as const, 'value' as const, 'modRevision' as const, 'createRevision' as const),
  k: key,
  end: fc.option(fc.constantFrom('b', 'bz', 'z'), { nil: undefined, freq: 4 }),
  op: fc.constantFrom('=' as const, '!=' as const, '<' as const, '>' as const),
  operand: fc.integer({ min: 0, max: 6 }),
}, { requiredKeys: ['target', 'k', 'op', 'operand'] });
const plainTxnOp: fc.Arbitrary<TxnOpStep> = fc.oneof(
  fc.record({ t: fc.constant('get' as const), start: key, end }),
  fc.record({ t: fc.constant('put' as const), k: key, v: fc.constantFrom(...VALUES) }),
  fc.record({ t: fc.constant('delete' as const), k: key }),
);
/** A transaction's op, now and then a nested transaction (etcd 3.3+), one level deep. */
const txnOp: fc.Arbitrary<TxnOpStep> = fc.oneof(
  { weight: 6, arbitrary: plainTxnOp },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('txn' as const), compares: fc.array(compareStep, { maxLength: 1 }), then: fc.array(plainTxnOp, { maxLength: 2 }), otherwise: fc.array(plainTxnOp, { maxLength: 2 }) }) },
);
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('put' as const), k: key, v: fc.constantFrom(...VALUES), prevKv: fc.boolean(), ignoreValue: fc.integer({ min: 0, max: 5 }).map((n) => n === 0) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('get' as const), k: key, revision: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }) }, { requiredKeys: ['t', 'k'] }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('compact' as const), revision: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('grant' as const), id: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }) }, { requiredKeys: ['t'] }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('putLease' as const), k: key, lease: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('revoke' as const), lease: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('leaseKeys' as const), lease: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('putKeepLease' as const), k: key, v: fc.constantFrom(...VALUES) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('range' as const), start: fc.constantFrom('', ...KEYS), end, limit: fc.integer({ min: 0, max: 3 }), countOnly: fc.boolean(), keysOnly: fc.boolean(), descend: fc.boolean(), revision: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }) }, { requiredKeys: ['t', 'start', 'limit', 'countOnly', 'keysOnly', 'descend'] }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('sorted' as const), prefix: fc.constantFrom('', 'a', 'b'), target: fc.constantFrom('version' as const, 'createRevision' as const, 'modRevision' as const, 'value' as const), descend: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('delete' as const), start: key, end, prevKv: fc.boolean() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('txn' as const),
      compares: fc.array(compareStep, { maxLength: 2 }),
      then: fc.array(txnOp, { maxLength: 2 }),
      otherwise: fc.array(txnOp, { maxLength: 2 }),
    }),
  },
);

/** What a sequence's answers are read against: its marker write's revision, and its leases in grant order. */
interface Context {
  readonly base: number;
  readonly leases: Lease[];
  /** Lease ids the sequence may ask for are this plus 1..3. */
  readonly leaseIdBase: bigint;
}

/** A lease id no server granted: both must refuse a put with it. */
const UNKNOWN_LEASE = 0x7e57n;
/** Lease ids a sequence asks for by number start here (per run of the file: the servers are fresh). */
const LEASE_ID_BASE = 0x5e0000n;

/** A key's version as both stores must show it: revisions relative to the marker, leases by grant order. */
function kvText(kv: KeyValue, ctx: Context): string {
  const lease = kv.lease === 0n ? '' : ` l${ctx.leases.findIndex((l) => l.id === kv.lease)}`;
  return `${kv.keyText}=${kv.valueText} v${kv.version} c${relative(kv.createRevision, ctx)} m${relative(kv.modRevision, ctx)}${lease}`;
}

/**
 * A key's revision relative to the sequence's marker write. 0 (none: a delete event's create revision) is printed
 * as "none": relative to the marker, two stores whose histories differ in length gave it different numbers.
 */
function relative(revision: number, ctx: Context): string {
  return revision === 0 ? 'none' : String(revision - ctx.base);
}

/** [start, end), or from start to the end of the namespace when no end is given. */
function fromStart(start: string, end: string | undefined): KeyRange {
  return end === undefined ? { start } : { start, end };
}

/** The sequence's `n`th lease (wrapping), or undefined before any was granted. */
function leaseAt(ctx: Context, n: number): Lease | undefined {
  return ctx.leases.length === 0 ? undefined : ctx.leases[n % ctx.leases.length];
}

function compareSpec(c: CompareStep, base: number): CompareSpec {
  const k = c.end === undefined ? c.k : fromStart(c.k, c.end);
  switch (c.target) {
    case 'version':
      return Compare.version(k, c.op, c.operand);
    case 'value':
      return Compare.value(k, c.op, VALUES[c.operand % VALUES.length]!);
    case 'modRevision':
      return Compare.modRevision(k, c.op, base + c.operand);
    case 'createRevision':
      return Compare.createRevision(k, c.op, base + c.operand);
  }
}

function opSpec(o: TxnOpStep, base: number): OpSpec {
  switch (o.t) {
    case 'get':
      return Op.get(fromStart(o.start, o.end));
    case 'put':
      return Op.put(o.k, o.v);
    case 'delete':
      return Op.delete(o.k);
    case 'txn':
      return Op.txn(txnSpec(o, base));
  }
}

function txnSpec(t: { readonly compares: readonly CompareStep[]; readonly then: readonly TxnOpStep[]; readonly otherwise: readonly TxnOpStep[] }, base: number): TxnSpec {
  return { compare: t.compares.map((x) => compareSpec(x, base)), success: t.then.map((o) => opSpec(o, base)), failure: t.otherwise.map((o) => opSpec(o, base)) };
}

function opResultText(r: OpResult, ctx: Context): string {
  switch (r.type) {
    case 'get':
      return `get [${r.kvs.map((kv) => kvText(kv, ctx)).join(', ')}] count=${r.count} more=${r.more}`;
    case 'put':
      return 'put';
    case 'delete':
      return `delete ${r.deleted}`;
    case 'txn':
      return `txn ${r.succeeded} (${r.results.map((x) => opResultText(x, ctx)).join('; ')})`;
  }
}

/** One step's answer as text both servers must agree on. */
async function run(c: Client, s: Step, ctx: Context): Promise<string> {
  const { base } = ctx;
  switch (s.t) {
    case 'put': {
      const r = await c.put(s.k, s.v, { prevKv: s.prevKv, ignoreValue: s.ignoreValue });
      return `put r${r.revision - base} prev=${r.prevKv === undefined ? '-' : kvText(r.prevKv, ctx)}`;
    }
    case 'get': {
      const kv = await c.get(s.k, s.revision === undefined ? {} : { revision: base + s.revision });
      return kv === undefined ? 'missing' : kvText(kv, ctx);
    }
    case 'compact': {
      await c.compact(base + s.revision);
      return 'compacted';
    }
    case 'grant': {
      // An id of the caller's choosing, the same on both servers and unique to the sequence: asked twice, LEASE_EXISTS.
      ctx.leases.push(await c.grantLease(60, { keepAlive: false, ...(s.id === undefined ? {} : { id: ctx.leaseIdBase + BigInt(s.id) }) }));
      return `granted l${ctx.leases.length - 1}`;
    }
    case 'putLease': {
      const lease = leaseAt(ctx, s.lease)?.id ?? UNKNOWN_LEASE;
      return `put r${(await c.put(s.k, 'leased', { lease })).revision - base}`;
    }
    case 'leaseKeys': {
      // The TTL left depends on when each server was asked: only the granted TTL and the keys are compared.
      const lease = leaseAt(ctx, s.lease);
      if (lease === undefined) return 'no lease';
      const t = await lease.timeToLive({ keys: true });
      return `lease granted=${t.grantedTtlSeconds} alive=${t.ttlSeconds > 0} keys=${t.keys.map((k) => k.toString()).sort().join(',')}`;
    }
    case 'putKeepLease': {
      const r = await c.put(s.k, s.v, { ignoreLease: true });
      return `put r${r.revision - base}`;
    }
    case 'revoke': {
      const lease = leaseAt(ctx, s.lease);
      if (lease === undefined) return 'no lease';
      await lease.revoke();
      return 'revoked';
    }
    case 'range': {
      const r = await c.range(fromStart(s.start, s.end), {
        limit: s.limit,
        countOnly: s.countOnly,
        keysOnly: s.keysOnly,
        sort: { target: 'key', order: s.descend ? 'descend' : 'ascend' },
        ...(s.revision === undefined ? {} : { revision: base + s.revision }),
      });
      return `[${r.kvs.map((kv) => kvText(kv, ctx)).join(', ')}] count=${r.count} more=${r.more} r${r.revision - base}`;
    }
    case 'sorted': {
      // Ties may come back in either order (etcd's sort is not stable): compare the sort field's sequence and the set.
      const r = await c.range({ prefix: s.prefix }, { sort: { target: s.target, order: s.descend ? 'descend' : 'ascend' } });
      const field = (kv: KeyValue): string => (s.target === 'value' ? kv.valueText : s.target === 'version' ? String(kv.version) : relative(kv[s.target], ctx));
      return `${r.kvs.map(field).join(',')} {${r.kvs.map((kv) => kvText(kv, ctx)).sort().join(', ')}}`;
    }
    case 'delete': {
      const r = await c.delete(s.end === undefined ? s.start : fromStart(s.start, s.end), { prevKv: s.prevKv });
      return `deleted ${r.deleted} [${r.prevKvs.map((kv) => kvText(kv, ctx)).join(', ')}] r${r.revision - base}`;
    }
    case 'txn': {
      const t = await c.runTxn(txnSpec(s, base));
      return `txn ${t.succeeded} r${t.revision - base} ${t.results.map((r) => opResultText(r, ctx)).join('; ')}`;
    }
  }
}

/** Waits this long for a sequence's watch events (they come at once; this only bounds a failure). */
const WATCH_WAIT_MS = 10_000;
/** Written (put, then deleted) after the steps: its first event ends a range watch's part of the answers. */
const LAST_KEY = 'zz';

/**
 * What a sequence's watches look at: every key, those from 'b' on (both hold LAST_KEY), or one key (which is then
 * the key written after the steps), with a filter or not.
 */
interface WatchSpec {
  readonly on: '' | 'b' | { readonly key: string };
  readonly filter: 'none' | 'noPut' | 'noDelete';
  readonly prevKv: boolean;
}

/** '' or 'b' for a range watch; 'key' for one key: the first key a step puts, so that the watch has events. */
const watchSpec = fc.record({
  on: fc.constantFrom('' as const, 'b' as const, 'key' as const),
  filter: fc.constantFrom('none' as const, 'noPut' as const, 'noDelete' as const),
  prevKv: fc.boolean(),
});

function watchFor(spec: { on: '' | 'b' | 'key'; filter: WatchSpec['filter']; prevKv: boolean }, steps: readonly Step[]): WatchSpec {
  if (spec.on !== 'key') return { ...spec, on: spec.on };
  const put = steps.find((s) => s.t === 'put' || s.t === 'putLease' || s.t === 'putKeepLease');
  return { ...spec, on: { key: put !== undefined && 'k' in put ? put.k : KEYS[0] } };
}

function watchOf(c: Client, w: WatchSpec, startRevision?: number): Watch {
  return c.watch(w.on === '' ? { prefix: '' } : w.on === 'b' ? { start: w.on } : w.on.key, {
    prevKv: w.prevKv,
    ...(w.filter === 'noPut' ? { noPut: true } : w.filter === 'noDelete' ? { noDelete: true } : {}),
    ...(startRevision === undefined ? {} : { startRevision }),
  });
}

/** The key whose put and delete after the steps every watch of `w` sees. */
function endKey(w: WatchSpec): string {
  return typeof w.on === 'string' ? LAST_KEY : w.on.key;
}

async function answers(root: Client, sequence: number, steps: readonly Step[], w: WatchSpec): Promise<string[]> {
  const ctx: Context = { base: (await root.put(`diff/marker/${sequence}`, '')).revision, leases: [], leaseIdBase: LEASE_ID_BASE + BigInt(sequence) * 16n };
  const c = root.namespace(`diff/${sequence}/`);
  // A compaction may overtake a watcher that is behind, and then the watch ends as etcd's would: not compared.
  const watch = steps.some((s) => s.t === 'compact') ? undefined : watchOf(c, w);
  try {
    await watch?.ready;
    const out: string[] = [];
    for (const s of steps) {
      out.push(
        await run(c, s, ctx).catch((e: unknown) => {
          if (e instanceof FulcrumClientError) return `error ${e.code}`;
          throw e;
        }),
      );
    }
    if (watch !== undefined) {
      // Put and deleted: a watch that filters out puts still sees the key go. Its events, and whatever comes
      // after, are past the sequence's.
      const end = (await c.put(endKey(w), '')).revision;
      await c.delete(endKey(w));
      out.push(...(await watchedEvents(watch, ctx, end)));
      // The same events again, replayed from history by a watch that starts after they happened.
      const replay = watchOf(c, w, ctx.base + 1);
      try {
        out.push(...(await watchedEvents(replay, ctx, end)).map((e) => `replayed ${e}`));
      } finally {
        replay.close();
      }
    }
    return out;
  } finally {
    watch?.close();
    // Revoked now, not left to expire: an expiry during a later sequence would move one server's revisions alone.
    for (const l of ctx.leases) await l.revoke().catch(() => undefined);
  }
}

/** The watch's events before revision `end` (on this server), as text; waits for the first at or after it. */
async function watchedEvents(watch: Watch, ctx: Context, end: number): Promise<string[]> {
  const events: string[] = [];
  const timer = setTimeout(() => watch.close(), WATCH_WAIT_MS);
  try {
    for await (const e of watch) {
      if (e.revision >= end) return events;
      events.push(`event ${e.type} ${kvText(e.kv, ctx)} r${e.revision - ctx.base} prev=${e.prevKv === undefined ? '-' : kvText(e.prevKv, ctx)}`);
    }
    throw new Error(`the watch ended before the end key's event, after ${events.length} events`);
  } finally {
    clearTimeout(timer);
  }
}

/** `runs` random sequences, numbered from `first`, give the same answers from both clients. */
async function agree(fulcrum: Client, etcd: Client, first: number, runs: number): Promise<void> {
  let sequence = first;
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: OPS_MAX }), watchSpec, async (steps, spec) => {
      sequence++;
      const w = watchFor(spec, steps);
      const [f, e] = await Promise.all([answers(fulcrum, sequence, steps, w), answers(etcd, sequence, steps, w)]);
      expect(f).toEqual(e);
    }),
    { numRuns: runs },
  );
}

describe.skipIf(!haveEtcd)('the same operations against Fulcrum and etcd', () => {
  let etcd: TestEtcd;
  let member: TestMember;
  let onEtcd: Client;
  let onFulcrum: Client;
  beforeAll(async () => {
    [etcd, member] = await Promise.all([startTestEtcd(8), startTestMember(9)]);
    onEtcd = new Client({ endpoints: [etcd.endpoint], attemptTimeoutMs: 2_000 });
    onFulcrum = member.client({ attemptTimeoutMs: 2_000 });
  }, 60_000);
  afterAll(async () => {
    await onEtcd?.close();
    await member?.close();
    await etcd?.close();
  });

  it('give the same answers, revisions included', async () => {
    await agree(onFulcrum, onEtcd, 0, SEQUENCES);
  }, Math.max(120_000, SEQUENCES * 300));

  it('give the same answers when Fulcrum is reached through a follower of a 3-member cluster', async () => {
    // Writes forwarded to the leader, reads confirmed by ReadIndex, watches served from the follower's applies.
    const tc = await startTestCluster(10);
    try {
      const lead = await tc.leaderIndex();
      const onFollower = new Client({ endpoints: [tc.endpoints[(lead + 1) % 3]!], attemptTimeoutMs: 2_000 });
      try {
        await agree(onFollower, onEtcd, CLUSTER_FIRST_SEQUENCE, CLUSTER_SEQUENCES);
      } finally {
        await onFollower.close();
      }
    } finally {
      await tc.close();
    }
  }, Math.max(180_000, CLUSTER_SEQUENCES * 1_000));

  it('negative control: a Range with range_end sent present but empty, which etcd reads as "from key on", is told apart', async () => {
    await onEtcd.put('diffraw/b', 'x');
    await onFulcrum.put('diffraw/b', 'x');
    const rawRange = async (endpoint: string): Promise<string[]> => {
      const kv = new (loadEtcdApi().etcdserverpb.KV)(endpoint, grpc.credentials.createInsecure());
      try {
        const r = await new Promise<RangeResponse>((resolve, reject) =>
          kv.Range({ key: Buffer.from('diffraw/a'), range_end: Buffer.alloc(0) } as never, new grpc.Metadata(), { deadline: Date.now() + 3_000 }, ((err: grpc.ServiceError | null, res?: RangeResponse) => (err ? reject(err) : resolve(res!))) as never),
        );
        return r.kvs.map((x) => Buffer.from(x.key).toString());
      } finally {
        kv.close();
      }
    };
    const [f, e] = await Promise.all([rawRange(member.endpoint), rawRange(etcd.endpoint)]);
    expect(f).toEqual([]);
    expect(e).toEqual(['diffraw/b']);
    expect(f).not.toEqual(e);
  });
});
