// The state machine the Raft log drives: the MVCC key space, the lease table, the exactly-once table, the
// revision-at-time index and the alarms, all in one Backend. Applied batches of entries are staged into ONE backend
// batch (those of up to STATE_WRITE_DELAY_MS share it) that also records the applied index, so on disk the keys,
// leases and dedup table always describe the same point in the log; after a crash the member replays the WAL from
// that point.
//
// Why the batch is written without fsync: the WAL holds every entry above the applied index until the state
// machine is known durable past it (flush() syncs before the node compacts the WAL), so a lost unsynced apply
// is simply applied again. LevelDB keeps batches atomic and in order, so what survives is a prefix.
//
// Determinism: the same commands on the same state give byte-identical backend content on every member.
// Nothing here reads a clock; time comes from the HLC the proposer stamped on each command.
import { assert } from '../raft/errors.js';
import { ConfChangeType, type ConfChange } from '../raft/types.js';
import { AuthError, AuthStore, authorizeCommand, isAuthOp } from './auth/index.js';
import type { Backend, BackendBatch, KvBatch } from './backend.js';
import { decodeCommand, decodeValue, encodeValue, opKind, type AlarmType, type Command, type Op, type OpKind, type Value } from './command.js';
import { DedupError, DedupTable } from './dedup/index.js';
import { hlcWallMs, RevisionTimeIndex, revisionIndexImagePairs, type Hlc, type RevisionTimeIndexConfig } from './hlc/index.js';
import { LeaseError, LeaseTable } from './lease/index.js';
import { MvccError, MvccStore, type MvccConfig, type MvccEvent } from './mvcc/index.js';
import type { PutRequest, TxnRequest } from './mvcc/types.js';

const META_APPLIED = new TextEncoder().encode('sm/applied');
/**
 * Keys that belong to this member alone (its clock reservation) and never travel in a snapshot image: 'local/',
 * and 'hlc/c/', where stores written before kept the reservation until the clock's next one deletes it.
 */
const MEMBER_LOCAL_PREFIXES = [new TextEncoder().encode('local/'), new TextEncoder().encode('hlc/c/')];
const isMemberLocal = (k: Uint8Array): boolean => MEMBER_LOCAL_PREFIXES.some((p) => hasPrefix(k, p));
/** Target size of one chunk of a snapshot image. */
export const IMAGE_CHUNK_BYTES = 256 * 1024;
/** Pairs written per batch while installing an image. */
const IMAGE_INSTALL_BATCH_PAIRS = 10_000;
const META_ALARM_PREFIX = 'sm/alarm/';
/**
 * Applied batches whose backend write may still be under way. Apply answers as soon as a batch is staged (its
 * rows stay readable from memory until written), so a slow disk does not hold up the Ready loop; past this many
 * unwritten batches apply waits for the writes, so memory stays bounded.
 */
export const STATE_WRITES_IN_FLIGHT_MAX = 8;
/**
 * How long an applied batch waits for later ones to share its backend write. Each LevelDB write is a thread-pool
 * hand-off that cost a member more CPU than the whole apply at one request in flight; etcd's backend likewise
 * commits every 100 ms. Nothing waits on it: answers go out once staged, and rows are read from memory until written.
 */
export const STATE_WRITE_DELAY_MS = 20;
/** An open batch with this many operations is written at once (memory stays bounded between writes). */
export const STATE_WRITE_OPS_MAX = 20_000;
const MEMBER_PREFIX = 'members/';

/** A cluster member as the cluster agrees on it: replicated through conf changes and member commands. */
export interface MemberRecord {
  readonly id: number;
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly clientUrls: readonly string[];
  readonly isLearner: boolean;
}

/** What a conf change entry's context carries: the member's name and URLs as the proposer knew them. */
export interface MemberContext {
  readonly name?: string;
  readonly peerUrls?: readonly string[];
  readonly clientUrls?: readonly string[];
  /** Lets the proposer recognise its own change when it is applied. */
  readonly nonce?: string;
}

export function encodeMemberContext(c: MemberContext): Uint8Array {
  return encodeValue(c as unknown as Value);
}

export function decodeMemberContext(data: Uint8Array): MemberContext {
  if (data.byteLength === 0) return {};
  try {
    return decodeValue(data) as unknown as MemberContext;
  } catch {
    return {}; // a context from another tool: membership still changes, without names or URLs
  }
}

/** A command as the Ready loop hands it over. */
export interface AppliedCommand {
  readonly index: number;
  readonly term: number;
  readonly payload: Uint8Array;
}

export interface CommandError {
  readonly code: string;
  readonly message: string;
}

