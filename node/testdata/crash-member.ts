// Child process for node/member.crash.test.ts: a single-voter member on disk that writes as fast as it can,
// with a small snapshot interval so snapshots and WAL compaction happen between kills. Prints "ready" once
// serving, then "ack <n> <revision>" after each write is acknowledged (applied, and so durable in the WAL).
import { Member } from '../member.js';

const dir = process.argv[2];
const start = Number(process.argv[3] ?? 0);
if (dir === undefined) throw new Error('usage: crash-member.ts <data-dir> <first-n>');
const CONCURRENCY = 16;

const m = await Member.start({ id: 1, dataDir: dir, initialVoters: [1], heartbeatMs: 50, snapshotCount: 300, snapshotCatchUpEntries: 50 });
process.stdout.write('ready\n');
let next = start;
const enc = new TextEncoder();
async function writer(): Promise<void> {
  for (;;) {
    const n = next++;
    const r = await m.propose({ put: { key: enc.encode(`w-${n}`), value: enc.encode(`value-${n}`) } });
    process.stdout.write(`ack ${n} ${r.revision}\n`);
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, () => writer()));
