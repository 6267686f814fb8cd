// npm run sim -- --seeds 1000 --ticks 10000 [--nodes 3|5] [--seed S] [--verbose]
//
// Prints one line per failing seed and ends with exactly "N passed, M failed"; exits 1 if any seed failed.
// --seed S runs only seed S (or, with --seeds K, seeds S..S+K-1) and prints its trace digest (run a seed twice:
// the digests match); --verbose prints each run's notable events, statistics and digest, and the recent history
// before a failure. Seeds run on one worker thread per core (--jobs); output is in seed order regardless.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Command, InvalidArgumentError } from 'commander';
import type { SimResult } from './cluster.js';
import { MUTANTS, type MutantName } from './mutants.js';
import { describeFailure, sweep } from './runner.js';
import { SafetyViolation, type CheckName } from './violation.js';
import type { SeedReport, WorkerTask } from './worker.js';

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

function mutantName(value: string): MutantName {
  if (!(value in MUTANTS)) throw new InvalidArgumentError(`unknown mutant ${value}; one of ${Object.keys(MUTANTS).join(', ')}`);
  return value as MutantName;
}

interface CliOptions {
  mutant?: MutantName;
  seeds?: number;
  ticks: number;
  nodes?: number;
  seed?: number;
  verbose?: boolean;
  jobs?: number;
}

const program = new Command()
  .name('sim')
  .description('Deterministic Raft cluster simulator: runs seeds, checks safety on every step and liveness after healing')
  .option('--seeds <n>', 'number of seeds to run', positiveInt)
  .option('--ticks <n>', 'ticks per seed', positiveInt, 10_000)
  .option('--nodes <n>', 'founding voters, 3 or 5 (default: alternate by seed)', memberCount)
  .option('--seed <s>', 'first seed (alone: run just this seed)', positiveInt)
  .option('--verbose', 'print notable events, failure context and trace digests')
  .option('--jobs <n>', 'worker threads (default: one per core; 1 runs in this thread)', positiveInt)
  .option('--mutant <name>', `run a negative control instead of the real core (${Object.keys(MUTANTS).join(', ')})`, mutantName)
  .parse();

const opts = program.opts<CliOptions>();
const seeds = opts.seeds ?? (opts.seed !== undefined ? 1 : 100);
const firstSeed = opts.seed ?? 1;
const verbose = opts.verbose === true;
const jobs = Math.max(1, Math.min(opts.jobs ?? availableParallelism(), seeds));

function print(r: SimResult, events: readonly string[]): void {
  if (verbose) {
    for (const line of events) console.log(`  ${line}`);
    const s = r.stats;
    console.log(
      `seed=${r.seed} nodes=${r.nodes} ${r.ok ? 'ok' : 'FAIL'} digest=${r.digest} events=${s.events} delivered=${s.delivered} ` +
        `leaders=${s.leaders} crashes=${s.crashes} partitions=${s.partitions} confChanges=${s.confChanges} ` +
        `snapshots=${s.snapshots} applied=${s.applied} readsChecked=${s.readsChecked}`,
    );
  } else if (seeds === 1) {
    console.log(`seed=${r.seed} nodes=${r.nodes} digest=${r.digest}`);
  }
  if (!r.ok) {
    console.log(describeFailure(r, opts.mutant === undefined ? '' : ` --mutant ${opts.mutant}`));
    if (verbose) for (const line of r.context) console.log(`  ${line}`);
  }
}

function finish(passed: number, failed: number, elapsedMs: number): void {
  const ran = passed + failed;
  console.error(`${ran} seeds in ${(elapsedMs / 1000).toFixed(1)}s (${(ran / (elapsedMs / 1000)).toFixed(2)} seeds/s, ${jobs} job${jobs > 1 ? 's' : ''})`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}

/** In this thread: the simplest path, and the one a debugger wants. */
function runHere(): void {
  let events: string[] = [];
  const summary = sweep({
    firstSeed,
    seeds,
    ticks: opts.ticks,
    nodes: opts.nodes,
    makeCore: opts.mutant === undefined ? undefined : MUTANTS[opts.mutant],
    verbose: verbose ? (line) => events.push(line) : undefined,
    onResult: (r) => {
      print(r, events);
      events = [];
    },
  });
  finish(summary.passed, summary.failed.length, summary.elapsedMs);
}

/**
 * Module hooks (tsx's TypeScript loader) belong to the thread that registered them, and a worker cannot start
 * from a .ts file before it has its own: the worker starts from this script, registers tsx, then loads worker.ts.
 */
const WORKER_BOOTSTRAP = `
import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./worker.ts', import.meta.url).href)}); });
`;

/** Seeds dealt round-robin to worker threads; reports are printed in seed order whatever order they finish in. */
function runInWorkers(): void {
  const started = performance.now();
  const waiting = new Map<number, SeedReport>();
  let nextToPrint = firstSeed;
  let passed = 0;
  let failed = 0;
  let running = jobs;
  const flush = (): void => {
    for (let rep = waiting.get(nextToPrint); rep !== undefined; rep = waiting.get(nextToPrint)) {
      waiting.delete(nextToPrint);
      const v = rep.result.violation;
      const r: SimResult = { ...rep.result, violation: v === undefined ? undefined : new SafetyViolation(v.check as CheckName, v.detail) };
      print(r, rep.events);
      if (r.ok) passed++;
      else failed++;
      nextToPrint++;
    }
  };
  for (let j = 0; j < jobs; j++) {
    const mine: number[] = [];
    for (let s = firstSeed + j; s < firstSeed + seeds; s += jobs) mine.push(s);
    const task: WorkerTask = { seeds: mine, ticks: opts.ticks, nodes: opts.nodes, verbose, mutant: opts.mutant };
    const w = new Worker(WORKER_BOOTSTRAP, { eval: true, workerData: task });
    w.on('message', (rep: SeedReport) => {
      waiting.set(rep.result.seed, rep);
      flush();
    });
    w.on('error', (e) => console.error(`worker ${j} failed: ${e.stack ?? e.message}`));
    w.on('exit', () => {
      if (--running > 0) return;
      // Seeds a broken worker never reported count as failed: silence is not a pass.
      const lost = seeds - (passed + failed) - waiting.size;
      if (lost > 0) console.log(`FAIL ${lost} seeds were never reported (a worker died)`);
      finish(passed, failed + lost + waiting.size, performance.now() - started);
    });
  }
}

if (jobs === 1) runHere();
else runInWorkers();
