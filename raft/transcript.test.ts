import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatTranscript, parseTranscript, TranscriptRunner } from './testing/transcript.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const update = process.env.UPDATE_TRANSCRIPTS === '1';

describe('raft transcripts', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.txt'));
  it('has the scenarios the core must document', () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
  });
  for (const file of files) {
    it(file, () => {
      const path = join(dir, file);
      const original = readFileSync(path, 'utf8');
      const actual = formatTranscript(new TranscriptRunner().run(parseTranscript(original)));
      if (update) writeFileSync(path, actual);
      else expect(actual).toBe(original);
    });
  }
});
