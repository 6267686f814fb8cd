// etcd's ResponseHeader: which cluster and member answered, at which revision and Raft term. Fulcrum adds the
// HLC that goes with the revision (field 1000, invisible to etcd clients).
import type { Int64, ResponseHeader } from '../../proto/index.js';
import type { Member } from '../member.js';

/** A 64-bit integer as the loader carries it on the wire side (a decimal string: lossless above 2^53). */
export function int64(v: number | bigint): Int64 {
  return BigInt(v).toString() as Int64;
}

export function responseHeader(member: Member, revision?: number, hlc?: bigint): ResponseHeader {
  return {
    cluster_id: int64(member.clusterId),
    member_id: int64(member.id),
    revision: int64(revision ?? member.stateMachine.revision),
    raft_term: int64(member.term()),
    hlc: int64(hlc ?? 0n),
  };
}
