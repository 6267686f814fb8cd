// Fulcrum inside your own process: `import { startMember } from 'fulcrum'`. A single member with its data on disk,
// with or without network listeners, and an in-process client with the store's own semantics (linearizable reads,
// revisions, transactions, watches from any revision, leases). The gRPC client for remote clusters is in client/.
import { join } from 'node:path';
import type { CommandResult } from '../storage/state-machine.js';
import type { KeyValue, MvccEvent, RangeRequest, TxnRequest, TxnResponse } from '../storage/mvcc/types.js';
import { parseServerConfig } from './config.js';
import { memberIdFor } from './ids.js';
import { LeaseManager } from './lease/index.js';
import { Member } from './member.js';
import { startServer } from './server.js';
import { WatchHub } from './watch/index.js';

export interface StartMemberOptions {
  /** Member name (default "default"). */
  readonly name?: string;
  /** Where the data lives (default ./<name>.fulcrum). */
  readonly dataDir?: string;
  /** Serve the etcd v3 API (and peers) on the network too. Ports default to etcd's 2379/2380. */
  readonly listen?: boolean | { readonly host?: string; readonly clientPort?: number; readonly peerPort?: number };
  readonly heartbeatMs?: number;
  readonly electionMs?: number;
  readonly logLevel?: 'debug' | 'info' | 'warn' | 'error';
}

export interface EmbeddedMember {
  readonly client: LocalClient;
  readonly member: Member;
  /** Client endpoints (host:port) when listening; empty otherwise. */
  readonly endpoints: readonly string[];
  close(): Promise<void>;
}

/** A typed failure with the same stable code and etcd message the gRPC API would give. */
export class FulcrumError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'FulcrumError';
  }
}

