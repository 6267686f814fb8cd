// Prometheus metrics for a member, in a registry the caller owns.
//
// The registry is injected because several members may live in one process (tests, the simulator, an embedding
// application): each can have its own registry, or they can share one; every series carries a `member` label
// (the id in hex) so shared registries stay unambiguous. Metric families are created once per registry and
// shared by the MemberMetrics registered in it.
//
// Two ways values get in:
//   - pushed by the server as things happen: observeApply(ms), proposalFailed(), peerSent(to) ...
//   - read lazily at scrape time from the Member (collectFrom): term, leader, commit/applied index, revision,
//     leases, alarms, and the size of the key-value store on disk. Nothing is polled between scrapes.
//
// Names follow etcd's (etcd_server_has_leader → fulcrum_server_has_leader) so dashboards translate by prefix.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { AlarmType } from '../storage/command.js';
import type { SoftState } from '../raft/types.js';
import type { Member } from './member.js';
import type { FaultPoint } from './raft-loop.js';
import { HotHistogram, type HistogramSeries } from './hot-histogram.js';
import { idToHex } from './ids.js';

/** What metrics read from a member: a narrow view, so tests and other hosts can provide their own. */
export type MetricsMember = Pick<Member, 'id' | 'status' | 'stateMachine' | 'subscribeSoftState'> & {
  readonly options: { readonly dataDir: string };
};

/** Values only the server knows (the watch hub, the transport); each is read at scrape time when given. */
export interface MemberStats {
  /** Size of the key-value store in bytes; by default the files under `<data-dir>/kv` are summed. */
  dbSizeBytes?(): number | Promise<number>;
  watchers?(): number;
  proposalsPending?(): number;
}

const ALARMS: readonly AlarmType[] = ['NOSPACE', 'CORRUPT'];

/** etcd's buckets: 1ms doubling to ~8s for fsync; 0.1ms doubling to ~52s for apply. */
const WAL_FSYNC_BUCKETS_S = exponentialBuckets(0.001, 2, 14);
const APPLY_BUCKETS_S = exponentialBuckets(0.0001, 2, 20);

/** Files stat'ed per scrape to size the store: a bound on the work one scrape can cause. */
export const DB_SIZE_FILES_MAX = 10_000;

function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

/** A registry for one process or one member; with processMetrics, Node's own (heap, event loop lag, ...). */
export function createMetricsRegistry(options: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry, prefix: 'fulcrum_' });
  return registry;
}

type MemberLabel = 'member';
type PeerLabels = 'member' | 'to';

/** The metric families of one registry, and the members reporting into it. */
class Families {
  readonly members = new Map<string, MemberMetrics>();
  readonly term: Gauge<MemberLabel>;
  readonly hasLeader: Gauge<MemberLabel>;
  readonly isLeader: Gauge<MemberLabel>;
  readonly leaderChanges: Counter<MemberLabel>;
  readonly proposalsCommitted: Gauge<MemberLabel>;
  readonly proposalsApplied: Gauge<MemberLabel>;
  readonly proposalsPending: Gauge<MemberLabel>;
  readonly proposalsFailed: Counter<MemberLabel>;
  /** Observed every Ready: HotHistogram, not prom-client's Histogram (node/hot-histogram.ts says why). */
  readonly applyDuration: HotHistogram<MemberLabel>;
  readonly walFsyncDuration: HotHistogram<MemberLabel>;
  readonly dbSize: Gauge<MemberLabel>;
  readonly quota: Gauge<MemberLabel>;
  readonly revision: Gauge<MemberLabel>;
  readonly watchers: Gauge<MemberLabel>;
  readonly leases: Gauge<MemberLabel>;
  readonly alarms: Gauge<'member' | 'alarm'>;
  readonly peerSent: Counter<PeerLabels>;
  readonly peerDropped: Counter<PeerLabels>;
  readonly connectionsDropped: Counter<'member' | 'listener'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const m = ['member'] as const;
    // Each collected family asks every member reporting here for its current value, just before the scrape.
    const collected = (pick: (mm: MemberMetrics) => Promise<void> | void) => async () => {
      await Promise.all([...this.members.values()].map((mm) => pick(mm)));
    };
    const gauge = (name: string, help: string, pick?: (mm: MemberMetrics) => Promise<void> | void): Gauge<MemberLabel> =>
      new Gauge({ name, help, labelNames: m, registers, ...(pick ? { collect: collected(pick) } : {}) });
    // Every family derived from status() reads it itself: no reliance on the order in which families are scraped.
    const status = (mm: MemberMetrics): void => mm.collectStatus();

