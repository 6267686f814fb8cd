// Every example in docs/fulcrumctl.md, run against a real member, in order, with its printed output checked.
//
// The page's ```sh blocks are transcripts: `$ command` lines, each followed by what it prints (stdout and stderr
// as a terminal shows them). In expected output, `...` matches anything within a line, a line of only `...`
// matches any number of lines, and runs of spaces or dashes compare as one (table widths depend on ids and
// times). Commands understood:
//
//   fulcrumctl ARGS                 run in this process (FULCRUMCTL_ENDPOINTS points at the test's member);
//                                   in a pipeline, the real program through /bin/sh (below)
//   fulcrumctl ARGS &               start in the background (job %1, %2, ... within the block); waits for its
//                                   first output line before going on
//   kill -INT %N                    Ctrl-C for job N, once it printed what follows (or 15 s passed); what
//                                   follows is everything the job printed
//   fulcrumctl ARGS <<'EOF'         stdin from the lines up to EOF
//   NAME=$(COMMAND)                 capture stdout (trimmed) in a variable, used later as $NAME
//   echo $?                         the previous command's exit code
//   fulcrum snapshot ...            the server's snapshot command (node/snapshot-cli.ts), in this process
//   anything else                   /bin/sh -c, with the variables in its environment and `fulcrumctl` on
//                                   its PATH (the real bin/fulcrumctl.js), so pipelines work as in a shell
//
// Files the examples write (backup.db) land in a temporary working directory.
// FULCRUMCTL_DOCS_DUMP=1 prints what each command actually printed (to update the page after a change).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSnapshotCommand } from '../../node/snapshot-cli.js';
import { ctl, type CtlResult, type CtlRun, startCtl, startCtlMember, type CtlMember } from './testing.js';

const DOC = fileURLToPath(new URL('../../docs/fulcrumctl.md', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/fulcrumctl.js', import.meta.url));
const DUMP = process.env.FULCRUMCTL_DOCS_DUMP === '1';

interface Step {
  readonly command: string;
  readonly stdin: string | undefined;
  readonly expected: string[];
  readonly line: number;
}

interface Block {
  readonly line: number;
  readonly steps: Step[];
}

/** The ```sh blocks of the page, as steps. */
function parseTranscripts(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```sh') continue;
    const block: Block = { line: i + 1, steps: [] };
    for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++) {
      const line = lines[i]!;
      if (!line.startsWith('$ ')) {
        const last = block.steps.at(-1);
        if (last === undefined) throw new Error(`docs/fulcrumctl.md:${i + 1}: output before any command`);
        last.expected.push(line);
        continue;
      }
      const command = line.slice(2);
      const heredoc = /<<'?(\w+)'?\s*$/.exec(command);
      let stdin: string | undefined;
      if (heredoc) {
        const body: string[] = [];
        for (i++; i < lines.length && lines[i] !== heredoc[1]; i++) body.push(lines[i]!);
        stdin = body.join('\n') + '\n';
      }
      block.steps.push({ command: heredoc ? command.slice(0, heredoc.index).trim() : command, stdin, expected: [], line: i + 1 });
    }
    blocks.push(block);
  }
  return blocks;
}

/** Shell words: 'single' quotes literal, "double" quotes and bare words expand $NAME; an unquoted # starts a comment. */
function shellWords(text: string, vars: Record<string, string>): string[] {
  const words: string[] = [];
  let word: string | undefined;
  const expand = (s: string): string => s.replace(/\$\{?(\w+)\}?/g, (_m, name: string) => vars[name] ?? '');
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === ' ' || c === '\t') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '#' && word === undefined) {
      break;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      word = (word ?? '') + text.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      for (; text[j] !== '"'; j++) s += text[j] === '\\' && /["\\$]/.test(text[j + 1] ?? '') ? text[++j] : text[j];
      word = (word ?? '') + expand(s);
      i = j;
    } else if (c === '$') {
      const m = /^\$\{?(\w+)\}?/.exec(text.slice(i))!;
      word = (word ?? '') + (vars[m[1]!] ?? '');
      i += m[0].length - 1;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** Compare after normalizing: trailing spaces, runs of spaces and of dashes (table widths). */
function normalize(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trimEnd().replace(/ {2,}/g, ' ').replace(/-{2,}/g, '-'))
    .join('\n')
    .replace(/\n+$/, '');
}

function expectedPattern(lines: string[]): RegExp {
  const parts = normalize(lines.join('\n'))
    .split('\n')
    .map((l) => (l === '...' ? '(?:[^\\n]*(?:\\n|$))*?' : l.split('...').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[^\\n]*') + '(?:\\n|$)'));
  return new RegExp(`^${parts.join('')}$`);
}

/** Resolves once `ok()` holds, or after `timeoutMs` (the comparison that follows then reports the difference). */
async function settle(ok: () => boolean, timeoutMs: number): Promise<void> {
  for (const until = Date.now() + timeoutMs; !ok() && Date.now() < until; ) await new Promise((r) => setTimeout(r, 50));
}

let m: CtlMember;
let cwd: string;
const home = process.cwd();

beforeAll(async () => {
  m = await startCtlMember(5);
  cwd = mkdtempSync(join(tmpdir(), 'fulcrumctl-docs-'));
  process.chdir(cwd);
  // `fulcrumctl` for /bin/sh: the real program, as an installed package puts it on the PATH.
  mkdirSync(join(cwd, 'bin'));
  writeFileSync(join(cwd, 'bin', 'fulcrumctl'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`, { mode: 0o755 });
});
afterAll(async () => {
  process.chdir(home);
  await m?.close();
  rmSync(cwd, { recursive: true, force: true });
});

