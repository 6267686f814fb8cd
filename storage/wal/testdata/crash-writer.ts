// Child process of the crash test: append batches to the WAL as fast as it can and print "ack <last index>"
// after each synced save resolves. The parent SIGKILLs it at random and checks that every acknowledged entry
// survived. Every few batches it takes a snapshot and compacts, so kills also land in those paths.
// Usage: node --import tsx storage/wal/testdata/crash-writer.ts <dir>
import { WriteAheadLog } from '../wal.js';
import { CONF, crashPayloadBytes, payloadFor } from '../testutil.js';
import { EntryType, type Entry } from '../../../raft/types.js';

const SNAPSHOT_EVERY_BATCHES = 25;
const KEEP_ENTRIES_BEHIND_SNAPSHOT = 200;

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error('usage: crash-writer.ts <dir>');
  const quiet = { info: () => {}, warn: (o: object, m: string) => console.error(m, o), error: (o: object, m: string) => console.error(m, o) };
  const wal = await WriteAheadLog.open(dir, { logger: quiet, snapshotChunkBytes: 4096 });
  // A new term per run, as a restarted member would get after an election.
  const term = wal.storage.initialState().hardState.term + 1;
  let last = wal.storage.lastIndex();
  process.stdout.write(`start ${last}\n`);
  for (let batch = 1; ; batch++) {
    const count = 1 + (batch % 40);
    const entries: Entry[] = [];
    for (let i = last + 1; i <= last + count; i++) entries.push({ index: i, term, type: EntryType.Normal, data: payloadFor(i, term, crashPayloadBytes(i)) });
    // Everything acknowledged so far is committed by this batch's hard state.
    await wal.save({ term, vote: 1, commit: last }, entries);
    last += count;
    process.stdout.write(`ack ${last}\n`);
    if (batch % SNAPSHOT_EVERY_BATCHES === 0) await snapshotAndCompact(wal);
  }
}

async function snapshotAndCompact(wal: WriteAheadLog): Promise<void> {
  const commit = wal.storage.initialState().hardState.commit;
  if (commit <= wal.storage.snapshot().metadata.index) return;
  const metadata = { index: commit, term: wal.storage.term(commit), confState: CONF };
  const w = await wal.snapshots.create(metadata);
  for (let k = 0; k < 4; k++) await w.write(payloadFor(commit + k, metadata.term, 3000));
  await w.commit();
  await wal.markSnapshot(metadata);
  const to = commit - KEEP_ENTRIES_BEHIND_SNAPSHOT;
  if (to >= wal.storage.firstIndex()) await wal.compact(to);
}

await main();
