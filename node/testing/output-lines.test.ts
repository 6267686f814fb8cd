import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PassThrough, Writable } from 'node:stream';
import { lineSplitter, onStreamLines } from './output-lines.js';

function split(chunks: readonly string[], maxChars?: number): string[] {
  const out: string[] = [];
  const s = lineSplitter((l) => out.push(l), maxChars);
  for (const c of chunks) s.push(c);
  s.end();
  return out;
}

describe('lineSplitter', () => {
  it('puts a line split between chunks together again', () => {
    expect(split(['TRACE 1 api p', 'ut\nTRACE 2 ready\n'])).toEqual(['TRACE 1 api put', 'TRACE 2 ready']);
    expect(split(['a\nb', '', 'c\n', '\n', 'd'])).toEqual(['a', 'bc', 'd']);
  });

  it('gives the same lines however the output is cut into chunks (empty lines left out)', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-z =.]{0,12}$/), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 10 }), (lines, cuts) => {
        const text = lines.map((l) => `${l}\n`).join('');
        const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const chunks = [0, ...at, text.length].slice(1).map((end, i, ends) => text.slice(i === 0 ? 0 : ends[i - 1], end));
        expect(split(chunks)).toEqual(lines.filter((l) => l !== ''));
      }),
    );
  });

  it('keeps at most its limit of an unfinished line, passing the rest on in pieces: an endless line stays bounded', () => {
    expect(split(['abcdefghij', 'kl'], 4)).toEqual(['abcd', 'efgh', 'ijkl']);
    expect(split(['abcdefg', 'hij\nk'], 4)).toEqual(['abcd', 'efghij', 'k']);
  });
});

describe('onStreamLines', () => {
  it('puts together a line and a character the pipe cut, while a pipe from the same stream still gets the bytes', async () => {
    const stream = new PassThrough();
    const piped: Buffer[] = [];
    stream.pipe(new Writable({ write: (chunk: Buffer, _enc, done) => (piped.push(chunk), done()) }));
    const lines: string[] = [];
    onStreamLines(stream, (l) => lines.push(l));
    const text = Buffer.from('fulcrum: failpoint after-persist: crashing (SIGKILL)\nnaïve\nend');
    const cuts = [0, 20, text.indexOf('ï') + 1, text.length];
    for (let i = 1; i < cuts.length; i++) stream.write(text.subarray(cuts[i - 1], cuts[i]));
    stream.end();
    await new Promise((resolve) => stream.on('end', resolve));
    expect(lines).toEqual(['fulcrum: failpoint after-persist: crashing (SIGKILL)', 'naïve', 'end']);
    expect(Buffer.concat(piped).equals(text)).toBe(true);
  });
});
