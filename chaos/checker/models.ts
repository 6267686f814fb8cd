// The sequential specifications an operation history is checked against.
//
// A model state is the canonical JSON text of the value under one key ('null' when there is none), so that two
// states are equal exactly when their strings are: the search compares and hashes them in its memo cache
// without knowing anything about the model. Operations are prepared once (values turned into canonical text,
// shapes checked) so the search's inner loop only compares strings.
import { HistoryError, type Operation } from './operations.js';

export type Model = 'register' | 'kv';

export const MODELS: readonly Model[] = ['register', 'kv'];

/** What an operation does to the state, after its names were mapped onto the model's vocabulary. */
export const Effect = {
  /** Observes the state: legal when it equals `a`. */
  Read: 0,
  /** Sets the state to `a`. */
  Write: 1,
  /** Legal when the state equals `a`; sets it to `b`. */
  Swap: 2,
  /** A compare-and-set that reported a mismatch: legal when the state differs from `a`; changes nothing. */
  SwapRefused: 3,
  /** Appends the text `a` to the state's text. */
  Append: 4,
} as const;
export type Effect = (typeof Effect)[keyof typeof Effect];

export interface PreparedOp {
  readonly op: Operation;
  readonly effect: Effect;
  readonly a: string;
  readonly b: string;
  /** An `ok` operation must be linearized; an indeterminate one may be, or not. */
  readonly required: boolean;
}

export const NO_VALUE = 'null';

/**
 * The state after a write of a value that no read, swap or refused swap of the key ever names (and no read's
 * text starts with, when there are appends): every such state behaves the same from then on (no read or swap
 * can succeed, every refused swap can, a write replaces it), so the search treats them as one. Not JSON, so it
 * never equals a real value.
 */
export const UNOBSERVABLE = '\u0000unobservable';

/** JSON with object keys sorted, so equal values always give the same text. `undefined` reads as no value. */
export function canonical(value: unknown): string {
  if (value === undefined || value === null) return NO_VALUE;
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  if (typeof value === 'bigint') return value.toString();
  return JSON.stringify(value) ?? NO_VALUE;
}

/** The names each model accepts for each effect. */
const VOCABULARY: Record<Model, Record<string, 'read' | 'write' | 'cas' | 'append' | 'delete'>> = {
  register: { read: 'read', write: 'write', cas: 'cas' },
  kv: { get: 'read', put: 'write', cas: 'cas', append: 'append', delete: 'delete' },
};

/**
 * Maps one operation onto the model. Returns `undefined` for an operation that constrains nothing and can be
 * left out of the search: a failed one (it certainly did not happen) or an indeterminate read (it changed
 * nothing and observed nothing we know).
 */
export function prepareOperation(model: Model, op: Operation): PreparedOp | undefined {
  const kind = VOCABULARY[model][op.f];
  if (kind === undefined) {
    const known = Object.keys(VOCABULARY[model]).join(', ');
    throw new HistoryError(`event ${op.callIndex}: the ${model} model has no operation "${op.f}" (it knows ${known})`);
  }
  if (op.outcome === 'fail') return undefined;
  const required = op.outcome === 'ok';
  switch (kind) {
    case 'read':
      return required ? { op, effect: Effect.Read, a: canonical(op.output), b: '', required } : undefined;
    case 'write':
      return { op, effect: Effect.Write, a: canonical(op.input), b: '', required };
    case 'delete':
      return { op, effect: Effect.Write, a: NO_VALUE, b: '', required };
    case 'append':
      return { op, effect: Effect.Append, a: appendText(op), b: '', required };
    case 'cas':
      return prepareSwap(op, required);
  }
}

function prepareSwap(op: Operation, required: boolean): PreparedOp {
  const pair = op.input;
  if (!Array.isArray(pair) || pair.length !== 2) {
    throw new HistoryError(
      `event ${op.callIndex}: cas takes [expected, new], got ${JSON.stringify(pair) ?? 'nothing'}`,
    );
  }
  // A completion whose value is exactly `false` says the compare did not match: it happened, and saw a
  // different value. Any other completion value (Jepsen echoes the pair) means the swap took effect.
  const effect = required && op.output === false ? Effect.SwapRefused : Effect.Swap;
  return { op, effect, a: canonical(pair[0]), b: canonical(pair[1]), required };
}

function appendText(op: Operation): string {
  if (typeof op.input === 'string') return op.input;
  if (typeof op.input === 'number') return String(op.input);
  throw new HistoryError(`event ${op.callIndex}: append takes a string, got ${JSON.stringify(op.input) ?? 'nothing'}`);
}

/** The state after `op`, or `undefined` when `op` cannot take effect in `state`. */
export function step(state: string, prepared: PreparedOp): string | undefined {
  switch (prepared.effect) {
    case Effect.Read:
      return state === prepared.a ? state : undefined;
    case Effect.Write:
      return prepared.a;
    case Effect.Swap:
      return state === prepared.a ? prepared.b : undefined;
    case Effect.SwapRefused:
      return state === prepared.a ? undefined : state;
    case Effect.Append:
      return state === UNOBSERVABLE ? state : JSON.stringify(textOf(state) + prepared.a);
  }
}

/** The text an append extends: nothing for no value, a string's own text, any other value's JSON. */
export function textOf(state: string): string {
  if (state === NO_VALUE) return '';
  if (state.startsWith('"')) return JSON.parse(state) as string;
  return state;
}

/** A short human description for reports: `write 3`, `read → 3`, `cas 1→2`, `append "x"`. */
export function describeOperation(op: Operation): string {
  const key = op.key === undefined ? '' : `[${op.key}] `;
  const input = op.input === undefined || op.input === null ? '' : ` ${canonical(op.input)}`;
  if (op.f === 'read' || op.f === 'get') {
    return op.outcome === 'ok' ? `${key}${op.f} → ${canonical(op.output)}` : `${key}${op.f}`;
  }
  if (op.f === 'cas' && Array.isArray(op.input) && op.input.length === 2) {
    const refused = op.outcome === 'ok' && op.output === false ? ' (refused)' : '';
    return `${key}cas ${canonical(op.input[0])}→${canonical(op.input[1])}${refused}`;
  }
  return `${key}${op.f}${input}`;
}
