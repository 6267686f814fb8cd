// Real Fulcrum members as child processes on loopback: what `npm run cluster`, the multi-process tests and the
// benchmark start. Each member is `node <SERVER_NODE_FLAGS> --import tsx node/cli.ts` with etcd's flags (or, for
// the benchmark, the one-file dist/fulcrum.mjs the container image runs).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SERVER_NODE_FLAGS } from '../node-flags.js';
import { onOutputLines } from './output-lines.js';

const CLI = fileURLToPath(new URL('../cli.ts', import.meta.url));
/** The server bundled into one file by `npm run build` (deploy/docker/bundle.mjs), what the container image runs. */
const BUILT_CLI = fileURLToPath(new URL('../../dist/fulcrum.mjs', import.meta.url));
/** tsx's loader found from here, not from the working directory: members start wherever the caller runs. */
const TSX = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;
/** Lines of each member's output kept for diagnostics. */
const OUTPUT_LINES_MAX = 2_000;

export interface ProcessMemberSpec {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly extraArgs?: readonly string[];
  /** The member's whole environment, instead of this process's (deploy/ tests give exactly a container's). */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * 'source' (default): the TypeScript sources through tsx, as `npm start` and the tests run them. 'build': the
   * bundle `npm run build` writes (dist/fulcrum.mjs), as the container image runs it (the caller builds it first).
   */
  readonly entry?: 'source' | 'build';
  /** Node or V8 flags after the server's own, for measurements (bench:profile --gc-phases: --trace-gc-nvp). */
  readonly nodeFlags?: readonly string[];
}

export interface ProcessClusterOptions {
  readonly members: readonly ProcessMemberSpec[];
  readonly token?: string;
  readonly heartbeatMs?: number;
  readonly electionMs?: number;
  readonly snapshotCount?: number;
  /** Where member output goes besides the in-memory tail (e.g. process.stderr for npm run cluster). */
  readonly echo?: (name: string, line: string) => void;
  /**
   * Start members in their own process group, so a terminal's Ctrl-C reaches only the caller, which then stops
   * each member once (npm run cluster). Otherwise a member would get the terminal's signal and the caller's.
   */
  readonly ownProcessGroups?: boolean;
  /** https needs the certificate flags in each member's extraArgs (node/testing/certs.ts makes the files). */
  readonly clientScheme?: 'http' | 'https';
  readonly peerScheme?: 'http' | 'https';
}

/** Node's arguments for a member before etcd's flags: the server's Node flags, any others, then what to run. */
export function memberNodeArgs(entry: 'source' | 'build', nodeFlags: readonly string[] = []): string[] {
  return [...SERVER_NODE_FLAGS, ...nodeFlags, ...entryArgs(entry)];
}

function entryArgs(entry: 'source' | 'build'): string[] {
  if (entry === 'source') return ['--import', TSX, CLI];
  if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run \`npm run build\` first`);
  return [BUILT_CLI];
}

export class ProcessMember {
  child: ChildProcess | undefined;
  readonly output: string[] = [];
  private exited: Promise<number | null> | undefined;

  constructor(
    readonly spec: ProcessMemberSpec,
    private readonly args: readonly string[],
    private readonly echo: ((name: string, line: string) => void) | undefined,
    private readonly detached = false,
    private readonly clientScheme: 'http' | 'https' = 'http',
  ) {}

  get clientEndpoint(): string {
    return `127.0.0.1:${this.spec.clientPort}`;
  }

  /** The advertised client URL, with the cluster's scheme. */
  get clientUrl(): string {
    return `${this.clientScheme}://127.0.0.1:${this.spec.clientPort}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(extra: readonly string[] = []): void {
    if (this.running) throw new Error(`${this.spec.name} is already running`);
    mkdirSync(this.spec.dataDir, { recursive: true });
    const child = spawn(process.execPath, [...memberNodeArgs(this.spec.entry ?? 'source', this.spec.nodeFlags), ...this.args, ...extra], { stdio: ['ignore', 'pipe', 'pipe'], detached: this.detached, env: this.spec.env ?? process.env });
    this.child = child;
    const take = (line: string): void => {
      this.output.push(line);
      if (this.output.length > OUTPUT_LINES_MAX) this.output.shift();
      this.echo?.(this.spec.name, line);
    };
    onOutputLines(child, take);
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  }

  /** kill -9: no chance to sync or say goodbye. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child!.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM and wait for a clean exit; returns the exit code. */
  async stop(): Promise<number | null> {
    if (!this.running) return this.child?.exitCode ?? null;
    this.child!.kill('SIGTERM');
    return this.exited!;
  }

  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  waitExit(): Promise<number | null> {
    return this.exited ?? Promise.resolve(null);
  }
}

export class ProcessCluster {
  readonly members: ProcessMember[];

  constructor(readonly options: ProcessClusterOptions) {
    const initialCluster = options.members.map((m) => `${m.name}=${options.peerScheme ?? 'http'}://127.0.0.1:${m.peerPort}`).join(',');
    this.members = options.members.map(
      (m) => new ProcessMember(m, memberArgs(m, initialCluster, options), options.echo, options.ownProcessGroups ?? false, options.clientScheme ?? 'http'),
    );
  }

  start(): void {
    for (const m of this.members) m.start();
  }

  member(name: string): ProcessMember {
    const m = this.members.find((x) => x.spec.name === name);
    if (m === undefined) throw new Error(`no member ${name}`);
    return m;
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.clientEndpoint);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
  }

  async kill(): Promise<void> {
    await Promise.all(this.members.map((m) => m.kill()));
  }
}

export function memberArgs(m: ProcessMemberSpec, initialCluster: string, o: Omit<ProcessClusterOptions, 'members'>, state: 'new' | 'existing' = 'new'): string[] {
  const client = `${o.clientScheme ?? 'http'}://127.0.0.1:${m.clientPort}`;
  const peer = `${o.peerScheme ?? 'http'}://127.0.0.1:${m.peerPort}`;
  return [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', client,
    '--advertise-client-urls', client,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', initialCluster,
    '--initial-cluster-state', state,
    '--initial-cluster-token', o.token ?? 'fulcrum-cluster',
    '--heartbeat-interval', String(o.heartbeatMs ?? 100),
    '--election-timeout', String(o.electionMs ?? 1000),
    ...(o.snapshotCount !== undefined ? ['--snapshot-count', String(o.snapshotCount)] : []),
    ...(m.extraArgs ?? []),
  ];
}

/** The ports `npm run cluster` uses: member i on 2379+10000*(i-1) and 2380+10000*(i-1). */
export function localClusterSpecs(dir: string, size = 3): ProcessMemberSpec[] {
  return Array.from({ length: size }, (_, i) => ({
    name: `m${i + 1}`,
    clientPort: 2379 + 10_000 * i,
    peerPort: 2380 + 10_000 * i,
    dataDir: join(dir, `m${i + 1}`),
  }));
}
