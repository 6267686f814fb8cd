// Test helpers (not a test file): real Members with real GrpcPeerTransports and grpc-js servers on loopback.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import type { NodeId } from '../../raft/types.js';
import type { MemberContext } from '../../storage/state-machine.js';
import { clusterIdFor, memberIdFor } from '../ids.js';
import { Member, type MemberOptions } from '../member.js';
import { PEER_SERVER_OPTIONS, type TransportLimits } from './limits.js';
import { addPeerService, type PeerService } from './peer-server.js';
import { GrpcPeerTransport } from './transport.js';

export const TOKEN = 'transport-test';
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Poll until `fn` returns something other than undefined/false; generous timeout, no timing asserted. */
export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 45_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A pino logger whose JSON lines land in `lines`, so tests can read what was logged. */
export function memoryLogger(lines: string[]): Logger {
  return pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
}

export async function bindServer(port = 0): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server(PEER_SERVER_OPTIONS);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port: bound };
}

export interface TestNode {
  readonly id: NodeId;
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly logs: string[];
  server?: grpc.Server;
  /** The RaftTransport service on `server`, as a member's server registers it (node/server.ts). */
  peerService?: PeerService;
  transport?: GrpcPeerTransport;
  member?: Member;
}

type Extra = Partial<Omit<MemberOptions, 'id' | 'dataDir' | 'initialVoters' | 'transport'>>;

export class TestCluster {
  readonly nodes: TestNode[] = [];
  readonly founders: NodeId[] = [];
  readonly contexts = new Map<NodeId, MemberContext>();

  constructor(
    readonly extra: Extra = {},
    readonly limits: Partial<TransportLimits> = {},
  ) {}

  get clusterId(): number {
    return clusterIdFor(this.founders, TOKEN);
  }

  /** Bind n servers first (port 0), derive ids from the URLs, then start n members. */
  static async start(n: number, extra: Extra = {}, limits: Partial<TransportLimits> = {}): Promise<TestCluster> {
    const c = new TestCluster(extra, limits);
    for (let i = 0; i < n; i++) {
      const node = await c.reserve();
      c.founders.push(node.id);
      c.contexts.set(node.id, { name: `m${i}`, peerUrls: [node.url] });
    }
    await Promise.all(c.nodes.map((node) => c.startMember(node)));
    return c;
  }

  /** A node with a bound server and its id, not started. */
  async reserve(): Promise<TestNode> {
    const { server, port } = await bindServer();
    const url = `http://127.0.0.1:${port}`;
    const node: TestNode = { id: memberIdFor([url], TOKEN), url, port, dir: mkdtempSync(join(tmpdir(), 'fulcrum-transport-')), logs: [], server };
    this.nodes.push(node);
    return node;
  }

  async startMember(node: TestNode): Promise<Member> {
    node.server ??= (await bindServer(node.port)).server;
    const peers = new Map(this.nodes.map((n) => [n.id, [n.url]] as const));
    const transport = new GrpcPeerTransport({
      selfId: node.id,
      clusterId: this.clusterId,
      peers,
      logger: memoryLogger(node.logs),
      name: this.contexts.get(node.id)?.name ?? 'joiner',
      selfPeerUrls: [node.url],
      limits: this.limits,
    });
    node.peerService = addPeerService(node.server, transport);
    node.peerService.install(node.server);
    node.transport = transport;
    node.member = await Member.start({
      heartbeatMs: 20,
      electionTicks: 10,
      clusterToken: TOKEN,
      ...this.extra,
      id: node.id,
      dataDir: node.dir,
      initialVoters: this.founders,
      initialMembers: this.contexts,
      transport,
    });
    return node.member;
  }

  /** Close the member (and with it its transport) and its server; the data dir stays. */
  async stopMember(node: TestNode): Promise<void> {
    await node.member?.close();
    node.server?.forceShutdown();
    node.member = undefined;
    node.server = undefined;
    node.peerService = undefined;
    node.transport = undefined;
  }

  running(): TestNode[] {
    return this.nodes.filter((n) => n.member !== undefined);
  }

  /** The leader every running member agrees on. */
  async waitLeader(exclude: NodeId[] = []): Promise<TestNode> {
    return waitFor('a leader all running members agree on', () => {
      const running = this.running();
      const lead = running[0]?.member!.leaderId();
      if (lead === undefined || lead === 0 || exclude.includes(lead)) return undefined;
      if (!running.every((n) => n.member!.leaderId() === lead)) return undefined;
      const node = running.find((n) => n.id === lead);
      return node?.member!.isLeader() ? node : undefined;
    });
  }

  /** Wait until every running member has applied up to `revision`. */
  async waitRevision(revision: number): Promise<void> {
    await waitFor(`every running member at revision ${revision}`, () => this.running().every((n) => n.member!.stateMachine.revision >= revision));
  }

  async close(): Promise<void> {
    for (const n of this.nodes) await this.stopMember(n);
    for (const n of this.nodes) rmSync(n.dir, { recursive: true, force: true });
  }
}

export async function put(m: Member, key: string, value: string): Promise<number> {
  const r = await m.propose({ put: { key: enc(key), value: enc(value) } });
  if (r.error !== undefined) throw new Error(r.error.message);
  return r.revision;
}

/** Every key under `prefix` with its value, read from the member's own state machine. */
export async function dump(m: Member, prefix: string): Promise<Record<string, string>> {
  const r = await m.stateMachine.mvcc.range({ key: enc(prefix), rangeEnd: enc(prefix + '\xff') });
  return Object.fromEntries(r.kvs.map((kv) => [dec(kv.key), dec(kv.value)]));
}
