// Property test: random sequences of writes, reads of the past, compactions (with their physical deletion at
// random points), batches committed late, and reopen from the backend give the same answers from the store and
// from the snapshot-per-revision model.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryBackend, prefixEnd, type BackendBatch } from '../backend.js';
import { MvccError } from './errors.js';
import { MvccStore } from './store.js';
import { MvccModel } from './testing/model.js';
import type { Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from './types.js';

const TXN_OPS_MAX = 4;
const KEYS = ['a', 'ab', 'b', 'ba', 'c'];
const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

const keyArb = fc.constantFrom(...KEYS).map(b);
const rangeEndArb = fc.oneof(
  fc.constant(undefined),
  fc.constant(new Uint8Array([0])),
  fc.constantFrom('b', 'c', 'bb', 'a').map(b),
);
const rangeArb = fc.record({ key: keyArb, rangeEnd: rangeEndArb }).map((r) => (r.rangeEnd === undefined ? { key: r.key } : r));
const prefixArb = keyArb.map((key) => ({ key, rangeEnd: prefixEnd(key)! }));
const leaseArb = fc.constantFrom(0n, 1n, 2n);

const putArb: fc.Arbitrary<PutRequest> = fc.oneof(
  fc.record({ key: keyArb, value: fc.constantFrom('x', 'y', 'zz', '').map(b), lease: leaseArb, prevKv: fc.boolean() }),
  fc.record({ key: keyArb, value: fc.constant(new Uint8Array(0)), ignoreValue: fc.boolean(), ignoreLease: fc.boolean(), prevKv: fc.boolean() }),
);
const delArb: fc.Arbitrary<DeleteRangeRequest> = fc.record({ range: fc.oneof(rangeArb, prefixArb), prevKv: fc.boolean() }).map(({ range, prevKv }) => ({ ...range, prevKv }));
/** revision as a fraction of the current one (resolved when run), so reads of the past, present and future occur. */
const rangeReqArb = fc.record({
  range: fc.oneof(rangeArb, prefixArb),
  limit: fc.constantFrom(0, 1, 2, 3),
  rev: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1.1, noNaN: true })),
  sortOrder: fc.constantFrom('NONE', 'ASCEND', 'DESCEND' as const),
  sortTarget: fc.constantFrom('KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE' as const),
  keysOnly: fc.boolean(),
  countOnly: fc.boolean(),
  minMod: fc.constantFrom(0, 0, 3, 6),
  maxCreate: fc.constantFrom(0, 0, 4, 8),
});
type RangeGen = typeof rangeReqArb extends fc.Arbitrary<infer T> ? T : never;

const compareArb: fc.Arbitrary<Compare> = fc.record({
  range: rangeArb,
  target: fc.constantFrom('VERSION', 'CREATE', 'MOD', 'VALUE', 'LEASE' as const),
  result: fc.constantFrom('EQUAL', 'NOT_EQUAL', 'GREATER', 'LESS' as const),
  n: fc.integer({ min: 0, max: 6 }),
  value: fc.constantFrom('x', 'y', '').map(b),
}).map(({ range, target, result, n, value }) => ({ ...range, target, result, version: n, createRevision: n, modRevision: n, lease: BigInt(n % 3), value }));

const leafOpArb: fc.Arbitrary<RequestOp> = fc.oneof(
  putArb.map((p) => ({ requestPut: { ...p, ignoreValue: false } })),
  delArb.map((d) => ({ requestDeleteRange: d })),
  rangeArb.map((r) => ({ requestRange: r })),
);
// Nested txns only put and range: etcd does not check a nested txn's puts against deletes in later sibling txns,
// a quirk the model's "no execution writes a key twice" rule does not share. The unit tests cover nesting rules.
const nestedOpArb: fc.Arbitrary<RequestOp> = fc.oneof(
  putArb.map((p) => ({ requestPut: { ...p, ignoreValue: false } })),
  rangeArb.map((r) => ({ requestRange: r })),
);
const nestedTxnArb: fc.Arbitrary<TxnRequest> = fc.record({
  compare: fc.array(compareArb, { maxLength: 2 }),
  success: fc.array(nestedOpArb, { maxLength: 2 }),
  failure: fc.array(nestedOpArb, { maxLength: 2 }),
});
const txnArb: fc.Arbitrary<TxnRequest> = fc.record({
  compare: fc.array(compareArb, { maxLength: 3 }),
  success: fc.array(fc.oneof({ weight: 4, arbitrary: leafOpArb }, { weight: 1, arbitrary: nestedTxnArb.map((t) => ({ requestTxn: t })) }), { maxLength: 5 }),
  failure: fc.array(leafOpArb, { maxLength: 3 }),
});

