import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LevelBackend, MemoryBackend, type Backend, type BackendBatch } from './backend.js';
import { encodeCommand, type Command, type Op } from './command.js';
import { DEDUP_PREFIX } from './dedup/index.js';
import { HLC_RESERVATION_KEY, REVISION_INDEX_PREFIX } from './hlc/index.js';
import { ConfChangeType } from '../raft/types.js';
import type { KeyValue } from './mvcc/index.js';
import {
  backendReference,
  backendReferenceIndex,
  IMAGE_CHUNK_BYTES,
  installStateMachineImage,
  StateMachine,
  stateMachineImage,
  STATE_WRITE_DELAY_MS,
  STATE_WRITE_OPS_MAX,
  type AppliedCommand,
  type CommandResult,
} from './state-machine.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
let index = 0;
let hlc = 1_000_000n << 16n;
function cmd(op: Op, extra: Partial<Command> = {}): AppliedCommand {
  hlc += 1n << 16n;
  return { index: ++index, term: 1, payload: encodeCommand({ hlc, op, ...extra }) };
}
const put = (k: string, v: string, lease?: bigint): Op => ({ put: { key: enc(k), value: enc(v), ...(lease ? { lease } : {}) } });

async function dump(b: Backend): Promise<string[]> {
  const out: string[] = [];
  for await (const [k, v] of b.iterate({ gte: new Uint8Array(0), lt: undefined })) out.push(`${Buffer.from(k).toString('hex')}=${Buffer.from(v).toString('hex')}`);
  return out;
}

/** A MemoryBackend that counts reads and can hold back or fail batch writes. */
class CountingBackend extends MemoryBackend {
  gets = 0;
  getManys = 0;
  holdWrites = false;
  failWrites = false;
  writes = 0;
  /** The sync option of each write, in order. */
  readonly syncs: boolean[] = [];
  private held: Array<() => void> = [];
  override get(key: Uint8Array): Promise<Uint8Array | undefined> {
    this.gets++;
    return super.get(key);
  }
  override getMany(keys: readonly Uint8Array[]): Promise<Array<Uint8Array | undefined>> {
    if (keys.length > 0) this.getManys++;
    return super.getMany(keys);
  }
  override batch(): BackendBatch {
    const inner = super.batch();
    return {
      put: (k, v) => inner.put(k, v),
      del: (k) => inner.del(k),
      get length() {
        return inner.length;
      },
      write: async (o) => {
        this.writes++;
        this.syncs.push(o?.sync === true);
        if (this.failWrites) throw new Error('disk on fire');
        if (this.holdWrites) await new Promise<void>((resolve) => this.held.push(resolve));
        await inner.write(o);
      },
    };
  }
  release(): void {
    this.holdWrites = false;
    for (const f of this.held.splice(0)) f();
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('StateMachine', () => {
  it('applies writes at increasing revisions and persists the applied index in the same batch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-sm-'));
    dirs.push(dir);
    index = 0;
    let backend = await LevelBackend.open(dir);
    let sm = await StateMachine.open(backend);
    const results = await sm.apply([cmd(put('a', '1')), cmd(put('b', '2')), cmd({ deleteRange: { key: enc('a') } })]);
    expect(results.map((r) => r.revision)).toEqual([2, 3, 4]);
    expect(results[2]!.events.map((e) => e.type)).toEqual(['DELETE']);
    expect(sm.appliedIndex).toBe(3);
    await sm.flush();
    await backend.close();
    backend = await LevelBackend.open(dir);
    sm = await StateMachine.open(backend);
    expect(sm.appliedIndex).toBe(3);
    expect(sm.revision).toBe(4);
    const r = await sm.mvcc.range({ key: enc('b') });
    expect(new TextDecoder().decode(r.kvs[0]!.value)).toBe('2');
    await backend.close();
  });

