// etcd's Maintenance service: Status, Hash, HashKV, Alarm, Snapshot, Defragment, MoveLeader (Downgrade is not
// offered: a Fulcrum cluster runs one version).
//
// Snapshot stream format (see SNAPSHOT_MAGIC below and docs/api.md): a small header, the state machine image of
// storage/state-machine.ts (stateMachineImage: every replicated backend pair in key order), zero padding, and a
// SHA-256 in the last message (remaining_bytes 0), the way etcd appends a SHA-256 to its bolt file.
// snapshotImage() takes the image back out; installStateMachineImage loads it.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { AlarmMember, AlarmType as WireAlarmType, Encodable, Handlers, MaintenanceMethods, SnapshotResponse, EmptyRequest, StatusResponse } from '../../proto/index.js';
import { Role } from '../../raft/types.js';
import type { Backend } from '../../storage/backend.js';
import type { AlarmType } from '../../storage/command.js';
import { stateMachineImage } from '../../storage/state-machine.js';
import type { Member } from '../member.js';
import type { ApiContext } from './context.js';
import { toNumber } from './convert.js';
import { apiError } from './errors.js';
import { int64, responseHeader } from './header.js';
import { authorize, authorizeMaintenance, authorizeOp } from './authz.js';
import { checkLeaderRequirement, failure, proposeWithin, readHeader, remainingMs, unary, type SurfaceCall } from './kv.js';

/** The etcd API version Fulcrum speaks, and Fulcrum's own version, as Status reports them ("3.5.0+fulcrum.0.1.0"). */
export const ETCD_API_VERSION = '3.5.0';
export const FULCRUM_VERSION = '0.1.0';
export const STATUS_VERSION = `${ETCD_API_VERSION}+fulcrum.${FULCRUM_VERSION}`;
/** Bytes of image per SnapshotResponse (etcd sends 32 KiB blobs). */
export const SNAPSHOT_CHUNK_BYTES = 32 * 1024;
const SNAPSHOT_CHECKSUM_BYTES = 32;
/** How often MoveLeader looks whether the transferee has taken over. */
const MOVE_LEADER_POLL_MS = 10;

const ALARM_TYPES: readonly AlarmType[] = ['NOSPACE', 'CORRUPT'];

