// The `fulcrum-check` command (cli.ts runs it): checks one history file for linearizability and prints the verdict.
//
//   npx fulcrum-check --model register|kv [--time-limit s] [--report out.html] [--nemesis faults.jsonl] <history>
//
// Exit codes: 0 linearizable, 1 not linearizable, 2 undecided within the time limit (or the memory budget),
// 3 the input could not be read or is not a history (the message says which line and why), or bad usage,
// 4 an internal error (a bug in the checker: the stack is printed).
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import type { NemesisEvent } from '../history.js';
import { checkHistory, type CheckResult } from './check.js';
import { describeOperation, MODELS, type Model } from './models.js';
import { HistoryError } from './operations.js';
import {
  type HistoryFormat,
  parseEdnHistory,
  parseHistory,
  parseJepsenLogHistory,
  parseJsonlHistory,
  type ParsedHistory,
  splitIndependentKeys,
} from './parse.js';
import { writeReport } from './report.js';

export const EXIT_LINEARIZABLE = 0;
export const EXIT_NOT_LINEARIZABLE = 1;
export const EXIT_UNKNOWN = 2;
export const EXIT_BAD_INPUT = 3;
export const EXIT_INTERNAL_ERROR = 4;

/** Where the command writes; injectable so tests can run it in-process. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}

const PROCESS_IO: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

interface Options {
  model: Model;
  timeLimit?: number;
  report?: string;
  nemesis?: string;
  format: HistoryFormat | 'auto';
  json?: boolean;
  independent?: boolean;
}

/** Runs the command on `argv` (the arguments after the program name) and returns its exit code. */
export function main(argv: readonly string[], io: Io = PROCESS_IO): number {
  let parsed: { file: string; options: Options };
  try {
    parsed = parseArguments(argv, io);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
    throw err;
  }
  try {
    return run(parsed.file, parsed.options, io);
  } catch (err) {
    if (err instanceof HistoryError || isFileError(err)) {
      io.err(`fulcrum-check: ${parsed.file}: ${(err as Error).message}`);
      return EXIT_BAD_INPUT;
    }
    throw err;
  }
}

function parseArguments(argv: readonly string[], io: Io): { file: string; options: Options } {
  const program = new Command('fulcrum-check')
    .description('Checks a history of operations for linearizability (Wing–Gong search, per key).')
    .argument('<history>', "history file: Fulcrum's .jsonl, Jepsen's history.edn, or a Jepsen log with jepsen.util lines")
    .addOption(new Option('--model <model>', 'sequential model to check against').choices(MODELS).makeOptionMandatory())
    .addOption(new Option('--format <format>', 'input format').choices(['auto', 'jsonl', 'edn', 'jepsen-log']).default('auto'))
    .option('--time-limit <seconds>', 'give up (exit 2) after this many seconds', parsePositive)
    .option('--report <file.html>', 'write an HTML report (timeline per process, faults, the violation)')
    .option('--nemesis <file.jsonl>', 'nemesis timeline to shade in the report (JSON lines: time, phase, fault)')
    .option('--json', 'print the result as JSON instead of one line')
    .option('--independent', "values are Jepsen's independent [key value] tuples: check each key apart")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
  program.parse(argv, { from: 'user' });
  return { file: program.args[0]!, options: program.opts<Options>() };
}

function parsePositive(text: string): number {
  const value = Number(text);
  if (!(value > 0) || !Number.isFinite(value)) throw new CommanderError(EXIT_BAD_INPUT, 'fulcrum-check.badNumber', `not a positive number of seconds: ${text}`);
  return value;
}

function run(file: string, options: Options, io: Io): number {
  const parsed = readHistory(file, options.format);
  const history = options.independent === true ? { ...parsed, events: splitIndependentKeys(parsed.events) } : parsed;
  const result = checkHistory(history.events, {
    model: options.model,
    ...(options.timeLimit === undefined ? {} : { timeLimitMs: options.timeLimit * 1000 }),
  });
  if (options.report !== undefined) {
    const nemesis = [...history.nemesis, ...(options.nemesis === undefined ? [] : readNemesis(options.nemesis))];
    writeReport(result, history.events, options.report, nemesis);
  }
  io.out(options.json === true ? JSON.stringify(summarize(result, history.format)) : verdictLine(result, history.format));
  if (options.report !== undefined) io.out(`report: ${options.report}`);
  return exitCodeOf(result);
}

function readHistory(file: string, format: HistoryFormat | 'auto'): ParsedHistory {
  const text = readFileSync(file, 'utf8');
  switch (format) {
    case 'auto':
      return parseHistory(text);
    case 'jsonl':
      return parseJsonlHistory(text);
    case 'edn':
      return parseEdnHistory(text);
    case 'jepsen-log':
      return parseJepsenLogHistory(text);
  }
}

function readNemesis(file: string): NemesisEvent[] {
  const parsed = parseJsonlHistory(readFileSync(file, 'utf8'));
  if (parsed.events.length > 0) throw new HistoryError(`--nemesis ${file}: holds client operations, not nemesis events`);
  return parsed.nemesis;
}

export function exitCodeOf(result: CheckResult): number {
  if (result.verdict === 'linearizable') return EXIT_LINEARIZABLE;
  if (result.verdict === 'not-linearizable') return EXIT_NOT_LINEARIZABLE;
  return EXIT_UNKNOWN;
}

/** One line: the verdict first (scripts can take the first word), then the figures and, if any, the violation. */
export function verdictLine(result: CheckResult, format: HistoryFormat): string {
  const figures = `${result.model} model, ${result.operations} operations, ${result.keys} key(s), ${format}, ${result.elapsedMs.toFixed(1)} ms`;
  const v = result.violation;
  if (v !== undefined) {
    const key = v.key === null ? '' : `key ${JSON.stringify(v.key)}: `;
    return (
      `${result.verdict} (${figures}): ${key}${describeOperation(v.blocking)} (process ${v.blocking.process}, event ${v.blocking.callIndex}) ` +
      `cannot be placed after a linearizable prefix of ${v.prefix.length} operation(s) leaving ${v.state}`
    );
  }
  const undecided = result.perKey.filter((k) => k.verdict === 'unknown');
  const why = undecided.length === 0 ? '' : `: ${undecided.length} key(s) undecided (${undecided[0]!.reason ?? 'limit'})`;
  return `${result.verdict} (${figures})${why}`;
}

/** The result without the full operation list, for --json. */
function summarize(result: CheckResult, format: HistoryFormat): unknown {
  const { history: _history, perKey, ...rest } = result;
  return { ...rest, perKey: perKey.map(({ linearization: _order, ...key }) => key), format };
}

function isFileError(err: unknown): boolean {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && (err as NodeJS.ErrnoException).syscall !== undefined;
}
