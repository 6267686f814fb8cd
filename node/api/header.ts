// etcd's ResponseHeader: which cluster and member answered, at which revision and Raft term. Fulcrum adds the
// HLC that goes with the revision (field 1000, invisible to etcd clients).
import type { ResponseHeader } from '../../proto/index.js';
import type { Member } from '../member.js';

export function responseHeader(member: Member, revision?: number, hlc?: bigint): ResponseHeader {
  return {
    cluster_id: BigInt(member.clusterId).toString(),
    member_id: BigInt(member.id).toString(),
    revision: String(revision ?? member.stateMachine.revision),
    raft_term: String(member.term()),
    hlc: String(hlc ?? 0n),
  };
}
