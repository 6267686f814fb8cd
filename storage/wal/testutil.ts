// Helpers shared by the WAL tests (not part of the public surface).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryType, type ConfState, type Entry, type SnapshotMetadata } from '../../raft/types.js';
import type { WalLogger } from './logger.js';
import type { SnapshotStore } from './snapshot.js';

export interface LogLine {
  readonly level: 'info' | 'warn' | 'error';
  readonly obj: object;
  readonly msg: string;
}

/** A logger that keeps its lines, so tests can assert that a cut or a fallback was logged. */
export function captureLogger(): WalLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (obj, msg) => void lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => void lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => void lines.push({ level: 'error', obj, msg }),
  };
}

/** Deterministic payload of an entry: a reader can tell from the bytes alone whether they are the right ones. */
export function payloadFor(index: number, term: number, bytes = 32): Uint8Array {
  const d = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) d[i] = (index * 131 + term * 7 + i * 31) & 0xff;
  return d;
}

export function makeEntries(from: number, count: number, term: number, bytes = 32): Entry[] {
  return Array.from({ length: count }, (_, k) => ({
    index: from + k,
    term,
    type: EntryType.Normal,
    data: payloadFor(from + k, term, bytes),
  }));
}

export const CONF: ConfState = { voters: [1, 2, 3], learners: [4] };

/** Commit a small snapshot file so that the log may record a marker for it. */
export async function writeSnapshotFile(store: SnapshotStore, index: number, term: number, bytes = 100): Promise<SnapshotMetadata> {
  const metadata: SnapshotMetadata = { index, term, confState: CONF };
  const w = await store.create(metadata);
  await w.write(payloadFor(index, term, bytes));
  await w.commit();
  return metadata;
}

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `fulcrum-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Payload size of entry i in the crash test, so the parent can recompute the exact bytes the child wrote. */
export const crashPayloadBytes = (index: number): number => 16 + (index % 200);
