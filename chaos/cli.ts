// npm run chaos -- --workload register --nemesis partition,kill,pause --time 60 --members 3
// Prints the summary (ops by outcome, faults injected, checker verdicts); exits 1 on any violation, 2 on bad
// arguments or a run that could not start.
import { Command, InvalidArgumentError } from 'commander';
import { formatSummary, runChaos, type RunOptions } from './run.js';
import { NEMESES } from './nemesis/index.js';
import { WORKLOADS } from './workloads/index.js';
import { MEMBERS_MAX, type Target } from './harness/cluster.js';

function positiveInt(name: string, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${name} must be an integer in 1..${max}`);
    return n;
  };
}

export function parseRunArgs(argv: readonly string[]): RunOptions {
  const p = new Command('chaos')
    .description('Run workloads against a real cluster under faults, and check the history')
    .option('--workload <names>', `comma-separated: ${Object.keys(WORKLOADS).join(', ')}`, 'register')
    .option('--nemesis <names>', `comma-separated: ${Object.keys(NEMESES).join(', ')}, all, none`, 'partition,kill,pause')
    .option('--time <s>', 'seconds of faults and load', positiveInt('--time', 86_400), 60)
    .option('--members <n>', 'cluster size', positiveInt('--members', MEMBERS_MAX), 3)
    .option('--clients <n>', 'concurrent clients', positiveInt('--clients', 200), 10)
    .option('--target <system>', 'fulcrum or etcd', 'fulcrum')
    .option('--seed <n>', 'random seed (nemesis and workload choices)', (v) => Number(v), Math.floor(Math.random() * 2 ** 31))
    .option('--serializable-reads', 'negative control: reads served locally without ReadIndex')
    .option('--no-fencing', 'negative control: the lock workload resource ignores fencing tokens')
    .option('--no-dedup', 'negative control: exactly-once retries carry no request identity')
    .option('--failpoints <spec>', 'FULCRUM_FAILPOINTS for every member (e.g. no-fsync)')
    .option('--overlap', 'network faults and process faults on two concurrent schedules')
    .option('--power-loss', 'kill -9 every member at once after the faulty phase')
    .option('--snapshot-count <n>', 'entries between snapshots (small values exercise snapshot faults)', positiveInt('--snapshot-count', 10_000_000))
    .option('--runs-dir <dir>', 'parent of the run directory (default chaos-runs/)')
    .exitOverride();
  p.parse([...argv], { from: 'user' });
  const o = p.opts<{
    workload: string; nemesis: string; time: number; members: number; clients: number; target: string; seed: number;
    serializableReads?: boolean; fencing: boolean; dedup: boolean; failpoints?: string; powerLoss?: boolean; overlap?: boolean; snapshotCount?: number; runsDir?: string;
  }>();
  if (o.target !== 'fulcrum' && o.target !== 'etcd') throw new InvalidArgumentError(`--target must be fulcrum or etcd, not "${o.target}"`);
  if (!Number.isInteger(o.seed)) throw new InvalidArgumentError('--seed must be an integer');
  return {
    workloads: o.workload.split(',').map((s) => s.trim()),
    nemeses: o.nemesis,
    timeS: o.time,
    members: o.members,
    clients: o.clients,
    target: o.target as Target,
    seed: o.seed,
    serializableReads: o.serializableReads === true,
    noFencing: o.fencing === false,
    noDedup: o.dedup === false,
    ...(o.failpoints !== undefined ? { failpoints: o.failpoints } : {}),
    powerLoss: o.powerLoss === true,
    overlap: o.overlap === true,
    ...(o.snapshotCount !== undefined ? { snapshotCount: o.snapshotCount } : {}),
    ...(o.runsDir !== undefined ? { runsDir: o.runsDir } : {}),
  };
}

async function main(): Promise<number> {
  let options: RunOptions;
  try {
    options = parseRunArgs(process.argv.slice(2));
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version') return 0;
    process.stderr.write(`chaos: ${(e as Error).message}\n`);
    return 2;
  }
  const summary = await runChaos(options);
  process.stdout.write(`${formatSummary(summary)}\n`);
  return summary.valid ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`chaos: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(2);
  },
);
