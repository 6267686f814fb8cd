// Loaded into a member with --import (through NODE_OPTIONS) by `bench:profile --gc`: records each garbage
// collection's start (ms since the epoch, comparable across processes), pause and kind, and writes them to
// FULCRUM_GC_LOG at exit, one line each. perf_hooks reports the pauses of the main thread; work V8's helper threads
// do concurrently is not in them.
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import process from 'node:process';

/** Collections kept (a member at 100 puts in flight does about 15 a second). */
const ROWS_MAX = 200_000;

const file = process.env.FULCRUM_GC_LOG;
if (file) {
  const rows = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (rows.length < ROWS_MAX) rows.push(`${(performance.timeOrigin + e.startTime).toFixed(1)} ${e.duration.toFixed(2)} ${e.detail?.kind ?? 0}`);
  }).observe({ entryTypes: ['gc'] });
  process.on('exit', () => writeFileSync(file, rows.join('\n') + '\n'));
}
