import { describe, expect, it } from 'vitest';
import { Role, type SoftState } from '../raft/types.js';
import { createMetricsRegistry, MemberMetrics, type MetricsMember } from './metrics.js';

/** Every sample line of `name` with its labels, as { '{labels}': value }. */
async function samples(registry: ReturnType<typeof createMetricsRegistry>, name: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await registry.metrics()).split('\n')) {
    const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m !== null && m[1] === name) out[m[2] ?? ''] = Number(m[3]);
  }
  return out;
}

/** A member whose status the test sets, with a soft-state feed the test drives. */
function fakeMember(id: number) {
  const listeners = new Set<(s: SoftState) => void>();
  const state = { term: 3, lead: 0, commit: 10, applied: 9, revision: 5, leases: 2, alarms: [] as string[] };
  const member = {
    id,
    options: { dataDir: '/nonexistent/fulcrum-metrics-test' },
    status: () => ({ hardState: { term: state.term }, softState: { lead: state.lead }, commit: state.commit, appliedState: state.applied, revision: state.revision }),
    stateMachine: { leases: { get size() { return state.leases; } }, activeAlarms: () => state.alarms },
    subscribeSoftState(fn: (s: SoftState) => void) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  } as unknown as MetricsMember;
  const emit = (lead: number): void => {
    state.lead = lead;
    for (const fn of listeners) fn({ lead, role: lead === id ? Role.Leader : Role.Follower });
  };
  return { member, state, emit, listeners };
}

describe('MemberMetrics', () => {
  it('every series exists from the start, at zero', async () => {
    const r = createMetricsRegistry();
    new MemberMetrics(r, 0xabc);
    expect(await samples(r, 'fulcrum_server_leader_changes_seen_total')).toEqual({ '{member="abc"}': 0 });
    expect(await samples(r, 'fulcrum_server_proposals_failed_total')).toEqual({ '{member="abc"}': 0 });
    expect(await samples(r, 'fulcrum_server_proposals_pending')).toEqual({ '{member="abc"}': 0 });
    expect(await samples(r, 'fulcrum_disk_wal_fsync_duration_seconds_count')).toEqual({ '{member="abc"}': 0 });
  });

  it('reads the member at scrape time, not before', async () => {
    const r = createMetricsRegistry();
    const m = new MemberMetrics(r, 1);
    const f = fakeMember(1);
    m.collectFrom(f.member, { watchers: () => 4, proposalsPending: () => 6, dbSizeBytes: async () => 12345 });
    f.state.term = 7;
    f.state.lead = 1;
    f.state.alarms = ['NOSPACE'];
    const one = '{member="1"}';
    expect(await samples(r, 'fulcrum_server_term')).toEqual({ [one]: 7 });
    expect(await samples(r, 'fulcrum_server_has_leader')).toEqual({ [one]: 1 });
    expect(await samples(r, 'fulcrum_server_is_leader')).toEqual({ [one]: 1 });
    expect(await samples(r, 'fulcrum_server_proposals_committed_total')).toEqual({ [one]: 10 });
    expect(await samples(r, 'fulcrum_server_proposals_applied_total')).toEqual({ [one]: 9 });
    expect(await samples(r, 'fulcrum_server_proposals_pending')).toEqual({ [one]: 6 });
    expect(await samples(r, 'fulcrum_mvcc_current_revision')).toEqual({ [one]: 5 });
    expect(await samples(r, 'fulcrum_server_lease_total')).toEqual({ [one]: 2 });
    expect(await samples(r, 'fulcrum_mvcc_watcher_total')).toEqual({ [one]: 4 });
    expect(await samples(r, 'fulcrum_mvcc_db_total_size_in_bytes')).toEqual({ [one]: 12345 });
    expect(await samples(r, 'fulcrum_server_alarm_active')).toEqual({ '{member="1",alarm="NOSPACE"}': 1, '{member="1",alarm="CORRUPT"}': 0 });
  });

  it('without a db size function, a missing data dir counts as 0 bytes', async () => {
    const r = createMetricsRegistry();
    new MemberMetrics(r, 1).collectFrom(fakeMember(1).member);
    expect(await samples(r, 'fulcrum_mvcc_db_total_size_in_bytes')).toEqual({ '{member="1"}': 0 });
  });

  it('counts changes to a different known leader, as etcd does', async () => {
    const r = createMetricsRegistry();
    const m = new MemberMetrics(r, 1);
    const f = fakeMember(1);
    m.collectFrom(f.member); // no leader yet: nothing seen
    for (const lead of [2, 2, 0, 2, 3, 0, 0, 1]) f.emit(lead);
    // Counted: 2 (first), 2 again after an interval without a leader (etcd counts that too), 3, 1.
    expect(await samples(r, 'fulcrum_server_leader_changes_seen_total')).toEqual({ '{member="1"}': 4 });
  });

  it('a leader known at attach time counts once', async () => {
    const r = createMetricsRegistry();
    const f = fakeMember(1);
    f.state.lead = 1;
    new MemberMetrics(r, 1).collectFrom(f.member);
    expect(await samples(r, 'fulcrum_server_leader_changes_seen_total')).toEqual({ '{member="1"}': 1 });
  });

  it('trackProposal counts pending while in flight and failures on rejection', async () => {
    const r = createMetricsRegistry();
    const m = new MemberMetrics(r, 1);
    let finish!: () => void;
    let fail!: (e: Error) => void;
    const ok = m.trackProposal(new Promise<void>((res) => (finish = res)));
    const bad = m.trackProposal(new Promise<void>((_res, rej) => (fail = rej)));
    expect(await samples(r, 'fulcrum_server_proposals_pending')).toEqual({ '{member="1"}': 2 });
    fail(new Error('no leader'));
    await expect(bad).rejects.toThrow('no leader');
    finish();
    await ok;
    expect(await samples(r, 'fulcrum_server_proposals_pending')).toEqual({ '{member="1"}': 0 });
    expect(await samples(r, 'fulcrum_server_proposals_failed_total')).toEqual({ '{member="1"}': 1 });
  });

  it('histograms take milliseconds and report seconds', async () => {
    const r = createMetricsRegistry();
    const m = new MemberMetrics(r, 1);
    m.observeWalFsync(4);
    m.observeWalFsync(6);
    m.observeApply(0.5);
    expect(await samples(r, 'fulcrum_disk_wal_fsync_duration_seconds_sum')).toEqual({ '{member="1"}': 0.01 });
    expect((await samples(r, 'fulcrum_disk_wal_fsync_duration_seconds_bucket'))['{le="0.004",member="1"}']).toBe(1);
    expect(await samples(r, 'fulcrum_server_apply_duration_seconds_count')).toEqual({ '{member="1"}': 1 });
  });

  it('the fault hook times before-apply → after-apply and ignores the other points', async () => {
    const r = createMetricsRegistry();
    const hook = new MemberMetrics(r, 1).faultHook();
    hook('after-apply'); // no start: ignored
    hook('before-persist');
    hook('after-persist');
    hook('before-apply');
    hook('after-apply');
    expect(await samples(r, 'fulcrum_server_apply_duration_seconds_count')).toEqual({ '{member="1"}': 1 });
  });

  it('peer counters are per destination', async () => {
    const r = createMetricsRegistry();
    const m = new MemberMetrics(r, 1);
    m.peerSent(2, 5);
    m.peerSent(3);
    m.peerDropped(3, 2);
    expect(await samples(r, 'fulcrum_network_peer_sent_messages_total')).toEqual({ '{member="1",to="2"}': 5, '{member="1",to="3"}': 1 });
    expect(await samples(r, 'fulcrum_network_peer_dropped_messages_total')).toEqual({ '{member="1",to="3"}': 2 });
  });
});

