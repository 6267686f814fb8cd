// fulcrumctl against a real in-process member over real gRPC: every command run through `main` with captured
// output, its table / simple / json output checked, and its errors (one line, the client's code, exit 1; usage
// errors exit 2).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshotStatus } from '../../node/snapshot-file.js';
import { eventually } from '../../node/testing/eventually.js';
import { ctl, type CtlResult, DEAD_ENDPOINT, startCtl, startCtlMember, type CtlMember } from './testing.js';

let m: CtlMember;
let env: Record<string, string>;
const dir = mkdtempSync(join(tmpdir(), 'fulcrumctl-test-'));

beforeAll(async () => {
  m = await startCtlMember(0);
  env = { FULCRUMCTL_ENDPOINTS: m.endpoint };
});
afterAll(async () => {
  await m.close();
  rmSync(dir, { recursive: true, force: true });
});

const run = (...argv: string[]): Promise<CtlResult> => ctl(argv, { env });
const json = <T = Record<string, unknown>>(r: CtlResult): T => {
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as T;
};
/** The error contract: nothing on stdout, exactly one line on stderr, the given code and exit status. */
function expectError(r: CtlResult, exit: number, pattern: RegExp): void {
  expect(r.out).toBe('');
  expect(r.err.split('\n').filter((l) => l !== '')).toHaveLength(1);
  expect(r.err).toMatch(/^Error: /);
  expect(r.err).toMatch(pattern);
  expect(r.code).toBe(exit);
}
/** The data rows of a bordered table (header and rules dropped), cells trimmed. */
function tableRows(text: string): string[][] {
  const lines = text.split('\n').filter((l) => l.startsWith('|'));
  return lines.slice(1).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
}

