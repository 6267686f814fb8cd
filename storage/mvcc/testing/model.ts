// A deliberately simple model of etcd's MVCC semantics for property tests: the whole key space as a full
// snapshot per revision, a compact revision, and nothing else. No index, no generations, no backend, no sub
// revisions. Written from etcd's documented behaviour, not from the store's code. Each write is told its HLC
// (as the state machine tells the store) and every version keeps it as modHlc, with createHlc that of the write
// that created the key (kept across updates, new after a delete).
import { MvccError, MVCC_ERROR_MESSAGES } from '../errors.js';
import type { Compare, DeleteRangeRequest, KeyValue, MvccEvent, PutRequest, RangeRequest, RangeResponse, RequestOp, ResponseOp, TxnRequest } from '../types.js';

type Snapshot = Map<string, KeyValue>;
const EMPTY = new Uint8Array(0);
const str = (u: Uint8Array): string => Buffer.from(u).toString('latin1');
const fail = (code: keyof typeof MVCC_ERROR_MESSAGES): never => {
  throw new MvccError(code, MVCC_ERROR_MESSAGES[code]);
};
const cmpBytes = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b);

function inRange(key: string, r: { key: Uint8Array; rangeEnd?: Uint8Array | undefined }): boolean {
  const from = str(r.key);
  if (r.rangeEnd === undefined || r.rangeEnd.length === 0) return key === from;
  if (r.rangeEnd.length === 1 && r.rangeEnd[0] === 0) return key >= from;
  return key >= from && key < str(r.rangeEnd);
}

interface Working {
  snap: Snapshot;
  changed: boolean;
  rev: number;
  hlc: bigint;
  events: MvccEvent[];
}

export class MvccModel {
  /** snaps[r] is the key space at revision r; revision 1 is the empty start. */
  private snaps: Snapshot[] = [new Map(), new Map()];
  private eventsAt: MvccEvent[][] = [[], []];
  compactRev = -1;

  constructor(private readonly txnOpsMax: number) {}

  get revision(): number {
    return this.snaps.length - 1;
  }