  it('revokes a lease by deleting all its keys in one revision, beyond the txn operation limit', async () => {
    index = 0;
    const sm = await StateMachine.open(new MemoryBackend());
    await sm.apply([cmd({ leaseGrant: { id: 7n, ttlSeconds: 10 } })]);
    const puts = Array.from({ length: 200 }, (_, i) => cmd(put(`k${i}`, 'v', 7n)));
    await sm.apply(puts);
    const before = sm.revision;
    const [r] = await sm.apply([cmd({ leaseRevoke: { id: 7n } })]);
    expect(r!.error).toBeUndefined();
    expect(sm.revision).toBe(before + 1);
    expect(r!.events).toHaveLength(200);
    expect((await sm.mvcc.range({ key: enc('k'), rangeEnd: enc('l') })).count).toBe(0);
    expect(sm.leases.has(7n)).toBe(false);
  });

  it('refuses a put on an unknown lease with etcd\'s error, deterministically', async () => {
    index = 0;
    const sm = await StateMachine.open(new MemoryBackend());
    const [r] = await sm.apply([cmd(put('x', 'y', 99n))]);
    expect(r!.error).toEqual({ code: 'LEASE_NOT_FOUND', message: 'etcdserver: requested lease not found' });
    expect(sm.revision).toBe(1);
  });

  it('applies a retried request once and answers the retry with the first response', async () => {
    index = 0;
    const sm = await StateMachine.open(new MemoryBackend());
    const first = await sm.apply([cmd(put('k', 'v1'), { clientId: 'client-a', seq: 1 })]);
    const retry = await sm.apply([cmd(put('k', 'v1'), { clientId: 'client-a', seq: 1 })]);
    expect(retry[0]!.duplicate).toBe(true);
    expect(retry[0]!.response).toEqual(first[0]!.response);
    expect(sm.revision).toBe(2); // one revision, not two
    const next = await sm.apply([cmd(put('k', 'v2'), { clientId: 'client-a', seq: 2 })]);
    expect(next[0]!.revision).toBe(3);
    const stale = await sm.apply([cmd(put('k', 'old'), { clientId: 'client-a', seq: 1 })]);
    expect(stale[0]!.error?.code).toBe('STALE_SEQUENCE');
  });

  it('answers results with the same fields in the same order, whatever the path', async () => {
    index = 0;
    const sm = await StateMachine.open(new MemoryBackend());
    const [ok, refused] = await sm.apply([cmd(put('k', 'v'), { clientId: 'c', seq: 1 }), cmd(put('k', 'v', 42n))]);
    const [retry, deleted] = await sm.apply([cmd(put('k', 'v'), { clientId: 'c', seq: 1 }), cmd({ deleteRange: { key: enc('k') } })]);
    expect(Object.keys(ok!)).toEqual(['index', 'hlc', 'revision', 'response', 'events', 'op']);
    expect(Object.keys(refused!)).toEqual(['index', 'hlc', 'revision', 'error', 'events', 'op']);
    expect(Object.keys(retry!)).toEqual(['index', 'hlc', 'revision', 'response', 'events', 'duplicate', 'op']);
    expect(Object.keys(deleted!)).toEqual(['index', 'hlc', 'revision', 'response', 'events', 'op']);
    expect(retry!.events).toEqual([]);
    expect(retry!.events).not.toBe(ok!.events);
  });

  it('with the NOSPACE alarm takes deletes but refuses puts and lease grants', async () => {
    index = 0;
    const sm = await StateMachine.open(new MemoryBackend());
    await sm.apply([cmd(put('a', '1')), cmd({ alarm: { action: 'activate', alarm: 'NOSPACE' } })]);
    expect(sm.activeAlarms()).toEqual(['NOSPACE']);
    const [p, d, g] = await sm.apply([cmd(put('b', '2')), cmd({ deleteRange: { key: enc('a') } }), cmd({ leaseGrant: { id: 1n, ttlSeconds: 5 } })]);
    expect(p!.error).toEqual({ code: 'NO_SPACE', message: 'etcdserver: mvcc: database space exceeded' });
    expect(d!.error).toBeUndefined();
    expect(g!.error?.code).toBe('NO_SPACE');
    await sm.apply([cmd({ alarm: { action: 'deactivate', alarm: 'NOSPACE' } })]);
    const [ok] = await sm.apply([cmd(put('b', '2'))]);
    expect(ok!.error).toBeUndefined();
  });

