// Short chaos runs for the test suite: quiet, in chaos-runs/test, removed when they pass and kept when not.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { formatSummary, REPO_ROOT, runChaos, type RunOptions, type RunSummary } from '../run.js';

const RUNS = join(REPO_ROOT, 'chaos-runs', 'test');
/** Generous: a slow shared machine may need a minute to start, heal and check. */
export const RUN_TIMEOUT_MS = 180_000;

/** `expectViolation`: a negative control, whose run is kept (and printed) only when it finds nothing. */
export async function run(o: Partial<RunOptions> & Pick<RunOptions, 'workloads' | 'nemeses' | 'timeS'>, expectViolation = false): Promise<RunSummary> {
  const s = await runChaos({ members: 3, target: 'fulcrum', clients: 6, seed: 1 + Math.floor(Math.random() * 1e9), runsDir: RUNS, quiet: true, quietMs: [500, 1_500], faultMs: [1_500, 3_000], ...o });
  // A failing run is kept for reading; a passing one is removed (npm test must not fill the disk).
  const asExpected = expectViolation ? !s.valid : s.valid && s.unexpectedExits.length === 0;
  if (asExpected) rmSync(s.dir, { recursive: true, force: true });
  else process.stderr.write(`${formatSummary(s)}\n`);
  return s;
}

