// member list/add/remove/promote, endpoint status/health, snapshot save: the operator's commands.
import { createHash } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Member, MemberAddResponse, MembersResponse, SnapshotResponse } from '../../proto/index.js';
import type { Client, MemberStatus } from '../index.js';
import { type Ctx, CtlError, runStream, UsageError, type Register } from './context.js';
import { hexId, humanBytes, renderTable } from './format.js';
import { parseHexId } from './txn-parse.js';

/** etcdctl endpoint health reads this key: any linearizable read proves a quorum and a leader. */
const HEALTH_KEY = 'health';
/** The trailer every snapshot stream ends with (docs/backup.md): SHA-256 of everything before it. */
const SNAPSHOT_CHECKSUM_BYTES = 32;

export function registerClusterCommands(program: Command, register: Register): void {
  const member = program.command('member').description('list and change the members of the cluster');
  register(member.command('list').description('every member, with its id (hex), name and URLs'), (ctx) => memberList(ctx));
  register(
    member
      .command('add')
      .description('add a member (start it afterwards with --initial-cluster-state existing)')
      .argument('<name>', 'the new member\'s --name')
      .requiredOption('--peer-urls <urls>', 'its peer URLs, comma-separated')
      .option('--learner', 'add it as a learner (a non-voting member, promoted later)'),
    (ctx, name, flags) => memberAdd(ctx, name as string, flags as { peerUrls: string; learner?: boolean }),
  );
  register(member.command('remove').description('remove a member').argument('<id>', 'hex'), (ctx, id) => memberRemove(ctx, id as string));
  register(member.command('promote').description('promote a learner that has caught up to a voting member').argument('<id>', 'hex'), (ctx, id) => memberPromote(ctx, id as string));

  const endpoint = program.command('endpoint').description('the state of each endpoint given with --endpoints');
  register(endpoint.command('status').description('version, leader, Raft term and index, size of each endpoint'), (ctx) => endpointStatus(ctx));
  register(endpoint.command('health').description('whether each endpoint serves a linearizable read'), (ctx) => endpointHealth(ctx));

  const snapshot = program.command('snapshot').description('back up the state of a member');
  register(
    snapshot.command('save').description('stream a snapshot of one member to a file (restore with `fulcrum snapshot restore`)').argument('<file>'),
    (ctx, file) => snapshotSave(ctx, file as string),
  );
}

// ---- members

function memberJson(m: Member): Record<string, unknown> {
  return { id: hexId(m.ID), name: m.name, peerURLs: m.peerURLs, clientURLs: m.clientURLs, isLearner: m.isLearner };
}

/** Started members by name, then the unstarted ones (no name yet) by id: a stable order to read and diff. */
function byName(members: Member[]): Member[] {
  const rank = (m: Member): string => `${m.name === '' ? 1 : 0}\u0000${m.name}\u0000${BigInt(m.ID).toString(16).padStart(16, '0')}`;
  return [...members].sort((a, b) => (rank(a) < rank(b) ? -1 : rank(a) > rank(b) ? 1 : 0));
}

function printMembers(ctx: Ctx, members: Member[]): void {
  // A member added but not yet started has no name and no client URLs: etcd calls it "unstarted".
  const rows = byName(members).map((m) => [hexId(m.ID), m.name === '' ? 'unstarted' : 'started', m.name, m.peerURLs.join(','), m.clientURLs.join(','), String(m.isLearner)]);
  if (ctx.format === 'simple') ctx.io.out(rows.map((r) => r.join(', ') + '\n').join(''));
  else ctx.io.out(renderTable(['ID', 'STATUS', 'NAME', 'PEER ADDRS', 'CLIENT ADDRS', 'IS LEARNER'], rows));
}

async function memberList(ctx: Ctx): Promise<void> {
  const r = await ctx.kv.unary<MembersResponse>('read', 'member list', (s, md, co, cb) => s.cluster.MemberList({ linearizable: true }, md, co, cb), ctx.call);
  if (ctx.format === 'json') ctx.json({ clusterId: hexId(r.header?.cluster_id ?? '0'), members: byName(r.members).map(memberJson) });
  else printMembers(ctx, r.members);
}

