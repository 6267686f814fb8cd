// Reading histories: Fulcrum's own `.jsonl` (chaos/history.ts), Jepsen's `history.edn` (one map per line) and
// the `jepsen.util` operation lines of a Jepsen log. Each parser returns the client operations' events in
// history order, with nemesis actions separated out so a report can shade them.
//
// Jepsen's formats carry no usable clock (a log has none; EDN's :time is optional), so there an event's `time`
// is its position in the file: the order of the lines is the real-time order in which Jepsen saw them.
import type { EventType, HistoryEvent, NemesisEvent } from '../history.js';
import { EdnMap, Keyword, readEdn, readEdnAll, toPlain, type EdnValue } from './edn.js';
import { HistoryError, validateEvent } from './operations.js';

export type HistoryFormat = 'jsonl' | 'edn' | 'jepsen-log';

export interface ParsedHistory {
  readonly format: HistoryFormat;
  readonly events: HistoryEvent[];
  readonly nemesis: NemesisEvent[];
}

/** A line longer than this is not a history line; refusing it gives a clear error instead of a slow parse. */
export const LINE_CHARS_MAX = 1_000_000;

const EVENT_TYPES: readonly EventType[] = ['invoke', 'ok', 'fail', 'info'];

/** Reads a history in any supported format, detected from its first meaningful line. */
export function parseHistory(text: string): ParsedHistory {
  const format = detectFormat(text);
  if (format === 'jsonl') return parseJsonlHistory(text);
  if (format === 'edn') return parseEdnHistory(text);
  return parseJepsenLogHistory(text);
}

/** An empty history (no lines at all) is reported as jsonl: it parses to no events in every format. */
export function detectFormat(text: string): HistoryFormat {
  const first = text.split('\n').find((line) => line.trim() !== '' && !line.trimStart().startsWith(';'));
  if (first === undefined) return 'jsonl';
  if (/\bjepsen\.util\s+-\s/.test(first)) return 'jepsen-log';
  const trimmed = first.trim();
  if (trimmed.startsWith('{')) {
    try {
      JSON.parse(trimmed);
      return 'jsonl';
    } catch {
      return 'edn';
    }
  }
  if (trimmed.startsWith('#')) return 'edn';
  // A whole Jepsen log starts with other loggers' lines; the operations come later.
  if (JEPSEN_LINE.test(text)) return 'jepsen-log';
  throw new HistoryError(
    `line 1: not a history this checker reads (expected JSON lines, EDN maps or jepsen.util log lines): ` +
      `${JSON.stringify(trimmed.slice(0, 60))}`,
  );
}

export function parseJsonl(text: string): HistoryEvent[] {
  return parseJsonlHistory(text).events;
}

export function parseEdn(text: string): HistoryEvent[] {
  return parseEdnHistory(text).events;
}

export function parseJepsenLog(text: string): HistoryEvent[] {
  return parseJepsenLogHistory(text).events;
}

