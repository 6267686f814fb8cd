// `npm start`. The server (etcd v3 API over gRPC) is not built yet; until it is, this shows what is there and
// runs a single in-process Raft member end to end so the command does something real.
import { RawNode } from '../raft/rawnode.js';
import { SeededRandom } from '../raft/rng.js';
import { MemoryStorage } from '../raft/storage.js';
import { EntryType } from '../raft/types.js';

function demoSingleMember(): void {
  const storage = new MemoryStorage();
  const node = new RawNode({ id: 1, random: new SeededRandom(Date.now()) }, storage);
  node.bootstrap([1]);
  const applied: string[] = [];
  const drain = (): void => {
    while (node.hasReady()) {
      const rd = node.ready();
      storage.append(rd.entries);
      if (rd.hardState !== undefined) storage.setHardState(rd.hardState);
      for (const e of rd.committedEntries) if (e.type === EntryType.Normal && e.data.byteLength > 0) applied.push(new TextDecoder().decode(e.data));
      node.advance(rd);
    }
  };
  drain();
  node.campaign();
  drain();
  node.propose(new TextEncoder().encode('hello from fulcrum'));
  drain();
  const st = node.status();
  console.log(`  in-process member 1: ${st.softState.role} at term ${st.hardState.term}, commit ${st.commit}, applied: ${JSON.stringify(applied)}`);
}

console.log(`Fulcrum ${process.env.npm_package_version ?? ''}: a Raft-replicated consistent core that will speak the etcd v3 API.

What is here now:
  raft/       the consensus core (pure, deterministic): npm test runs its unit and transcript tests
  chaos/sim/  the deterministic cluster simulator: npm run sim -- --seeds 200 --ticks 10000
  storage/    the write-ahead log, MVCC store, leases, HLC and exactly-once table (in progress)
  bench/      npm run bench:raft measures the core alone

The network server (etcd gRPC API on 127.0.0.1:2379, data in ./default.fulcrum) is the next milestone.
A quick end-to-end run of the core:`);
demoSingleMember();
