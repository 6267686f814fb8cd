// The snapshot store: state-machine images beside the log, in `<wal dir>/snap/`, one file per snapshot.
//
// File layout (integers big-endian):
//   header  magic "FSNP" u32 | version u32 | header length u32 | chunk bytes max u32
//           | index u64 | term u64 | total data bytes u64 | conf state | header crc u32
//   frames  length u32 | crc u32 | payload (1..chunk bytes max)      ... repeated
// A frame's CRC-32C covers the snapshot index, the frame's sequence number and the payload, so a frame that
// is flipped, dropped, repeated or spliced in from another snapshot file fails the check. The total length in
// the header catches a file cut short at a frame boundary.
//
// Files are written as `<name>.tmp`, fsynced, renamed and the directory fsynced, so a crash leaves either no
// file or a complete one (stale .tmp files are removed on open). Memory stays bounded both ways: the writer
// holds at most one frame of pending bytes and the reader holds one frame at a time.
import { mkdir, open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { crc32c } from '../crc32c.js';
import { assert } from '../../raft/errors.js';
import type { SnapshotMetadata } from '../../raft/types.js';
import { confStateBytes, getU64, isBad, putU64, readConfState, writeConfState } from './codec.js';
import { errSnapshotCorrupt, WalError } from './errors.js';
import { fsyncDir } from './fsutil.js';
import { defaultWalLogger, type WalLogger } from './logger.js';
import { walTestHooks } from './test-hooks.js';

/** Largest frame payload, and so the largest chunk a reader yields and the writer buffers. */
export const SNAPSHOT_CHUNK_BYTES_MAX = 1 << 20;
/** How many snapshot files to keep; older ones are deleted after a new one is committed. */
export const SNAPSHOT_RETAIN_DEFAULT = 3;
/** Headers are small (a conf state of at most CONF_STATE_MEMBERS_MAX members); refuse to read a larger one. */
export const SNAPSHOT_HEADER_BYTES_MAX = 64 * 1024;

const SNAP_MAGIC = 0x46534e50; // "FSNP"
const SNAP_VERSION = 1;
const HEADER_FIXED_BYTES = 40;
const FRAME_HEADER_BYTES = 8;
const SNAP_SUFFIX = '.snap';
const TMP_SUFFIX = '.tmp';
/** A spool is an image made for one transfer and deleted after it: never published, never synced. */
const SPOOL_SUFFIX = '.spool';

export interface SnapshotInfo {
  readonly index: number;
  readonly term: number;
  /** File name inside the store's directory. */
  readonly file: string;
}

/** What a snapshot sender streams: the length up front, then the bytes; `release` frees what backs them. */
export interface SnapshotSource {
  readonly totalBytes: number;
  chunks(): AsyncIterable<Uint8Array>;
  release(): Promise<void>;
}

export interface SnapshotStoreOptions {
  /** Snapshot files to keep (>= 1). Default SNAPSHOT_RETAIN_DEFAULT. */
  readonly retain?: number;
  /** Frame size for new files and the reader's chunk size (<= SNAPSHOT_CHUNK_BYTES_MAX). */
  readonly chunkBytes?: number;
  readonly logger?: WalLogger;
}

const hex16 = (n: number): string => n.toString(16).padStart(16, '0');

/** `<index>-<term>.snap` in fixed-width hex, so that name order is index order. */
export function snapshotFileName(index: number, term: number): string {
  return `${hex16(index)}-${hex16(term)}${SNAP_SUFFIX}`;
}

export function parseSnapshotFileName(file: string): SnapshotInfo | undefined {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/.exec(file);
  if (m === null) return undefined;
  return { index: parseInt(m[1]!, 16), term: parseInt(m[2]!, 16), file };
}

const viewOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

function frameCrc(snapshotIndex: number, seq: number, payload: Uint8Array): number {
  const pos = new Uint8Array(16);
  putU64(viewOf(pos), 0, snapshotIndex);
  putU64(viewOf(pos), 8, seq);
  return crc32c(payload, crc32c(pos));
}

function encodeHeader(meta: SnapshotMetadata, chunkBytes: number, totalBytes: number): Uint8Array {
  const len = HEADER_FIXED_BYTES + confStateBytes(meta.confState) + 4;
  assert(len <= SNAPSHOT_HEADER_BYTES_MAX, () => `snapshot header of ${len} bytes exceeds ${SNAPSHOT_HEADER_BYTES_MAX}`);
  const h = new Uint8Array(len);
  const v = viewOf(h);
  v.setUint32(0, SNAP_MAGIC);
  v.setUint32(4, SNAP_VERSION);
  v.setUint32(8, len);
  v.setUint32(12, chunkBytes);
  putU64(v, 16, meta.index);
  putU64(v, 24, meta.term);
  putU64(v, 32, totalBytes);
  writeConfState(v, HEADER_FIXED_BYTES, meta.confState);
  v.setUint32(len - 4, crc32c(h.subarray(0, len - 4)));
  return h;
}

interface Header {
  readonly metadata: SnapshotMetadata;
  readonly chunkBytes: number;
  readonly totalBytes: number;
  readonly length: number;
}

async function readExactly(fh: FileHandle, n: number, position: number): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === n ? buf : buf.subarray(0, got);
}

