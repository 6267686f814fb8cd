// Member and cluster ids, derived the way etcd derives them: from what the operator configured, so every member
// computes the same ids without talking to the others. Ids fit in 52 bits: the Raft core keeps them as numbers.
import { createHash } from 'node:crypto';

const ID_BITS_MASK = (1n << 52n) - 1n;

function hashToId(parts: readonly string[]): number {
  const h = createHash('sha256').update(parts.join('\n')).digest();
  const id = Number(h.readBigUInt64BE(0) & ID_BITS_MASK);
  return id === 0 ? 1 : id; // 0 means "nobody" to Raft
}

/**
 * A member's id from its peer URLs and the cluster token. A member that joins later (MemberAdd, then start with
 * --initial-cluster-state existing) computes the same id from its own --initial-advertise-peer-urls. Re-adding
 * the same URLs gives the same id again, which is safe only with an empty data dir (as etcd requires anyway), and
 * means a member replaying old log entries can hold a removal that predates the id's return: the peer transport
 * weighs such a removal against the sender's applied index before refusing it (transport.ts aheadOfUs).
 */
export function memberIdFor(peerUrls: readonly string[], clusterToken: string): number {
  return hashToId(['member', clusterToken, ...[...peerUrls].sort()]);
}

export function clusterIdFor(memberIds: readonly number[], clusterToken: string): number {
  return hashToId(['cluster', clusterToken, ...[...memberIds].sort((a, b) => a - b).map(String)]);
}

/** etcd prints ids as hex; so do logs and fulcrumctl. */
export function idToHex(id: number | bigint): string {
  return BigInt(id).toString(16);
}
