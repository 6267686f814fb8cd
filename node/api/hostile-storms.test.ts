// Storms against a running member (the whole server, real limits): thousands of streams on one connection,
// thousands of watches on one stream, lease grant and keep-alive floods, and clients that open streams and
// never read. The member must stay within its limits (checked by what it holds, not by timing), answer beyond
// them with a clear error, and keep serving everyone else. Each storm that a limit bounds also runs with the
// limit raised (a negative control), to show that the limit is what bounds it.
import { connect, constants as h2, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEtcdApi, loadProtoRoot, type WatchResponse } from '../../proto/index.js';
import { KEEPALIVE_PENDING_MAX } from './lease.js';
import { b, rpc } from './harness.testutil.js';
import { startHostileMember, type HostileMember } from './hostile.testutil.js';
import { WATCH_ERRORS, WATCH_STREAM_DEFAULTS } from './watch.js';

const PORTS: [number, number] = [5200, 5399];
const api = loadEtcdApi();
const root = loadProtoRoot();
const creds = grpc.credentials.createInsecure();
const MiB = 1024 * 1024;
/** grpc-js shares connections between clients of one target; a storm gets its own, so others stay apart. */
const OWN_CONNECTION = { 'grpc.use_local_subchannel_pool': 1 };

/** Bytes this process holds in buffers and on the JS heap: where a member in it would keep unsent responses. */
const heldMiB = (): number => {
  const m = process.memoryUsage();
  return (m.heapUsed + m.arrayBuffers) / MiB;
};

