// Typed errors of the write-ahead log and the snapshot store. Each is an operating condition an operator must
// act on (a damaged disk, a lost file), so each has a stable code for node/ and tests, and a message that says
// which index or file is affected and what to do. Broken invariants (caller bugs) are asserts, not these.

export type WalErrorCode =
  /** A record failed its checksum or could not be decoded where it cannot be a torn tail (at or below commit). */
  | 'WAL_CORRUPT'
  /** Entries the hard state says are committed are not on disk (a gap, or commit beyond the last entry). */
  | 'WAL_MISSING_ENTRIES'
  /** A LevelDB file (CURRENT, MANIFEST, .ldb, .log) or the whole log directory is gone, or the log rolled back. */
  | 'WAL_MISSING_FILE'
  /** Another process holds the log open. */
  | 'WAL_LOCKED'
  /** The log was used after close(). */
  | 'WAL_CLOSED'
  /** A snapshot file failed its checksum, is truncated or malformed. */
  | 'SNAPSHOT_CORRUPT'
  /** No snapshot file can serve as the base the log needs. */
  | 'SNAPSHOT_MISSING';

/** What an operator does when a member's durable state is damaged: let Raft rebuild it from the others. */
export const RESTORE_ADVICE =
  'restore this member from a snapshot: remove it from the cluster (member remove), then add it back (member add) ' +
  'and start it with an empty data dir so that the leader sends it a snapshot';

export class WalError extends Error {
  constructor(
    readonly code: WalErrorCode,
    message: string,
    /** The log index the error is about, when there is one. */
    readonly index?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WalError';
  }
}

export const errCorruptEntry = (index: number, commit: number, why: string): WalError =>
  new WalError(
    'WAL_CORRUPT',
    `wal: committed entry ${index} is corrupt (${why}); the hard state's commit index is ${commit}, so it cannot be ` +
      `dropped as a torn tail. Refusing to start; ${RESTORE_ADVICE}`,
    index,
  );

export const errCorruptRecord = (what: string, why: string): WalError =>
  new WalError('WAL_CORRUPT', `wal: ${what} is corrupt (${why}). Refusing to start; ${RESTORE_ADVICE}`);

export const errMissingEntries = (index: number, detail: string): WalError =>
  new WalError(
    'WAL_MISSING_ENTRIES',
    `wal: committed entry ${index} is missing (${detail}); a LevelDB file may have been deleted. ` +
      `Refusing to start; ${RESTORE_ADVICE}`,
    index,
  );

export const errMissingFile = (detail: string, cause?: unknown): WalError =>
  new WalError('WAL_MISSING_FILE', `wal: ${detail}. Refusing to start; ${RESTORE_ADVICE}`, undefined, { cause });

export const errClosed = (): WalError => new WalError('WAL_CLOSED', 'wal: the write-ahead log is closed');

export const errSnapshotCorrupt = (file: string, why: string): WalError =>
  new WalError('SNAPSHOT_CORRUPT', `snapshot ${file} is corrupt: ${why}`);
