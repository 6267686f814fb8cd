// Loopback ports for tests that start real servers. Each test file owns a range (see the port table in the
// closing notes and the files themselves); inside it, a start that depends on the process id spreads parallel
// runs apart, and a port something else holds is skipped.
import { createServer } from 'node:net';

/** Whether nothing listens on 127.0.0.1:port right now. */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export interface PortRange {
  /** The first port of the range. */
  readonly first: number;
  /** How many ports it has. */
  readonly size: number;
  /** Starts are multiples of this from `first` (1: any port). */
  readonly align?: number;
}

/** Tries before giving up on finding `count` free consecutive ports. */
const ATTEMPTS = 20;

/** `count` free consecutive ports in the range; `salt` separates several users in one process. */
export async function freeConsecutivePorts(count: number, range: PortRange, salt = 0): Promise<number[]> {
  const align = range.align ?? 1;
  const starts = Math.floor((range.size - count) / align) + 1;
  if (starts < 1) throw new Error(`${count} ports do not fit in ${range.first}-${range.first + range.size - 1}`);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    // pid * 31: test files run in processes with neighbouring ids; a multiplier keeps their starts far apart (with
    // pid + salt, two files' starts could differ by one port, and their picks overlap and race to bind).
    const base = range.first + ((process.pid * 31 + salt * 37 + attempt * 53) % starts) * align;
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return ports;
  }
  throw new Error(`EADDRINUSE: no ${count} free consecutive ports in ${range.first}-${range.first + range.size - 1}`);
}
