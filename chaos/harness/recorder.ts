// The history of one run: every operation as invoke and one completion (ok / fail / info), with the process id
// and monotonic nanoseconds since the start, plus the nemesis timeline. Both are kept in memory (checkers read
// them) and appended to history.jsonl / nemesis.jsonl as they happen, so a run that dies still leaves its trace.
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { EventType, HistoryEvent, NemesisEvent } from '../history.js';

/** Events one run may record; a run that exceeds it is misconfigured (the checker could not decide it anyway). */
export const HISTORY_EVENTS_MAX = 2_000_000;

export class Recorder {
  readonly events: HistoryEvent[] = [];
  readonly nemesis: NemesisEvent[] = [];
  private readonly t0 = process.hrtime.bigint();
  private readonly historyOut: WriteStream;
  private readonly nemesisOut: WriteStream;
  private nextProcess = 0;

  constructor(readonly dir: string) {
    this.historyOut = createWriteStream(join(dir, 'history.jsonl'));
    this.nemesisOut = createWriteStream(join(dir, 'nemesis.jsonl'));
  }

  /** Monotonic ns since the run started: never goes back, whatever the wall clock does. */
  now(): number {
    return Number(process.hrtime.bigint() - this.t0);
  }

  /** A fresh process id: for a new client, or for a client whose last operation ended unknown (info). */
  newProcess(): number {
    return this.nextProcess++;
  }

  record(e: Omit<HistoryEvent, 'time' | 'index'>): HistoryEvent {
    if (this.events.length >= HISTORY_EVENTS_MAX) throw new Error(`history exceeds HISTORY_EVENTS_MAX ${HISTORY_EVENTS_MAX} events`);
    const full: HistoryEvent = { ...e, time: this.now(), index: this.events.length };
    this.events.push(full);
    this.historyOut.write(`${JSON.stringify(full)}\n`);
    return full;
  }

  invoke(process: number, f: string, key: string | undefined, value: unknown): HistoryEvent {
    return this.record({ process, type: 'invoke', f, ...(key !== undefined ? { key } : {}), value });
  }

  complete(invoke: HistoryEvent, type: Exclude<EventType, 'invoke'>, value: unknown, error?: string): HistoryEvent {
    return this.record({
      process: invoke.process,
      type,
      f: invoke.f,
      ...(invoke.key !== undefined ? { key: invoke.key } : {}),
      value,
      ...(error !== undefined ? { error } : {}),
    });
  }

  fault(phase: 'start' | 'stop', fault: string, detail?: string): void {
    const e: NemesisEvent = { time: this.now(), phase, fault, ...(detail !== undefined ? { detail } : {}) };
    this.nemesis.push(e);
    this.nemesisOut.write(`${JSON.stringify(e)}\n`);
  }

  async close(): Promise<void> {
    await Promise.all([this.historyOut, this.nemesisOut].map((s) => new Promise<void>((r) => s.end(() => r()))));
  }
}
