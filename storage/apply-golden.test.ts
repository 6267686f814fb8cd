// A recorded apply: a fixed, seeded log of every kind of write the state machine takes (puts of every shape, deletes,
// txns, leases, compactions, retried and stale request ids, the NOSPACE alarm, auth, a lagging HLC), applied in
// batches of varied sizes with a reopen halfway, with the revision-at-time index bounded low enough to drop records
// and chunked finely enough to fold and drop chunks. The backend's pairs and every result must match what the code
// produced when the recording was made: the on-disk bytes are a format existing data directories and snapshots
// depend on, and every member must produce the same ones.
//
// The recording (testdata/apply-golden.json) holds SHA-256 digests: of the whole backend at checkpoints, of the
// results of each stretch of batches, and HashKV at the end. A mismatch names the first checkpoint that differs.
// To record again after an intended change of format or results, run with UPDATE_APPLY_GOLDEN=1 and review why.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MemoryBackend, type Backend } from './backend.js';
import { encodeCommand, type Command, type Op } from './command.js';
import type { RequestOp } from './mvcc/types.js';
import { StateMachine, type AppliedCommand, type CommandResult } from './state-machine.js';

const GOLDEN = join(dirname(fileURLToPath(import.meta.url)), 'testdata', 'apply-golden.json');
const update = process.env.UPDATE_APPLY_GOLDEN === '1';

const BATCHES = 80;
const CHECKPOINT_EVERY = 10;
const REOPEN_AFTER = 40;
/** The revision-at-time index's bound, low enough that the log reaches it and drops records from then on. */
const REVISION_TIME_ENTRIES_MAX = 40;
/** Its records per chunk pair, low enough that the log makes chunks, and drops from one (not a divisor of 40). */
const REVISION_TIME_CHUNK_RECORDS = 16;

interface Golden {
  /** One entry per checkpoint: digests of the backend dump and of the results since the previous checkpoint. */
  readonly checkpoints: Array<{ readonly batch: number; readonly backend: string; readonly results: string }>;
  readonly hashKV: string;
}

/** A small seeded generator (mulberry32): the log must be the same on every run. */
function generator(seed: number): { int(n: number): number; pick<T>(xs: readonly T[]): T } {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return { int: (n) => Math.floor(next() * n), pick: (xs) => xs[Math.floor(next() * xs.length)]! };
}

/** The log: commands with the HLC, request ids and auth a member would stamp on them. */
class Log {
  private readonly rng = generator(20261121);
  private index = 0;
  private hlc = 1_700_000_000_000n << 16n;
  private readonly seqs = new Map<string, number>();
  /** The auth store revision the proposer checked against (tracked from the results, as a member would). */
  authRevision = 0;
  authEnabled = false;

  batch(n: number): AppliedCommand[] {
    return Array.from({ length: n }, () => this.next());
  }

  private key(): Uint8Array {
    const r = this.rng.int(20);
    if (r === 0) return Uint8Array.of(0x00, 0xff, this.rng.int(4)); // bytes that are not text
    if (r === 1) return new Uint8Array(300).fill(0x61 + this.rng.int(2)); // a long key
    return new TextEncoder().encode(`key/${this.rng.int(60).toString().padStart(3, '0')}`);
  }

  private value(): Uint8Array {
    const n = this.rng.pick([0, 1, 7, 256, 256, 256, 1000, 5000]);
    const v = new Uint8Array(n);
    for (let i = 0; i < n; i++) v[i] = (i * 31 + this.index) & 0xff;
    return v;
  }

  private lease(): bigint | undefined {
    return this.rng.pick([undefined, undefined, 0n, 1n, 2n, 3n, 99n]);
  }

  private put(): Op {
    const lease = this.lease();
    const flags = this.rng.int(8);
    return {
      put: {
        key: this.key(),
        value: this.value(),
        ...(lease !== undefined ? { lease } : {}),
        ...(flags === 1 ? { prevKv: true } : flags === 2 ? { prevKv: false, ignoreValue: false, ignoreLease: false } : {}),
        ...(flags === 3 ? { ignoreValue: true } : flags === 4 ? { ignoreLease: true } : {}),
      },
    };
  }

