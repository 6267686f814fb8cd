// Smoke test of `npm run bench:profile` (not a speed test: no rate or latency is asserted). It runs the real
// program against real members for a second and checks what it reports and writes: figures for every member and
// the load generator, three CPU profiles that only cover the measured window, and a timeline with the events of
// every member in time order.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdVersion } from './lib/systems.js';

const PROGRAM = fileURLToPath(new URL('./profile.ts', import.meta.url));
const TSX = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs')).href;
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-profile-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Run the program; it must report 4 puts in flight (or `op` x `inFlight`) for 1 s, and CPU per operation of each member, one the leader. */
function expectFiguresFor(members: readonly string[], args: readonly string[], op = 'put', inFlight = 4, env: NodeJS.ProcessEnv = {}): string {
  // From source: the program's default, the build, would run `npm run build` under the tests.
  const r = spawnSync(process.execPath, ['--import', TSX, PROGRAM, '--from-source', ...args], { encoding: 'utf8', timeout: 90_000, env: { ...process.env, ...env } });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  expect(r.stdout).toMatch(new RegExp(`^${op} x${inFlight}: \\d+ in 1 s = \\d+/s, p50 [\\d.]+ ms, p99 [\\d.]+ ms$`, 'm'));
  const perMember = [...r.stdout.matchAll(/^ {2}([a-z]\d)( \(leader\))? {2}([\d.]+)$/gm)];
  expect(perMember.map((m) => m[1])).toEqual(members);
  expect(perMember.filter((m) => m[2] !== undefined)).toHaveLength(1);
  expect(perMember.every((m) => Number(m[3]) > 0)).toBe(true);
  // Every member and the load generator wakes up at least once per operation it takes part in.
  const switches = /^context switches per operation: (.+)$/m.exec(r.stdout)?.[1]?.split(', ') ?? [];
  expect(switches.map((s) => s.replace(/ \(leader\)/, '').replace(/ [\d.]+$/, ''))).toEqual([...members, 'load generator']);
  expect(switches.every((s) => Number(/ ([\d.]+)$/.exec(s)?.[1]) >= 1)).toBe(true);
  return r.stdout;
}

