// Seeded generator of histories that are linearizable by construction, for tests and for timing the checker.
//
// It runs a sequential model (one value per key) under a simulated clock with `processes` clients. At every
// tick one enabled action is drawn at random: an idle client invokes an operation, a pending operation takes
// effect (its linearization point: the model is updated and the result fixed), or an operation that took
// effect completes (ok). Some operations instead end as `fail` before taking effect, or as `info` either
// after taking effect or without ever doing so (the client then moves to a fresh process id, as Jepsen's do).
// Because every `ok` result comes from the model at a point between invoke and completion, the history is
// linearizable; corrupting one read afterwards makes it not (the negative controls in the tests).
import type { HistoryEvent } from '../history.js';
import { SeededRandom } from '../../raft/rng.js';
import type { Model } from './models.js';

export interface GenerateOptions {
  readonly model: Model;
  readonly seed: number;
  readonly operations: number;
  readonly keys: number;
  readonly processes: number;
  /** Chance that an operation ends `info` (unknown outcome); half of those took effect. */
  readonly infoRate?: number;
  /** Chance that an operation ends `fail` without taking effect. */
  readonly failRate?: number;
  /**
   * Values written are drawn from 0..valueDomain-1 (a small domain makes the search work: many states repeat).
   * Undefined: every written value is unique, so each read names the write it saw.
   */
  readonly valueDomain?: number;
  /** kv only: whether to draw appends and deletes too (default true); without them, the chaos harness's mix. */
  readonly appends?: boolean;
}

/** Upper bound on generated operations: the generator is for tests and timing, not for filling memory. */
export const GENERATED_OPERATIONS_MAX = 1_000_000;

interface Outstanding {
  readonly process: number;
  readonly f: string;
  readonly key: string;
  readonly input: unknown;
  /** Set when the operation took effect: the value a read saw, or whether a cas swapped. */
  effect?: { output: unknown };
}

/** Generates a linearizable history; `time` is a tick count (strictly increasing, one event per tick). */
export function generateHistory(options: GenerateOptions): HistoryEvent[] {
  if (!(options.operations >= 0 && options.operations <= GENERATED_OPERATIONS_MAX)) {
    throw new RangeError(`operations must be in 0..${GENERATED_OPERATIONS_MAX}, got ${options.operations}`);
  }
  if (!(options.keys >= 1 && options.processes >= 1)) throw new RangeError('keys and processes must be at least 1');
  return new Generator(options).run();
}

class Generator {
  private readonly rng: SeededRandom;
  private readonly events: HistoryEvent[] = [];
  private readonly state = new Map<string, unknown>();
  private readonly idle: number[] = [];
  private readonly outstanding: Outstanding[] = [];
  private nextProcess: number;
  private nextValue = 1;
  private invoked = 0;

  constructor(private readonly options: GenerateOptions) {
    this.rng = new SeededRandom(options.seed);
    for (let p = 0; p < options.processes; p++) this.idle.push(p);
    this.nextProcess = options.processes;
  }

  run(): HistoryEvent[] {
    while (this.invoked < this.options.operations || this.outstanding.length > 0) {
      const canInvoke = this.invoked < this.options.operations && this.idle.length > 0;
      const pick = this.rng.int(this.outstanding.length + (canInvoke ? 1 : 0));
      if (pick === this.outstanding.length) this.invoke();
      else this.advance(pick);
    }
    return this.events;
  }

  private invoke(): void {
    const process = this.idle.splice(this.rng.int(this.idle.length), 1)[0]!;
    const key = `k${this.rng.int(this.options.keys)}`;
    const [f, input] = this.drawOperation(key);
    this.outstanding.push({ process, f, key, input });
    this.record({ process, type: 'invoke', f, key, value: input });
    this.invoked++;
  }

  /** Moves one outstanding operation forward: take effect, or complete. */
  private advance(at: number): void {
    const op = this.outstanding[at]!;
    const { infoRate = 0, failRate = 0 } = this.options;
    if (op.effect === undefined) {
      if (this.rng.chance(failRate)) return this.complete(at, 'fail', undefined);
      if (this.rng.chance(infoRate / 2)) return this.complete(at, 'info', undefined); // never took effect
      op.effect = { output: this.apply(op) };
      return;
    }
    if (this.rng.chance(infoRate / 2)) return this.complete(at, 'info', undefined); // took effect, unknown to the client
    if (op.f === 'cas' && op.effect.output === false && this.rng.chance(0.5)) return this.complete(at, 'fail', undefined);
    this.complete(at, 'ok', op.effect.output);
  }

  private complete(at: number, type: 'ok' | 'fail' | 'info', value: unknown): void {
    const op = this.outstanding.splice(at, 1)[0]!;
    this.record({ process: op.process, type, f: op.f, key: op.key, value: type === 'ok' ? value : op.input });
    this.idle.push(type === 'info' ? this.nextProcess++ : op.process);
  }

  /** The linearization point: applies the operation to the model; returns what the client will be told. */
  private apply(op: Outstanding): unknown {
    const current = this.state.get(op.key) ?? null;
    switch (op.f) {
      case 'read':
      case 'get':
        return current;
      case 'write':
      case 'put':
        this.state.set(op.key, op.input);
        return op.input;
      case 'delete':
        this.state.set(op.key, null);
        return null;
      case 'append':
        this.state.set(op.key, (typeof current === 'string' ? current : current === null ? '' : JSON.stringify(current)) + String(op.input));
        return op.input;
      default: {
        const [expected, next] = op.input as [unknown, unknown];
        if (current !== expected) return false;
        this.state.set(op.key, next);
        return op.input;
      }
    }
  }

  private drawOperation(key: string): [string, unknown] {
    const roll = this.rng.int(10);
    const register = this.options.model === 'register';
    if (roll < 4) return [register ? 'read' : 'get', null];
    if (roll < 7) return [register ? 'write' : 'put', this.drawValue()];
    if (roll < 9 || register || this.options.appends === false) {
      // Expect the current value half the time, so that swaps succeed often enough to matter.
      const current = this.state.get(key) ?? null;
      const expected = this.rng.chance(0.5) ? current : this.drawValue();
      return ['cas', [expected, this.drawValue()]];
    }
    return this.rng.chance(0.8) ? ['append', `${this.drawValue()};`] : ['delete', null];
  }

  private drawValue(): number {
    const domain = this.options.valueDomain;
    return domain === undefined ? this.nextValue++ : this.rng.int(domain);
  }

  private record(event: Omit<HistoryEvent, 'time' | 'index'>): void {
    // A single register is written without keys, as Jepsen's register histories are.
    const { key, ...rest } = event;
    const keyed = this.options.keys === 1 && this.options.model === 'register' ? rest : { ...rest, key };
    this.events.push({ ...keyed, time: this.events.length, index: this.events.length });
  }
}