describe('get, put, del', () => {
  it('puts and reads back in table, simple and json form', async () => {
    expect((await run('put', 'kv/a', 'one')).out).toBe('OK\n');
    const second = await run('put', 'kv/a', 'two', '--prev-kv', '-w', 'json');
    const put = json<{ revision: number; prevKv: { value: string; version: number } }>(second);
    expect([put.prevKv.value, put.prevKv.version]).toEqual(['one', 1]);

    const table = await run('get', 'kv/a');
    expect(table.code).toBe(0);
    const [row] = tableRows(table.out);
    expect(row!.slice(0, 4)).toEqual(['kv/a', 'two', String(put.revision), '2']);
    expect(new Date(row![5]!).getTime()).toBeGreaterThan(Date.now() - 60_000); // the HLC time of the version

    expect((await run('get', 'kv/a', '-w', 'simple')).out).toBe('kv/a\ntwo\n');
    const got = json<{ count: number; kvs: Array<Record<string, unknown>>; header: { revision: number; memberId: string } }>(await run('get', 'kv/a', '-w', 'json'));
    expect(got.count).toBe(1);
    expect(got.kvs[0]).toMatchObject({ key: 'kv/a', value: 'two', version: 2, modRevision: put.revision, lease: '0' });
    expect(got.header.memberId).toBe(m.member.member.id.toString(16));
    // Nothing found: still the header, so a reader (or a script) sees the columns and no rows.
    const none = await run('get', 'kv/missing');
    expect([none.code, tableRows(none.out)]).toEqual([0, []]);
    expect(none.out).toContain('| KEY |');
  });

  it('reads prefixes, ranges and from-key, with limit, sort, keys-only, count-only and print-value-only', async () => {
    for (const k of ['p/a', 'p/b', 'p/c', 'q']) await run('put', k, k.toUpperCase());
    const keys = async (...argv: string[]): Promise<string[]> => (await run('get', ...argv, '-w', 'simple', '--keys-only')).out.split('\n').filter(Boolean);
    expect(await keys('p/', '--prefix')).toEqual(['p/a', 'p/b', 'p/c']);
    expect(await keys('p/b', 'p/c')).toEqual(['p/b']);
    expect(await keys('p/b', '--from-key')).toEqual(['p/b', 'p/c', 'q']);
    expect(await keys('p/', '--prefix', '--sort-by', 'KEY', '--order', 'DESCEND', '--limit', '2')).toEqual(['p/c', 'p/b']);
    expect((await run('get', 'p/', '--prefix', '--count-only')).out).toBe('3\n');
    expect((await run('get', 'p/', '--prefix', '--print-value-only')).out).toBe('P/A\nP/B\nP/C\n');
    const limited = await run('get', 'p/', '--prefix', '--limit', '1');
    expect(tableRows(limited.out).map((r) => r[0])).toEqual(['p/a']);
    expect(limited.out).toContain('(2 more; raise --limit to see them)');
    const counted = json<{ count: number; more: boolean; kvs: unknown[] }>(await run('get', 'p/', '--prefix', '--limit', '1', '-w', 'json'));
    expect([counted.count, counted.more, counted.kvs.length]).toEqual([3, true, 1]);
  });

  it('reads the past by revision and by wall-clock time (--at, the HLC read)', async () => {
    const first = json<{ revision: number }>(await run('put', 'h/k', 'before', '-w', 'json'));
    await new Promise((r) => setTimeout(r, 30)); // two distinct wall-clock milliseconds on the leader's HLC
    await run('put', 'h/k', 'after');
    const atFirst = json<{ kvs: Array<{ modTime: string }> }>(await run('get', 'h/k', '--rev', String(first.revision), '-w', 'json'));
    expect((await run('get', 'h/k', '--rev', String(first.revision), '--print-value-only')).out).toBe('before\n');
    const when = atFirst.kvs[0]!.modTime;
    expect((await run('get', 'h/k', '--at', when, '--print-value-only')).out).toBe('before\n');
    expect((await run('get', 'h/k', '--at', new Date(Date.now() + 1_000).toISOString(), '--print-value-only')).out).toBe('after\n');
    expectError(await run('get', 'h/k', '--at', 'yesterday'), 2, /--at must be an ISO 8601 time/);
    expectError(await run('get', 'h/k', '--at', when, '--rev', '3'), 2, /give --rev or --at, not both/);
  });

  it('puts a value read from stdin, byte for byte', async () => {
    const binary = '\u00e9t\u00e9\n{"a": 1}\n';
    expect((await ctl(['put', 'kv/stdin'], { env, stdin: binary })).out).toBe('OK\n');
    expect((await run('get', 'kv/stdin', '--print-value-only')).out).toBe(`${binary}\n`);
    expectError(await ctl(['put', 'kv/stdin'], { env, isTTY: true }), 2, /put needs a value/);
  });

  it('deletes a key, a prefix with prev values (json), and counts', async () => {
    for (const k of ['d/1', 'd/2', 'd/3']) await run('put', k, 'x');
    expect((await run('del', 'd/1')).out).toBe('1\n');
    const del = json<{ deleted: number; prevKvs: Array<{ key: string }> }>(await run('del', 'd/', '--prefix', '--prev-kv', '-w', 'json'));
    expect([del.deleted, del.prevKvs.map((kv) => kv.key)]).toEqual([2, ['d/2', 'd/3']]);
    expect((await run('del', 'd/', '--prefix')).out).toBe('0\n');
  });
});

describe('txn', () => {
  it('runs a transaction read from stdin in etcdctl\'s text form', async () => {
    await run('put', 't/mode', 'blue');
    const text = 'value("t/mode") = "blue"\nversion("t/mode") > "0"\n\nput t/mode "green light"\nget t/mode\n\nget t/mode\n\n';
    const r = await ctl(['txn', '-w', 'simple'], { env, stdin: text });
    expect([r.code, r.out]).toEqual([0, 'SUCCESS\nOK\nt/mode\ngreen light\n']);
    expect(r.err).toBe(''); // no prompts when stdin is not a terminal
    const again = await ctl(['txn', '-w', 'json'], { env, stdin: text });
    const res = json<{ succeeded: boolean; results: Array<{ type: string; kvs: Array<{ value: string }> }> }>(again);
    expect([res.succeeded, res.results[0]!.type, res.results[0]!.kvs[0]!.value]).toEqual([false, 'get', 'green light']);
  });

  it('shows prompts at a terminal, and takes the flag form', async () => {
    const prompted = await ctl(['txn'], { env, stdin: '\nput t/x 1\n\n\n', isTTY: true });
    expect(prompted.code).toBe(0);
    expect(prompted.err).toContain('compares');
    expect(prompted.out).toBe('SUCCESS\nOK\n');
    const r = await run('txn', '--if', 'mod("t/x") = "0"', '--then', 'put t/x 2', '--else', 'del t/x --prev-kv', '-w', 'json');
    const res = json<{ succeeded: boolean; results: Array<{ deleted: number; prevKvs: Array<{ value: string }> }> }>(r);
    expect([res.succeeded, res.results[0]!.deleted, res.results[0]!.prevKvs[0]!.value]).toEqual([false, 1, '1']);
  });

  it('refuses a malformed transaction before sending anything (exit 2)', async () => {
    expectError(await ctl(['txn'], { env, stdin: 'size("k") = "1"\n\n\n\n' }), 2, /^Error: bad compare 'size\("k"\) = "1"': want/);
    expectError(await run('txn', '--then', 'rename a b'), 2, /bad operation 'rename a b'/);
    expectError(await run('txn', '--if', 'mod("k") > "x"'), 2, /mod operand must be a non-negative integer/);
  });
});

