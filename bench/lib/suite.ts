// The side-by-side run behind `npm run bench`: start a 3-member Fulcrum cluster and a 3-member etcd cluster on
// loopback with the same timing and snapshot settings, then for each workload run rounds that alternate the
// two systems (F, E, F, E, ...) so that the machine's noise falls on both, and summarise each system by its
// median. Both clusters stay up for the whole run; the one not under load is idle.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { findLeader, type LeaderInfo } from './leader.js';
import { machineInfo, type MachineInfo } from './report.js';
import { summarize, type SummaryLine } from './summary.js';
import { etcdCluster, etcdVersion, fulcrumCluster, PORTS_PER_CLUSTER, type BenchCluster, type ClusterSettings, type SystemName } from './systems.js';
import { warmUpServers, WORKLOADS, type Row, type WorkloadName, type WorkloadOptions } from './workloads.js';

export interface SuiteOptions extends WorkloadOptions {
  readonly suite: 'full' | 'quick' | 'custom';
  readonly workloads: readonly WorkloadName[];
  readonly rounds: number;
  readonly targets: readonly SystemName[];
  readonly settings: ClusterSettings;
  /** Fulcrum's members use basePort..basePort+5, etcd's the next 6. */
  readonly basePort: number;
  readonly etcdBinary: string;
  /** Fulcrum's members from the compiled build (what the container image runs; the caller builds it) or from source. */
  readonly fulcrumEntry: 'source' | 'build';
}

export interface Failure {
  readonly system: SystemName;
  readonly workload: WorkloadName;
  readonly round: number;
  readonly error: string;
  /** The last lines of each member's output, to see why. */
  readonly memberOutput: Readonly<Record<string, readonly string[]>>;
}

/** An election outside the failover workload, with what the members printed last (their logs are warn level). */
export interface LeaderChange {
  readonly system: SystemName;
  readonly workload: WorkloadName;
  readonly round: number;
  readonly note: string;
  readonly memberOutput: Readonly<Record<string, readonly string[]>>;
}

export interface BenchReport {
  readonly tool: 'bench/cli.ts';
  readonly format: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly commit: string;
  readonly command: string;
  readonly options: SuiteOptions;
  readonly machine: MachineInfo & { readonly loadAverageEnd: readonly number[]; readonly fulcrumVersion: string; readonly etcdVersion: string | null };
  /** Why etcd was not measured, when it was not. */
  readonly etcdSkipped: string | null;
  readonly rows: readonly Row[];
  readonly summary: readonly SummaryLine[];
  readonly failures: readonly Failure[];
  readonly leaderChanges: readonly LeaderChange[];
}

export const ETCD_INSTALL_HINT = 'etcd is not installed (no `etcd` on the PATH): install Debian\'s etcd 3.4 with `sudo apt-get install etcd-server`; running Fulcrum alone';

const LEADER_WAIT_MS = 60_000;
/** The size workload loads its keys once per system: a second round would measure a store twice as big. */
const ONCE_PER_SYSTEM: readonly WorkloadName[] = ['size'];

