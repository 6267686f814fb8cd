// An in-memory LogStore: the same contract as storage/wal without a disk, for tests and embedded demos.
import { MemoryStorage } from '../raft/storage.js';
import type { Entry, HardState, Snapshot } from '../raft/types.js';
import type { LogStore } from './raft-loop.js';

export class MemoryLogStore implements LogStore {
  readonly storage = new MemoryStorage();
  /** Set to make the next save fail, as a full or broken disk would. */
  failNextSave: Error | undefined = undefined;
  saves = 0;
  /** A synced save takes at least this long, as on a disk whose fsync is slow. */
  syncDelayMs = 0;

  async save(hardState: HardState | undefined, entries: readonly Entry[], snapshot: Snapshot | undefined, options: { sync: boolean }): Promise<void> {
    await Promise.resolve(); // a real store answers asynchronously; keep the same interleavings
    if (options.sync && this.syncDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.syncDelayMs));
    if (this.failNextSave !== undefined) {
      const e = this.failNextSave;
      this.failNextSave = undefined;
      throw e;
    }
    this.saves++;
    if (snapshot !== undefined) this.storage.applySnapshot(snapshot);
    this.storage.append(entries);
    if (hardState !== undefined) this.storage.setHardState(hardState);
  }
}
