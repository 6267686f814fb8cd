// End to end over a real socket: a grpc-js server built from these definitions answers a grpc-js client built from
// the same definitions and, when it is installed, etcd's own etcdctl (Go, etcd's generated code). The second is the
// real proof that the wire format is etcd's: etcdctl knows nothing of our .proto files.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loadEtcdApi,
  type Encodable,
  type Handlers,
  type KVMethods,
  type MaintenanceMethods,
  type PutRequest,
  type RangeResponse,
  type ResponseHeader,
  type WatchMethods,
} from './index.js';

const execFileAsync = promisify(execFile);

const HEADER: Encodable<ResponseHeader> = { cluster_id: 14841639068965178418n, member_id: 10276657743932975437n, revision: 7, raft_term: 2, hlc: 1n << 40n };
const FOO: Encodable<RangeResponse>['kvs'] = [
  { key: Buffer.from('foo'), value: Buffer.from('bar'), create_revision: 3, mod_revision: 7, version: 2, lease: 0, mod_hlc: 99 },
];

function unimplemented(): grpc.ServiceError {
  return Object.assign(new Error('not in the smoke server'), { code: grpc.status.UNIMPLEMENTED, details: 'not in the smoke server', metadata: new grpc.Metadata() });
}

/** A trivial KV: Range answers one fixed key for "foo" and nothing else; Put remembers the last request. */
function smokeKv(puts: PutRequest[]): Handlers<KVMethods> {
  return {
    Range: (call, callback) => {
      const hit = call.request.key.toString() === 'foo';
      callback(null, { header: HEADER, kvs: hit ? FOO : [], count: hit ? 1 : 0, more: false });
    },
    Put: (call, callback) => {
      puts.push(call.request);
      callback(null, { header: { ...HEADER, revision: 8 } });
    },
    DeleteRange: (_call, callback) => callback(unimplemented()),
    Txn: (_call, callback) => callback(unimplemented()),
    Compact: (_call, callback) => callback(unimplemented()),
  };
}

/** Watch: acknowledges a create, then sends one PUT event for the watched key. Exercises the bidi stream and Event. */
function smokeWatch(): Handlers<WatchMethods> {
  return {
    Watch: (call) => {
      call.on('data', (req) => {
        if (req.request_union !== 'create_request') return;
        const key = req.create_request.key;
        call.write({ header: HEADER, watch_id: 0, created: true });
        call.write({
          header: { ...HEADER, revision: 9 },
          watch_id: 0,
          events: [{ type: 'PUT', kv: { key, value: Buffer.from('bar'), create_revision: 9, mod_revision: 9, version: 1 } }],
        });
      });
      call.on('end', () => call.end());
    },
  };
}

/** Maintenance: only Status, with 64-bit member ids. */
function smokeMaintenance(): Handlers<MaintenanceMethods> {
  const no = (_call: unknown, callback: (e: grpc.ServiceError) => void): void => callback(unimplemented());
  return {
    Status: (_call, callback) =>
      callback(null, { header: HEADER, version: '3.5.0', dbSize: 4096, leader: HEADER.member_id, raftIndex: 12, raftTerm: 2, raftAppliedIndex: 12, dbSizeInUse: 2048 }),
    Alarm: no,
    Defragment: no,
    Hash: no,
    HashKV: no,
    Snapshot: (call) => call.destroy(unimplemented()),
    MoveLeader: no,
    Downgrade: no,
  };
}

