// The fulcrum-check command: verdicts as exit codes, clear errors for bad input, and the HTML report.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EXIT_BAD_INPUT, EXIT_LINEARIZABLE, EXIT_NOT_LINEARIZABLE, EXIT_UNKNOWN, main } from './command.js';
import { generateHistory } from './generate.js';
import { checkHistory, parseHistory, renderReport, VIOLATION_MARKER } from './index.js';
import { JEPSEN_ETCD_DIR } from './testing.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const STALE_READ = join(HERE, 'testdata/stale-read.jsonl');
const NEMESIS = join(HERE, 'testdata/nemesis.jsonl');
const JEPSEN = JEPSEN_ETCD_DIR ?? '';
const BIN = fileURLToPath(new URL('../../bin/fulcrum-check.js', import.meta.url));

function run(...argv: string[]): { code: number; out: string; err: string } {
  const out: string[] = [];
  const err: string[] = [];
  const code = main(argv, { out: (line) => out.push(line), err: (line) => err.push(line) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const scratch = mkdtempSync(join(tmpdir(), 'fulcrum-check-'));

describe('exit codes', () => {
  it.skipIf(JEPSEN_ETCD_DIR === undefined)('0 for a linearizable history, with the verdict first on the line', () => {
    const r = run('--model', 'register', `${JEPSEN}etcd_002.log`);
    expect(r.code).toBe(EXIT_LINEARIZABLE);
    expect(r.out).toMatch(/^linearizable \(register model, \d+ operations, 1 key\(s\), jepsen-log/);
  });

  it('1 for a violation, naming the key and the operation', () => {
    const r = run('--model', 'kv', STALE_READ);
    expect(r.code).toBe(EXIT_NOT_LINEARIZABLE);
    expect(r.out).toMatch(/^not-linearizable .*key "a": \[a\] get → 1 \(process 2, event \d+\) cannot be placed after a linearizable prefix of 2/);
  });

  it('2 when the time limit runs out first', () => {
    const events = generateHistory({ model: 'register', seed: 7, operations: 4000, keys: 1, processes: 10, infoRate: 0.05, valueDomain: 5 });
    const reads = events.flatMap((e, i) => (e.type === 'ok' && e.f === 'read' ? [i] : []));
    const at = reads[1000]!;
    events[at] = { ...events[at]!, value: 'never-written' };
    const file = join(scratch, 'hard.jsonl');
    writeFileSync(file, events.map((e) => JSON.stringify(e)).join('\n'));
    const r = run('--model', 'register', '--time-limit', '0.001', file);
    expect(r.code).toBe(EXIT_UNKNOWN);
    expect(r.out).toMatch(/^unknown .*1 key\(s\) undecided/);
  });

  it('3 for a missing file, a file that is not a history, or an operation the model does not know', () => {
    const missing = run('--model', 'kv', join(scratch, 'nope.jsonl'));
    expect(missing.code).toBe(EXIT_BAD_INPUT);
    expect(missing.err).toMatch(/nope.jsonl: ENOENT/);
    const garbage = join(scratch, 'garbage.txt');
    writeFileSync(garbage, 'this is not a history\n');
    expect(run('--model', 'kv', garbage)).toMatchObject({ code: EXIT_BAD_INPUT, err: expect.stringMatching(/not a history this checker reads/) });
    expect(run('--model', 'register', STALE_READ)).toMatchObject({ code: EXIT_BAD_INPUT, err: expect.stringMatching(/register model has no operation "put"/) });
  });

  it('3 for bad usage', () => {
    expect(run(STALE_READ).code).toBe(EXIT_BAD_INPUT); // --model is required
    expect(run('--model', 'queue', STALE_READ).code).toBe(EXIT_BAD_INPUT);
    expect(run('--model', 'kv', '--time-limit', 'soon', STALE_READ).code).toBe(EXIT_BAD_INPUT);
  });

  it('--json prints the result as one JSON object', () => {
    const r = run('--model', 'kv', '--json', STALE_READ);
    const parsed = JSON.parse(r.out) as { verdict: string; keys: number; violation: { key: string }; format: string };
    expect(parsed).toMatchObject({ verdict: 'not-linearizable', keys: 2, format: 'jsonl', violation: { key: 'a' } });
  });

  it('the installed command exits with the same codes (through tsx)', () => {
    const bad = spawnSync(process.execPath, [BIN, '--model', 'kv', STALE_READ], { encoding: 'utf8' });
    expect(bad.status).toBe(EXIT_NOT_LINEARIZABLE);
    expect(bad.stdout).toMatch(/^not-linearizable/);
    const unreadable = spawnSync(process.execPath, [BIN, '--model', 'kv', join(scratch, 'nope.jsonl')], { encoding: 'utf8' });
    expect(unreadable.status).toBe(EXIT_BAD_INPUT);
    expect(unreadable.stderr).toMatch(/^fulcrum-check: .*nope.jsonl: ENOENT/);
  });
});

describe('the HTML report', () => {
  it('is written, draws every operation and the faults, and marks the violation', () => {
    const file = join(scratch, 'report.html');
    const r = run('--model', 'kv', '--report', file, '--nemesis', NEMESIS, STALE_READ);
    expect(r.code).toBe(EXIT_NOT_LINEARIZABLE);
    const html = readFileSync(file, 'utf8');
    expect(html).toContain(`id="${VIOLATION_MARKER}"`);
    expect(html).toContain(`class="${VIOLATION_MARKER}"`);
    expect(html).toContain('linearization impossible here');
    expect(html).toMatch(/could not be placed \(returned\)<\/td><td>\[a\] get → 1/);
    // One bar per operation (5), one shaded band per fault (the partition in the history, the kill in --nemesis).
    expect(html.match(/<rect [^>]*rx="2"/g)).toHaveLength(5);
    expect(html).toContain('partition');
    expect(html).toContain('kill');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/); // self-contained
  });

  it.skipIf(JEPSEN_ETCD_DIR === undefined)('has no violation marker for a linearizable history', () => {
    const parsed = parseHistory(readFileSync(`${JEPSEN}etcd_002.log`, 'utf8'));
    const html = renderReport(checkHistory(parsed.events, { model: 'register' }), parsed.events, []);
    expect(html).toContain('<h1 class="linearizable">');
    expect(html).not.toContain(VIOLATION_MARKER);
  });

  it('escapes text from the history', () => {
    const events = parseHistory('{"process":0,"type":"invoke","f":"put","key":"<b>","value":"</svg>","time":1}').events;
    const html = renderReport(checkHistory(events, { model: 'kv' }), events, []);
    expect(html).not.toContain('<b>');
    expect(html).toContain('&#60;b&#62;');
  });
});