/** What a command did: a response or a typed error (both deterministic), and the events for watchers. */
export interface CommandResult {
  readonly index: number;
  readonly hlc: Hlc;
  /** The store's revision after the command. */
  readonly revision: number;
  readonly response?: Value;
  readonly error?: CommandError;
  /** A retried request: this is the first attempt's answer, nothing was applied again. */
  readonly duplicate?: boolean;
  /** The command this answers, so listeners need not guess it from the response's shape. */
  readonly op?: OpKind;
  readonly events: readonly MvccEvent[];
}

export interface StateMachineOptions {
  readonly mvcc?: Partial<MvccConfig>;
  /** The revision-at-time index's bound (tests lower it to reach it quickly). */
  readonly revisionTime?: Partial<RevisionTimeIndexConfig>;
  /**
   * STATE_WRITE_DELAY_MS by default; 0 writes each applied batch at once (tests whose backend contents must not
   * depend on timing: physical compaction advances only over written rows).
   */
  readonly writeDelayMs?: number;
}

/** Errors that are answers, not failures: the command is refused the same way on every member. */
function asCommandError(e: unknown): CommandError | undefined {
  if (e instanceof MvccError || e instanceof LeaseError || e instanceof DedupError || e instanceof StateMachineError || e instanceof AuthError) {
    return { code: e.code, message: e.message };
  }
  return undefined;
}

/** What running one command gave: a response and events, or the error it was refused with. */
interface Outcome {
  readonly response?: Value;
  readonly error?: CommandError;
  readonly events?: readonly MvccEvent[];
}

/** A refused command's outcome; anything but a command error is a broken invariant, and the member must stop. */
function refusal(e: unknown): Outcome {
  const err = asCommandError(e);
  if (err === undefined) throw e;
  return { error: err };
}

export class StateMachineError extends Error {
  constructor(
    readonly code: 'NO_SPACE' | 'CORRUPT' | 'INVALID_COMMAND' | 'MEMBER_NOT_FOUND',
    message: string,
  ) {
    super(message);
    this.name = 'StateMachineError';
  }
}

/** Collects one command's writes so a refused command leaves nothing behind in the shared batch. */
class PendingWrites implements KvBatch {
  // Two arrays rather than a [key, value] pair per write: one allocation fewer for each.
  private readonly keys: Uint8Array[] = [];
  /** undefined: a deletion. */
  private readonly values: Array<Uint8Array | undefined> = [];
  put(key: Uint8Array, value: Uint8Array): void {
    this.keys.push(key);
    this.values.push(value);
  }
  del(key: Uint8Array): void {
    this.keys.push(key);
    this.values.push(undefined);
  }
  flushInto(b: KvBatch): void {
    for (let i = 0; i < this.keys.length; i++) {
      const v = this.values[i];
      if (v === undefined) b.del(this.keys[i]!);
      else b.put(this.keys[i]!, v);
    }
  }
}

export class StateMachine {
  private applied: number;
  private lastHlc: Hlc;
  private readonly alarms: Set<AlarmType>;
  private readonly memberRecords: Map<number, MemberRecord>;
  /** The chain of backend writes, in apply order (LevelDB sees them in the order they were applied). */
  private writes: Promise<void> = Promise.resolve();
  private writesInFlight = 0;
  /** The first backend write that failed: every later apply, flush and settle fails with it. */
  private writeFailure: unknown = undefined;
  /** Applied batches staged into one backend batch, not yet written (see STATE_WRITE_DELAY_MS). */
  private open: { readonly batch: BackendBatch; readonly onWritten: Array<() => void>; timer?: NodeJS.Timeout } | undefined;
  /** While an apply is staging into the open batch (across awaits), which must not be written under it: its end. */
  private staging: Promise<void> | undefined;

  private constructor(
    private readonly backend: Backend,
    readonly mvcc: MvccStore,
    readonly leases: LeaseTable,
    readonly dedup: DedupTable,
    readonly revisionTime: RevisionTimeIndex,
    /** Users, roles and permissions, and whether auth is enabled (storage/auth). */
    readonly auth: AuthStore,
    meta: { applied: number; lastHlc: Hlc; alarms: Set<AlarmType>; members: Map<number, MemberRecord> },
    private readonly writeDelayMs: number,
  ) {
    this.applied = meta.applied;
    this.lastHlc = meta.lastHlc;
    this.alarms = meta.alarms;
    this.memberRecords = meta.members;
  }

  static async open(backend: Backend, options: StateMachineOptions = {}): Promise<StateMachine> {
    const leases = await LeaseTable.open(backend);
    const mvcc = await MvccStore.open(backend, { ...(options.mvcc ? { config: options.mvcc } : {}), leaseExists: (id) => leases.has(id) });
    const dedup = await DedupTable.open(backend);
    const revisionTime = await RevisionTimeIndex.open(backend, options.revisionTime);
    const auth = await AuthStore.open(backend);
    const meta = await readMeta(backend);
    const writeDelayMs = options.writeDelayMs ?? STATE_WRITE_DELAY_MS;
    assert(Number.isInteger(writeDelayMs) && writeDelayMs >= 0, () => `writeDelayMs must be a non-negative integer, got ${writeDelayMs}`);
    return new StateMachine(backend, mvcc, leases, dedup, revisionTime, auth, meta, writeDelayMs);
  }

