// The simulator's building blocks, tested without the Raft core: the agenda, the network, the disk, the digest.
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../raft/rng.js';
import { EntryType, type Ready } from '../../raft/types.js';
import { TraceDigest } from './digest.js';
import { SimDisk } from './disk.js';
import { SimNetwork } from './network.js';
import { EventQueue } from './queue.js';
import { RegisterMachine } from './statemachine.js';

function ready(fields: Partial<Ready>): Ready {
  return {
    softState: undefined,
    hardState: undefined,
    entries: [],
    snapshot: undefined,
    committedEntries: [],
    messages: [],
    readStates: [],
    mustSync: false,
    ...fields,
  };
}

describe('EventQueue', () => {
  it('pops by time, ties in insertion order', () => {
    const q = new EventQueue<string>();
    const rng = new SeededRandom(3);
    const pushed: [number, string][] = [];
    for (let i = 0; i < 500; i++) {
      const t = rng.int(50);
      pushed.push([t, `e${i}`]);
      q.push(t, `e${i}`);
    }
    const expected = pushed.map((p, i) => ({ t: p[0], i, v: p[1] })).sort((a, b) => a.t - b.t || a.i - b.i);
    const got: string[] = [];
    while (q.size > 0) got.push(q.pop()!.item);
    expect(got).toEqual(expected.map((e) => e.v));
    expect(q.pop()).toBeUndefined();
    expect(q.peekTime()).toBe(Infinity);
  });
});

describe('SimNetwork', () => {
  it('same seed, same fate for every message', () => {
    const route = (seed: number): number[][] => {
      const n = new SimNetwork(new SeededRandom(seed));
      n.faults = { dropRate: 0.2, duplicateRate: 0.2, slowRate: 0.1, minDelayMs: 1, maxDelayMs: 5, slowDelayMaxMs: 100 };
      return Array.from({ length: 200 }, (_, i) => n.route(1, 2, i));
    };
    expect(route(9)).toEqual(route(9));
    expect(route(9)).not.toEqual(route(10));
  });

  it('drops, duplicates and delays within bounds', () => {
    const n = new SimNetwork(new SeededRandom(1));
    n.faults = { dropRate: 0.3, duplicateRate: 0.3, slowRate: 0.1, minDelayMs: 2, maxDelayMs: 4, slowDelayMaxMs: 50 };
    let dropped = 0;
    let doubled = 0;
    let slow = 0;
    for (let i = 0; i < 2000; i++) {
      const times = n.route(1, 2, 1000);
      if (times.length === 0) dropped++;
      if (times.length === 2) doubled++;
      for (const t of times) {
        expect(t).toBeGreaterThanOrEqual(1002);
        expect(t).toBeLessThanOrEqual(1050);
        if (t > 1004) slow++;
      }
    }
    expect(dropped).toBeGreaterThan(400);
    expect(doubled).toBeGreaterThan(250);
    expect(slow).toBeGreaterThan(50);
  });

  it('partitions: symmetric, one-way, bridge, isolate; heal restores everything', () => {
    const members = [1, 2, 3, 4, 5];
    const n = new SimNetwork(new SeededRandom(5));
    const reach = (): boolean[][] => members.map((a) => members.map((b) => n.canReach(a, b)));

    n.partition('isolate', members, 3);
    for (const m of members) {
      if (m === 3) continue;
      expect(n.canReach(3, m)).toBe(false);
      expect(n.canReach(m, 3)).toBe(false);
    }
    expect(n.canReach(1, 2)).toBe(true);
    expect(n.route(3, 1, 0)).toEqual([]);

    n.partition('symmetric', members, 1);
    const sym = reach();
    for (let a = 0; a < 5; a++) for (let b = 0; b < 5; b++) expect(sym[a]![b]).toBe(sym[b]![a]);
    expect(sym.flat().some((x) => !x)).toBe(true);

    n.partition('one-way', members, 1);
    const ow = reach();
    let asymmetric = 0;
    for (let a = 0; a < 5; a++) for (let b = 0; b < 5; b++) if (ow[a]![b] !== ow[b]![a]) asymmetric++;
    expect(asymmetric).toBeGreaterThan(0);

    n.partition('bridge', members, 1);
    const bridge = members.find((b) => members.every((m) => n.canReach(b, m) && n.canReach(m, b)));
    expect(bridge).toBeDefined();
    const others = members.filter((m) => m !== bridge);
    expect(others.some((a) => others.some((b) => !n.canReach(a, b)))).toBe(true);
    expect(n.describe).toMatch(/^bridge/);

    n.heal();
    expect(reach().flat().every((x) => x)).toBe(true);
    expect(n.partitioned).toBe(false);
  });
});

describe('SimDisk', () => {
  const boot = { metadata: { index: 1, term: 1, confState: { voters: [1], learners: [] } }, data: new RegisterMachine(1, 0).image() };

  it('a crash loses the unsynced commit index but keeps synced entries and votes', () => {
    const d = new SimDisk();
    d.format(boot, { term: 1, vote: 0, commit: 1 });
    const e2 = { index: 2, term: 2, type: EntryType.Normal, data: new Uint8Array([1]) };
    d.write(ready({ entries: [e2], hardState: { term: 2, vote: 1, commit: 1 }, mustSync: true }));
    d.write(ready({ hardState: { term: 2, vote: 1, commit: 2 }, mustSync: false }));
    expect(d.storage.initialState().hardState.commit).toBe(2);
    d.crash();
    expect(d.storage.initialState().hardState).toEqual({ term: 2, vote: 1, commit: 1 });
    expect(d.storage.lastIndex()).toBe(2);
  });

  it('reports the entries that landed and the term before them, skipping what the snapshot covers', () => {
    const d = new SimDisk();
    d.format(boot, { term: 1, vote: 0, commit: 1 });
    const es = [1, 2, 3].map((i) => ({ index: i, term: 1, type: EntryType.Normal, data: new Uint8Array([i]) }));
    const { landed, prevTerm } = d.write(ready({ entries: es, mustSync: true }));
    expect(landed.map((e) => e.index)).toEqual([2, 3]);
    expect(prevTerm).toBe(1);
  });
});

describe('TraceDigest and RegisterMachine', () => {
  it('the digest depends on every number and on their order', () => {
    const d = (xs: number[]): string => {
      const t = new TraceDigest();
      for (const x of xs) t.add(x);
      return t.hex();
    };
    expect(d([1, 2, 3])).toBe(d([1, 2, 3]));
    expect(d([1, 2, 3])).not.toBe(d([1, 3, 2]));
    expect(d([2 ** 40])).not.toBe(d([0]));
  });

  it('the state machine image round-trips', () => {
    const m = new RegisterMachine(1, 99);
    m.apply(2, new Uint8Array([4, 5]));
    const back = RegisterMachine.restore(m.image());
    expect(back.index).toBe(2);
    expect(back.chain).toBe(m.chain);
  });
});
