// The ordered set of key indexes (etcd's treeIndex). A B-tree would do; a two-level sorted list is simpler and
// as fast at this size: sorted leaves of at most LEAF_KEYS_MAX key indexes, found by binary search on each
// leaf's first key. An insert moves at most one leaf's worth of pointers, plus (on a split) the leaf list.
import { assert } from '../../raft/errors.js';
import { KeyIndex } from './key-index.js';

/** Key indexes per leaf; a full leaf splits in two halves. */
const LEAF_KEYS_MAX = 512;

export class TreeIndex {
  private leaves: KeyIndex[][] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(key: string): KeyIndex | undefined {
    const leaf = this.leaves[this.leafFor(key)];
    if (leaf === undefined) return undefined;
    const i = lowerBound(leaf, key);
    const ki = leaf[i];
    return ki !== undefined && ki.key === key ? ki : undefined;
  }

  /** The key's index, created (empty) when the key was never seen. */
  getOrCreate(key: string): KeyIndex {
    if (this.leaves.length === 0) this.leaves.push([]);
    const li = this.leafFor(key);
    const leaf = this.leaves[li]!;
    const i = lowerBound(leaf, key);
    const found = leaf[i];
    if (found !== undefined && found.key === key) return found;
    const ki = new KeyIndex(key);
    leaf.splice(i, 0, ki);
    this.count++;
    if (leaf.length > LEAF_KEYS_MAX) this.leaves.splice(li, 1, leaf.slice(0, leaf.length >> 1), leaf.slice(leaf.length >> 1));
    return ki;
  }

  remove(key: string): void {
    const li = this.leafFor(key);
    const leaf = this.leaves[li];
    assert(leaf !== undefined, 'remove from an empty tree index');
    const i = lowerBound(leaf, key);
    assert(leaf[i]?.key === key, () => `remove of unknown key ${JSON.stringify(key)}`);
    leaf.splice(i, 1);
    this.count--;
    if (leaf.length === 0) this.leaves.splice(li, 1);
  }

  /** Key indexes with from <= key < to (to undefined: to the end), in key order. */
  *range(from: string, to: string | undefined): Generator<KeyIndex> {
    const first = this.leafFor(from);
    for (let li = first; li < this.leaves.length; li++) {
      const leaf = this.leaves[li]!;
      for (let i = li === first ? lowerBound(leaf, from) : 0; i < leaf.length; i++) {
        const ki = leaf[i]!;
        if (to !== undefined && ki.key >= to) return;
        yield ki;
      }
    }
  }

  /** Every key index, in key order. Safe against removals made while iterating only if the caller collects first. */
  *all(): Generator<KeyIndex> {
    for (const leaf of this.leaves) yield* leaf;
  }

  /** The leaf whose first key is the greatest one <= key (leaf 0 when key is before them all). */
  private leafFor(key: string): number {
    let lo = 0;
    let hi = this.leaves.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.leaves[mid]![0]!.key <= key) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}

/** The first position whose key is >= key. */
function lowerBound(leaf: readonly KeyIndex[], key: string): number {
  let lo = 0;
  let hi = leaf.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (leaf[mid]!.key < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