  /** The last log index whose effects are in this state. */
  get appliedIndex(): number {
    return this.applied;
  }

  get revision(): number {
    return this.mvcc.revision;
  }

  activeAlarms(): AlarmType[] {
    return [...this.alarms].sort();
  }

  /** The members, by id. */
  members(): MemberRecord[] {
    return [...this.memberRecords.values()].sort((a, b) => a.id - b.id);
  }

  /**
   * Record an applied conf change in the member registry, in its own batch with the applied index. On replay
   * after a restart (index at or below applied) it is already recorded and nothing is written.
   */
  async applyConfChange(index: number, cc: ConfChange): Promise<void> {
    if (index <= this.applied) return;
    const batch = this.backend.batch();
    const ctx = decodeMemberContext(cc.context);
    const existing = this.memberRecords.get(cc.nodeId);
    if (cc.type === ConfChangeType.RemoveNode) {
      this.memberRecords.delete(cc.nodeId);
      batch.del(memberKey(cc.nodeId));
    } else {
      this.putMember(batch, {
        id: cc.nodeId,
        name: ctx.name ?? existing?.name ?? '',
        peerUrls: ctx.peerUrls ?? existing?.peerUrls ?? [],
        clientUrls: existing?.clientUrls ?? ctx.clientUrls ?? [],
        isLearner: cc.type === ConfChangeType.AddLearner,
      });
    }
    this.applied = index;
    this.writeMeta(batch);
    await this.writeBehindOpenBatch(batch);
  }

  private putMember(batch: KvBatch, m: MemberRecord): void {
    this.memberRecords.set(m.id, m);
    batch.put(memberKey(m.id), encodeValue(m as unknown as Value));
  }

  /** Apply committed commands in log order as one backend batch. */
  async apply(commands: readonly AppliedCommand[]): Promise<CommandResult[]> {
    if (commands.length === 0) return [];
    this.throwIfWriteFailed();
    assert(this.staging === undefined, 'apply while another apply is staging');
    const open = (this.open ??= { batch: this.backend.batch(), onWritten: [] });
    let staged!: () => void;
    this.staging = new Promise((resolve) => (staged = resolve));
    let results: CommandResult[];
    try {
      results = await this.stage(commands, open);
    } catch (e) {
      // Half-staged writes must never reach the backend: drop the open batch with what earlier applies put in it
      // (the WAL replays them after a restart) and refuse everything after, as a failed write does.
      this.dropOpenBatch(e);
      throw e;
    } finally {
      this.staging = undefined;
      staged();
    }
    await this.scheduleWrite(open);
    return results;
  }

  /** Write the open batch now when it is large or writes are backing up (then wait for it), else soon. */
  private async scheduleWrite(open: NonNullable<StateMachine['open']>): Promise<void> {
    if (this.writeDelayMs > 0 && open.batch.length < STATE_WRITE_OPS_MAX && this.writesInFlight < STATE_WRITES_IN_FLIGHT_MAX) {
      open.timer ??= setTimeout(() => void this.writeOpenBatch(), this.writeDelayMs).unref();
      return;
    }
    const written = this.writeOpenBatch();
    if (this.writesInFlight > STATE_WRITES_IN_FLIGHT_MAX) await written;
  }

  private async stage(commands: readonly AppliedCommand[], open: NonNullable<StateMachine['open']>): Promise<CommandResult[]> {
    const batch = open.batch;
    const results: CommandResult[] = [];
    // Only Fulcrum's own servers encode commands, so one that does not decode is corruption or a bug: the
    // member stops rather than go on with state it cannot trust (the log and the data stay as they are).
    const decoded = commands.map((c) => decodeCommand(c.payload));
    await this.mvcc.prefetchCurrent(this.keysRead(decoded));
    try {
      for (let i = 0; i < commands.length; i++) {
        const c = commands[i]!;
        if (c.index <= this.applied) assert(false, `apply of index ${c.index} at or below applied ${this.applied}`);
        const result = this.applyOne(c, decoded[i]!, batch);
        results.push(result instanceof Promise ? await result : result);
        this.applied = c.index;
      }
    } finally {
      this.mvcc.dropPrefetched();
    }
    this.revisionTime.writeDropped(batch);
    this.dedup.expireIdle(Number(hlcWallMs(this.lastHlc)), batch);
    // Physical compaction advances one bounded chunk per applied batch, so it never stalls the apply loop.
    if (this.mvcc.compactionPending) await this.mvcc.compactionStep(batch);
    this.writeMeta(batch);
    const revision = this.mvcc.revision;
    open.onWritten.push(() => this.mvcc.committed(revision));
    return results;
  }