export function parseJsonlHistory(text: string): ParsedHistory {
  const events: HistoryEvent[] = [];
  const nemesis: NemesisEvent[] = [];
  forEachLine(text, (line, lineNo) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new HistoryError(`line ${lineNo}: not JSON (${(err as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new HistoryError(`line ${lineNo}: expected a JSON object`);
    }
    if ('phase' in value && 'fault' in value) {
      nemesis.push(nemesisFromJson(value as Record<string, unknown>, lineNo));
      return;
    }
    const event = { ...(value as HistoryEvent), index: events.length };
    withLine(lineNo, () => validateEvent(event, events.length));
    events.push(event);
  });
  return { format: 'jsonl', events, nemesis };
}

function nemesisFromJson(value: Record<string, unknown>, lineNo: number): NemesisEvent {
  const { time, phase, fault, detail } = value;
  if (typeof time !== 'number' || (phase !== 'start' && phase !== 'stop') || typeof fault !== 'string') {
    throw new HistoryError(`line ${lineNo}: a nemesis event needs a numeric "time", "phase" start|stop and a "fault"`);
  }
  return typeof detail === 'string' ? { time, phase, fault, detail } : { time, phase, fault };
}

export function parseEdnHistory(text: string): ParsedHistory {
  const events: HistoryEvent[] = [];
  const nemesis: NemesisEvent[] = [];
  let position = 0;
  forEachLine(text, (line, lineNo) => {
    for (const value of readEdnAll(line, `line ${lineNo}`)) {
      if (!(value instanceof EdnMap)) throw new HistoryError(`line ${lineNo}: expected an EDN map, one operation per line`);
      const time = numberOr(value.get('time'), position);
      position++;
      const process = value.get('process');
      if (process instanceof Keyword) {
        nemesis.push(...nemesisFromJepsen(keywordName(value.get('f')), toPlain(value.get('value') ?? null), time));
        continue;
      }
      const key = value.get('key');
      const event: HistoryEvent = {
        process: integerField(process, 'process', lineNo),
        type: eventType(value.get('type'), lineNo),
        f: requiredName(value.get('f'), 'f', lineNo),
        ...(key === undefined || key === null ? {} : { key: keyText(key) }),
        value: toPlain(value.get('value') ?? null),
        time,
        index: events.length,
      };
      withLine(lineNo, () => validateEvent(event, events.length));
      events.push(event);
    }
  });
  return { format: 'edn', events, nemesis };
}

/** `INFO  jepsen.util - 3	:ok	:read	nil`, with tabs or spaces; the process may be `:nemesis`. */
const JEPSEN_LINE = /\bjepsen\.util\s+-\s+(:?[\w-]+)\s+:(\w+)\s+:([\w-]+)(?:\s+(.*))?$/m;

export function parseJepsenLogHistory(text: string): ParsedHistory {
  const events: HistoryEvent[] = [];
  const nemesis: NemesisEvent[] = [];
  let position = 0;
  forEachLine(text, (line, lineNo) => {
    const m = JEPSEN_LINE.exec(line);
    if (m === null) return; // a Jepsen log interleaves other loggers' lines: only operations matter here
    const [, processText, typeText, f, valueText] = m as unknown as [string, string, string, string, string | undefined];
    const value = toPlain(readEdn(valueText?.trim() || 'nil', `line ${lineNo}`));
    const time = position++;
    if (processText.startsWith(':')) {
      nemesis.push(...nemesisFromJepsen(f, value, time));
      return;
    }
    const event: HistoryEvent = {
      process: integerField(Number(processText), 'process', lineNo),
      type: eventType(new Keyword(typeText), lineNo),
      f,
      value,
      time,
      index: events.length,
    };
    events.push(event);
  });
  if (events.length === 0 && text.trim() !== '') {
    throw new HistoryError('no jepsen.util operation lines found (expected lines like "jepsen.util - 3\t:ok\t:read\t1")');
  }
  return { format: 'jepsen-log', events, nemesis };
}

/**
 * Jepsen's nemesis logs each action twice (invoke and completion, both `:info`). An `f` that names a start or
 * a stop opens or closes the fault; the report pairs them. Anything else is a point event.
 */
function nemesisFromJepsen(f: string, value: unknown, time: number): NemesisEvent[] {
  const detail = value === null || value === undefined ? undefined : JSON.stringify(value);
  const phase = /^stop|stop$|heal|resume/.test(f) ? 'stop' : 'start';
  const fault = f.replace(/^(start|stop)-?/, '').replace(/-?(start|stop)$/, '') || 'nemesis';
  return [detail === undefined ? { time, phase, fault } : { time, phase, fault, detail }];
}

/**
 * Splits Jepsen's `independent` histories, whose values are `[key value]` tuples (`{:f :cas, :value [3 [1 2]]}`),
 * into keyed events. Every event must carry a tuple: a mix would be ambiguous with a cas pair.
 */
export function splitIndependentKeys(events: readonly HistoryEvent[]): HistoryEvent[] {
  return events.map((event, index) => {
    const tuple = event.value;
    if (!Array.isArray(tuple) || tuple.length !== 2) {
      throw new HistoryError(`event ${index}: --independent expects every value to be a [key value] tuple, got ${JSON.stringify(tuple) ?? 'nothing'}`);
    }
    const [key, value] = tuple as [unknown, unknown];
    return { ...event, key: typeof key === 'string' ? key : JSON.stringify(key), value };
  });
}

function forEachLine(text: string, visit: (line: string, lineNo: number) => void): void {
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith(';')) return;
    if (line.length > LINE_CHARS_MAX) throw new HistoryError(`line ${i + 1}: longer than ${LINE_CHARS_MAX} characters`);
    visit(line, i + 1);
  });
}

/** Re-throws a HistoryError with the file's line number in front, where the event's own number is less useful. */
function withLine(lineNo: number, check: () => void): void {
  try {
    check();
  } catch (err) {
    if (err instanceof HistoryError) throw new HistoryError(`line ${lineNo}: ${err.message}`);
    throw err;
  }
}

function eventType(value: EdnValue | undefined, lineNo: number): EventType {
  const name = value instanceof Keyword ? value.name : value;
  if (typeof name === 'string' && (EVENT_TYPES as readonly string[]).includes(name)) return name as EventType;
  throw new HistoryError(`line ${lineNo}: :type must be :invoke, :ok, :fail or :info, got ${String(value)}`);
}

function integerField(value: unknown, name: string, lineNo: number): number {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  throw new HistoryError(`line ${lineNo}: :${name} must be an integer, got ${String(value)}`);
}

function requiredName(value: EdnValue | undefined, name: string, lineNo: number): string {
  const text = keywordName(value);
  if (text === '') throw new HistoryError(`line ${lineNo}: :${name} is missing`);
  return text;
}

function keywordName(value: EdnValue | undefined): string {
  if (value instanceof Keyword) return value.name;
  if (typeof value === 'string') return value;
  return '';
}

/** Keys may be any EDN value; the checker only needs them to compare equal, so their printed form will do. */
function keyText(value: EdnValue): string {
  if (typeof value === 'string') return value;
  if (value instanceof Keyword) return value.name;
  return JSON.stringify(toPlain(value));
}

function numberOr(value: EdnValue | undefined, fallback: number): number {
  return typeof value === 'number' ? value : fallback;
}
