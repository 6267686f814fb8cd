// The Wing–Gong linearizability search with Lowe's memoization, for the operations of one key.
//
// Every operation becomes two entries, its call and its return, in one doubly linked list sorted by time. The
// search walks the list from the head. At a call it tries to linearize that operation now: if the model allows
// it, the operation's two entries are lifted out of the list, the old state is pushed, and the walk restarts
// from the head. Reaching a return means the operation it belongs to was not linearized before it completed:
// every choice made so far is wrong, so the last linearized operation is put back (its entries unlifted, exactly
// where they were: dancing links) and the walk continues after it.
//
//   time ──▶    A: [call ───────── return]          the list:  A.call B.call A.ret C.call B.ret C.ret
//                  B: [call ────────── return]       linearize A (lift), then B, then C: done;
//                        C: [call ────── return]     or at A.ret with A unplaced: backtrack.
//
// Lowe's memoization: a configuration is (the set of linearized operations, the model state). Two paths that
// reach the same configuration have the same future, so a configuration seen before is not explored twice.
// The set is a bitset; its hash is kept incrementally (XOR of one random word per operation), so a cache probe
// costs the state's hash plus a comparison of the candidates with the same hash.
//
// Indeterminate operations return at +infinity: their return entries sit after every definite one. They are
// optional: the search succeeds as soon as every required (`ok`) operation is linearized, whether or not the
// indeterminate ones were, which is "took effect at some point after its invocation, or never".
import { step, type PreparedOp } from './models.js';

/** Where the search stopped when it had to give up, or why the history is not linearizable. */
export interface Frontier {
  /** The longest sequence of operations the search could linearize, in linearization order (operation ids). */
  readonly prefix: readonly number[];
  /** The model state after that prefix (canonical JSON). */
  readonly state: string;
  /** The operation that had to be linearized before it returned, and could not be (operation id). */
  readonly blocking: number;
  /** Operations that were pending at that point (invoked, not yet linearized); none could be placed next. */
  readonly pending: readonly number[];
  /** The time at which linearization became impossible: the blocking operation's return. */
  readonly time: number;
}

export type SearchVerdict = 'linearizable' | 'not-linearizable' | 'unknown';

export interface SearchResult {
  readonly verdict: SearchVerdict;
  /** Why the search gave up, for `unknown`. */
  readonly reason?: 'time-limit' | 'memory-limit';
  /** For `linearizable`: one valid order of the linearized operations (operation ids). */
  readonly linearization?: readonly number[];
  /** For `not-linearizable` (and `unknown`, as far as it got): the deepest point the search reached. */
  readonly frontier?: Frontier;
  /** Configurations remembered, and steps taken (linearize or backtrack), for reports and tuning. */
  readonly configurations: number;
  readonly steps: number;
}

export interface SearchLimits {
  /** `performance.now()` value after which the search gives up with `unknown`. */
  readonly deadlineMs: number;
  /** Upper bound on the memory the memo cache may take (estimated); past it the search gives up with `unknown`. */
  readonly memoBytesMax: number;
}

/** A default memo budget: big enough for every realistic key, small enough for a shared CI machine. */
export const MEMO_BYTES_MAX = 512 * 1024 * 1024;
/** Estimated overhead of one memo entry besides its bitset (object, array slot, state string reference). */
const MEMO_ENTRY_OVERHEAD_BYTES = 96;
/** How many steps between two looks at the clock. */
const STEPS_PER_CLOCK_CHECK = 4096;
const NIL = -1;

interface Entries {
  readonly opOf: Int32Array;
  readonly isCall: Uint8Array;
  readonly matchOf: Int32Array;
  readonly time: Float64Array;
}

/** Checks the operations of one key. `ops` must all belong to that key. */
export function searchLinearization(ops: readonly PreparedOp[], initialState: string, limits: SearchLimits): SearchResult {
  const search = new Search(ops, initialState, limits);
  return search.run();
}

