// LevelBackend's scans across its read batches: order, bounds, limits, and a caller that stops while the next
// batch is being read ahead.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LevelBackend, MemoryBackend, type Backend } from './backend.js';

/** More than two of iterate's 1,000-entry read batches. */
const KEYS = 2_500;
const key = (i: number): Uint8Array => new Uint8Array(Buffer.from(`k${String(i).padStart(5, '0')}`));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function filled(kind: 'level' | 'memory' = 'level'): Promise<Backend> {
  let backend: Backend;
  if (kind === 'memory') {
    backend = new MemoryBackend();
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-backend-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    backend = await LevelBackend.open(dir);
  }
  cleanups.push(() => backend.close());
  const batch = backend.batch();
  for (let i = 0; i < KEYS; i++) batch.put(key(i), new Uint8Array([i & 0xff]));
  await batch.write({ sync: false });
  return backend;
}

async function keysOf(it: AsyncIterable<[Uint8Array, Uint8Array]>, stopAfter = Infinity): Promise<string[]> {
  const out: string[] = [];
  for await (const [k] of it) {
    out.push(Buffer.from(k).toString());
    if (out.length >= stopAfter) break;
  }
  return out;
}

const names = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => Buffer.from(key(from + i)).toString());

describe('LevelBackend.iterate', () => {
  it('returns every pair in range, in order, across read batches, forwards and backwards and with a limit', async () => {
    const b = await filled();
    expect(await keysOf(b.iterate({ gte: key(0), lt: undefined }))).toEqual(names(0, KEYS));
    expect(await keysOf(b.iterate({ gte: key(10), lt: key(2_210) }))).toEqual(names(10, 2_210));
    expect(await keysOf(b.iterate({ gte: key(0), lt: key(KEYS) }, { reverse: true }))).toEqual(names(0, KEYS).reverse());
    expect(await keysOf(b.iterate({ gte: key(5), lt: undefined }, { limit: 1_500 }))).toEqual(names(5, 1_505));
  });

  it('a caller that stops mid-scan (a read-ahead in flight) leaves the backend usable and closable', async () => {
    const b = await filled();
    // Stopping at 1,001 leaves the second batch being read ahead when the loop breaks.
    expect(await keysOf(b.iterate({ gte: key(0), lt: undefined }), 1_001)).toEqual(names(0, 1_001));
    expect(await keysOf(b.iterate({ gte: key(0), lt: undefined }), 10)).toEqual(names(0, 10));
    expect(await keysOf(b.iterate({ gte: key(2_400), lt: undefined }))).toEqual(names(2_400, KEYS));
  });
});

describe.each(['level', 'memory'] as const)('%s backend: scan', (kind) => {
  it('visits every pair in range once, in order, and a throwing visitor ends the scan with its error', async () => {
    const b = await filled(kind);
    const seen: string[] = [];
    await b.scan({ gte: key(3), lt: key(2_203) }, (k, v) => {
      seen.push(Buffer.from(k).toString());
      expect([...v]).toEqual([(3 + seen.length - 1) & 0xff]);
    });
    expect(seen).toEqual(names(3, 2_203));
    let n = 0;
    const stop = b.scan({ gte: key(0), lt: undefined }, () => {
      if (++n === 1_500) throw new Error('visitor gave up');
    });
    await expect(stop).rejects.toThrow('visitor gave up');
    expect(n).toBe(1_500);
    expect(await keysOf(b.iterate({ gte: key(2_498), lt: undefined }))).toEqual(names(2_498, KEYS)); // still usable
  });
});