  /** Queue the open batch's write now (it waits while an apply is staging into it). */
  private writeOpenBatch(): Promise<void> {
    const open = this.open;
    if (open === undefined) return Promise.resolve();
    clearTimeout(open.timer);
    if (this.staging !== undefined) {
      open.timer = setTimeout(() => void this.writeOpenBatch(), 0).unref();
      return Promise.resolve();
    }
    this.open = undefined;
    return this.enqueueWrite(open.batch, () => {
      for (const fn of open.onWritten) fn();
    });
  }

  /**
   * Write a batch of its own (a conf change, an idle compaction step) after the open batch, so batches reach LevelDB
   * in apply order. Never while an apply is staging: the open batch would then stay behind it.
   */
  private writeBehindOpenBatch(batch: BackendBatch): Promise<void> {
    assert(this.staging === undefined, 'a batch of its own written while an apply is staging');
    void this.writeOpenBatch();
    return this.enqueueWrite(batch);
  }

  private dropOpenBatch(e: unknown): void {
    clearTimeout(this.open?.timer);
    this.open = undefined;
    this.writeFailure ??= e;
  }

  /** One bounded chunk of physical compaction in its own batch (for idle time). Returns whether more is left. */
  async compactionStep(): Promise<boolean> {
    this.throwIfWriteFailed();
    if (!this.mvcc.compactionPending) return false;
    const batch = this.backend.batch();
    const r = await this.mvcc.compactionStep(batch);
    await this.writeBehindOpenBatch(batch);
    return !r.done;
  }

  /**
   * Make everything applied so far durable without holding up the applies after it: a synced write of the applied
   * index, queued behind the batches already applied. LevelDB's log is one ordered file, so its sync makes every
   * earlier write durable too. Later applies go on staging (answered, readable from memory); their writes queue
   * behind this one. Resolves once durable; a failure is kept and rethrown by the next apply, as any failed write.
   * The snapshot uses it: syncing in the apply path held every member's Ready loop for the length of an fsync of
   * ~10,000 entries' rows, all three members at the same index at once (docs/performance.md, thirty-second session).
   */
  async syncBehindApplied(): Promise<void> {
    // Everything before the await runs at the call: the write is queued before any later apply's.
    this.throwIfWriteFailed();
    assert(this.staging === undefined, 'a sync queued while an apply is staging');
    void this.writeOpenBatch();
    const batch = this.backend.batch();
    this.writeMeta(batch);
    await this.enqueueWrite(batch, undefined, true);
  }

  /** Make everything applied so far durable, now (close). */
  async flush(): Promise<void> {
    await this.settled();
    await this.syncBehindApplied();
  }

  /**
   * Resolves once every applied batch is in the backend (not necessarily synced); rethrows a failed write. Whoever
   * reads the backend directly (a snapshot image, a restore, close) waits for this first.
   */
  async settled(): Promise<void> {
    while (this.staging !== undefined) await this.staging;
    void this.writeOpenBatch();
    await this.writes;
    this.throwIfWriteFailed();
  }

  /** Queue a batch behind the earlier ones; `onWritten` runs once it is in the backend. */
  private enqueueWrite(batch: BackendBatch, onWritten?: () => void, sync = false): Promise<void> {
    this.writesInFlight++;
    const written = this.writes.then(async () => {
      this.throwIfWriteFailed();
      await batch.write({ sync });
      onWritten?.();
    });
    written.catch(() => {}); // the failure is kept below and rethrown by the next apply, flush or settle
    this.writes = written.then(
      () => void this.writesInFlight--,
      (e: unknown) => {
        this.writesInFlight--;
        this.writeFailure ??= e;
      },
    );
    return written;
  }

  private throwIfWriteFailed(): void {
    if (this.writeFailure !== undefined) throw this.writeFailure;
  }

  private writeMeta(batch: KvBatch): void {
    batch.put(META_APPLIED, encodeValue({ applied: this.applied, lastHlc: this.lastHlc }));
  }

  /** Keys whose current row these commands will read: what they overwrite or delete (for prev_kv) or compare. */
  private *keysRead(commands: readonly Command[]): Generator<Uint8Array> {
    for (const { op } of commands) {
      if ('put' in op) yield op.put.key;
      else if ('deleteRange' in op) yield* singleKey(op.deleteRange);
      else if ('txn' in op) yield* txnKeys(op.txn);
      else if ('leaseRevoke' in op) yield* this.mvcc.keysWithLease(op.leaseRevoke.id);
    }
  }

