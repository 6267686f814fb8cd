import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { WaitingRequests } from './deadlines.js';
import { toServiceError } from './errors.js';
import type { SurfaceCall } from './kv.js';

/** Only `cancelled` is read by the sweep. */
function call(): SurfaceCall & { cancelled: boolean } {
  return { cancelled: false } as unknown as SurfaceCall & { cancelled: boolean };
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('WaitingRequests', () => {
  // A sweep interval no test reaches: the tests sweep by hand on their own clock.
  const HOUR = 3_600_000;

  it('answers with the work\'s value or its error, and forgets the request', async () => {
    const w = new WaitingRequests(HOUR, () => 0);
    const ok = deferred<number>();
    const bad = deferred<number>();
    const a = w.wait(call(), 1_000, ok.promise);
    const b = w.wait(call(), 1_000, bad.promise);
    expect(w.size).toBe(2);
    ok.resolve(7);
    bad.reject(new Error('refused'));
    await expect(a).resolves.toBe(7);
    await expect(b).rejects.toThrow('refused');
    expect(w.size).toBe(0);
  });

  it('fails a request whose time is up with etcd\'s "request timed out", and only that one', async () => {
    let now = 1_000;
    const w = new WaitingRequests(HOUR, () => now);
    const slow = deferred<string>();
    const short = w.wait(call(), 100, slow.promise);
    const long = w.wait(call(), 5_000, deferred<string>().promise);
    now = 1_099;
    w.sweep();
    expect(w.size).toBe(2);
    now = 1_100;
    w.sweep();
    expect(toServiceError(await short.catch((e: unknown) => e))).toMatchObject({ code: grpc.status.UNAVAILABLE, details: 'etcdserver: request timed out' });
    expect(w.size).toBe(1);
    // The work ending later changes nothing (and its failure is handled: no unhandled rejection).
    slow.reject(new Error('late'));
    await new Promise((r) => setTimeout(r, 10));
    void long;
  });

  it('fails a request whose client cancelled at the next sweep', async () => {
    const w = new WaitingRequests(HOUR, () => 0);
    const c = call();
    const p = w.wait(c, 5_000, deferred<void>().promise);
    w.sweep();
    expect(w.size).toBe(1);
    c.cancelled = true;
    w.sweep();
    const error = await p.catch((e: unknown) => e);
    expect((error as Error).message).toBe('fulcrum: call cancelled by the client');
    expect(toServiceError(error)).toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(w.size).toBe(0);
  });

  it('sweeps on its own timer while requests wait', async () => {
    const w = new WaitingRequests(5);
    const started = Date.now();
    expect(toServiceError(await w.wait(call(), 30, deferred<void>().promise).catch((e: unknown) => e))).toMatchObject({ details: 'etcdserver: request timed out' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(29);
    expect(w.size).toBe(0);
  });
});
