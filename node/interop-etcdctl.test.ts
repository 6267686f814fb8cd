// Interoperability: etcd's own etcdctl (Debian's etcd-client 3.4, ETCDCTL_API=3) against a 3-member Fulcrum
// cluster started in this process. Only what node/api/etcdctl.test.ts and node/api/watch.test.ts do not cover
// (they drive one member): leases, elect, lock, and the commands whose point is a cluster of three (endpoint
// health on all members, check perf, snapshot save from each member, move-leader, member list). check perf runs
// against three member processes instead (node/testing/process-cluster.ts).
// Each test is skipped, with a message, when `command -v etcdctl` fails (ETCDCTL_BIN overrides the binary).
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshotImage } from './api/maintenance.js';
import { EtcdTestClient } from './testing/etcd-client.js';
import { eventually, InteropCluster, type InteropMember } from './testing/interop-cluster.js';
import { BackgroundEtcdctl, ETCDCTL_BIN, findEtcdctl, runEtcdctl, startProcessCluster, type EtcdctlRun } from './testing/interop-etcdctl.js';

const etcdctlPath = findEtcdctl();
if (etcdctlPath === undefined) {
  console.warn(
    `node/interop-etcdctl.test.ts: \`command -v ${ETCDCTL_BIN}\` failed: etcdctl is not installed; skipping every etcdctl interoperability test. ` +
      'Install Debian\'s etcd-client (or set ETCDCTL_BIN) to run them.',
  );
}
const itEtcdctl = etcdctlPath === undefined ? it.skip : it;

let cluster: InteropCluster;
let all: string[];
let dir: string;
const background: BackgroundEtcdctl[] = [];
/** Process clusters still to stop if a test ends early (a timeout does not run its finally in time). */
const closers: (() => Promise<void>)[] = [];

function bg(endpoints: readonly string[], args: readonly string[]): BackgroundEtcdctl {
  const p = new BackgroundEtcdctl(endpoints, args);
  background.push(p);
  return p;
}

