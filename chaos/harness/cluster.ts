// A chaos cluster: N real members (Fulcrum processes, or etcd for comparison) on loopback, every peer and client
// link through a fault proxy. Members advertise canonical peer URLs (so member ids agree); each Fulcrum member
// is started with a redirect (harness/redirect.ts) that sends its connection to member j into the proxy of its
// own link i→j. The cluster kills (-9), pauses, restarts, skews clocks and arms failpoints of single members.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, createWriteStream, existsSync, mkdirSync, renameSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createHash } from 'node:crypto';
import { LinkProxy } from '../proxy/proxy.js';
import { FromRouter } from '../proxy/router.js';
import { Network } from './network.js';
import { ChaosClient } from './client.js';
import { SERVER_NODE_FLAGS } from '../../node/node-flags.js';
import { isFailpointCrashLine } from '../../node/failpoints.js';
import { onStreamLines } from '../../node/testing/output-lines.js';

const CLI = fileURLToPath(new URL('../../node/cli.ts', import.meta.url));
const REDIRECT = pathToFileURL(fileURLToPath(new URL('./redirect.ts', import.meta.url))).href;
const TSX = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;
/** libfaketime with thread support (Node is multi-threaded); only the wall clock is faked (DONT_FAKE_MONOTONIC). */
export const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';

/** The port block of one cluster: inside 10000–12299, the range reserved for this suite's tests. */
const PORT_RANGE_START = 10_000;
const PORT_RANGE_END = 12_299;
export const MEMBERS_MAX = 7;
const SLOT_PORTS = 3 * MEMBERS_MAX + MEMBERS_MAX * MEMBERS_MAX;
const SLOTS = Math.floor((PORT_RANGE_END - PORT_RANGE_START + 1) / SLOT_PORTS);
/** Port blocks tried before giving up (another run on this machine may hold a block). */
const PORT_ATTEMPTS = 8;

export type Target = 'fulcrum' | 'etcd';

export interface ChaosClusterOptions {
  readonly dir: string;
  readonly size: number;
  readonly target: Target;
  readonly heartbeatMs?: number;
  readonly electionMs?: number;
  readonly snapshotCount?: number;
  /** Failpoints every Fulcrum member starts with (FULCRUM_FAILPOINTS), e.g. "no-fsync" for a negative control. */
  readonly failpoints?: string;
  readonly token?: string;
}