describe('several members in one process', () => {
  it('can share a registry: one family, one series per member; close removes exactly its series', async () => {
    const r = createMetricsRegistry();
    const a = new MemberMetrics(r, 0xa);
    const b = new MemberMetrics(r, 0xb);
    const fa = fakeMember(0xa);
    const fb = fakeMember(0xb);
    a.collectFrom(fa.member);
    b.collectFrom(fb.member);
    fa.state.term = 4;
    fb.state.term = 5;
    a.peerSent(0xb);
    expect(await samples(r, 'fulcrum_server_term')).toEqual({ '{member="a"}': 4, '{member="b"}': 5 });
    a.close();
    expect(fa.listeners.size).toBe(0);
    const text = await r.metrics();
    expect(text).not.toContain('member="a"');
    expect(await samples(r, 'fulcrum_server_term')).toEqual({ '{member="b"}': 5 });
    // The id is free again: a restarted member can report into the same registry.
    new MemberMetrics(r, 0xa);
  });

  it('or use one registry each', async () => {
    const r1 = createMetricsRegistry();
    const r2 = createMetricsRegistry();
    new MemberMetrics(r1, 1).setTerm(1);
    new MemberMetrics(r2, 1).setTerm(2);
    expect(await samples(r1, 'fulcrum_server_term')).toEqual({ '{member="1"}': 1 });
    expect(await samples(r2, 'fulcrum_server_term')).toEqual({ '{member="1"}': 2 });
  });

  it('the same member twice in one registry is refused', () => {
    const r = createMetricsRegistry();
    new MemberMetrics(r, 1);
    expect(() => new MemberMetrics(r, 1)).toThrow('fulcrum: member 1 already reports metrics into this registry');
  });

  it('a detach function from collectFrom stops reading the member', async () => {
    const r = createMetricsRegistry();
    const m = new MemberMetrics(r, 1);
    const f = fakeMember(1);
    const detach = m.collectFrom(f.member);
    f.state.term = 9;
    expect(await samples(r, 'fulcrum_server_term')).toEqual({ '{member="1"}': 9 });
    detach();
    f.state.term = 10;
    expect(await samples(r, 'fulcrum_server_term')).toEqual({ '{member="1"}': 9 }); // last value stays
    expect(f.listeners.size).toBe(0);
  });

  it('process metrics are optional and prefixed', async () => {
    expect(await createMetricsRegistry().metrics()).toBe('\n');
    expect(await createMetricsRegistry({ processMetrics: true }).metrics()).toContain('fulcrum_process_cpu_seconds_total');
  });
});