describe('compact and watch', () => {
  it('compacts; reading or watching below the compaction is COMPACTED (exit 1, one line)', async () => {
    const first = json<{ revision: number }>(await run('put', 'c/k', '1', '-w', 'json'));
    const second = json<{ revision: number }>(await run('put', 'c/k', '2', '-w', 'json'));
    expect((await run('compact', String(second.revision))).out).toBe(`compacted revision ${second.revision}\n`);
    const third = json<{ revision: number }>(await run('put', 'c/k', '3', '-w', 'json'));
    expect(json(await run('compact', String(third.revision), '--physical', '-w', 'json'))).toMatchObject({ compactRevision: third.revision, physical: true });
    expectError(await run('get', 'c/k', '--rev', String(first.revision)), 1, /required revision has been compacted \(COMPACTED\)$/m);
    expectError(await run('watch', 'c/k', '--rev', String(first.revision)), 1, /\(COMPACTED\)$/m);
  });

  it('prints every change until Ctrl-C, in table and json form, with previous values', async () => {
    const table = startCtl(['watch', 'w/', '--prefix', '--prev-kv'], { env });
    const lines = startCtl(['watch', 'w/', '--prefix', '-w', 'json'], { env });
    await Promise.all([table.waitFor(/watching prefix "w\/"/), lines.waitFor(/watching/)]);
    await run('put', 'w/a', '1');
    await run('put', 'w/a', '2');
    await run('del', 'w/a');
    await lines.waitFor(/"DELETE"/);
    await table.waitFor(/DELETE/);
    const t = await table.interrupt();
    const j = await lines.interrupt();
    expect([t.code, j.code]).toEqual([0, 0]);
    const events = t.out.split('\n').filter(Boolean);
    expect(events.map((l) => l.split(/\s+/)[0])).toEqual(['PUT', 'PUT', 'DELETE']);
    expect(events[0]).toMatch(/w\/a = 1$/);
    expect(events[1]).toMatch(/w\/a = 2 {2}\(was 1\)$/);
    const parsed = j.out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; revision: number; kv: { key: string; value: string } });
    expect(parsed.map((e) => `${e.type} ${e.kv.key} ${e.kv.value}`)).toEqual(['PUT w/a 1', 'PUT w/a 2', 'DELETE w/a ']);
    expect(parsed[1]!.revision).toBe(parsed[0]!.revision + 1);
    // --rev replays history: the same three events again, from the first one's revision.
    const replay = startCtl(['watch', 'w/a', '--rev', String(parsed[0]!.revision), '-w', 'simple'], { env });
    await replay.waitFor(/DELETE\nw\/a\n/);
    expect((await replay.interrupt()).out).toBe('PUT\nw/a\n1\nPUT\nw/a\n2\nDELETE\nw/a\n');
  });
});

