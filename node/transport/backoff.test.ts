import { describe, expect, it } from 'vitest';
import { Backoff } from './backoff.js';
import { BoundedQueue } from './queue.js';

describe('Backoff', () => {
  it('doubles from min to max, jittered within [d/2, d], and starts over after reset', () => {
    const lo = new Backoff(50, 2000, () => 0);
    const hi = new Backoff(50, 2000, () => 1);
    const los = Array.from({ length: 8 }, () => lo.next());
    const his = Array.from({ length: 8 }, () => hi.next());
    expect(his).toEqual([50, 100, 200, 400, 800, 1600, 2000, 2000]);
    expect(los).toEqual([25, 50, 100, 200, 400, 800, 1000, 1000]);
    hi.reset();
    expect(hi.next()).toBe(50);
  });
});

describe('BoundedQueue', () => {
  it('keeps order, honours both bounds, and takes batches by count and size', () => {
    const q = new BoundedQueue<number>(5, 100, (n) => n);
    expect([10, 20, 30, 50].map((n) => q.push(n))).toEqual([true, true, true, false]); // 60 + 50 > 100
    expect(q.push(40)).toBe(true);
    expect([q.length, q.byteLength]).toEqual([4, 100]);
    expect(q.take(10, 35)).toEqual([10, 20]);
    expect(q.take(1, 1000)).toEqual([30]);
    expect(q.take(10, 1)).toEqual([40]); // at least one, whatever its size
    expect([q.length, q.byteLength]).toEqual([0, 0]);
    expect(q.push(500)).toBe(true); // an empty queue takes one oversized item
    expect(q.push(1)).toBe(false);
  });
});