async function readHeader(fh: FileHandle, file: string): Promise<Header> {
  const fixed = await readExactly(fh, 16, 0);
  if (fixed.length < 16) throw errSnapshotCorrupt(file, 'truncated header');
  const fv = viewOf(fixed);
  if (fv.getUint32(0) !== SNAP_MAGIC) throw errSnapshotCorrupt(file, 'bad magic');
  if (fv.getUint32(4) !== SNAP_VERSION) throw errSnapshotCorrupt(file, `unknown version ${fv.getUint32(4)}`);
  const len = fv.getUint32(8);
  if (len < HEADER_FIXED_BYTES + 12 || len > SNAPSHOT_HEADER_BYTES_MAX) throw errSnapshotCorrupt(file, `header length ${len}`);
  const h = await readExactly(fh, len, 0);
  if (h.length < len) throw errSnapshotCorrupt(file, 'truncated header');
  const v = viewOf(h);
  if (v.getUint32(len - 4) !== crc32c(h.subarray(0, len - 4))) throw errSnapshotCorrupt(file, 'header checksum mismatch');
  const chunkBytes = v.getUint32(12);
  if (chunkBytes === 0 || chunkBytes > SNAPSHOT_CHUNK_BYTES_MAX) throw errSnapshotCorrupt(file, `chunk size ${chunkBytes}`);
  const cs = readConfState(new DataView(h.buffer, h.byteOffset, len - 4), HEADER_FIXED_BYTES);
  if (isBad(cs)) throw errSnapshotCorrupt(file, cs.bad);
  const metadata = { index: getU64(v, 16), term: getU64(v, 24), confState: cs.confState };
  return { metadata, chunkBytes, totalBytes: getU64(v, 32), length: len };
}

/**
 * Streams one snapshot into a temporary file. `write` as many chunks as you like (any size: they are cut into
 * frames of at most `chunkBytes`), then `commit` to make it durable and visible, or `abort` to drop it.
 */
export class SnapshotWriter {
  private readonly pending: Uint8Array;
  private pendingBytes = 0;
  private seq = 0;
  private position: number;
  private total = 0;
  private busy = false;
  private done = false;

  constructor(
    private readonly store: SnapshotStore,
    private readonly fh: FileHandle,
    private readonly tmpPath: string,
    readonly metadata: SnapshotMetadata,
    private readonly chunkBytes: number,
    private readonly headerBytes: number,
    /** Written by spool(): finish() it, never commit() it. */
    private readonly spooled = false,
  ) {
    this.pending = new Uint8Array(chunkBytes);
    this.position = headerBytes;
  }

