// The Raft core alone: a 3-member cluster in one process with no I/O, proposing 256-byte entries as fast as
// it can. Prints entries committed per second and an estimate of allocation. The core should never be what
// limits the server. Run: npm run bench:raft [-- --entries 500000 --batch 64]
import { PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import v8 from 'node:v8';
import { Command } from 'commander';
import { RawNode } from '../raft/rawnode.js';
import { SeededRandom } from '../raft/rng.js';
import { MemoryStorage } from '../raft/storage.js';
import { decodeConfChange } from '../raft/confchange.js';
import { EntryType, type Message, type NodeId } from '../raft/types.js';

const opts = new Command()
  .option('--entries <n>', 'entries to commit', '500000')
  .option('--batch <n>', 'proposals per round before messages are delivered', '64')
  .option('--size <bytes>', 'entry payload size', '256')
  .parse()
  .opts<{ entries: string; batch: string; size: string }>();
const ENTRIES = Number(opts.entries);
const BATCH = Number(opts.batch);
const PAYLOAD = new Uint8Array(Number(opts.size)).fill(7);
const COMPACT_EVERY = 20_000;

interface Member {
  id: NodeId;
  node: RawNode;
  storage: MemoryStorage;
  appliedIndex: number;
}

const rng = new SeededRandom(42);
const ids = [1, 2, 3];
const members: Member[] = ids.map((id) => {
  const storage = new MemoryStorage();
  const node = new RawNode({ id, random: rng.fork(), maxInflightMsgs: 1024 }, storage);
  node.bootstrap(ids);
  return { id, node, storage, appliedIndex: 0 };
});
const byId = new Map(members.map((m) => [m.id, m]));
let queue: Message[] = [];
let committedOnLeader = 0;

function pump(): void {
  for (;;) {
    for (const m of members) {
      while (m.node.hasReady()) {
        const rd = m.node.ready();
        if (rd.snapshot !== undefined) m.storage.applySnapshot(rd.snapshot);
        m.storage.append(rd.entries);
        if (rd.hardState !== undefined) m.storage.setHardState(rd.hardState);
        for (const msg of rd.messages) queue.push(msg);
        for (const e of rd.committedEntries) {
          if (e.type === EntryType.ConfChange) m.node.applyConfChange(decodeConfChange(e.data));
          else if (m.id === 1 && e.data.byteLength > 0) committedOnLeader++;
          m.appliedIndex = e.index;
        }
        m.node.advance(rd);
      }
    }
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    for (const msg of batch) byId.get(msg.to)?.node.step(msg);
  }
}

function compactAll(): void {
  for (const m of members) {
    const cs = m.node.status().confState;
    const keep = m.appliedIndex - 1000; // keep a tail so followers rarely need a snapshot
    if (keep > m.storage.snapshot().metadata.index && keep > m.storage.firstIndex()) {
      m.storage.createSnapshot(keep, cs, new Uint8Array(0));
      m.storage.compact(keep);
    }
  }
}

pump();
members[0]!.node.campaign();
pump();
if (members[0]!.node.status().softState.role !== 'leader') throw new Error('member 1 did not become leader');

let gcCount = 0;
let gcMs = 0;
let scavenges = 0;
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcCount++;
    gcMs += e.duration;
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
    if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
  }
});
obs.observe({ entryTypes: ['gc'] });
const newSpace = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');

const leader = members[0]!.node;
const start = process.hrtime.bigint();
let proposed = 0;
let lastCompact = 0;
while (committedOnLeader < ENTRIES) {
  for (let i = 0; i < BATCH && proposed < ENTRIES; i++, proposed++) leader.propose(PAYLOAD);
  pump();
  if (committedOnLeader - lastCompact >= COMPACT_EVERY) {
    compactAll();
    lastCompact = committedOnLeader;
  }
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
await new Promise((r) => setTimeout(r, 50)); // let the GC observer flush
obs.disconnect();

const perSec = ENTRIES / seconds;
// Each scavenge empties the young generation, so scavenges x its size bounds what was allocated there.
const approxAllocBytes = scavenges * ((newSpace?.space_size ?? 0) / 2);
console.log(`raft core, 3 members in one process, no I/O, ${PAYLOAD.byteLength}-byte entries, ${BATCH} proposals per round`);
console.log(`committed ${ENTRIES} entries in ${seconds.toFixed(2)} s`);
console.log(`entries committed per second: ${Math.round(perSec).toLocaleString('en-US')}  (${((perSec * PAYLOAD.byteLength) / 1e6).toFixed(1)} MB/s of payload)`);
console.log(`gc: ${gcCount} collections (${scavenges} scavenges), ${gcMs.toFixed(0)} ms in gc (${((gcMs / 1000 / seconds) * 100).toFixed(1)}% of run)`);
console.log(`approx. young-generation allocation: ${(approxAllocBytes / ENTRIES).toFixed(0)} bytes per committed entry (whole cluster)`);
console.log(`target: >= 100,000 entries/s on one core -> ${perSec >= 100_000 ? 'met' : 'NOT met'}`);
