// Fulcrum's own client service (proto/fulcrum/v1/fulcrum.proto): RevisionAt, for reads "as of" a wall-clock time,
// and ServerInfo, one call that tells tooling and the client's endpoint selection who a member is.
import type { Encodable, FulcrumMethods, Handlers, ServerInfoResponse } from '../../proto/index.js';
import { Role } from '../../raft/types.js';
import { hlcMax, hlcOf, HLC_WALL_MS_MAX, type RevisionTimeIndex } from '../../storage/hlc/index.js';
import type { ApiContext } from './context.js';
import { toNumber } from './convert.js';
import { apiError, isCodedError } from './errors.js';
import { int64 } from './header.js';
import { readBarrier, readHeader, unary } from './kv.js';
import { ETCD_API_VERSION, FULCRUM_VERSION } from './maintenance.js';

/** Capabilities a client may rely on without probing (ServerInfo.features). */
export const FEATURES: readonly string[] = Object.freeze(['revision-at', 'exactly-once', 'hlc', 'hasleader']);

export function createFulcrumService(ctx: ApiContext): Handlers<FulcrumMethods> {
  return {
    RevisionAt: unary(ctx, 'RevisionAt', async (call) => {
      const wallMs = toNumber(call.request.wall_time_ms);
      if (wallMs < 0) throw apiError('INVALID_ARGUMENT', 'fulcrum: wall_time_ms must not be negative');
      if (!call.request.serializable) await readBarrier(ctx, call);
      const index = ctx.member.stateMachine.revisionTime;
      const revision = revisionAt(index, Math.min(wallMs, HLC_WALL_MS_MAX));
      return { header: readHeader(ctx, ctx.member.stateMachine.revision), revision: int64(revision), hlc: int64(index.hlcOfRevision(revision) ?? 0n) };
    }),

    ServerInfo: unary(ctx, 'ServerInfo', async () => serverInfo(ctx)),
  };
}

/**
 * The index answers COMPACTED (mapped to etcd's OUT_OF_RANGE message) or BEFORE_HISTORY. errors.ts has no code
 * for the second; STALE_SEQUENCE is the one code there that gives FAILED_PRECONDITION with our own message.
 */
function revisionAt(index: RevisionTimeIndex, wallMs: number): number {
  try {
    return index.revisionAt(wallMs);
  } catch (e) {
    if (isCodedError(e) && e.code === 'BEFORE_HISTORY') throw apiError('STALE_SEQUENCE', 'fulcrum: wall time is before the first recorded revision');
    throw e;
  }
}

function roleOf(ctx: ApiContext): string {
  const s = ctx.member.node.status();
  if (s.confState.learners.includes(ctx.member.id)) return 'learner';
  return s.softState.role satisfies Role;
}

async function serverInfo(ctx: ApiContext): Promise<Encodable<ServerInfoResponse>> {
  const m = ctx.member;
  const s = m.status();
  const record = m.members().find((r) => r.id === m.id);
  // The member's clock is private; its reading is at least the physical time and the newest HLC applied.
  const hlc = hlcMax(hlcOf(Math.min(Date.now(), HLC_WALL_MS_MAX)), m.stateMachine.revisionTime.last()?.hlc ?? 0n);
  return {
    header: readHeader(ctx, s.revision),
    name: record?.name || ctx.self.name,
    version: FULCRUM_VERSION,
    etcd_api_version: ETCD_API_VERSION,
    leader: int64(s.softState.lead),
    role: roleOf(ctx),
    raft_term: int64(s.hardState.term),
    raft_index: int64(s.commit),
    raft_applied_index: int64(s.appliedState),
    hlc: int64(hlc),
    peer_urls: record?.peerUrls.length ? [...record.peerUrls] : [...ctx.self.peerUrls],
    client_urls: record?.clientUrls.length ? [...record.clientUrls] : [...ctx.self.clientUrls],
    features: [...FEATURES],
    alarms: m.stateMachine.activeAlarms(),
  };
}
