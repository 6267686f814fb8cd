// The benchmark's engine client against a real grpc-js server serving etcd's KV service: answers, statuses,
// deadlines, the server's stream limit, a lost connection and the next call's new one. (Against Fulcrum's and
// etcd's servers it runs in bench/cli.test.ts's smoke run.)
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { type KVMethods, loadEtcdClientApi, type PutResponse, type RangeResponse } from '../../proto/index.js';
import type { Handlers } from '../../proto/services.js';
import { ClientPool } from './clients.js';
import { CallError, EngineChannel, type UnaryMethod } from './engine-client.js';

const api = loadEtcdClientApi();
const service = api.etcdserverpb.KV.service;
const PUT = service.Put as unknown as UnaryMethod<{ key: Uint8Array; value: Uint8Array }, PutResponse>;
const RANGE = service.Range as unknown as UnaryMethod<{ key: Uint8Array }, RangeResponse>;

type Behaviour = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

/** A KV server whose Put answers with the key's length as the revision and whose Range does what the test says. */
async function kvServer(range: Behaviour, options: grpc.ServerOptions = {}, port = 0): Promise<{ server: grpc.Server; endpoint: string; open: () => number }> {
  const server = new grpc.Server(options);
  let open = 0;
  const handlers = {
    Put: (call: grpc.ServerUnaryCall<{ key: Buffer }, unknown>, callback: grpc.sendUnaryData<unknown>) =>
      callback(null, { header: { revision: call.request.key.length, member_id: 7 } }),
    Range: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      open++;
      range(call, (e, r) => {
        open--;
        callback(e, r);
      });
    },
    DeleteRange: () => {},
    Txn: () => {},
    Compact: () => {},
  } as unknown as Handlers<KVMethods>;
  server.addService(service, handlers as unknown as grpc.UntypedServiceImplementation);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  servers.push(server);
  return { server, endpoint: `127.0.0.1:${bound}`, open: () => open };
}

const servers: grpc.Server[] = [];
const channels: EngineChannel[] = [];
function channel(endpoint: string): EngineChannel {
  const c = new EngineChannel(endpoint);
  channels.push(c);
  return c;
}

afterEach(() => {
  for (const c of channels.splice(0)) c.close();
  for (const s of servers.splice(0)) s.forceShutdown();
});

const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));