    this.term = gauge('fulcrum_server_term', 'The Raft term this member is in.', status);
    this.hasLeader = gauge('fulcrum_server_has_leader', 'Whether a leader exists: 1 if yes, 0 if not.', status);
    this.isLeader = gauge('fulcrum_server_is_leader', 'Whether this member is the leader: 1 if yes, 0 if not.', status);
    this.leaderChanges = new Counter({ name: 'fulcrum_server_leader_changes_seen_total', help: 'Leader changes seen by this member.', labelNames: m, registers });
    this.proposalsCommitted = gauge('fulcrum_server_proposals_committed_total', 'The commit index: proposals committed so far.', status);
    this.proposalsApplied = gauge('fulcrum_server_proposals_applied_total', 'The applied index: proposals applied so far.', status);
    this.proposalsPending = gauge('fulcrum_server_proposals_pending', 'Proposals waiting to be applied.', (mm) => mm.collectPending());
    this.proposalsFailed = new Counter({ name: 'fulcrum_server_proposals_failed_total', help: 'Proposals that failed (dropped, timed out, no leader).', labelNames: m, registers });
    this.applyDuration = new HotHistogram({
      name: 'fulcrum_server_apply_duration_seconds',
      help: 'Time to apply one batch of committed entries to the state machine.',
      labelNames: m,
      buckets: APPLY_BUCKETS_S,
      registers,
    });
    this.walFsyncDuration = new HotHistogram({
      name: 'fulcrum_disk_wal_fsync_duration_seconds',
      help: 'Time to write one synced batch (hard state + entries) to the write-ahead log.',
      labelNames: m,
      buckets: WAL_FSYNC_BUCKETS_S,
      registers,
    });
    this.dbSize = gauge('fulcrum_mvcc_db_total_size_in_bytes', 'Size of the key-value store on disk.', (mm) => mm.collectDbSize());
    this.quota = gauge('fulcrum_server_quota_backend_bytes', 'The backend quota (--quota-backend-bytes).');
    this.revision = gauge('fulcrum_mvcc_current_revision', 'The current revision of the key-value store.', status);
    this.watchers = gauge('fulcrum_mvcc_watcher_total', 'Watchers open on this member.', (mm) => mm.collectWatchers());
    this.leases = gauge('fulcrum_server_lease_total', 'Leases alive in the state machine.', status);
    this.alarms = new Gauge({ name: 'fulcrum_server_alarm_active', help: 'Active alarms: 1 if raised.', labelNames: ['member', 'alarm'], registers, collect: collected(status) });
    this.peerSent = new Counter({ name: 'fulcrum_network_peer_sent_messages_total', help: 'Raft messages handed to the transport, by peer.', labelNames: ['member', 'to'], registers });
    this.peerDropped = new Counter({
      name: 'fulcrum_network_peer_dropped_messages_total',
      help: 'Raft messages dropped (peer unreachable, queue full), by peer.',
      labelNames: ['member', 'to'],
      registers,
    });
    this.connectionsDropped = new Counter({
      name: 'fulcrum_server_connections_dropped_total',
      help: 'Connections closed as they were accepted because the listener had its limit open (--max-client-connections; peer: PEER_CONNECTIONS_MAX).',
      labelNames: ['member', 'listener'],
      registers,
    });
  }
}

const familiesByRegistry = new WeakMap<Registry, Families>();

function familiesFor(registry: Registry): Families {
  let f = familiesByRegistry.get(registry);
  if (f === undefined) {
    f = new Families(registry);
    familiesByRegistry.set(registry, f);
  }
  return f;
}

