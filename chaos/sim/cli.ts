// npm run sim -- --seeds 1000 --ticks 10000 [--nodes 3|5] [--seed S] [--verbose]
//
// Prints one line per failing seed and ends with exactly "N passed, M failed"; exits 1 if any seed failed.
// --seed S runs only seed S (or, with --seeds K, seeds S..S+K-1); --verbose prints each run's notable events,
// the recent history before a failure, and each seed's trace digest (run a seed twice: the digests match).
import { Command, InvalidArgumentError } from 'commander';
import { describeFailure, sweep } from './runner.js';
import type { SimResult } from './cluster.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got ${value}`);
  return n;
}

function memberCount(value: string): number {
  const n = positiveInt(value);
  if (n !== 3 && n !== 5) throw new InvalidArgumentError('--nodes must be 3 or 5');
  return n;
}

interface CliOptions {
  seeds?: number;
  ticks: number;
  nodes?: number;
  seed?: number;
  verbose?: boolean;
}

const program = new Command()
  .name('sim')
  .description('Deterministic Raft cluster simulator: runs seeds, checks safety on every step and liveness after healing')
  .option('--seeds <n>', 'number of seeds to run', positiveInt)
  .option('--ticks <n>', 'ticks per seed', positiveInt, 10_000)
  .option('--nodes <n>', 'founding voters, 3 or 5 (default: alternate by seed)', memberCount)
  .option('--seed <s>', 'first seed (alone: run just this seed)', positiveInt)
  .option('--verbose', 'print notable events, failure context and trace digests')
  .parse();

const opts = program.opts<CliOptions>();
const seeds = opts.seeds ?? (opts.seed !== undefined ? 1 : 100);
const firstSeed = opts.seed ?? 1;
const verbose = opts.verbose === true;

const onResult = (r: SimResult): void => {
  if (verbose) {
    const s = r.stats;
    console.log(
      `seed=${r.seed} nodes=${r.nodes} ${r.ok ? 'ok' : 'FAIL'} digest=${r.digest} events=${s.events} delivered=${s.delivered} ` +
        `leaders=${s.leaders} crashes=${s.crashes} partitions=${s.partitions} confChanges=${s.confChanges} ` +
        `snapshots=${s.snapshots} applied=${s.applied} readsChecked=${s.readsChecked}`,
    );
  }
  if (!r.ok) {
    console.log(describeFailure(r));
    if (verbose) for (const line of r.context) console.log(`  ${line}`);
  }
};

const summary = sweep({
  firstSeed,
  seeds,
  ticks: opts.ticks,
  nodes: opts.nodes,
  verbose: verbose ? (line) => console.log(`  ${line}`) : undefined,
  onResult,
});
const perSecond = (summary.ran / (summary.elapsedMs / 1000)).toFixed(1);
console.error(`${summary.ran} seeds in ${(summary.elapsedMs / 1000).toFixed(1)}s (${perSecond} seeds/s)`);
console.log(`${summary.passed} passed, ${summary.failed.length} failed`);
process.exitCode = summary.failed.length > 0 ? 1 : 0;
