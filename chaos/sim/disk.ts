// A member's simulated disk. The MemoryStorage is the platter: what is in it survives a crash. In front of it
// sit two volatile layers the crash throws away:
//  - the write in flight: a Ready handed to the disk but not yet synced (slow disk: the sync completes later);
//  - the write cache: a Ready that did not need a sync (only the commit index moved; see RawNode.ready's
//    mustSync) is written without fsync, so its hard state is lost on crash until a later synced write.
// The node acts on a Ready (sends its messages, applies its entries) only after the disk reports it durable.
import { MemoryStorage } from '../../raft/storage.js';
import { EMPTY_HARD_STATE, type Entry, type HardState, type Ready, type Snapshot } from '../../raft/types.js';

export class SimDisk {
  readonly storage = new MemoryStorage();
  /** The hard state as of the last synced write: what a crash falls back to. */
  private syncedHardState: HardState = EMPTY_HARD_STATE;
  /** Simulated fsync latency; 0 means the Ready is persisted in the same step it is produced. */
  syncLatencyMs = 0;

  /** Lay down the founding state: a snapshot of the empty state machine naming the first voters. */
  format(snap: Snapshot, hs: HardState): void {
    this.storage.applySnapshot(snap);
    this.storage.setHardState(hs);
    this.syncedHardState = hs;
  }

  /**
   * Write a Ready's durable parts. Returns the entries that actually landed (entries behind the snapshot are
   * skipped, exactly as MemoryStorage.append skips them) and the term before the first of them.
   */
  write(rd: Ready): { landed: readonly Entry[]; prevTerm: number } {
    const s = this.storage;
    if (rd.snapshot !== undefined) s.applySnapshot(rd.snapshot);
    let landed: readonly Entry[] = rd.entries;
    let prevTerm = 0;
    if (landed.length > 0) {
      const first = s.firstIndex();
      if (landed[0]!.index < first) landed = landed.filter((e) => e.index >= first);
      if (landed.length > 0) {
        prevTerm = s.term(landed[0]!.index - 1);
        s.append(landed);
      }
    }
    if (rd.hardState !== undefined) s.setHardState(rd.hardState);
    // A snapshot is always written with a sync (it replaces the log); so is anything the core says must be.
    if (rd.mustSync || rd.snapshot !== undefined) this.syncedHardState = s.initialState().hardState;
    return { landed, prevTerm };
  }

  /**
   * Flush the write cache. The node does this when it saves a snapshot of its state machine (as etcd syncs its
   * WAL when it records a snapshot): a durable snapshot beyond the durable commit index would be a disk that
   * no restart can make sense of.
   */
  sync(): void {
    this.syncedHardState = this.storage.initialState().hardState;
  }

  /** A crash: the write cache is lost, the platter keeps the last synced hard state. */
  crash(): void {
    this.storage.setHardState(this.syncedHardState);
  }

  durableHardState(): HardState {
    return this.syncedHardState;
  }
}