export interface MemberMetricsOptions {
  /** Reported as fulcrum_server_quota_backend_bytes, so alerts can compare the db size against it. */
  readonly quotaBackendBytes?: number;
}

/** The listeners whose dropped connections are counted apart. */
const LISTENERS = ['client', 'peer'] as const;
type Listener = (typeof LISTENERS)[number];

/** One member's metrics. The server calls the observe/inc methods; collectFrom fills the rest at scrape time. */
export class MemberMetrics {
  private readonly f: Families;
  private readonly label: { member: string };
  private readonly applySeries: HistogramSeries;
  private readonly walFsyncSeries: HistogramSeries;
  private source: { member: MetricsMember; stats: MemberStats; unsubscribe: () => void } | undefined;
  private pending = 0;
  private applyStartedAt: number | undefined;
  private lastLeader = 0;
  private readonly peersSeen = new Set<string>();
  private closed = false;

  constructor(registry: Registry, memberId: number, options: MemberMetricsOptions = {}) {
    this.f = familiesFor(registry);
    this.label = { member: idToHex(memberId) };
    if (this.f.members.has(this.label.member)) throw new Error(`fulcrum: member ${this.label.member} already reports metrics into this registry`);
    this.f.members.set(this.label.member, this);
    // Series that exist from the start, so a scrape before the first event shows 0 rather than nothing.
    this.f.leaderChanges.inc(this.label, 0);
    this.f.proposalsFailed.inc(this.label, 0);
    this.f.proposalsPending.set(this.label, 0);
    this.applySeries = this.f.applyDuration.child(this.label);
    this.walFsyncSeries = this.f.walFsyncDuration.child(this.label);
    for (const listener of LISTENERS) this.f.connectionsDropped.inc({ ...this.label, listener }, 0);
    if (options.quotaBackendBytes !== undefined) this.f.quota.set(this.label, options.quotaBackendBytes);
  }

  // ---- pushed by the server ----

  observeApply(ms: number): void {
    this.applySeries.observe(ms / 1000);
  }

  observeWalFsync(ms: number): void {
    this.walFsyncSeries.observe(ms / 1000);
  }

  setTerm(term: number): void {
    this.f.term.set(this.label, term);
  }

  /** A soft state from the Raft core: counts a change to a different, known leader (as etcd does). */
  observeSoftState(s: SoftState): void {
    if (s.lead !== 0 && s.lead !== this.lastLeader) this.f.leaderChanges.inc(this.label);
    this.lastLeader = s.lead;
    this.f.hasLeader.set(this.label, s.lead !== 0 ? 1 : 0);
  }

  /** A connection closed as it was accepted: its listener had its limit of connections open. */
  connectionDropped(listener: Listener): void {
    this.f.connectionsDropped.inc({ ...this.label, listener });
  }

  proposalFailed(): void {
    this.f.proposalsFailed.inc(this.label);
  }

  setProposalsPending(n: number): void {
    this.pending = n;
    this.f.proposalsPending.set(this.label, n);
  }

  /** Count a proposal as pending until it settles, and as failed if it rejects. Returns the same promise. */
  trackProposal<T>(p: Promise<T>): Promise<T> {
    this.setProposalsPending(this.pending + 1);
    const settled = (): void => this.setProposalsPending(this.pending - 1);
    return p.then(
      (v) => {
        settled();
        return v;
      },
      (e: unknown) => {
        settled();
        this.proposalFailed();
        throw e;
      },
    );
  }

  setDbSize(bytes: number): void {
    this.f.dbSize.set(this.label, bytes);
  }

  setWatchers(n: number): void {
    this.f.watchers.set(this.label, n);
  }

  setLeases(n: number): void {
    this.f.leases.set(this.label, n);
  }

  peerSent(to: number, count = 1): void {
    this.f.peerSent.inc(this.peerLabels(to), count);
  }

  peerDropped(to: number, count = 1): void {
    this.f.peerDropped.inc(this.peerLabels(to), count);
  }

  private peerLabels(to: number): { member: string; to: string } {
    const hex = idToHex(to);
    this.peersSeen.add(hex); // remembered so close() can remove exactly these series
    return { ...this.label, to: hex };
  }

