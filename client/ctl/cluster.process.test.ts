// fulcrumctl's member and endpoint commands against a 3-member cluster of real processes: list, add a learner,
// start it, promote it, remove it; endpoint status and health across all endpoints, with one member killed; a
// watch that outlives the member it started on; and two runs through the real bin/fulcrumctl.js (a success and
// a failure: exit codes and output as a shell sees them).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../../node/testing/eventually.js';
import { memberArgs, ProcessCluster, ProcessMember, type ProcessMemberSpec } from '../../node/testing/process-cluster.js';
import { ctl, type CtlResult, freePorts, startCtl } from './testing.js';

const BIN = fileURLToPath(new URL('../../bin/fulcrumctl.js', import.meta.url));
const timing = { heartbeatMs: 100, electionMs: 1000 };
const dir = mkdtempSync(join(tmpdir(), 'fulcrumctl-cluster-'));
let specs: ProcessMemberSpec[];
let cluster: ProcessCluster;
let learner: ProcessMember;
let endpoints: string;

beforeAll(async () => {
  const ports = await freePorts(8, 3, 'cluster');
  specs = [0, 1, 2, 3].map((i) => ({ name: `n${i + 1}`, clientPort: ports[2 * i]!, peerPort: ports[2 * i + 1]!, dataDir: join(dir, `n${i + 1}`), extraArgs: ['--log-level', 'warn'] }));
  cluster = new ProcessCluster({ members: specs.slice(0, 3), ...timing });
  cluster.start();
  endpoints = cluster.endpoints.join(',');
  await eventually('a leader every member agrees on', async () => {
    const r = await run('endpoint', 'status', '-w', 'json');
    const s = JSON.parse(r.out) as { endpoints: Array<{ leaderId?: string }> };
    const leaders = new Set(s.endpoints.map((e) => e.leaderId));
    return r.code === 0 && leaders.size === 1 && !leaders.has('0') ? true : undefined;
  }, 60_000, 300);
}, 90_000);

afterAll(async () => {
  await cluster?.kill();
  await learner?.kill();
  rmSync(dir, { recursive: true, force: true });
});

const run = (...argv: string[]): Promise<CtlResult> => ctl(['--endpoints', endpoints, '--command-timeout', '10s', ...argv]);
const peerUrl = (i: number): string => `http://127.0.0.1:${specs[i]!.peerPort}`;

interface MemberJson {
  id: string;
  name: string;
  peerURLs: string[];
  isLearner: boolean;
}
async function members(): Promise<MemberJson[]> {
  const r = await run('member', 'list', '-w', 'json');
  expect(r.code).toBe(0);
  return (JSON.parse(r.out) as { members: MemberJson[] }).members;
}

