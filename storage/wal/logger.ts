// The WAL logs through a small interface that a pino logger satisfies, so node/ can pass its own child logger
// (with `component` and `member` fields) and tests can capture the lines.
import { pino } from 'pino';

export interface WalLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Used when the caller gives none: structured lines on stderr, so a torn-tail cut is never silent. */
export function defaultWalLogger(): WalLogger {
  return pino({ base: { component: 'wal' } }, pino.destination(2));
}
