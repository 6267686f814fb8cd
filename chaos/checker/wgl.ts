// The Wing–Gong linearizability search with Lowe's memoization, for the operations of one key.
//
// Every operation becomes two entries, its call and its return, in one doubly linked list sorted by time. An
// operation may be linearized next if its call comes before the first return still in the list (it was
// invoked before the earliest pending completion). Linearizing it lifts its two entries out of the list and
// descends; when no candidate works, the search backtracks: the last operation's entries go back exactly
// where they were (dancing links) and its next sibling is tried. Reaching the end of a frame's candidates at
// the root means no order exists.
//
//   time ──▶    A: [call ───────── return]          the list:  A.call B.call A.ret C.call B.ret C.ret
//                  B: [call ────────── return]       candidates at the root: A, B (before A.ret);
//                        C: [call ────── return]     after A: B, C (before B.ret); after A, B: C.
//
// Lowe's memoization: a configuration is (the set of linearized operations, the model state). Two paths that
// reach the same configuration have the same future, so one seen before is not explored again. The set is a
// bitset; its hash is kept incrementally (XOR of one random word per operation).
//
// Indeterminate operations return at +infinity: their return entries sit after every definite one. They are
// optional: the search succeeds as soon as every required (`ok`) operation is linearized, whether or not the
// indeterminate ones were ("took effect at some point after its invocation, or never"). These reductions keep
// them from multiplying the search space, each sound because an indeterminate operation may always be left out
// (and each checked against brute force by differential.test.ts):
//
//   dominance    (required set R, indeterminate set I, state s) is no better than (R, I', s) for I' ⊆ I: what
//                can be done after placing more optional operations can be done without them. So the memo
//                keeps, per (R, s), the sets I explored, and prunes any I that contains one of them.
//   no-ops       an indeterminate operation that would not change the state (a write of the current value)
//                is never placed: leaving it out is at least as good.
//   liveness     an indeterminate operation is placed only if the operation right after it depends on the
//                state it leaves (a read, a swap, an append: anything but a blind write). Followed by a blind
//                write it would be dead, and the same order without it is just as valid. So a frame offers
//                only the optional operations whose result some candidate could observe, and offers them
//                first (the timed-out write a read needs is found before everything concurrent with that
//                read is permuted).
//   symmetry     indeterminate operations with the same effect (two timed-out `write 3`) are interchangeable
//                once both are invoked, so each such class is placed only in order of invocation: any valid
//                order can be rewritten that way (the earliest-invoked member takes the earliest slot).
//   unobservable a value no read, swap or refused swap of the key could ever name is dropped (optional
//                writes of it, when nothing could need the state to move on) or merged into one shared state,
//                UNOBSERVABLE (see `withoutUnobservable` and `stepFor`).
import { Effect, step, textOf, UNOBSERVABLE, type PreparedOp } from './models.js';

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
  const search = new Search(withoutUnobservable(ops), initialState, limits);
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

/**
 * The configurations seen with one required set and state: the optional sets explored with them, kept as an
 * antichain (a set that contains another is dominated by it and dropped).
 */
interface ConfigurationGroup {
  readonly required: Uint32Array;
  readonly state: string;
  optionals: Uint32Array[];
}

/** Operations numbered apart by kind, so each bitset is as short as its kind is numerous. */
interface Slots {
  readonly slotOf: Int32Array;
  readonly requiredCount: number;
  readonly optionalCount: number;
}

function assignSlots(ops: readonly PreparedOp[]): Slots {
  const slotOf = new Int32Array(ops.length);
  let requiredCount = 0;
  let optionalCount = 0;
  ops.forEach((p, i) => {
    slotOf[i] = p.required ? requiredCount++ : optionalCount++;
  });
  return { slotOf, requiredCount, optionalCount };
}

