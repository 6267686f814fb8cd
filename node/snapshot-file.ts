// Backups: what `etcdctl snapshot save` (Maintenance.Snapshot) writes, read back. `fulcrum snapshot status FILE`
// describes one; `fulcrum snapshot restore FILE --data-dir DIR` seeds a data dir for a NEW cluster from it, as
// etcd's `etcdutl snapshot restore` does: the keys with their whole retained history, revisions, leases and the
// exactly-once table come back; the old cluster's membership, applied index and alarms do not. Each member of the
// new cluster is restored from the same file into its own data dir, then started with
// `--initial-cluster-state new` and the new `--initial-cluster`: every member bootstraps the same membership on
// top of the same state, so HashKV agrees across them from the first revision.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LevelBackend, MemoryBackend, type Backend } from '../storage/backend.js';
import { installStateMachineImage, resetImageForNewCluster, StateMachine } from '../storage/state-machine.js';
import { snapshotImage } from './api/maintenance.js';

/** A snapshot file larger than this is refused: it is read into memory whole (etcd's default quota is 2 GiB). */
export const SNAPSHOT_FILE_BYTES_MAX = 8 * 1024 * 1024 * 1024;

export class SnapshotFileError extends Error {}

export interface SnapshotSummary {
  /** CRC-32C over the key-value rows (HashKV at the current revision): equal files give equal hashes. */
  readonly hash: number;
  readonly revision: number;
  readonly compactRevision: number;
  readonly totalKeys: number;
  readonly leases: number;
  readonly fileBytes: number;
}

/** Check a snapshot file and describe it, without touching any data dir. */
export async function snapshotStatus(file: string): Promise<SnapshotSummary> {
  const { image, fileBytes } = await readSnapshotFile(file);
  const backend = new MemoryBackend();
  await installStateMachineImage(backend, once(image));
  return summarize(backend, fileBytes);
}

/** Seed `dataDir` (absent or empty) for a new cluster from a snapshot file. */
export async function restoreSnapshotFile(file: string, dataDir: string): Promise<SnapshotSummary> {
  await refuseNonEmpty(dataDir);
  const { image, fileBytes } = await readSnapshotFile(file);
  const backend = await LevelBackend.open(join(dataDir, 'kv'));
  try {
    await installStateMachineImage(backend, once(image));
    await resetImageForNewCluster(backend);
    return await summarize(backend, fileBytes);
  } finally {
    await backend.close();
  }
}

async function readSnapshotFile(file: string): Promise<{ image: Uint8Array; fileBytes: number }> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (e) {
    throw new SnapshotFileError(`cannot read snapshot file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (size > SNAPSHOT_FILE_BYTES_MAX) throw new SnapshotFileError(`snapshot file ${file} is larger than ${SNAPSHOT_FILE_BYTES_MAX} bytes`);
  const bytes = await readFile(file);
  try {
    return { image: snapshotImage(bytes), fileBytes: bytes.byteLength };
  } catch (e) {
    throw new SnapshotFileError(`${file}: ${(e as Error).message}`);
  }
}

async function refuseNonEmpty(dataDir: string): Promise<void> {
  try {
    const entries = await readdir(dataDir);
    if (entries.length > 0) throw new SnapshotFileError(`data-dir ${JSON.stringify(dataDir)} exists and is not empty; restore needs a new one`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

async function summarize(backend: Backend, fileBytes: number): Promise<SnapshotSummary> {
  const sm = await StateMachine.open(backend);
  const h = await sm.mvcc.hashKV(0);
  const all = await sm.mvcc.range({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), countOnly: true });
  return { hash: h.hash, revision: h.revision, compactRevision: h.compactRevision, totalKeys: Number(all.count), leases: sm.leases.list().length, fileBytes };
}

async function* once(image: Uint8Array): AsyncGenerator<Uint8Array> {
  yield image;
}
