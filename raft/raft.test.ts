import { describe, expect, it } from 'vitest';
import { TestCluster } from './testing/cluster.js';
import { ConfChangeType, message, MessageType, Role } from './types.js';
import { ProposalDroppedError } from './errors.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('raft core in a synchronous cluster', () => {
  it('elects a leader by timeout and replicates a proposal to every member', () => {
    const c = new TestCluster({ size: 3, seed: 7 });
    c.stabilize();
    for (let i = 0; i < 40 && c.leader() === undefined; i++) {
      c.tickAll();
      c.stabilize();
    }
    const lead = c.leader();
    expect(lead).toBeDefined();
    c.member(lead!).node.propose(bytes('x=1'));
    c.stabilize();
    for (const m of c.members.values()) expect(m.applied.map(text)).toEqual(['x=1']);
  });

  it('answers term, role and leader from the same state status() reports, on every member', () => {
    const c = new TestCluster({ size: 3, seed: 7 });
    for (let i = 0; i < 40 && c.leader() === undefined; i++) {
      c.tickAll();
      c.stabilize();
    }
    expect(c.leader()).toBeDefined();
    for (const m of c.members.values()) {
      const st = m.node.status();
      expect([m.node.term, m.node.role, m.node.lead]).toEqual([st.hardState.term, st.softState.role, st.softState.lead]);
    }
  });

  it('forwards a follower proposal to the leader', () => {
    const c = new TestCluster({ size: 3 });
    c.elect(1);
    c.member(2).node.propose(bytes('via-2'));
    c.stabilize();
    expect(c.member(3).applied.map(text)).toEqual(['via-2']);
  });

  it('drops a proposal with a typed error when there is no leader', () => {
    const c = new TestCluster({ size: 3 });
    c.stabilize();
    expect(() => c.member(1).node.propose(bytes('x'))).toThrow(ProposalDroppedError);
  });

  it('does not commit when only a minority is reachable', () => {
    const c = new TestCluster({ size: 3 });
    c.elect(1);
    c.isolate(1);
    c.member(1).node.propose(bytes('lost'));
    c.stabilize();
    expect(c.member(1).applied).toEqual([]);
    expect(c.member(1).node.status().commit).toBeLessThan(c.member(1).node.status().lastIndex);
  });

  it('serves a ReadIndex read at the commit index after a heartbeat round', () => {
    const c = new TestCluster({ size: 3 });
    c.elect(1);
    c.member(1).node.propose(bytes('a'));
    c.stabilize();
    c.member(2).node.readIndex(bytes('r1'));
    c.member(1).node.readIndex(bytes('r2'));
    c.stabilize();
    const commit = c.member(1).node.status().commit;
    expect(c.member(2).readStates).toEqual([{ index: commit, context: bytes('r1') }]);
    expect(c.member(1).readStates).toEqual([{ index: commit, context: bytes('r2') }]);
  });

  it('does not serve a read on a leader cut off from the quorum', () => {
    const c = new TestCluster({ size: 3 });
    c.elect(1);
    c.isolate(1);
    c.member(1).node.readIndex(bytes('r'));
    c.stabilize();
    expect(c.member(1).readStates).toEqual([]);
  });

  it('batches concurrent reads into one heartbeat round', () => {
    let heartbeats = 0;
    const c = new TestCluster({ size: 3, onDeliver: (m) => void (m.type === MessageType.Heartbeat && heartbeats++) });
    c.elect(1);
    heartbeats = 0;
    c.member(1).node.readIndex(bytes('first'));
    for (let i = 0; i < 50; i++) c.member(1).node.readIndex(bytes(`r${i}`));
    c.stabilize();
    expect(c.member(1).readStates).toHaveLength(51);
    // One round for the first read, one shared by the 50 that arrived while it was in flight; 2 followers each.
    expect(heartbeats).toBe(4);
  });

  it('transfers leadership to a caught-up follower', () => {
    const c = new TestCluster({ size: 3 });
    c.elect(1);
    c.member(1).node.transferLeadership(3);
    c.stabilize();
    expect(c.leader()).toBe(3);
    c.member(3).node.propose(bytes('after'));
    c.stabilize();
    expect(c.member(1).applied.map(text)).toEqual(['after']);
  });

  it('campaigns for a MsgTimeoutNow that came before a conf change was applied once it is, unless the term moved', () => {
    // Bring member 2 to where the successor of a leader that removed itself stands: a conf change committed, not yet
    // applied, and a MsgTimeoutNow. Rule 2 of docs/raft.md forbids campaigning then; the request waits.
    const deferredTransfer = (moveTerm: boolean): { role: Role; term: number } => {
      const c = new TestCluster({ size: 3 });
      c.elect(1);
      const term = c.member(2).node.term;
      c.member(1).node.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 3, context: new Uint8Array(0) });
      for (let i = 0; i < 3; i++) {
        c.processReadies();
        c.deliverAll(); // the entry out, the acks back, the commit out: 2 knows it committed and has not applied it
      }
      c.deliver(message({ type: MessageType.TimeoutNow, from: 1, to: 2, term }));
      if (moveTerm) c.deliver(message({ type: MessageType.Heartbeat, from: 1, to: 2, term: term + 1 }));
      c.processReadies();
      return { role: c.member(2).node.role, term: c.member(2).node.term };
    };
    expect(deferredTransfer(false)).toEqual({ role: Role.Candidate, term: 3 });
    expect(deferredTransfer(true)).toEqual({ role: Role.Follower, term: 3 });
  });

  it('a refused vote request of a higher term does not restart the election timer (as in the Raft paper)', () => {
    // Member 2 follows; nothing reaches it but, in one twin, a Vote of a higher term from a candidate whose log is
    // behind. It refuses, moves to that term, and must still campaign at the tick it would have anyway: restarting
    // its timer would let such a candidate hold back the member with the better log (simulator seed 902).
    const ticksUntilCampaign = (staleVoteAfter: number | undefined): number => {
      const c = new TestCluster({ size: 3, seed: 11, config: { preVote: false, checkQuorum: false } });
      c.elect(1);
      const term = c.member(2).node.term;
      for (let tick = 1; tick <= 100; tick++) {
        c.tick(2);
        if (c.member(2).node.role === Role.Candidate) return tick;
        if (tick === staleVoteAfter) {
          c.deliver(message({ type: MessageType.Vote, from: 3, to: 2, term: term + 1, index: 0, logTerm: 0 }));
          expect([c.member(2).node.role, c.member(2).node.term, c.member(2).node.status().hardState.vote]).toEqual([Role.Follower, term + 1, 0]);
        }
      }
      throw new Error('member 2 never campaigned');
    };
    const undisturbed = ticksUntilCampaign(undefined);
    expect(ticksUntilCampaign(undisturbed - 1)).toBe(undisturbed);
  });

  it('catches up a lagging follower with a snapshot after compaction', () => {
    const c = new TestCluster({ size: 3 });
    c.elect(1);
    c.isolate(3);
    for (let i = 0; i < 10; i++) c.member(1).node.propose(bytes(`v${i}`));
    c.stabilize();
    c.snapshotAndCompact(1);
    c.heal();
    c.member(1).node.propose(bytes('tail'));
    c.stabilize();
    c.tickAll(2);
    c.stabilize();
    expect(c.member(3).applied.map(text)).toEqual([...Array.from({ length: 10 }, (_, i) => `v${i}`), 'tail']);
  });

  it('adds a learner that receives the log without voting, then promotes it', () => {
    const c = new TestCluster({ size: 3, spares: 1 });
    c.elect(1);
    c.member(1).node.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4, context: new Uint8Array(0) });
    c.stabilize();
    c.member(1).node.propose(bytes('hello'));
    c.stabilize();
    c.tickAll(2);
    c.stabilize();
    expect(c.member(4).applied.map(text)).toEqual(['hello']);
    expect(c.member(1).node.status().confState).toEqual({ voters: [1, 2, 3], learners: [4] });
    c.member(1).node.proposeConfChange({ type: ConfChangeType.AddVoter, nodeId: 4, context: new Uint8Array(0) });
    c.stabilize();
    expect(c.member(4).node.status().confState).toEqual({ voters: [1, 2, 3, 4], learners: [] });
  });

  it('refuses a second conf change while one is pending', () => {
    const c = new TestCluster({ size: 3, spares: 2 });
    c.elect(1);
    c.member(1).node.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4, context: new Uint8Array(0) });
    expect(() => c.member(1).node.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 5, context: new Uint8Array(0) })).toThrow(
      /configuration change already pending/,
    );
  });

  it('steps down a leader that loses its quorum (check-quorum)', () => {
    const c = new TestCluster({ size: 3 });
    c.elect(1);
    c.isolate(1);
    // The first check still sees the followers' activity from before the cut; the second finds none.
    c.tick(1, 10);
    c.stabilize();
    expect(c.member(1).node.status().softState.role).toBe('leader');
    c.tick(1, 10);
    c.stabilize();
    expect(c.member(1).node.status().softState.role).toBe('follower');
    expect(c.member(1).node.status().hardState.term).toBe(2); // stepped down without bumping the term
  });

  it('recovers a follower whose whole in-flight window was lost (found by the simulator)', () => {
    const c = new TestCluster({ size: 3, config: { maxInflightMsgs: 2, maxSizePerMsgBytes: 1 } });
    c.elect(1);
    c.cutLink(1, 2);
    for (let i = 0; i < 5; i++) c.member(1).node.propose(bytes(`v${i}`));
    c.stabilize(); // the appends to 2 are lost; its window stays full
    c.heal();
    // The heartbeat response unpauses 2; with a full window the leader may only send an empty append, whose
    // rejection resets the window and replication resumes.
    for (let i = 0; i < 5; i++) {
      c.tick(1);
      c.stabilize();
    }
    expect(c.member(2).applied.map(text)).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
  });
});
