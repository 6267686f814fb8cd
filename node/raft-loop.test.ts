import { afterEach, describe, expect, it, vi } from 'vitest';
import { RawNode } from '../raft/rawnode.js';
import { SeededRandom } from '../raft/rng.js';
import { EntryType, message, MessageType, Role, type Entry, type Message, type Snapshot } from '../raft/types.js';
import { MemoryLogStore } from './memory-log-store.js';
import { APPEND_COALESCE_BYTES_MAX, coalesceAppends, CommitNotices, LoopError, PROPOSAL_BATCH_ENTRIES_MAX, RaftLoop, RAFT_LOOP_DEFAULTS, HEARTBEAT_HOLDUP_WARN_INTERVALS, unwrapProposal, wrapProposal, type Applier, type Command, type Ticker } from './raft-loop.js';

/** A ticker the test drives by hand: time is explicit, nothing depends on wall-clock speed. */
class ManualTicker implements Ticker {
  private fns: Array<() => void> = [];
  every(_ms: number, fn: () => void): () => void {
    this.fns.push(fn);
    return () => (this.fns = this.fns.filter((f) => f !== fn));
  }
  fire(): void {
    for (const f of [...this.fns]) f();
  }
}

/** A key-value applier: payload "k=v" sets k; the result is the previous value. */
class KvApplier implements Applier {
  readonly data = new Map<string, string>();
  readonly appliedIndexes: number[] = [];
  async apply(commands: readonly Command[]): Promise<readonly unknown[]> {
    return commands.map((c) => {
      const [k, v] = new TextDecoder().decode(c.payload).split('=') as [string, string];
      const prev = this.data.get(k);
      this.data.set(k, v);
      this.appliedIndexes.push(c.index);
      return prev ?? null;
    });
  }
  /** A snapshot's data is the map as JSON (what snapshotOf writes). */
  async restore(s: Snapshot): Promise<void> {
    this.data.clear();
    for (const [k, v] of Object.entries(JSON.parse(new TextDecoder().decode(s.data)) as Record<string, string>)) this.data.set(k, v);
  }
}

/** Record a snapshot of `m` at its applied index and compact its log there, as a member's snapshotting does. */
function snapshotAndCompact(m: Member): number {
  const index = m.loop.applied;
  const data = new TextEncoder().encode(JSON.stringify(Object.fromEntries(m.applier.data)));
  m.log.storage.createSnapshot(index, m.loop.node.status().confState, data);
  m.log.storage.compact(index);
  return index;
}

/** A one-member loop (member id 1) that has campaigned and leads. */
async function singleLeader(options: {
  bootNonce: number;
  maxPendingProposals?: number;
  tickMs?: number;
  onTickLate?: (gapMs: number) => void;
  onPersist?: (ms: number, synced: boolean) => void;
  log?: MemoryLogStore;
}): Promise<{ node: RawNode; loop: RaftLoop }> {
  const { log: given, ...loopOptions } = options;
  const log = given ?? new MemoryLogStore();
  const node = new RawNode({ id: 1, random: new SeededRandom(1) }, log.storage);
  node.bootstrap([1]);
  const loop = new RaftLoop(node, log, { send: () => {} }, new KvApplier(), { ...RAFT_LOOP_DEFAULTS, ...loopOptions, memberId: 1, ticker: new ManualTicker() });
  loops.push(loop);
  loop.start();
  await settle();
  node.campaign();
  loop.kick();
  // Under load (a full test run) one 5 ms pause may not be enough for the election's Ready to be handled.
  for (let i = 0; i < 200 && node.role !== Role.Leader; i++) await settle();
  expect(node.role).toBe(Role.Leader);
  return { node, loop };
}

interface Member {
  loop: RaftLoop;
  log: MemoryLogStore;
  applier: KvApplier;
}

const loops: RaftLoop[] = [];
afterEach(async () => {
  for (const l of loops.splice(0)) await l.stop();
});