  range(req: RangeRequest, view?: Working): RangeResponse {
    const cur = view === undefined ? this.revision : view.changed ? view.rev : view.rev - 1;
    let rev = req.revision ?? 0;
    if (rev > cur) fail('FUTURE_REVISION');
    if (rev <= 0) rev = cur;
    if (rev < this.compactRev) fail('COMPACTED');
    const snap = view !== undefined && rev === view.rev ? view.snap : this.snaps[rev]!;
    const all = [...snap.values()].filter((kv) => inRange(str(kv.key), req)).sort((a, b) => cmpBytes(a.key, b.key));
    const header = { revision: cur };
    if (req.countOnly === true) return { header, kvs: [], more: false, count: all.length };
    let kvs = all.filter(
      (kv) =>
        (!req.maxModRevision || kv.modRevision <= req.maxModRevision) &&
        (!req.minModRevision || kv.modRevision >= req.minModRevision) &&
        (!req.maxCreateRevision || kv.createRevision <= req.maxCreateRevision) &&
        (!req.minCreateRevision || kv.createRevision >= req.minCreateRevision),
    );
    const target = req.sortTarget ?? 'KEY';
    const order = req.sortOrder ?? 'NONE';
    const field = (kv: KeyValue): number | Uint8Array =>
      target === 'VERSION' ? kv.version : target === 'CREATE' ? kv.createRevision : target === 'MOD' ? kv.modRevision : target === 'VALUE' ? kv.value : kv.key;
    const cmp = (a: KeyValue, b: KeyValue): number => {
      const x = field(a);
      const y = field(b);
      return typeof x === 'number' ? x - (y as number) : cmpBytes(x, y as Uint8Array);
    };
    if (order === 'DESCEND') kvs.sort((a, b) => cmp(b, a));
    else if (order === 'ASCEND' || target !== 'KEY') kvs.sort(cmp);
    const limit = req.limit && req.limit > 0 ? req.limit : Infinity;
    const more = kvs.length > limit;
    kvs = kvs.slice(0, limit);
    if (req.keysOnly === true) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY }));
    return { header, kvs, more, count: all.length };
  }

  put(req: PutRequest, hlc: bigint): { prevKv?: KeyValue; events: MvccEvent[] } {
    if (req.ignoreValue === true && req.value.length > 0) fail('VALUE_PROVIDED');
    if (req.ignoreLease === true && (req.lease ?? 0n) !== 0n) fail('LEASE_PROVIDED');
    this.checkPut(req);
    const w = this.begin(hlc);
    const prevKv = this.applyPut(w, req);
    this.end(w);
    return { ...(req.prevKv === true && prevKv ? { prevKv } : {}), events: w.events };
  }

  deleteRange(req: DeleteRangeRequest, hlc: bigint): { deleted: number; prevKvs: KeyValue[]; events: MvccEvent[] } {
    const w = this.begin(hlc);
    const prev = this.applyDelete(w, req);
    this.end(w);
    return { deleted: prev.length, prevKvs: req.prevKv === true ? prev : [], events: w.events };
  }

  txn(req: TxnRequest, hlc: bigint): { succeeded: boolean; responses: ResponseOp[]; revision: number; events: MvccEvent[] } {
    this.checkLimits(req, this.txnOpsMax);
    this.checkDuplicates(req);
    const pre = this.snaps[this.revision]!;
    const w = this.begin(hlc);
    // All compares on the path, nested ones too, see the state before the txn; so do the put and range checks.
    const plan = this.planTxn(req, pre);
    const out = this.runTxn(w, req, plan);
    this.end(w);
    return { ...out, revision: this.revision, events: w.events };
  }

  compact(rev: number): void {
    if (rev <= this.compactRev) fail('COMPACTED');
    if (rev > this.revision) fail('FUTURE_REVISION');
    this.compactRev = rev;
  }

  /** Events at revisions fromRev..current for the range (fromRev above the compact revision). */
  history(fromRev: number, r: { key: Uint8Array; rangeEnd?: Uint8Array }): MvccEvent[] {
    if (fromRev < this.compactRev) fail('COMPACTED');
    return this.eventsAt.slice(Math.max(fromRev, 0)).flat().filter((e) => inRange(str(e.kv.key), r)).map((e) => ({ type: e.type, kv: e.kv }));
  }

  // ---- internals

  private begin(hlc: bigint): Working {
    return { snap: new Map(this.snaps[this.revision]!), changed: false, rev: this.revision + 1, hlc, events: [] };
  }

  private end(w: Working): void {
    if (!w.changed) return;
    this.snaps.push(w.snap);
    this.eventsAt.push(w.events);
  }

  private checkPut(req: PutRequest, snap = this.snaps[this.revision]!): void {
    if ((req.ignoreValue === true || req.ignoreLease === true) && !snap.has(str(req.key))) fail('KEY_NOT_FOUND');
  }

  private applyPut(w: Working, req: PutRequest): KeyValue | undefined {
    const k = str(req.key);
    const prev = w.snap.get(k);
    const kv: KeyValue = {
      key: Uint8Array.from(req.key),
      value: req.ignoreValue === true ? prev!.value : Uint8Array.from(req.value),
      lease: req.ignoreLease === true ? prev!.lease : (req.lease ?? 0n),
      createRevision: prev?.createRevision ?? w.rev,
      modRevision: w.rev,
      version: (prev?.version ?? 0) + 1,
      createHlc: prev?.createHlc ?? w.hlc,
      modHlc: w.hlc,
    };
    w.snap.set(k, kv);
    w.changed = true;
    w.events.push(prev ? { type: 'PUT', kv, prevKv: prev } : { type: 'PUT', kv });
    return prev;
  }

  private applyDelete(w: Working, req: DeleteRangeRequest): KeyValue[] {
    const prev = [...w.snap.values()].filter((kv) => inRange(str(kv.key), req)).sort((a, b) => cmpBytes(a.key, b.key));
    for (const p of prev) {
      w.snap.delete(str(p.key));
      w.changed = true;
      w.events.push({ type: 'DELETE', kv: { key: p.key, value: EMPTY, lease: 0n, createRevision: 0, modRevision: w.rev, version: 0, createHlc: 0n, modHlc: w.hlc }, prevKv: p });
    }
    return prev;
  }

  private checkLimits(req: TxnRequest, max: number): void {
    const widest = Math.max(req.compare?.length ?? 0, req.success?.length ?? 0, req.failure?.length ?? 0);
    if (widest > max) fail('TOO_MANY_OPS');
    for (const op of [...(req.success ?? []), ...(req.failure ?? [])]) {
      if ('requestTxn' in op) this.checkLimits(op.requestTxn, max - widest);
      if ('requestPut' in op) {
        if (op.requestPut.ignoreValue === true && op.requestPut.value.length > 0) fail('VALUE_PROVIDED');
      }
    }
  }

  /** Every way the txn could run (each nested txn taking either branch): no key put twice, none put and deleted. */
  private checkDuplicates(req: TxnRequest): void {
    type Exec = { puts: string[]; dels: DeleteRangeRequest[] };
    const executions = (ops: readonly RequestOp[]): Exec[] => {
      let acc: Exec[] = [{ puts: [], dels: [] }];
      for (const op of ops) {
        if ('requestPut' in op) acc = acc.map((e) => ({ ...e, puts: [...e.puts, str(op.requestPut.key)] }));
        else if ('requestDeleteRange' in op) acc = acc.map((e) => ({ ...e, dels: [...e.dels, op.requestDeleteRange] }));
        else if ('requestTxn' in op) {
          const alts = [...executions(op.requestTxn.success ?? []), ...executions(op.requestTxn.failure ?? [])];
          acc = acc.flatMap((e) => alts.map((x) => ({ puts: [...e.puts, ...x.puts], dels: [...e.dels, ...x.dels] })));
        }
      }
      return acc;
    };
    for (const e of [...executions(req.success ?? []), ...executions(req.failure ?? [])]) {
      if (new Set(e.puts).size !== e.puts.length) fail('DUPLICATE_KEY');
      if (e.puts.some((k) => e.dels.some((d) => inRange(k, d)))) fail('DUPLICATE_KEY');
    }
  }

  private compare(c: Compare, snap: Snapshot): boolean {
    const kvs = [...snap.values()].filter((kv) => inRange(str(kv.key), c));
    if (kvs.length === 0) {
      if (c.target === 'VALUE') return false;
      kvs.push({ key: EMPTY, value: EMPTY, lease: 0n, createRevision: 0, modRevision: 0, version: 0 });
    }
    return kvs.every((kv) => {
      const [x, y] =
        c.target === 'VALUE'
          ? [cmpBytes(kv.value, c.value ?? EMPTY), 0]
          : c.target === 'VERSION'
            ? [kv.version, c.version ?? 0]
            : c.target === 'CREATE'
              ? [kv.createRevision, c.createRevision ?? 0]
              : c.target === 'MOD'
                ? [kv.modRevision, c.modRevision ?? 0]
                : [kv.lease, c.lease ?? 0n];
      const sign = x < y ? -1 : x > y ? 1 : 0;
      return c.result === 'EQUAL' ? sign === 0 : c.result === 'NOT_EQUAL' ? sign !== 0 : c.result === 'GREATER' ? sign > 0 : sign < 0;
    });
  }

  private planTxn(req: TxnRequest, pre: Snapshot): boolean[] {
    // Evaluate every compare on the path first, then check puts on the path, then ranges: etcd's order.
    const plan: boolean[] = [];
    const chosen: RequestOp[] = [];
    const walk = (t: TxnRequest): void => {
      const ok = (t.compare ?? []).every((c) => this.compare(c, pre));
      plan.push(ok);
      for (const op of (ok ? t.success : t.failure) ?? []) {
        if ('requestTxn' in op) walk(op.requestTxn);
        else chosen.push(op);
      }
    };
    walk(req);
    for (const op of chosen) if ('requestPut' in op) this.checkPut(op.requestPut, pre);
    for (const op of chosen) {
      if (!('requestRange' in op) || !op.requestRange.revision) continue;
      if (op.requestRange.revision > this.revision) fail('FUTURE_REVISION');
      if (op.requestRange.revision < this.compactRev) fail('COMPACTED');
    }
    return plan;
  }

  private runTxn(w: Working, req: TxnRequest, plan: boolean[]): { succeeded: boolean; responses: ResponseOp[] } {
    const succeeded = plan.shift()!;
    const responses: ResponseOp[] = [];
    for (const op of (succeeded ? req.success : req.failure) ?? []) {
      if ('requestRange' in op) responses.push({ responseRange: this.range(op.requestRange, w) });
      else if ('requestPut' in op) {
        const prev = this.applyPut(w, op.requestPut);
        responses.push({ responsePut: { header: { revision: w.rev }, ...(op.requestPut.prevKv === true && prev ? { prevKv: prev } : {}) } });
      } else if ('requestDeleteRange' in op) {
        const prev = this.applyDelete(w, op.requestDeleteRange);
        const revision = w.changed ? w.rev : w.rev - 1;
        responses.push({ responseDeleteRange: { header: { revision }, deleted: prev.length, prevKvs: op.requestDeleteRange.prevKv === true ? prev : [] } });
      } else {
        const nested = this.runTxn(w, op.requestTxn, plan);
        responses.push({ responseTxn: { header: { revision: w.changed ? w.rev : w.rev - 1 }, ...nested } });
      }
    }
    return { succeeded, responses };
  }
}
