// Child process of a WAL test: the sequence that left a member unable to start after kill -9 (session 20's
// benchmark). Entries are saved with an older commit index, then the commit moves alone (a commit-only save,
// which the WAL does not write by itself), then a snapshot is marked at the new commit index. It prints "done"
// and waits to be killed, so the WAL's close(), which would write the hard state, never runs.
// Usage: node --import tsx storage/wal/testdata/snapshot-ahead-writer.ts <dir>
import { WriteAheadLog } from '../wal.js';
import { makeEntries, writeSnapshotFile } from '../testutil.js';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: snapshot-ahead-writer.ts <dir>');
const quiet = { info: () => {}, warn: () => {}, error: (o: object, m: string) => console.error(m, o) };
const wal = await WriteAheadLog.open(dir, { logger: quiet });
await wal.save({ term: 1, vote: 1, commit: 8 }, makeEntries(1, 10, 1));
await wal.save({ term: 1, vote: 1, commit: 10 }, [], undefined, { sync: false });
await wal.markSnapshot(await writeSnapshotFile(wal.snapshots, 10, 1));
process.stdout.write('done\n');
setInterval(() => {}, 1_000);