/**
 * What the in-memory network reports: a message handed to it (sent) and, one setImmediate later, put on the wire
 * (left); and which messages it loses (lose).
 */
interface WireHooks {
  sent?(m: Message): void;
  left?(m: Message): void;
  lose?(m: Message): boolean;
}

function cluster(size: number, delivered: Message[] = [], wire: WireHooks = {}): { members: Map<number, Member>; ticker: ManualTicker; cut: Set<number>; deaf: Set<number> } {
  const ticker = new ManualTicker();
  const members = new Map<number, Member>();
  const cut = new Set<number>();
  /** Members that receive nothing but are still heard (a one-way partition). */
  const deaf = new Set<number>();
  const ids = Array.from({ length: size }, (_, i) => i + 1);
  const rng = new SeededRandom(3);
  for (const id of ids) {
    const log = new MemoryLogStore();
    const node = new RawNode({ id, random: rng.fork() }, log.storage);
    node.bootstrap(ids);
    const applier = new KvApplier();
    const peers = {
      send: (msgs: readonly Message[]) => {
        for (const m of msgs) {
          if (cut.has(m.from) || cut.has(m.to) || deaf.has(m.to) || wire.lose?.(m) === true) continue;
          delivered.push(m);
          wire.sent?.(m);
          // As Node's HTTP/2 does: the bytes go out in the check phase, not when the stream is written to.
          setImmediate(() => {
            wire.left?.(m);
            members.get(m.to)?.loop.step(m);
          });
        }
      },
    };
    const loop = new RaftLoop(node, log, peers, applier, {
      ...RAFT_LOOP_DEFAULTS,
      memberId: id,
      bootNonce: 1000 + id,
      ticker,
    });
    members.set(id, { loop, log, applier });
    loops.push(loop);
    loop.start();
  }
  return { members, ticker, cut, deaf };
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 5));
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

async function electLeader(members: Map<number, Member>, ticker: ManualTicker): Promise<number> {
  await settle();
  members.get(1)!.loop.node.campaign();
  members.get(1)!.loop.kick();
  for (let i = 0; i < 50; i++) {
    await settle();
    for (const [id, m] of members) if (m.loop.node.status().softState.role === 'leader') return id;
    ticker.fire();
  }
  throw new Error('no leader');
}

/** Tick, delivering what each tick sends, until `loop`'s member knows `lead` as its leader. */
async function untilKnowsLeader(loop: RaftLoop, lead: number, ticker: ManualTicker): Promise<void> {
  for (let i = 0; i < 50 && loop.node.status().softState.lead !== lead; i++) {
    ticker.fire();
    await settle();
  }
  expect(loop.node.status().softState.lead).toBe(lead);
}