async function memberAdd(ctx: Ctx, name: string, flags: { peerUrls: string; learner?: boolean }): Promise<void> {
  const peerURLs = flags.peerUrls.split(',').map((u) => u.trim()).filter((u) => u !== '');
  for (const u of peerURLs) if (!/^https?:\/\/[^/\s]+:\d+\/?$/.test(u)) throw new UsageError(`--peer-urls: want http://host:port, got ${JSON.stringify(u)}`);
  if (peerURLs.length === 0) throw new UsageError('--peer-urls needs at least one URL');
  // Not retried blindly: a second MemberAdd of the same URLs would be refused as a duplicate, which is clearer
  // to read than a second member.
  const r = await ctx.kv.unary<MemberAddResponse>('write', 'member add', (s, md, co, cb) => s.cluster.MemberAdd({ peerURLs, isLearner: flags.learner ?? false }, md, co, cb), ctx.call);
  const added = r.member!;
  // The started members as they are, then the new one: the --initial-cluster the new member must start with.
  const others = r.members.filter((m) => m.ID !== added.ID && m.name !== '').map((m) => `${m.name}=${m.peerURLs[0]}`);
  const initialCluster = [...others, `${name}=${peerURLs[0]}`];
  if (ctx.format === 'json') {
    ctx.json({ member: memberJson(added), members: r.members.map(memberJson), initialCluster: initialCluster.join(',') });
    return;
  }
  if (ctx.format === 'simple') {
    ctx.io.out(`${hexId(added.ID)}\n`); // the id alone, for scripts: NEW=$(fulcrumctl member add ... -w simple)
    return;
  }
  ctx.io.out(`Member ${hexId(added.ID)} added to cluster${added.isLearner ? ' as a learner' : ''}\n\n`);
  ctx.io.out('Start it with:\n');
  ctx.io.out(`  fulcrum --name ${name} --initial-advertise-peer-urls ${peerURLs.join(',')} --initial-cluster ${initialCluster.join(',')} --initial-cluster-state existing\n`);
}

async function memberRemove(ctx: Ctx, idText: string): Promise<void> {
  const id = parseHexId('member', idText);
  await ctx.kv.unary<MembersResponse>('write', 'member remove', (s, md, co, cb) => s.cluster.MemberRemove({ ID: String(id) }, md, co, cb), ctx.call);
  if (ctx.format === 'json') ctx.json({ id: hexId(id), removed: true });
  else ctx.io.out(`Member ${hexId(id)} removed from cluster\n`);
}

async function memberPromote(ctx: Ctx, idText: string): Promise<void> {
  const id = parseHexId('member', idText);
  // Promote is safe to repeat (promoting a voter again is refused, not applied twice): retry it like a read, so a
  // follower's NOT_LEADER moves the call on until it reaches the leader, which alone knows if the learner caught up.
  const r = await ctx.kv.unary<MembersResponse>('idempotent', 'member promote', (s, md, co, cb) => s.cluster.MemberPromote({ ID: String(id) }, md, co, cb), ctx.call);
  if (ctx.format === 'json') ctx.json({ id: hexId(id), promoted: true, members: r.members.map(memberJson) });
  else ctx.io.out(`Member ${hexId(id)} promoted in cluster\n`);
}

// ---- endpoints

/** Each endpoint asked on its own (a failing one is a row with its error, not a missing row). */
async function eachEndpoint<T>(ctx: Ctx, ask: (client: Client, endpoint: string) => Promise<T>): Promise<Array<{ endpoint: string; value?: T; error?: string }>> {
  return Promise.all(
    ctx.globals.endpoints.map(async (endpoint) => {
      try {
        return { endpoint, value: await ask(ctx.clientFor(endpoint), endpoint) };
      } catch (e) {
        return { endpoint, error: oneLine(e) };
      }
    }),
  );
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/^fulcrum client: /, '').replace(/\s*\n\s*/g, ' ');
}

function failIfAny(results: Array<{ endpoint: string; error?: string }>, what: string): void {
  const failed = results.filter((r) => r.error !== undefined);
  if (failed.length > 0) throw new CtlError('UNAVAILABLE', `${failed.length} of ${results.length} endpoints ${what}: ${failed.map((f) => `${f.endpoint} (${f.error})`).join('; ')}`);
}

async function endpointStatus(ctx: Ctx): Promise<void> {
  const results = await eachEndpoint(ctx, async (client, endpoint): Promise<MemberStatus> => {
    const [s] = await client.memberStatuses({ timeoutMs: ctx.globals.commandTimeoutMs });
    if (s === undefined) throw new CtlError('UNAVAILABLE', `cannot reach ${endpoint}`);
    return s;
  });
  if (ctx.format === 'json') {
    ctx.json({ endpoints: results.map((r) => (r.value === undefined ? { endpoint: r.endpoint, error: r.error } : statusJson(r.value))) });
  } else {
    const rows = results.map((r) => (r.value === undefined ? [r.endpoint, '', '', '', '', '', '', '', '', r.error ?? ''] : statusRow(r.value)));
    const headers = ['ENDPOINT', 'ID', 'VERSION', 'DB SIZE', 'IS LEADER', 'IS LEARNER', 'RAFT TERM', 'RAFT INDEX', 'RAFT APPLIED INDEX', 'ERRORS'];
    ctx.io.out(ctx.format === 'simple' ? rows.map((r) => r.join(', ') + '\n').join('') : renderTable(headers, rows));
  }
  failIfAny(results, 'did not answer');
}

function statusRow(s: MemberStatus): string[] {
  return [s.endpoint, hexId(s.memberId), s.version, humanBytes(s.dbSizeBytes), String(s.memberId === s.leaderId), String(s.isLearner), String(s.raftTerm), String(s.raftIndex), String(s.raftAppliedIndex), s.errors.join(', ')];
}

