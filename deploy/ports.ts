// Loopback ports for the deploy tests: 23000–23999 only, one block per test file, starting at an offset taken
// from the process id (as the other process tests do) and skipping any port something else already holds.
import { createServer } from 'node:net';

const RANGE_START = 23_000;
/** Ports per test file; the three deploy test files take blocks 0, 1 and 2. */
const BLOCK_PORTS = 300;
/** Offsets inside a block are multiples of this, so two runs of one file rarely start on the same port. */
const OFFSET_STEP = 10;

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** `count` distinct free ports from this file's block. */
export async function freePorts(block: 0 | 1 | 2, count: number): Promise<number[]> {
  const start = RANGE_START + block * BLOCK_PORTS;
  const offset = ((process.pid % (BLOCK_PORTS / OFFSET_STEP)) * OFFSET_STEP) % BLOCK_PORTS;
  const ports: number[] = [];
  for (let i = 0; i < BLOCK_PORTS && ports.length < count; i++) {
    const port = start + ((offset + i) % BLOCK_PORTS);
    if (await isFree(port)) ports.push(port);
  }
  if (ports.length < count) throw new Error(`only ${ports.length} of ${count} ports free in ${start}-${start + BLOCK_PORTS - 1}`);
  return ports;
}