class Session {
  readonly vars: Record<string, string> = {};
  private jobs: CtlRun[] = [];
  private lastCode = 0;

  /** A shell's environment: this process's, `fulcrumctl` on the PATH, the member's endpoint, the page's variables. */
  get env(): Record<string, string | undefined> {
    return { ...process.env, PATH: `${join(cwd, 'bin')}:${process.env.PATH ?? ''}`, FULCRUMCTL_ENDPOINTS: m.endpoint, ...this.vars };
  }

  newBlock(): void {
    this.jobs = [];
  }

  /** Everything a step printed, and its exit code. */
  async run(step: Step): Promise<{ output: string; code: number }> {
    const command = step.command;
    const capture = /^(\w+)=\$\((.*)\)$/.exec(command);
    if (capture) {
      const r = await this.exec(capture[2]!, undefined);
      if (r.code !== 0) throw new Error(`${command} failed (${r.code}): ${r.output}`);
      this.vars[capture[1]!] = r.stdout.trim();
      return { output: '', code: 0 };
    }
    if (command === 'echo $?') return { output: `${this.lastCode}\n`, code: 0 };
    const kill = /^kill -INT %(\d+)$/.exec(command);
    if (kill) {
      const job = this.jobs[Number(kill[1]) - 1];
      if (job === undefined) throw new Error(`no job %${kill[1]}`);
      // A person presses Ctrl-C after seeing the output; wait (bounded) for what the page shows to arrive.
      await settle(() => expectedPattern(step.expected).test(normalize(job.output())), 15_000);
      const r = await job.interrupt();
      this.lastCode = r.code;
      return { output: r.all, code: r.code };
    }
    if (command.endsWith(' &')) {
      const words = shellWords(command.slice(0, -2), this.vars);
      if (words[0] !== 'fulcrumctl') throw new Error(`only fulcrumctl runs in the background: ${command}`);
      const job = startCtl(words.slice(1), { env: this.env });
      this.jobs.push(job);
      await job.waitFor(/\n/);
      return { output: '', code: 0 };
    }
    const r = await this.exec(command, step.stdin);
    this.lastCode = r.code;
    return r;
  }

  private async exec(command: string, stdin: string | undefined): Promise<{ output: string; stdout: string; code: number }> {
    const words = shellWords(command, this.vars);
    const pipeline = /[|;&<>]/.test(command.replace(/'[^']*'/g, '').replace(/"[^"]*"/g, ''));
    if (words[0] === 'fulcrumctl' && !pipeline) {
      const r: CtlResult = await ctl(words.slice(1), { env: this.env, ...(stdin === undefined ? {} : { stdin }) });
      return { output: r.all, stdout: r.out, code: r.code };
    }
    if (words[0] === 'fulcrum' && words[1] === 'snapshot') {
      const out: string[] = [];
      const code = await runSnapshotCommand(words.slice(2), (s) => out.push(s), (s) => out.push(s));
      return { output: out.join(''), stdout: out.join(''), code };
    }
    return new Promise((resolve) => {
      const child = execFile('/bin/sh', ['-c', command], { cwd, env: this.env, timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ output: stdout + stderr, stdout, code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1 });
      });
      if (stdin !== undefined) child.stdin?.end(stdin);
    });
  }
}

const blocks = parseTranscripts(readFileSync(DOC, 'utf8'));

describe('docs/fulcrumctl.md', () => {
  it('has examples', () => {
    expect(blocks.length).toBeGreaterThan(8);
  });

  it('every example prints what the page says, run in order against one member', async () => {
    const session = new Session();
    for (const block of blocks) {
      session.newBlock();
      for (const step of block.steps) {
        const { output } = await session.run(step);
        if (DUMP) process.stderr.write(`--- docs/fulcrumctl.md:${step.line} $ ${step.command}\n${output}`);
        const got = normalize(output);
        if (!expectedPattern(step.expected).test(got)) {
          throw new Error(`docs/fulcrumctl.md:${step.line}: \`${step.command}\` printed:\n${output}\nbut the page says:\n${step.expected.join('\n')}`);
        }
      }
    }
  }, 120_000);
});

describe('the transcript reader', () => {
  it('splits shell words with quotes, variables and comments', () => {
    expect(shellWords(`put k "a \\"b\\" $X" 'lit $X' --lease $L  # note`, { X: 'x', L: '1f' })).toEqual(['put', 'k', 'a "b" x', 'lit $X', '--lease', '1f']);
  });

  it('matches wildcards and normalizes table padding', () => {
    expect(expectedPattern(['| KEY   | VALUE |', '...', 'lease ... granted']).test(normalize('| KEY | VALUE |\nrow 1\nrow 2\nlease 1f granted'))).toBe(true);
    expect(expectedPattern(['OK']).test(normalize('FAIL'))).toBe(false);
  });
});