  it('stops on a malformed entry instead of guessing, and leaves the applied state as it was', async () => {
    index = 0;
    const sm = await StateMachine.open(new MemoryBackend());
    await sm.apply([cmd(put('a', '1'))]);
    await expect(sm.apply([{ index: ++index, term: 1, payload: Uint8Array.of(9, 9, 9) }])).rejects.toThrow(/truncated value/);
    expect(sm.appliedIndex).toBe(1);
    expect(sm.revision).toBe(2);
  });

  it('never lets the HLC go backwards, whatever the proposer stamped', async () => {
    index = 0;
    const sm = await StateMachine.open(new MemoryBackend());
    const high = 5_000_000n << 16n;
    const [a] = await sm.apply([{ index: ++index, term: 1, payload: encodeCommand({ hlc: high, op: put('a', '1') }) }]);
    const [b] = await sm.apply([{ index: ++index, term: 1, payload: encodeCommand({ hlc: 1n, op: put('a', '2') }) }]);
    expect(a!.hlc).toBe(high);
    expect(b!.hlc).toBe(high + 1n);
  });

  it('gives byte-identical state on two members applying the same log', async () => {
    const log: AppliedCommand[] = [];
    index = 0;
    log.push(cmd({ leaseGrant: { id: 3n, ttlSeconds: 30 } }));
    for (let i = 0; i < 50; i++) log.push(cmd(put(`key${i % 7}`, `v${i}`, i % 3 === 0 ? 3n : undefined), { clientId: `c${i % 4}`, seq: i }));
    log.push(cmd({ txn: { compare: [{ key: enc('key1'), target: 'VERSION', result: 'GREATER', version: 0 }], success: [{ requestDeleteRange: { key: enc('key2') } }] } }));
    log.push(cmd({ compact: { revision: 20 } }));
    log.push(cmd({ leaseRevoke: { id: 3n } }));
    const a = new MemoryBackend();
    const b = new MemoryBackend();
    const smA = await StateMachine.open(a);
    const smB = await StateMachine.open(b);
    await smA.apply(log);
    for (let i = 0; i < log.length; i += 5) await smB.apply(log.slice(i, i + 5)); // batched differently
    while (await smA.compactionStep());
    while (await smB.compactionStep());
    expect(smA.mvcc.compactRevision).toBe(20);
    await smA.settled();
    await smB.settled();
    expect(await dump(b)).toEqual(await dump(a));
    expect(await smA.mvcc.hashKV(0)).toEqual(await smB.mvcc.hashKV(0));
  });

