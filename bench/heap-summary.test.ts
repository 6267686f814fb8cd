import { describe, expect, it } from 'vitest';
import { summarize, type HeapNode } from './heap-summary.js';

const node = (functionName: string, selfSize: number, children: HeapNode[] = []): HeapNode => ({
  callFrame: { functionName, url: 'file:///work/x/dir/file.js', lineNumber: 9 },
  selfSize,
  children,
});

describe('heap-summary', () => {
  // (root) -> a(10) -> b(5) -> a(7, recursion) ; (root) -> c(3)
  const tree = node('(root)', 0, [node('a', 10, [node('b', 5, [node('a', 7)])]), node('c', 3)]);
  const byName = (rows: ReturnType<typeof summarize>): Record<string, [number, number]> =>
    Object.fromEntries(rows.map((r) => [r.name.split(' ')[0], [r.self, r.total]]));

  it('sums self and total bytes per function, counting a recursive allocation once in the total', () => {
    expect(byName(summarize(tree))).toEqual({ '(root)': [0, 25], a: [17, 22], b: [5, 12], c: [3, 3] });
  });

  it('keeps only allocations under a named function', () => {
    // b's own bytes and the inner a's: a (outer and inner) and the root are on both stacks.
    expect(byName(summarize(tree, 'b'))).toEqual({ '(root)': [0, 12], a: [7, 12], b: [5, 12] });
  });

  it('labels a frame with its function and the last two segments of its file, line from 1', () => {
    expect(summarize(node('(root)', 1))[0]!.name).toBe('(root) dir/file.js:10');
  });
});
