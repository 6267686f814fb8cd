// Member and cluster ids, derived the way etcd derives them: a founding member's and the cluster's from what the
// operator configured, so every founding member computes the same ids without talking to the others; a member
// added later gets a fresh id from `member add`. Ids fit in 52 bits: the Raft core keeps them as numbers.
import { createHash, randomInt } from 'node:crypto';

const ID_BITS_MASK = (1n << 52n) - 1n;

function hashToId(parts: readonly string[]): number {
  const h = createHash('sha256').update(parts.join('\n')).digest();
  const id = Number(h.readBigUInt64BE(0) & ID_BITS_MASK);
  return id === 0 ? 1 : id; // 0 means "nobody" to Raft
}

/**
 * A founding member's id, from its peer URLs and the cluster token, so that every founding member computes the
 * same ids from --initial-cluster (as etcd does). Members added later get a fresh id instead (freshMemberId).
 */
export function memberIdFor(peerUrls: readonly string[], clusterToken: string): number {
  return hashToId(['member', clusterToken, ...[...peerUrls].sort()]);
}

/**
 * The id MemberAdd gives a member: its peer URLs, the cluster token and a salt (the time and a random number, as
 * etcd mixes in the time), never one of `taken`. A member removed and added back with the same URLs is a new
 * member with a new id, so a removal of the old id, wherever it is still remembered or replayed, never applies to
 * it. The joining member learns its id from the cluster (join.ts), and keeps it in its data dir (member.ts).
 */
export function freshMemberId(peerUrls: readonly string[], clusterToken: string, taken: ReadonlySet<number>, salt: () => string = defaultSalt): number {
  for (;;) {
    const id = hashToId(['added member', clusterToken, salt(), ...[...peerUrls].sort()]);
    if (!taken.has(id)) return id;
  }
}

function defaultSalt(): string {
  return `${Date.now()} ${randomInt(2 ** 47)}`;
}

/** Whether two lists name the same peer URLs (in any order): how a joining member is found in the registry. */
export function samePeerUrls(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const sorted = [...b].sort();
  return [...a].sort().every((u, i) => u === sorted[i]);
}

export function clusterIdFor(memberIds: readonly number[], clusterToken: string): number {
  return hashToId(['cluster', clusterToken, ...[...memberIds].sort((a, b) => a - b).map(String)]);
}

/** etcd prints ids as hex; so do logs and fulcrumctl. */
export function idToHex(id: number | bigint): string {
  return BigInt(id).toString(16);
}
