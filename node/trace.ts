// Timeline tracing for latency work: with FULCRUM_TRACE=1 a member writes one line per event to stderr,
//   TRACE <monotonic ns> <event>
// on CLOCK_MONOTONIC, which every process on the machine shares, so the lines of all members of a local cluster
// merge into one timeline of a request (see docs/performance.md). Off, each call is one boolean test.
const ON = process.env.FULCRUM_TRACE === '1';

export function tracing(): boolean {
  return ON;
}

export function trace(event: string | (() => string)): void {
  if (!ON) return;
  process.stderr.write(`TRACE ${process.hrtime.bigint()} ${typeof event === 'string' ? event : event()}\n`);
}