export class ChaosMember {
  child: ChildProcess | undefined;
  paused = false;
  /** Removed from the cluster by the membership nemesis (not restarted until it is added back). */
  removed = false;
  /** Exits the harness did not cause (not a kill, stop, or armed failpoint): each one is worth reading about. */
  readonly unexpectedExits: string[] = [];
  private expectingExit = false;
  /** Hex member id, learned from Status once the member answers. */
  id: string | undefined;
  /** Seconds the wall clock is offset by (libfaketime), 0 when not skewed. */
  clockOffsetS = 0;
  private exited: Promise<number | null> = Promise.resolve(null);
  private readonly log: WriteStream;
  readonly clockFile: string;
  readonly failpointFile: string;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
    private readonly cluster: ChaosCluster,
  ) {
    mkdirSync(dataDir, { recursive: true });
    this.log = createWriteStream(join(cluster.options.dir, `${name}.log`), { flags: 'a' });
    this.clockFile = join(cluster.options.dir, `${name}.faketime`);
    this.failpointFile = join(cluster.options.dir, `${name}.failpoints`);
    writeFileSync(this.clockFile, '+0s\n');
    writeFileSync(this.failpointFile, '');
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  note(line: string): void {
    this.log.write(`--- chaos ${new Date().toISOString()} ${line}\n`);
  }

  start(state: 'new' | 'existing' = 'new', initialCluster = this.cluster.initialCluster()): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const o = this.cluster.options;
    const common = [
      '--name', this.name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', `http://127.0.0.1:${this.clientPort}`,
      '--advertise-client-urls', `http://127.0.0.1:${this.clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${this.peerPort}`,
      '--initial-advertise-peer-urls', this.cluster.peerUrl(this.index),
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', state,
      '--initial-cluster-token', o.token ?? 'chaos',
      '--heartbeat-interval', String(o.heartbeatMs ?? 100),
      '--election-timeout', String(o.electionMs ?? 1000),
      ...(o.snapshotCount !== undefined ? ['--snapshot-count', String(o.snapshotCount)] : []),
    ];
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      // The wall clock may be skewed or jumped while the member runs: libfaketime re-reads this file.
      LD_PRELOAD: existsSync(LIBFAKETIME) ? LIBFAKETIME : '',
      FAKETIME_TIMESTAMP_FILE: this.clockFile,
      FAKETIME_NO_CACHE: '1',
      DONT_FAKE_MONOTONIC: '1',
    };
    let cmd: string;
    let args: string[];
    if (o.target === 'fulcrum') {
      cmd = process.execPath;
      args = [...SERVER_NODE_FLAGS, '--import', TSX, '--import', REDIRECT, CLI, ...common];
      env.FULCRUM_CHAOS_REDIRECT = this.cluster.redirectsFor(this.index);
      env.FULCRUM_FAILPOINTS = o.failpoints ?? '';
      env.FULCRUM_FAILPOINTS_FILE = this.failpointFile;
    } else {
      cmd = 'etcd';
      args = [...common, '--logger', 'zap', '--log-outputs', 'stderr'];
    }
    this.note(`start ${state}${this.clockOffsetS !== 0 ? ` clock ${this.clockOffsetS}s` : ''}`);
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child = child;
    this.paused = false;
    child.stdout!.pipe(this.log, { end: false });
    child.stderr!.pipe(this.log, { end: false });
    // A member that crashes itself at an armed failpoint says so first (node/failpoints.ts): an expected exit,
    // even when the crash lands just after the harness disarmed it (the member polls its failpoint file).
    let failpointCrash = false;
    // Read as whole lines: the pipe may cut the message in two, and a half would not match.
    onStreamLines(child.stderr!, (line) => {
      if (isFailpointCrashLine(line)) failpointCrash = true;
    });
    this.expectingExit = false;
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, sig) => {
        this.note(`exited code ${code} signal ${sig}`);
        if (!this.expectingExit && !failpointCrash) this.unexpectedExits.push(`${new Date().toISOString()} code ${code} signal ${sig}`);
        resolve(code);
      }),
    );
  }

  async kill(): Promise<void> {
    if (!this.running) return;
    this.expectingExit = true;
    this.child!.kill('SIGKILL');
    await this.exited;
    this.paused = false;
    this.cluster.network.resetMember(this.index);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    if (this.paused) this.resume();
    this.expectingExit = true;
    this.child!.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  pause(): void {
    if (!this.running || this.paused) return;
    this.child!.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (!this.running || !this.paused) return;
    this.child!.kill('SIGCONT');
    this.paused = false;
  }

  waitExit(): Promise<number | null> {
    return this.exited;
  }

  /** The member may stop on its own (it is being removed from the cluster): not an unexpected exit. */
  expectExit(expect = true): void {
    this.expectingExit = expect;
  }

  /** Offset the member's wall clock (libfaketime re-reads the file on every clock call). Monotonic is left alone. */
  setClock(offsetS: number): void {
    this.clockOffsetS = offsetS;
    this.cluster.maxClockOffsetS = Math.max(this.cluster.maxClockOffsetS, Math.abs(offsetS));
    writeFileSync(this.clockFile, `${offsetS >= 0 ? '+' : ''}${offsetS}s\n`);
  }

  /** Arm failpoints at run time (Fulcrum only): the member re-reads this file while it runs. */
  setFailpoints(spec: string): void {
    writeFileSync(this.failpointFile, spec);
  }

  /**
   * A crash image: the data directory exactly as a kill -9 at this instant would leave it (taken while the
   * member is stopped, through the page cache). Restoring it later emulates a power loss on a disk that never
   * made anything since durable: fair only for a member running with the no-fsync failpoint.
   */
  takeCrashImage(): void {
    const wasPaused = this.paused;
    this.pause();
    try {
      rmSync(`${this.dataDir}.image`, { recursive: true, force: true });
      cpSync(this.dataDir, `${this.dataDir}.image`, { recursive: true });
    } finally {
      if (!wasPaused) this.resume();
    }
  }

  /** Put the crash image back (the member must be down). */
  restoreCrashImage(): void {
    if (this.running) throw new Error(`${this.name}: restore a crash image only while the member is down`);
    rmSync(this.dataDir, { recursive: true, force: true });
    renameSync(`${this.dataDir}.image`, this.dataDir);
  }

  closeLog(): Promise<void> {
    return new Promise((r) => this.log.end(() => r()));
  }
}