  get bytesWritten(): number {
    return this.total;
  }

  async write(chunk: Uint8Array): Promise<void> {
    assert(!this.busy && !this.done, 'snapshot writer: write() while another call is running or after commit/abort');
    this.busy = true;
    try {
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(chunk.length - off, this.chunkBytes - this.pendingBytes);
        this.pending.set(chunk.subarray(off, off + n), this.pendingBytes);
        this.pendingBytes += n;
        off += n;
        if (this.pendingBytes === this.chunkBytes) await this.flushFrame();
      }
    } finally {
      this.busy = false;
    }
  }

  private async flushFrame(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const payload = this.pending.subarray(0, this.pendingBytes);
    const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
    const v = viewOf(frame);
    v.setUint32(0, payload.length);
    v.setUint32(4, frameCrc(this.metadata.index, this.seq, payload));
    frame.set(payload, FRAME_HEADER_BYTES);
    // Verify before writing: the reader will hold us to this checksum.
    assert(v.getUint32(4) === frameCrc(this.metadata.index, this.seq, frame.subarray(FRAME_HEADER_BYTES)), 'snapshot frame crc');
    await this.fh.write(frame, 0, frame.length, this.position);
    this.position += frame.length;
    this.total += payload.length;
    this.seq++;
    this.pendingBytes = 0;
  }

  /** Flush, record the total length, fsync, rename into place, fsync the directory, apply retention. */
  async commit(): Promise<SnapshotInfo> {
    assert(!this.busy && !this.done, 'snapshot writer: commit() while busy or twice');
    assert(!this.spooled, 'snapshot writer: a spool is finished, never committed');
    this.busy = true;
    try {
      await this.writeHeader();
      walTestHooks.fault?.('before-snapshot-commit');
      await this.fh.sync();
      await this.fh.close();
      this.done = true;
      const info = await this.store.publish(this.tmpPath, this.metadata);
      walTestHooks.fault?.('after-snapshot-commit');
      return info;
    } finally {
      this.busy = false;
    }
  }

  /**
   * A spool's end: flush and record the total length (no fsync: nobody depends on it surviving a crash, and a
   * restart deletes it). The source reads the file through its checksums and deletes it on release.
   */
  async finish(): Promise<SnapshotSource> {
    assert(!this.busy && !this.done && this.spooled, 'snapshot writer: finish() is for an unfinished spool');
    this.busy = true;
    try {
      await this.writeHeader();
      await this.fh.close();
      this.done = true;
    } finally {
      this.busy = false;
    }
    const file = basename(this.tmpPath);
    const reader = new SnapshotReader(this.tmpPath, { index: this.metadata.index, term: this.metadata.term, file }, this.metadata, this.total, this.chunkBytes, this.headerBytes);
    return sourceOf(reader, () => unlink(this.tmpPath).catch(() => undefined));
  }

  private async writeHeader(): Promise<void> {
    await this.flushFrame();
    const header = encodeHeader(this.metadata, this.chunkBytes, this.total);
    assert(header.length === this.headerBytes, 'snapshot header changed size');
    await this.fh.write(header, 0, header.length, 0);
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.fh.close().catch(() => undefined);
    await unlink(this.tmpPath).catch(() => undefined);
  }
}

/** One snapshot file opened for reading. `chunks()` yields the payload frame by frame, verifying each. */
export class SnapshotReader {
  constructor(
    private readonly path: string,
    readonly info: SnapshotInfo,
    readonly metadata: SnapshotMetadata,
    readonly totalBytes: number,
    /** The largest chunk `chunks()` yields. */
    readonly chunkBytes: number,
    private readonly headerBytes: number,
  ) {}

