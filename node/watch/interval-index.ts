// Which watchers want an event on key k? Exact-key watchers (the common case) sit in a hash map; range and prefix
// watchers sit in a centered interval tree that is rebuilt lazily, on the first lookup after a change. A lookup
// costs O(log n + matches) instead of a scan of every watcher per event.
//
// Centered interval tree, worked example with ranges A=[a,d) B=[b,c) C=[e,∞) D=[f,g):
//
//            center "b" (median start) holds A, B  (from <= "b" < to)
//           /                        \
//     (nothing left:              center "f" holds C, D
//      to <= "b")                 (right of "b": from > "b")
//
// Lookup "c": "c" > "b", so scan the center's list sorted by `to` descending and take those with to > "c" (A; B
// stops the scan since "c" is not < "c"), then descend right: "c" < "f", scan by `from` ascending, take those with
// from <= "c" (none), descend left (empty). Result: A.
import { assert } from '../../raft/errors.js';
import { isEmptyRange, type KeyRange } from './key-range.js';

interface Node<T> {
  readonly center: string;
  /** Entries containing the center, by `from` ascending. */
  readonly byFrom: Array<Entry<T>>;
  /** The same entries by `to` descending (unbounded first). */
  readonly byToDesc: Array<Entry<T>>;
  readonly left: Node<T> | undefined;
  readonly right: Node<T> | undefined;
}

interface Entry<T> {
  readonly item: T;
  readonly range: KeyRange;
}

export class KeyRangeIndex<T> {
  private readonly exact = new Map<string, Set<T>>();
  private readonly ranges = new Map<T, KeyRange>();
  private readonly exactOf = new Map<T, string>();
  private tree: Node<T> | undefined;
  private treeStale = false;

  get size(): number {
    return this.exactOf.size + this.ranges.size;
  }

  add(item: T, range: KeyRange): void {
    assert(!this.exactOf.has(item) && !this.ranges.has(item), 'item already indexed');
    assert(!isEmptyRange(range), 'empty key range');
    if (range.single) {
      let set = this.exact.get(range.from);
      if (set === undefined) this.exact.set(range.from, (set = new Set()));
      set.add(item);
      this.exactOf.set(item, range.from);
      return;
    }
    this.ranges.set(item, range);
    this.treeStale = true;
  }

  remove(item: T): void {
    const key = this.exactOf.get(item);
    if (key !== undefined) {
      this.exactOf.delete(item);
      const set = this.exact.get(key)!;
      set.delete(item);
      if (set.size === 0) this.exact.delete(key);
      return;
    }
    if (this.ranges.delete(item)) this.treeStale = true;
  }

  /** Calls `visit` once for every item whose range contains `key`. */
  forEachMatch(key: string, visit: (item: T) => void): void {
    const set = this.exact.get(key);
    if (set !== undefined) for (const item of set) visit(item);
    if (this.ranges.size === 0) return;
    if (this.treeStale) {
      this.tree = buildNode([...this.ranges].map(([item, range]) => ({ item, range })));
      this.treeStale = false;
    }
    queryNode(this.tree, key, visit);
  }
}

function buildNode<T>(entries: Array<Entry<T>>): Node<T> | undefined {
  if (entries.length === 0) return undefined;
  const starts = entries.map((e) => e.range.from).sort();
  // The median start is contained by the entry it came from (ranges are non-empty), so every level shrinks.
  const center = starts[starts.length >> 1]!;
  const here: Array<Entry<T>> = [];
  const left: Array<Entry<T>> = [];
  const right: Array<Entry<T>> = [];
  for (const e of entries) {
    if (e.range.to !== undefined && e.range.to <= center) left.push(e);
    else if (e.range.from > center) right.push(e);
    else here.push(e);
  }
  const byFrom = [...here].sort((a, b) => cmp(a.range.from, b.range.from));
  const byToDesc = [...here].sort((a, b) => cmpEnd(b.range.to, a.range.to));
  return { center, byFrom, byToDesc, left: buildNode(left), right: buildNode(right) };
}

function queryNode<T>(node: Node<T> | undefined, key: string, visit: (item: T) => void): void {
  while (node !== undefined) {
    if (key === node.center) {
      for (const e of node.byFrom) visit(e.item);
      return;
    }
    if (key < node.center) {
      // Every entry here ends after the center, so it contains key iff it starts at or before key.
      for (const e of node.byFrom) {
        if (e.range.from > key) break;
        visit(e.item);
      }
      node = node.left;
    } else {
      // Every entry here starts at or before the center, so it contains key iff it ends after key.
      for (const e of node.byToDesc) {
        if (e.range.to !== undefined && e.range.to <= key) break;
        visit(e.item);
      }
      node = node.right;
    }
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Range ends with undefined (unbounded) as the largest. */
function cmpEnd(a: string | undefined, b: string | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return 1;
  if (b === undefined) return -1;
  return cmp(a, b);
}
