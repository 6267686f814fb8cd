// A child process's output as whole lines (members, etcd, example scripts): tests wait for lines and tools parse
// them (trace and GC lines), and a pipe's chunks end wherever the kernel cut them.

import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

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

/**
 * Calls `onLine` with each whole line a stream carries. It decodes with its own StringDecoder (a character split
 * between chunks is put together again) instead of `setEncoding`, so a stream that is also piped somewhere (the
 * chaos harness's run log) still hands that pipe the bytes it read.
 */
export function onStreamLines(stream: Readable, onLine: (line: string) => void): void {
  const lines = lineSplitter(onLine);
  const decoder = new StringDecoder('utf8');
  stream.on('data', (chunk: Buffer | string) => lines.push(typeof chunk === 'string' ? chunk : decoder.write(chunk)));
  stream.on('end', () => {
    lines.push(decoder.end());
    lines.end();
  });
}

/** Calls `onLine` with each whole line the child writes to stdout or stderr (each stream split on its own). */
export function onOutputLines(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (stream !== null) onStreamLines(stream, onLine);
  }
}
