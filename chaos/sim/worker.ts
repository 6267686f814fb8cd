// A worker thread of the command line: runs the seeds it is given and posts one report per seed. Reports are
// plain data (structured clone), so the violation travels as its check and detail.
import { parentPort, workerData } from 'node:worker_threads';
import { runSeed, type SimResult } from './cluster.js';
import { MUTANTS, type MutantName } from './mutants.js';
import { nodesForSeed } from './runner.js';

export interface WorkerTask {
  readonly seeds: readonly number[];
  readonly ticks: number;
  readonly nodes: number | undefined;
  readonly verbose: boolean;
  readonly mutant: MutantName | undefined;
}

export interface SeedReport {
  readonly result: Omit<SimResult, 'violation'> & { readonly violation: { check: string; detail: string } | undefined };
  /** The run's notable events, when verbose. */
  readonly events: readonly string[];
}

const task = workerData as WorkerTask;
for (const seed of task.seeds) {
  const events: string[] = [];
  const r = runSeed({
    seed,
    ticks: task.ticks,
    nodes: nodesForSeed(seed, task.nodes),
    makeCore: task.mutant === undefined ? undefined : MUTANTS[task.mutant],
    verbose: task.verbose ? (l) => events.push(l) : undefined,
  });
  const v = r.violation;
  const report: SeedReport = { result: { ...r, violation: v === undefined ? undefined : { check: v.check, detail: v.detail } }, events };
  parentPort!.postMessage(report);
}