/** Call and return entries sorted by time; at equal times calls come first (so the two overlap: no false alarm). */
function buildEntries(ops: readonly PreparedOp[]): Entries {
  const order: { op: number; call: boolean; time: number; tie: number }[] = [];
  ops.forEach((p, i) => {
    order.push({ op: i, call: true, time: p.op.callTime, tie: p.op.callIndex });
    order.push({ op: i, call: false, time: p.op.returnTime, tie: p.op.returnIndex ?? Number.MAX_SAFE_INTEGER });
  });
  order.sort((x, y) => x.time - y.time || Number(y.call) - Number(x.call) || x.tie - y.tie);
  const n = order.length;
  const entries: Entries = {
    opOf: new Int32Array(n),
    isCall: new Uint8Array(n),
    matchOf: new Int32Array(n),
    time: new Float64Array(n),
  };
  const callEntryOf = new Int32Array(ops.length);
  order.forEach((e, i) => {
    entries.opOf[i] = e.op;
    entries.isCall[i] = e.call ? 1 : 0;
    entries.time[i] = e.time;
    if (e.call) callEntryOf[e.op] = i;
  });
  order.forEach((e, i) => {
    if (!e.call) entries.matchOf[callEntryOf[e.op]!] = i;
  });
  return entries;
}

/** One memoized configuration. */
interface Configuration {
  readonly bits: Uint32Array;
  readonly state: string;
}

class Search {
  private readonly entries: Entries;
  private readonly head: number;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly bits: Uint32Array;
  private readonly zobrist: Uint32Array;
  private bitsHash = 0;
  private readonly memo = new Map<number, Configuration[]>();
  private memoBytes = 0;
  private configurations = 0;
  private steps = 0;
  private readonly stackEntry: Int32Array;
  private readonly stackState: string[] = [];
  private depth = 0;
  private state: string;
  private requiredLeft: number;
  private frontier: Frontier | undefined;

  constructor(
    private readonly ops: readonly PreparedOp[],
    initialState: string,
    private readonly limits: SearchLimits,
  ) {
    this.entries = buildEntries(ops);
    const n = this.entries.opOf.length;
    this.head = n;
    this.next = new Int32Array(n + 1);
    this.prev = new Int32Array(n + 1);
    for (let i = 0; i <= n; i++) {
      this.next[i] = i + 1 < n ? i + 1 : NIL;
      this.prev[i] = i === 0 ? this.head : i - 1;
    }
    this.next[this.head] = n > 0 ? 0 : NIL;
    this.prev[this.head] = NIL;
    this.bits = new Uint32Array(Math.ceil(ops.length / 32));
    this.zobrist = zobristWords(ops.length);
    this.stackEntry = new Int32Array(ops.length);
    this.state = initialState;
    this.requiredLeft = ops.filter((p) => p.required).length;
  }

  run(): SearchResult {
    let entry = this.next[this.head]!;
    while (this.requiredLeft > 0) {
      if (++this.steps % STEPS_PER_CLOCK_CHECK === 0 && performance.now() > this.limits.deadlineMs) {
        return this.giveUp('time-limit');
      }
      if (this.entries.isCall[entry] === 1) {
        const placed = this.tryLinearize(entry);
        if (placed === 'memory-limit') return this.giveUp('memory-limit');
        entry = placed ? this.next[this.head]! : this.next[entry]!;
        continue;
      }
      // A return entry: its operation should have been linearized by now and was not.
      this.noteFrontier(entry);
      if (this.depth === 0) return this.result('not-linearizable');
      entry = this.backtrack();
    }
    return { ...this.result('linearizable'), linearization: this.linearized() };
  }

  /** Linearizes the operation of `callEntry` now if the model allows it and the configuration is new. */
  private tryLinearize(callEntry: number): boolean | 'memory-limit' {
    const op = this.entries.opOf[callEntry]!;
    const prepared = this.ops[op]!;
    const after = step(this.state, prepared);
    if (after === undefined) return false;
    this.flip(op);
    const remembered = this.remember(after);
    if (remembered !== true) {
      this.flip(op);
      return remembered;
    }
    this.stackEntry[this.depth] = callEntry;
    this.stackState[this.depth] = this.state;
    this.depth++;
    this.state = after;
    this.lift(callEntry);
    if (prepared.required) this.requiredLeft--;
    return true;
  }