  /**
   * Apply one command into the batch. A put that needs no backend read (its previous row is in memory, which
   * prefetchCurrent sees to for the batch) is done at once; anything else answers a promise. A promise, a suspended
   * frame and a microtask at each of seven nested async calls (this, execute, and five in the store) were a
   * measurable part of applying a put whose row was in memory all along.
   */
  private applyOne(c: AppliedCommand, cmd: Command, batch: BackendBatch): CommandResult | Promise<CommandResult> {
    // The HLC only moves forward, whatever clock the proposer had: every member computes the same value.
    this.lastHlc = cmd.hlc > this.lastHlc ? cmd.hlc : this.lastHlc + 1n;
    const op = opKind(cmd.op);
    const dup = this.checkDuplicate(cmd);
    if (dup !== undefined) return this.result(c.index, dup, [], op, 'response' in dup);
    const writes = new PendingWrites();
    const before = this.mvcc.revision;
    let outcome: Outcome | Promise<Outcome>;
    try {
      authorizeCommand(this.auth, cmd, this.mvcc);
      outcome = (op === 'put' ? this.putFromMemory(cmd.op as { put: PutRequest }, writes) : undefined) ?? this.execute(cmd.op, writes, this.lastHlc, c.index);
    } catch (e) {
      outcome = refusal(e);
    }
    if (!(outcome instanceof Promise)) return this.finishOne(c, cmd, op, batch, writes, before, outcome);
    return outcome.then(
      (o) => this.finishOne(c, cmd, op, batch, writes, before, o),
      (e: unknown) => this.finishOne(c, cmd, op, batch, writes, before, refusal(e)),
    );
  }

  /** What follows a command's execution: its writes (unless it was refused), its revision's time, its dedup record. */
  private finishOne(c: AppliedCommand, cmd: Command, op: OpKind, batch: BackendBatch, writes: PendingWrites, before: number, outcome: Outcome): CommandResult {
    if (outcome.error === undefined) writes.flushInto(batch);
    if (this.mvcc.revision > before) this.revisionTime.recordDeferred(this.lastHlc, this.mvcc.revision, batch);
    if (cmd.clientId !== undefined && cmd.seq !== undefined) {
      const stored = encodeValue({ response: outcome.response, error: outcome.error as unknown as Value, revision: this.mvcc.revision });
      this.dedup.record(cmd.clientId, cmd.seq, stored, Number(hlcWallMs(this.lastHlc)), batch);
    }
    return this.result(c.index, outcome, outcome.events ?? [], op);
  }

  /** execute() of a put when the store can do it without a backend read; undefined (nothing done) otherwise. */
  private putFromMemory(op: { readonly put: PutRequest }, w: PendingWrites): Outcome | undefined {
    this.refuseWhenOutOfSpace();
    const r = this.mvcc.putFromMemory(op.put, w, this.lastHlc);
    return r === undefined ? undefined : { response: r.response as unknown as Value, events: r.events };
  }

  private checkDuplicate(cmd: Command): { response?: Value; error?: CommandError } | undefined {
    if (cmd.clientId === undefined || cmd.seq === undefined) return undefined;
    try {
      const d = this.dedup.check(cmd.clientId, cmd.seq);
      if (d.kind === 'apply') return undefined;
      const stored = decodeValue(d.response) as { response?: Value; error?: CommandError };
      return stored.error !== undefined ? { error: stored.error } : { response: stored.response };
    } catch (e) {
      const err = asCommandError(e);
      if (err === undefined) throw e;
      return { error: err };
    }
  }

  /**
   * A command's result. Its fields are added one by one rather than spread from partial objects (which cost several
   * objects per command), in the same order: index, hlc, revision, response and error when set, events, duplicate
   * when it is one, op.
   */
  private result(index: number, o: Outcome, events: readonly MvccEvent[], op: OpKind, duplicate?: boolean): CommandResult {
    const r: { -readonly [K in keyof CommandResult]?: CommandResult[K] } = { index, hlc: this.lastHlc, revision: this.mvcc.revision };
    if (o.response !== undefined) r.response = o.response;
    if (o.error !== undefined) r.error = o.error;
    r.events = events;
    if (duplicate !== undefined) r.duplicate = duplicate;
    r.op = op;
    return r as CommandResult;
  }

