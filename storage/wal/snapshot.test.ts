import { open, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { crc32c } from '../crc32c.js';
import { SNAPSHOT_CHUNK_BYTES_MAX, SnapshotStore, snapshotFileName } from './snapshot.js';
import { WalError } from './errors.js';
import { captureLogger, CONF, payloadFor, tempDir } from './testutil.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('snap'));
});
afterEach(() => cleanup());

const MB = 1024 * 1024;
const CHUNK = 64 * 1024;

/** A generated multi-megabyte image, produced piece by piece so the test itself never holds it whole. */
function* image(totalBytes: number, pieceBytes: number): Generator<Uint8Array> {
  for (let off = 0; off < totalBytes; off += pieceBytes) {
    const n = Math.min(pieceBytes, totalBytes - off);
    const p = new Uint8Array(n);
    for (let i = 0; i < n; i++) p[i] = ((off + i) * 2654435761) >>> 24;
    yield p;
  }
}

async function writeImage(store: SnapshotStore, index: number, totalBytes: number, pieceBytes: number): Promise<number> {
  const w = await store.create({ index, term: 2, confState: CONF });
  let crc = 0;
  for (const p of image(totalBytes, pieceBytes)) {
    crc = crc32c(p, crc);
    await w.write(p);
  }
  await w.commit();
  return crc;
}

async function readAll(store: SnapshotStore, index: number): Promise<{ crc: number; total: number; largest: number; chunks: number }> {
  const info = (await store.list()).find((s) => s.index === index)!;
  const r = await store.reader(info);
  let crc = 0;
  let total = 0;
  let largest = 0;
  let chunks = 0;
  for await (const c of r.chunks()) {
    crc = crc32c(c, crc);
    total += c.length;
    largest = Math.max(largest, c.length);
    chunks++;
  }
  return { crc, total, largest, chunks };
}

