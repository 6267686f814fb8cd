// What every fulcrumctl command gets: where to write, the global flags resolved into client options, a lazily
// built Client, and the two error kinds that decide the exit code (usage 2, everything else 1).
import { readFileSync } from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { Client, type AuthOptions, type ClientOptions, type Services, type TlsOptions } from '../index.js';
import { parseEndpoint } from '../options.js';
import { OUTPUT_FORMATS, type OutputFormat } from './format.js';

/** Where a run of fulcrumctl reads and writes: the real process in bin/, captured buffers in tests. */
export interface CtlIo {
  /** stdout; Buffers pass raw bytes through (values in `simple` output are not re-encoded). */
  out(chunk: string | Buffer): void;
  err(text: string): void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** stdin, for `txn`; `isTTY` decides whether prompts are shown. */
  readonly stdin: AsyncIterable<Buffer | string> & { readonly isTTY?: boolean };
  /** Aborts on SIGINT (or when a test says so): long-running commands (watch, lock, elect...) stop cleanly. */
  readonly interrupt: AbortSignal;
}

/** What a command does with its context and its positional arguments and options (as commander passes them). */
export type Action = (ctx: Ctx, ...args: unknown[]) => Promise<void>;
/** Gives a command its action with a Ctx built from the global flags, and the shared output and error setup. */
export type Register = (cmd: Command, run: Action) => Command;