  /**
   * Run one command. `hlc` is the command's HLC as applyOne computed it from the log; MVCC writes record it, so
   * every row's createHlc/modHlc is the same on every member.
   */
  private async execute(op: Op, w: PendingWrites, hlc: Hlc, index: number): Promise<Outcome> {
    if (isAuthOp(op)) return { response: this.auth.apply(op, w, index) };
    if ('put' in op) {
      this.refuseWhenOutOfSpace();
      const r = await this.mvcc.put(op.put, w, hlc);
      return { response: r.response as unknown as Value, events: r.events };
    }
    if ('deleteRange' in op) {
      const r = await this.mvcc.deleteRange(op.deleteRange, w, hlc);
      return { response: r.response as unknown as Value, events: r.events };
    }
    if ('txn' in op) {
      if (txnMayWrite(op.txn)) this.refuseWhenOutOfSpace();
      const r = await this.mvcc.txn(op.txn, w, hlc);
      return { response: r.response as unknown as Value, events: r.events };
    }
    if ('compact' in op) {
      const r = this.mvcc.compact(op.compact.revision, w);
      this.revisionTime.compact(r.revision, w);
      return { response: { revision: r.revision } };
    }
    if ('leaseGrant' in op) {
      this.refuseWhenOutOfSpace();
      const info = this.leases.grant(op.leaseGrant.id, op.leaseGrant.ttlSeconds, w);
      return { response: info as unknown as Value };
    }
    if ('leaseRevoke' in op) return this.revokeLease(op.leaseRevoke.id, w, hlc);
    if ('leaseCheckpoint' in op) {
      // The answer names the leases the entry reached (a revoked one is skipped): every member's lease manager
      // notes when it heard of them, which is what a new leader's deadlines start from.
      const reached = op.leaseCheckpoint.checkpoints.filter((cp) => this.leases.checkpoint(cp.id, cp.remainingTtlMs, w)).map((cp) => cp.id);
      return { response: { leases: reached } };
    }
    if ('alarm' in op) return { response: this.changeAlarm(op.alarm.action, op.alarm.alarm, w) };
    if ('memberAttributes' in op) return { response: this.updateMember(op.memberAttributes.id, op.memberAttributes, w) };
    if ('memberUpdate' in op) return { response: this.updateMember(op.memberUpdate.id, op.memberUpdate, w) };
    throw new StateMachineError('INVALID_COMMAND', `fulcrum: unknown command ${Object.keys(op).join(',')}`);
  }

  /** Revoke a lease and delete every key attached to it in one revision. */
  private async revokeLease(id: bigint, w: PendingWrites, hlc: Hlc): Promise<{ response?: Value; events?: readonly MvccEvent[] }> {
    const keys = this.mvcc.keysWithLease(id);
    this.leases.revoke(id, w);
    if (keys.length === 0) return { response: { revision: this.mvcc.revision } };
    const r = await this.mvcc.deleteKeys(keys, w, hlc);
    return { response: { revision: r.revision }, events: r.events };
  }

  private updateMember(id: number, change: { name?: string; clientUrls?: readonly string[]; peerUrls?: readonly string[] }, w: KvBatch): Value {
    const m = this.memberRecords.get(id);
    if (m === undefined) throw new StateMachineError('MEMBER_NOT_FOUND', 'etcdserver: member not found');
    this.putMember(w, {
      ...m,
      ...(change.name !== undefined ? { name: change.name } : {}),
      ...(change.clientUrls !== undefined ? { clientUrls: [...change.clientUrls] } : {}),
      ...(change.peerUrls !== undefined ? { peerUrls: [...change.peerUrls] } : {}),
    });
    return null;
  }

  private changeAlarm(action: 'activate' | 'deactivate', alarm: AlarmType, w: KvBatch): Value {
    const key = new TextEncoder().encode(META_ALARM_PREFIX + alarm);
    if (action === 'activate') {
      this.alarms.add(alarm);
      w.put(key, Uint8Array.of(1));
    } else {
      this.alarms.delete(alarm);
      w.del(key);
    }
    return this.activeAlarms();
  }

  /** With the NOSPACE alarm raised the cluster takes reads, deletes and compactions only (as etcd). */
  private refuseWhenOutOfSpace(): void {
    if (this.alarms.has('NOSPACE')) throw new StateMachineError('NO_SPACE', 'etcdserver: mvcc: database space exceeded');
  }
}

function* singleKey(r: { readonly key: Uint8Array; readonly rangeEnd?: Uint8Array }): Generator<Uint8Array> {
  if (r.rangeEnd === undefined || r.rangeEnd.byteLength === 0) yield r.key;
}

/** The single keys a txn compares or writes, in both branches and nested txns (ranges are read when they run). */
function* txnKeys(t: TxnRequest): Generator<Uint8Array> {
  for (const c of t.compare ?? []) yield* singleKey(c);
  for (const op of [...(t.success ?? []), ...(t.failure ?? [])]) {
    if ('requestPut' in op) yield op.requestPut.key;
    else if ('requestDeleteRange' in op) yield* singleKey(op.requestDeleteRange);
    else if ('requestTxn' in op) yield* txnKeys(op.requestTxn);
  }
}

