// etcd's Cluster service: MemberList, MemberAdd, MemberRemove, MemberUpdate, MemberPromote over the replicated
// member registry. Membership changes are Raft conf changes (Member.changeMembership resolves once applied here);
// a peer URL update is an ordinary replicated command.
//
// etcd's --strict-reconfig-check (on by default) is kept: a change that would leave fewer started voters than a
// quorum is refused with "re-configuration failed due to not enough started members". A member counts as started
// once it has published its name; the answering member is started by definition (it is serving this call).
import * as grpc from '@grpc/grpc-js';
import { ConfChangeType, Role } from '../../raft/types.js';
import { loadEtcdApi } from '../../proto/index.js';
import type { ClusterMethods, Encodable, Handlers, Member as WireMember } from '../../proto/index.js';
import type { MemberRecord } from '../../storage/state-machine.js';
import { freshMemberId } from '../ids.js';
import { PLAINTEXT_DIAL } from '../tls.js';
import { grpcTarget } from '../transport/grpc-util.js';
import { authorize } from './authz.js';
import type { ApiContext } from './context.js';
import { apiError } from './errors.js';
import { int64 } from './header.js';
import { proposeWithin, readBarrier, readHeader, unary } from './kv.js';

/** A learner may be promoted once its log matches at least this share of the leader's (etcd's readyPercent). */
export const LEARNER_READY_RATIO = 0.9;
/** etcd's types.NewURLs: a scheme it serves and an explicit host:port, nothing after it. */
const PEER_URL_PATTERN = /^(https?|unixs?):\/\/(\[[0-9a-fA-F:.]+\]|[^/:@?#[\]\s]+):(\d{1,5})$/;

export function createClusterService(ctx: ApiContext): Handlers<ClusterMethods> {
  const answer = (revision = ctx.member.stateMachine.revision): { header: ReturnType<typeof readHeader>; members: Encodable<WireMember>[] } => ({
    header: readHeader(ctx, revision),
    members: ctx.member.members().map(toWireMember),
  });
  return {
    MemberList: unary(ctx, 'MemberList', async (call) => {
      if (call.request.linearizable) await readBarrier(ctx, call);
      return answer();
    }),

    MemberAdd: unary(ctx, 'MemberAdd', async (call) => {
      authorize(ctx, call, 'admin');
      const peerUrls = checkPeerUrls(call.request.peerURLs);
      checkUrlsUnused(ctx.member.members(), peerUrls, undefined);
      const id = freshMemberId(peerUrls, ctx.member.options.clusterToken, new Set(ctx.member.members().map((m) => m.id)));
      const isLearner = call.request.isLearner;
      if (!isLearner && !readyToAddVoter(ctx)) throw apiError('NOT_ENOUGH_STARTED');
      await ctx.member.changeMembership(isLearner ? ConfChangeType.AddLearner : ConfChangeType.AddVoter, id, { peerUrls });
      const added = ctx.member.members().find((m) => m.id === id) ?? { id, name: '', peerUrls, clientUrls: [], isLearner };
      return { ...answer(), member: toWireMember(added) };
    }),

    MemberRemove: unary(ctx, 'MemberRemove', async (call) => {
      authorize(ctx, call, 'admin');
      const target = existingMember(ctx, call.request.ID);
      if (!target.isLearner && !readyToRemoveVoter(ctx, target.id)) throw apiError('NOT_ENOUGH_STARTED');
      await ctx.member.changeMembership(ConfChangeType.RemoveNode, target.id);
      return answer();
    }),

    MemberUpdate: unary(ctx, 'MemberUpdate', async (call) => {
      const auth = authorize(ctx, call, 'admin');
      const target = existingMember(ctx, call.request.ID);
      const peerUrls = checkPeerUrls(call.request.peerURLs);
      checkUrlsUnused(ctx.member.members(), peerUrls, target.id);
      const r = await proposeWithin(ctx, call, { memberUpdate: { id: target.id, peerUrls } }, { auth });
      return answer(r.revision);
    }),

    MemberPromote: unary(ctx, 'MemberPromote', async (call) => {
      authorize(ctx, call, 'admin');
      const target = existingMember(ctx, call.request.ID);
      if (!target.isLearner) throw apiError('NOT_LEARNER');
      // Only the leader knows how far the learner has caught up: elsewhere, ask the leader (as etcd does).
      if (!ctx.member.isLeader() && !call.metadata.get(PROMOTE_FORWARDED).length) {
        return forwardPromote(ctx, call.request.ID, remainingDeadline(call.getDeadline()), call.metadata.get('token')[0]);
      }
      checkLearnerReady(ctx, target.id);
      if (!readyToPromote(ctx, target.id)) throw apiError('NOT_ENOUGH_STARTED');
      await ctx.member.changeMembership(ConfChangeType.AddVoter, target.id);
      return answer();
    }),
  };
}

/** Marks a promote forwarded from a follower, so a leader change mid-flight cannot make it bounce around. */
const PROMOTE_FORWARDED = 'fulcrum-promote-forwarded';
const PROMOTE_FORWARD_TIMEOUT_MS = 10_000;

function remainingDeadline(d: grpc.Deadline): number {
  const at = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(at) && at > 0 ? Math.max(1, at - Date.now()) : PROMOTE_FORWARD_TIMEOUT_MS;
}

/** `token`: the caller's auth token, so the leader checks the same caller. */
async function forwardPromote(ctx: ApiContext, wireId: string, timeoutMs: number, token: grpc.MetadataValue | undefined): Promise<PromoteAnswer> {
  const leader = ctx.member.members().find((m) => m.id === ctx.member.leaderId());
  const url = leader?.clientUrls[0];
  if (url === undefined) throw apiError('NO_LEADER');
  const client = new (loadEtcdApi().etcdserverpb.Cluster)(grpcTarget(url), (ctx.dial ?? PLAINTEXT_DIAL)(url));
  const md = new grpc.Metadata();
  md.set(PROMOTE_FORWARDED, '1');
  if (token !== undefined) md.set('token', token);
  try {
    return await new Promise((resolve, reject) =>
      client.MemberPromote({ ID: wireId as never }, md, { deadline: Date.now() + Math.min(timeoutMs, PROMOTE_FORWARD_TIMEOUT_MS) }, ((err: grpc.ServiceError | null, res?: unknown) =>
        err ? reject(err) : resolve(res as PromoteAnswer)) as never),
    );
  } finally {
    client.close();
  }
}

/** What a forwarded promote answers: the leader's MemberPromoteResponse, passed through as it came. */
type PromoteAnswer = { members: Encodable<WireMember>[] };

function toWireMember(m: MemberRecord): Encodable<WireMember> {
  return { ID: int64(m.id), name: m.name, peerURLs: [...m.peerUrls], clientURLs: [...m.clientUrls], isLearner: m.isLearner };
}

/** Member ids are below 2^52 (node/ids.ts), so a larger wire id names nobody. */
function existingMember(ctx: ApiContext, wireId: string): MemberRecord {
  const id = BigInt(wireId);
  const found = id <= BigInt(Number.MAX_SAFE_INTEGER) ? ctx.member.members().find((m) => m.id === Number(id)) : undefined;
  if (found === undefined) throw apiError('MEMBER_NOT_FOUND');
  return found;
}

function checkPeerUrls(urls: readonly string[]): string[] {
  if (urls.length === 0 || !urls.every(isValidPeerUrl)) throw apiError('MEMBER_BAD_URLS');
  return [...urls];
}

function isValidPeerUrl(u: string): boolean {
  const m = PEER_URL_PATTERN.exec(u);
  return m !== null && Number(m[3]) <= 65_535;
}

/** No two members share a peer URL (etcd's ErrPeerURLexists); `self` may keep its own. */
function checkUrlsUnused(members: readonly MemberRecord[], urls: readonly string[], self: number | undefined): void {
  const taken = new Set(members.filter((m) => m.id !== self).flatMap((m) => m.peerUrls));
  if (urls.some((u) => taken.has(u))) throw apiError('PEER_URL_EXISTS');
}

// ---------------------------------------------------------------------------------------------------------
// Strict reconfiguration checks (etcd's RaftCluster.IsReadyTo...)
// ---------------------------------------------------------------------------------------------------------

function isStarted(ctx: ApiContext, m: MemberRecord): boolean {
  return m.name !== '' || m.id === ctx.member.id;
}

function voters(ctx: ApiContext): MemberRecord[] {
  return ctx.member.members().filter((m) => !m.isLearner);
}

function quorum(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** The new voter is not started yet; etcd lets a one-member cluster grow to two regardless (restoring data). */
function readyToAddVoter(ctx: ApiContext): boolean {
  const vs = voters(ctx);
  const started = vs.filter((m) => isStarted(ctx, m)).length;
  if (started === 1 && vs.length === 1) return true;
  return started >= quorum(vs.length + 1);
}

function readyToRemoveVoter(ctx: ApiContext, id: number): boolean {
  const rest = voters(ctx).filter((m) => m.id !== id);
  return rest.filter((m) => isStarted(ctx, m)).length >= quorum(rest.length);
}

function readyToPromote(ctx: ApiContext, id: number): boolean {
  const vs = voters(ctx);
  const started = vs.filter((m) => isStarted(ctx, m)).length + (ctx.member.members().some((m) => m.id === id && m.name !== '') ? 1 : 0);
  return started >= quorum(vs.length + 1);
}

/**
 * etcd's isLearnerReady: only the leader knows how far a learner's log matches, so a follower answers NOT_LEADER
 * (etcd forwards the promote to its leader over its peer HTTP API; Fulcrum's peer protocol has no such call, and a
 * client retries on the leader). A learner whose match is below 90% of the leader's is not ready.
 */
function checkLearnerReady(ctx: ApiContext, id: number): void {
  const s = ctx.member.node.status();
  if (s.softState.role !== Role.Leader || s.progress === undefined) throw apiError('NOT_LEADER');
  const learner = s.progress.get(id);
  const leader = s.progress.get(s.id);
  if (learner === undefined || leader === undefined || learner.match < leader.match * LEARNER_READY_RATIO) throw apiError('LEARNER_NOT_READY');
}
