import { createConnection } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Registry } from 'prom-client';
import { startHttpServer, startMetricsServers, type HealthMember, type HttpEndpoint, type HttpOptions } from './http.js';
import { captureLogs } from './log.js';
import { Member } from './member.js';
import { createMetricsRegistry, MemberMetrics } from './metrics.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** The value of one sample in Prometheus text format, e.g. sample(text, 'fulcrum_server_has_leader'). */
function sample(text: string, name: string, labels = 'member="1"'): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  if (line === undefined) throw new Error(`no sample ${name}{${labels}} in:\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function get(endpoint: HttpEndpoint, path: string, init: RequestInit = {}): Promise<{ status: number; body: string; type: string | null }> {
  const r = await fetch(endpoint.url + path, init);
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') };
}

describe('with a real single-voter member', () => {
  let dir: string;
  let member: Member;
  let registry: Registry;
  let metrics: MemberMetrics;
  let http: HttpEndpoint;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-http-'));
    registry = createMetricsRegistry();
    metrics = new MemberMetrics(registry, 1, { quotaBackendBytes: 2 * 1024 ** 3 });
    member = await Member.start({ id: 1, dataDir: dir, initialVoters: [1], heartbeatMs: 20, faults: metrics.faultHook() });
    metrics.collectFrom(member, { watchers: () => 3 });
    http = await startHttpServer({ host: '127.0.0.1', port: 0 }, { registry, member });
  });

  afterAll(async () => {
    await http.close();
    metrics.close();
    await member.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('/metrics shows the member after a few writes', async () => {
    const writes = 5;
    for (let i = 0; i < writes; i++) await metrics.trackProposal(member.propose({ put: { key: enc(`k${i}`), value: enc(`v${i}`) } }));
    const r = await get(http, '/metrics');
    expect(r.status).toBe(200);
    expect(r.type).toContain('text/plain');
    const t = r.body;
    expect(sample(t, 'fulcrum_server_term')).toBeGreaterThanOrEqual(1);
    expect(sample(t, 'fulcrum_server_has_leader')).toBe(1);
    expect(sample(t, 'fulcrum_server_is_leader')).toBe(1);
    expect(sample(t, 'fulcrum_server_leader_changes_seen_total')).toBe(1);
    const st = member.status();
    expect(sample(t, 'fulcrum_server_proposals_committed_total')).toBe(st.commit);
    expect(sample(t, 'fulcrum_server_proposals_applied_total')).toBe(st.appliedState);
    expect(st.commit).toBeGreaterThanOrEqual(writes);
    expect(sample(t, 'fulcrum_server_proposals_pending')).toBe(0);
    expect(sample(t, 'fulcrum_server_proposals_failed_total')).toBe(0);
    expect(sample(t, 'fulcrum_server_apply_duration_seconds_count')).toBeGreaterThanOrEqual(writes);
    expect(sample(t, 'fulcrum_server_apply_duration_seconds_sum')).toBeGreaterThan(0);
    expect(sample(t, 'fulcrum_disk_wal_fsync_duration_seconds_count')).toBe(0); // fed by the server, not by this test
    expect(sample(t, 'fulcrum_mvcc_db_total_size_in_bytes')).toBeGreaterThan(0);
    expect(sample(t, 'fulcrum_server_quota_backend_bytes')).toBe(2 * 1024 ** 3);
    expect(sample(t, 'fulcrum_mvcc_current_revision')).toBe(writes + 1);
    expect(sample(t, 'fulcrum_mvcc_watcher_total')).toBe(3);
    expect(sample(t, 'fulcrum_server_lease_total')).toBe(0);
    expect(sample(t, 'fulcrum_server_alarm_active', 'alarm="NOSPACE"')).toBe(0);
  });

  it('/health is 200 with a leader; /livez and /readyz say ok', async () => {
    expect(await get(http, '/health')).toEqual({ status: 200, body: '{"health":"true","reason":""}', type: 'application/json' });
    expect(await get(http, '/health?serializable=true')).toMatchObject({ status: 200 });
    expect(await get(http, '/livez')).toMatchObject({ status: 200, body: 'ok' });
    expect(await get(http, '/readyz')).toMatchObject({ status: 200, body: 'ok' });
    expect((await get(http, '/readyz?verbose')).body).toBe(
      '[+]member ok\n[+]leader ok\n[+]data_corruption ok\n[+]linearizable_read ok\nreadyz check passed\n',
    );
  });

  it('/health is 503 with an active NOSPACE alarm (unless excluded); /readyz stays ready', async () => {
    await member.propose({ alarm: { action: 'activate', alarm: 'NOSPACE' } });
    expect(await get(http, '/health')).toEqual({ status: 503, body: '{"health":"false","reason":"ALARM NOSPACE"}', type: 'application/json' });
    expect(await get(http, '/health?exclude=NOSPACE')).toMatchObject({ status: 200 });
    expect(await get(http, '/readyz')).toMatchObject({ status: 200, body: 'ok' });
    expect(sample((await get(http, '/metrics')).body, 'fulcrum_server_alarm_active', 'alarm="NOSPACE"')).toBe(1);
    await member.propose({ alarm: { action: 'deactivate', alarm: 'NOSPACE' } });
    expect(await get(http, '/health')).toMatchObject({ status: 200 });
  });
});

/** A member that can be steered: leader or not, alarms, and a linearizable read that may never finish. */
function stubMember(state: { leader: number; alarms: string[]; read: 'ok' | 'hang' | 'fail' }): HealthMember {
  return {
    leaderId: () => state.leader,
    stateMachine: { activeAlarms: () => state.alarms, revision: 1 },
    linearizableBarrier: () =>
      state.read === 'ok' ? Promise.resolve() : state.read === 'fail' ? Promise.reject(new Error('etcdserver: no leader')) : new Promise(() => {}),
  } as unknown as HealthMember;
}

describe('with a stub member', () => {
  const servers: HttpEndpoint[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  async function serve(member: HealthMember, extra: Partial<HttpOptions> = {}): Promise<HttpEndpoint> {
    const s = await startHttpServer({ host: '127.0.0.1', port: 0 }, { registry: createMetricsRegistry(), member, ...extra });
    servers.push(s);
    return s;
  }

  it('no leader: /health says RAFT NO LEADER, /readyz lists the failed checks, /livez is fine', async () => {
    const s = await serve(stubMember({ leader: 0, alarms: [], read: 'fail' }));
    expect(await get(s, '/health')).toEqual({ status: 503, body: '{"health":"false","reason":"RAFT NO LEADER"}', type: 'application/json' });
    expect(await get(s, '/readyz')).toMatchObject({
      status: 503,
      body: '[+]member ok\n[-]leader failed: RAFT NO LEADER\n[+]data_corruption ok\n[-]linearizable_read failed: LINEARIZABLE READ ERROR: etcdserver: no leader\nreadyz check failed\n',
    });
    expect(await get(s, '/readyz?exclude=leader&exclude=linearizable_read')).toMatchObject({ status: 200, body: 'ok' });
    expect(await get(s, '/livez')).toMatchObject({ status: 200, body: 'ok' });
  });

  it('a linearizable read that never finishes fails /health after the bound', async () => {
    const s = await serve(stubMember({ leader: 2, alarms: [], read: 'hang' }), { limits: { linearizableReadTimeoutMs: 30 } });
    expect(await get(s, '/health')).toMatchObject({ status: 503, body: '{"health":"false","reason":"LINEARIZABLE READ TIMEOUT after 30ms"}' });
    expect(await get(s, '/health?serializable=true')).toMatchObject({ status: 200 });
  });

  it('a CORRUPT alarm makes the member unready; several alarms are all named', async () => {
    const s = await serve(stubMember({ leader: 2, alarms: ['CORRUPT', 'NOSPACE'], read: 'ok' }));
    expect((await get(s, '/health')).body).toBe('{"health":"false","reason":"ALARM CORRUPT, ALARM NOSPACE"}');
    expect(await get(s, '/readyz')).toMatchObject({ status: 503 });
    expect((await get(s, '/readyz')).body).toContain('[-]data_corruption failed: ALARM CORRUPT\n');
  });

  it('a member that cannot serve fails /livez, /readyz and /health with the reason', async () => {
    const s = await serve(stubMember({ leader: 2, alarms: [], read: 'ok' }), { notLiveReason: () => 'stopped after a fatal error' });
    expect(await get(s, '/livez')).toMatchObject({ status: 503, body: '[-]member failed: stopped after a fatal error\n[+]serializable_read ok\nlivez check failed\n' });
    expect((await get(s, '/health')).body).toBe('{"health":"false","reason":"stopped after a fatal error"}');
    expect(await get(s, '/readyz')).toMatchObject({ status: 503 });
  });

  it('bounds: unknown paths 404, other methods 405, long URLs 414, HEAD has no body', async () => {
    const s = await serve(stubMember({ leader: 2, alarms: [], read: 'ok' }));
    expect((await get(s, '/nope')).status).toBe(404);
    const post = await fetch(s.url + '/health', { method: 'POST', body: 'x' });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
    expect((await get(s, '/metrics?' + 'x'.repeat(3000))).status).toBe(414);
    const head = await fetch(s.url + '/health', { method: 'HEAD' });
    expect([head.status, await head.text()]).toEqual([200, '']);
  });

  it('requests beyond the concurrency limit get 503 at once instead of queueing', async () => {
    const s = await serve(stubMember({ leader: 2, alarms: [], read: 'hang' }), { limits: { concurrentRequestsMax: 2, linearizableReadTimeoutMs: 300 } });
    const slow = [get(s, '/health'), get(s, '/health')];
    await new Promise((r) => setTimeout(r, 50)); // both slow requests are being handled
    const rejected = await get(s, '/metrics');
    expect(rejected.status).toBe(503);
    expect(rejected.body).toBe('too many requests\n');
    expect((await Promise.all(slow)).map((r) => r.status)).toEqual([503, 503]); // timed out, slots freed
    expect((await get(s, '/metrics')).status).toBe(200);
  });

  it('connections beyond connectionsMax are closed as they are accepted; the open one keeps serving', async () => {
    const s = await serve(stubMember({ leader: 2, alarms: [], read: 'ok' }), { limits: { connectionsMax: 1 } });
    const { port } = new URL(s.url);
    const held = createConnection({ host: '127.0.0.1', port: Number(port) });
    await new Promise<void>((resolve) => held.once('connect', () => resolve()));
    try {
      // A second connection is accepted by the kernel and closed by the server without an answer.
      const second = createConnection({ host: '127.0.0.1', port: Number(port) });
      second.on('error', () => {});
      second.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      const answer = await new Promise<string>((resolve) => {
        let got = '';
        second.on('data', (d: Buffer) => (got += d.toString()));
        second.once('close', () => resolve(got));
      });
      expect(answer).toBe('');
      // The held connection is served.
      held.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const reply = await new Promise<string>((resolve) => {
        let got = '';
        held.on('data', (d: Buffer) => (got += d.toString()));
        held.once('close', () => resolve(got));
      });
      expect(reply).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      held.destroy();
    }
  });

  it('a failing collector gives 500 and a log line, and the server keeps serving', async () => {
    const logs = captureLogs();
    const registry = createMetricsRegistry();
    const m = new MemberMetrics(registry, 7);
    let calls = 0;
    m.collectFrom(
      {
        id: 7,
        options: { dataDir: '/nonexistent' },
        subscribeSoftState: () => () => {},
        status: () => {
          if (calls++ === 0) return { softState: { lead: 0 } };
          throw new Error('boom');
        },
        stateMachine: {},
      } as unknown as Parameters<MemberMetrics['collectFrom']>[0],
      {},
    );
    // collectFrom reads the soft state once at attach; after that, every scrape fails.
    const s = await serve(stubMember({ leader: 2, alarms: [], read: 'ok' }), { registry, logger: logs.logger });
    expect((await get(s, '/metrics')).status).toBe(500);
    expect(logs.find('http request failed')).toHaveLength(1);
    expect((await get(s, '/livez')).status).toBe(200);
  });

  it('close() stops serving; startMetricsServers serves on every address', async () => {
    const started = await startMetricsServers(
      [
        { url: 'http://127.0.0.1:0', host: '127.0.0.1', port: 0 },
        { url: 'http://localhost:0', host: 'localhost', port: 0 },
      ],
      { registry: createMetricsRegistry(), member: stubMember({ leader: 2, alarms: [], read: 'ok' }) },
    );
    expect(started).toHaveLength(2);
    for (const s of started) expect((await get(s, '/livez')).body).toBe('ok');
    await Promise.all(started.map((s) => s.close()));
    await expect(fetch(started[0]!.url + '/livez')).rejects.toThrow();
  });

  it('startMetricsServers closes what it started when one address fails', async () => {
    const taken = await serve(stubMember({ leader: 2, alarms: [], read: 'ok' }));
    const member = stubMember({ leader: 2, alarms: [], read: 'ok' });
    const first = { url: 'http://127.0.0.1:0', host: '127.0.0.1', port: 0 };
    const clash = { url: taken.url, host: '127.0.0.1', port: taken.port };
    const logs = captureLogs();
    await expect(startMetricsServers([first, clash], { registry: createMetricsRegistry(), member, logger: logs.logger })).rejects.toThrow(/EADDRINUSE/);
    const [serving] = logs.find('serving /metrics');
    expect(serving?.['url']).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    await expect(fetch(`${String(serving!['url'])}/livez`)).rejects.toThrow(); // the first one was closed again
  });
});