export class ChaosCluster {
  readonly members: ChaosMember[] = [];
  readonly network: Network;
  /** The largest wall-clock offset (either way, seconds) any member was given during the run. */
  maxClockOffsetS = 0;
  private base = 0;

  private constructor(readonly options: ChaosClusterOptions) {
    if (options.size < 1 || options.size > MEMBERS_MAX) throw new RangeError(`cluster size ${options.size} must be 1..${MEMBERS_MAX}`);
    this.network = new Network(options.size);
  }

  /** Bind every proxy in a free port block, then create (not start) the members. */
  static async create(options: ChaosClusterOptions): Promise<ChaosCluster> {
    const c = new ChaosCluster(options);
    mkdirSync(options.dir, { recursive: true });
    let lastError: unknown;
    for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
      c.base = PORT_RANGE_START + ((process.pid + attempt * 7 + Math.floor(Math.random() * SLOTS)) % SLOTS) * SLOT_PORTS;
      try {
        await c.bindProxies();
        break;
      } catch (e) {
        lastError = e;
        await c.network.close();
        c.network.links.clear();
        if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
        if (attempt === PORT_ATTEMPTS - 1) throw lastError;
      }
    }
    for (let i = 0; i < options.size; i++) {
      const m = new ChaosMember(i, `m${i + 1}`, c.realClientPort(i), c.realPeerPort(i), join(options.dir, 'data', `m${i + 1}`), c);
      // etcd's peer connections are routed by member id from the first request: the ids must be known up front.
      if (options.target === 'etcd') m.id = etcdMemberId([c.peerUrl(i)], options.token ?? 'chaos');
      c.members.push(m);
    }
    return c;
  }

  private realClientPort(i: number): number {
    return this.base + i;
  }
  private realPeerPort(i: number): number {
    return this.base + MEMBERS_MAX + i;
  }
  private clientProxyPort(i: number): number {
    return this.base + 2 * MEMBERS_MAX + i;
  }
  private peerProxyPort(from: number, to: number): number {
    return this.base + 3 * MEMBERS_MAX + from * MEMBERS_MAX + to;
  }

  private async bindProxies(): Promise<void> {
    const n = this.options.size;
    // The members' own ports are probed too: a member that cannot bind would fail later, less clearly.
    for (let i = 0; i < n; i++) {
      await probeFree(this.realClientPort(i));
      await probeFree(this.realPeerPort(i));
    }
    for (let j = 0; j < n; j++) {
      const client = new LinkProxy(`client->${j}`, this.clientProxyPort(j), this.realClientPort(j));
      this.network.add(`client->${j}`, client);
      await client.listen();
      for (let i = 0; i < n; i++) {
        if (i === j) continue;
        const p = new LinkProxy(`${i}->${j}`, this.peerProxyPort(i, j), this.realPeerPort(j));
        this.network.add(`${i}->${j}`, p);
        await p.listen();
      }
      if (this.options.target === 'etcd') {
        // The unused (j, j) slot is member j's front door: it sorts incoming peer connections into links.
        const router = new FromRouter(this.peerProxyPort(j, j), this.realPeerPort(j), (from) => {
          const i = this.members.findIndex((m) => m.id === from);
          return i < 0 || i === j ? undefined : this.peerProxyPort(i, j);
        });
        this.network.addRouter(router);
        await router.listen();
      }
    }
  }

  /**
   * The URL every member advertises for member i (ids derive from it). Fulcrum: its real peer port (each member's
   * redirect sends it into the right link). etcd: its front door, which routes by the sender's id.
   */
  peerUrl(i: number): string {
    return `http://127.0.0.1:${this.options.target === 'etcd' ? this.peerProxyPort(i, i) : this.realPeerPort(i)}`;
  }

  initialCluster(members: readonly number[] = this.members.map((m) => m.index)): string {
    return members.map((i) => `m${i + 1}=${this.peerUrl(i)}`).join(',');
  }

  /** For member i: canonical peer port of j → proxy port of link i→j, for every j. */
  redirectsFor(i: number): string {
    const pairs: string[] = [];
    for (let j = 0; j < this.options.size; j++) if (j !== i) pairs.push(`${this.realPeerPort(j)}:${this.peerProxyPort(i, j)}`);
    return pairs.join(',');
  }

  /** Where clients reach member i: through its client proxy. */
  clientEndpoint(i: number): string {
    return `127.0.0.1:${this.clientProxyPort(i)}`;
  }

  /** A direct endpoint, bypassing the proxy: for the harness's own control calls (status, member changes). */
  directEndpoint(i: number): string {
    return `127.0.0.1:${this.realClientPort(i)}`;
  }

  start(): void {
    for (const m of this.members) m.start('new');
  }

  /** Crash images of every member at (nearly) the same instant: all are stopped while the copies are made. */
  takeCrashImages(): void {
    const running = this.members.filter((m) => m.running && !m.paused);
    for (const m of running) m.pause();
    try {
      for (const m of this.members) if (existsSync(m.dataDir)) m.takeCrashImage();
    } finally {
      for (const m of running) m.resume();
    }
  }

  /** Ask every running, unpaused member who leads; the answer most of them agree on, if any. */
  async leader(): Promise<number | undefined> {
    const votes = new Map<string, number>();
    await Promise.all(
      this.members.map(async (m) => {
        if (!m.running || m.paused) return;
        const c = new ChaosClient(this.directEndpoint(m.index), 1_000);
        try {
          const s = await c.status();
          m.id = BigInt(s.memberId).toString(16);
          if (s.leader !== '0') votes.set(s.leader, (votes.get(s.leader) ?? 0) + 1);
        } catch {
          // not answering: no vote
        } finally {
          c.close();
        }
      }),
    );
    let best: string | undefined;
    for (const [id, n] of votes) if (best === undefined || n > votes.get(best)!) best = id;
    if (best === undefined) return undefined;
    const hex = BigInt(best).toString(16);
    return this.members.find((m) => m.id === hex)?.index;
  }

  /** Wait until a leader exists and a write through a member succeeds. */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      const l = await this.leader();
      if (l !== undefined) {
        const c = new ChaosClient(this.directEndpoint(l), 2_000);
        try {
          await c.put('chaos/ready', String(Date.now()));
          // Every member must know its id for nemeses that target a role.
          if (this.members.every((m) => !m.running || m.id !== undefined)) return;
        } catch (e) {
          last = e;
        } finally {
          c.close();
        }
      }
      await sleep(200);
    }
    throw new Error(`cluster not ready after ${timeoutMs} ms: ${String(last)}`);
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop()));
    await this.network.close();
    await Promise.all(this.members.map((m) => m.closeLog()));
  }
}

/** etcd's id of an initial member: the first 8 bytes of sha1(sorted peer URLs joined, then the cluster token). */
export function etcdMemberId(peerUrls: readonly string[], token: string): string {
  const h = createHash('sha1').update([...peerUrls].sort().join('') + token).digest();
  return h.readBigUInt64BE(0).toString(16);
}

function probeFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
