// The Node.js flags a Fulcrum server process runs with: `npm start`, the container image (NODE_OPTIONS in the
// Dockerfile), the members node/testing/process-cluster.ts starts (tests, `npm run cluster`, the benchmark) and
// the chaos harness's (chaos/harness/cluster.ts). node/node-flags.test.ts checks the first three.
//
// --max-semi-space-size=8: V8's young generation at most 2 x 8 MiB instead of the 2 x 16 MiB Node picks on a
// machine with this much memory. V8 starts marking the old generation as soon as the room left below its limit
// is smaller than the young generation, and a member's old generation is small (20-40 MiB) with a limit a fixed
// step above it: with the full-size young generation that room was always too small, and a member delivering
// watch events ran a mark-compact every 200 ms, a quarter of its CPU (docs/performance.md, twenty-eighth
// session). Puts at 100 in flight measured the same either way.
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];

/**
 * The server flags this process was started without (given neither on node's command line nor in NODE_OPTIONS),
 * so that the server can say so at start: `npx fulcrum` and `node dist/fulcrum.mjs` pass none of them. A flag
 * given with another value counts as given: that is the operator's choice. Node also reads flags written with
 * underscores (--max_semi_space_size).
 */
export function missingServerNodeFlags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = new Set([...execArgv, ...(nodeOptions ?? '').split(/\s+/)].map(flagName));
  return SERVER_NODE_FLAGS.filter((f) => !given.has(flagName(f)));
}

function flagName(arg: string): string {
  return arg.split('=')[0]!.replaceAll('_', '-');
}
