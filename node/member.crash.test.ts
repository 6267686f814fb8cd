// The whole store under SIGKILL: every acknowledged write survives, revisions never go backwards, and the
// member opens cleanly, across many kills at random moments (during writes, snapshots and WAL compaction).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { SeededRandom } from '../raft/rng.js';
import { Member } from './member.js';

const CHILD = fileURLToPath(new URL('./testdata/crash-member.ts', import.meta.url));
const KILLS = 12;
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Run the writer until a random moment after it is ready, SIGKILL it, and return what it acknowledged. */
function runAndKill(firstN: number, killAfterMs: number): Promise<Map<number, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(firstN)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acked = new Map<number, number>();
    let buf = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready') setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        const m = /^ack (\d+) (\d+)$/.exec(line);
        if (m) acked.set(Number(m[1]), Number(m[2]));
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acked);
      else reject(new Error(`writer exited on its own (code ${code}): ${stderr.slice(-2000)}`));
    });
  });
}

describe('Member under SIGKILL', () => {
  it(`keeps every acknowledged write across ${KILLS} kills`, async () => {
    const rng = new SeededRandom(20261121);
    const everAcked = new Map<number, number>();
    let highestAckedRevision = 0;
    let firstN = 0;
    for (let round = 0; round < KILLS; round++) {
      const acked = await runAndKill(firstN, 150 + rng.int(900));
      for (const [n, rev] of acked) everAcked.set(n, rev);
      for (const rev of acked.values()) highestAckedRevision = Math.max(highestAckedRevision, rev);
      firstN += 1_000_000; // keys of the next life never collide with this one's
      const m = await Member.start({ id: 1, dataDir: dir, initialVoters: [1], heartbeatMs: 50 });
      try {
        expect(m.stateMachine.revision).toBeGreaterThanOrEqual(highestAckedRevision);
        for (const [n, rev] of everAcked) {
          const r = await m.stateMachine.mvcc.range({ key: new TextEncoder().encode(`w-${n}`) });
          expect(r.kvs.length, `acknowledged write w-${n} is missing after kill ${round + 1}`).toBe(1);
          expect(new TextDecoder().decode(r.kvs[0]!.value)).toBe(`value-${n}`);
          expect(r.kvs[0]!.modRevision).toBe(rev);
        }
      } finally {
        await m.close();
      }
    }
    expect(everAcked.size).toBeGreaterThan(KILLS * 50); // the writer really wrote between kills
  }, 240_000);
});
