// etcd's ResponseHeader: which cluster and member answered, at which revision and Raft term. Fulcrum adds the
// HLC that goes with the revision (field 1000, invisible to etcd clients).
import protobuf from 'protobufjs';
import type { Encodable, Int64, Int64Like, ResponseHeader } from '../../proto/index.js';
import type { Member } from '../member.js';

/** A 64-bit integer as the loader carries it on the wire side (a decimal string: lossless above 2^53). */
export function int64(v: number | bigint): Int64 {
  return BigInt(v).toString() as Int64;
}

/**
 * A 64-bit integer for a message about to be encoded, in the form protobufjs converts cheapest: a number when it
 * is exact, otherwise a Long built from its bits. A decimal string (int64()) is parsed digit by digit on every
 * encode, and ids and HLC stamps are all above 2^53: that parsing showed in the profile of every read.
 */
export function wire64(v: number | bigint): Int64Like {
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) return v;
    v = BigInt(v);
  }
  if (v >= MIN_EXACT && v <= MAX_EXACT) return Number(v);
  const low = Number(BigInt.asIntN(32, v));
  const high = Number(BigInt.asIntN(32, v >> 32n));
  return LONG.fromBits(low, high, v > 0n);
}

/** protobufjs's own Long class (long.js): what its encoders take without conversion. */
const LONG = protobuf.util.Long as unknown as { fromBits(low: number, high: number, unsigned: boolean): Int64Like };
const MIN_EXACT = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * The cluster and member ids of the last header, converted: both are above 2^53 (a Long each time), they never
 * change for a member, and a header is built for every response.
 */
let ids: { clusterId: number; memberId: number; cluster: Int64Like; member: Int64Like } | undefined;

function idsOf(member: Member): { cluster: Int64Like; member: Int64Like } {
  if (ids?.clusterId !== member.clusterId || ids.memberId !== member.id) {
    ids = { clusterId: member.clusterId, memberId: member.id, cluster: wire64(member.clusterId), member: wire64(member.id) };
  }
  return ids;
}

export function responseHeader(member: Member, revision?: number, hlc?: bigint): Encodable<ResponseHeader> {
  const { cluster, member: memberId } = idsOf(member);
  return {
    cluster_id: cluster,
    member_id: memberId,
    revision: wire64(revision ?? member.stateMachine.revision),
    raft_term: wire64(member.term()),
    hlc: wire64(hlc ?? 0n),
  };
}
