// From events to operations: pairs each `invoke` with the completion from the same process, in history order.
//
// A process has at most one operation outstanding (chaos/history.ts). So a completion always belongs to the
// latest invoke of its process, and an invoke while one is outstanding is malformed input, not something to
// guess about. An invoke that never completes (the history ended first) is indeterminate, as Jepsen treats it:
// the operation may have happened at any time after its invocation, or never.
import type { EventType, HistoryEvent } from '../history.js';

/** Input the checker cannot make sense of: names the event (its position in the history) and what is wrong. */
export class HistoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HistoryError';
  }
}

export type Outcome = 'ok' | 'fail' | 'info';

/** One operation: its invocation and its completion, with real-time bounds. */
export interface Operation {
  /** Position in the list of operations (order of invocation). */
  readonly id: number;
  readonly process: number;
  readonly f: string;
  /** The key; `undefined` for a single-register history. */
  readonly key: string | undefined;
  /** The invocation's argument: a written value, `[expected, new]` for cas. */
  readonly input: unknown;
  /** The completion's value: what a read observed. `undefined` for indeterminate operations. */
  readonly output: unknown;
  readonly outcome: Outcome;
  /** Real-time bounds. `returnTime` is +Infinity for an indeterminate operation. */
  readonly callTime: number;
  readonly returnTime: number;
  /**
   * The two events' numbers (completion `undefined` when it never came): their `index` field when they carry
   * one (the harness numbers the whole run's history, and may check a filtered part of it), else their
   * position in the list checked.
   */
  readonly callIndex: number;
  readonly returnIndex: number | undefined;
  /** Error text of the completion, if the history gave one (shown in reports only). */
  readonly error: string | undefined;
}

interface Pending {
  readonly event: HistoryEvent;
  readonly index: number;
}

const EVENT_TYPES: ReadonlySet<EventType> = new Set(['invoke', 'ok', 'fail', 'info']);

/** Checks the fields every event must have; the message names the event so a user can find it. */
export function validateEvent(event: HistoryEvent, index: number): void {
  const where = `event ${index}`;
  if (typeof event !== 'object' || event === null) throw new HistoryError(`${where}: not an object`);
  if (!Number.isSafeInteger(event.process)) {
    throw new HistoryError(`${where}: "process" must be an integer, got ${JSON.stringify(event.process)}`);
  }
  if (!EVENT_TYPES.has(event.type)) {
    throw new HistoryError(`${where}: "type" must be invoke, ok, fail or info, got ${JSON.stringify(event.type)}`);
  }
  if (typeof event.f !== 'string' || event.f.length === 0) {
    throw new HistoryError(`${where}: "f" must be a non-empty string, got ${JSON.stringify(event.f)}`);
  }
  if (typeof event.time !== 'number' || Number.isNaN(event.time)) {
    throw new HistoryError(`${where}: "time" must be a number, got ${JSON.stringify(event.time)}`);
  }
  if (event.key !== undefined && typeof event.key !== 'string') {
    throw new HistoryError(`${where}: "key" must be a string, got ${JSON.stringify(event.key)}`);
  }
}

/**
 * Pairs invocations with completions. Operations come out in order of invocation; every event's position is
 * its index in `events` (the `index` field, when present, is only informative).
 */
export function toOperations(events: readonly HistoryEvent[]): Operation[] {
  const outstanding = new Map<number, Pending>();
  const operations: Operation[] = [];
  const slotOf = new Map<Pending, number>();
  events.forEach((event, index) => {
    validateEvent(event, index);
    const pending = outstanding.get(event.process);
    if (event.type === 'invoke') {
      if (pending !== undefined) {
        throw new HistoryError(
          `event ${index}: process ${event.process} invokes ${event.f} while its ${pending.event.f} ` +
            `(event ${pending.index}) is still outstanding`,
        );
      }
      const started = { event, index };
      outstanding.set(event.process, started);
      slotOf.set(started, operations.length);
      operations.push(indeterminate(operations.length, started)); // replaced when the completion arrives
      return;
    }
    if (pending === undefined) {
      throw new HistoryError(`event ${index}: process ${event.process} completes ${event.f} (${event.type}) without an invoke`);
    }
    if (pending.event.f !== event.f) {
      throw new HistoryError(
        `event ${index}: process ${event.process} completes ${event.f} but invoked ${pending.event.f} (event ${pending.index})`,
      );
    }
    if (event.time < pending.event.time) {
      throw new HistoryError(`event ${index}: completes before its invoke (event ${pending.index}): time goes backwards`);
    }
    outstanding.delete(event.process);
    const slot = slotOf.get(pending)!;
    operations[slot] = completed(slot, pending, event, index);
  });
  return operations;
}

function indeterminate(id: number, started: Pending): Operation {
  const { event, index } = started;
  return {
    id,
    process: event.process,
    f: event.f,
    key: event.key,
    input: event.value,
    output: undefined,
    outcome: 'info',
    callTime: event.time,
    returnTime: Number.POSITIVE_INFINITY,
    callIndex: eventNumber(event, index),
    returnIndex: undefined,
    error: undefined,
  };
}

function completed(id: number, started: Pending, end: HistoryEvent, endIndex: number): Operation {
  const base = indeterminate(id, started);
  if (end.type === 'info') return { ...base, returnIndex: eventNumber(end, endIndex), error: end.error ?? describeValue(end.value) };
  const outcome: Outcome = end.type === 'ok' ? 'ok' : 'fail';
  return {
    ...base,
    key: base.key ?? end.key,
    output: end.value,
    outcome,
    returnTime: end.time,
    returnIndex: eventNumber(end, endIndex),
    error: end.error,
  };
}

function eventNumber(event: HistoryEvent, position: number): number {
  return Number.isSafeInteger(event.index) ? event.index! : position;
}

function describeValue(value: unknown): string | undefined {
  return value === undefined || value === null ? undefined : String(value);
}