describe('npm run bench:profile', () => {
  it('reports CPU per operation for each member, and writes profiles and a merged timeline', () => {
    const trace = join(dir, 'timeline.txt');
    // A young generation of 1 MiB, so that a second of puts makes the members collect however slow the machine (at
    // the default 16 MiB a slow run could pass the second without a collection for --gc to report).
    const smallYoungGeneration = { FULCRUM_MEMBER_NODE_OPTIONS: '--max-semi-space-size=1' };
    const out = expectFiguresFor(['p1', 'p2', 'p3'], ['--op', 'put', '--in-flight', '4', '--duration', '1', '--warm-up', '0', '--cpu-prof', dir, '--trace', trace, '--series', '250', '--gc', '--gc-phases'], 'put', 4, smallYoungGeneration);
    // --series: the window slice by slice, every operation in exactly one slice.
    const ran = Number(/^put x4: (\d+) in 1 s/m.exec(out)?.[1]);
    const slices = [...out.matchAll(/^ +(\d+) +(\d+) +([\d.]+|-) +([\d.]+|-) +([\d.]+|-) {2}(.*)$/gm)];
    expect(slices.map((m) => Number(m[1])).slice(0, 4)).toEqual([0, 250, 500, 750]);
    expect(slices.reduce((sum, m) => sum + Number(m[2]), 0)).toBe(ran);
    // --gc: a line per member; a second of puts in a small young generation makes at least one member collect.
    const gc = [...out.matchAll(/^ {2}(p\d) {2}(none recorded|scavenge .+|mark-compact .+)$/gm)];
    expect(gc.map((m) => m[1])).toEqual(['p1', 'p2', 'p3']);
    expect(gc.some((m) => /scavenge \d+ \([\d.]+ ms, longest [\d.]+\)/.test(m[2]!))).toBe(true);
    // --gc-phases: the same collections as V8 reports them, a line per member with the means per scavenge.
    const phases = [...out.matchAll(/^ {2}(p\d) {2}(no scavenges recorded|(\d+) scavenges, per scavenge: pause ([\d.]+) ms \(copying [\d.]+ on the main thread.+ survived \d+ KiB, promoted \d+ KiB.+)$/gm)];
    expect(phases.map((m) => m[1])).toEqual(['p1', 'p2', 'p3']);
    expect(phases.some((m) => Number(m[3]) > 0 && Number(m[4]) > 0)).toBe(true);
    for (const p of ['p1', 'p2', 'p3']) {
      const profile = JSON.parse(readFileSync(join(dir, `${p}.cpuprofile`), 'utf8')) as { samples: number[]; endTime: number; startTime: number };
      expect(profile.samples.length).toBeGreaterThan(0);
      expect((profile.endTime - profile.startTime) / 1e6).toBeLessThan(30); // the window and shutdown, not start-up
    }
    expect(existsSync(trace)).toBe(true);
    const lines = readFileSync(trace, 'utf8').trim().split('\n');
    const times = lines.map((l) => Number(l.split(' ')[0]));
    expect(times.every((t, i) => i === 0 || t >= times[i - 1]!)).toBe(true);
    expect(new Set(lines.map((l) => l.split(' ')[1]))).toEqual(new Set(['p1', 'p2', 'p3']));
    expect(lines.some((l) => l.includes('api put answered'))).toBe(true);
  }, 120_000);

  it('loads new keys in transactions of 100 puts with --op load, warm-up included, and every transaction\'s keys are in the store', () => {
    const out = expectFiguresFor(['p1', 'p2', 'p3'], ['--op', 'load', '--in-flight', '2', '--duration', '1', '--warm-up', '1'], 'load', 2);
    const ran = Number(/^load x2: (\d+) in 1 s/m.exec(out)?.[1]);
    const stored = /^load: (\d+) keys in the store after (\d+) transactions of 100 puts \((\d+) in the warm-up\)$/m.exec(out);
    const warm = Number(stored?.[3]);
    expect(ran).toBeGreaterThan(0);
    expect(warm).toBeGreaterThan(0);
    expect([Number(stored?.[1]), Number(stored?.[2])]).toEqual([100 * (ran + warm), ran + warm]);
  }, 120_000);

  it('keeps leases alive over one stream with --op keepalive, and every keep-alive is answered with the lease found', () => {
    // Not expectFiguresFor: 20 leases renewed this often are nearly all within the coalescing window, so the
    // followers may have no work (and no wake-up) per keep-alive at all.
    const r = spawnSync(process.execPath, ['--import', TSX, PROGRAM, '--from-source', '--op', 'keepalive', '--leases', '20', '--in-flight', '4', '--duration', '1', '--warm-up', '1'], { encoding: 'utf8', timeout: 90_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/^keepalive x4: \d+ in 1 s = \d+\/s, p50 [\d.]+ ms, p99 [\d.]+ ms$/m);
    const perMember = [...out.matchAll(/^ {2}(p\d)( \(leader\))? {2}([\d.]+)$/gm)];
    expect(perMember.map((m) => m[1])).toEqual(['p1', 'p2', 'p3']);
    expect(perMember.filter((m) => m[2] !== undefined).map((m) => Number(m[3]) > 0)).toEqual([true]);
    const ran = Number(/^keepalive x4: (\d+) in 1 s/m.exec(out)?.[1]);
    const answered = /^keepalive: (\d+) answers to (\d+) keep-alives of 20 leases, (\d+) with TTL 0 \(lease not found\)$/m.exec(out);
    expect(ran).toBeGreaterThan(0);
    expect(Number(answered?.[2])).toBeGreaterThan(ran); // the warm-up's too
    expect(Number(answered?.[1])).toBe(Number(answered?.[2]));
    expect(Number(answered?.[3])).toBe(0);
  }, 120_000);

  it('puts keys that watchers on a follower watch with --op watch, and every event reaches every watcher', () => {
    const out = expectFiguresFor(['p1', 'p2', 'p3'], ['--op', 'watch', '--watchers', '5', '--in-flight', '2', '--duration', '1', '--warm-up', '1'], 'watch', 2);
    const ran = Number(/^watch x2: (\d+) in 1 s/m.exec(out)?.[1]);
    const reached = /^watch: (\d+) events of (\d+) puts reached 5 watchers on (p\d) \((-?\d+) missing 10 s after the last put\)$/m.exec(out);
    expect(ran).toBeGreaterThan(0);
    expect(Number(reached?.[2])).toBeGreaterThan(ran); // the warm-up's too
    expect(Number(reached?.[1])).toBe(5 * Number(reached?.[2]));
    expect(reached?.[4]).toBe('0');
    // The watchers' member is a follower.
    expect(new RegExp(`^ {2}${reached?.[3]} {2}[\\d.]+$`, 'm').test(out)).toBe(true);
  }, 120_000);

  it.runIf(etcdVersion() !== undefined)('measures etcd under the same load with --system etcd', () => {
    expectFiguresFor(['e1', 'e2', 'e3'], ['--system', 'etcd', '--op', 'put', '--in-flight', '4', '--duration', '1', '--warm-up', '0']);
  }, 120_000);
});
