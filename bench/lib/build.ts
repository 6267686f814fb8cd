// The compiled server the benchmarks run: what the container image runs, not the sources through tsx.
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * `npm run build`, so the members run the bundle operators deploy (dist/fulcrum.mjs). Same code as from source,
 * except that tsx names every function it creates at run time (esbuild's keepNames: 1.5 % of a leader's busy CPU
 * in a profile at 100 puts in flight) and that a member starts about 0.45 s sooner, which the restart and failover
 * figures include.
 */
export function buildFulcrum(log: (line: string) => void): void {
  log('building Fulcrum (npm run build) ...');
  const r = spawnSync('npm', ['run', '--silent', 'build'], { stdio: ['ignore', 'inherit', 'inherit'], cwd: REPO });
  if (r.status !== 0) throw new Error('npm run build failed: the benchmark runs the compiled server (or pass --from-source)');
}