  private requestOp(depth: number): RequestOp {
    const r = this.rng.int(depth > 0 ? 3 : 4);
    if (r === 0) return { requestPut: { key: this.key(), value: this.value(), ...(this.rng.int(3) === 0 ? { prevKv: true } : {}) } };
    if (r === 1) return { requestDeleteRange: { key: this.key(), ...(this.rng.int(2) === 0 ? { prevKv: true } : {}) } };
    if (r === 2) return { requestRange: { key: this.key() } };
    return { requestTxn: { compare: [], success: [this.requestOp(depth + 1), this.requestOp(depth + 1)] } };
  }

  private op(): Op {
    const r = this.rng.int(100);
    if (r < 60) return this.put();
    if (r < 66) return { deleteRange: { key: this.key(), ...(this.rng.int(2) === 0 ? { prevKv: true } : {}) } };
    if (r < 68) return { deleteRange: { key: new TextEncoder().encode('key/01'), rangeEnd: new TextEncoder().encode('key/02') } };
    if (r < 78) {
      const target = this.rng.pick(['VERSION', 'MOD', 'CREATE', 'VALUE', 'LEASE'] as const);
      return {
        txn: {
          compare: [{ key: this.key(), target, result: this.rng.pick(['EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'] as const), version: 1, modRevision: 5, createRevision: 3, value: Uint8Array.of(1), lease: 0n }],
          success: [this.requestOp(0), this.requestOp(0)],
          failure: [this.requestOp(0)],
        },
      };
    }
    if (r < 82) return { leaseGrant: { id: BigInt(1 + this.rng.int(3)), ttlSeconds: 30 } };
    if (r < 84) return { leaseRevoke: { id: BigInt(1 + this.rng.int(3)) } };
    if (r < 86) return { leaseCheckpoint: { checkpoints: [{ id: BigInt(1 + this.rng.int(3)), remainingTtlMs: 5_000 }] } };
    if (r < 87) return { compact: { revision: 1 + this.rng.int(400) } };
    // The alarm is raised now and then and mostly lowered soon after, so most writes are taken.
    if (r < 89) return { alarm: { action: this.rng.int(10) === 0 ? 'activate' : 'deactivate', alarm: 'NOSPACE' } };
    return this.put();
  }

  private next(): AppliedCommand {
    this.index++;
    // Mostly forward, sometimes a lagging proposer's clock (the state machine keeps its HLC monotonic).
    this.hlc = this.rng.int(50) === 0 ? this.hlc - (5n << 16n) : this.hlc + BigInt(1 + this.rng.int(3 << 16));
    const cmd: { -readonly [K in keyof Command]: Command[K] } = { hlc: this.hlc, op: this.op() };
    const who = this.rng.int(6);
    if (who <= 2) {
      const clientId = `client-${who}`;
      // Mostly the next sequence number; sometimes a retry of the last one or a stale one.
      const last = this.seqs.get(clientId) ?? 0;
      const r = this.rng.int(10);
      const seq = r === 0 && last > 0 ? last : r === 1 && last > 1 ? last - 1 : last + 1;
      this.seqs.set(clientId, Math.max(last, seq));
      cmd.clientId = clientId;
      cmd.seq = seq;
    }
    if (this.rng.int(3) === 0) cmd.auth = { user: this.authEnabled ? 'root' : '', revision: this.authRevision - (this.rng.int(10) === 0 ? 1 : 0) };
    return { index: this.index, term: 1, payload: encodeCommand(cmd) };
  }