async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not reached in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A gRPC message frame: uncompressed flag, big-endian length, the encoded message. */
function grpcFrame(type: string, message: object): Buffer {
  const body = root.lookupType(type).encode(message).finish();
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** A raw HTTP/2 gRPC request on `session`, written and left unread (the stream stays paused). */
function rawCall(session: ClientHttp2Session, path: string, frames: readonly Buffer[], end = true): ClientHttp2Stream {
  const req = session.request({
    [h2.HTTP2_HEADER_METHOD]: 'POST',
    [h2.HTTP2_HEADER_PATH]: path,
    [h2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
    te: 'trailers',
  });
  req.on('error', () => {});
  for (const f of frames) req.write(f);
  if (end) req.end();
  return req;
}

describe('thousands of streams on one connection', () => {
  const STREAMS = 2_000;

  /** Open STREAMS watch streams on one channel; returns the most watchers the member ever held at once. */
  async function storm(m: HostileMember, settleMs: number): Promise<{ peak: number; streams: Array<{ cancel(): void }>; close(): void }> {
    const watch = new api.etcdserverpb.Watch(m.endpoint, creds, OWN_CONNECTION);
    const streams = Array.from({ length: STREAMS }, (_, i) => {
      const s = watch.Watch();
      s.on('error', () => {});
      s.on('data', () => {});
      s.write({ create_request: { key: b(`storm/${i}`) } });
      return s;
    });
    let peak = 0;
    const end = Date.now() + settleMs;
    while (Date.now() < end) {
      peak = Math.max(peak, m.server.watchHub.watcherCount);
      await new Promise((r) => setTimeout(r, 20));
    }
    return { peak, streams, close: () => watch.close() };
  }

  it('are bounded by --max-concurrent-streams: extra streams wait, memory stays bounded, other clients are served', async () => {
    const m = await startHostileMember(PORTS, ['--max-concurrent-streams', '64']);
    const kv = new api.etcdserverpb.KV(m.endpoint, creds);
    try {
      const before = heldMiB();
      const s = await storm(m, 2_000);
      expect(s.peak).toBe(64);
      // Another connection is served while this one is full.
      await rpc(kv, 'Put', { key: b('other'), value: b('served') });
      expect((await rpc(kv, 'Range', { key: b('other') })).kvs).toHaveLength(1);
      // The waiting streams were queued, not lost: ending the first ones lets later ones in.
      for (const st of s.streams.slice(0, 64)) st.cancel();
      await until('later streams served', () => m.server.watchHub.watcherCount === 64);
      expect(heldMiB() - before).toBeLessThan(200); // a sanity bound on 2,000 queued streams, not a measurement
      for (const st of s.streams) st.cancel();
      s.close();
      await until('every watcher gone', () => m.server.watchHub.watcherCount === 0);
    } finally {
      kv.close();
      await m.close();
    }
  }, 60_000);

  it('negative control: with the limit raised, the same storm holds every stream at once', async () => {
    const m = await startHostileMember(PORTS, ['--max-concurrent-streams', '10000']);
    try {
      const s = await storm(m, 4_000);
      expect(s.peak).toBeGreaterThan(1_000);
      for (const st of s.streams) st.cancel();
      s.close();
    } finally {
      await m.close();
    }
  }, 60_000);
});

describe('storms on one member with the default limits', () => {
  let m: HostileMember;
  let kv: InstanceType<(typeof api)['etcdserverpb']['KV']>;
  let lease: InstanceType<(typeof api)['etcdserverpb']['Lease']>;

  beforeAll(async () => {
    m = await startHostileMember(PORTS);
    kv = new api.etcdserverpb.KV(m.endpoint, creds);
    lease = new api.etcdserverpb.Lease(m.endpoint, creds);
  }, 30_000);
  afterAll(async () => {
    kv?.close();
    lease?.close();
    await m?.close();
  });

  it('thousands of watches on one stream: refused past the per-stream limit, and the stream still serves', async () => {
    const max = WATCH_STREAM_DEFAULTS.watchesPerStreamMax;
    const watch = new api.etcdserverpb.Watch(m.endpoint, creds);
    const responses: WatchResponse[] = [];
    const s = watch.Watch();
    s.on('data', (r: WatchResponse) => responses.push(r));
    s.on('error', () => {});
    try {
      for (let i = 0; i < 2_500; i++) s.write({ create_request: { key: b(`many/${i}`) } });
      await until('every create answered', () => responses.filter((r) => r.created).length === 2_500);
      const refused = responses.filter((r) => r.canceled && r.watch_id === '-1');
      expect(refused).toHaveLength(2_500 - max);
      expect(new Set(refused.map((r) => r.cancel_reason))).toEqual(new Set([WATCH_ERRORS.tooManyWatches]));
      expect(m.server.watchHub.watcherCount).toBe(max);
      // Still serving: an event reaches watch 5, a cancel frees a place, and the next create takes it.
      await rpc(kv, 'Put', { key: b('many/5'), value: b('x') });
      await until('event delivered', () => responses.some((r) => r.watch_id === '5' && r.events.length === 1));
      s.write({ cancel_request: { watch_id: '5' } });
      s.write({ create_request: { key: b('many/again') } });
      await until('created again', () => responses.some((r) => r.created && !r.canceled && r.watch_id === '5'));
    } finally {
      s.cancel();
      watch.close();
    }
    await until('watchers released with the stream', () => m.server.watchHub.watcherCount === 0);
  }, 60_000);

  it('a watch stream whose client sends progress requests and never reads stops reading them; memory stays bounded', async () => {
    const session = connect(`http://${m.endpoint}`);
    session.on('error', () => {});
    try {
      const before = heldMiB();
      const stream = rawCall(session, '/etcdserverpb.Watch/Watch', [], false);
      // Each progress request is answered; unread, the answers would pile up in the member one per request.
      const batch = Buffer.concat(Array.from({ length: 5_000 }, () => grpcFrame('etcdserverpb.WatchRequest', { progress_request: {} })));
      let peak = 0;
      for (let i = 0; i < 60; i++) {
        stream.write(batch); // 300,000 requests in all; what the member does not read waits on the client's side
        await new Promise((r) => setTimeout(r, 20));
        peak = Math.max(peak, heldMiB() - before);
      }
      expect(peak).toBeLessThan(40); // the requests themselves are 2 MiB; their answers as objects, far more
      await rpc(kv, 'Put', { key: b('after-progress-flood'), value: b('1') });
    } finally {
      session.destroy();
    }
  }, 60_000);

  it('a lease grant storm is served (or cleanly refused), and the member keeps serving', async () => {
    const grants = await Promise.all(
      Array.from({ length: 2_000 }, (_, i) => rpc(lease, 'LeaseGrant', { TTL: String(60 + (i % 5)), ID: '0' }).then((r) => r.ID, (e: grpc.ServiceError) => e)),
    );
    const failed = grants.filter((g): g is grpc.ServiceError => typeof g !== 'string');
    // Refusals are allowed only as the limits' own answers.
    for (const e of failed) expect([grpc.status.RESOURCE_EXHAUSTED, grpc.status.UNAVAILABLE]).toContain(e.code);
    expect(new Set(grants.filter((g) => typeof g === 'string')).size).toBe(2_000 - failed.length);
    expect((await rpc(lease, 'LeaseLeases', {})).leases.length).toBeGreaterThanOrEqual(2_000 - failed.length);
    await rpc(kv, 'Put', { key: b('after-leases'), value: b('1') });
  }, 60_000);

  it('keep-alives from a client that never reads its answers: the stream ends with "too many requests", others are served', async () => {
    const { ID } = await rpc(lease, 'LeaseGrant', { TTL: '60', ID: '0' });
    const session = connect(`http://${m.endpoint}`);
    session.on('error', () => {});
    try {
      // Raw HTTP/2, never read: the answers fill flow control, then wait in the member. Batches of 500 stay
      // below KEEPALIVE_PENDING_MAX while answers can flow, so only the unread answers can exhaust it.
      const frame = grpcFrame('etcdserverpb.LeaseKeepAliveRequest', { ID });
      const flood = rawCall(session, '/etcdserverpb.Lease/LeaseKeepAlive', [], false);
      const status = new Promise<{ code?: string; message?: string }>((resolve) => {
        let code: string | undefined;
        let message: string | undefined;
        const take = (h: Record<string, unknown>): void => {
          if (h['grpc-status'] !== undefined) [code, message] = [String(h['grpc-status']), decodeURIComponent(String(h['grpc-message'] ?? ''))];
        };
        flood.on('response', take);
        flood.on('trailers', (t) => {
          take(t);
          resolve({ code, message });
        });
        flood.on('close', () => resolve({ code, message }));
      });
      // Enough that what flow control and the engine's 256 KiB stream queue hold (over 10,000 answers) is not all:
      // the loop stops as soon as the member ends the stream.
      const batch = Buffer.concat(Array.from({ length: 500 }, () => frame));
      const batches = 80;
      expect(batches * 500).toBeGreaterThan(20 * KEEPALIVE_PENDING_MAX);
      for (let i = 0; i < batches && !flood.closed; i++) {
        flood.write(batch);
        await new Promise((r) => setTimeout(r, 50));
      }
      // Others are served meanwhile.
      const ka = lease.LeaseKeepAlive();
      const answered = new Promise<string>((resolve) => ka.once('data', (r: { TTL: string }) => resolve(r.TTL)));
      ka.write({ ID });
      expect(Number(await answered)).toBeGreaterThan(0);
      ka.end();
      flood.resume(); // read now, to reach the status
      flood.end();
      expect(await status).toEqual({ code: String(grpc.status.RESOURCE_EXHAUSTED), message: 'etcdserver: too many requests' });
    } finally {
      session.destroy();
    }
  }, 60_000);
});

describe('clients that open streams and never read', () => {
  const VALUE = Buffer.alloc(64 * 1024, 1);
  const KEYS = 16; // a range of 1 MiB
  const CALLS = 300;

  /**
   * CALLS reads of the 1 MiB range on one connection that reads nothing; returns the most the member came to hold
   * within `windowMs`, sampling until then or until it holds more than `enoughMiB`.
   */
  async function neverRead(m: HostileMember, windowMs: number, enoughMiB = Infinity): Promise<{ heldMiB: number; session: ClientHttp2Session }> {
    const kv = new api.etcdserverpb.KV(m.endpoint, creds);
    try {
      for (let i = 0; i < KEYS; i++) await rpc(kv, 'Put', { key: b(`wide/${String(i).padStart(2, '0')}`), value: VALUE });
    } finally {
      kv.close();
    }
    const before = heldMiB();
    const session = connect(`http://${m.endpoint}`);
    session.on('error', () => {});
    const range = grpcFrame('etcdserverpb.RangeRequest', { key: b('wide/'), range_end: b('wide0') });
    for (let i = 0; i < CALLS; i++) rawCall(session, '/etcdserverpb.KV/Range', [range]);
    let peak = 0;
    const end = Date.now() + windowMs;
    while (Date.now() < end && peak <= enoughMiB) {
      peak = Math.max(peak, heldMiB() - before);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { heldMiB: peak, session };
  }

  it('hold at most --max-concurrent-streams responses, and other clients are served meanwhile', async () => {
    const m = await startHostileMember(PORTS, ['--max-concurrent-streams', '16']);
    const kv = new api.etcdserverpb.KV(m.endpoint, creds);
    try {
      const r = await neverRead(m, 3_000);
      // 16 streams of 1 MiB each, and their encodings: far below the 300 MiB the calls asked for.
      expect(r.heldMiB).toBeLessThan(100);
      expect((await rpc(kv, 'Range', { key: b('wide/00') })).kvs).toHaveLength(1);
      r.session.destroy();
    } finally {
      kv.close();
      await m.close();
    }
  }, 60_000);

  it('negative control: with the limit raised, the member holds every unread response', async () => {
    const m = await startHostileMember(PORTS, ['--max-concurrent-streams', '10000']);
    try {
      // Up to 20 s: on a loaded machine the member takes longer than the 3 s above to answer 300 calls.
      const r = await neverRead(m, 20_000, 150);
      expect(r.heldMiB).toBeGreaterThan(150);
      r.session.destroy();
    } finally {
      await m.close();
    }
  }, 60_000);
});
