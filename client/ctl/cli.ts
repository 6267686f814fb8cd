// fulcrumctl: the command line for people (docs/fulcrumctl.md). `main(argv, io)` runs one command and resolves
// with its exit code, so tests call it in-process; run as a script (npm run ctl, bin/fulcrumctl.js) it wires
// itself to the real process.
//
// Exit codes: 0 done; 1 the command failed (one line on stderr: `Error: <message> (<CODE>)`, CODE being the
// client error's stable code); 2 the command was called wrongly (unknown flag, bad argument). A command run
// under `lock` passes its own exit code through.
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
// Imported rather than read from beside this file, which a bundle (dist/fulcrumctl.mjs) is not.
import packageJson from '../../package.json' with { type: 'json' };
import { FulcrumClientError } from '../index.js';
import { registerClusterCommands } from './cluster-commands.js';
import { registerAuthCommands } from './auth-commands.js';
import { type Action, COMMAND_TIMEOUT_DEFAULT, CtlError, Ctx, type CtlIo, DIAL_TIMEOUT_DEFAULT, type GlobalFlags, PASSWORD_ENV, resolveGlobals, UsageError } from './context.js';
import { registerKvCommands } from './kv-commands.js';
import { registerLeaseCommands } from './lease-commands.js';
import { registerRecipeCommands } from './recipe-commands.js';
import { registerRegistryCommands } from './registry-commands.js';

export type { CtlIo } from './context.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Run one fulcrumctl command; `argv` is what follows the program name. Never throws. */
export async function main(argv: readonly string[], io: CtlIo): Promise<number> {
  const state = { exitCode: EXIT_OK };
  const program = buildProgram(io, state);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return state.exitCode;
  } catch (e) {
    return reportError(io, e);
  }
}

function buildProgram(io: CtlIo, state: { exitCode: number }): Command {
  const program = new Command('fulcrumctl')
    .description('A command line for Fulcrum (and any etcd v3 cluster)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s), outputError: (s, write) => write(`Error: ${s.replace(/^error: /, '').trimEnd()}\n`) })
    .showSuggestionAfterError(true)
    .option('--endpoints <list>', 'comma-separated host:port (also $FULCRUMCTL_ENDPOINTS, $ETCDCTL_ENDPOINTS; default 127.0.0.1:2379)')
    .option('--dial-timeout <duration>', 'how long to wait for a connection', DIAL_TIMEOUT_DEFAULT)
    .option('--command-timeout <duration>', 'deadline of each request, retries included', COMMAND_TIMEOUT_DEFAULT)
    .addOption(new Option('-w, --write-out <format>', 'output format').choices(['table', 'json', 'simple']).default('table'))
    .option('--cacert <file>', 'PEM of the CA that signed the members\' certificates (turns TLS on)')
    .option('--cert <file>', 'PEM client certificate, for members that ask for one')
    .option('--key <file>', 'PEM key of --cert')
    .option('--user <name[:password]>', `authenticate as this user (etcd auth); without :password, --password or $${PASSWORD_ENV}`)
    .option('--password <password>', 'the password of --user');
  // Every subcommand reports usage errors the same way and inherits the output settings.
  const register = (cmd: Command, run: Action): Command =>
    cmd.exitOverride().configureOutput(program.configureOutput()).action(async (...args: unknown[]) => {
      const command = args.at(-1) as Command;
      const ctx = new Ctx(io, resolveGlobals(command.optsWithGlobals<GlobalFlags>(), io.env));
      try {
        await run(ctx, ...args.slice(0, -1));
        state.exitCode = ctx.exitCode;
      } finally {
        await ctx.close();
      }
    });
  registerKvCommands(program, register);
  registerLeaseCommands(program, register);
  registerRecipeCommands(program, register);
  registerRegistryCommands(program, register);
  registerClusterCommands(program, register);
  registerAuthCommands(program, register);
  register(program.command('version').description("fulcrumctl's version and the etcd API version it speaks"), async (ctx) => printVersion(ctx));
  for (const group of program.commands) group.exitOverride().configureOutput(program.configureOutput());
  return program;
}

/** The etcd v3 API the client's protos follow (proto/etcd). */
const ETCD_API_VERSION = '3.5';

function printVersion(ctx: Ctx): void {
  if (ctx.format === 'json') ctx.json({ fulcrumctl: packageJson.version, apiVersion: ETCD_API_VERSION });
  else ctx.io.out(`fulcrumctl version: ${packageJson.version}\nAPI version: ${ETCD_API_VERSION}\n`);
}

/** One line on stderr and the exit code for it. */
function reportError(io: CtlIo, e: unknown): number {
  if (e instanceof CommanderError) {
    // --help prints and exits 0; a group called without its subcommand (`fulcrumctl lease`) prints its help on
    // stderr and, like everything else commander refuses, is a usage error (already printed).
    return e.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (e instanceof UsageError) {
    io.err(`Error: ${oneLine(e.message)}\n`);
    return EXIT_USAGE;
  }
  if (e instanceof FulcrumClientError || e instanceof CtlError) {
    io.err(`Error: ${oneLine(e.message)} (${e.code})\n`);
    return EXIT_FAILURE;
  }
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  io.err(`Error: ${oneLine(e instanceof Error ? e.message : String(e))}${typeof code === 'string' ? ` (${code})` : ''}\n`);
  return EXIT_FAILURE;
}

/** The client's messages start with "fulcrum client: " (right in a log, noise on a terminal) and may nest. */
function oneLine(message: string): string {
  return message.replace(/fulcrum client: /g, '').replace(/\s*\n\s*/g, ' ').trim();
}

/** The real process: stdout/stderr, the environment, stdin, and Ctrl-C as the interrupt. */
export function processIo(): CtlIo & { dispose(): void } {
  const controller = new AbortController();
  const onSigint = (): void => {
    // The first Ctrl-C ends the command cleanly (unlock, resign, close); a second one exits at once.
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  // `fulcrumctl watch k | head -1`: once the reader is gone there is nobody left to tell; end quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(EXIT_OK);
  });
  return {
    out: (chunk) => void process.stdout.write(chunk),
    err: (text) => void process.stderr.write(text),
    env: process.env,
    stdin: process.stdin,
    interrupt: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigint);
    },
  };
}

/** Run as the program itself (not imported by a test). */
export async function runAsProgram(): Promise<void> {
  const io = processIo();
  const code = await main(process.argv.slice(2), io);
  io.dispose();
  // Let stdout drain before the process ends (a pipe may still hold output); exit explicitly so that nothing
  // left open (a gRPC channel closing, stdin) keeps a finished command alive.
  process.stdout.write('', () => process.exit(code));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await runAsProgram();
