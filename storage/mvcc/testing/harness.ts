// Test harness: a store over a backend, with each write committed the way the state machine does it (one batch
// per write, then committed()). Not part of the public API.
import { MemoryBackend, type Backend } from '../../backend.js';
import type { MvccConfig } from '../config.js';
import { MvccStore } from '../store.js';
import type { KeyValue, WriteResult } from '../types.js';
import type { KvBatch } from '../../backend.js';

export const b = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
export const s = (u: Uint8Array): string => Buffer.from(u).toString('latin1');

export class Harness {
  private constructor(
    readonly backend: Backend,
    public store: MvccStore,
    private readonly config: Partial<MvccConfig>,
  ) {}

  static async open(config: Partial<MvccConfig> = {}, backend: Backend = new MemoryBackend()): Promise<Harness> {
    return new Harness(backend, await MvccStore.open(backend, { config }), config);
  }

  /** Run one write into a fresh batch, commit it, and tell the store. */
  async write<R>(run: (store: MvccStore, batch: KvBatch) => Promise<WriteResult<R>>): Promise<WriteResult<R>> {
    const batch = this.backend.batch();
    const result = await run(this.store, batch);
    await batch.write({ sync: false });
    this.store.committed(result.revision);
    return result;
  }

  async put(key: string, value: string, lease = 0n): Promise<number> {
    return (await this.write((st, batch) => st.put({ key: b(key), value: b(value), lease }, batch))).revision;
  }

  async del(key: string, rangeEnd?: string): Promise<number> {
    return (await this.write((st, batch) => st.deleteRange({ key: b(key), rangeEnd: rangeEnd === undefined ? undefined : b(rangeEnd) }, batch))).revision;
  }

  async compact(rev: number, finish = true): Promise<void> {
    const batch = this.backend.batch();
    this.store.compact(rev, batch);
    await batch.write({ sync: false });
    if (finish) await this.finishCompaction();
  }

  async finishCompaction(): Promise<void> {
    for (;;) {
      const batch = this.backend.batch();
      const step = await this.store.compactionStep(batch);
      await batch.write({ sync: false });
      if (step.done) return;
    }
  }

  async reopen(): Promise<void> {
    this.store = await MvccStore.open(this.backend, { config: this.config });
  }
}

/** Every key-value of the backend, hex-encoded, in key order: byte-identical state compares equal. */
export async function dumpBackend(backend: Backend): Promise<string[]> {
  const out: string[] = [];
  for await (const [k, v] of backend.iterate({ gte: new Uint8Array([0]), lt: undefined })) {
    out.push(`${Buffer.from(k).toString('hex')}=${Buffer.from(v).toString('hex')}`);
  }
  return out;
}

/** A key-value as plain strings, for readable assertions. */
export function kvView(kv: KeyValue): { key: string; value: string; create: number; mod: number; version: number; lease: bigint } {
  return { key: s(kv.key), value: s(kv.value), create: kv.createRevision, mod: kv.modRevision, version: kv.version, lease: kv.lease };
}
