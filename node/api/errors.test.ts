import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { MvccError } from '../../storage/mvcc/index.js';
import { LoopError } from '../raft-loop.js';
import { toServiceError } from './errors.js';

describe('toServiceError', () => {
  it("maps typed errors to etcd's status codes and messages", () => {
    const compacted = toServiceError(new MvccError('COMPACTED', 'etcdserver: mvcc: required revision has been compacted'));
    expect([compacted.code, compacted.details]).toEqual([status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted']);
    const noLeader = toServiceError(new LoopError('PROPOSAL_DROPPED', 'raft proposal dropped: no leader'));
    expect([noLeader.code, noLeader.details]).toEqual([status.UNAVAILABLE, 'etcdserver: no leader']);
    const busy = toServiceError(new LoopError('TOO_MANY_REQUESTS', 'x'));
    expect([busy.code, busy.details]).toEqual([status.RESOURCE_EXHAUSTED, 'etcdserver: too many requests']);
    const leaderGone = toServiceError(new LoopError('TIMEOUT_DUE_TO_LEADER_FAIL', 'x'));
    expect([leaderGone.code, leaderGone.details]).toEqual([status.UNAVAILABLE, 'etcdserver: request timed out, possibly due to previous leader failure']);
  });

  it('hides unknown errors behind INTERNAL', () => {
    const e = toServiceError(new TypeError('secret stack detail'));
    expect(e.code).toBe(status.INTERNAL);
    expect(e.details).not.toContain('secret');
  });
});