describe('lease', () => {
  it('grants, binds keys, shows time to live with keys, lists, keeps alive and revokes', async () => {
    const granted = json<{ id: string; ttl: number }>(await run('lease', 'grant', '60', '-w', 'json'));
    expect(granted.ttl).toBe(60);
    const id = granted.id;
    expect((await run('put', 'l/k', 'v', '--lease', id)).code).toBe(0);
    const ttl = json<{ ttl: number; grantedTtl: number; keys: Array<{ key: string }> }>(await run('lease', 'timetolive', id, '--keys', '-w', 'json'));
    expect([ttl.grantedTtl, ttl.keys]).toEqual([60, [{ key: 'l/k' }]]);
    expect(ttl.ttl).toBeGreaterThan(0);
    expect((await run('lease', 'timetolive', id, '--keys')).out).toMatch(new RegExp(`^lease ${id} granted with TTL\\(60s\\), remaining\\(\\d+s\\), attached keys\\(\\[l/k\\]\\)\n$`));
    expect(tableRows((await run('lease', 'list')).out).map((r) => r[0])).toContain(id);
    expect((await run('lease', 'keep-alive', id, '--once')).out).toBe(`lease ${id} keepalived with TTL(60)\n`);
    const keeping = startCtl(['lease', 'keep-alive', id, '-w', 'json'], { env });
    await keeping.waitFor(/"ttl":60/);
    expect((await keeping.interrupt()).code).toBe(0);
    expect((await run('lease', 'revoke', id)).out).toBe(`lease ${id} revoked\n`);
    expect((await run('get', 'l/k', '--count-only')).out).toBe('0\n');
  });

  it('says LEASE_NOT_FOUND for a lease that does not exist', async () => {
    expectError(await run('lease', 'revoke', 'abc123'), 1, /requested lease not found \(LEASE_NOT_FOUND\)$/m);
    expectError(await run('lease', 'timetolive', 'abc123'), 1, /lease abc123 not found .*\(LEASE_NOT_FOUND\)$/m);
    expectError(await run('lease', 'keep-alive', 'abc123'), 1, /lease abc123 expired or was revoked \(LEASE_NOT_FOUND\)$/m);
    expectError(await run('put', 'l/x', 'v', '--lease', 'abc123'), 1, /\(LEASE_NOT_FOUND\)$/m);
    expectError(await run('lease', 'revoke', 'not-hex'), 2, /lease id must be hex/);
  });
});