  /** Undoes the last linearization; returns the entry to continue the walk from. */
  private backtrack(): number {
    this.depth--;
    const callEntry = this.stackEntry[this.depth]!;
    const op = this.entries.opOf[callEntry]!;
    this.state = this.stackState[this.depth]!;
    this.flip(op);
    this.unlift(callEntry);
    if (this.ops[op]!.required) this.requiredLeft++;
    return this.next[callEntry]!;
  }

  /** Adds the current linearized set with `state` to the memo: true if new, false if seen before. */
  private remember(state: string): boolean | 'memory-limit' {
    const key = (this.bitsHash ^ Math.imul(hashText(state), 0x9e3779b1)) >>> 0;
    const bucket = this.memo.get(key);
    if (bucket !== undefined) {
      for (const seen of bucket) {
        if (seen.state === state && sameBits(seen.bits, this.bits)) return false;
      }
    }
    this.memoBytes += this.bits.byteLength + state.length * 2 + MEMO_ENTRY_OVERHEAD_BYTES;
    if (this.memoBytes > this.limits.memoBytesMax) return 'memory-limit';
    const configuration = { bits: this.bits.slice(), state };
    if (bucket === undefined) this.memo.set(key, [configuration]);
    else bucket.push(configuration);
    this.configurations++;
    return true;
  }

  private flip(op: number): void {
    this.bits[op >>> 5]! ^= 1 << (op & 31);
    this.bitsHash ^= this.zobrist[op]!;
  }

  /** Takes a call entry and its return entry out of the list (they stay linked to their old neighbours). */
  private lift(callEntry: number): void {
    this.unlink(callEntry);
    this.unlink(this.entries.matchOf[callEntry]!);
  }

  /** Puts them back, in the reverse order of `lift`. */
  private unlift(callEntry: number): void {
    this.relink(this.entries.matchOf[callEntry]!);
    this.relink(callEntry);
  }

  private unlink(e: number): void {
    const before = this.prev[e]!;
    const after = this.next[e]!;
    this.next[before] = after;
    if (after !== NIL) this.prev[after] = before;
  }

  private relink(e: number): void {
    const before = this.prev[e]!;
    const after = this.next[e]!;
    this.next[before] = e;
    if (after !== NIL) this.prev[after] = e;
  }

  /** Keeps the deepest point reached: the longest prefix, and what could not follow it. */
  private noteFrontier(returnEntry: number): void {
    if (this.frontier !== undefined && this.frontier.prefix.length >= this.depth) return;
    const pending: number[] = [];
    for (let e = this.next[this.head]!; e !== returnEntry && e !== NIL; e = this.next[e]!) {
      if (this.entries.isCall[e] === 1) pending.push(this.ops[this.entries.opOf[e]!]!.op.id);
    }
    const blocking = this.ops[this.entries.opOf[returnEntry]!]!.op.id;
    this.frontier = {
      prefix: this.linearized(),
      state: this.state,
      blocking,
      pending,
      time: this.entries.time[returnEntry]!,
    };
  }

  private linearized(): number[] {
    const ids: number[] = [];
    for (let i = 0; i < this.depth; i++) ids.push(this.ops[this.entries.opOf[this.stackEntry[i]!]!]!.op.id);
    return ids;
  }

  private giveUp(reason: 'time-limit' | 'memory-limit'): SearchResult {
    return { ...this.result('unknown'), reason };
  }

  private result(verdict: SearchVerdict): SearchResult {
    const base = { verdict, configurations: this.configurations, steps: this.steps };
    return this.frontier === undefined || verdict === 'linearizable' ? base : { ...base, frontier: this.frontier };
  }
}

function sameBits(x: Uint32Array, y: Uint32Array): boolean {
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** FNV-1a over UTF-16 code units: states are short strings, and only need to spread across buckets. */
function hashText(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** One pseudo-random word per operation, from a fixed seed so runs are reproducible (xorshift32). */
function zobristWords(count: number): Uint32Array {
  const words = new Uint32Array(count);
  let x = 0x2545f491;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return words;
}
