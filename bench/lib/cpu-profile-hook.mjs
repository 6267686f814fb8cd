// Loaded into a member with --import (through NODE_OPTIONS) by bench/profile.ts: on SIGUSR2 it starts the V8
// sampling profiler, and at exit it writes a .cpuprofile (open it in Chrome DevTools or speedscope for a flame
// graph). Starting on a signal keeps start-up (module loading and compiling) out of the profile.
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';

const dir = process.env.FULCRUM_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  let started = false;
  process.on('SIGUSR2', () => {
    if (started) return;
    started = true;
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: 250 });
    session.post('Profiler.start');
  });
  process.on('exit', () => {
    if (!started) return;
    // In-process inspector calls complete synchronously, so this runs to the end inside the exit handler.
    session.post('Profiler.stop', (err, r) => {
      if (err) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${process.env.FULCRUM_PROFILE_NAME ?? process.pid}.cpuprofile`), JSON.stringify(r.profile));
    });
  });
}
