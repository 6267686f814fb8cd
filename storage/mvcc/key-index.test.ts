import { describe, expect, it } from 'vitest';
import { KeyIndex } from './key-index.js';

/** The worked example at the top of key-index.ts. */
function example(): KeyIndex {
  const ki = new KeyIndex('a');
  ki.put(2, 0);
  ki.put(3, 0);
  ki.tombstone(4, 0);
  ki.put(5, 0);
  ki.put(6, 0);
  return ki;
}

describe('KeyIndex', () => {
  it('keeps generations as in the worked example', () => {
    expect(example().generations()).toEqual([
      { version: 3, created: 2, revs: [[2, 0], [3, 0], [4, 0]] },
      { version: 2, created: 5, revs: [[5, 0], [6, 0]] },
    ]);
  });

  it('answers get() at past revisions', () => {
    const ki = example();
    expect(ki.get(1)).toBeUndefined();
    expect(ki.get(3)).toEqual({ main: 3, sub: 0, createRevision: 2, version: 2 });
    expect(ki.get(4)).toBeUndefined();
    expect(ki.get(5)).toEqual({ main: 5, sub: 0, createRevision: 5, version: 1 });
    expect(ki.get(100)).toEqual({ main: 6, sub: 0, createRevision: 5, version: 2 });
  });

  it('compacts as in the worked example', () => {
    const at3 = example();
    at3.compact(3);
    expect(at3.generations()[0]).toEqual({ version: 3, created: 2, revs: [[3, 0], [4, 0]] });
    const at4 = example();
    at4.compact(4);
    expect(at4.generations()).toEqual([{ version: 2, created: 5, revs: [[5, 0], [6, 0]] }]);
    const at6 = example();
    at6.compact(6);
    expect(at6.generations()).toEqual([{ version: 2, created: 5, revs: [[6, 0]] }]);
    expect(at6.get(6)).toEqual({ main: 6, sub: 0, createRevision: 5, version: 2 });
    expect(at6.hasRevision(5, 0)).toBe(false);
    expect(at6.hasRevision(6, 0)).toBe(true);
  });

  it('becomes empty when a deleted key is compacted past its tombstone', () => {
    const ki = new KeyIndex('k');
    ki.put(2, 0);
    ki.tombstone(3, 1);
    expect(ki.isLive()).toBe(false);
    expect(ki.compact(2)).toBe(false);
    expect(ki.compact(3)).toBe(true);
    expect(ki.isEmpty()).toBe(true);
  });

  it('asserts revisions only move forward and tombstones only live keys', () => {
    const ki = new KeyIndex('k');
    ki.put(5, 1);
    expect(() => ki.put(5, 1)).toThrow(/not after/);
    expect(() => ki.put(4, 0)).toThrow(/not after/);
    ki.tombstone(6, 0);
    expect(() => ki.tombstone(7, 0)).toThrow(/not live/);
  });

  it('grows long histories past the exact-size threshold', () => {
    const ki = new KeyIndex('hot');
    for (let r = 2; r < 200; r++) ki.put(r, 0);
    expect(ki.current()).toEqual({ main: 199, sub: 0, createRevision: 2, version: 198 });
    expect(ki.get(100)).toEqual({ main: 100, sub: 0, createRevision: 2, version: 99 });
    ki.compact(150);
    expect(ki.generations()[0]!.revs.length).toBe(50);
  });
});
