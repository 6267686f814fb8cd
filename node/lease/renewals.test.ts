// RenewalLog's answers: each waiter learns whether the checkpoint entry carrying its renewal reached its lease.
import { describe, expect, it } from 'vitest';
import type { Op } from '../../storage/command.js';
import type { CommandResult } from '../../storage/state-machine.js';
import { checkpointedLeases, RenewalLog, RENEWALS_PER_ENTRY_MAX } from './renewals.js';

const result = (leases: bigint[], error?: CommandResult['error']): CommandResult =>
  ({ op: 'leaseCheckpoint', index: 7, hlc: 0n, revision: 3, response: { leases }, ...(error === undefined ? {} : { error }) }) as unknown as CommandResult;

/** A RenewalLog whose entries "apply" as `answer` says, given the leases each entry carried. */
function renewalLog(answer: (carried: bigint[]) => CommandResult): { log: RenewalLog; entries: bigint[][] } {
  const entries: bigint[][] = [];
  const log = new RenewalLog(async (op: Op) => {
    const carried = (op as unknown as { leaseCheckpoint: { checkpoints: Array<{ id: bigint }> } }).leaseCheckpoint.checkpoints.map((c) => c.id);
    entries.push(carried);
    return answer(carried);
  });
  return { log, entries };
}

describe('RenewalLog', () => {
  it('answers every waiter of a full entry, and says no for leases the entry did not reach', async () => {
    // The entry reaches only even ids: the odd ones were revoked before it, say.
    const { log, entries } = renewalLog((carried) => result(carried.filter((id) => id % 2n === 0n)));
    // The first renewal goes out alone (nothing was in flight); the rest share the next entry, a full one.
    const ids = Array.from({ length: RENEWALS_PER_ENTRY_MAX + 1 }, (_, i) => BigInt(1_000 + i));
    const answers = await Promise.all(ids.map((id) => log.log(id, 60_000)));
    expect(entries.map((e) => e.length)).toEqual([1, RENEWALS_PER_ENTRY_MAX]);
    expect(answers.map((a) => a.reached)).toEqual(ids.map((id) => id % 2n === 0n));
    expect(checkpointedLeases(answers[1]!.result)).toEqual(ids.slice(1).filter((id) => id % 2n === 0n));
  });

  it('a failed entry or another command reached nothing', async () => {
    const failed = renewalLog((carried) => result(carried, { code: 'X', message: 'failed' } as unknown as CommandResult['error']));
    expect((await failed.log.log(5n, 1_000)).reached).toBe(false);
    const put = renewalLog(() => ({ op: 'put', index: 1, hlc: 0n, revision: 1, response: { leases: [5n] } }) as unknown as CommandResult);
    expect((await put.log.log(5n, 1_000)).reached).toBe(false);
  });
});