/** A mistake in how the command was called: exit code 2, like commander's own usage errors. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A failure fulcrumctl itself detects (not the client library), with a stable code for the error line. */
export class CtlError extends Error {
  override readonly name = 'CtlError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** etcdctl's defaults: 2 s to connect, 5 s per command. */
export const DIAL_TIMEOUT_DEFAULT = '2s';
export const COMMAND_TIMEOUT_DEFAULT = '5s';
export const ENDPOINTS_DEFAULT = '127.0.0.1:2379';

export interface GlobalFlags {
  readonly endpoints?: string;
  readonly dialTimeout: string;
  readonly commandTimeout: string;
  readonly writeOut: string;
  readonly cacert?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly user?: string;
  readonly password?: string;
}

export interface Globals {
  readonly endpoints: string[];
  readonly dialTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly format: OutputFormat;
  readonly tls: TlsOptions | undefined;
  readonly auth: AuthOptions | undefined;
}

/** Where the password comes from when --user has none: never a prompt, so scripts and tests behave the same. */
export const PASSWORD_ENV = 'FULCRUM_PASSWORD';

/**
 * `--user name[:password]` (also $FULCRUMCTL_USER, then $ETCDCTL_USER), as etcdctl splits it: at the first colon,
 * so a password may contain colons. Without a password there: --password, then $FULCRUM_PASSWORD, else a usage error.
 */
function authOptions(flags: GlobalFlags, env: CtlIo['env']): AuthOptions | undefined {
  const user = flags.user ?? env.FULCRUMCTL_USER ?? env.ETCDCTL_USER;
  // `user add --no-password` is a switch of its own that commander also calls "password": only text is ours.
  flags = { ...flags, password: typeof flags.password === 'string' ? flags.password : undefined };
  if (user === undefined) {
    if (flags.password !== undefined) throw new UsageError('--password needs --user');
    return undefined;
  }
  const colon = user.indexOf(':');
  const username = colon < 0 ? user : user.slice(0, colon);
  if (username === '') throw new UsageError('--user needs a user name: --user name[:password]');
  if (colon >= 0 && flags.password !== undefined) throw new UsageError('give the password in --user name:password or in --password, not both');
  const password = colon >= 0 ? user.slice(colon + 1) : (flags.password ?? env[PASSWORD_ENV]);
  if (password === undefined) throw new UsageError(`--user ${username} has no password: use --user ${username}:<password>, --password or $${PASSWORD_ENV}`);
  return { username, password };
}

/** Flags first, then FULCRUMCTL_ENDPOINTS, then ETCDCTL_ENDPOINTS (so an etcd shell setup carries over). */
export function resolveGlobals(flags: GlobalFlags, env: CtlIo['env']): Globals {
  const list = flags.endpoints ?? env.FULCRUMCTL_ENDPOINTS ?? env.ETCDCTL_ENDPOINTS ?? ENDPOINTS_DEFAULT;
  const endpoints = list.split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (endpoints.length === 0) throw new UsageError('--endpoints needs at least one host:port');
  for (const e of endpoints) {
    try {
      parseEndpoint(e);
    } catch (err) {
      throw new UsageError(`--endpoints: ${(err as Error).message.replace(/^fulcrum client: /, '')}`);
    }
  }
  if (!(OUTPUT_FORMATS as readonly string[]).includes(flags.writeOut)) throw new UsageError(`--write-out must be one of ${OUTPUT_FORMATS.join(', ')}, got ${JSON.stringify(flags.writeOut)}`);
  return {
    endpoints,
    dialTimeoutMs: parseDuration('--dial-timeout', flags.dialTimeout),
    commandTimeoutMs: parseDuration('--command-timeout', flags.commandTimeout),
    format: flags.writeOut as OutputFormat,
    tls: tlsOptions(flags),
    auth: authOptions(flags, env),
  };
}

function tlsOptions(flags: GlobalFlags): TlsOptions | undefined {
  if (flags.cacert === undefined && flags.cert === undefined && flags.key === undefined) return undefined;
  if ((flags.cert === undefined) !== (flags.key === undefined)) throw new UsageError('--cert and --key go together');
  const read = (flag: string, path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (e) {
      throw new UsageError(`${flag}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  };
  const ca = read('--cacert', flags.cacert);
  const cert = read('--cert', flags.cert);
  const key = read('--key', flags.key);
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}

/** "5s", "500ms", "2m", "1h", or a bare number of seconds (etcdctl takes Go durations; these are the usual ones). */
export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null) throw new UsageError(`${flag} must be a duration like 5s, 500ms or 2m, got ${JSON.stringify(text)}`);
  const scale = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  const ms = Number(m[1]) * scale;
  if (ms <= 0) throw new UsageError(`${flag} must be positive, got ${JSON.stringify(text)}`);
  return ms;
}

/** A command's run: its output sink, its flags, and the client it shares with nothing else. */
export class Ctx {
  /** What the process exits with when the command succeeds (`lock -- cmd` passes the command's own). */
  exitCode = 0;
  private client: Client | undefined;
  private readonly extra: Client[] = [];

  constructor(
    readonly io: CtlIo,
    readonly globals: Globals,
  ) {}

  get format(): OutputFormat {
    return this.globals.format;
  }

  /** The client over every endpoint (built on first use: `--help` and usage errors never connect). */
  get kv(): Client {
    this.client ??= new Client(this.clientOptions(this.globals.endpoints));
    return this.client;
  }

  /** A client for one endpoint only (endpoint status/health, snapshot save ask each member itself). */
  clientFor(endpoint: string): Client {
    const c = new Client(this.clientOptions([endpoint]));
    this.extra.push(c);
    return c;
  }

  /** Call options for one request: the command timeout, and SIGINT cancels it. */
  get call(): { timeoutMs: number; signal: AbortSignal } {
    return { timeoutMs: this.globals.commandTimeoutMs, signal: this.io.interrupt };
  }

  json(value: unknown): void {
    this.io.out(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
  }

  async close(): Promise<void> {
    await Promise.all([this.client, ...this.extra].map((c) => c?.close()));
  }

  private clientOptions(endpoints: string[]): ClientOptions {
    return {
      endpoints,
      ...(this.globals.tls ? { tls: this.globals.tls } : {}),
      ...(this.globals.auth ? { auth: this.globals.auth } : {}),
      connectTimeoutMs: this.globals.dialTimeoutMs,
      requestTimeoutMs: this.globals.commandTimeoutMs,
      // One attempt may take the whole command timeout: a slow answer on a single-member cluster is still an answer.
      attemptTimeoutMs: this.globals.commandTimeoutMs,
      clientName: 'fulcrumctl',
    };
  }
}

type StreamLike = grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>;

/**
 * A server stream run through the client's failover (snapshot save): `open` starts it on the member the client
 * picks, `onData` sees each message; it resolves when the server ends the stream. The stream gets no deadline (a
 * big snapshot takes as long as it takes); the signal cancels it. A broken stream is started over from the
 * beginning, possibly on another member, so `open` must forget what the previous attempt collected.
 */
export function runStream<T>(
  client: Client,
  what: string,
  open: (services: Services, metadata: grpc.Metadata) => StreamLike,
  onData: (message: T) => void,
  options: { signal?: AbortSignal; timeoutMs?: number },
): Promise<void> {
  return client.unary<void>(
    'read',
    what,
    (services, md, _callOptions, cb) => {
      const stream = open(services, md);
      let done = false;
      const finish = (err: grpc.ServiceError | null): void => {
        if (done) return;
        done = true;
        cb(err, undefined);
      };
      stream.on('data', (m: T) => {
        if (!done) onData(m);
      });
      stream.on('error', (e: grpc.ServiceError) => finish(e));
      stream.on('end', () => finish(null));
      return stream as unknown as grpc.ClientUnaryCall;
    },
    options,
  );
}