describe('lock and elect', () => {
  it('holds a lock until Ctrl-C; the next holder gets a greater fencing token', async () => {
    const a = startCtl(['lock', 'l/job', '-w', 'json'], { env });
    await a.waitFor(/"token"/);
    const b = startCtl(['lock', 'l/job', '-w', 'json'], { env });
    await new Promise((r) => setTimeout(r, 300));
    expect(b.output()).toBe(''); // waits in line while a holds
    const first = JSON.parse(a.output()) as { key: string; token: number };
    expect((await a.interrupt()).code).toBe(0);
    await b.waitFor(/"token"/);
    const second = JSON.parse(b.output()) as { key: string; token: number };
    expect(second.token).toBeGreaterThan(first.token);
    expect((await run('get', first.key, '--count-only')).out).toBe('0\n'); // released: the key is gone
    expect((await b.interrupt()).code).toBe(0);
  });

  it('leaves the line when Ctrl-C comes while still waiting (no key left behind, exit 0)', async () => {
    const holder = startCtl(['lock', 'l/wait', '-w', 'json'], { env });
    await holder.waitFor(/"token"/);
    const waiter = startCtl(['lock', 'l/wait', '-w', 'json'], { env });
    await eventually('the waiter in line', async () => ((await run('get', 'l/wait/', '--prefix', '--count-only')).out === '2\n' ? true : undefined), 10_000, 50);
    const r = await waiter.interrupt();
    expect([r.code, r.out]).toEqual([0, '']);
    expect((await run('get', 'l/wait/', '--prefix', '--count-only')).out).toBe('1\n');
    await holder.interrupt();
    expect((await run('get', 'l/wait/', '--prefix', '--count-only')).out).toBe('0\n');
  });

  it('runs a command while holding the lock, with the fencing token in FULCRUM_LOCK_TOKEN, and passes its exit code', async () => {
    const script = 'console.log(process.env.FULCRUM_LOCK_TOKEN + " " + process.env.FULCRUM_LOCK_KEY); process.exit(3)';
    const r = await run('lock', 'l/cmd', '--', process.execPath, '-e', script);
    expect(r.code).toBe(3);
    const [token, key] = r.out.trim().split(' ');
    expect(r.err).toBe(`locked l/cmd (key ${key}, fencing token ${token})\n`);
    expect(key).toMatch(/^l\/cmd\/[0-9a-f]+$/);
    // The token is the create revision of the holder's key, which the lock deleted when the command ended.
    const history = json<{ kvs: Array<{ createRevision: number }> }>(await run('get', key!, '--rev', token!, '-w', 'json'));
    expect(history.kvs[0]!.createRevision).toBe(Number(token));
    expect((await run('get', key!, '--count-only')).out).toBe('0\n');
    const missing = await run('lock', 'l/cmd', '--', '/no/such/program');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^locked l\/cmd .*\nError: cannot run \/no\/such\/program: ENOENT \(COMMAND_FAILED\)\n$/);
  });

  it('stops the command and exits 1 with LEASE_LOST when the lock is lost while it runs', async () => {
    const holder = startCtl(['lock', 'l/lost', '--', process.execPath, '-e', 'console.log("started"); setTimeout(() => {}, 60000)'], { env });
    await holder.waitFor(/started/);
    const key = /key (l\/lost\/[0-9a-f]+)/.exec(holder.output())![1]!;
    await run('del', key); // someone else removed the holder's key: the lock is no longer held
    const r = await holder.done;
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n').at(-1)).toMatch(/^Error: no longer holding l\/lost\/[0-9a-f]+ \(key-deleted: .*\); .* was stopped \(LEASE_LOST\)$/);
  });

  it('campaigns, observes the leader, and hands over when the leader resigns', async () => {
    const alpha = startCtl(['elect', 'e/svc', 'alpha'], { env });
    await alpha.waitFor(/elected leader of e\/svc with "alpha"/);
    const listen = startCtl(['elect', 'e/svc', '--listen', '-w', 'json'], { env });
    await listen.waitFor(/"value":"alpha"/);
    const beta = startCtl(['elect', 'e/svc', 'beta', '-w', 'json'], { env });
    await new Promise((r) => setTimeout(r, 300));
    expect(beta.output()).toBe('');
    expect((await alpha.interrupt()).code).toBe(0); // resigns
    await beta.waitFor(/"value":"beta"/);
    await listen.waitFor(/"value":"beta"/);
    const seen = (await listen.interrupt()).out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { value: string; token: number });
    expect(seen.map((s) => s.value)).toEqual(['alpha', 'beta']);
    expect(seen[1]!.token).toBeGreaterThan(seen[0]!.token);
    expect((await beta.interrupt()).code).toBe(0);
    expectError(await run('elect', 'e/svc'), 2, /elect needs a proposal/);
  });
});

