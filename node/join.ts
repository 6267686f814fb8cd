// Joining a running cluster (etcd's --initial-cluster-state existing): learn the cluster id from the members
// listed in --initial-cluster before starting, as etcd does, so the peers admit us.
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

/** Ask each peer for its cluster id; the first answer wins. https peers are asked over TLS (dial: --peer-* files). */
export async function discoverClusterId(
  peerUrls: readonly string[],
  self: { id: number; name: string; peerUrls: readonly string[] },
  dial: DialCredentials = PLAINTEXT_DIAL,
): Promise<number> {
  const api = loadEtcdApi();
  const failures: string[] = [];
  for (let round = 0; round < DISCOVERY_ROUNDS_MAX; round++) {
    for (const url of peerUrls) {
      try {
        return await askClusterId(api, url, self, dial);
      } catch (e) {
        failures.push(`${url}: ${(e as Error).message}`);
      }
    }
    await new Promise((r) => setTimeout(r, 500 * (round + 1)));
  }
  throw new JoinError(`fulcrum: could not learn the cluster id from any member of --initial-cluster (${failures.slice(-peerUrls.length).join('; ')})`);
}

function askClusterId(
  api: ReturnType<typeof loadEtcdApi>,
  url: string,
  self: { id: number; name: string; peerUrls: readonly string[] },
  dial: DialCredentials,
): Promise<number> {
  const client = new api.fulcrum.raftpb.RaftTransport(grpcTarget(url), dial(url));
  const request = {
    from: { cluster_id: '0', member_id: String(self.id), name: self.name, peer_urls: [...self.peerUrls], version: '', protocol_version: PEER_PROTOCOL_VERSION },
    to_member_id: '0',
  };
  return new Promise<number>((resolve, reject) => {
    client.Handshake(request as never, new grpc.Metadata(), { deadline: Date.now() + DISCOVERY_TIMEOUT_MS }, ((err: grpc.ServiceError | null, res?: { member: { cluster_id: string } | null }) => {
      client.close();
      const id = Number(res?.member?.cluster_id ?? 0);
      if (err) reject(err);
      else if (!Number.isSafeInteger(id) || id <= 0) reject(new Error(`answered without a cluster id`));
      else resolve(id);
    }) as never);
  });
}
