// Loaded into a member with --import (through NODE_OPTIONS) by bench/profile.ts: on SIGUSR2 it starts V8's sampling
// profiler, and at exit it writes what it found into FULCRUM_PROFILE_DIR. Starting on a signal keeps start-up
// (module loading and compiling) out of the profile.
//   FULCRUM_PROFILE_KIND=cpu   a .cpuprofile (open it in Chrome DevTools or speedscope for a flame graph)
//   FULCRUM_PROFILE_KIND=heap  a .heapprofile of what was ALLOCATED while it ran, garbage included (V8 keeps only
//                              the samples still alive unless told otherwise): where the garbage collector's work
//                              comes from. Chrome DevTools opens it (Memory tab, "Load profile").
//   FULCRUM_PROFILE_KIND=old   a .heapprofile of what was allocated while it ran and outlived the young generation
//                              (promoted, whether a mark-compact collected it later or not): what the scavenger
//                              copied twice and mark-compact then had to trace.
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';

/** Bytes between heap samples on average: V8's default is 32 KiB; a put allocates a few KiB. */
const HEAP_SAMPLING_INTERVAL_BYTES = 4096;

const dir = process.env.FULCRUM_PROFILE_DIR;
const KINDS = ['cpu', 'heap', 'old'];
const kind = KINDS.includes(process.env.FULCRUM_PROFILE_KIND) ? process.env.FULCRUM_PROFILE_KIND : 'cpu';
if (dir) {
  const session = new Session();
  session.connect();
  let started = false;
  process.on('SIGUSR2', () => {
    if (started) return;
    started = true;
    if (kind !== 'cpu') {
      session.post('HeapProfiler.enable');
      session.post('HeapProfiler.startSampling', {
        samplingInterval: HEAP_SAMPLING_INTERVAL_BYTES,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: kind === 'heap',
      });
      return;
    }
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: 250 });
    session.post('Profiler.start');
  });
  process.on('exit', () => {
    if (!started) return;
    // In-process inspector calls complete synchronously, so this runs to the end inside the exit handler.
    const write = (ext, data) => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${process.env.FULCRUM_PROFILE_NAME ?? process.pid}.${ext}`), JSON.stringify(data));
    };
    // A scavenge first would be better still (the young generation's last garbage counts as "old" here), but the
    // inspector can only ask for a full collection, which would keep what it collects: the error is one young
    // generation's worth, against a window of tens of them.
    if (kind !== 'cpu') session.post('HeapProfiler.stopSampling', (err, r) => err || write('heapprofile', r.profile));
    else session.post('Profiler.stop', (err, r) => err || write('cpuprofile', r.profile));
  });
}
