// A pool of etcd v3 clients over really separate connections. grpc-js shares subchannels (TCP connections)
// between channels with equal target and options by default, so ten `new KV(addr)` would be one connection:
// every channel here gets `grpc.use_local_subchannel_pool` and a distinct dummy option so it owns its socket.
import * as grpc from '@grpc/grpc-js';
import { loadEtcdClientApi, type KVMethods, type MaintenanceMethods, type TypedClient } from '../../proto/index.js';

/** Outgoing messages larger than etcd's default request limit (1.5 MiB) are refused by servers anyway. */
const MESSAGE_BYTES_MAX = 4 * 1024 * 1024;

export interface Connection {
  /** Index in the pool, 0-based. */
  readonly index: number;
  readonly endpoint: string;
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
  constructor(endpoints: readonly string[], count: number) {
    if (endpoints.length === 0) throw new Error('ClientPool: no endpoints');
    if (!Number.isSafeInteger(count) || count < 1) throw new Error(`ClientPool: bad connection count ${count}`);
    const api = loadEtcdClientApi();
    const creds = grpc.credentials.createInsecure();
    this.connections = Array.from({ length: count }, (_, index) => {
      const endpoint = endpoints[index % endpoints.length]!;
      const kv = new api.etcdserverpb.KV(endpoint, creds, separateChannelOptions(index));
      // Maintenance shares the KV client's channel: same connection.
      const maintenance = new api.etcdserverpb.Maintenance(endpoint, creds, { channelOverride: kv.getChannel() });
      return { index, endpoint, kv, maintenance };
    });
  }

  /** The connection a worker should use: worker w of a phase uses connection w % size. */
  for(worker: number): Connection {
    return this.connections[worker % this.connections.length]!;
  }

  /** Waits until every channel is connected (so connection setup is not measured). */
  async ready(timeoutMs: number): Promise<void> {
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
  }
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