describe('RaftLoop', () => {
  it('resolves a proposal with the applier result once applied, on every member', async () => {
    const { members, ticker } = cluster(3);
    const lead = await electLeader(members, ticker);
    expect(await members.get(lead)!.loop.propose(enc('a=1'))).toBeNull();
    expect(await members.get(lead)!.loop.propose(enc('a=2'))).toBe('1');
    await settle();
    ticker.fire();
    await settle();
    for (const m of members.values()) expect(m.applier.data.get('a')).toBe('2');
  });

  it('forwards a follower proposal and resolves it on the follower when applied there', async () => {
    const { members, ticker } = cluster(3);
    const lead = await electLeader(members, ticker);
    const follower = [...members.keys()].find((id) => id !== lead)!;
    expect(await members.get(follower)!.loop.propose(enc('k=v'))).toBeNull();
    expect(members.get(follower)!.applier.data.get('k')).toBe('v');
  });

  it('answers a read with an index covering every write acknowledged before it', async () => {
    const { members, ticker } = cluster(3);
    const lead = await electLeader(members, ticker);
    await members.get(lead)!.loop.propose(enc('x=1'));
    const follower = [...members.keys()].find((id) => id !== lead)!;
    const reads = await Promise.all([members.get(follower)!.loop.readIndex(), members.get(follower)!.loop.readIndex()]);
    const xIndex = members.get(lead)!.applier.appliedIndexes.at(-1)!;
    for (const idx of reads) expect(idx).toBeGreaterThanOrEqual(xIndex);
    expect(members.get(follower)!.loop.applied).toBeGreaterThanOrEqual(xIndex);
    expect(members.get(follower)!.applier.data.get('x')).toBe('1');
  });

  it('reports ticks that come more than HEARTBEAT_HOLDUP_WARN_INTERVALS intervals apart (a blocked event loop), and not the others', async () => {
    const late: number[] = [];
    const { loop } = await singleLeader({ bootNonce: 7, tickMs: 10, onTickLate: (gap) => late.push(gap) });
    loop.tick();
    loop.tick(); // at once: not late
    await new Promise((r) => setTimeout(r, 10 * HEARTBEAT_HOLDUP_WARN_INTERVALS + 40));
    loop.tick();
    expect(late).toHaveLength(1);
    expect(late[0]).toBeGreaterThan(10 * HEARTBEAT_HOLDUP_WARN_INTERVALS);
  });

  it('lets a follower\'s acknowledgements leave before it applies, so the leader\'s commit does not wait for that apply', async () => {
    const waiting = new Map<number, number>(); // member -> AppResps handed to the network and not yet on the wire
    const count = (m: Message, d: number): void => void (m.type === MessageType.AppResp && waiting.set(m.from, (waiting.get(m.from) ?? 0) + d));
    const { members, ticker } = cluster(3, [], { sent: (m) => count(m, 1), left: (m) => count(m, -1) });
    const lead = await electLeader(members, ticker);
    const followers = [...members.keys()].filter((id) => id !== lead);
    const heldBack: number[] = [];
    let checked = 0;
    for (const id of followers) {
      const applier = members.get(id)!.applier;
      const apply = applier.apply.bind(applier);
      applier.apply = (commands) => {
        checked++;
        if ((waiting.get(id) ?? 0) > 0) heldBack.push(id);
        return apply(commands);
      };
    }
    for (let i = 0; i < 10; i++) await members.get(lead)!.loop.propose(enc(`k=${i}`));
    await settle();
    ticker.fire();
    await settle();
    for (const id of followers) expect(members.get(id)!.applier.data.get('k')).toBe('9');
    expect(checked).toBeGreaterThanOrEqual(10);
    expect(heldBack).toEqual([]);
  });

  it('lets an idle leader\'s appends leave before it writes the same entries to its own log (one write in flight)', async () => {
    let waiting = 0; // appends with entries handed to the network and not yet on the wire
    const counts = (m: Message): boolean => m.type === MessageType.App && m.entries.length > 0;
    const { members, ticker } = cluster(3, [], { sent: (m) => void (counts(m) && waiting++), left: (m) => void (counts(m) && waiting--) });
    const lead = await electLeader(members, ticker);
    const log = members.get(lead)!.log;
    const save = log.save.bind(log);
    const heldBack: number[] = [];
    let saves = 0;
    log.save = (hs, entries, snap, opts) => {
      if (entries.length > 0) {
        saves++;
        if (waiting > 0) heldBack.push(entries[0]!.index);
      }
      return save(hs, entries, snap, opts);
    };
    for (let i = 0; i < 10; i++) {
      await members.get(lead)!.loop.propose(enc(`k=${i}`));
      await settle(); // the leader goes idle between writes, as at one request in flight
    }
    expect(saves).toBeGreaterThanOrEqual(10);
    expect(heldBack).toEqual([]);
  });

  it('reports each persist\'s duration and whether it synced (the slow-WAL-sync warning\'s input)', async () => {
    const log = new MemoryLogStore();
    const persists: Array<[number, boolean]> = [];
    const { loop } = await singleLeader({ bootNonce: 9, log, onPersist: (ms, synced) => persists.push([ms, synced]) });
    log.syncDelayMs = 40; // a slow fsync from now on
    persists.length = 0;
    await loop.propose(enc('slow=1'));
    const synced = persists.filter(([, s]) => s).map(([ms]) => ms);
    expect(synced.length).toBeGreaterThan(0);
    expect(Math.min(...synced)).toBeGreaterThanOrEqual(39); // setTimeout's own rounding aside
  });

  it('rejects a proposal with a typed error when there is no leader', async () => {
    const { members } = cluster(3);
    await settle();
    await expect(members.get(1)!.loop.propose(enc('a=1'))).rejects.toMatchObject({ code: 'PROPOSAL_DROPPED' });
  });

  it('stops the member on a failed persist and fails what was waiting', async () => {
    const { members, ticker } = cluster(3);
    const lead = await electLeader(members, ticker);
    const m = members.get(lead)!;
    m.log.failNextSave = new Error('EIO: disk gone');
    const p = m.loop.propose(enc('a=1'));
    await expect(p).rejects.toBeInstanceOf(LoopError);
    expect(() => m.loop.propose(enc('b=1'))).toThrow(/fatal error: Error: EIO/);
  });

  it('fails a proposal whose forward was lost after proposalTimeoutTicks, and frees its slot', async () => {
    let loseProposals = false;
    const { members, ticker } = cluster(3, [], { lose: (m) => loseProposals && m.type === MessageType.Prop });
    const lead = await electLeader(members, ticker);
    const follower = [...members.keys()].find((id) => id !== lead)!;
    const loop = members.get(follower)!.loop;
    // The follower must know the leader (a heartbeat reached it), or its proposal is dropped at once, not lost.
    await untilKnowsLeader(loop, lead, ticker);
    loseProposals = true; // the leader stays, but the follower's forwarded proposal never arrives
    const lost = loop.propose(enc('lost=1'));
    const outcome = lost.then(() => 'applied', (e: unknown) => e);
    // Ticks with the messages between them delivered: the leader's heartbeats keep it the leader.
    for (let i = 0; i < RAFT_LOOP_DEFAULTS.proposalTimeoutTicks - 1; i++) {
      ticker.fire();
      await settle();
    }
    expect(loop.node.status().softState.lead).toBe(lead);
    expect(await Promise.race([outcome, settle().then(() => 'still waiting')])).toBe('still waiting');
    ticker.fire();
    expect(await outcome).toMatchObject({ code: 'TIMEOUT', message: 'etcdserver: request timed out' });
    expect((loop as unknown as { proposals: Map<string, unknown> }).proposals.size).toBe(0);
  });

  it('fails what went to a leader that is gone as soon as another is elected, not after proposalTimeoutTicks', async () => {
    const { members, ticker, cut } = cluster(3);
    const lead = await electLeader(members, ticker);
    const [follower, other] = [...members.keys()].filter((id) => id !== lead) as [number, number];
    const loop = members.get(follower)!.loop;
    await untilKnowsLeader(loop, lead, ticker);
    cut.add(lead); // the leader's process is gone: the forward is lost with it
    const lost = loop.propose(enc('lost=1'));
    const outcome = lost.then(() => 'applied', (e: unknown) => e);
    let ticks = 0;
    for (; ticks < RAFT_LOOP_DEFAULTS.proposalTimeoutTicks / 2; ticks++) {
      const lead2 = members.get(other)!.loop.node.status().softState.lead;
      if (lead2 !== lead && lead2 !== 0) break;
      ticker.fire();
      await settle();
    }
    expect(ticks).toBeLessThan(RAFT_LOOP_DEFAULTS.proposalTimeoutTicks / 2); // a new leader, long before any timeout
    expect(await outcome).toMatchObject({ code: 'TIMEOUT_DUE_TO_LEADER_FAIL', message: 'etcdserver: request timed out, possibly due to previous leader failure' });
    expect((loop as unknown as { proposals: Map<string, unknown> }).proposals.size).toBe(0);
    // The member goes on: the next proposal reaches the new leader and is applied.
    expect(await loop.propose(enc('after=1'))).toBeNull();
  });

  it('a forwarded proposal whose entry reaches its follower only inside a snapshot fails with TIMEOUT, though it took effect', async () => {
    const { members, ticker, deaf } = cluster(3);
    const lead = await electLeader(members, ticker);
    const followerId = [...members.keys()].find((id) => id !== lead)!;
    const follower = members.get(followerId)!;
    await untilKnowsLeader(follower.loop, lead, ticker);
    // The follower is heard but hears nothing: its forwarded proposal reaches the leader and commits with the
    // third member, while its own log stays behind.
    deaf.add(followerId);
    const forwarded = follower.loop.propose(enc('x=forwarded'));
    const outcome = forwarded.then((r) => ({ answered: r }), (e: unknown) => e);
    const leader = members.get(lead)!;
    for (let i = 0; i < 400 && leader.applier.data.get('x') !== 'forwarded'; i++) await settle();
    expect(leader.applier.data.get('x')).toBe('forwarded');
    expect(await leader.loop.propose(enc('y=after'))).toBeNull();
    // The leader compacts its log past the entry: the follower can only catch up from the snapshot.
    const snapshotIndex = snapshotAndCompact(leader);
    const appliedBefore = follower.applier.appliedIndexes.length;
    deaf.delete(followerId);
    for (let i = 0; i < 400 && follower.loop.applied < snapshotIndex; i++) {
      ticker.fire();
      await settle();
    }
    expect(follower.loop.applied).toBeGreaterThanOrEqual(snapshotIndex);
    expect(Object.fromEntries(follower.applier.data)).toMatchObject({ x: 'forwarded', y: 'after' });
    // It came in the snapshot: no entry at or below the snapshot's index went through the follower's apply.
    expect(follower.applier.appliedIndexes.slice(appliedBefore).filter((i) => i <= snapshotIndex)).toEqual([]);
    // The write took effect, but its own entry was never applied here, so no answer can be given: the proposal
    // fails as lost (an ambiguous outcome, as in etcd) once proposalTimeoutTicks pass, and never with another's
    // answer. Its slot is freed.
    for (let i = 0; i < RAFT_LOOP_DEFAULTS.proposalTimeoutTicks; i++) ticker.fire();
    expect(await outcome).toMatchObject({ code: 'TIMEOUT', message: 'etcdserver: request timed out' });
    expect((follower.loop as unknown as { proposals: Map<string, unknown> }).proposals.size).toBe(0);
  });

  it('refuses a leader-only proposal on a follower, and takes it on the leader', async () => {
    const { members, ticker } = cluster(3);
    const lead = await electLeader(members, ticker);
    const follower = [...members.keys()].find((id) => id !== lead)!;
    await expect(members.get(follower)!.loop.propose(enc('x=1'), { leaderOnly: true })).rejects.toMatchObject({ code: 'PROPOSAL_DROPPED', message: 'fulcrum: not the leader' });
    expect(await members.get(lead)!.loop.propose(enc('x=2'), { leaderOnly: true })).toBeNull();
  });

  it('answers a proposal only with its own entry, not with an entry an earlier life of this member proposed under the same sequence number', async () => {
    const { node, loop } = await singleLeader({ bootNonce: 8 });
    // An entry from this member's life with boot nonce 7, sequence number 1, still in the log ahead of ours.
    node.propose(wrapProposal(1, 7, 1, enc('a=1')));
    const ours = loop.propose(enc('a=2')); // sequence number 1 of this life (nonce 8)
    expect(await ours).toBe('1'); // its own result (the previous value), not the earlier entry's (null)
  });

  it('bounds waiting proposals with a named limit', async () => {
    const { loop } = await singleLeader({ bootNonce: 7, maxPendingProposals: 2 });
    const a = loop.propose(enc('a=1'));
    const b = loop.propose(enc('b=1'));
    await expect(loop.propose(enc('c=1'))).rejects.toMatchObject({ code: 'TOO_MANY_REQUESTS' });
    expect(await a).toBeNull();
    expect(await b).toBeNull();
  });
});

