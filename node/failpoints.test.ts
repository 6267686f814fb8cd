import { describe, expect, it } from 'vitest';
import { walTestHooks } from '../storage/wal/test-hooks.js';
import { FAILPOINT_NAMES, Failpoints, failpointCrashLine, isFailpointCrashLine, parseFailpoints } from './failpoints.js';

describe('failpoints', () => {
  it('parses crash, crash@N, crash%P and no-fsync', () => {
    const s = parseFailpoints('after-persist=crash@3, before-apply=crash%0.5,no-fsync,before-restore=crash');
    expect(s.crash.get('after-persist')).toEqual({ onHit: 3, probability: 1 });
    expect(s.crash.get('before-apply')).toEqual({ onHit: 0, probability: 0.5 });
    expect(s.crash.get('before-restore')).toEqual({ onHit: 1, probability: 1 });
    expect(s.noFsync).toBe(true);
    expect(parseFailpoints('after-apply=crash').noFsync).toBe(false);
  });

  it('refuses unknown points and bad actions with a clear error', () => {
    expect(() => parseFailpoints('before-persit=crash')).toThrow(/unknown failpoint "before-persit"/);
    expect(() => parseFailpoints('after-apply=explode')).toThrow(/want crash, crash@N or crash%P/);
    expect(() => parseFailpoints('no-fsync=crash')).toThrow(/takes no action/);
    expect(() => parseFailpoints('no-lease-expiry=1')).toThrow(/failpoint no-lease-expiry takes no action/);
    expect(parseFailpoints('no-lease-expiry')).toMatchObject({ noLeaseExpiry: true, noFsync: false });
    expect(parseFailpoints('no-fsync').noLeaseExpiry).toBe(false);
    expect(() => parseFailpoints('after-apply=crash%2')).toThrow(/0 < P <= 1/);
  });

  it('crashes on the N-th hit only, and sets and clears the WAL hooks', () => {
    const crashed: string[] = [];
    const f = new Failpoints('after-apply=crash@2,no-fsync', undefined, (p) => crashed.push(p));
    expect(walTestHooks.skipFsync).toBe(true);
    f.hit('after-apply');
    f.hit('before-apply');
    expect(crashed).toEqual([]);
    f.hit('after-apply');
    expect(crashed).toEqual(['after-apply']);
    walTestHooks.fault?.('before-snapshot-commit');
    expect(crashed).toEqual(['after-apply']);
    f.close();
    expect(walTestHooks.skipFsync).toBe(false);
    expect(walTestHooks.fault).toBeUndefined();
  });
});

describe('failpoint crash line', () => {
  it('is recognised for every point, and only as a whole line', () => {
    for (const point of FAILPOINT_NAMES) expect(isFailpointCrashLine(failpointCrashLine(point))).toBe(true);
    const line = failpointCrashLine('after-persist');
    expect(isFailpointCrashLine(line.slice(0, 25))).toBe(false);
    expect(isFailpointCrashLine(line.slice(25))).toBe(false);
    expect(isFailpointCrashLine('fulcrum: member exited')).toBe(false);
  });
});