  async *chunks(): AsyncGenerator<Uint8Array, void, undefined> {
    const fh = await open(this.path, 'r');
    try {
      let position = this.headerBytes;
      let total = 0;
      for (let seq = 0; ; seq++) {
        const fh8 = await readExactly(fh, FRAME_HEADER_BYTES, position);
        if (fh8.length === 0) break;
        if (fh8.length < FRAME_HEADER_BYTES) throw this.corrupt(`frame ${seq} header truncated`);
        const v = viewOf(fh8);
        const len = v.getUint32(0);
        if (len === 0 || len > this.chunkBytes) throw this.corrupt(`frame ${seq} has length ${len}, limit ${this.chunkBytes}`);
        const payload = await readExactly(fh, len, position + FRAME_HEADER_BYTES);
        if (payload.length < len) throw this.corrupt(`frame ${seq} truncated`);
        if (v.getUint32(4) !== frameCrc(this.metadata.index, seq, payload)) {
          throw this.corrupt(`checksum mismatch in frame ${seq} (data bytes ${total}..${total + len})`);
        }
        position += FRAME_HEADER_BYTES + len;
        total += len;
        if (total > this.totalBytes) throw this.corrupt(`more data than the ${this.totalBytes} bytes in the header`);
        yield payload;
      }
      if (total !== this.totalBytes) throw this.corrupt(`file ends after ${total} of ${this.totalBytes} data bytes`);
    } finally {
      await fh.close();
    }
  }

  private corrupt(why: string): WalError {
    return errSnapshotCorrupt(this.info.file, why);
  }
}

function sourceOf(reader: SnapshotReader, release: () => Promise<void>): SnapshotSource {
  return { totalBytes: reader.totalBytes, chunks: () => reader.chunks(), release };
}

export class SnapshotStore {
  /** Spools made by this process, for unique names. */
  private spools = 0;

  private constructor(
    readonly dir: string,
    private readonly retain: number,
    private readonly chunkBytes: number,
    private readonly logger: WalLogger,
  ) {}

  static async open(dir: string, options: SnapshotStoreOptions = {}): Promise<SnapshotStore> {
    const retain = options.retain ?? SNAPSHOT_RETAIN_DEFAULT;
    const chunkBytes = options.chunkBytes ?? SNAPSHOT_CHUNK_BYTES_MAX;
    assert(Number.isInteger(retain) && retain >= 1, () => `snapshot retain must be >= 1, got ${retain}`);
    assert(
      Number.isInteger(chunkBytes) && chunkBytes >= 1 && chunkBytes <= SNAPSHOT_CHUNK_BYTES_MAX,
      () => `snapshot chunkBytes must be in 1..${SNAPSHOT_CHUNK_BYTES_MAX}, got ${chunkBytes}`,
    );
    await mkdir(dir, { recursive: true });
    const store = new SnapshotStore(dir, retain, chunkBytes, options.logger ?? defaultWalLogger());
    await store.removeTemporaries();
    return store;
  }

  /** A crash while writing leaves `<name>.tmp` (never renamed, so never a snapshot) or a spool of a transfer. */
  private async removeTemporaries(): Promise<void> {
    for (const f of await readdir(this.dir)) {
      if (!f.endsWith(TMP_SUFFIX) && !f.endsWith(SPOOL_SUFFIX)) continue;
      await unlink(join(this.dir, f));
      this.logger.info({ file: f }, 'removed an unfinished snapshot file left by a crash');
    }
  }

  /** Snapshot files by name, oldest (lowest index) first. Names only: contents are not checked here. */
  async list(): Promise<SnapshotInfo[]> {
    const infos: SnapshotInfo[] = [];
    for (const f of await readdir(this.dir)) {
      const info = parseSnapshotFileName(f);
      if (info !== undefined) infos.push(info);
    }
    return infos.sort((a, b) => a.index - b.index || a.term - b.term);
  }

  async create(metadata: SnapshotMetadata): Promise<SnapshotWriter> {
    return this.startFile(join(this.dir, snapshotFileName(metadata.index, metadata.term) + TMP_SUFFIX), metadata, false);
  }