describe('fulcrumctl against a 3-member process cluster', () => {
  it('lists members (hex ids), adds a learner, promotes it once it caught up, and removes it', async () => {
    const before = await members();
    expect(before.map((x) => x.name).sort()).toEqual(['n1', 'n2', 'n3']);
    for (const x of before) expect(x.id).toMatch(/^[0-9a-f]+$/);
    const table = await run('member', 'list');
    expect(table.out.split('\n').filter((l) => / started /.test(l))).toHaveLength(3);

    const add = await run('member', 'add', 'n4', '--peer-urls', peerUrl(3), '--learner');
    expect(add.code).toBe(0);
    const id = /^Member ([0-9a-f]+) added to cluster as a learner$/m.exec(add.out)?.[1];
    expect(id).toBeDefined();
    // The printed start command names every started member and the new one: the flags n4 starts with below.
    const initialCluster = /--initial-cluster (\S+) --initial-cluster-state existing/.exec(add.out)?.[1];
    expect(initialCluster?.split(',').sort()).toEqual([...[0, 1, 2].map((i) => `n${i + 1}=${peerUrl(i)}`), `n4=${peerUrl(3)}`].sort());
    expect((await members()).find((x) => x.id === id)).toMatchObject({ name: '', isLearner: true, peerURLs: [peerUrl(3)] });

    // Not started yet: it cannot have caught up, and the refusal is one line with its code.
    const early = await run('member', 'promote', id!);
    expect([early.code, early.out]).toEqual([1, '']);
    expect(early.err).toMatch(/^Error: etcdserver: can only promote a learner member which is in sync with leader \(FAILED_PRECONDITION\)\n$/);

    learner = new ProcessMember(specs[3]!, memberArgs(specs[3]!, initialCluster!, timing, 'existing'), undefined);
    learner.start();
    await eventually('the learner to catch up and be promoted', async () => ((await run('member', 'promote', id!)).code === 0 ? true : undefined), 60_000, 500);
    expect((await members()).find((x) => x.id === id)).toMatchObject({ isLearner: false });
    // Its name appears once the started member has published it (shortly after it joined).
    await eventually('n4 listed by name', async () => ((await members()).some((x) => x.id === id && x.name === 'n4') ? true : undefined), 30_000, 300);

    const removed = await run('member', 'remove', id!);
    expect([removed.code, removed.out]).toEqual([0, `Member ${id} removed from cluster\n`]);
    expect((await members()).map((x) => x.name).sort()).toEqual(['n1', 'n2', 'n3']);
    await learner.kill();
  });

  it('shows endpoint status and health for every endpoint; a watch goes on through a member\'s death; the dead member is a failed row and exit 1', async () => {
    const status = await run('endpoint', 'status');
    expect(status.code).toBe(0);
    const rows = status.out.split('\n').filter((l) => l.startsWith('| 127.0.0.1'));
    expect(rows).toHaveLength(3);
    expect(rows.filter((l) => / true +\| false /.test(l))).toHaveLength(1); // one leader, no learner
    const health = await run('endpoint', 'health', '-w', 'json');
    expect((JSON.parse(health.out) as { endpoints: Array<{ health: boolean }> }).endpoints.map((e) => e.health)).toEqual([true, true, true]);

    // A watch listed on the member about to die first (the client starts there) goes on through its death:
    // every event once, in order.
    const dying = cluster.endpoints[2]!;
    const order = [dying, ...cluster.endpoints.slice(0, 2)].join(',');
    const watch = startCtl(['--endpoints', order, 'watch', 'fo/', '--prefix', '-w', 'json']);
    await watch.waitFor(/watching/);
    expect((await run('put', 'fo/1', 'before')).code).toBe(0);
    await watch.waitFor(/fo\/1/);
    await cluster.members[2]!.kill();
    for (let i = 2; i <= 5; i++) expect((await run('put', `fo/${i}`, 'after')).code).toBe(0);
    await watch.waitFor(/fo\/5/, 60_000);
    const seen = (await watch.interrupt()).out.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { kv: { key: string } }).kv.key);
    expect(seen).toEqual(['fo/1', 'fo/2', 'fo/3', 'fo/4', 'fo/5']);

    const after = await ctl(['--endpoints', endpoints, '--dial-timeout', '500ms', '--command-timeout', '5s', 'endpoint', 'health']);
    expect(after.code).toBe(1);
    const cells = after.out.split('\n').filter((l) => l.startsWith('| 127.0.0.1')).map((l) => l.split('|')[2]!.trim());
    expect(cells).toEqual(['true', 'true', 'false']);
    expect(after.err).toMatch(new RegExp(`^Error: 1 of 3 endpoints are unhealthy: ${cluster.endpoints[2]!.replace(/\./g, '\\.')} .*\\(UNAVAILABLE\\)\\n$`));
  });

  it('runs through the real bin/fulcrumctl.js: a read across the cluster (one member down), and an error exit', async () => {
    expect((await run('put', 'bin/key', 'from the bin')).code).toBe(0);
    const get = await bin(['get', 'bin/key', '-w', 'json'], { ETCDCTL_ENDPOINTS: endpoints });
    expect(get.code).toBe(0);
    expect((JSON.parse(get.stdout) as { kvs: Array<{ value: string }> }).kvs[0]!.value).toBe('from the bin');
    const missing = await bin(['--endpoints', endpoints, 'member', 'remove', 'abcdef']);
    expect(missing).toEqual({ code: 1, stdout: '', stderr: 'Error: etcdserver: member not found (MEMBER_NOT_FOUND)\n' });
  });
});

function bin(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...argv], { env: { PATH: process.env.PATH, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}