type Op =
  | { t: 'put'; req: PutRequest }
  | { t: 'del'; req: DeleteRangeRequest }
  | { t: 'txn'; req: TxnRequest }
  | { t: 'range'; gen: RangeGen }
  | { t: 'compact'; at: number }
  | { t: 'compactionStep' }
  | { t: 'hold' }
  | { t: 'flush' }
  | { t: 'reopen' }
  | { t: 'history'; from: number; range: { key: Uint8Array; rangeEnd?: Uint8Array } }
  | { t: 'leases' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: putArb.map((req) => ({ t: 'put' as const, req })) },
  { weight: 2, arbitrary: delArb.map((req) => ({ t: 'del' as const, req })) },
  { weight: 4, arbitrary: txnArb.map((req) => ({ t: 'txn' as const, req })) },
  { weight: 5, arbitrary: rangeReqArb.map((gen) => ({ t: 'range' as const, gen })) },
  { weight: 1, arbitrary: fc.double({ min: 0, max: 1.05, noNaN: true }).map((at) => ({ t: 'compact' as const, at })) },
  { weight: 2, arbitrary: fc.constant({ t: 'compactionStep' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'hold' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.record({ from: fc.double({ min: 0, max: 1.1, noNaN: true }), range: fc.oneof(rangeArb, prefixArb) }).map((h) => ({ t: 'history' as const, ...h })) },
  { weight: 1, arbitrary: fc.constant({ t: 'leases' as const }) },
);

/** The store and its backend, with an optional batch held open across writes (committed late, like a Raft batch). */
class Subject {
  held: BackendBatch | undefined;
  private constructor(
    readonly backend: MemoryBackend,
    public store: MvccStore,
  ) {}

  static async open(): Promise<Subject> {
    const backend = new MemoryBackend();
    return new Subject(backend, await MvccStore.open(backend, { config: { txnOpsMax: TXN_OPS_MAX, compactionChunkRevisions: 3 } }));
  }

  async write<R>(run: (batch: BackendBatch) => Promise<R> | R): Promise<R> {
    const batch = this.held ?? this.backend.batch();
    const out = await run(batch);
    if (this.held === undefined) await this.commit(batch);
    return out;
  }

  async commit(batch: BackendBatch): Promise<void> {
    await batch.write({ sync: false });
    this.store.committed(this.store.revision);
  }

  async flush(): Promise<void> {
    if (this.held !== undefined) await this.commit(this.held);
    this.held = undefined;
  }

  async reopen(): Promise<void> {
    await this.flush();
    this.store = await MvccStore.open(this.backend, { config: this.store.config });
  }
}

/** Run on both; they must agree on the outcome or on the error code. */
async function both<A, B>(store: () => Promise<A>, model: () => B, compare: (a: A, b: B) => void): Promise<void> {
  let a: A | undefined;
  let b: B | undefined;
  let ea: unknown;
  let eb: unknown;
  try {
    a = await store();
  } catch (e) {
    ea = e;
  }
  try {
    b = model();
  } catch (e) {
    eb = e;
  }
  if (ea !== undefined && !(ea instanceof MvccError)) throw ea;
  if (eb !== undefined && !(eb instanceof MvccError)) throw eb;
  expect((ea as MvccError | undefined)?.code).toBe((eb as MvccError | undefined)?.code);
  if (ea === undefined) compare(a as A, b as B);
}

function toRangeRequest(gen: RangeGen, model: MvccModel): RangeRequest {
  return {
    ...gen.range,
    limit: gen.limit,
    revision: gen.rev === 0 ? 0 : Math.floor(gen.rev * (model.revision + 1)),
    sortOrder: gen.sortOrder,
    sortTarget: gen.sortTarget,
    keysOnly: gen.keysOnly,
    countOnly: gen.countOnly,
    minModRevision: gen.minMod,
    maxCreateRevision: gen.maxCreate,
  };
}

/** Every key at every readable revision, as one range each. */
async function checkAllRevisions(subject: Subject, model: MvccModel): Promise<void> {
  expect(subject.store.revision).toBe(model.revision);
  expect(subject.store.compactRevision).toBe(model.compactRev);
  for (let rev = Math.max(1, model.compactRev); rev <= model.revision; rev++) {
    const req = { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), revision: rev };
    expect(await subject.store.range(req)).toEqual(model.range(req));
  }
}

