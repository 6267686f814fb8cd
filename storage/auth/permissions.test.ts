// The permission logic against a model built from the definition: a request is allowed iff every key it touches
// lies in some permitted range of the needed kind (tested on one witness key per segment between range bounds). A deliberately off-by-one checker shows
// the property can fail (negative control).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allows, covers, intervalOf, txnNeeds, type AccessNeeds, type KeyInterval, type Permission, type PermissionType } from './permissions.js';

const b = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const ZERO_END = Uint8Array.of(0);

const keyArb = fc.stringMatching(/^[abc]{1,3}$/).map(b);
/** A range end as etcd encodes it: empty (one key), "\0" (everything from the key on), or a key. */
const rangeEndArb = fc.oneof(fc.constant(new Uint8Array(0)), fc.constant(ZERO_END), keyArb);
const typeArb = fc.constantFrom<PermissionType>('READ', 'WRITE', 'READWRITE');
const permArb: fc.Arbitrary<Permission> = fc.record({ type: typeArb, key: keyArb, rangeEnd: rangeEndArb });
const rangeArb = fc.record({ key: keyArb, rangeEnd: rangeEndArb });

/** Whether a key lies in a range, by definition (no intervals, no sorting). */
function inRange(k: Uint8Array, key: Uint8Array, rangeEnd: Uint8Array): boolean {
  if (rangeEnd.byteLength === 0) return Buffer.compare(k, key) === 0;
  if (rangeEnd.byteLength === 1 && rangeEnd[0] === 0) return Buffer.compare(k, key) >= 0;
  if (Buffer.compare(rangeEnd, key) <= 0) return Buffer.compare(k, key) === 0; // an inverted range needs its first key
  return Buffer.compare(k, key) >= 0 && Buffer.compare(k, rangeEnd) < 0;
}

const grantsModel = (t: PermissionType, need: 'read' | 'write'): boolean => t === 'READWRITE' || t === (need === 'read' ? 'READ' : 'WRITE');

/** Where a range's membership can change: its first key and the first key after it (none when open-ended). */
function boundaries(key: Uint8Array, rangeEnd: Uint8Array): Uint8Array[] {
  if (rangeEnd.byteLength === 1 && rangeEnd[0] === 0) return [key];
  if (rangeEnd.byteLength === 0 || Buffer.compare(rangeEnd, key) <= 0) return [key, Buffer.concat([key, ZERO_END])];
  return [key, rangeEnd];
}

/**
 * The model: every key the request touches is inside some permitted range. Membership of every range is constant
 * between consecutive boundaries (each range is [start, end) in byte order), so it is enough to test one key per
 * segment: the boundary that starts it. Those witness keys are tested with inRange, the definition.
 */
function modelAllows(perms: readonly Permission[], need: 'read' | 'write', key: Uint8Array, rangeEnd: Uint8Array): boolean {
  const permitted = perms.filter((p) => grantsModel(p.type, need));
  const witnesses = [...boundaries(key, rangeEnd), ...permitted.flatMap((p) => boundaries(p.key, p.rangeEnd))];
  return witnesses.filter((k) => inRange(k, key, rangeEnd)).every((k) => permitted.some((p) => inRange(k, p.key, p.rangeEnd)));
}

/**
 * An off-by-one variant: treats every range end as inclusive (the classic mistake), so [a, b) would also cover
 * "b". Used only to show the property catches it.
 */
function offByOneCovers(permitted: readonly KeyInterval[], wanted: KeyInterval): boolean {
  const widened = permitted.map((iv) => (iv.end === undefined ? iv : { start: iv.start, end: Buffer.concat([iv.end, ZERO_END]) }));
  return covers(widened, wanted);
}

function needsOf(need: 'read' | 'write', key: Uint8Array, rangeEnd: Uint8Array): AccessNeeds {
  const iv = intervalOf(key, rangeEnd);
  return need === 'read' ? { read: [iv], write: [] } : { read: [], write: [iv] };
}

describe('permissions', () => {
  it('allows a request iff every key it touches is inside a permitted range of the needed kind', () => {
    fc.assert(
      fc.property(fc.array(permArb, { maxLength: 5 }), fc.constantFrom<'read' | 'write'>('read', 'write'), rangeArb, (perms, need, r) => {
        expect(allows(perms, needsOf(need, r.key, r.rangeEnd))).toBe(modelAllows(perms, need, r.key, r.rangeEnd));
      }),
      { numRuns: 3000 },
    );
  });

  it('negative control: an off-by-one (inclusive range end) checker disagrees with the model', () => {
    const offByOneAllows = (perms: readonly Permission[], need: 'read' | 'write', key: Uint8Array, rangeEnd: Uint8Array): boolean => {
      const permitted = perms.filter((p) => grantsModel(p.type, need)).map((p) => intervalOf(p.key, p.rangeEnd));
      return offByOneCovers(permitted, intervalOf(key, rangeEnd));
    };
    const result = fc.check(
      fc.property(fc.array(permArb, { maxLength: 5 }), fc.constantFrom<'read' | 'write'>('read', 'write'), rangeArb, (perms, need, r) => {
        return offByOneAllows(perms, need, r.key, r.rangeEnd) === modelAllows(perms, need, r.key, r.rangeEnd);
      }),
      { numRuns: 3000 },
    );
    expect(result.failed).toBe(true);
  });

  it('unites adjacent ranges, and sees the gap between separate ones', () => {
    const perms: Permission[] = [
      { type: 'READ', key: b('a'), rangeEnd: b('c') },
      { type: 'READ', key: b('c'), rangeEnd: b('e') },
      { type: 'READ', key: b('g'), rangeEnd: ZERO_END },
    ];
    expect(allows(perms, needsOf('read', b('b'), b('d')))).toBe(true);
    expect(allows(perms, needsOf('read', b('b'), b('f')))).toBe(false);
    expect(allows(perms, needsOf('read', b('h'), ZERO_END))).toBe(true);
    expect(allows(perms, needsOf('read', b('d'), ZERO_END))).toBe(false);
    expect(allows(perms, needsOf('write', b('b'), new Uint8Array(0)))).toBe(false);
  });

  it('a single key is [k, k\\0): a prefix grant covers it, the key right after the prefix end does not', () => {
    const perms: Permission[] = [{ type: 'READWRITE', key: b('app/'), rangeEnd: b('app0') }];
    expect(allows(perms, needsOf('write', b('app/x'), new Uint8Array(0)))).toBe(true);
    expect(allows(perms, needsOf('write', b('app0'), new Uint8Array(0)))).toBe(false);
    expect(allows(perms, needsOf('read', b('app/'), b('app1')))).toBe(false);
  });

  it('a txn needs every compare and both branches, nested txns included', () => {
    const n = txnNeeds({
      compare: [{ key: b('c'), target: 'VERSION', result: 'EQUAL', version: 0 }],
      success: [{ requestPut: { key: b('s'), value: b('v') } }],
      failure: [{ requestTxn: { failure: [{ requestDeleteRange: { key: b('d'), prevKv: true } }] } }],
    });
    const show = (ivs: KeyInterval[]): string[] => ivs.map((iv) => Buffer.from(iv.start).toString('latin1')).sort();
    expect(show(n.read)).toEqual(['c', 'd']);
    expect(show(n.write)).toEqual(['d', 's']);
  });
});