  /**
   * A MemberOptions.faults hook that times applies: the Ready loop calls 'before-apply' and 'after-apply' around
   * every batch of committed entries. Compose it with the chaos suite's hook if there is one.
   */
  faultHook(): (point: FaultPoint) => void {
    return (point) => {
      if (point === 'before-apply') this.applyStartedAt = performance.now();
      else if (point === 'after-apply' && this.applyStartedAt !== undefined) {
        this.observeApply(performance.now() - this.applyStartedAt);
        this.applyStartedAt = undefined;
      }
    };
  }

  // ---- read at scrape time ----

  /** Read the member's state at each scrape, and count its leader changes from now on. Returns a detach function. */
  collectFrom(member: MetricsMember, stats: MemberStats = {}): () => void {
    this.source?.unsubscribe();
    const unsubscribe = member.subscribeSoftState((s) => this.observeSoftState(s));
    this.source = { member, stats, unsubscribe };
    // A leader elected before we attached (a single voter campaigns during start) is a change this member saw.
    this.observeSoftState(member.status().softState);
    return () => {
      if (this.source?.member !== member) return;
      unsubscribe();
      this.source = undefined;
    };
  }

  /** @internal Called by the status-derived families' collect: reads status() and fills those gauges. */
  collectStatus(): void {
    const member = this.source?.member;
    if (member === undefined) return;
    const st = member.status();
    const sm = member.stateMachine;
    this.setTerm(st.hardState.term);
    this.f.hasLeader.set(this.label, st.softState.lead !== 0 ? 1 : 0);
    this.f.isLeader.set(this.label, st.softState.lead === member.id ? 1 : 0);
    this.f.proposalsCommitted.set(this.label, st.commit);
    this.f.proposalsApplied.set(this.label, st.appliedState);
    this.f.revision.set(this.label, st.revision);
    this.setLeases(sm.leases.size);
    const active = new Set(sm.activeAlarms());
    for (const a of ALARMS) this.f.alarms.set({ ...this.label, alarm: a }, active.has(a) ? 1 : 0);
  }

  /** @internal */
  collectPending(): void {
    const n = this.source?.stats.proposalsPending?.();
    if (n !== undefined) this.setProposalsPending(n);
  }

  /** @internal */
  collectWatchers(): void {
    const n = this.source?.stats.watchers?.();
    if (n !== undefined) this.setWatchers(n);
  }

  /** @internal */
  async collectDbSize(): Promise<void> {
    const source = this.source;
    if (source === undefined) return;
    const bytes = source.stats.dbSizeBytes ? await source.stats.dbSizeBytes() : await directoryBytes(join(source.member.options.dataDir, 'kv'));
    if (!this.closed) this.setDbSize(bytes);
  }

  /** Stop reporting: detach from the member and remove this member's series from the registry. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.source?.unsubscribe();
    this.source = undefined;
    this.f.members.delete(this.label.member);
    const f = this.f;
    const perMember = [f.term, f.hasLeader, f.isLeader, f.leaderChanges, f.proposalsCommitted, f.proposalsApplied, f.proposalsPending, f.proposalsFailed];
    for (const metric of [...perMember, f.applyDuration, f.walFsyncDuration, f.dbSize, f.quota, f.revision, f.watchers, f.leases]) metric.remove(this.label);
    for (const alarm of ALARMS) f.alarms.remove({ ...this.label, alarm });
    for (const listener of LISTENERS) f.connectionsDropped.remove({ ...this.label, listener });
    for (const to of this.peersSeen) {
      f.peerSent.remove({ ...this.label, to });
      f.peerDropped.remove({ ...this.label, to });
    }
  }
}

/** Sum of the sizes of the regular files in a directory (LevelDB keeps a flat one); 0 if it does not exist yet. */
async function directoryBytes(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  const sizes = await Promise.all(
    names.slice(0, DB_SIZE_FILES_MAX).map(async (n) => {
      try {
        const s = await stat(join(dir, n));
        return s.isFile() ? s.size : 0;
      } catch {
        return 0; // compaction removed it between readdir and stat
      }
    }),
  );
  return sizes.reduce((a, b) => a + b, 0);
}
