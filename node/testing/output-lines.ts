// A child process's output as whole lines (members, etcd, example scripts): tests wait for lines and tools parse
// them (trace and GC lines), and a pipe's chunks end wherever the kernel cut them.

import type { ChildProcess } from 'node:child_process';

/** Of a line without its end yet, at most this many characters are held; more is passed on in pieces. */
export const OUTPUT_LINE_CHARS_MAX = 1 << 20;

/**
 * Turns a stream's chunks into whole lines: a pipe's chunk may end inside a line (a trace or GC line split in two
 * would be misread or lost), so the unfinished end waits for the next chunk. `end()` passes on what is left.
 */
export function lineSplitter(onLine: (line: string) => void, maxChars = OUTPUT_LINE_CHARS_MAX): { push(chunk: string): void; end(): void } {
  let rest = '';
  const emit = (line: string): void => {
    if (line !== '') onLine(line);
  };
  return {
    push(chunk) {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop()!;
      for (const line of lines) emit(line);
      while (rest.length > maxChars) {
        emit(rest.slice(0, maxChars));
        rest = rest.slice(maxChars);
      }
    },
    end() {
      emit(rest);
      rest = '';
    },
  };
}

/** Calls `onLine` with each whole line the child writes to stdout or stderr (each stream split on its own). */
export function onOutputLines(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (stream === null) continue;
    const lines = lineSplitter(onLine);
    stream.setEncoding('utf8'); // a character split between chunks is put together again
    stream.on('data', (chunk: string) => lines.push(chunk));
    stream.on('end', () => lines.end());
  }
}
