// One chaos run: start a cluster in chaos-runs/<time>/, run the workloads while the nemeses fault it, heal,
// run the final phases, check, write summary.json. The caller (cli, soak, tests) prints and decides.
import { mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChaosCluster, type Target } from './harness/cluster.js';
import { Recorder } from './harness/recorder.js';
import { healAll, NETWORK_NEMESES, parseNemeses, runSchedule, type NemesisContext } from './nemesis/index.js';
import { WORKLOADS } from './workloads/index.js';
import type { CheckOutcome, WorkloadContext, WorkloadOptions } from './workloads/types.js';

/** With no-fsync and --power-loss: how long before the power loss the disks stop keeping anything. */
export const POWER_LOSS_WINDOW_MS = 3_000;

export const REPO_ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

export interface RunOptions {
  readonly workloads: readonly string[];
  readonly nemeses: string;
  readonly timeS: number;
  readonly members: number;
  readonly target: Target;
  readonly clients: number;
  readonly seed: number;
  /** Parent of the run directory (default <repo>/chaos-runs). */
  readonly runsDir?: string;
  readonly serializableReads?: boolean;
  readonly noFencing?: boolean;
  /** Chance that a lock holder stalls past its lease (the lock workload's default when absent). */
  readonly lockStallProbability?: number;
  readonly noDedup?: boolean;
  /** FULCRUM_FAILPOINTS for every member (e.g. "no-fsync"). */
  readonly failpoints?: string;
  /** Kill -9 every member at once at the end of the faulty phase (a power loss), then restart them. */
  readonly powerLoss?: boolean;
  /** Run network and process nemeses on two concurrent schedules. */
  readonly overlap?: boolean;
  readonly quietMs?: readonly [number, number];
  readonly faultMs?: readonly [number, number];
  readonly snapshotCount?: number;
  readonly quiet?: boolean;
}

export interface RunSummary {
  readonly dir: string;
  readonly options: RunOptions;
  readonly ops: Record<string, Record<'ok' | 'fail' | 'info', number>>;
  readonly faults: Record<string, number>;
  readonly checks: readonly (CheckOutcome & { workload: string })[];
  readonly valid: boolean;
  readonly durationMs: number;
  /** Member exits nobody asked for (a crash that was not a nemesis): each is a finding to read in the logs. */
  readonly unexpectedExits: readonly string[];
}

