// Crash test with real processes: a child appends to the WAL as fast as it can and prints each acknowledged
// index; we SIGKILL it at random moments, reopen the log and check that nothing acknowledged was lost.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WriteAheadLog } from './wal.js';
import { captureLogger, crashPayloadBytes, payloadFor, tempDir } from './testutil.js';

const CHILD = fileURLToPath(new URL('./testdata/crash-writer.ts', import.meta.url));
const KILLS = 20;

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('wal-crash'));
});
afterAll(() => cleanup());

/** A small seeded generator, so a failing run can be replayed with the printed seed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Run {
  readonly startLast: number;
  readonly acked: number[];
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
}

/** Start the writer, let it run until it has acknowledged `minAcks` batches plus a random delay, SIGKILL it. */
function runAndKill(delayMs: number, minAcks: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', CHILD, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked: number[] = [];
    let startLast = -1;
    let buf = '';
    let stderr = '';
    let armed = false;
    const arm = (): void => {
      if (armed) return;
      armed = true;
      setTimeout(() => child.kill('SIGKILL'), delayMs);
    };
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!; // an incomplete last line was cut by the kill: not an acknowledgement
      for (const line of lines) {
        const [word, n] = line.split(' ');
        if (word === 'start') startLast = Number(n);
        if (word === 'ack') acked.push(Number(n));
        if (acked.length >= minAcks) arm();
      }
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (_code, signal) => resolve({ startLast, acked, signal, stderr }));
  });
}

describe('WAL under SIGKILL', () => {
  it(`keeps every acknowledged entry across ${KILLS} kills at random moments`, async () => {
    const seed = (Math.random() * 2 ** 32) >>> 0;
    const rand = mulberry32(seed);
    const ctx = `seed ${seed}`;
    let prevLast = 0;
    let prevCommit = 0;
    let totalAcked = 0;
    for (let round = 0; round < KILLS; round++) {
      const run = await runAndKill(Math.floor(rand() * 150), 1 + Math.floor(rand() * 60));
      expect(run.signal, `${ctx} round ${round}: child exited on its own: ${run.stderr}`).toBe('SIGKILL');
      expect(run.startLast, `${ctx} round ${round}: the child reopened the log where we left it`).toBe(prevLast);
      // Acknowledgements only ever move forward.
      for (let i = 1; i < run.acked.length; i++) expect(run.acked[i]!).toBeGreaterThan(run.acked[i - 1]!);
      const maxAcked = run.acked[run.acked.length - 1] ?? prevLast;
      totalAcked += run.acked.length;

      const wal = await WriteAheadLog.open(dir, { logger: captureLogger() });
      try {
        const s = wal.storage;
        const hs = s.initialState().hardState;
        expect(wal.recovery.tailCut, `${ctx} round ${round}: LevelDB batches are atomic, so no torn tail`).toBeUndefined();
        expect(s.lastIndex(), `${ctx} round ${round}: every acknowledged index is on disk`).toBeGreaterThanOrEqual(maxAcked);
        expect(s.lastIndex()).toBeGreaterThanOrEqual(prevLast);
        expect(hs.commit).toBeGreaterThanOrEqual(prevCommit);
        expect(hs.commit).toBeLessThanOrEqual(s.lastIndex());
        expect(s.firstIndex() - 1).toBeLessThanOrEqual(hs.commit);
        // Every entry still held has exactly the bytes that were written for its index and term.
        let lastTerm = s.term(s.firstIndex() - 1);
        for (const e of s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity)) {
          expect(e.data, `${ctx} round ${round}: entry ${e.index}`).toEqual(payloadFor(e.index, e.term, crashPayloadBytes(e.index)));
          expect(e.term).toBeGreaterThanOrEqual(lastTerm);
          lastTerm = e.term;
        }
        prevLast = s.lastIndex();
        prevCommit = hs.commit;
      } finally {
        await wal.close();
      }
    }
    // The kills must have hit a log under load, not an idle one.
    expect(totalAcked).toBeGreaterThan(KILLS);
    expect(prevLast).toBeGreaterThan(0);
  }, 90_000);
});