function statusJson(s: MemberStatus): Record<string, unknown> {
  return {
    endpoint: s.endpoint,
    memberId: hexId(s.memberId),
    leaderId: hexId(s.leaderId),
    isLeader: s.memberId === s.leaderId,
    isLearner: s.isLearner,
    version: s.version,
    dbSizeBytes: s.dbSizeBytes,
    raftTerm: s.raftTerm,
    raftIndex: s.raftIndex,
    raftAppliedIndex: s.raftAppliedIndex,
    revision: s.revision,
    errors: s.errors,
  };
}

async function endpointHealth(ctx: Ctx): Promise<void> {
  const results = await eachEndpoint(ctx, async (client) => {
    const started = performance.now();
    await client.get(HEALTH_KEY, { timeoutMs: ctx.globals.commandTimeoutMs, signal: ctx.io.interrupt });
    return performance.now() - started;
  });
  if (ctx.format === 'json') {
    ctx.json({ endpoints: results.map((r) => ({ endpoint: r.endpoint, health: r.error === undefined, tookMs: r.value === undefined ? null : Math.round(r.value * 10) / 10, error: r.error ?? null })) });
  } else {
    const rows = results.map((r) => [r.endpoint, String(r.error === undefined), r.value === undefined ? '' : `${r.value.toFixed(1)}ms`, r.error ?? '']);
    ctx.io.out(ctx.format === 'simple' ? rows.map((r) => `${r[0]} is ${r[1] === 'true' ? `healthy: took ${r[2]}` : `unhealthy: ${r[3]}`}\n`).join('') : renderTable(['ENDPOINT', 'HEALTH', 'TOOK', 'ERROR'], rows));
  }
  failIfAny(results, 'are unhealthy');
}

// ---- snapshot

/**
 * Stream Maintenance.Snapshot from ONE member into `<file>.part`, check the SHA-256 trailer, then rename: a file
 * named <file> is always a whole, checked snapshot. A retry (another attempt after a broken stream) starts the
 * part file over.
 */
async function snapshotSave(ctx: Ctx, file: string): Promise<void> {
  if (ctx.globals.endpoints.length !== 1) throw new UsageError(`snapshot save takes exactly one endpoint (a snapshot is one member's state), got ${ctx.globals.endpoints.length}`);
  const part = `${file}.part`;
  try {
    const { bytes, revision } = await streamSnapshotTo(ctx, part);
    await checkSnapshot(part, bytes, createHash('sha256'));
    await rename(part, file);
    if (ctx.format === 'json') ctx.json({ file, bytes, revision });
    else ctx.io.out(`Snapshot saved at ${file} (${humanBytes(bytes)}, revision ${revision})\n`);
  } catch (e) {
    // Interrupted, broken or damaged: leave nothing half-written behind.
    await rm(part, { force: true });
    throw e;
  }
}

/** The stream into `path`, written in order at each blob's offset; resolves with its size and revision. */
async function streamSnapshotTo(ctx: Ctx, path: string): Promise<{ bytes: number; revision: number }> {
  const out = await open(path, 'w');
  let bytes = 0;
  let revision = 0;
  let writes = Promise.resolve();
  const queue = (step: () => Promise<unknown>): void => {
    writes = writes.then(step).then(() => undefined);
    writes.catch(() => undefined); // a failed write surfaces at the final await below, not as an unhandled rejection
  };
  try {
    await runStream<SnapshotResponse>(
      ctx.kv,
      'snapshot',
      (s, md) => {
        queue(() => out.truncate(0)); // another attempt starts the file over
        bytes = 0;
        return s.maintenance.Snapshot({}, md);
      },
      (m) => {
        if (m.header !== null) revision = Number(m.header.revision);
        const blob = m.blob;
        const at = bytes;
        bytes += blob.byteLength;
        queue(() => out.write(blob, 0, blob.byteLength, at));
      },
      { signal: ctx.io.interrupt, timeoutMs: ctx.globals.commandTimeoutMs },
    );
    await writes;
    await out.sync();
    return { bytes, revision };
  } finally {
    await out.close();
  }
}

async function checkSnapshot(path: string, bytes: number, hash: ReturnType<typeof createHash>): Promise<void> {
  if (bytes < SNAPSHOT_CHECKSUM_BYTES) throw new CtlError('CORRUPT', `snapshot stream too short (${bytes} bytes)`);
  const f = await open(path, 'r');
  try {
    const body = bytes - SNAPSHOT_CHECKSUM_BYTES;
    const buf = Buffer.alloc(64 * 1024);
    for (let at = 0; at < body; ) {
      const { bytesRead } = await f.read(buf, 0, Math.min(buf.length, body - at), at);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      at += bytesRead;
    }
    const trailer = Buffer.alloc(SNAPSHOT_CHECKSUM_BYTES);
    await f.read(trailer, 0, SNAPSHOT_CHECKSUM_BYTES, body);
    if (!hash.digest().equals(trailer)) throw new CtlError('CORRUPT', 'snapshot checksum mismatch: the stream was damaged; try again');
  } finally {
    await f.close();
  }
}