class Search {
  private readonly entries: Entries;
  private readonly head: number;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly callEntryOf: Int32Array;
  private readonly slots: Slots;
  private readonly requiredBits: Uint32Array;
  private readonly optionalBits: Uint32Array;
  /** One random word per required slot: the required set's hash is the XOR of its members' words. */
  private readonly zobrist: Uint32Array;
  private requiredHash = 0;
  private readonly memo = new Map<number, ConfigurationGroup[]>();
  private memoBytes = 0;
  private configurations = 0;
  private steps = 0;
  /** Symmetry classes of indeterminate operations: class of each operation (-1: required), rank within it. */
  private readonly classOf: Int32Array;
  private readonly rankInClass: Int32Array;
  /** Per class, the rank of the next member that may be linearized (all earlier ones are). */
  private readonly classNext: Int32Array;
  // One frame per depth: the operations that may come next, how far they were tried, the return entry that
  // bounds them; and the operation linearized to reach the next depth, with the state before it.
  private readonly frameCandidates: number[][] = [];
  private readonly frameCursor: number[] = [];
  private readonly frameBound: number[] = [];
  /** The frame was opened by placing an optional operation: its next operation must read the state (liveness). */
  private readonly frameMustObserve: boolean[] = [];
  private readonly linearizedAt: number[] = [];
  private readonly stateBefore: string[] = [];
  /** With appends: the texts reads and swaps name, sorted, to tell whether an appended state is observable. */
  private readonly observedTexts: readonly string[] | undefined;
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
    for (let i = 0; i < n; i++) {
      this.next[i] = i + 1 < n ? i + 1 : NIL;
      this.prev[i] = i === 0 ? this.head : i - 1;
    }
    this.next[this.head] = n > 0 ? 0 : NIL;
    this.prev[this.head] = NIL;
    this.callEntryOf = new Int32Array(ops.length);
    for (let e = 0; e < n; e++) if (this.entries.isCall[e] === 1) this.callEntryOf[this.entries.opOf[e]!] = e;
    this.slots = assignSlots(ops);
    this.requiredBits = new Uint32Array(Math.ceil(this.slots.requiredCount / 32));
    this.optionalBits = new Uint32Array(Math.ceil(this.slots.optionalCount / 32));
    this.zobrist = zobristWords(this.slots.requiredCount);
    const classes = symmetryClasses(ops);
    this.classOf = classes.classOf;
    this.rankInClass = classes.rankInClass;
    this.classNext = new Int32Array(classes.count);
    this.state = initialState;
    this.requiredLeft = this.slots.requiredCount;
    this.observedTexts = ops.some((p) => p.effect === Effect.Append) ? observedTextsOf(ops) : undefined;
  }

  run(): SearchResult {
    this.openFrame();
    while (this.requiredLeft > 0) {
      if (++this.steps % STEPS_PER_CLOCK_CHECK === 0 && performance.now() > this.limits.deadlineMs) {
        return this.giveUp('time-limit');
      }
      const candidates = this.frameCandidates[this.depth]!;
      const cursor = this.frameCursor[this.depth]!;
      if (cursor < candidates.length) {
        this.frameCursor[this.depth] = cursor + 1;
        const placed = this.tryLinearize(candidates[cursor]!);
        if (placed === 'memory-limit') return this.giveUp('memory-limit');
        if (placed) this.openFrame();
        continue;
      }
      // Every candidate failed: the bounding operation cannot be linearized after this prefix.
      this.noteFrontier();
      if (this.depth === 0) return this.result('not-linearizable');
      this.backtrack();
    }
    return { ...this.result('linearizable'), linearization: this.linearized() };
  }

  /**
   * Starts a frame at the current depth: the calls before the first return still in the list, in the order
   * `observable` explains (optional operations nothing could observe next are left out: liveness).
   */
  private openFrame(): void {
    const required: number[] = [];
    const optional: number[] = [];
    let e = this.next[this.head]!;
    for (; e !== NIL && this.entries.isCall[e] === 1; e = this.next[e]!) {
      const op = this.entries.opOf[e]!;
      (this.ops[op]!.required ? required : optional).push(op);
    }
    let candidates = required;
    if (optional.length > 0) {
      const { strong, weak } = this.observable(optional, required);
      candidates = [...strong, ...weak, ...required];
    }
    this.frameCandidates[this.depth] = candidates;
    this.frameCursor[this.depth] = 0;
    this.frameBound[this.depth] = e;
    this.frameMustObserve[this.depth] = this.depth > 0 && !this.ops[this.linearizedAt[this.depth - 1]!]!.required;
  }

  /**
   * Sorts the optional candidates by what could observe their result right after them: `strong` ones make a
   * waiting read or swap legal (tried first: that is what a timed-out write is usually needed for); `weak`
   * ones could only be followed by an append or a refused swap. Both go before the required candidates:
   * measured on generated histories, finding the needed timed-out operation first beats exploring smaller
   * optional sets first (required-first made some linearizable 10k-operation histories 20 to 50 times slower).
   * The rest could not be followed by anything and are left out.
   */
  private observable(optional: readonly number[], required: readonly number[]): { strong: number[]; weak: number[] } {
    const observed = new Set<string>();
    // An append depends on any state it extends; a refused swap of `a` depends on leaving the state `a`, so
    // it makes any change useful when the state is `a` now (otherwise it could go first, and needs nothing).
    let observesAnything = false;
    for (const op of [...required, ...optional]) {
      const p = this.ops[op]!;
      if (p.effect === Effect.Read || p.effect === Effect.Swap) observed.add(p.a);
      else if (p.effect === Effect.Append || (p.effect === Effect.SwapRefused && p.a === this.state)) observesAnything = true;
    }
    const strong: number[] = [];
    const weak: number[] = [];
    for (const op of optional) {
      const after = this.stepFor(this.ops[op]!);
      if (after === undefined || after === this.state) continue;
      if (observed.has(after)) strong.push(op);
      else if (observesAnything) weak.push(op);
    }
    return { strong, weak };
  }

  /** Linearizes `op` now if the model allows it, the reductions do not rule it out, and the configuration is new. */
  private tryLinearize(op: number): boolean | 'memory-limit' {
    const prepared = this.ops[op]!;
    const cls = this.classOf[op]!;
    if (cls >= 0 && this.rankInClass[op] !== this.classNext[cls]) return false; // an earlier twin goes first
    if (this.frameMustObserve[this.depth] && !this.dependsOnLast(prepared)) return false; // liveness: see above
    const after = this.stepFor(prepared);
    if (after === undefined) return false;
    if (!prepared.required && after === this.state) return false; // an optional no-op: leaving it out is as good
    this.flip(op);
    const remembered = this.remember(after);
    if (remembered !== true) {
      this.flip(op);
      return remembered;
    }
    this.linearizedAt[this.depth] = op;
    this.stateBefore[this.depth] = this.state;
    this.depth++;
    this.state = after;
    this.lift(this.callEntryOf[op]!);
    if (prepared.required) this.requiredLeft--;
    if (cls >= 0) this.classNext[cls]!++;
    return true;
  }

  /**
   * The model's step from the current state, except that an appended state no read or swap could ever name
   * (no observed text starts with its text) becomes UNOBSERVABLE, like a write of such a value (see
   * `withoutUnobservable`).
   */
  private stepFor(prepared: PreparedOp): string | undefined {
    const after = step(this.state, prepared);
    if (after === undefined || prepared.effect !== Effect.Append || after === UNOBSERVABLE) return after;
    return startsSomeText(this.observedTexts!, textOf(after)) ? after : UNOBSERVABLE;
  }

  /**
   * Whether `prepared`, placed right after the optional operation that opened this frame, needs it: a blind
   * write does not (the optional one would be dead), nor does a refused swap whose value the state did not
   * have before it (the swap could go first). Reads and swaps that are legal now do (the optional operation
   * made them so: it is never a no-op), and so do appends (their result extends its state).
   */
  private dependsOnLast(prepared: PreparedOp): boolean {
    if (prepared.effect === Effect.Write) return false;
    if (prepared.effect === Effect.SwapRefused) return this.stateBefore[this.depth - 1] === prepared.a;
    return true;
  }

  /** Undoes the linearization that opened the current frame. */
  private backtrack(): void {
    this.depth--;
    const op = this.linearizedAt[this.depth]!;
    this.state = this.stateBefore[this.depth]!;
    this.flip(op);
    this.unlift(this.callEntryOf[op]!);
    if (this.ops[op]!.required) this.requiredLeft++;
    const cls = this.classOf[op]!;
    if (cls >= 0) this.classNext[cls]!--;
  }

  /**
   * Adds the current configuration (with `state`) to the memo: true if it is new, false if it was seen
   * before or is dominated by a configuration seen before (same required set and state, fewer optional ones).
   */
  private remember(state: string): boolean | 'memory-limit' {
    const key = (this.requiredHash ^ Math.imul(hashText(state), 0x9e3779b1)) >>> 0;
    let bucket = this.memo.get(key);
    if (bucket === undefined) {
      bucket = [];
      this.memo.set(key, bucket);
    }
    let group = bucket.find((g) => g.state === state && sameBits(g.required, this.requiredBits));
    if (group !== undefined && group.optionals.some((seen) => isSubset(seen, this.optionalBits))) return false;
    const bytes = this.optionalBits.byteLength + MEMO_ENTRY_OVERHEAD_BYTES;
    this.memoBytes += group === undefined ? bytes + this.requiredBits.byteLength + state.length * 2 : bytes;
    if (this.memoBytes > this.limits.memoBytesMax) return 'memory-limit';
    if (group === undefined) {
      group = { required: this.requiredBits.slice(), state, optionals: [] };
      bucket.push(group);
    } else if (this.slots.optionalCount > 0) {
      // Sets that contain the new one are dominated by it from now on.
      group.optionals = group.optionals.filter((seen) => !isSubset(this.optionalBits, seen));
    }
    group.optionals.push(this.optionalBits.slice());
    this.configurations++;
    return true;
  }

  private flip(op: number): void {
    const slot = this.slots.slotOf[op]!;
    if (this.ops[op]!.required) {
      this.requiredBits[slot >>> 5]! ^= 1 << (slot & 31);
      this.requiredHash ^= this.zobrist[slot]!;
    } else {
      this.optionalBits[slot >>> 5]! ^= 1 << (slot & 31);
    }
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
  private noteFrontier(): void {
    if (this.frontier !== undefined && this.frontier.prefix.length >= this.depth) return;
    const bound = this.frameBound[this.depth]!;
    if (bound === NIL) return; // only optional operations were left: not a place where anything got stuck
    this.frontier = {
      prefix: this.linearized(),
      state: this.state,
      blocking: this.ops[this.entries.opOf[bound]!]!.op.id,
      pending: this.frameCandidates[this.depth]!.map((op) => this.ops[op]!.op.id),
      time: this.entries.time[bound]!,
    };
  }

  private linearized(): number[] {
    const ids: number[] = [];
    for (let i = 0; i < this.depth; i++) ids.push(this.ops[this.linearizedAt[i]!]!.op.id);
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

/**
 * Prepares a key's operations for the search (the static form of "liveness" above). A value is observable if
 * some read, swap or refused swap names it or, when the key has appends, some read or swap's text starts with
 * its text. Optional operations whose result is not observable are left out when the key has no refused
 * swaps: placing one only changes states that no later operation could accept until a blind write resets
 * them. Otherwise (a refused swap may need the state to have moved on, whatever to) every unobservable result
 * becomes UNOBSERVABLE, so that the memo, the no-op rule and the symmetry classes treat them as one state.
 */
function withoutUnobservable(ops: readonly PreparedOp[]): readonly PreparedOp[] {
  const observed = new Set<string>();
  for (const p of ops) {
    if (p.effect === Effect.Read || p.effect === Effect.Swap || p.effect === Effect.SwapRefused) observed.add(p.a);
  }
  const appends = ops.some((p) => p.effect === Effect.Append);
  const observedTexts = appends ? [...observed].map(textOf) : [];
  const isObservable = (value: string): boolean =>
    observed.has(value) || (appends && observedTexts.some((seen) => seen.startsWith(textOf(value))));
  const refusals = ops.some((p) => p.effect === Effect.SwapRefused);
  const kept: PreparedOp[] = [];
  for (const p of ops) {
    if (p.effect === Effect.Append) {
      if (p.required || refusals || observedTexts.some((text) => text.includes(p.a))) kept.push(p);
    } else if (p.effect === Effect.Write || p.effect === Effect.Swap) {
      const result = p.effect === Effect.Swap ? p.b : p.a;
      if (isObservable(result)) kept.push(p);
      else if (p.required || refusals) kept.push(p.effect === Effect.Swap ? { ...p, b: UNOBSERVABLE } : { ...p, a: UNOBSERVABLE });
    } else {
      kept.push(p);
    }
  }
  return kept;
}

function observedTextsOf(ops: readonly PreparedOp[]): string[] {
  const texts = new Set<string>();
  for (const p of ops) {
    if (p.effect === Effect.Read || p.effect === Effect.Swap || p.effect === Effect.SwapRefused) texts.add(textOf(p.a));
  }
  return [...texts].sort();
}

/** Whether some text in `sorted` starts with `prefix`: the first text not below `prefix` is the only candidate. */
function startsSomeText(sorted: readonly string[], prefix: string): boolean {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (sorted[mid]! < prefix) low = mid + 1;
    else high = mid;
  }
  return low < sorted.length && sorted[low]!.startsWith(prefix);
}

/** Groups indeterminate operations by identical effect; ranks each group's members in order of invocation. */
function symmetryClasses(ops: readonly PreparedOp[]): { classOf: Int32Array; rankInClass: Int32Array; count: number } {
  const classOf = new Int32Array(ops.length).fill(-1);
  const rankInClass = new Int32Array(ops.length);
  const byInvocation = ops.map((_, i) => i).sort((x, y) => ops[x]!.op.callTime - ops[y]!.op.callTime || ops[x]!.op.callIndex - ops[y]!.op.callIndex);
  const classIds = new Map<string, number>();
  const sizes: number[] = [];
  for (const i of byInvocation) {
    const p = ops[i]!;
    if (p.required) continue;
    const signature = `${p.effect}\u0000${p.a}\u0000${p.b}`;
    let id = classIds.get(signature);
    if (id === undefined) {
      id = sizes.length;
      classIds.set(signature, id);
      sizes.push(0);
    }
    classOf[i] = id;
    rankInClass[i] = sizes[id]!++;
  }
  return { classOf, rankInClass, count: sizes.length };
}

/** Every member of `x` is in `y`. */
function isSubset(x: Uint32Array, y: Uint32Array): boolean {
  for (let i = 0; i < x.length; i++) if ((x[i]! & ~y[i]!) !== 0) return false;
  return true;
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
