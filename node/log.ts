// Structured logs: pino, one JSON object a line, on stderr (where etcd logs too, leaving stdout to tools).
// Every line names its `component` (raft, wal, api, http, ...) and `member` (the member id in hex, as etcd prints
// ids), so the lines of several members in one process, or of a whole cluster in one file, can be told apart.
//
// Tests capture lines with captureLogs(): the same logger, writing into memory instead of stderr.
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';
import { idToHex } from './ids.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  readonly level: LogLevel;
  /** This member's id; logged in hex. Omit for process-wide lines (startup, config errors). */
  readonly memberId?: number;
  readonly component?: string;
  /** Where lines go; stderr (synchronously) when omitted. */
  readonly destination?: DestinationStream;
}

/**
 * The server's root logger. Writes are synchronous by default: the last lines before a crash (a fatal WAL error,
 * an assertion) are the ones an operator needs, and an async buffer would lose them.
 */
export function createLogger(options: LoggerOptions): Logger {
  const base: Record<string, string> = {};
  if (options.memberId !== undefined) base['member'] = idToHex(options.memberId);
  if (options.component !== undefined) base['component'] = options.component;
  const destination = options.destination ?? pino.destination({ dest: 2, sync: true });
  return pino({ level: options.level, base, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** A child logger for one component of a member: `componentLogger(root, 'raft')`. */
export function componentLogger(root: Logger, component: string): Logger {
  return root.child({ component });
}

/**
 * Name the member in the lines of loggers made before its id was known. A joining member learns its id from the
 * cluster after its root logger and its TLS watchers' logger exist, and pino's children copy their parent's
 * bindings when they are made: naming the root alone leaves those children without the field.
 */
export function nameMemberInLogs(loggers: readonly Logger[], memberId: number): void {
  for (const l of loggers) l.setBindings({ member: idToHex(memberId) });
}

/** One captured line, parsed. `level` is pino's label ("info"), not its number. */
export interface LogRecord {
  readonly level: string;
  readonly msg: string;
  readonly component?: string;
  readonly member?: string;
  readonly [field: string]: unknown;
}

export interface CapturedLogs {
  readonly logger: Logger;
  /** Every line so far, oldest first. */
  records(): readonly LogRecord[];
  /** Lines whose message contains `text` (and, if given, whose component matches). */
  find(text: string, component?: string): readonly LogRecord[];
  clear(): void;
}

/** Lines kept by a capture: a test that logs in a loop must not grow memory without bound. */
export const CAPTURED_LINES_MAX = 10_000;

/** A logger that writes into memory, for tests that assert on what was logged. */
export function captureLogs(options: Partial<Omit<LoggerOptions, 'destination'>> = {}): CapturedLogs {
  const lines: LogRecord[] = [];
  const destination: DestinationStream = {
    write(line: string): void {
      const parsed = JSON.parse(line) as Record<string, unknown> & { level: number };
      lines.push({ ...parsed, level: pino.levels.labels[parsed.level] ?? String(parsed.level) } as LogRecord);
      if (lines.length > CAPTURED_LINES_MAX) lines.shift();
    },
  };
  const logger = createLogger({ ...options, level: options.level ?? 'debug', destination });
  return {
    logger,
    records: () => lines,
    find: (text, component) => lines.filter((r) => r.msg.includes(text) && (component === undefined || r.component === component)),
    clear: () => void lines.splice(0),
  };
}
