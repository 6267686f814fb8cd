// LevelBackend's scans across its read batches: order, bounds, limits, and a caller that stops while the next
// batch is being read ahead.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LevelBackend } from './backend.js';

/** More than two of iterate's 1,000-entry read batches. */
const KEYS = 2_500;
const key = (i: number): Uint8Array => new Uint8Array(Buffer.from(`k${String(i).padStart(5, '0')}`));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function filled(): Promise<LevelBackend> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-backend-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const backend = await LevelBackend.open(dir);
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
