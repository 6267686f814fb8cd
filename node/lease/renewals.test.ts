// RenewalLog's answers: which leases a checkpoint entry reached, as every waiter of the entry asks.
import { describe, expect, it } from 'vitest';
import type { CommandResult } from '../../storage/state-machine.js';
import { checkpointReached, checkpointedLeases, RENEWALS_PER_ENTRY_MAX } from './renewals.js';

const result = (leases: bigint[], error?: CommandResult['error']): CommandResult =>
  ({ op: 'leaseCheckpoint', index: 7, hlc: 0n, revision: 3, response: { leases }, ...(error === undefined ? {} : { error }) }) as unknown as CommandResult;

describe('checkpointReached', () => {
  it('answers for each lease of a full entry from one set, and says no for leases the entry did not reach', () => {
    const ids = Array.from({ length: RENEWALS_PER_ENTRY_MAX }, (_, i) => BigInt(1_000 + 2 * i));
    const r = result(ids);
    expect(ids.every((id) => checkpointReached(r, id))).toBe(true);
    expect(checkpointReached(r, 1_001n)).toBe(false); // an odd id: revoked before the entry, say
    expect(checkpointReached(r, BigInt(1_000 + 2 * RENEWALS_PER_ENTRY_MAX))).toBe(false);
    expect(checkpointedLeases(r)).toEqual(ids);
  });

  it('a failed entry or another command reached nothing', () => {
    expect(checkpointReached(result([5n], { code: 'X', message: 'failed' } as unknown as CommandResult['error']), 5n)).toBe(false);
    const put = { op: 'put', index: 1, hlc: 0n, revision: 1, response: { leases: [5n] } } as unknown as CommandResult;
    expect(checkpointReached(put, 5n)).toBe(false);
  });
});
