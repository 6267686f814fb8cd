// checkHistory: a whole history, split by key and searched key by key.
//
// P-compositionality (Herlihy & Wing's locality): a history is linearizable if and only if its restriction to
// each object is. Each key of a key-value store is such an object, so each key is searched alone; a history of
// 10,000 operations over 10 keys is ten searches of about 1,000, not one of 10,000.
import type { HistoryEvent } from '../history.js';
import { strict as assert } from 'node:assert';
import { type Model, MODELS, NO_VALUE, prepareOperation, step, type PreparedOp } from './models.js';
import { HistoryError, type Operation, toOperations } from './operations.js';
import { MEMO_BYTES_MAX, searchLinearization, type Frontier, type SearchVerdict } from './wgl.js';

export type Verdict = SearchVerdict;

/** The verdict for one key. */
export interface KeyResult {
  /** The key; `null` for a single-register history whose events carry no key. */
  readonly key: string | null;
  readonly verdict: Verdict;
  /** Operations of this key the search considered (failed operations and indeterminate reads left out). */
  readonly operations: number;
  readonly reason?: 'time-limit' | 'memory-limit' | 'not-started';
  /** For a violation (or as far as an undecided search got): where linearization became impossible. */
  readonly frontier?: Frontier;
  /** For a linearizable key: one valid order of the operations it placed (ids; unplaced indeterminate ones left out). */
  readonly linearization?: readonly number[];
  readonly configurations: number;
  readonly elapsedMs: number;
}

/** The first violation found, in the terms of the operations themselves. */
export interface Violation {
  readonly key: string | null;
  /** The longest linearizable prefix found, in order. */
  readonly prefix: readonly Operation[];
  /** The model state after that prefix (canonical JSON; 'null' for no value). */
  readonly state: string;
  /** The operation that returned without any order able to place it. */
  readonly blocking: Operation;
  /** Operations invoked and not yet placed at that point; none of them could come next. */
  readonly pending: readonly Operation[];
  /** Time at which linearization became impossible (the blocking operation's return). */
  readonly time: number;
}

export interface CheckResult {
  readonly verdict: Verdict;
  readonly model: Model;
  /** Operations in the history (every invocation, failed ones included). */
  readonly operations: number;
  readonly keys: number;
  readonly elapsedMs: number;
  /** One result per key, in order of first appearance. */
  readonly perKey: readonly KeyResult[];
  /** Present when the verdict is `not-linearizable`. */
  readonly violation?: Violation;
  /** All operations, indexed by id (what `Violation` and the report refer to). */
  readonly history: readonly Operation[];
}

export interface CheckOptions {
  readonly model: Model;
  /** Wall-clock budget for the whole history; past it, the undecided keys are `unknown`. Default: none. */
  readonly timeLimitMs?: number;
  /** Memory budget for one key's memo cache (estimated bytes). Default MEMO_BYTES_MAX. */
  readonly memoBytesMax?: number;
}

/**
 * Decides whether `events` is linearizable with respect to `options.model`. Throws `HistoryError` for a
 * malformed history (an operation the model does not know, a completion without an invoke, ...).
 */
export function checkHistory(events: readonly HistoryEvent[], options: CheckOptions): CheckResult {
  const started = performance.now();
  if (!MODELS.includes(options.model)) {
    throw new HistoryError(`unknown model ${JSON.stringify(options.model)} (use ${MODELS.join(' or ')})`);
  }
  const timeLimitMs = options.timeLimitMs ?? Number.POSITIVE_INFINITY;
  if (!(timeLimitMs > 0)) throw new HistoryError(`the time limit must be positive, got ${timeLimitMs}`);
  const history = toOperations(events);
  const partitions = partitionByKey(history, options.model);
  const limits = { deadlineMs: started + timeLimitMs, memoBytesMax: options.memoBytesMax ?? MEMO_BYTES_MAX };
  const perKey: KeyResult[] = [];
  for (const [key, ops] of partitions) {
    if (performance.now() > limits.deadlineMs) {
      perKey.push({ key, verdict: 'unknown', operations: ops.length, reason: 'not-started', configurations: 0, elapsedMs: 0 });
      continue;
    }
    perKey.push(checkKey(key, ops, limits));
  }
  const verdict = overallVerdict(perKey);
  const failed = perKey.find((r) => r.verdict === 'not-linearizable');
  const result: CheckResult = {
    verdict,
    model: options.model,
    operations: history.length,
    keys: partitions.size,
    elapsedMs: performance.now() - started,
    perKey,
    history,
  };
  return failed === undefined ? result : { ...result, violation: describeViolation(failed, history, options.model) };
}

function checkKey(key: string | null, ops: readonly PreparedOp[], limits: { deadlineMs: number; memoBytesMax: number }): KeyResult {
  const started = performance.now();
  const search = searchLinearization(ops, NO_VALUE, limits);
  const result: KeyResult = {
    key,
    verdict: search.verdict,
    operations: ops.length,
    configurations: search.configurations,
    elapsedMs: performance.now() - started,
  };
  return {
    ...result,
    ...(search.reason === undefined ? {} : { reason: search.reason }),
    ...(search.frontier === undefined ? {} : { frontier: search.frontier }),
    ...(search.linearization === undefined ? {} : { linearization: search.linearization }),
  };
}

/** Groups the operations that constrain anything by key, in order of the key's first appearance. */
function partitionByKey(history: readonly Operation[], model: Model): Map<string | null, PreparedOp[]> {
  const partitions = new Map<string | null, PreparedOp[]>();
  for (const op of history) {
    const key = op.key ?? null;
    let ops = partitions.get(key);
    if (ops === undefined) {
      ops = [];
      partitions.set(key, ops);
    }
    const prepared = prepareOperation(model, op);
    if (prepared !== undefined) ops.push(prepared);
  }
  return partitions;
}

/** Any violation decides; otherwise any undecided key leaves the whole undecided. */
function overallVerdict(perKey: readonly KeyResult[]): Verdict {
  if (perKey.some((r) => r.verdict === 'not-linearizable')) return 'not-linearizable';
  if (perKey.some((r) => r.verdict === 'unknown')) return 'unknown';
  return 'linearizable';
}

function describeViolation(failed: KeyResult, history: readonly Operation[], model: Model): Violation {
  const frontier = failed.frontier!;
  const opOf = (id: number): Operation => history[id]!;
  const prefix = frontier.prefix.map(opOf);
  return {
    key: failed.key,
    prefix,
    state: replay(prefix, model),
    blocking: opOf(frontier.blocking),
    pending: frontier.pending.map(opOf),
    time: frontier.time,
  };
}

/**
 * The state a prefix leaves, computed again from the operations themselves: the search may have merged
 * states nothing observes (UNOBSERVABLE), and a report should name the real value.
 */
function replay(prefix: readonly Operation[], model: Model): string {
  let state = NO_VALUE;
  for (const op of prefix) {
    const prepared = prepareOperation(model, op);
    const after = prepared === undefined ? state : step(state, prepared);
    assert(after !== undefined, `the linearizable prefix does not replay at operation ${op.id}`);
    state = after;
  }
  return state;
}
