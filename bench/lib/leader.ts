// Leader discovery over the etcd v3 API: Maintenance.Status on every endpoint; the leader is the endpoint whose
// own member id (header.member_id) equals the leader id the members report. Works against etcd and Fulcrum.
import * as grpc from '@grpc/grpc-js';
import { loadEtcdClientApi, type StatusResponse } from '../../proto/index.js';
import { errorKey, separateChannelOptions, unary } from './clients.js';

export interface EndpointStatus {
  readonly endpoint: string;
  readonly memberId: string;
  readonly leaderId: string;
  readonly raftTerm: string;
  readonly version: string;
}

export interface LeaderInfo {
  readonly endpoint: string;
  readonly memberId: string;
  readonly statuses: readonly EndpointStatus[];
  /** Endpoints that did not answer Status, with the reason. */
  readonly unreachable: readonly { endpoint: string; error: string }[];
}

export async function endpointStatus(endpoint: string, timeoutMs: number): Promise<EndpointStatus> {
  const api = loadEtcdClientApi();
  const client = new api.etcdserverpb.Maintenance(endpoint, grpc.credentials.createInsecure(), separateChannelOptions(-1));
  try {
    const s: StatusResponse = await unary(client.Status.bind(client), {}, timeoutMs);
    return { endpoint, memberId: s.header?.member_id ?? '0', leaderId: s.leader, raftTerm: s.raftTerm, version: s.version };
  } finally {
    client.close();
  }
}

/**
 * Finds the leader's client endpoint, retrying until `timeoutMs` (a cluster that just started may still be
 * electing). Throws if no endpoint listed is the leader the members agree on.
 */
export async function findLeader(endpoints: readonly string[], timeoutMs: number): Promise<LeaderInfo> {
  const deadline = Date.now() + timeoutMs;
  let lastProblem = 'no answer yet';
  while (true) {
    const settled = await Promise.allSettled(endpoints.map((e) => endpointStatus(e, Math.min(2_000, timeoutMs))));
    const statuses: EndpointStatus[] = [];
    const unreachable: { endpoint: string; error: string }[] = [];
    settled.forEach((r, i) => {
      if (r.status === 'fulfilled') statuses.push(r.value);
      else unreachable.push({ endpoint: endpoints[i]!, error: errorKey(r.reason) });
    });
    // The highest term's view of the leader wins; '0' means "no leader known".
    const known = statuses.filter((s) => s.leaderId !== '0').sort((a, b) => (BigInt(b.raftTerm) > BigInt(a.raftTerm) ? 1 : -1));
    const leaderId = known[0]?.leaderId;
    const leader = statuses.find((s) => s.memberId === leaderId);
    if (leader !== undefined) return { endpoint: leader.endpoint, memberId: leader.memberId, statuses, unreachable };
    lastProblem =
      leaderId === undefined
        ? `no member knows a leader (${statuses.length}/${endpoints.length} answered${unreachable.map((u) => `; ${u.endpoint}: ${u.error}`).join('')})`
        : `leader ${leaderId} is not among the endpoints given`;
    if (Date.now() >= deadline) throw new Error(`findLeader: ${lastProblem}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
