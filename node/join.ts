// Joining a running cluster (etcd's --initial-cluster-state existing): learn the cluster id and this member's own
// id (MemberAdd gave it a fresh one) from the members listed in --initial-cluster before starting, as etcd does,
// so the peers admit us and Raft knows us.
import * as grpc from '@grpc/grpc-js';
import { loadEtcdApi } from '../proto/index.js';
import { PLAINTEXT_DIAL, type DialCredentials } from './tls.js';
import { grpcTarget, PEER_PROTOCOL_VERSION } from './transport/grpc-util.js';

/** How long one peer may take to answer the discovery handshake. */
export const DISCOVERY_TIMEOUT_MS = 3_000;
/** Rounds over the peer list before giving up (the cluster may be electing a leader or restarting). */
export const DISCOVERY_ROUNDS_MAX = 5;

export class JoinError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JoinError';
  }
}

/** What a joining member learns from the cluster before it starts. */
export interface ClusterIdentity {
  readonly clusterId: number;
  /**
   * The id MemberAdd gave this member (found by its peer URLs). When every member that answered is of a build from
   * before fresh ids, theirs was derived from the peer URLs: the caller's own `self.id`.
   */
  readonly memberId: number;
}

/**
 * Ask the peers for the cluster id and this member's id, round after round: a member that has not applied the
 * MemberAdd yet answers without an id, and another (the leader, or the same one later) will know it. https peers
 * are asked over TLS (dial: --peer-* files).
 */
export async function discoverCluster(
  peerUrls: readonly string[],
  self: { id: number; name: string; peerUrls: readonly string[] },
  dial: DialCredentials = PLAINTEXT_DIAL,
  pauseMs: (round: number) => number = (round) => 500 * (round + 1),
): Promise<ClusterIdentity> {
  const api = loadEtcdApi();
  const failures: string[] = [];
  let olderBuild: number | undefined;
  let unassigned = false;
  for (let round = 0; round < DISCOVERY_ROUNDS_MAX; round++) {
    let everyoneAnswered = true;
    for (const url of peerUrls) {
      try {
        const a = await askIdentity(api, url, self, dial);
        if (a.memberId > 0) return { clusterId: a.clusterId, memberId: a.memberId };
        if (a.assigns) unassigned = true;
        else olderBuild = a.clusterId;
      } catch (e) {
        everyoneAnswered = false;
        failures.push(`${url}: ${(e as Error).message}`);
      }
    }
    // Only builds from before fresh ids answered: their MemberAdd derived our id from our peer URLs. While some
    // member does not answer, it may be of this build and know a fresh id: ask again, until the last round.
    const lastRound = round + 1 === DISCOVERY_ROUNDS_MAX;
    if (olderBuild !== undefined && !unassigned && (everyoneAnswered || lastRound)) return { clusterId: olderBuild, memberId: self.id };
    if (!lastRound) await new Promise((r) => setTimeout(r, pauseMs(round)));
  }
  if (unassigned) {
    throw new JoinError(
      `fulcrum: the cluster has no member with this member's peer URLs (${[...self.peerUrls].join(',')}): add it first (etcdctl member add --peer-urls=...), then start it with --initial-cluster-state existing`,
    );
  }
  throw new JoinError(`fulcrum: could not learn the cluster id from any member of --initial-cluster (${failures.slice(-peerUrls.length).join('; ')})`);
}

function askIdentity(
  api: ReturnType<typeof loadEtcdApi>,
  url: string,
  self: { id: number; name: string; peerUrls: readonly string[] },
  dial: DialCredentials,
): Promise<{ clusterId: number; memberId: number; assigns: boolean }> {
  const client = new api.fulcrum.raftpb.RaftTransport(grpcTarget(url), dial(url));
  const request = {
    from: { cluster_id: '0', member_id: String(self.id), name: self.name, peer_urls: [...self.peerUrls], version: '', protocol_version: PEER_PROTOCOL_VERSION },
    to_member_id: '0',
  };
  type Answer = { member: { cluster_id: string } | null; assigned_member_id?: string; assigns_member_ids?: boolean };
  return new Promise((resolve, reject) => {
    client.Handshake(request as never, new grpc.Metadata(), { deadline: Date.now() + DISCOVERY_TIMEOUT_MS }, ((err: grpc.ServiceError | null, res?: Answer) => {
      client.close();
      const clusterId = Number(res?.member?.cluster_id ?? 0);
      const memberId = Number(res?.assigned_member_id ?? 0);
      if (err) reject(err);
      else if (!Number.isSafeInteger(clusterId) || clusterId <= 0) reject(new Error(`answered without a cluster id`));
      else if (!Number.isSafeInteger(memberId) || memberId < 0) reject(new Error(`answered with a bad member id ${String(res?.assigned_member_id)}`));
      else resolve({ clusterId, memberId, assigns: res?.assigns_member_ids === true });
    }) as never);
  });
}