describe('proposal batches', () => {
  /** The commands of a member's log from `from` on, in log order ("k=v" payloads). */
  const logged = (m: Member, from: number): string[] =>
    m.log.storage
      .entries(from, m.log.storage.lastIndex() + 1, Infinity)
      .filter((e) => e.type === EntryType.Normal && e.data.byteLength > 0)
      .map((e) => new TextDecoder().decode(unwrapProposal(e.data).payload));

  it('answers each proposal of a burst with its own result, entries in call order, one append per follower', async () => {
    const delivered: Message[] = [];
    const { members, ticker } = cluster(3, delivered);
    const lead = await electLeader(members, ticker);
    const m = members.get(lead)!;
    await settle();
    const from = m.log.storage.lastIndex() + 1;
    delivered.length = 0;
    const answers = Array.from({ length: 50 }, (_, i) => m.loop.propose(enc(`k${i}=${i}`)));
    expect(await Promise.all(answers)).toEqual(answers.map(() => null));
    expect(logged(m, from)).toEqual(Array.from({ length: 50 }, (_, i) => `k${i}=${i}`));
    const withEntries = delivered.filter((d) => d.type === MessageType.App && d.entries.length > 0);
    // One append per follower carried all fifty (a lost or retried one would make more, never fewer).
    expect(withEntries.length).toBe(2);
    expect(withEntries.map((d) => d.entries.length)).toEqual([50, 50]);
  });

  it('fails every proposal of a batch the core refuses with PROPOSAL_DROPPED, and takes the next batch', async () => {
    const { members } = cluster(3);
    await settle();
    const refused = [1, 2, 3].map((i) => members.get(1)!.loop.propose(enc(`r${i}=1`)));
    for (const p of refused) await expect(p).rejects.toMatchObject({ code: 'PROPOSAL_DROPPED' });
  });

  it('holds proposals until the pump, and steps a full batch (PROPOSAL_BATCH_ENTRIES_MAX) at once', async () => {
    const { node, loop } = await singleLeader({ bootNonce: 9, maxPendingProposals: 2 * PROPOSAL_BATCH_ENTRIES_MAX });
    await settle();
    const before = node.status().hardState.commit;
    expect(node.hasReady()).toBe(false);
    const answers = Array.from({ length: PROPOSAL_BATCH_ENTRIES_MAX - 1 }, (_, i) => loop.propose(enc(`b${i}=1`)));
    expect(node.hasReady()).toBe(false); // taken, not yet in the core
    answers.push(loop.propose(enc('last=1')));
    expect(node.hasReady()).toBe(true); // the full batch went in without waiting for the pump
    await Promise.all(answers);
    expect(node.status().hardState.commit).toBe(before + PROPOSAL_BATCH_ENTRIES_MAX);
  });

  it('keeps call order between batched proposals and a leader-only one made after them', async () => {
    const { members, ticker } = cluster(3);
    const lead = await electLeader(members, ticker);
    const m = members.get(lead)!;
    await settle();
    const from = m.log.storage.lastIndex() + 1;
    const a = m.loop.propose(enc('a=1'));
    const b = m.loop.propose(enc('b=1'));
    const c = m.loop.propose(enc('c=1'), { leaderOnly: true });
    await Promise.all([a, b, c]);
    expect(logged(m, from)).toEqual(['a=1', 'b=1', 'c=1']);
  });
});

