// The member's throttled warnings about held-up heartbeats, fed as the Ready loop feeds them (node/server.ts).
import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { HEARTBEAT_HOLDUP_WARN_INTERVALS } from './raft-loop.js';
import { walSyncReporter } from './server.js';

function recorder(): { logger: Logger; warnings: Array<{ fields: Record<string, unknown>; msg: string }> } {
  const warnings: Array<{ fields: Record<string, unknown>; msg: string }> = [];
  const logger = { warn: (fields: Record<string, unknown>, msg: string) => warnings.push({ fields, msg }) } as unknown as Logger;
  return { logger, warnings };
}

describe('the slow WAL sync warning', () => {
  it('warns, once per interval and with the slowest, about synced writes longer than the heartbeats allow', () => {
    const { logger, warnings } = recorder();
    const fsyncs: number[] = [];
    const report = walSyncReporter(logger, { observeWalFsync: (ms) => fsyncs.push(ms) }, 100);
    const limit = 100 * HEARTBEAT_HOLDUP_WARN_INTERVALS;
    report(limit, true); // at the limit: not slow
    report(limit + 400, false); // not synced: neither timed nor judged
    expect(warnings).toEqual([]);
    report(limit + 100, true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toBe(`fulcrum: slow WAL sync: ${limit + 100} ms (heartbeats wait for it; the election timeout is what a member may miss)`);
    expect(warnings[0]!.fields).toEqual({ slowWrites: 1, slowestMs: limit + 100 });
    report(limit + 900, true); // within the same interval: counted, not logged
    expect(warnings).toHaveLength(1);
    expect(fsyncs).toEqual([limit, limit + 100, limit + 900]);
  });
});