describe('member, endpoint, snapshot', () => {
  it('lists the member with its hex id; endpoint status and health as tables and json', async () => {
    const hex = m.member.member.id.toString(16);
    // A member publishes its client URLs shortly after it starts: wait for them, then check the whole row.
    const row = await eventually('the client URLs in member list', async () => {
      const [r] = tableRows((await run('member', 'list')).out);
      return r?.[4] === '' ? undefined : r;
    }, 10_000, 50);
    expect(row).toEqual([hex, 'started', 'default', expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/), `http://${m.endpoint}`, 'false']);
    const status = json<{ endpoints: Array<Record<string, unknown>> }>(await run('endpoint', 'status', '-w', 'json'));
    expect(status.endpoints[0]).toMatchObject({ endpoint: m.endpoint, memberId: hex, leaderId: hex, isLeader: true, isLearner: false });
    const [srow] = tableRows((await run('endpoint', 'status')).out);
    expect(srow!.slice(0, 2).concat(srow![4]!)).toEqual([m.endpoint, hex, 'true']);
    const health = json<{ endpoints: Array<{ endpoint: string; health: boolean }> }>(await run('endpoint', 'health', '-w', 'json'));
    expect(health.endpoints).toMatchObject([{ endpoint: m.endpoint, health: true, error: null }]);
  });

  it('reports an unreachable endpoint as a row with its error, one error line, exit 1', async () => {
    const endpoints = `${m.endpoint},${DEAD_ENDPOINT}`;
    const r = await ctl(['endpoint', 'health', '--endpoints', endpoints, '--dial-timeout', '300ms', '--command-timeout', '1s'], { env });
    expect(r.code).toBe(1);
    const rows = tableRows(r.out);
    expect(rows.map((x) => x.slice(0, 2))).toEqual([[m.endpoint, 'true'], [DEAD_ENDPOINT, 'false']]);
    expect(r.err).toMatch(/^Error: 1 of 2 endpoints are unhealthy: 127\.0\.0\.1:\d+ \(.*\) \(UNAVAILABLE\)\n$/);
    const s = await ctl(['endpoint', 'status', '--endpoints', endpoints, '--dial-timeout', '300ms', '--command-timeout', '1s', '-w', 'json'], { env });
    expect(s.code).toBe(1);
    expect((JSON.parse(s.out) as { endpoints: Array<{ error?: string }> }).endpoints.map((e) => e.error === undefined)).toEqual([true, false]);
  });

  it('saves a snapshot that fulcrum snapshot status reads back', async () => {
    await run('put', 's/k', 'v');
    const file = join(dir, 'backup.db');
    const r = json<{ file: string; bytes: number; revision: number }>(await run('snapshot', 'save', file, '-w', 'json'));
    expect(readFileSync(file).subarray(0, 8).toString()).toBe('FLCRSNP1');
    expect(readFileSync(file).byteLength).toBe(r.bytes);
    const summary = await snapshotStatus(file);
    expect(summary.revision).toBe(r.revision);
    expect(summary.totalKeys).toBeGreaterThan(0);
    expectError(await run('snapshot', 'save', join(dir, 'no-such-dir', 'x.db')), 1, /^Error: ENOENT: .*no-such-dir.* \(ENOENT\)\n$/);
    expect(readdirSync(dir).filter((f) => f.endsWith('.part'))).toEqual([]);
    expectError(await ctl(['snapshot', 'save', file, '--endpoints', `${m.endpoint},${DEAD_ENDPOINT}`], { env }), 2, /exactly one endpoint/);
  });
});

describe('global flags and errors', () => {
  it('takes endpoints from --endpoints, FULCRUMCTL_ENDPOINTS, then ETCDCTL_ENDPOINTS', async () => {
    await run('put', 'g/env', 'found');
    expect((await ctl(['get', 'g/env', '--print-value-only'], { env: { ETCDCTL_ENDPOINTS: m.endpoint } })).out).toBe('found\n');
    expect((await ctl(['get', 'g/env', '--print-value-only', '--endpoints', m.endpoint], { env: { FULCRUMCTL_ENDPOINTS: DEAD_ENDPOINT } })).out).toBe('found\n');
  });

  it('fails in one line with UNAVAILABLE when no endpoint answers', async () => {
    const r = await ctl(['put', 'k', 'v', '--endpoints', DEAD_ENDPOINT, '--dial-timeout', '200ms', '--command-timeout', '1s'], {});
    expectError(r, 1, /cannot connect to 127\.0\.0\.1:\d+ \(UNAVAILABLE\)$/m);
  });

  it('exits 2 on usage errors, 0 on --help', async () => {
    expectError(await run('frobnicate'), 2, /unknown command 'frobnicate'/);
    expectError(await run('get'), 2, /missing required argument 'key'/);
    expectError(await run('get', 'k', '-w', 'yaml'), 2, /'yaml' is invalid/);
    expectError(await run('get', 'k', '--command-timeout', 'soon'), 2, /--command-timeout must be a duration/);
    expectError(await run('get', 'k', '--prefix', 'z'), 2, /--prefix and a range end do not go together/);
    expectError(await run('lease', 'grant', '0'), 2, /ttl must be at least 1 second/);
    const group = await run('lease'); // a group without its subcommand: its help, on stderr, as a usage error
    expect([group.code, group.out]).toEqual([2, '']);
    expect(group.err).toContain('Usage: fulcrumctl lease');
    const help = await run('--help');
    expect(help.code).toBe(0);
    expect(help.out).toContain('Usage: fulcrumctl');
  });
});
