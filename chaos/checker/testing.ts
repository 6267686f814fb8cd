// Test helpers: small histories written one event per line, in real-time order.
//
//   0 invoke write 1          process 0 invokes write(1)
//   0 ok write 1              ...and it completes
//   1 invoke cas [1,2]        values are JSON; a missing value is nil
//   2 invoke put x "a"        kv: the key comes before the value
//
// An event's time is its line number, so lines that overlap in the text overlap in time.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { EventType, HistoryEvent } from '../history.js';

/**
 * Where Jepsen's etcd histories are (the project's shared test data, beside the repository): FULCRUM_SHARED_TESTDATA
 * if set, else ../shared/testdata from the repository, else /work/shared/testdata (a clone elsewhere on this
 * machine). Undefined when none holds them: the tests that need them say so and are skipped.
 */
export const JEPSEN_ETCD_DIR: string | undefined = [
  process.env.FULCRUM_SHARED_TESTDATA,
  fileURLToPath(new URL('../../../shared/testdata', import.meta.url)),
  '/work/shared/testdata',
]
  .filter((d): d is string => d !== undefined && d !== '')
  .map((d) => `${d.replace(/\/$/, '')}/linearizability/jepsen-etcd/`)
  .find((d) => existsSync(`${d}verdicts.json`));
if (JEPSEN_ETCD_DIR === undefined) console.warn('chaos/checker: Jepsen etcd histories not found (set FULCRUM_SHARED_TESTDATA); their tests are skipped');

export function history(text: string, options: { keyed?: boolean } = {}): HistoryEvent[] {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  return lines.map((line, index) => parseLine(line, index, options.keyed === true));
}

function parseLine(line: string, index: number, keyed: boolean): HistoryEvent {
  const match = /^(\d+)\s+(invoke|ok|fail|info)\s+(\S+)(.*)$/.exec(line);
  if (match === null) throw new Error(`test history: cannot read ${JSON.stringify(line)}`);
  const [, process, type, f, rest] = match as unknown as [string, string, EventType, string, string];
  let tail = rest.trim();
  let key: string | undefined;
  if (keyed) {
    const space = tail.indexOf(' ');
    key = space < 0 ? tail : tail.slice(0, space);
    tail = space < 0 ? '' : tail.slice(space + 1).trim();
  }
  const value: unknown = tail === '' ? null : JSON.parse(tail);
  return { process: Number(process), type, f, ...(key === undefined ? {} : { key }), value, time: index, index };
}