/** A small seeded generator (mulberry32): a run's choices replay from its seed (timing still varies). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function runChaos(o: RunOptions): Promise<RunSummary> {
  const started = Date.now();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = join(o.runsDir ?? join(REPO_ROOT, 'chaos-runs'), `${stamp}-${o.workloads.join('+')}-${o.target}-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'options.json'), `${JSON.stringify(o, null, 2)}\n`);
  const log = (line: string): void => {
    const l = `${new Date().toISOString()} ${line}`;
    appendFileSync(join(dir, 'run.log'), `${l}\n`);
    if (o.quiet !== true) process.stderr.write(`chaos: ${line}\n`);
  };
  const workloads = o.workloads.map((w) => {
    const x = WORKLOADS[w];
    if (x === undefined) throw new Error(`unknown workload "${w}" (known: ${Object.keys(WORKLOADS).join(', ')})`);
    return x;
  });
  const nemeses = parseNemeses(o.nemeses);
  const random = seededRandom(o.seed);
  const recorder = new Recorder(dir);
  const cluster = await ChaosCluster.create({
    dir,
    size: o.members,
    target: o.target,
    ...(o.failpoints ? { failpoints: o.failpoints } : {}),
    ...(o.snapshotCount !== undefined ? { snapshotCount: o.snapshotCount } : {}),
  });
  const nctx: NemesisContext = { cluster, recorder, random, log };
  try {
    cluster.start();
    await cluster.waitReady();
    log(`cluster of ${o.members} ${o.target} members ready in ${dir}; seed ${o.seed}`);
    const until = Date.now() + o.timeS * 1000;
    const wopts: WorkloadOptions = { clients: o.clients, serializableReads: o.serializableReads ?? false, noFencing: o.noFencing ?? false, noDedup: o.noDedup ?? false, opTimeoutMs: 2_000, ...(o.lockStallProbability === undefined ? {} : { lockStallProbability: o.lockStallProbability }) };
    const wctx: WorkloadContext = { cluster, recorder, random, log, options: wopts, until };
    // Without fsync, a power loss may roll each disk back to any earlier crash image: take one part-way.
    const lying = o.powerLoss === true && /(^|,)\s*no-fsync\s*(,|$)/.test(o.failpoints ?? '');
    const imageTimer = lying ? setTimeout(() => takeImages(), Math.max(0, until - Date.now() - POWER_LOSS_WINDOW_MS)) : undefined;
    let imaged = false;
    const takeImages = (): void => {
      cluster.takeCrashImages();
      imaged = true;
      recorder.fault('start', 'crash-image', 'every data dir copied while stopped; no fsync from here on');
      log('crash images taken');
    };
    const timing = { quietMs: o.quietMs ?? ([1_000, 3_000] as const), faultMs: o.faultMs ?? ([2_000, 5_000] as const) };
    // --overlap: network faults and process faults on two schedules at once (a kill during a partition); each
    // schedule heals only its own kind, so they never undo each other.
    const schedules =
      o.overlap === true
        ? [nemeses.filter((n) => NETWORK_NEMESES.has(n.name)), nemeses.filter((n) => !NETWORK_NEMESES.has(n.name))]
        : [nemeses];
    const [counts] = await Promise.all([
      Promise.all(schedules.map((list) => runSchedule(nctx, { nemeses: list, ...timing }, until))),
      ...workloads.map((w) => w.run(wctx)),
    ]);
    const faults = new Map<string, number>();
    for (const c of counts) for (const [k, v] of c) faults.set(k, (faults.get(k) ?? 0) + v);
    clearTimeout(imageTimer);
    if (o.powerLoss === true) {
      recorder.fault('start', 'power-loss', lying ? 'kill -9 every member, disks back to their crash images' : 'kill -9 every member at once');
      log('power loss: kill -9 every member');
      await Promise.all(cluster.members.map((m) => m.kill()));
      if (imaged) for (const m of cluster.members) m.restoreCrashImage();
      faults.set('power-loss', 1);
    }
    log('healing');
    await healAll(nctx);
    if (o.powerLoss === true) recorder.fault('stop', 'power-loss');
    await cluster.waitReady(60_000).catch((e: unknown) => log(`cluster did not recover: ${String(e)}`));
    for (const w of workloads) await w.final?.(wctx);
    const checks: (CheckOutcome & { workload: string })[] = [];
    for (const w of workloads) for (const c of await w.check(wctx)) checks.push({ ...c, workload: w.name });
    const unexpectedExits = findUnexpectedExits(cluster, recorder);
    const summary: RunSummary = {
      dir,
      options: o,
      ops: countOps(recorder),
      faults: Object.fromEntries(faults),
      checks,
      valid: checks.every((c) => c.verdict !== 'invalid'),
      durationMs: Date.now() - started,
      unexpectedExits,
    };
    writeFileSync(join(dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  } finally {
    await recorder.close();
    await cluster.close();
  }
}

function countOps(r: Recorder): RunSummary['ops'] {
  const out: Record<string, Record<'ok' | 'fail' | 'info', number>> = {};
  for (const e of r.events) {
    if (e.type === 'invoke') continue;
    out[e.f] ??= { ok: 0, fail: 0, info: 0 };
    out[e.f]![e.type]++;
  }
  return out;
}

/** Exits the harness did not cause show up in the member logs as a non-zero code without a kill. */
function findUnexpectedExits(cluster: ChaosCluster, _r: Recorder): string[] {
  return cluster.members.flatMap((m) => m.unexpectedExits.map((x) => `m${m.index + 1}: ${x}`));
}

export function formatSummary(s: RunSummary): string {
  const lines: string[] = [];
  lines.push(`chaos run ${s.dir}`);
  lines.push(`  ${s.options.target}, ${s.options.members} members, workloads ${s.options.workloads.join(',')}, nemeses ${s.options.nemeses || 'none'}${s.options.overlap === true ? ' (overlapping)' : ''}, ${s.options.timeS} s, seed ${s.options.seed}`);
  for (const [f, c] of Object.entries(s.ops)) lines.push(`  ops ${f.padEnd(10)} ok ${c.ok}  fail ${c.fail}  info ${c.info}`);
  const faults = Object.entries(s.faults);
  lines.push(`  faults: ${faults.length === 0 ? 'none' : faults.map(([k, v]) => `${k} ×${v}`).join(', ')}`);
  for (const c of s.checks) lines.push(`  [${c.verdict.toUpperCase()}] ${c.workload}/${c.checker}: ${c.summary}`);
  if (s.unexpectedExits.length > 0) lines.push(`  unexpected member exits: ${s.unexpectedExits.join('; ')}`);
  lines.push(`  ${s.valid ? 'no violation found' : 'VIOLATION FOUND'} in ${(s.durationMs / 1000).toFixed(1)} s`);
  return lines.join('\n');
}