export function createMaintenanceService(ctx: ApiContext): Handlers<MaintenanceMethods> {
  return {
    Status: unary(ctx, 'Status', async () => status(ctx)),

    // etcd hashes its whole backend; Fulcrum's equivalent is the hash of every live kv row (HashKV at 0).
    Hash: unary(ctx, 'Hash', async (call) => {
      authorizeMaintenance(ctx, call);
      const h = await ctx.member.stateMachine.mvcc.hashKV(0);
      return { header: readHeader(ctx, h.revision), hash: h.hash };
    }),

    HashKV: unary(ctx, 'HashKV', async (call) => {
      authorizeMaintenance(ctx, call);
      const h = await ctx.member.stateMachine.mvcc.hashKV(toNumber(call.request.revision));
      return { header: readHeader(ctx, h.revision), hash: h.hash, compact_revision: int64(h.compactRevision), hash_revision: int64(h.hashRevision) };
    }),

    Alarm: unary(ctx, 'Alarm', async (call) => {
      const { action, alarm, memberID } = call.request;
      if (action === 'GET') return { header: readHeader(ctx, ctx.member.stateMachine.revision), alarms: listAlarms(ctx, alarm) };
      if (action !== 'ACTIVATE' && action !== 'DEACTIVATE') throw apiError('INVALID_ARGUMENT', `etcdserver: unknown alarm action ${String(action)}`);
      // etcd's applier ignores activating or deactivating NONE without an error.
      if (alarm === 'NONE') return { header: readHeader(ctx, ctx.member.stateMachine.revision), alarms: [] };
      if (!isAlarmType(alarm)) throw apiError('INVALID_ARGUMENT', `etcdserver: unknown alarm type ${String(alarm)}`);
      const op = { alarm: { action: action === 'ACTIVATE' ? ('activate' as const) : ('deactivate' as const), alarm } };
      const auth = authorizeOp(ctx, call, op); // raising or clearing an alarm is cluster administration (root)
      const wasActive = ctx.member.stateMachine.activeAlarms().includes(alarm);
      const r = await proposeWithin(ctx, call, op, { auth });
      // etcd answers the alarm it changed; deactivating one that was not raised answers nothing.
      const changed = action === 'ACTIVATE' || wasActive;
      return { header: responseHeader(ctx.member, r.revision, r.hlc), alarms: changed ? [{ memberID, alarm }] : [] };
    }),

    // LevelDB compacts on its own; there is nothing to rewrite as bolt's defragmentation does.
    // LevelDB's manual compaction stands in for bolt's rewrite: dead pairs (compacted revisions, overwritten
    // metadata) leave the files and the space goes back to the file system. Unlike etcd's defrag it does not stop
    // the member: reads and writes go on while it runs.
    Defragment: unary(ctx, 'Defragment', async (call) => {
      authorizeMaintenance(ctx, call);
      await ctx.member.backend.compact();
      return { header: readHeader(ctx, ctx.member.stateMachine.revision) };
    }),

    Snapshot: (call) => {
      void streamSnapshot(ctx, call).catch((e: unknown) => {
        // grpc-js turns an 'error' event on a server stream into the call's status.
        if (!call.cancelled) call.emit('error', failure(ctx, 'Snapshot', e));
      });
    },

    MoveLeader: unary(ctx, 'MoveLeader', async (call) => {
      authorize(ctx, call, 'admin'); // stricter than etcd 3.4, which lets any client move the leader
      await moveLeader(ctx, call, toNumber(call.request.targetID));
      return { header: readHeader(ctx, ctx.member.stateMachine.revision) };
    }),

    Downgrade: unary(ctx, 'Downgrade', async () => {
      throw apiError('NOT_IMPLEMENTED', 'fulcrum: downgrade is not supported');
    }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------------------

async function status(ctx: ApiContext): Promise<Encodable<StatusResponse>> {
  const m = ctx.member;
  const s = m.status();
  const dbSize = await dbSizeBytes(m);
  const errors: string[] = [];
  if (s.softState.lead === 0) errors.push('etcdserver: no leader');
  for (const a of listAlarms(ctx, 'NONE')) errors.push(`memberID:${a.memberID} alarm:${a.alarm} `);
  return {
    header: readHeader(ctx, s.revision),
    version: STATUS_VERSION,
    dbSize,
    dbSizeInUse: dbSize,
    leader: int64(s.softState.lead),
    raftIndex: int64(s.commit),
    raftTerm: int64(s.hardState.term),
    raftAppliedIndex: int64(s.appliedState),
    errors,
    isLearner: s.confState.learners.includes(m.id),
    storageVersion: ETCD_API_VERSION,
  };
}

/**
 * The state machine's LevelDB directory on disk, as etcd's dbSize is its bolt file. (Member keeps its Backend
 * private; Backend.sizeBytes() would be the same figure without listing files.)
 */
async function dbSizeBytes(m: Member): Promise<number> {
  const dir = join(m.options.dataDir, 'kv');
  let total = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (st?.isFile() === true) total += st.size;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------------------
// Alarms
// ---------------------------------------------------------------------------------------------------------

function isAlarmType(v: unknown): v is AlarmType {
  return (ALARM_TYPES as readonly unknown[]).includes(v);
}

/**
 * Fulcrum's alarms are cluster-wide (the state machine keeps a set, not etcd's member -> alarm map), so they are
 * listed under the answering member's id. `filter` NONE lists every alarm, as etcd's GET does.
 */
function listAlarms(ctx: ApiContext, filter: WireAlarmType | number): Encodable<AlarmMember>[] {
  return ctx.member.stateMachine
    .activeAlarms()
    .filter((a) => filter === 'NONE' || filter === a)
    .map((alarm) => ({ memberID: int64(ctx.member.id), alarm }));
}

// ---------------------------------------------------------------------------------------------------------
// Snapshot
// ---------------------------------------------------------------------------------------------------------


/**
 * The file a Snapshot stream carries, in order:
 *
 *   "FLCRSNP1" (8 bytes) | u64 BE image length | image | zero padding | SHA-256 of everything before (32 bytes)
 *
 * The padding makes the length before the checksum a multiple of 512: etcdctl's `snapshot save` accepts a file
 * only when size % 512 == 32 (it expects a bolt file of whole pages plus etcd's appended SHA-256).
 */
export const SNAPSHOT_MAGIC = Buffer.from('FLCRSNP1');
const SNAPSHOT_HEADER_BYTES = SNAPSHOT_MAGIC.byteLength + 8;
const SNAPSHOT_ALIGN_BYTES = 512;

function snapshotHeader(imageBytes: number): Buffer {
  const header = Buffer.alloc(SNAPSHOT_HEADER_BYTES);
  SNAPSHOT_MAGIC.copy(header);
  header.writeBigUInt64BE(BigInt(imageBytes), SNAPSHOT_MAGIC.byteLength);
  return header;
}

function paddingFor(imageBytes: number): number {
  return (SNAPSHOT_ALIGN_BYTES - ((SNAPSHOT_HEADER_BYTES + imageBytes) % SNAPSHOT_ALIGN_BYTES)) % SNAPSHOT_ALIGN_BYTES;
}

/** The state machine image inside a snapshot file (checks the magic, the length and the checksum). */
export function snapshotImage(file: Uint8Array): Uint8Array {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const body = buf.subarray(0, buf.byteLength - SNAPSHOT_CHECKSUM_BYTES);
  if (buf.byteLength < SNAPSHOT_HEADER_BYTES + SNAPSHOT_CHECKSUM_BYTES || !buf.subarray(0, SNAPSHOT_MAGIC.byteLength).equals(SNAPSHOT_MAGIC)) {
    throw new Error('fulcrum: not a Fulcrum snapshot file');
  }
  if (!createHash('sha256').update(body).digest().equals(buf.subarray(body.byteLength))) throw new Error('fulcrum: snapshot checksum mismatch');
  const imageBytes = Number(buf.readBigUInt64BE(SNAPSHOT_MAGIC.byteLength));
  if (SNAPSHOT_HEADER_BYTES + imageBytes + paddingFor(imageBytes) !== body.byteLength) throw new Error('fulcrum: snapshot length mismatch');
  return body.subarray(SNAPSHOT_HEADER_BYTES, SNAPSHOT_HEADER_BYTES + imageBytes);
}

/**
 * Write the image to a temporary file first: LevelDB's iterator gives one consistent point, memory stays at one
 * chunk, and the image's size is known before the first message (for the header and exact remaining_bytes).
 */
async function streamSnapshot(ctx: ApiContext, call: grpc.ServerWritableStream<EmptyRequest, Encodable<SnapshotResponse>>): Promise<void> {
  checkLeaderRequirement(ctx, call.metadata);
  authorizeMaintenance(ctx, call);
  const backend = ctx.member.backend;
  // Every write acknowledged before the call is in the image: applied batches may still be on their way to LevelDB.
  await ctx.member.stateMachine.settled();
  const header = readHeader(ctx, ctx.member.stateMachine.revision);
  const path = join(tmpdir(), `fulcrum-snapshot-${randomBytes(8).toString('hex')}`);
  try {
    const imageBytes = await writeImage(backend, path);
    const pad = paddingFor(imageBytes);
    let remaining = SNAPSHOT_HEADER_BYTES + imageBytes + pad + SNAPSHOT_CHECKSUM_BYTES;
    const hash = createHash('sha256');
    let first = true;
    const send = async (blob: Buffer): Promise<void> => {
      hash.update(blob);
      remaining -= blob.byteLength;
      await write(call, { header: first ? header : null, remaining_bytes: int64(remaining), blob });
      first = false;
    };
    await send(snapshotHeader(imageBytes));
    for await (const blob of createReadStream(path, { highWaterMark: SNAPSHOT_CHUNK_BYTES }) as AsyncIterable<Buffer>) {
      if (call.cancelled) return;
      await send(blob);
    }
    if (pad > 0) await send(Buffer.alloc(pad));
    if (call.cancelled) return;
    await write(call, { header: null, remaining_bytes: 0, blob: hash.digest(), version: ETCD_API_VERSION });
    call.end();
  } finally {
    await rm(path, { force: true });
  }
}

async function writeImage(backend: Backend, path: string): Promise<number> {
  const out = createWriteStream(path);
  let bytes = 0;
  try {
    for await (const chunk of stateMachineImage(backend)) {
      bytes += chunk.byteLength;
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
    }
  } finally {
    await closeStream(out);
  }
  return bytes;
}

function closeStream(out: WriteStream): Promise<void> {
  return new Promise((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
}

/** Respect the stream's flow control: a slow client holds the server at one chunk, not the whole image. */
function write<T>(call: grpc.ServerWritableStream<unknown, T>, msg: T): Promise<void> {
  if (call.write(msg)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      call.removeListener('drain', done);
      call.removeListener('cancelled', done);
      resolve();
    };
    call.once('drain', done);
    call.once('cancelled', done);
  });
}

// ---------------------------------------------------------------------------------------------------------
// MoveLeader
// ---------------------------------------------------------------------------------------------------------

/**
 * etcd's MoveLeader: only the leader may hand over, only to a voting member; then wait until the transferee
 * leads. Moving to itself succeeds at once, as etcd's wait loop ends immediately. A transfer that does not finish
 * in time answers "request timed out" (etcd says "... leader transfer took too long"; errors.ts has no such code).
 */
async function moveLeader(ctx: ApiContext, call: SurfaceCall, target: number): Promise<void> {
  const m = ctx.member;
  const s = m.node.status();
  if (s.softState.role !== Role.Leader) throw apiError('NOT_LEADER');
  if (!s.confState.voters.includes(target)) throw apiError('BAD_LEADER_TRANSFEREE');
  if (target === m.id) return;
  m.node.transferLeadership(target);
  m.loop.kick();
  const deadline = Date.now() + Math.min(ctx.limits.requestTimeoutMs, remainingMs(call.getDeadline()));
  while (m.leaderId() !== target) {
    if (call.cancelled || Date.now() >= deadline) throw apiError('TIMEOUT');
    await new Promise((resolve) => setTimeout(resolve, MOVE_LEADER_POLL_MS));
  }
}