export function gitCommit(repo: string): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function fulcrumVersion(repo: string): string {
  try {
    return (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Restarts any member that is down (a failed workload may have left one killed) and waits for a leader. */
async function ensureHealthy(c: BenchCluster): Promise<LeaderInfo> {
  for (const m of c.members) if (!m.running) m.restart();
  return findLeader(c.endpoints, LEADER_WAIT_MS);
}

const highestTerm = (l: LeaderInfo): bigint => l.statuses.reduce((t, x) => (BigInt(x.raftTerm) > t ? BigInt(x.raftTerm) : t), 0n);

export async function runSuite(o: SuiteOptions, repo: string, command: string, log: (line: string) => void): Promise<BenchReport> {
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const etcdVer = o.targets.includes('etcd') ? etcdVersion(o.etcdBinary) : undefined;
  let etcdSkipped: string | null = null;
  let targets = [...o.targets];
  if (targets.includes('etcd') && etcdVer === undefined) {
    etcdSkipped = ETCD_INSTALL_HINT;
    log(ETCD_INSTALL_HINT);
    targets = targets.filter((t) => t !== 'etcd');
  }
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-'));
  const clusters: BenchCluster[] = [];
  const fv = fulcrumVersion(repo);
  if (targets.includes('fulcrum')) clusters.push(fulcrumCluster(join(dir, 'fulcrum'), o.basePort, o.settings, fv, o.fulcrumEntry));
  if (targets.includes('etcd')) clusters.push(etcdCluster(join(dir, 'etcd'), o.basePort + PORTS_PER_CLUSTER, o.settings, etcdVer!, o.etcdBinary));
  const rows: Row[] = [];
  const failures: Failure[] = [];
  const leaderChanges: LeaderChange[] = [];
  const outputTails = (c: BenchCluster, lines: number): Record<string, readonly string[]> => Object.fromEntries(c.members.map((m) => [m.name, c.tail(m.name, lines)]));
  const stopAll = async (): Promise<void> => {
    await Promise.all(clusters.map((c) => c.stop()));
  };
  const onSignal = (): void => {
    log('interrupted: stopping the clusters');
    void stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const c of clusters) {
      c.start();
      log(`${c.system} ${c.version}: members on ${c.endpoints.join(', ')}`);
    }
    for (const c of clusters) {
      const l = await findLeader(c.endpoints, LEADER_WAIT_MS).catch((err: unknown) => {
        throw new Error(`${c.system} did not elect a leader: ${err instanceof Error ? err.message : String(err)}\n${c.members.map((m) => c.tail(m.name, 20).join('\n')).join('\n')}`);
      });
      log(`${c.system}: leader ${l.endpoint}`);
    }
    for (const c of clusters) {
      if (o.serverWarmupMs <= 0) break;
      log(`${c.system}: ${o.serverWarmupMs / 1000} s of unmeasured puts and gets (server warm-up)`);
      await warmUpServers({ cluster: c, round: 0, o, log });
    }
    for (const workload of o.workloads) {
      const rounds = ONCE_PER_SYSTEM.includes(workload) ? 1 : o.rounds;
      for (let round = 1; round <= rounds; round++) {
        for (const c of clusters) {
          log(`${workload}, round ${round}/${rounds}, ${c.system}`);
          try {
            const before = await ensureHealthy(c);
            let got = await WORKLOADS[workload]({ cluster: c, round, o, log });
            // An election outside the failover workload is news (a member starved of CPU, a stalled event loop):
            // say so on every row it may have touched.
            const after = await findLeader(c.endpoints, LEADER_WAIT_MS);
            if (workload !== 'failover' && (highestTerm(after) !== highestTerm(before) || after.memberId !== before.memberId)) {
              const note = `the leader changed during this workload (${before.endpoint} term ${highestTerm(before)} -> ${after.endpoint} term ${highestTerm(after)})`;
              log(`  ${note}`);
              got = got.map((r) => ({ ...r, notes: [...r.notes, note] }));
              leaderChanges.push({ system: c.system, workload, round, note, memberOutput: outputTails(c, 20) });
            }
            for (const r of got) {
              rows.push(r);
              const figures = Object.entries(r.metrics).map(([k, v]) => `${k} ${v}`).join(', ');
              log(`  ${r.row}: ${figures}${r.errors > 0 ? `; ${r.errors} errors ${JSON.stringify(r.errorsByKind)}` : ''}`);
            }
          } catch (err) {
            const error = err instanceof Error ? err.message : String(err);
            log(`  FAILED: ${error}`);
            failures.push({ system: c.system, workload, round, error, memberOutput: outputTails(c, 15) });
          }
        }
      }
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    tool: 'bench/cli.ts',
    format: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    commit: gitCommit(repo),
    command,
    options: { ...o, targets },
    machine: { ...machine, loadAverageEnd: loadavg().map((l) => Math.round(l * 100) / 100), fulcrumVersion: fv, etcdVersion: etcdVer ?? null },
    etcdSkipped,
    rows,
    summary: summarize(rows),
    failures,
    leaderChanges,
  };
}
