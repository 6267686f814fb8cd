// A pool of etcd v3 clients over really separate connections. grpc-js shares subchannels (TCP connections)
// between channels with equal target and options by default, so ten `new KV(addr)` would be one connection:
// every channel here gets `grpc.use_local_subchannel_pool` and a distinct dummy option so it owns its socket.
import * as grpc from '@grpc/grpc-js';
import {
  type Encodable,
  type KVMethods,
  loadEtcdClientApi,
  type MaintenanceMethods,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type TxnRequest,
  type TxnResponse,
  type TypedClient,
} from '../../proto/index.js';
import { EngineChannel, type UnaryMethod } from './engine-client.js';

/** Outgoing messages larger than etcd's default request limit (1.5 MiB) are refused by servers anyway. */
const MESSAGE_BYTES_MAX = 4 * 1024 * 1024;

/**
 * Which client stack carries a pool's KV calls: Fulcrum's HTTP/2 client (engine-client.ts; the measured workloads,
 * so that the generator's own CPU and queueing stay out of the figures) or grpc-js (everything else, and the
 * figures of sessions before the thirty-fifth with `npm run bench -- --client grpc-js`).
 */
export type ClientStack = 'engine' | 'grpc-js';
export const CLIENT_STACKS: readonly ClientStack[] = ['engine', 'grpc-js'];

/** The KV calls the workloads measure, as promises with a deadline. */
export interface KvCalls {
  put(request: Encodable<PutRequest>, timeoutMs: number): Promise<PutResponse>;
  range(request: Encodable<RangeRequest>, timeoutMs: number): Promise<RangeResponse>;
  txn(request: Encodable<TxnRequest>, timeoutMs: number): Promise<TxnResponse>;
}

export interface Connection {
  /** Index in the pool, 0-based. */
  readonly index: number;
  readonly endpoint: string;
  /** The pool's stack's KV calls. */
  readonly calls: KvCalls;
  /** grpc-js clients on their own channel (connected on first use in an engine pool). */
  readonly kv: TypedClient<KVMethods>;
  readonly maintenance: TypedClient<MaintenanceMethods>;
}

/** Options that make a channel own its connection (see the header comment). */
export function separateChannelOptions(index: number): grpc.ChannelOptions {
  return {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_send_message_length': MESSAGE_BYTES_MAX,
    'grpc.max_receive_message_length': MESSAGE_BYTES_MAX,
    // Not read by grpc-js; only there to make each channel's options (and so its identity) unique.
    'fulcrum.bench.connection': index,
  };
}

export class ClientPool {
  readonly connections: readonly Connection[];

  /**
   * `count` connections; connection i goes to endpoints[i % endpoints.length], so a pool over one endpoint puts
   * every connection on it and a pool over all endpoints spreads them round-robin.
   */
  private readonly channels: EngineChannel[] = [];

  constructor(
    endpoints: readonly string[],
    count: number,
    readonly stack: ClientStack = 'grpc-js',
  ) {
    if (endpoints.length === 0) throw new Error('ClientPool: no endpoints');
    if (!Number.isSafeInteger(count) || count < 1) throw new Error(`ClientPool: bad connection count ${count}`);
    const api = loadEtcdClientApi();
    const creds = grpc.credentials.createInsecure();
    this.connections = Array.from({ length: count }, (_, index) => {
      const endpoint = endpoints[index % endpoints.length]!;
      const kv = new api.etcdserverpb.KV(endpoint, creds, separateChannelOptions(index));
      // Maintenance shares the KV client's channel: same connection.
      const maintenance = new api.etcdserverpb.Maintenance(endpoint, creds, { channelOverride: kv.getChannel() });
      let calls: KvCalls;
      if (stack === 'engine') {
        const channel = new EngineChannel(endpoint);
        this.channels.push(channel);
        calls = engineKvCalls(channel, api.etcdserverpb.KV.service);
      } else {
        calls = grpcJsKvCalls(kv);
      }
      return { index, endpoint, calls, kv, maintenance };
    });
  }

  /** The connection a worker should use: worker w of a phase uses connection w % size. */
  for(worker: number): Connection {
    return this.connections[worker % this.connections.length]!;
  }

  /** Waits until every channel is connected (so connection setup is not measured). */
  async ready(timeoutMs: number): Promise<void> {
    if (this.stack === 'engine') {
      await Promise.all(this.channels.map((c) => c.ready(timeoutMs)));
      return;
    }
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      this.connections.map(
        (c) =>
          new Promise<void>((resolve, reject) =>
            c.kv.waitForReady(deadline, (err) => (err ? reject(new Error(`${c.endpoint}: not ready: ${err.message}`)) : resolve())),
          ),
      ),
    );
  }

  close(): void {
    for (const c of this.connections) c.kv.close();
    for (const c of this.channels) c.close();
  }
}

function grpcJsKvCalls(kv: TypedClient<KVMethods>): KvCalls {
  return {
    put: (request, timeoutMs) => unary(kv.Put.bind(kv), request, timeoutMs),
    range: (request, timeoutMs) => unary(kv.Range.bind(kv), request, timeoutMs),
    txn: (request, timeoutMs) => unary(kv.Txn.bind(kv), request, timeoutMs),
  };
}

function engineKvCalls(channel: EngineChannel, service: grpc.ServiceDefinition): KvCalls {
  // grpc-js's own codecs of the service (proto-loader's options): the objects in and out are the same as grpc-js's.
  const method = <Q, R>(name: string): UnaryMethod<Q, R> => service[name] as unknown as UnaryMethod<Q, R>;
  const put = method<Encodable<PutRequest>, PutResponse>('Put');
  const range = method<Encodable<RangeRequest>, RangeResponse>('Range');
  const txn = method<Encodable<TxnRequest>, TxnResponse>('Txn');
  return {
    put: (request, timeoutMs) => channel.unary(put, request, timeoutMs),
    range: (request, timeoutMs) => channel.unary(range, request, timeoutMs),
    txn: (request, timeoutMs) => channel.unary(txn, request, timeoutMs),
  };
}

/** A unary call as a promise, with a deadline. */
export function unary<Q, R>(
  call: (request: Q, options: Partial<grpc.CallOptions>, callback: grpc.requestCallback<R>) => grpc.ClientUnaryCall,
  request: Q,
  timeoutMs: number,
): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    call(request, { deadline: Date.now() + timeoutMs }, (err, res) => {
      if (err) reject(err);
      else if (res === undefined) reject(new Error('empty response'));
      else resolve(res);
    });
  });
}

/** A short, stable name for an error, for counting: the gRPC status name and etcd's message. */
export function errorKey(err: unknown): string {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof (err as grpc.ServiceError).code === 'number') {
    const e = err as grpc.ServiceError;
    // grpc-js appends timings and the peer address to DEADLINE_EXCEEDED ("after 5.002s,LB pick: 0.001s,...");
    // they differ per call and would make every deadline its own kind.
    const details = e.details.replace(/ after \d+(\.\d+)?s,.*$/, '');
    return `${grpc.status[e.code] ?? e.code}: ${details}`;
  }
  return err instanceof Error ? err.message : String(err);
}