  /**
   * A file in the snapshot format for one transfer (an image made on demand): never listed, never a base for the
   * log, deleted by its source's release() or, after a crash, when the store opens. Several may exist at once.
   */
  async spool(metadata: SnapshotMetadata): Promise<SnapshotWriter> {
    const name = `${snapshotFileName(metadata.index, metadata.term)}.${++this.spools}${SPOOL_SUFFIX}`;
    return this.startFile(join(this.dir, name), metadata, true);
  }

  private async startFile(path: string, metadata: SnapshotMetadata, spooled: boolean): Promise<SnapshotWriter> {
    const header = encodeHeader(metadata, this.chunkBytes, 0); // placeholder; commit() or finish() rewrites the total
    const fh = await open(path, 'w');
    try {
      await fh.write(header, 0, header.length, 0);
    } catch (e) {
      await fh.close();
      throw e;
    }
    return new SnapshotWriter(this, fh, path, metadata, this.chunkBytes, header.length, spooled);
  }

  /** The published snapshot of this index and term as a source to stream (release leaves the file in the store). */
  async source(md: Pick<SnapshotMetadata, 'index' | 'term'>): Promise<SnapshotSource> {
    const info = (await this.list()).find((i) => i.index === md.index && i.term === md.term);
    if (info === undefined) throw new Error(`snapshot ${md.index}@${md.term} is not in the snapshot store`);
    return sourceOf(await this.reader(info), async () => undefined);
  }

  /** Called by the writer once the temporary file is synced. */
  async publish(tmpPath: string, metadata: SnapshotMetadata): Promise<SnapshotInfo> {
    const file = snapshotFileName(metadata.index, metadata.term);
    await rename(tmpPath, join(this.dir, file));
    await fsyncDir(this.dir);
    await this.applyRetention();
    return { index: metadata.index, term: metadata.term, file };
  }

  private async applyRetention(): Promise<void> {
    const all = await this.list();
    const old = all.slice(0, Math.max(0, all.length - this.retain));
    for (const s of old) {
      await unlink(join(this.dir, s.file));
      this.logger.info({ index: s.index, term: s.term }, 'deleted an old snapshot beyond the retention limit');
    }
    if (old.length > 0) await fsyncDir(this.dir);
  }

  /** Open a snapshot for reading; checks the header now and every frame as it is read. */
  async reader(info: SnapshotInfo): Promise<SnapshotReader> {
    const path = join(this.dir, info.file);
    const fh = await open(path, 'r');
    try {
      const h = await readHeader(fh, info.file);
      if (h.metadata.index !== info.index || h.metadata.term !== info.term) {
        throw errSnapshotCorrupt(info.file, `header says index ${h.metadata.index} term ${h.metadata.term}`);
      }
      return new SnapshotReader(path, info, h.metadata, h.totalBytes, h.chunkBytes, h.length);
    } finally {
      await fh.close();
    }
  }

  /** Read a whole snapshot through its checksums (one frame in memory at a time). Throws SNAPSHOT_CORRUPT. */
  async verify(info: SnapshotInfo): Promise<SnapshotMetadata> {
    const r = await this.reader(info);
    for await (const _chunk of r.chunks()) {
      // Reading is the check.
    }
    return r.metadata;
  }

  /**
   * The newest snapshot that passes its checksums among those `usable` accepts, skipping (and logging) bad
   * files so that a damaged newest snapshot falls back to the previous good one.
   */
  async newestGood(usable: (info: SnapshotInfo) => boolean = () => true): Promise<{ info: SnapshotInfo; metadata: SnapshotMetadata } | undefined> {
    const all = (await this.list()).reverse();
    for (const info of all) {
      if (!usable(info)) continue;
      try {
        return { info, metadata: await this.verify(info) };
      } catch (e) {
        if (!(e instanceof WalError) || e.code !== 'SNAPSHOT_CORRUPT') throw e;
        this.logger.error({ index: info.index, term: info.term, err: e.message }, 'skipping a corrupt snapshot file; falling back to the previous one');
      }
    }
    return undefined;
  }
}