/**
 * The replicated state as a stream of chunks: every backend pair in key order except member-local ones, framed as
 * [u32 key length][key][u32 value length][value]. Memory stays at one chunk. The caller must not apply while
 * reading it (the Ready loop awaits the snapshot); LevelDB's iterator sees one consistent point anyway. Applied
 * batches reach the backend behind apply: await StateMachine.settled() first, or the image misses the latest.
 */
export async function* stateMachineImage(backend: Backend): AsyncGenerator<Uint8Array> {
  // Frames are written straight into one chunk buffer, which is copied out when full: a buffer per row and a
  // concat per chunk made building an image (every revision of every key) several times the work of reading it.
  const chunk = new Uint8Array(IMAGE_CHUNK_BYTES);
  const view = new DataView(chunk.buffer);
  let size = 0;
  // The revision-time index's chunk pairs go out as one pair per record (see revisionIndexImagePairs).
  const replace = await revisionIndexImagePairs(backend);
  for await (const [storedKey, storedValue] of backend.iterate({ gte: new Uint8Array(0), lt: undefined })) {
    if (isMemberLocal(storedKey)) continue;
    const replaced = replace(storedKey, storedValue);
    const n = replaced === undefined ? 1 : replaced.length;
    for (let i = 0; i < n; i++) {
      const k = replaced === undefined ? storedKey : replaced[i]![0];
      const v = replaced === undefined ? storedValue : replaced[i]![1];
      const need = 8 + k.byteLength + v.byteLength;
      if (size + need > chunk.byteLength && size > 0) {
        yield chunk.slice(0, size);
        size = 0;
      }
      if (need > chunk.byteLength) {
        yield framePair(k, v); // a pair larger than a chunk goes out alone
        continue;
      }
      writeFrame(view, chunk, size, k, v);
      size += need;
    }
  }
  if (size > 0) yield chunk.slice(0, size);
}

/** [u32 key length][key][u32 value length][value] at `at`. */
function writeFrame(view: DataView, into: Uint8Array, at: number, k: Uint8Array, v: Uint8Array): void {
  view.setUint32(at, k.byteLength);
  into.set(k, at + 4);
  view.setUint32(at + 4 + k.byteLength, v.byteLength);
  into.set(v, at + 8 + k.byteLength);
}

function framePair(k: Uint8Array, v: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + k.byteLength + v.byteLength);
  writeFrame(new DataView(out.buffer), out, 0, k, v);
  return out;
}

/**
 * A member's own periodic snapshots hold no image: the state is already durable in its backend (flushed before the
 * snapshot is recorded), so the file carries only this reference. Copying every revision of every key into a file
 * every snapshotCount entries cost each member a tenth of its CPU and the cluster a fifth of its p99 at 100 puts in
 * flight. An image is made from the backend when a follower needs one (node/member.ts).
 *
 * Layout: a frame whose key length is 0 (no backend key is empty, so no image starts this way), then the tag and
 * the applied index the backend had when the reference was written, as [u32 0][tag][u64 applied].
 */
const BACKEND_REFERENCE_TAG = new TextEncoder().encode('fulcrum-state-in-backend');
/** A reference's size: a snapshot of any other size holds an image. */
export const BACKEND_REFERENCE_BYTES = 4 + BACKEND_REFERENCE_TAG.byteLength + 8;

export function backendReference(appliedIndex: number): Uint8Array {
  assert(Number.isSafeInteger(appliedIndex) && appliedIndex >= 0, () => `backend reference at bad index ${appliedIndex}`);
  const out = new Uint8Array(BACKEND_REFERENCE_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, 0);
  out.set(BACKEND_REFERENCE_TAG, 4);
  view.setBigUint64(4 + BACKEND_REFERENCE_TAG.byteLength, BigInt(appliedIndex));
  return out;
}

/** The applied index a snapshot's data refers to, when the data is a backend reference; undefined for an image. */
export function backendReferenceIndex(data: Uint8Array): number | undefined {
  if (data.byteLength !== BACKEND_REFERENCE_BYTES) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.getUint32(0) !== 0) return undefined;
  for (let i = 0; i < BACKEND_REFERENCE_TAG.byteLength; i++) if (data[4 + i] !== BACKEND_REFERENCE_TAG[i]) return undefined;
  return Number(view.getBigUint64(4 + BACKEND_REFERENCE_TAG.byteLength));
}