/** The HLC of the n-th write: increasing, as the state machine's are, with wall and logical parts both in play. */
function hlcOfWrite(n: number): bigint {
  return ((HLC_WALL_START_MS + BigInt(n >> 2)) << 16n) | BigInt(n & 3);
}
const HLC_WALL_START_MS = 1_700_000_000_000n;

async function runOp(op: Op, subject: Subject, model: MvccModel, n: number): Promise<void> {
  const hlc = hlcOfWrite(n);
  switch (op.t) {
    case 'put':
      return both(
        () => subject.write((batch) => subject.store.put(op.req, batch, hlc)),
        () => model.put(op.req, hlc),
        (a, m) => {
          expect(a.response.prevKv).toEqual(m.prevKv);
          expect(a.events).toEqual(m.events);
        },
      );
    case 'del':
      return both(
        () => subject.write((batch) => subject.store.deleteRange(op.req, batch, hlc)),
        () => model.deleteRange(op.req, hlc),
        (a, m) => {
          expect([a.response.deleted, a.response.prevKvs]).toEqual([m.deleted, m.prevKvs]);
          expect(a.events).toEqual(m.events);
        },
      );
    case 'txn':
      return both(
        () => subject.write((batch) => subject.store.txn(op.req, batch, hlc)),
        () => model.txn(op.req, hlc),
        (a, m) => {
          expect(a.response.succeeded).toBe(m.succeeded);
          expect(a.response.responses).toEqual(m.responses);
          expect(a.response.header.revision).toBe(m.revision);
          expect(a.events).toEqual(m.events);
        },
      );
    case 'range': {
      const req = toRangeRequest(op.gen, model);
      return both(() => subject.store.range(req), () => model.range(req), (a, m) => expect(a).toEqual(m));
    }
    case 'compact': {
      const at = Math.floor(op.at * (model.revision + 1));
      return both(() => subject.write((batch) => subject.store.compact(at, batch)), () => model.compact(at), () => undefined);
    }
    case 'compactionStep':
      await subject.write((batch) => subject.store.compactionStep(batch));
      return;
    case 'hold':
      subject.held ??= subject.backend.batch();
      return;
    case 'flush':
      return subject.flush();
    case 'reopen':
      await subject.reopen();
      return checkAllRevisions(subject, model);
    case 'history': {
      const from = Math.max(model.compactRev + 1, Math.floor(op.from * (model.revision + 1)));
      const read = async () => {
        const out = [];
        for await (const evs of subject.store.events(from, op.range)) out.push(...evs);
        return out;
      };
      return both(read, () => model.history(from, op.range), (a, m) => expect(a).toEqual(m));
    }
    case 'leases':
      for (const id of [1n, 2n]) {
        const expected = model.range({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) }).kvs.filter((kv) => kv.lease === id).map((kv) => kv.key);
        expect(subject.store.keysWithLease(id)).toEqual(expected);
      }
  }
}

describe('MvccStore against the model', () => {
  it('agrees on random sequences of operations, compactions and reopens', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 10, maxLength: 80, size: 'max' }), async (ops) => {
        const subject = await Subject.open();
        const model = new MvccModel(TXN_OPS_MAX);
        for (const [n, op] of ops.entries()) await runOp(op, subject, model, n + 1);
        await checkAllRevisions(subject, model);
        await subject.reopen();
        await checkAllRevisions(subject, model);
      }),
      { numRuns: 300 },
    );
  });
});
