import { describe, expect, it } from 'vitest';
import { runPhase, type PhaseSpec } from './phase.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function spec(connections: number, inFlight: number, delayOf: (connection: number) => number, connectionOf?: (w: number) => number): PhaseSpec {
  return {
    name: 'test',
    description: 'sleeps',
    target: 'nowhere',
    inFlight,
    connections,
    warmupMs: 50,
    durationMs: 600,
    ...(connectionOf === undefined ? {} : { connectionOf }),
    op: (w) => sleep(delayOf(w % connections)),
  };
}

describe('runPhase: slowestConnectionShare', () => {
  it('is near 1 when every connection is served alike', async () => {
    const r = await runPhase(spec(4, 8, () => 5, (w) => w % 4));
    expect(r.ops).toBeGreaterThan(0);
    expect(r.slowestConnectionShare).toBeGreaterThan(0.8);
    expect(r.slowestConnectionShare).toBeLessThanOrEqual(1);
  });

  it('shows the connection whose requests take four times as long', async () => {
    // Connection 0 completes about a quarter of the requests per worker the others do; the mean per worker is
    // (1/4 + 3) / 4 of theirs, so its share is about (1/4) / (13/16) = 0.31.
    const r = await runPhase(spec(4, 8, (c) => (c === 0 ? 40 : 10), (w) => w % 4));
    expect(r.slowestConnectionShare).toBeGreaterThan(0.15);
    expect(r.slowestConnectionShare).toBeLessThan(0.5);
  });

  it('counts per worker, so a connection with fewer workers is not called slow', async () => {
    // 10 workers on 3 connections: 8 on connection 0, one each on 1 and 2 (by requests alone, those two would
    // come to 0.3 of the mean).
    const r = await runPhase(spec(3, 10, () => 5, (w) => (w < 8 ? 0 : w - 7)));
    expect(r.slowestConnectionShare).toBeGreaterThan(0.8);
  });

  it('is left out without connectionOf, or with one connection', async () => {
    expect((await runPhase(spec(4, 4, () => 5))).slowestConnectionShare).toBeUndefined();
    expect((await runPhase(spec(1, 4, () => 5, () => 0))).slowestConnectionShare).toBeUndefined();
  });

  it('refuses a connection outside the pool', async () => {
    await expect(runPhase(spec(2, 4, () => 5, () => 2))).rejects.toThrow(/connectionOf gave 2/);
  });
});