/** Replace the replicated state in `backend` with an image (member-local keys stay), then sync. */
export async function installStateMachineImage(backend: Backend, chunks: AsyncIterable<Uint8Array>): Promise<number> {
  const it = chunks[Symbol.asyncIterator]();
  // Look before deleting: a reference names another member's backend, and loading it would empty this one.
  const first = await it.next();
  if (first.done !== true && backendReferenceIndex(first.value) !== undefined) {
    throw new StateMachineError('CORRUPT', "fulcrum: this snapshot holds no image, only a reference to the state in its member's own backend");
  }
  let batch = await deleteReplicatedState(backend);
  let pairs = 0;
  let carry: Uint8Array = new Uint8Array(0);
  for (let r = first; r.done !== true; r = await it.next()) {
    const buf: Uint8Array = carry.byteLength > 0 ? Buffer.concat([carry, r.value]) : r.value;
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    let o = 0;
    while (o + 4 <= buf.byteLength) {
      const kl = view.getUint32(o);
      // No backend key is empty; a zero length is a reference cut into pieces, or garbage.
      if (kl === 0) throw new StateMachineError('CORRUPT', `fulcrum: snapshot image has an empty key after ${pairs} pairs`);
      if (o + 8 + kl > buf.byteLength) break;
      const vl = view.getUint32(o + 4 + kl);
      if (o + 8 + kl + vl > buf.byteLength) break;
      batch.put(buf.slice(o + 4, o + 4 + kl), buf.slice(o + 8 + kl, o + 8 + kl + vl));
      pairs++;
      o += 8 + kl + vl;
      if (batch.length >= IMAGE_INSTALL_BATCH_PAIRS) {
        await batch.write({ sync: false });
        batch = backend.batch();
      }
    }
    carry = buf.slice(o);
  }
  assert(carry.byteLength === 0, () => `snapshot image ends with ${carry.byteLength} stray bytes`);
  await batch.write({ sync: true });
  return pairs;
}

/** Stage deletes of every replicated key (member-local keys stay); returns the batch still to be written. */
async function deleteReplicatedState(backend: Backend): Promise<BackendBatch> {
  let batch = backend.batch();
  for await (const [k] of backend.iterate({ gte: new Uint8Array(0), lt: undefined })) {
    if (isMemberLocal(k)) continue;
    batch.del(k);
    if (batch.length >= IMAGE_INSTALL_BATCH_PAIRS) {
      await batch.write({ sync: false });
      batch = backend.batch();
    }
  }
  return batch;
}

/**
 * Turn an installed image into the seed of a NEW cluster (snapshot restore): forget the applied index, the member
 * registry and the alarms, which belong to the cluster the image came from. The keys, their history, leases,
 * revisions and the exactly-once table stay. The new cluster's bootstrap entries are then applied from index 1.
 */
export async function resetImageForNewCluster(backend: Backend): Promise<void> {
  const batch = backend.batch();
  batch.del(META_APPLIED);
  for (const prefix of [MEMBER_PREFIX, META_ALARM_PREFIX]) {
    const p = new TextEncoder().encode(prefix);
    for await (const [k] of backend.iterate({ gte: p, lt: prefixEnd(p) })) batch.del(k);
  }
  await batch.write({ sync: true });
}

function prefixEnd(p: Uint8Array): Uint8Array {
  const end = Uint8Array.from(p);
  end[end.length - 1]!++;
  return end;
}

function hasPrefix(k: Uint8Array, p: Uint8Array): boolean {
  if (k.byteLength < p.byteLength) return false;
  for (let i = 0; i < p.byteLength; i++) if (k[i] !== p[i]) return false;
  return true;
}

function txnMayWrite(t: { success?: readonly unknown[]; failure?: readonly unknown[] }): boolean {
  const ops = [...(t.success ?? []), ...(t.failure ?? [])] as Array<Record<string, unknown>>;
  return ops.some((o) => 'requestPut' in o || ('requestTxn' in o && txnMayWrite(o.requestTxn as { success?: unknown[]; failure?: unknown[] })));
}

function memberKey(id: number): Uint8Array {
  return new TextEncoder().encode(MEMBER_PREFIX + id.toString(16).padStart(14, '0'));
}

async function readMeta(backend: Backend): Promise<{ applied: number; lastHlc: Hlc; alarms: Set<AlarmType>; members: Map<number, MemberRecord> }> {
  const raw = await backend.get(META_APPLIED);
  const meta = raw === undefined ? { applied: 0, lastHlc: 0n } : (decodeValue(raw) as { applied: number; lastHlc: bigint });
  const alarms = new Set<AlarmType>();
  const enc = new TextEncoder();
  for await (const [k] of backend.iterate({ gte: enc.encode(META_ALARM_PREFIX), lt: enc.encode(META_ALARM_PREFIX + '\xff') })) {
    alarms.add(new TextDecoder().decode(k).slice(META_ALARM_PREFIX.length) as AlarmType);
  }
  const members = new Map<number, MemberRecord>();
  for await (const [, v] of backend.iterate({ gte: enc.encode(MEMBER_PREFIX), lt: enc.encode(MEMBER_PREFIX + '\xff') })) {
    const m = decodeValue(v) as unknown as MemberRecord;
    members.set(m.id, m);
  }
  return { applied: meta.applied, lastHlc: meta.lastHlc, alarms, members };
}