describe('smoke: grpc-js server and clients over loopback', () => {
  const api = loadEtcdApi();
  const server = new grpc.Server();
  const puts: PutRequest[] = [];
  let port = 0;

  beforeAll(async () => {
    server.addService(api.etcdserverpb.KV.service, smokeKv(puts));
    server.addService(api.etcdserverpb.Watch.service, smokeWatch());
    server.addService(api.etcdserverpb.Maintenance.service, smokeMaintenance());
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  });

  it('a grpc-js client built from the same definitions gets the kv back', async () => {
    const kv = new api.etcdserverpb.KV(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const res = await new Promise<RangeResponse>((resolve, reject) =>
        kv.Range({ key: Buffer.from('foo') }, (err, r) => (err || r === undefined ? reject(err ?? new Error('no response')) : resolve(r))),
      );
      expect(res.count).toBe('1');
      expect(res.header).toMatchObject({ cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: '7', hlc: String(1n << 40n) });
      expect(res.kvs).toHaveLength(1);
      const [got] = res.kvs;
      expect(got?.key.toString()).toBe('foo');
      expect(got?.value.toString()).toBe('bar');
      expect(got).toMatchObject({ create_revision: '3', mod_revision: '7', version: '2', lease: '0', mod_hlc: '99', create_hlc: '0' });
    } finally {
      kv.close();
    }
  });

  const etcdctl = process.env.ETCDCTL_BIN ?? 'etcdctl';
  const haveEtcdctl = etcdctlRuns(etcdctl);
  if (!haveEtcdctl) {
    console.warn(`proto/smoke.test.ts: etcdctl not found (${etcdctl}); skipping the etcdctl interoperability tests. Install etcd-client to run them.`);
  }

  const run = async (...args: string[]): Promise<string> => {
    const { stdout } = await execFileAsync(etcdctl, ['--endpoints', `127.0.0.1:${port}`, '--dial-timeout', '5s', '--command-timeout', '5s', ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      timeout: 20_000,
    });
    return stdout;
  };

  it.skipIf(!haveEtcdctl)('etcdctl get foo -w json decodes our RangeResponse', async () => {
    const out = JSON.parse(await run('get', 'foo', '-w', 'json')) as {
      header: { cluster_id: number; member_id: number; revision: number; raft_term: number };
      kvs: { key: string; value: string; create_revision: number; mod_revision: number; version: number }[];
      count: number;
    };
    // etcdctl prints bytes as base64 and 64-bit ids as JSON numbers (so the big ids lose precision in JSON.parse).
    expect(out.count).toBe(1);
    expect(out.header.revision).toBe(7);
    expect(out.header.raft_term).toBe(2);
    expect(out.kvs).toHaveLength(1);
    expect(Buffer.from(out.kvs[0]?.key ?? '', 'base64').toString()).toBe('foo');
    expect(Buffer.from(out.kvs[0]?.value ?? '', 'base64').toString()).toBe('bar');
    expect(out.kvs[0]).toMatchObject({ create_revision: 3, mod_revision: 7, version: 2 });
  });

  it.skipIf(!haveEtcdctl)('etcdctl get prints the plain key and value', async () => {
    expect(await run('get', 'foo')).toBe('foo\nbar\n');
  });

  it.skipIf(!haveEtcdctl)('etcdctl endpoint status decodes our StatusResponse', async () => {
    const out = JSON.parse(await run('endpoint', 'status', '-w', 'json')) as { Endpoint: string; Status: Record<string, unknown> }[];
    expect(out).toHaveLength(1);
    expect(out[0]?.Status).toMatchObject({ version: '3.5.0', dbSize: 4096, raftIndex: 12, raftTerm: 2, dbSizeInUse: 2048 });
    // The table form prints the uint64 member id in hex, exactly: proof that the 64-bit value crossed intact.
    expect(await run('endpoint', 'status')).toContain(BigInt(HEADER.member_id as bigint).toString(16));
  });

  it.skipIf(!haveEtcdctl)('etcdctl watch receives an event over the bidirectional Watch stream', async () => {
    const child = spawn(etcdctl, ['--endpoints', `127.0.0.1:${port}`, 'watch', 'foo'], { env: { ...process.env, ETCDCTL_API: '3' } });
    let stdout = '';
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`etcdctl watch printed only: ${JSON.stringify(stdout)}`)), 15_000);
        child.stdout.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          if (stdout.includes('bar\n')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.on('error', reject);
      });
    } finally {
      child.kill('SIGTERM');
    }
    expect(stdout).toBe('PUT\nfoo\nbar\n');
  });

  it.skipIf(!haveEtcdctl)('etcdctl put reaches our Put handler with the right fields', async () => {
    expect((await run('put', 'greeting', 'hello', '--prev-kv')).trim()).toBe('OK');
    const last = puts.at(-1);
    expect(last?.key.toString()).toBe('greeting');
    expect(last?.value.toString()).toBe('hello');
    expect(last?.prev_kv).toBe(true);
    expect(last?.lease).toBe('0');
  });
});

/** Synchronous probe at collection time, so that skipIf can use the answer. */
function etcdctlRuns(bin: string): boolean {
  try {
    execFileSync(bin, ['version'], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
