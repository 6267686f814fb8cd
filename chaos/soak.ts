// npm run chaos:soak -- --time 3600 [--target fulcrum|etcd] [--members 3]
// Back-to-back chaos runs with a random mix of workloads and nemeses until the time is up. Passing runs are
// deleted; failing runs (a violation, or a member that exited on its own) are kept in chaos-runs/. One line per
// run goes to chaos-runs/soak-<time>.jsonl, and the totals are printed at the end. Exits 1 if any run failed.
import { appendFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { formatSummary, REPO_ROOT, runChaos, seededRandom } from './run.js';
import { NEMESES } from './nemesis/index.js';
import { WORKLOADS } from './workloads/index.js';
import type { Target } from './harness/cluster.js';

/** One run's length, seconds: long enough for several faults, short enough to check quickly. */
const RUN_S_MIN = 45;
const RUN_S_MAX = 120;
/** Time a run needs beyond its faulty phase (start, heal, final reads, checks), seconds. */
const RUN_OVERHEAD_S = 40;

async function main(): Promise<number> {
  const p = new Command('chaos:soak')
    .option('--time <s>', 'total seconds', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < RUN_S_MIN + RUN_OVERHEAD_S) throw new InvalidArgumentError(`--time must be an integer >= ${RUN_S_MIN + RUN_OVERHEAD_S}`);
      return n;
    }, 3600)
    .option('--target <system>', 'fulcrum or etcd', 'fulcrum')
    .option('--members <n>', 'cluster size', (v) => Number(v), 3)
    .option('--seed <n>', 'seed of the mix', (v) => Number(v), Math.floor(Math.random() * 2 ** 31));
  p.parse(process.argv.slice(2), { from: 'user' });
  const o = p.opts<{ time: number; target: string; members: number; seed: number }>();
  if (o.target !== 'fulcrum' && o.target !== 'etcd') throw new InvalidArgumentError('--target must be fulcrum or etcd');
  const random = seededRandom(o.seed);
  const deadline = Date.now() + o.time * 1000;
  const runsDir = join(REPO_ROOT, 'chaos-runs');
  mkdirSync(runsDir, { recursive: true });
  const journal = join(runsDir, `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`);
  const totals = { runs: 0, failed: 0, ops: 0, faults: 0, kept: [] as string[] };
  const workloadNames = Object.keys(WORKLOADS);
  const nemesisNames = Object.keys(NEMESES).filter((n) => o.target === 'fulcrum' || !['crashpoint', 'torn'].includes(n));
  while (Date.now() + (RUN_S_MIN + RUN_OVERHEAD_S) * 1000 < deadline) {
    const left = Math.floor((deadline - Date.now()) / 1000) - RUN_OVERHEAD_S;
    const timeS = Math.min(left, RUN_S_MIN + Math.floor(random() * (RUN_S_MAX - RUN_S_MIN)));
    const workloads = workloadNames.filter(() => random() < 0.5);
    if (workloads.length === 0) workloads.push(workloadNames[Math.floor(random() * workloadNames.length)]!);
    const nemeses = nemesisNames.filter(() => random() < 0.4);
    if (nemeses.length === 0) nemeses.push(nemesisNames[Math.floor(random() * nemesisNames.length)]!);
    const s = await runChaos({
      workloads,
      nemeses: nemeses.join(','),
      timeS,
      members: o.members,
      target: o.target as Target,
      clients: 10,
      seed: Math.floor(random() * 2 ** 31),
      snapshotCount: random() < 0.5 ? 500 : 10_000,
      overlap: random() < 0.5,
      quiet: true,
    });
    const failed = !s.valid || s.unexpectedExits.length > 0;
    totals.runs++;
    totals.ops += Object.values(s.ops).reduce((n, c) => n + c.ok + c.fail + c.info, 0);
    totals.faults += Object.values(s.faults).reduce((a, b) => a + b, 0);
    appendFileSync(journal, `${JSON.stringify({ dir: s.dir, failed, workloads, nemeses, timeS, ops: s.ops, faults: s.faults, checks: s.checks.map((c) => ({ w: c.workload, c: c.checker, v: c.verdict, s: c.summary })), unexpectedExits: s.unexpectedExits })}\n`);
    process.stdout.write(`${formatSummary(s)}\n`);
    if (failed) {
      totals.failed++;
      totals.kept.push(s.dir);
    } else rmSync(s.dir, { recursive: true, force: true });
  }
  process.stdout.write(
    `soak: ${totals.runs} runs, ${totals.ops} operations recorded, ${totals.faults} faults injected, ${totals.failed} failing runs kept` +
      `${totals.kept.length > 0 ? `:\n  ${totals.kept.join('\n  ')}` : ''}\njournal: ${journal}\n`,
  );
  return totals.failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`chaos:soak: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(2);
  },
);