/** Run etcdctl against the given endpoints (default: all three) and require exit 0. */
async function ok(args: readonly string[], endpoints: readonly string[] = all, timeoutMs?: number): Promise<string> {
  const r = await runEtcdctl(endpoints, args, timeoutMs === undefined ? {} : { timeoutMs });
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

/** The raft term the members report (for the report: a leader change during check perf stalls requests). */
async function leaderTerm(endpoints: readonly string[]): Promise<string> {
  const st = JSON.parse((await runEtcdctl(endpoints, ['endpoint', 'status', '-w', 'json'])).stdout || '[]') as { Status: { raftTerm: number } }[];
  return [...new Set(st.map((s) => s.Status.raftTerm))].join('/');
}

/** One `etcdctl check perf` against a fresh cluster of three member processes, and what it left behind. */
interface CheckPerfRun {
  readonly r: EtcdctlRun;
  /** Its verdict lines (PASS, FAIL, Slowest, Stddev). */
  readonly lines: readonly string[];
  /** "raft term A -> B" across the run. */
  readonly terms: string;
  readonly termChanged: boolean;
  readonly revisionAfter: number;
  readonly endpoints: readonly string[];
  /** The members' last log lines (elections, slow applies), for the report when writes fail. */
  readonly memberLogs: string;
}

async function checkPerfOnce(): Promise<CheckPerfRun> {
  const procs = await startProcessCluster({ portOffset: 10 });
  closers.push(procs.close);
  let run: Omit<CheckPerfRun, 'memberLogs'>;
  let memberLogs = '';
  try {
    // Warm up (the members' code is compiled lazily by tsx and the JIT): a few hundred writes on each member.
    const warm = procs.endpoints.map((ep) => new EtcdTestClient(ep, 10_000));
    try {
      await Promise.all(warm.flatMap((c, i) => Array.from({ length: 100 }, (_, n) => c.put(`warmup/${i}/${n}`, 'x'.repeat(1024)))));
    } finally {
      for (const c of warm) c.close();
    }
    const termBefore = await leaderTerm(procs.endpoints);
    const started = Date.now();
    const r = await runEtcdctl(procs.endpoints, ['check', 'perf', '--load=s', '--auto-compact', '--auto-defrag'], { timeoutMs: 200_000 });
    const seconds = (Date.now() - started) / 1000;
    const termAfter = await leaderTerm(procs.endpoints);
    // check perf deletes what it wrote, then compacts at the revision of that delete.
    expect((await runEtcdctl(procs.endpoints, ['get', '--prefix', '/etcdctl-check-perf/', '--keys-only'])).stdout).toBe('');
    const status = JSON.parse((await runEtcdctl(procs.endpoints, ['endpoint', 'status', '-w', 'json'])).stdout) as { Status: { header: { revision: number } } }[];
    const revisionAfter = status[0]!.Status.header.revision;
    // Reading before the compaction point fails with etcd's error on every member.
    for (const ep of procs.endpoints) {
      const old = await runEtcdctl([ep], ['get', 'warmup/0/0', `--rev=${revisionAfter - 1}`]);
      expect(old.stderr).toContain('mvcc: required revision has been compacted');
    }
    const lines = `${r.stdout}\n${r.stderr}`
      .split(/[\r\n]+/)
      .map((l) => l.trim())
      .filter((l) => /^(PASS|FAIL|Slowest|Stddev)/.test(l));
    const terms = `raft term ${termBefore} -> ${termAfter}`;
    console.info(`interop etcdctl check perf --load=s: ${seconds.toFixed(1)} s, ${terms}, revision ${revisionAfter}; ${lines.join(' | ')}`);
    run = { r, lines, terms, termChanged: termBefore !== termAfter, revisionAfter, endpoints: procs.endpoints };
  } finally {
    memberLogs = procs.cluster.members.map((m) => `${m.spec.name}:\n${m.output.slice(-20).join('\n')}`).join('\n');
    await procs.close();
  }
  return { ...run, memberLogs };
}

/** check perf's lines that say writes failed: "FAIL: too many errors" and one "FAIL: ERROR(...) -> n" per kind. */
function writeFailures(lines: readonly string[]): string[] {
  return lines.filter((l) => /^FAIL: (too many errors|ERROR|Cleanup failed)/.test(l));
}

/** The errors a leader change causes to the writes in flight, as etcd words them. */
const LEADER_CHANGE_FAILURE = /^FAIL: (too many errors|ERROR\(etcdserver: (request timed out.*|no leader|leader changed)\) -> \d+)$/;

/** Writes failed, the term changed, and every failure is one a leader change causes. */
function explainedByLeaderChange(run: CheckPerfRun): boolean {
  const failures = writeFailures(run.lines);
  return run.termChanged && failures.length > 0 && failures.every((l) => LEADER_CHANGE_FAILURE.test(l));
}

async function keysUnder(prefix: string): Promise<string[]> {
  const out = await ok(['get', '--prefix', prefix, '--keys-only']);
  return out.split('\n').filter((l) => l !== '');
}

describe.skipIf(etcdctlPath === undefined)('etcdctl 3.4 against a 3-member Fulcrum cluster', () => {
  beforeAll(async () => {
    cluster = await InteropCluster.start({ portOffset: 10 });
    all = cluster.endpoints;
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-interop-etcdctl-'));
  });

  afterAll(async () => {
    for (const p of background) p.kill();
    for (const close of closers) await close();
    await cluster?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  itEtcdctl('member list -w json: three started members with their names, peer and client URLs', async () => {
    const list = JSON.parse(await ok(['member', 'list', '-w', 'json'])) as { members: { ID: number; name: string; peerURLs: string[]; clientURLs: string[]; isLearner?: boolean }[] };
    const byId = new Map(list.members.map((m) => [m.ID, m]));
    expect(list.members).toHaveLength(3);
    for (const m of cluster.members) {
      expect(byId.get(m.id)).toMatchObject({ name: m.name, peerURLs: [`http://127.0.0.1:${m.peerPort}`], clientURLs: [`http://${m.endpoint}`] });
      expect(byId.get(m.id)!.isLearner ?? false).toBe(false);
    }
    // The table form: "started" is etcdctl's word for a member that has published its name.
    const table = (await ok(['member', 'list'])).split('\n').filter((l) => l !== '');
    expect(table.sort()).toEqual(
      cluster.members.map((m) => `${m.idHex}, started, ${m.name}, http://127.0.0.1:${m.peerPort}, http://${m.endpoint}, false`).sort(),
    );
  });

  itEtcdctl('endpoint health: every member is healthy (plain, -w json, --cluster from the member list)', async () => {
    const plain = await runEtcdctl(all, ['endpoint', 'health']);
    expect(plain.code).toBe(0);
    for (const ep of all) expect(`${plain.stdout}${plain.stderr}`).toContain(`${ep} is healthy: successfully committed proposal`);
    const json = JSON.parse(await ok(['endpoint', 'health', '-w', 'json'])) as { endpoint: string; health: boolean }[];
    expect(json.map((h) => [h.endpoint, h.health]).sort()).toEqual(all.map((ep) => [ep, true]).sort());
    const viaCluster = await runEtcdctl([all[0]!], ['endpoint', 'health', '--cluster']);
    expect(viaCluster.code).toBe(0);
    for (const ep of all) expect(`${viaCluster.stdout}${viaCluster.stderr}`).toContain(`http://${ep} is healthy`);
  });

  itEtcdctl('lease grant, put --lease, timetolive --keys, keep-alive --once, list, revoke; an unrenewed lease expires; keep-alive keeps one alive', async () => {
    const grant = await ok(['lease', 'grant', '30']);
    const m = /^lease ([0-9a-f]{16}) granted with TTL\(30s\)\n$/.exec(grant);
    expect(m, grant).not.toBeNull();
    const id = m![1]!;
    expect((await ok(['put', '--lease', id, 'lease/a', '1'])).trim()).toBe('OK');
    expect((await ok(['put', `--lease=${id}`, 'lease/b', '2'], [all[2]!])).trim()).toBe('OK');

    const ttl = await ok(['lease', 'timetolive', id, '--keys']);
    const t = /^lease ([0-9a-f]{16}) granted with TTL\(30s\), remaining\((\d+)s\), attached keys\(\[(.*)\]\)\n$/.exec(ttl);
    expect(t, ttl).not.toBeNull();
    expect(t![1]).toBe(id);
    expect(Number(t![2])).toBeGreaterThan(0);
    expect(Number(t![2])).toBeLessThanOrEqual(30);
    expect(t![3]!.split(' ').sort()).toEqual(['lease/a', 'lease/b']);
    const ttlJson = JSON.parse(await ok(['lease', 'timetolive', id, '--keys', '-w', 'json'])) as { id: number; 'granted-ttl': number; keys: string[] };
    expect(ttlJson.id).toBe(parseInt(id, 16));
    expect(ttlJson['granted-ttl']).toBe(30);
    expect(ttlJson.keys.map((k) => Buffer.from(k, 'base64').toString()).sort()).toEqual(['lease/a', 'lease/b']);

    // keep-alive --once against each member: followers forward to the leader.
    for (const ep of all) expect(await ok(['lease', 'keep-alive', '--once', id], [ep])).toBe(`lease ${id} keepalived with TTL(30)\n`);

    const other = /^lease ([0-9a-f]{16}) granted/.exec(await ok(['lease', 'grant', '60']))![1]!;
    const list = (await ok(['lease', 'list'])).split('\n').filter((l) => l !== '');
    expect(list[0]).toMatch(/^found \d+ leases$/);
    expect(Number(/\d+/.exec(list[0]!)![0])).toBe(list.length - 1);
    expect(list.slice(1)).toEqual(expect.arrayContaining([id, other]));

    expect(await ok(['lease', 'revoke', id])).toBe(`lease ${id} revoked\n`);
    expect(await keysUnder('lease/')).toEqual([]);
    expect(await ok(['lease', 'timetolive', id])).toBe(`lease ${id} already expired\n`);
    const again = await runEtcdctl(all, ['lease', 'revoke', id]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('etcdserver: requested lease not found');
    const unknownKeepAlive = await runEtcdctl(all, ['lease', 'keep-alive', '--once', id]);
    expect(unknownKeepAlive.code).not.toBe(0);
    expect(unknownKeepAlive.stderr).toContain('etcdserver: requested lease not found');
    expect((await ok(['lease', 'list'])).split('\n')).not.toContain(id);
    await ok(['lease', 'revoke', other]);

    // A 2 s lease nobody renews expires, and its key with it.
    const short = /^lease ([0-9a-f]{16}) granted with TTL\(2s\)/.exec(await ok(['lease', 'grant', '2']))![1]!;
    await ok(['put', '--lease', short, 'lease/short', 'x']);
    await eventually('the unrenewed lease to expire', async () => ((await keysUnder('lease/short')).length === 0 ? true : undefined), 30_000, 200);
    expect(await ok(['lease', 'timetolive', short])).toBe(`lease ${short} already expired\n`);

    // `lease keep-alive` (streaming) keeps a 2 s lease alive for well past its TTL; stopping it lets it expire.
    const kept = /^lease ([0-9a-f]{16}) granted with TTL\(2s\)/.exec(await ok(['lease', 'grant', '2']))![1]!;
    await ok(['put', '--lease', kept, 'lease/kept', 'y']);
    const grantedAt = Date.now();
    const keeper = bg([all[1]!], ['lease', 'keep-alive', kept]);
    await eventually(
      'three TTLs of keep-alives',
      async () => (Date.now() - grantedAt > 6_000 && keeper.stdout.split(`lease ${kept} keepalived with TTL(2)`).length > 4 ? true : undefined),
      30_000,
      200,
    );
    expect(await keysUnder('lease/kept')).toEqual(['lease/kept']);
    await keeper.stop('SIGINT'); // lease keep-alive has no signal handler: it dies of the signal
    await eventually('the lease to expire once keep-alives stop', async () => ((await keysUnder('lease/kept')).length === 0 ? true : undefined), 30_000, 200);
  });

  itEtcdctl('elect: a campaigner leads, a second waits, elect -l prints each leader, terminating the leader hands over', async () => {
    const [e1, e2, e3] = all as [string, string, string];
    const alice = bg([e1], ['elect', 'interop-el', 'alice']);
    await alice.waitFor('alice\n');
    expect(alice.stdout).toMatch(/^interop-el\/[0-9a-f]+\nalice\n$/);
    const aliceKey = alice.stdout.split('\n')[0]!;

    const listener = bg([e2], ['elect', '-l', 'interop-el']);
    await listener.waitFor('alice\n');
    expect(listener.stdout).toBe(`${aliceKey}\nalice\n`);

    const bob = bg([e3], ['elect', 'interop-el', 'bob']);
    await eventually('bob to be in line', async () => ((await keysUnder('interop-el/')).length === 2 ? true : undefined));
    expect(bob.stdout).toBe('');
    expect(await keysUnder('interop-el/')).toContain(aliceKey);

    // etcdctl elect resigns when it is interrupted: the key is deleted and bob, next in line, is elected.
    expect(await alice.stop('SIGINT')).toBe(0);
    await bob.waitFor('bob\n');
    expect(bob.stdout).toMatch(/^interop-el\/[0-9a-f]+\nbob\n$/);
    const bobKey = bob.stdout.split('\n')[0]!;
    expect(bobKey).not.toBe(aliceKey);
    await listener.waitFor('bob\n');
    expect(listener.stdout).toBe(`${aliceKey}\nalice\n${bobKey}\nbob\n`);
    expect(await keysUnder('interop-el/')).toEqual([bobKey]);

    expect(await bob.stop('SIGINT')).toBe(0);
    expect(await listener.stop('SIGINT')).toBe(0);
    expect(await keysUnder('interop-el/')).toEqual([]);
  });

  itEtcdctl('lock: `lock name -- command` runs the command holding the lock; concurrent lockers on different members serialize', async () => {
    // A holder without a command prints its key and holds until interrupted; a locker with a command waits for it.
    const holder = bg([all[0]!], ['lock', 'interop-lock']);
    await holder.waitFor('interop-lock/');
    const holderKey = holder.stdout.split('\n')[0]!;
    const waiter = bg([all[2]!], ['lock', 'interop-lock', '--', 'sh', '-c', 'echo "ran with $ETCD_LOCK_KEY"']);
    await eventually('the waiter to be in line', async () => ((await keysUnder('interop-lock/')).length === 2 ? true : undefined));
    expect(waiter.stdout).toBe('');
    expect(await holder.stop('SIGINT')).toBe(0);
    expect(await waiter.wait()).toBe(0);
    expect(waiter.stdout).toMatch(/^ran with interop-lock\/[0-9a-f]+\n$/);
    expect(waiter.stdout).not.toContain(holderKey);
    expect(await keysUnder('interop-lock/')).toEqual([]);

    // Three lockers at once, each on its own member, each running a command that logs its start and end.
    const log = join(dir, 'lock.log');
    writeFileSync(log, '');
    const script = `echo "start $ETCD_LOCK_KEY $ETCD_LOCK_REV" >> "${log}"; sleep 0.3; echo "end $ETCD_LOCK_KEY" >> "${log}"; echo "done $ETCD_LOCK_KEY"`;
    const runs: EtcdctlRun[] = await Promise.all(all.map((ep) => runEtcdctl([ep], ['lock', 'interop-lock', '--', 'sh', '-c', script])));
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^done interop-lock\/[0-9a-f]+\n$/);
    }
    const lines = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(6);
    const revs: number[] = [];
    for (let i = 0; i < lines.length; i += 2) {
      const [, key, rev] = lines[i]!.split(' ');
      expect(lines[i]).toMatch(/^start interop-lock\/[0-9a-f]+ \d+$/);
      expect(lines[i + 1]).toBe(`end ${key}`); // nobody started before the holder ended
      revs.push(Number(rev));
    }
    // ETCD_LOCK_REV is the holder's create revision: the fencing token grows from one holder to the next.
    expect([...revs].sort((a, b) => a - b)).toEqual(revs);
    expect(new Set(revs).size).toBe(3);
    expect(await keysUnder('interop-lock/')).toEqual([]);
  });

  itEtcdctl('snapshot save from each member of the cluster: a file etcdctl accepts, holding the latest write', async () => {
    const marker = `snap/marker-${Date.now()}`;
    await ok(['put', marker, 'in the snapshot']);
    for (const m of cluster.members) {
      // A follower's snapshot is its own applied state: wait until it has applied the marker.
      await eventually(`${m.name} to apply the marker`, async () => ((await ok(['get', marker, '--consistency', 's'], [m.endpoint])) !== '' ? true : undefined));
      const path = join(dir, `${m.name}.db`);
      const out = await runEtcdctl([m.endpoint], ['snapshot', 'save', path]);
      expect(out.code, out.stderr).toBe(0);
      expect(out.stdout).toContain(`Snapshot saved at ${path}`);
      const bytes = readFileSync(path);
      expect(bytes.byteLength % 512).toBe(32); // what etcdctl checks before it accepts the file
      expect(bytes.subarray(bytes.byteLength - 32)).toEqual(createHash('sha256').update(bytes.subarray(0, bytes.byteLength - 32)).digest());
      expect(Buffer.from(snapshotImage(bytes)).includes(Buffer.from(marker))).toBe(true);
    }
  });

  itEtcdctl(
    'check perf --load=s --auto-compact --auto-defrag against three member processes: every write succeeds, the keys are cleaned up (about 60 s)',
    async () => {
      // Real processes, so the members do not share this worker's event loop and garbage collector. check perf also
      // judges latency (slowest request over 0.5 s, or a standard deviation over 0.1 s, fails it): those verdicts
      // depend on this machine's disk and load, so they are reported below, not asserted (speed belongs to
      // `npm run bench`). CI once saw a 0.64 s slowest request on a slower disk, where this machine shows 0.1 s.
      let run = await checkPerfOnce();
      // A leader change in the middle of the run fails the writes in flight (as it would against etcd): a member
      // that cannot heartbeat for an election timeout (1 s) on a machine starved of CPU or disk. Once in four
      // local runs here it did (term 2 -> 3, 49 timeouts). Such a run is reported and the whole check is run once
      // more on a fresh cluster, which must then pass; any other failure, or failures without a term change, fail.
      if (explainedByLeaderChange(run)) {
        console.info(`interop etcdctl check perf: the raft term changed (${run.terms}) and every failure is one a leader change causes; running it once more.\nmember logs:\n${run.memberLogs}`);
        run = await checkPerfOnce();
      }
      const { r, lines, terms, memberLogs, revisionAfter, endpoints } = run;
      // Every one of the 9,000 writes succeeded: check perf prints "FAIL: too many errors" and one
      // "FAIL: ERROR(...)" line per kind of error otherwise.
      expect(writeFailures(lines), `${r.stdout.slice(-2000)}\n${terms}\nmember logs:\n${memberLogs}`).toEqual([]);
      // It ran to its end and judged all three figures, whatever the verdicts.
      expect(lines.some((l) => /^(PASS|FAIL): Throughput (is|too low:) \d+ writes\/s$/.test(l)), r.stdout.slice(-2000)).toBe(true);
      expect(lines.some((l) => /^(PASS: Slowest request took|Slowest request took too long:) [\d.]+s$/.test(l))).toBe(true);
      expect(lines.some((l) => /^(PASS: Stddev is|Stddev too high:) [\d.]+s$/.test(l))).toBe(true);
      // --auto-compact and --auto-defrag ran against the cluster.
      expect(r.stdout).toContain(`Compacted with revision ${revisionAfter}`);
      for (const ep of endpoints) expect(r.stdout).toContain(`Defragmented "${ep}"`);
      // Its exit code follows its verdict and nothing else (an error or a crash exits otherwise).
      expect(r.code, `stderr: ${r.stderr.slice(-2000)}`).toBe(lines.includes('PASS') ? 0 : 1);
      expect(lines.includes('PASS') !== lines.includes('FAIL')).toBe(true);
    },
    480_000,
  );

  itEtcdctl('move-leader: leadership moves to the named follower, and every member agrees', async () => {
    const from = await cluster.leader();
    const to = cluster.members.find((m) => m.id !== from.id)!;
    expect(await ok(['move-leader', to.idHex])).toContain(`Leadership transferred from ${from.idHex} to ${to.idHex}`);
    const now: InteropMember = await cluster.leader();
    expect(now.id).toBe(to.id);
    const status = JSON.parse(await ok(['endpoint', 'status', '-w', 'json'])) as { Endpoint: string; Status: { leader: number; header: { member_id: number } } }[];
    expect(status).toHaveLength(3);
    for (const s of status) expect(s.Status.leader).toBe(to.id);
    // And the cluster still writes under its new leader.
    expect((await ok(['put', 'after-move', 'ok'])).trim()).toBe('OK');
  });
});