describe('SnapshotStore', () => {
  it('streams a multi-MB snapshot in and out in chunks no larger than the limit', async () => {
    const store = await SnapshotStore.open(dir, { chunkBytes: CHUNK, logger: captureLogger() });
    const total = 5 * MB + 12345;
    // Odd-sized pieces, some larger than a chunk: the writer re-frames them.
    const wantCrc = await writeImage(store, 100, total, 100_003);
    const r = await store.reader((await store.list())[0]!);
    expect(r.metadata).toEqual({ index: 100, term: 2, confState: CONF });
    expect(r.totalBytes).toBe(total);
    expect(r.chunkBytes).toBe(CHUNK);
    const got = await readAll(store, 100);
    expect(got.total).toBe(total);
    expect(got.crc).toBe(wantCrc);
    expect(got.largest).toBeLessThanOrEqual(CHUNK);
    expect(got.chunks).toBe(Math.ceil(total / CHUNK));
    expect(CHUNK).toBeLessThanOrEqual(SNAPSHOT_CHUNK_BYTES_MAX);
  });

  it('coalesces tiny writes into full frames (bounded frame count, bounded buffer)', async () => {
    const store = await SnapshotStore.open(dir, { chunkBytes: 4096, logger: captureLogger() });
    const wantCrc = await writeImage(store, 7, 100_000, 10);
    const got = await readAll(store, 7);
    expect(got.crc).toBe(wantCrc);
    expect(got.chunks).toBe(Math.ceil(100_000 / 4096));
  });

  it('refuses a chunk size above the named limit', async () => {
    await expect(SnapshotStore.open(dir, { chunkBytes: SNAPSHOT_CHUNK_BYTES_MAX + 1 })).rejects.toThrow(/chunkBytes/);
  });

  it('detects a flipped byte in a chunk while streaming, naming the frame', async () => {
    const store = await SnapshotStore.open(dir, { chunkBytes: CHUNK, logger: captureLogger() });
    await writeImage(store, 100, 2 * MB, CHUNK);
    const file = join(dir, snapshotFileName(100, 2));
    const fh = await open(file, 'r+');
    const at = (await stat(file)).size - CHUNK / 2; // inside the last frame's payload
    const b = new Uint8Array(1);
    await fh.read(b, 0, 1, at);
    b[0]! ^= 0x40;
    await fh.write(b, 0, 1, at);
    await fh.close();
    const err = await readAll(store, 100).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WalError);
    expect((err as WalError).code).toBe('SNAPSHOT_CORRUPT');
    expect((err as WalError).message).toMatch(/checksum mismatch in frame 31/);
  });

  it('detects a file cut short at a frame boundary through the total length', async () => {
    const store = await SnapshotStore.open(dir, { chunkBytes: 1000, logger: captureLogger() });
    await writeImage(store, 5, 10_000, 1000);
    const file = join(dir, snapshotFileName(5, 2));
    const fh = await open(file, 'r+');
    await fh.truncate((await stat(file)).size - 1008); // drop the whole last frame
    await fh.close();
    await expect(readAll(store, 5)).rejects.toMatchObject({ code: 'SNAPSHOT_CORRUPT', message: expect.stringMatching(/ends after 9000 of 10000/) });
  });

  it('keeps only the newest N snapshots', async () => {
    const logger = captureLogger();
    const store = await SnapshotStore.open(dir, { retain: 2, chunkBytes: 1024, logger });
    for (const i of [10, 20, 30, 40]) await writeImage(store, i, 3000, 1000);
    expect((await store.list()).map((s) => s.index)).toEqual([30, 40]);
    expect(logger.lines.filter((l) => /retention/.test(l.msg))).toHaveLength(2);
  });

  it('falls back to the previous good snapshot when the newest is corrupt, with a log line', async () => {
    const logger = captureLogger();
    const store = await SnapshotStore.open(dir, { chunkBytes: 1024, logger });
    await writeImage(store, 10, 5000, 1000);
    await writeImage(store, 20, 5000, 1000);
    const file = join(dir, snapshotFileName(20, 2));
    const fh = await open(file, 'r+');
    await fh.write(Uint8Array.of(0xff, 0xff), 0, 2, 200);
    await fh.close();
    const good = await store.newestGood();
    expect(good?.info.index).toBe(10);
    expect(logger.lines.some((l) => l.level === 'error' && /corrupt snapshot/.test(l.msg) && (l.obj as { index: number }).index === 20)).toBe(true);
  });

  it('removes an unfinished .tmp file left by a crash, and abort() leaves nothing behind', async () => {
    await writeFile(join(dir, snapshotFileName(9, 1) + '.tmp'), 'half a snapshot');
    const store = await SnapshotStore.open(dir, { logger: captureLogger() });
    expect(await readdir(dir)).toEqual([]);
    const w = await store.create({ index: 11, term: 1, confState: CONF });
    await w.write(payloadFor(11, 1, 100));
    await w.abort();
    expect(await readdir(dir)).toEqual([]);
    expect(await store.list()).toEqual([]);
  });

  it('spools an image for one transfer: never listed, read through its checksums, gone on release or reopen', async () => {
    const store = await SnapshotStore.open(dir, { chunkBytes: CHUNK, logger: captureLogger() });
    await writeImage(store, 10, 1000, 100);
    const md = { index: 10, term: 2, confState: CONF };
    const spools = [await store.spool(md), await store.spool(md)]; // two followers at once: two files
    let crc = 0;
    for (const p of image(3 * CHUNK + 7, 5000)) {
      crc = crc32c(p, crc);
      for (const w of spools) await w.write(p);
    }
    const [a, b] = await Promise.all(spools.map((w) => w.finish()));
    expect((await store.list()).map((s) => s.index)).toEqual([10]); // the published one only
    expect(a!.totalBytes).toBe(3 * CHUNK + 7);
    let readCrc = 0;
    for await (const c of a!.chunks()) readCrc = crc32c(c, readCrc);
    expect(readCrc).toBe(crc);
    await a!.release();
    expect((await readdir(dir)).filter((f) => f.endsWith('.spool'))).toHaveLength(1);
    // A crash during a transfer leaves b's file: the next open removes it, and the published snapshot stays.
    await SnapshotStore.open(dir, { logger: captureLogger() });
    expect(await readdir(dir)).toEqual([snapshotFileName(10, 2)]);
    await expect(b!.release()).resolves.toBeUndefined();
    // A published snapshot as a source: the same bytes, and release leaves the file.
    const src = await store.source({ index: 10, term: 2 });
    expect(src.totalBytes).toBe(1000);
    await src.release();
    expect(await readdir(dir)).toEqual([snapshotFileName(10, 2)]);
    await expect(store.source({ index: 11, term: 2 })).rejects.toThrow('not in the snapshot store');
  });
});