describe('EngineChannel', () => {
  it('carries unary calls and decodes the answers with the service\'s codecs', async () => {
    const { endpoint } = await kvServer((call, cb) => cb(null, { kvs: [{ key: (call.request as { key: Buffer }).key, value: Buffer.from('v'), mod_revision: 9 }], count: 1 }));
    const c = channel(endpoint);
    await c.ready(5_000);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => c.unary(PUT, { key: bytes('k'.repeat(i + 1)), value: bytes('x') }, 5_000)));
    expect(answers.map((a) => a.header?.revision)).toEqual(Array.from({ length: 50 }, (_, i) => String(i + 1)));
    const r = await c.unary(RANGE, { key: bytes('abc') }, 5_000);
    expect(Buffer.from(r.kvs[0]!.key).toString()).toBe('abc');
    expect(r.kvs[0]!.mod_revision).toBe('9');
  });

  it('fails a call with the server\'s status code and its (percent-decoded) message', async () => {
    const { endpoint } = await kvServer((_, cb) => cb({ code: grpc.status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted, 100%' }));
    const c = channel(endpoint);
    const error = await c.unary(RANGE, { key: bytes('a') }, 5_000).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CallError);
    expect((error as CallError).code).toBe(grpc.status.OUT_OF_RANGE);
    expect((error as CallError).details).toBe('etcdserver: mvcc: required revision has been compacted, 100%');
  });

  it('fails a response larger than its limit with RESOURCE_EXHAUSTED, and goes on', async () => {
    const { endpoint } = await kvServer((_, cb) => cb(null, { kvs: [{ key: Buffer.from('k'), value: Buffer.alloc(5 * 1024 * 1024, 1) }], count: 1 }));
    const c = channel(endpoint);
    const error = (await c.unary(RANGE, { key: bytes('k') }, 10_000).catch((e: unknown) => e)) as CallError;
    expect([error.code, error.details]).toEqual([grpc.status.RESOURCE_EXHAUSTED, 'response larger than 4194304 bytes']);
    expect((await c.unary(PUT, { key: bytes('abc'), value: bytes('') }, 5_000)).header?.revision).toBe('3');
  });

  it('fails a call that outlives its deadline with DEADLINE_EXCEEDED and resets its stream', async () => {
    const { endpoint, open } = await kvServer(() => {});
    const c = channel(endpoint);
    await c.ready(5_000);
    const started = Date.now();
    const error = (await c.unary(RANGE, { key: bytes('a') }, 150).catch((e: unknown) => e)) as CallError;
    expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(Date.now() - started).toBeLessThan(2_000);
    // The channel goes on: the next call is answered.
    expect((await c.unary(PUT, { key: bytes('kk'), value: bytes('') }, 5_000)).header?.revision).toBe('2');
    expect(open()).toBe(1);
  });

  it('holds calls past the server\'s stream limit until streams close, and answers them all', async () => {
    const waiting: Array<() => void> = [];
    const { endpoint } = await kvServer((_, cb) => waiting.push(() => cb(null, { count: 1 })), { 'grpc.max_concurrent_streams': 2 });
    const c = channel(endpoint);
    await c.ready(5_000);
    const calls = Array.from({ length: 10 }, () => c.unary(RANGE, { key: bytes('a') }, 5_000));
    for (let answered = 0; answered < 10; ) {
      await new Promise((r) => setTimeout(r, 20));
      // Never more than the server's two streams open at once.
      expect(waiting.length).toBeLessThanOrEqual(2);
      for (const answer of waiting.splice(0)) {
        answer();
        answered++;
      }
    }
    expect((await Promise.all(calls)).map((r) => r.count)).toEqual(Array(10).fill('1'));
  });

  it('fails the calls of a lost connection with UNAVAILABLE and dials again for the next call', async () => {
    const first = await kvServer(() => {});
    const port = Number(first.endpoint.split(':')[1]);
    const c = channel(first.endpoint);
    await c.ready(5_000);
    const inFlight = c.unary(RANGE, { key: bytes('a') }, 5_000).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    first.server.forceShutdown();
    expect(((await inFlight) as CallError).code).toBe(grpc.status.UNAVAILABLE);
    await kvServer((_, cb) => cb(null, { count: 3 }), {}, port);
    expect((await c.unary(RANGE, { key: bytes('a') }, 5_000)).count).toBe('3');
  });

  it('refuses a server that does not speak HTTP/2 (no SETTINGS) within the ready timeout, and a closed port', async () => {
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      await expect(channel(`127.0.0.1:${port}`).ready(200)).rejects.toThrow(/no HTTP\/2 SETTINGS within 200 ms/);
    } finally {
      silent.close();
    }
    const closed = channel(`127.0.0.1:${port}`);
    await expect(closed.ready(2_000)).rejects.toThrow(/connection closed/);
    expect(((await closed.unary(PUT, { key: bytes('a'), value: bytes('') }, 2_000).catch((e: unknown) => e)) as CallError).code).toBe(grpc.status.UNAVAILABLE);
  });

  it('refuses a malformed endpoint', () => {
    expect(() => new EngineChannel('localhost')).toThrow(/bad endpoint/);
    expect(() => new EngineChannel('127.0.0.1:99999')).toThrow(/bad endpoint/);
  });
});

describe('ClientPool on the engine', () => {
  it('gives every connection its own channel and the same KvCalls as grpc-js\'s', async () => {
    const { endpoint } = await kvServer((_, cb) => cb(null, { count: 5 }));
    for (const stack of ['engine', 'grpc-js'] as const) {
      const pool = new ClientPool([endpoint], 3, stack);
      try {
        await pool.ready(5_000);
        const put = await pool.for(1).calls.put({ key: bytes('abcd'), value: bytes('v') }, 5_000);
        const range = await pool.for(2).calls.range({ key: bytes('a') }, 5_000);
        expect([stack, put.header?.revision, range.count]).toEqual([stack, '4', '5']);
      } finally {
        pool.close();
      }
    }
  });
});