  it('keeps the create and mod HLC of every key version: across updates, new after delete, through compaction, reopen and an image', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-sm-'));
    dirs.push(dir);
    index = 0;
    let backend = await LevelBackend.open(dir);
    let sm = await StateMachine.open(backend);
    const one = async (op: Op, extra: Partial<Command> = {}): Promise<CommandResult> => (await sm.apply([cmd(op, extra)]))[0]!;
    const at = async (key: string, revision = 0): Promise<KeyValue> => (await sm.mvcc.range({ key: enc(key), revision })).kvs[0]!;

    const created = await one(put('a', '1'));
    const updated = await one(put('a', '2'));
    expect(updated.events[0]!.kv).toMatchObject({ createHlc: created.hlc, modHlc: updated.hlc });
    expect(updated.events[0]!.prevKv).toMatchObject({ createHlc: created.hlc, modHlc: created.hlc });
    // A stamp below the last one is moved up by the state machine; the row records the HLC the log gives.
    const lagging = (await sm.apply([{ index: ++index, term: 1, payload: encodeCommand({ hlc: 1n, op: put('a', '3') }) }]))[0]!;
    expect(lagging.hlc).toBe(updated.hlc + 1n);
    expect(await at('a')).toMatchObject({ version: 3, createHlc: created.hlc, modHlc: lagging.hlc });
    // Past versions answer their own HLCs.
    expect(await at('a', created.revision)).toMatchObject({ version: 1, createHlc: created.hlc, modHlc: created.hlc });
    expect(await at('a', updated.revision)).toMatchObject({ version: 2, createHlc: created.hlc, modHlc: updated.hlc });

    // A delete's tombstone carries the delete's HLC; a re-creation starts a new createHlc.
    const deleted = await one({ deleteRange: { key: enc('a'), prevKv: true } });
    expect(deleted.events[0]!.type).toBe('DELETE');
    expect(deleted.events[0]!.kv).toMatchObject({ createHlc: 0n, modHlc: deleted.hlc });
    expect(deleted.events[0]!.prevKv).toMatchObject({ createHlc: created.hlc, modHlc: lagging.hlc });
    const recreated = await one({ txn: { success: [{ requestPut: { key: enc('a'), value: enc('4') } }, { requestPut: { key: enc('b'), value: enc('x') } }] } });
    expect(recreated.events.map((e) => [e.kv.createHlc, e.kv.modHlc])).toEqual([
      [recreated.hlc, recreated.hlc],
      [recreated.hlc, recreated.hlc],
    ]);
    const again = await one(put('a', '5'));
    expect(await at('a')).toMatchObject({ version: 2, createHlc: recreated.hlc, modHlc: again.hlc });
    const history = [];
    for await (const evs of sm.mvcc.events(0, { key: enc('a') })) history.push(...evs.map((e) => [e.type, e.kv.createHlc, e.kv.modHlc]));
    expect(history).toEqual([
      ['PUT', created.hlc, created.hlc],
      ['PUT', created.hlc, updated.hlc],
      ['PUT', created.hlc, lagging.hlc],
      ['DELETE', 0n, deleted.hlc],
      ['PUT', recreated.hlc, recreated.hlc],
      ['PUT', recreated.hlc, again.hlc],
    ]);

    // Compact away the row that created 'a' now, reopen (the index is rebuilt from the newest row), update again.
    await one({ compact: { revision: again.revision } });
    while (await sm.compactionStep());
    await sm.flush();
    await backend.close();
    backend = await LevelBackend.open(dir);
    sm = await StateMachine.open(backend);
    const afterReopen = await one(put('a', '6'));
    expect(afterReopen.events[0]!.kv).toMatchObject({ version: 3, createHlc: recreated.hlc, modHlc: afterReopen.hlc });

    // A member installed from an image applies the next command to the same bytes, createHlc included.
    const image = new MemoryBackend();
    await sm.settled(); // the image is read from the backend: every applied batch must be written first
    await installStateMachineImage(image, stateMachineImage(backend));
    const smB = await StateMachine.open(image);
    const next = cmd(put('b', 'y'));
    const [ra] = await sm.apply([next]);
    const [rb] = await smB.apply([next]);
    expect(rb!.events[0]!.kv).toMatchObject({ version: 2, createHlc: recreated.hlc, modHlc: ra!.hlc });
    expect(rb!.events).toEqual(ra!.events);
    await sm.settled();
    await smB.settled();
    const memberLocal = ['local/', 'hlc/c/'].map((p) => Buffer.from(p).toString('hex'));
    expect(await dump(image)).toEqual((await dump(backend)).filter((pair) => !memberLocal.some((p) => pair.startsWith(p))));
    expect(await smB.mvcc.hashKV(0)).toEqual(await sm.mvcc.hashKV(0));
    await backend.close();
  });

  it('reads the previous rows of a batch in one round trip, and its prev_kv events stay exact', async () => {
    index = 0;
    const backend = new CountingBackend();
    // Without the row cache, which would hold the rows written below and leave nothing to read.
    const sm = await StateMachine.open(backend, { mvcc: { rowCacheBytes: 0 } });
    await sm.apply([cmd(put('a', 'a1')), cmd(put('b', 'b1')), cmd(put('c', 'c1'))]);
    await sm.settled(); // rows are read from the backend only once written
    backend.gets = 0;
    backend.getManys = 0;
    const txn: Op = { txn: { compare: [{ key: enc('c'), target: 'VALUE', result: 'EQUAL', value: enc('c1') }], success: [{ requestPut: { key: enc('c'), value: enc('c2') } }], failure: [] } };
    const results = await sm.apply([cmd(put('a', 'a2')), cmd(put('a', 'a3')), cmd({ deleteRange: { key: enc('b') } }), cmd(txn)]);
    const prev = (r: CommandResult): string[] => r.events.map((e) => `${e.type} ${new TextDecoder().decode(e.kv.key)} prev=${e.prevKv === undefined ? '-' : new TextDecoder().decode(e.prevKv.value)}`);
    expect(results.flatMap(prev)).toEqual(['PUT a prev=a1', 'PUT a prev=a2', 'DELETE b prev=b1', 'PUT c prev=c1']);
    expect(backend.getManys).toBe(1);
    expect(backend.gets).toBe(0);
  });

  it('with the row cache, overwrites read their previous rows from memory once written', async () => {
    index = 0;
    const backend = new CountingBackend();
    const sm = await StateMachine.open(backend);
    await sm.apply([cmd(put('a', 'a1')), cmd(put('b', 'b1'))]);
    await sm.settled();
    backend.gets = 0;
    backend.getManys = 0;
    const results = await sm.apply([cmd(put('a', 'a2')), cmd({ deleteRange: { key: enc('b') } })]);
    expect(results.flatMap((r) => r.events.map((e) => `${e.type} prev=${e.prevKv === undefined ? '-' : new TextDecoder().decode(e.prevKv.value)}`))).toEqual(['PUT prev=a1', 'DELETE prev=b1']);
    expect(backend.getManys + backend.gets).toBe(0);
  });

  it('answers before its batch reaches the backend, serves the rows from memory meanwhile, and settles', async () => {
    index = 0;
    const backend = new CountingBackend();
    const sm = await StateMachine.open(backend);
    backend.holdWrites = true;
    await sm.apply([cmd(put('a', '1'))]);
    expect(await dump(backend)).toEqual([]); // nothing written yet
    const r = await sm.mvcc.range({ key: enc('a') });
    expect(new TextDecoder().decode(r.kvs[0]!.value)).toBe('1');
    let settled = false;
    const settling = sm.settled().then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(false);
    backend.release();
    await settling;
    expect((await dump(backend)).length).toBeGreaterThan(0);
  });

  it('lets applied batches share one backend write, in apply order, and writes at once past the size limit', async () => {
    index = 0;
    const backend = new CountingBackend();
    const sm = await StateMachine.open(backend);
    for (let i = 0; i < 5; i++) await sm.apply([cmd(put(`k${i}`, `v${i}`))]);
    expect(backend.writes).toBe(0); // staged, answered, readable
    expect(new TextDecoder().decode((await sm.mvcc.range({ key: enc('k4') })).kvs[0]!.value)).toBe('v4');
    await new Promise((resolve) => setTimeout(resolve, STATE_WRITE_DELAY_MS + 30));
    expect(backend.writes).toBe(1);
    expect((await StateMachine.open(backend)).appliedIndex).toBe(5);
    // A conf change writes the open batch before its own, so the applied index on disk never goes back.
    await sm.apply([cmd(put('k5', 'v5'))]);
    await sm.applyConfChange(++index, { type: ConfChangeType.AddVoter, nodeId: 9, context: new Uint8Array(0) });
    expect(backend.writes).toBe(3);
    const reopened = await StateMachine.open(backend);
    expect(reopened.appliedIndex).toBe(7);
    expect(new TextDecoder().decode((await reopened.mvcc.range({ key: enc('k5') })).kvs[0]!.value)).toBe('v5');
    // One batch of STATE_WRITE_OPS_MAX operations or more is written without waiting.
    await sm.apply(Array.from({ length: STATE_WRITE_OPS_MAX / 2 }, (_, i) => cmd(put(`big${i}`, 'x'))));
    expect(backend.writes).toBe(4);
    await sm.settled();
  });

  it('drops the open batch when an apply fails half-way, and refuses to flush an applied index it did not write', async () => {
    index = 0;
    const backend = new CountingBackend();
    const sm = await StateMachine.open(backend);
    await sm.apply([cmd(put('a', '1'))]); // staged in the open batch
    const garbage: AppliedCommand = { index: ++index + 1, term: 1, payload: Uint8Array.of(0xff, 0xff, 0xff) };
    await expect(sm.apply([cmd(put('b', '2')), garbage])).rejects.toThrow();
    await expect(sm.flush()).rejects.toThrow();
    await expect(sm.apply([cmd(put('c', '3'))])).rejects.toThrow();
    expect(backend.writes).toBe(0);
    expect(await dump(backend)).toEqual([]); // after a restart the WAL replays all of it
  });

  it('fails every later apply, flush and sync once a backend write failed', async () => {
    index = 0;
    const backend = new CountingBackend();
    const sm = await StateMachine.open(backend);
    backend.failWrites = true;
    await sm.apply([cmd(put('a', '1'))]);
    await expect(sm.syncBehindApplied()).rejects.toThrow('disk on fire'); // queued, and its write failed
    await expect(sm.settled()).rejects.toThrow('disk on fire');
    await expect(sm.apply([cmd(put('b', '2'))])).rejects.toThrow('disk on fire');
    await expect(sm.flush()).rejects.toThrow('disk on fire');
    const writes = backend.writes;
    await expect(sm.syncBehindApplied()).rejects.toThrow('disk on fire'); // kept: refused before queueing
    expect(backend.writes).toBe(writes);
  });

  it('syncs what was applied behind the applied batches, while later applies go on', async () => {
    index = 0;
    const backend = new CountingBackend();
    const sm = await StateMachine.open(backend);
    await sm.apply([cmd(put('a', '1')), cmd(put('b', '2'))]); // staged in the open batch
    backend.holdWrites = true;
    let durable = false;
    const sync = sm.syncBehindApplied().then(() => (durable = true));
    // Applies after it stage and answer at once, readable from memory, while the sync has not landed.
    const [r] = await sm.apply([cmd(put('c', '3'))]);
    expect(r!.revision).toBe(4);
    expect(new TextDecoder().decode((await sm.mvcc.range({ key: enc('c') })).kvs[0]!.value)).toBe('3');
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(durable).toBe(false);
    backend.release();
    await sync;
    await sm.settled();
    // The open batch first, then the synced write of the applied index, then the later apply's batch.
    expect(backend.syncs).toEqual([false, true, false]);
    expect((await StateMachine.open(backend)).appliedIndex).toBe(3);
  });

  it('moves its whole state through a chunked image into another member', async () => {
    index = 0;
    const a = new MemoryBackend();
    // A revision-time index past its bound, so its oldest chunk pair holds dropped records too.
    const smA = await StateMachine.open(a, { revisionTime: { entriesMax: 2500, chunkRecords: 1000 } });
    await smA.apply([cmd({ leaseGrant: { id: 4n, ttlSeconds: 60 } })]);
    await smA.apply(Array.from({ length: 3000 }, (_, i) => cmd(put(`key-${i}`, 'x'.repeat(200), i % 2 === 0 ? 4n : undefined))));
    await smA.settled();
    const b = new MemoryBackend();
    const stale = await StateMachine.open(b);
    await stale.apply([cmd(put('only-on-b', '1'))]);
    await stale.settled();
    let chunks = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const c of stateMachineImage(a)) {
        chunks++;
        expect(c.byteLength).toBeLessThan(2 * 256 * 1024);
        yield c;
      }
    }
    await installStateMachineImage(b, counted());
    expect(chunks).toBeGreaterThan(1);
    // Every pair travels as it is, except the revision-time index's chunk pairs: one pair per live record instead,
    // the layout every build reads (so an earlier build can install this image).
    const indexHex = Buffer.from(REVISION_INDEX_PREFIX).toString('hex');
    const chunkHex = Buffer.from('kt/c/').toString('hex');
    const [dumpA, dumpB] = [await dump(a), await dump(b)];
    expect(dumpB.filter((p) => !p.startsWith(indexHex))).toEqual(dumpA.filter((p) => !p.startsWith(indexHex)));
    expect(dumpA.filter((p) => p.startsWith(chunkHex))).toHaveLength(3);
    expect(dumpB.filter((p) => p.startsWith(indexHex))).toHaveLength(2500 + 1); // the records and the dropped-through pair
    const smB = await StateMachine.open(b);
    expect(smB.revisionTime.size).toBe(2500);
    for (let r = 1; r <= smA.revision + 1; r++) expect(smB.revisionTime.hlcOfRevision(r)).toBe(smA.revisionTime.hlcOfRevision(r));
    expect(smB.appliedIndex).toBe(smA.appliedIndex);
    expect(smB.mvcc.keysWithLease(4n)).toHaveLength(1500);
    expect(await smB.mvcc.hashKV(0)).toEqual(await smA.mvcc.hashKV(0));
  });

  it('frames every replicated pair in key order, whole, with a pair larger than a chunk in a chunk of its own', async () => {
    const backend = new MemoryBackend();
    const pairs: Array<[string, Uint8Array]> = [
      ['a', new Uint8Array(10).fill(1)],
      ['b', new Uint8Array(IMAGE_CHUNK_BYTES + 5).fill(2)],
      ...Array.from({ length: 2000 }, (_, i): [string, Uint8Array] => [`c${String(i).padStart(5, '0')}`, new Uint8Array(300).fill(i % 251)]),
    ];
    const batch = backend.batch();
    for (const [k, v] of pairs) batch.put(new TextEncoder().encode(k), v);
    await batch.write({ sync: false });
    const chunks: Uint8Array[] = [];
    for await (const c of stateMachineImage(backend)) chunks.push(c);
    // The stream is the frames back to back, whatever the chunking; no frame is split between chunks.
    const expected = Buffer.concat(
      pairs.map(([k, v]) => {
        const key = Buffer.from(k);
        const head = Buffer.alloc(4);
        head.writeUInt32BE(key.byteLength);
        const len = Buffer.alloc(4);
        len.writeUInt32BE(v.byteLength);
        return Buffer.concat([head, key, len, v]);
      }),
    );
    expect(Buffer.compare(Buffer.concat(chunks), expected)).toBe(0);
    expect(chunks.filter((c) => c.byteLength > IMAGE_CHUNK_BYTES)).toHaveLength(1);
    expect(chunks.every((c) => c.byteLength <= IMAGE_CHUNK_BYTES || c.byteLength === IMAGE_CHUNK_BYTES + 5 + 9)).toBe(true);
  });

  it('tells a backend reference from an image, and refuses to install one without touching the backend', async () => {
    const ref = backendReference(123_456_789);
    expect(backendReferenceIndex(ref)).toBe(123_456_789);
    expect(backendReferenceIndex(ref.subarray(1))).toBeUndefined();
    const flipped = Uint8Array.from(ref);
    flipped[6]! ^= 1;
    expect(backendReferenceIndex(flipped)).toBeUndefined();
    // An image never reads as a reference: its first frame has a key, so its first four bytes are not zero.
    const backend = new MemoryBackend();
    const batch = backend.batch();
    batch.put(new TextEncoder().encode('k'), new Uint8Array(ref.byteLength - 9));
    await batch.write({ sync: false });
    const chunks: Uint8Array[] = [];
    for await (const c of stateMachineImage(backend)) chunks.push(c);
    expect(Buffer.concat(chunks).byteLength).toBe(ref.byteLength);
    expect(backendReferenceIndex(Buffer.concat(chunks))).toBeUndefined();

    async function* once(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
      yield* parts;
    }
    await expect(installStateMachineImage(backend, once(ref))).rejects.toThrow('holds no image, only a reference');
    expect(await dump(backend)).toEqual([`${Buffer.from('k').toString('hex')}=${'00'.repeat(ref.byteLength - 9)}`]); // untouched
    // Cut in pieces it is not recognised up front, but its zero key length still stops the install.
    await expect(installStateMachineImage(new MemoryBackend(), once(ref.subarray(0, 10), ref.subarray(10)))).rejects.toThrow('empty key');
  });
});

describe('key order (docs/storage.md, "Key order and LevelDB compaction")', () => {
  it('puts every family written with nearly every batch after every revision row', () => {
    const lastRow = Buffer.concat([Buffer.from('k/'), Buffer.alloc(16, 0xff)]);
    const hot = { index: REVISION_INDEX_PREFIX, exactlyOnce: DEDUP_PREFIX, clock: HLC_RESERVATION_KEY, applied: Buffer.from('sm/applied') };
    for (const [name, key] of Object.entries(hot)) expect([name, Buffer.compare(lastRow, Buffer.from(key))]).toEqual([name, -1]);
  });
});