describe('coalesceAppends', () => {
  const entry = (e: { index: number; term: number; data: Uint8Array }): Entry => ({ type: EntryType.Normal, ...e });
  const data = (n: number): Uint8Array => new Uint8Array(n);
  const app = (to: number, index: number, logTerm: number, terms: number[], commit = 0, term = 2): Message =>
    message({ type: MessageType.App, from: 1, to, term, index, logTerm, commit, entries: terms.map((t, i) => entry({ index: index + 1 + i, term: t, data: data(8) })) });
  const summary = (ms: readonly Message[]): string[] => ms.map((m) => `${MessageType[m.type]}>${m.to}@${m.index}:${m.entries.map((e) => e.index).join('.')}c${m.commit}`);

  it('joins appends to one follower that continue one another, keeping the later commit', () => {
    const out = coalesceAppends([app(2, 5, 2, [2], 4), app(3, 5, 2, [2], 4), app(2, 6, 2, [2], 5), app(3, 6, 2, [2], 5), app(2, 7, 2, [2, 2], 6)]);
    expect(summary(out)).toEqual(['App>2@5:6.7.8.9c6', 'App>3@5:6.7c5']);
  });

  it('never joins across another message to the same follower, a gap, another term or an empty append', () => {
    const hb = message({ type: MessageType.Heartbeat, from: 1, to: 2, term: 2 });
    expect(summary(coalesceAppends([app(2, 5, 2, [2]), hb, app(2, 6, 2, [2])]))).toEqual(['App>2@5:6c0', 'Heartbeat>2@0:c0', 'App>2@6:7c0']);
    // what was joined before the other message stays joined
    expect(summary(coalesceAppends([app(2, 5, 2, [2]), app(2, 6, 2, [2]), hb, app(2, 7, 2, [2])]))).toEqual(['App>2@5:6.7c0', 'Heartbeat>2@0:c0', 'App>2@7:8c0']);
    expect(coalesceAppends([app(2, 5, 2, [2]), app(2, 7, 2, [2])])).toHaveLength(2); // index 7 does not follow 6
    expect(coalesceAppends([app(2, 5, 2, [2]), app(2, 6, 1, [2])])).toHaveLength(2); // wrong log term at 6
    expect(coalesceAppends([app(2, 5, 2, [2]), app(2, 6, 2, [3], 0, 3)])).toHaveLength(2); // leader term moved
    expect(coalesceAppends([app(2, 5, 2, []), app(2, 5, 2, [2])])).toHaveLength(2);
  });

  it('stops joining at APPEND_COALESCE_BYTES_MAX', () => {
    const big = (index: number): Message =>
      message({ type: MessageType.App, from: 1, to: 2, term: 2, index, logTerm: 2, entries: [entry({ index: index + 1, term: 2, data: data(APPEND_COALESCE_BYTES_MAX / 2) })] });
    expect(coalesceAppends([big(5), big(6), big(7)]).map((m) => m.entries.length)).toEqual([1, 1, 1]);
  });

  it('in a running cluster, a burst of proposals reaches followers in fewer appends and is applied everywhere', async () => {
    const delivered: Message[] = [];
    const { members, ticker } = cluster(3, delivered);
    const lead = await electLeader(members, ticker);
    delivered.length = 0;
    const loop = members.get(lead)!.loop;
    await Promise.all(Array.from({ length: 100 }, (_, i) => loop.propose(enc(`k${i}=v`))));
    await settle();
    ticker.fire();
    await settle();
    for (const m of members.values()) expect(m.applier.data.size).toBe(100);
    const appends = delivered.filter((m) => m.type === MessageType.App && m.entries.length > 0);
    expect(appends.reduce((n, m) => n + m.entries.length, 0)).toBeGreaterThanOrEqual(200);
    expect(appends.length).toBeLessThan(20); // uncoalesced: one per proposal per follower, 200
  });
});

