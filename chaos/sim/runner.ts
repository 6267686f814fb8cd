// Runs many seeds and summarizes them: what the command line and the seed-sweep tests share.
import type { CoreFactory } from './node.js';
import { runSeed, type SimResult } from './cluster.js';

export interface SweepOptions {
  /** First seed; seeds are firstSeed, firstSeed+1, ... */
  readonly firstSeed: number;
  readonly seeds: number;
  readonly ticks: number;
  /** Founding voters; undefined alternates 3 and 5 by seed. */
  readonly nodes: number | undefined;
  readonly makeCore?: CoreFactory;
  readonly verbose?: (line: string) => void;
  /** Stop at the first failing seed (negative controls only need one). */
  readonly stopAtFirstFailure?: boolean;
  readonly onResult?: (r: SimResult) => void;
}

export interface SweepSummary {
  readonly passed: number;
  readonly failed: SimResult[];
  readonly ran: number;
  readonly elapsedMs: number;
}

export function nodesForSeed(seed: number, nodes: number | undefined): number {
  return nodes ?? (seed % 2 === 0 ? 3 : 5);
}

export function sweep(o: SweepOptions): SweepSummary {
  const started = performance.now();
  const failed: SimResult[] = [];
  let passed = 0;
  let ran = 0;
  for (let k = 0; k < o.seeds; k++) {
    const seed = o.firstSeed + k;
    const r = runSeed({ seed, ticks: o.ticks, nodes: nodesForSeed(seed, o.nodes), makeCore: o.makeCore, verbose: o.verbose });
    ran++;
    o.onResult?.(r);
    if (r.ok) passed++;
    else {
      failed.push(r);
      if (o.stopAtFirstFailure === true) break;
    }
  }
  return { passed, failed, ran, elapsedMs: performance.now() - started };
}

/** One line for a failing seed: enough to replay it and to see what broke. */
export function describeFailure(r: SimResult, extraArgs = ''): string {
  const v = r.violation!;
  const replay = `npm run sim -- --seed ${r.seed} --nodes ${r.nodes} --ticks ${r.ticks}${extraArgs} --verbose`;
  return `FAIL seed=${r.seed} nodes=${r.nodes} ticks=${r.ticks} check=${v.check}: ${v.detail} (digest ${r.digest}; replay: ${replay})`;
}