export async function startMember(options: StartMemberOptions = {}): Promise<EmbeddedMember> {
  const name = options.name ?? 'default';
  const dataDir = options.dataDir ?? `./${name}.fulcrum`;
  if (options.listen !== undefined && options.listen !== false) {
    const l = options.listen === true ? {} : options.listen;
    const host = l.host ?? '127.0.0.1';
    const peer = `http://${host}:${l.peerPort ?? 2380}`;
    const config = parseServerConfig(
      [
        '--name', name,
        '--data-dir', dataDir,
        '--listen-client-urls', `http://${host}:${l.clientPort ?? 2379}`,
        '--listen-peer-urls', peer,
        '--initial-cluster', `${name}=${peer}`,
        '--heartbeat-interval', String(options.heartbeatMs ?? 100),
        '--election-timeout', String(options.electionMs ?? 1000),
        '--log-level', options.logLevel ?? 'warn',
      ],
      {},
    );
    const server = await startServer(config);
    return {
      client: new LocalClient(server.member, server.watchHub, server.leases),
      member: server.member,
      endpoints: server.clientUrls.map((u) => u.replace(/^http:\/\//, '')),
      close: () => server.close(),
    };
  }
  // No network: one voter that is always its own leader.
  const id = memberIdFor([`embedded://${name}`], 'fulcrum-embedded');
  const member = await Member.start({
    id,
    dataDir: join(dataDir),
    initialVoters: [id],
    initialMembers: new Map([[id, { name, peerUrls: [] }]]),
    heartbeatMs: options.heartbeatMs ?? 100,
  });
  const hub = new WatchHub(member);
  hub.start();
  const leases = new LeaseManager(member);
  leases.start();
  return {
    client: new LocalClient(member, hub, leases),
    member,
    endpoints: [],
    close: async () => {
      hub.stop();
      leases.stop();
      await member.close();
    },
  };
}

type Bytes = string | Uint8Array;
const bytes = (b: Bytes): Uint8Array => (typeof b === 'string' ? new TextEncoder().encode(b) : b);

function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Uint8Array.of(0); // every key from the prefix on
}

export interface LeaseHandle {
  readonly id: bigint;
  /** Renew now; resolves with the TTL in seconds the lease has again. */
  keepAlive(): Promise<number>;
  revoke(): Promise<void>;
}

export interface WatchStream extends AsyncIterable<MvccEvent> {
  cancel(): void;
}

/**
 * An event the watcher may do anything with. The hub hands one event object to every watcher it matches, and a
 * put's value views the row the store writes and caches (the store copies a value once): an application that
 * changed a value it was given in place would change what other watchers see, and the cached row, whose
 * checksum would then fail a later read. Over gRPC events are encoded, so only this in-process path copies.
 */
function ownCopy(e: MvccEvent): MvccEvent {
  const kv = copyKv(e.kv);
  return e.prevKv === undefined ? { type: e.type, kv } : { type: e.type, kv, prevKv: copyKv(e.prevKv) };
}

function copyKv(kv: KeyValue): KeyValue {
  return { ...kv, key: kv.key.slice(), value: kv.value.slice() };
}

/** The in-process client: the store's semantics without a network hop. */
export class LocalClient {
  constructor(
    private readonly member: Member,
    private readonly hub: WatchHub,
    private readonly leases: LeaseManager,
  ) {}

  private async write(op: Parameters<Member['propose']>[0]): Promise<CommandResult> {
    const r = await this.member.propose(op);
    if (r.error !== undefined) throw new FulcrumError(r.error.code, r.error.message);
    return r;
  }

  async put(key: Bytes, value: Bytes, options: { lease?: bigint } = {}): Promise<{ revision: number }> {
    const r = await this.write({ put: { key: bytes(key), value: bytes(value), ...(options.lease ? { lease: options.lease } : {}) } });
    return { revision: r.revision };
  }

  /** Linearizable by default; `serializable` reads this member's state as it is. */
  async get(key: Bytes, options: { serializable?: boolean; revision?: number } = {}): Promise<KeyValue | undefined> {
    return (await this.range({ key: bytes(key), ...(options.revision ? { revision: options.revision } : {}) }, options.serializable))[0];
  }

  async getPrefix(prefix: Bytes, options: { serializable?: boolean; limit?: number } = {}): Promise<KeyValue[]> {
    const p = bytes(prefix);
    return this.range({ key: p, rangeEnd: prefixEnd(p), ...(options.limit ? { limit: options.limit } : {}) }, options.serializable);
  }

  private async range(req: RangeRequest, serializable = false): Promise<KeyValue[]> {
    if (!serializable) await this.member.linearizableBarrier();
    try {
      return (await this.member.stateMachine.mvcc.range(req)).kvs;
    } catch (e) {
      const c = e as { code?: string; message: string };
      throw new FulcrumError(c.code ?? 'INTERNAL', c.message);
    }
  }

  /** Delete a key, or every key with a prefix; resolves with how many were deleted. */
  async delete(key: Bytes, options: { prefix?: boolean } = {}): Promise<number> {
    const k = bytes(key);
    const r = await this.write({ deleteRange: { key: k, ...(options.prefix ? { rangeEnd: prefixEnd(k) } : {}) } });
    return (r.response as { deleted: number }).deleted;
  }

  async txn(req: TxnRequest): Promise<TxnResponse> {
    return (await this.write({ txn: req })).response as unknown as TxnResponse;
  }

  /** Watch a key (or a prefix) from a revision (default: from now). Events arrive in revision order, once each. */
  watch(key: Bytes, options: { prefix?: boolean; startRevision?: number; prevKv?: boolean } = {}): WatchStream {
    const k = bytes(key);
    let wake: (() => void) | undefined;
    const w = this.hub.watch(
      { key: k, ...(options.prefix ? { rangeEnd: prefixEnd(k) } : {}), startRevision: options.startRevision ?? 0, prevKv: options.prevKv ?? false, noPut: false, noDelete: false, progressNotify: false },
      { onReady: () => wake?.() },
    );
    const hub = this.hub;
    return {
      cancel: () => hub.cancel(w),
      async *[Symbol.asyncIterator]() {
        try {
          for (;;) {
            for (const group of w.take(1000, 16 * 1024 * 1024)) for (const e of group.events) yield ownCopy(e);
            const c = w.canceled;
            if (c !== undefined) {
              if (c.compactRevision > 0) throw new FulcrumError('COMPACTED', 'etcdserver: mvcc: required revision has been compacted');
              return;
            }
            if (!w.hasPending) await new Promise<void>((r) => (wake = r));
          }
        } finally {
          hub.cancel(w);
        }
      },
    };
  }

  async grantLease(ttlSeconds: number): Promise<LeaseHandle> {
    const r = await this.write({ leaseGrant: { id: 0n, ttlSeconds } });
    const id = (r.response as { id: bigint }).id;
    return {
      id,
      keepAlive: () => this.leases.renew(id),
      revoke: async () => {
        const rr = await this.leases.revoke(id);
        if (rr.error !== undefined) throw new FulcrumError(rr.error.code, rr.error.message);
      },
    };
  }

  /** The current revision of the store on this member. */
  get revision(): number {
    return this.member.stateMachine.revision;
  }
}