  /** Commands that turn auth on (root user and role) or off: the last batches run with auth enabled. */
  authCommands(enable: boolean): AppliedCommand[] {
    const ops: Op[] = enable
      ? [{ userAdd: { name: 'root', noPassword: true } }, { userGrantRole: { user: 'root', role: 'root' } }, { authEnable: {} }]
      : [{ authDisable: {} }];
    return ops.map((op) => {
      this.index++;
      this.hlc += 1n << 16n;
      return { index: this.index, term: 1, payload: encodeCommand({ hlc: this.hlc, op, ...(enable ? {} : { auth: { user: 'root', revision: this.authRevision } }) }) };
    });
  }
}

/** Plain data with sorted keys, bytes as hex and bigints marked: a stable text for the digest. */
function canonical(v: unknown): unknown {
  if (v === undefined) return '<undefined>';
  if (typeof v === 'bigint') return `${v}n`;
  if (v instanceof Uint8Array) return `0x${Buffer.from(v).toString('hex')}`;
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
  }
  return v;
}

async function backendDigest(backend: Backend): Promise<string> {
  const h = createHash('sha256');
  for await (const [k, v] of backend.iterate({ gte: new Uint8Array(0), lt: undefined })) {
    h.update(`${Buffer.from(k).toString('hex')}=${Buffer.from(v).toString('hex')}\n`);
  }
  return h.digest('hex');
}

async function record(): Promise<Golden> {
  const log = new Log();
  const backend = new MemoryBackend();
  const revisionTime = { entriesMax: REVISION_TIME_ENTRIES_MAX, chunkRecords: REVISION_TIME_CHUNK_RECORDS };
  // Each batch written at once, as when the recording was made: physical compaction advances only over written
  // rows, so when the writes land decides which deletions a checkpoint sees (not what any read returns).
  let sm = await StateMachine.open(backend, { revisionTime, writeDelayMs: 0 });
  const sizes = generator(7);
  const checkpoints: Golden['checkpoints'] = [];
  let results = createHash('sha256');
  const applyBatch = async (batch: AppliedCommand[]): Promise<void> => {
    const out: CommandResult[] = await sm.apply(batch);
    for (const r of out) results.update(`${JSON.stringify(canonical(r))}\n`);
    log.authRevision = sm.auth.revision;
    log.authEnabled = sm.auth.enabled;
  };
  for (let b = 1; b <= BATCHES; b++) {
    if (b === BATCHES - 10) await applyBatch(log.authCommands(true));
    if (b === BATCHES) await applyBatch(log.authCommands(false));
    await applyBatch(log.batch(1 + sizes.pick([0, 1, 4, 30, 60, 99, 99, 119])));
    if (b === REOPEN_AFTER) {
      // Reopened with a row cache too small for the rows written, so reads of previous rows go to the backend.
      await sm.flush();
      sm = await StateMachine.open(backend, { mvcc: { rowCacheBytes: 32 * 1024 }, revisionTime, writeDelayMs: 0 });
    }
    if (b % CHECKPOINT_EVERY === 0) {
      await sm.settled();
      checkpoints.push({ batch: b, backend: await backendDigest(backend), results: results.digest('hex') });
      results = createHash('sha256');
    }
  }
  while (await sm.compactionStep());
  await sm.settled();
  checkpoints.push({ batch: BATCHES + 1, backend: await backendDigest(backend), results: results.digest('hex') });
  const hash = await sm.mvcc.hashKV(0);
  return { checkpoints, hashKV: JSON.stringify(canonical(hash)) };
}

describe('apply golden', () => {
  it('gives the recorded backend bytes and results for a fixed log', async () => {
    const actual = await record();
    if (update) writeFileSync(GOLDEN, `${JSON.stringify(actual, null, 2)}\n`);
    const expected = JSON.parse(readFileSync(GOLDEN, 'utf8')) as Golden;
    for (let i = 0; i < expected.checkpoints.length; i++) {
      expect(actual.checkpoints[i], `checkpoint after batch ${expected.checkpoints[i]!.batch}`).toEqual(expected.checkpoints[i]);
    }
    expect(actual.hashKV).toBe(expected.hashKV);
  }, 60_000);
});