describe('CommitNotices', () => {
  const entry = (index: number): Entry => ({ type: EntryType.Normal, index, term: 2, data: new Uint8Array(8) });
  const notice = (to: number, commit: number): Message => message({ type: MessageType.App, from: 1, to, term: 2, index: commit, logTerm: 2, commit });
  const append = (to: number, index: number, commit: number): Message =>
    message({ type: MessageType.App, from: 1, to, term: 2, index: index - 1, logTerm: 2, commit, entries: [entry(index)] });
  const heartbeat = (to: number): Message => message({ type: MessageType.Heartbeat, from: 1, to, term: 2 });
  const summary = (ms: readonly Message[]): string => ms.map((m) => `${MessageType[m.type]}>${m.to}:${m.entries.length}c${m.commit}`).join(' ');

  function notices(holdMs: number): { n: CommitNotices; sent: string[] } {
    const sent: string[] = [];
    return { n: new CommitNotices(holdMs, (msgs) => sent.push(summary(msgs))), sent };
  }

  afterEach(() => vi.useRealTimers());

  it('holds a commit notice back for holdMs and sends everything else at once', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { n, sent } = notices(2);
    n.send([notice(2, 7), heartbeat(2), append(3, 8, 7), notice(2, 8)]);
    expect(sent).toEqual(['Heartbeat>2:0c0 App>3:1c7']);
    vi.advanceTimersByTime(1);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    // only the newest notice to follower 2: it carries the newer commit index
    expect(sent).toEqual(['Heartbeat>2:0c0 App>3:1c7', 'App>2:0c8']);
  });

  it('drops a held notice when an append with entries (or a snapshot) reaches that follower first', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { n, sent } = notices(2);
    n.send([notice(2, 7), notice(3, 7)]);
    n.send([append(2, 8, 7)]);
    n.send([message({ type: MessageType.Snap, from: 1, to: 3, term: 2 })]);
    vi.advanceTimersByTime(10);
    expect(sent).toEqual(['App>2:1c7', 'Snap>3:0c0']);
  });

  it('holds each notice the full holdMs, even when an earlier one was overtaken by an append just before', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { n, sent } = notices(4);
    n.send([notice(2, 7)]); // t=0
    vi.advanceTimersByTime(3);
    n.send([append(2, 8, 7)]); // t=3: the next write's entry carries commit 7, the notice is dropped
    n.send([notice(2, 8)]); // t=3: write 8 commits
    vi.advanceTimersByTime(2); // t=5: past the first notice's hold, not the second's
    expect(sent).toEqual(['App>2:1c7']);
    vi.advanceTimersByTime(2); // t=7
    expect(sent).toEqual(['App>2:1c7', 'App>2:0c8']);
  });

  it('sends notices at once when holdMs is 0, and sends nothing held after stop()', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const off = notices(0);
    off.n.send([notice(2, 7)]);
    expect(off.sent).toEqual(['App>2:0c7']);
    const on = notices(2);
    on.n.send([notice(2, 7)]);
    on.n.stop();
    vi.advanceTimersByTime(10);
    expect(on.sent).toEqual([]);
  });

  it('in a running cluster, followers learn the last commit from the held notice once writes stop', async () => {
    const delivered: Message[] = [];
    const { members, ticker } = cluster(3, delivered);
    const lead = await electLeader(members, ticker);
    const loop = members.get(lead)!.loop;
    for (let i = 0; i < 5; i++) await loop.propose(enc(`k${i}=v${i}`));
    // no tick fires, so no heartbeat can carry the commit index: only the held notice does
    await vi.waitFor(() => {
      for (const m of members.values()) expect(m.applier.data.get('k4')).toBe('v4');
    });
    const notices = delivered.filter((m) => m.type === MessageType.App && m.entries.length === 0);
    const withEntries = delivered.filter((m) => m.type === MessageType.App && m.entries.length > 0);
    // one entry per write per follower; a notice per write would double the appends
    expect(withEntries.length).toBeGreaterThanOrEqual(10);
    expect(notices.length).toBeLessThan(withEntries.length);
  });
});
