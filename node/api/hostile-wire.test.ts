// Hostile input on the wire, against a running member (the whole server: every service, the real limits): bytes
// that are not the message the method expects, frames that lie about their length, and txns nested far beyond
// what anyone needs. Every answer must be a clean status (see isCleanAnswer), and the member must keep serving.
import { connect, constants as h2 } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdApi, loadProtoRoot } from '../../proto/index.js';
import { SeededRandom } from '../../raft/rng.js';
import { b, failsWith, rpc } from './harness.testutil.js';
import { LIMIT_ERRORS } from './limits.js';
import { API_LIMITS_DEFAULTS } from './context.js';
import {
  clientMethods,
  GRPC_DECODE_ERROR,
  isCleanAnswer,
  randomBytes,
  rawClient,
  sendRaw,
  startHostileMember,
  type HostileMember,
  type MethodInfo,
  type Outcome,
} from './hostile.testutil.js';

const PORTS: [number, number] = [5100, 5199];

/** A protobuf varint. */
function varint(n: number | bigint): Buffer {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

const tag = (field: number, wireType: number): Buffer => varint((field << 3) | wireType);
const lengthDelimited = (field: number, body: Buffer): Buffer => Buffer.concat([tag(field, 2), varint(body.length), body]);

/** Payloads that are not a valid message of any particular type, from a seed. */
function hostilePayloads(seed: number): Array<[string, Buffer]> {
  const rng = new SeededRandom(seed); // a failing case replays from its seed
  const rand = (): number => rng.float();
  const out: Array<[string, Buffer]> = [
    ['empty message', Buffer.alloc(0)],
    ['unknown field', Buffer.concat([tag(1000, 0), varint(42), tag(999, 2), varint(3), b('abc')])],
    ['huge length-delimited field', Buffer.concat([tag(1, 2), varint(0xffffffffn)])],
    ['length past the end', Buffer.concat([tag(1, 2), varint(100), b('short')])],
    ['truncated varint', Buffer.from([0x08, 0xff, 0xff])],
    ['invalid wire type 7', Buffer.from([0x0f, 0x01])],
    ['field number 0', Buffer.from([0x00, 0x01])],
    ['end group without start', Buffer.from([0x0c])],
    ['negative int64s', Buffer.concat([tag(2, 0), varint((1n << 64n) - 1n), tag(3, 0), varint(1n << 63n)])],
    ['non-UTF-8 string fields', Buffer.concat([lengthDelimited(1, Buffer.from([0xff, 0xfe, 0xc3])), lengthDelimited(2, Buffer.from([0xed, 0xa0, 0x80]))])],
  ];
  for (let field = 1; field <= 12; field++) {
    const wt = [0, 1, 2, 5][Math.floor(rand() * 4)]!; // each field gets a wire type it probably does not have
    const body = wt === 0 ? varint(Math.floor(rand() * 2 ** 32)) : wt === 1 ? randomBytes(rand, 8) : wt === 5 ? randomBytes(rand, 4) : lengthDelimited(field, randomBytes(rand, 5)).subarray(1);
    out.push([`field ${field} as wire type ${wt}`, Buffer.concat([tag(field, wt), body])]);
  }
  for (let i = 0; i < 8; i++) out.push([`random bytes #${i}`, randomBytes(rand, 1 + Math.floor(rand() * 64))]);
  return out;
}

/** A TxnRequest nested `depth` levels deep (success -> request_txn -> ...), encoded by hand from the inside out. */
function nestedTxnBytes(depth: number, leaf: Buffer = Buffer.alloc(0)): Buffer {
  let txn = leaf;
  for (let i = 1; i < depth; i++) txn = lengthDelimited(2, lengthDelimited(4, txn));
  return txn;
}

/** Methods the fuzz leaves alone: they change the cluster's shape (a random MemberAdd could take quorum away). */
const RECONFIGURING = new Set(['MemberAdd', 'MemberRemove', 'MemberPromote', 'MoveLeader', 'Defragment']);

describe('malformed protobuf against a running member', () => {
  let m: HostileMember;
  let raw: grpc.Client;
  let kv: InstanceType<ReturnType<typeof loadEtcdApi>['etcdserverpb']['KV']>;

  beforeAll(async () => {
    m = await startHostileMember(PORTS);
    raw = rawClient(m.endpoint);
    kv = new (loadEtcdApi().etcdserverpb.KV)(m.endpoint, grpc.credentials.createInsecure());
  }, 30_000);

  afterAll(async () => {
    raw?.close();
    kv?.close();
    await m?.close();
  });

  it('every method answers every malformed request with a clean status, and the member keeps serving', async () => {
    await rpc(kv, 'Put', { key: b('before'), value: b('1') });
    const methods = clientMethods().filter((x) => !RECONFIGURING.has(x.name));
    expect(methods.length).toBeGreaterThan(25);
    const unclean: string[] = [];
    const codes = new Map<number, number>();
    // One method at a time, its payloads at once; calls that block by design (Campaign, Lock, Observe) end at
    // their deadline, which is a clean answer too.
    for (const method of methods) {
      const payloads = hostilePayloads(method.path.length);
      const outcomes = await Promise.all(payloads.map(([, payload]) => sendRaw(raw, method, [payload], 1_500)));
      outcomes.forEach((o, i) => {
        codes.set(o.code, (codes.get(o.code) ?? 0) + 1);
        if (!isCleanAnswer(o)) unclean.push(`${method.path} <- ${payloads[i]![0]}: ${grpc.status[o.code]} ${o.details}`);
      });
    }
    if (process.env.HOSTILE_DEBUG) console.log(Object.fromEntries([...codes].map(([c, n]) => [grpc.status[c], n])));
    expect(unclean).toEqual([]);
    // The fuzz reached the handlers (not only the decoder): some requests were refused by Fulcrum's own checks.
    expect(codes.get(grpc.status.INVALID_ARGUMENT) ?? 0).toBeGreaterThan(0);
    expect(codes.get(grpc.status.INTERNAL) ?? 0).toBeGreaterThan(0); // grpc-js's decode error, counted apart
    const r = await rpc(kv, 'Range', { key: b('before') });
    expect(r.kvs.map((x) => x.value.toString())).toEqual(['1']);
    await rpc(kv, 'Put', { key: b('after'), value: b('2') });
  }, 60_000);

  it('Watch and LeaseKeepAlive streams fed garbage end with a clean status; the member keeps serving', async () => {
    const streams = clientMethods().filter((x) => x.name === 'Watch' || x.name === 'LeaseKeepAlive');
    expect(streams.map((x) => x.name).sort()).toEqual(['LeaseKeepAlive', 'Watch']);
    const outcomes: Array<[string, Outcome]> = [];
    for (const method of streams) {
      for (const [what, payload] of hostilePayloads(7)) {
        // A valid request first, then the garbage: the stream is already serving when the bad frame comes.
        outcomes.push([`${method.name} <- ${what}`, await sendRaw(raw, method, [Buffer.alloc(0), payload, payload], 3_000)]);
      }
    }
    expect(outcomes.filter(([, o]) => !isCleanAnswer(o)).map(([w, o]) => `${w}: ${o.code} ${o.details}`)).toEqual([]);
    // The client half-closed each stream: every one must end with a status of the member's, not the deadline's.
    expect(outcomes.filter(([, o]) => o.code === grpc.status.DEADLINE_EXCEEDED).map(([w]) => w)).toEqual([]);
    expect(outcomes.some(([, o]) => o.code === grpc.status.INTERNAL && o.details === GRPC_DECODE_ERROR)).toBe(true);
    await rpc(kv, 'Put', { key: b('after-streams'), value: b('3') });
  }, 60_000);

  it('a stream the member refuses ends with its status (it used to hang until the client gave up)', async () => {
    const lease = new (loadEtcdApi().etcdserverpb.Lease)(m.endpoint, grpc.credentials.createInsecure());
    try {
      const ka = lease.LeaseKeepAlive(new grpc.Metadata(), { deadline: Date.now() + 5_000 });
      ka.on('error', () => {});
      const status = new Promise<grpc.StatusObject>((resolve) => ka.on('status', resolve));
      ka.write({ ID: '-5' }); // not a lease id: refused by parseLeaseId, which ends the stream
      const s = await status;
      expect([s.code, s.details]).toEqual([grpc.status.NOT_FOUND, 'etcdserver: requested lease not found']);
    } finally {
      lease.close();
    }
  });

  it('huge or many metadata entries are refused by HTTP/2 before any handler, and the member keeps serving', async () => {
    const huge = new grpc.Metadata();
    huge.set('x-junk', 'j'.repeat(256 * 1024));
    const many = new grpc.Metadata();
    for (let i = 0; i < 2_000; i++) many.set(`x-junk-${i}`, 'j');
    const outcomes: Array<[number, string]> = [];
    for (const md of [huge, many]) outcomes.push(await failsWith(rpc(kv, 'Range', { key: b('before') }, md, { deadline: Date.now() + 5_000 })));
    // The server's HTTP/2 engine decodes both blocks (its HPACK table stays in step), finds each past the 64 KiB
    // header-list limit and resets the stream with ENHANCE_YOUR_CALM, which the grpc-js client reports as
    // RESOURCE_EXHAUSTED; no handler ran. (Node's HTTP/2, --http2-engine=node, resets the huge value with
    // COMPRESSION_ERROR instead: INTERNAL "Received RST_STREAM with code 9".)
    expect(outcomes).toEqual([
      [grpc.status.RESOURCE_EXHAUSTED, 'Bandwidth exhausted or memory limit exceeded'],
      [grpc.status.RESOURCE_EXHAUSTED, 'Bandwidth exhausted or memory limit exceeded'],
    ]);
    await rpc(kv, 'Range', { key: b('before') });
  });

  it('txns nested beyond the limit are refused with a clear INVALID_ARGUMENT, however deep; at the limit they run', async () => {
    const max = API_LIMITS_DEFAULTS.txnNestingMax;
    const txn: MethodInfo = clientMethods().find((x) => x.path === '/etcdserverpb.KV/Txn')!;
    const put = lengthDelimited(2, lengthDelimited(2, Buffer.concat([lengthDelimited(1, b('deep')), lengthDelimited(2, b('v'))])));
    // At the limit, with a write at the bottom: served, and the write is there.
    expect(await sendRaw(raw, txn, [nestedTxnBytes(max, put)])).toEqual({ code: grpc.status.OK, details: '' });
    expect((await rpc(kv, 'Range', { key: b('deep') })).kvs).toHaveLength(1);
    // One level more, and far more (deeper than any recursive code could follow): refused before anything recurses.
    for (const depth of [max + 1, 1_000, 20_000]) {
      const o = await sendRaw(raw, txn, [nestedTxnBytes(depth, put)]);
      if (o.code === grpc.status.INTERNAL) expect(o.details).toBe(GRPC_DECODE_ERROR); // protobufjs gave up first
      else expect(o).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: LIMIT_ERRORS.txnTooDeep(max) });
    }
    // Many operations across levels, each level within etcd's --max-txn-ops rule: refused by the total.
    const root = loadProtoRoot().lookupType('etcdserverpb.TxnRequest');
    const ranges = (n: number): unknown[] => Array.from({ length: n }, (_, i) => ({ request_range: { key: b(`r${i}`) } }));
    const wide = { success: Array.from({ length: 60 }, () => ({ request_txn: { success: ranges(60) } })) };
    const [code, details] = await failsWith(rpc(kv, 'Txn', wide as never));
    expect([code, details]).toEqual([grpc.status.INVALID_ARGUMENT, LIMIT_ERRORS.txnTooManyOps(API_LIMITS_DEFAULTS.txnOpsTotalMax)]);
    expect(root.verify(wide)).toBeNull();
  }, 60_000);

  /** A raw HTTP/2 call whose body is `body` exactly (then END_STREAM); resolves with its grpc-status. */
  function rawStatus(path: string, body: Buffer): Promise<string | undefined> {
    const session = connect(`http://${m.endpoint}`);
    session.on('error', () => {});
    return new Promise<string | undefined>((resolve, reject) => {
      const req = session.request({
        [h2.HTTP2_HEADER_METHOD]: 'POST',
        [h2.HTTP2_HEADER_PATH]: path,
        [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        te: 'trailers',
      });
      let grpcStatus: string | undefined;
      req.on('response', (headers) => (grpcStatus ??= headers['grpc-status'] as string | undefined));
      req.on('trailers', (t) => (grpcStatus = t['grpc-status'] as string | undefined));
      req.on('data', () => {});
      req.on('error', reject);
      req.on('close', () => resolve(grpcStatus));
      req.end(body);
    }).finally(() => session.close());
  }

  it('a gRPC frame cut short by the end of the stream is answered at once, not left waiting', async () => {
    const frame = Buffer.alloc(5 + 10);
    frame.writeUInt32BE(100, 1); // 100 bytes announced, 10 sent, then END_STREAM
    const statuses: Record<string, number> = {};
    for (const path of ['/etcdserverpb.KV/Range', '/etcdserverpb.Watch/Watch', '/etcdserverpb.Lease/LeaseKeepAlive']) {
      statuses[path] = Number(await rawStatus(path, frame));
    }
    // A unary call never got its request: grpc-js answers UNIMPLEMENTED ("Received no request message ...") before
    // any handler runs. A stream got none of its requests, and ends as the client ended it.
    expect(statuses).toEqual({ '/etcdserverpb.KV/Range': grpc.status.UNIMPLEMENTED, '/etcdserverpb.Watch/Watch': grpc.status.OK, '/etcdserverpb.Lease/LeaseKeepAlive': grpc.status.OK });
    await rpc(kv, 'Range', { key: b('before') });
  });

  it('a gRPC frame whose length prefix is huge is refused with RESOURCE_EXHAUSTED before it is buffered', async () => {
    const frame = Buffer.alloc(5 + 16);
    frame.writeUInt32BE(0xfffffff0, 1); // ~4 GiB announced, 16 bytes sent
    expect(Number(await rawStatus('/etcdserverpb.KV/Range', frame))).toBe(grpc.status.RESOURCE_EXHAUSTED);
    await rpc(kv, 'Range', { key: b('before') });
  });
});
