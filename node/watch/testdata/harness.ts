// Test scaffolding for the watch hub and the Watch service: a single-voter member on a temp dir, writes straight
// through member.propose (no KV service needed), a grpc-js server with only the Watch service, and a client-side
// recorder of one Watch stream's responses.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { loadEtcdApi, type Encodable, type WatchRequest, type WatchResponse } from '../../../proto/index.js';
import type { TxnRequest } from '../../../storage/mvcc/index.js';
import type { CommandResult } from '../../../storage/state-machine.js';
import { API_LIMITS_DEFAULTS, type ApiContext, type ApiLimits } from '../../api/context.js';
import { createWatchService, type WatchStreamLimits } from '../../api/watch.js';
import { Member } from '../../member.js';
import { WatchHub, type WatchHubOptions } from '../hub.js';

export const enc = (s: string): Uint8Array => Buffer.from(s, 'latin1');
export const dec = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

export interface TestMember {
  readonly member: Member;
  readonly dir: string;
  close(): Promise<void>;
}

export async function startMember(): Promise<TestMember> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-watch-'));
  const member = await Member.start({ id: 1, dataDir: dir, initialVoters: [1], heartbeatMs: 20 });
  return {
    member,
    dir,
    close: async () => {
      await member.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function ok(p: Promise<CommandResult>): Promise<CommandResult> {
  const r = await p;
  if (r.error !== undefined) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r;
}

export function put(m: Member, key: string, value: string): Promise<CommandResult> {
  return ok(m.propose({ put: { key: enc(key), value: enc(value) } }));
}

export function del(m: Member, key: string, rangeEnd?: string): Promise<CommandResult> {
  return ok(m.propose({ deleteRange: rangeEnd === undefined ? { key: enc(key) } : { key: enc(key), rangeEnd: enc(rangeEnd) } }));
}

export function txn(m: Member, req: TxnRequest): Promise<CommandResult> {
  return ok(m.propose({ txn: req }));
}

export function compact(m: Member, revision: number): Promise<CommandResult> {
  return ok(m.propose({ compact: { revision } }));
}

export function apiContext(member: Member, limits: Partial<ApiLimits> = {}): ApiContext {
  return {
    member,
    logger: pino({ level: 'silent' }),
    limits: { ...API_LIMITS_DEFAULTS, ...limits },
    self: { name: 'test', clientUrls: [], peerUrls: [] },
    registry: new Map(),
  };
}

export interface WatchServer {
  readonly hub: WatchHub;
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

export async function startWatchServer(
  member: Member,
  opts: { hub?: Partial<WatchHubOptions>; stream?: Partial<WatchStreamLimits>; api?: Partial<ApiLimits> } = {},
): Promise<WatchServer> {
  const hub = new WatchHub(member, opts.hub);
  hub.start();
  const server = new grpc.Server();
  server.addService(loadEtcdApi().etcdserverpb.Watch.service, createWatchService(apiContext(member, opts.api), hub, opts.stream));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    hub,
    port,
    address: `127.0.0.1:${port}`,
    close: async () => {
      hub.stop();
      server.forceShutdown();
    },
  };
}

/** One client Watch stream that records every response. */
export class WatchClient {
  readonly responses: WatchResponse[] = [];
  private readonly client;
  readonly stream;
  private waiters: Array<() => void> = [];
  ended = false;

  constructor(address: string) {
    const api = loadEtcdApi();
    this.client = new api.etcdserverpb.Watch(address, grpc.credentials.createInsecure());
    this.stream = this.client.Watch();
    this.stream.on('data', (r: WatchResponse) => {
      this.responses.push(r);
      this.wake();
    });
    this.stream.on('error', () => {
      this.ended = true;
      this.wake();
    });
    this.stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
  }

  send(req: Encodable<WatchRequest>): void {
    this.stream.write(req);
  }

  create(c: Encodable<Extract<WatchRequest, { request_union: 'create_request' }>['create_request']>): void {
    this.send({ create_request: c });
  }

  /** Wait until `pred` holds over the responses so far (or throw after a timeout). */
  async until(pred: (rs: WatchResponse[]) => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.responses)) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.summary())}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  /** Events of one watch, in order received. */
  events(watchId: string): WatchResponse['events'] {
    return this.responses.filter((r) => r.watch_id === watchId).flatMap((r) => r.events);
  }

  summary(): unknown[] {
    return this.responses.map((r) => ({
      id: r.watch_id,
      rev: r.header?.revision,
      created: r.created || undefined,
      canceled: r.canceled || undefined,
      reason: r.cancel_reason || undefined,
      compact: r.compact_revision === '0' ? undefined : r.compact_revision,
      events: r.events.map((e) => `${e.type} ${dec(e.kv!.key)}@${e.kv!.mod_revision}`),
    }));
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
