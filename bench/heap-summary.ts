// Sums a .heapprofile (V8's sampling heap profiler, as bench/profile.ts --heap-prof writes it) by function: the bytes
// sampled where each function allocated them itself ("self") and under it ("total"), largest first. A program that
// prints figures, never a test.
//
//   npx tsx bench/heap-summary.ts FILE [--per N] [--top 30] [--under NAME]
//
// --per N divides by N operations (bench:profile prints the count of the measured window), so the figures read as
// bytes allocated per operation. --under NAME keeps only allocations with a function of that name on their stack
// (say `applyNormal`, to see what applying costs). Sampled figures: a function with a few samples is noise.
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';

/** One node of V8's allocation tree (Chrome DevTools protocol, HeapProfiler.SamplingHeapProfileNode). */
export interface HeapNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children: readonly HeapNode[];
}

export interface HeapRow {
  readonly name: string;
  self: number;
  total: number;
}

/** Label of a frame: the function and where it is, shortened to the last two path segments. */
export function frameLabel(f: HeapNode['callFrame']): string {
  const where = f.url === '' ? '' : ` ${f.url.replace(/^file:\/\//, '').split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
  return `${f.functionName === '' ? '(anonymous)' : f.functionName}${where}`;
}

/**
 * Self and total bytes per label. A function that is on a stack twice (recursion) counts the allocation once in its
 * total. With `under`, only allocations whose stack holds a function of that name count.
 */
export function summarize(root: HeapNode, under?: string): HeapRow[] {
  const rows = new Map<string, HeapRow>();
  const row = (name: string): HeapRow => {
    let r = rows.get(name);
    if (r === undefined) rows.set(name, (r = { name, self: 0, total: 0 }));
    return r;
  };
  const walk = (node: HeapNode, stack: string[], inside: boolean): void => {
    const label = frameLabel(node.callFrame);
    const now = inside || under === undefined || node.callFrame.functionName === under;
    stack.push(label);
    if (node.selfSize > 0 && now) {
      row(label).self += node.selfSize;
      for (const name of new Set(stack)) row(name).total += node.selfSize;
    }
    for (const c of node.children) walk(c, stack, now);
    stack.pop();
  };
  walk(root, [], false);
  return [...rows.values()];
}

function positive(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('a positive integer');
  return n;
}

function main(): void {
  const program = new Command('npx tsx bench/heap-summary.ts')
    .argument('<file>', 'a .heapprofile')
    .option('--per <n>', 'divide by this many operations', positive, 1)
    .option('--top <n>', 'rows to print', positive, 30)
    .option('--under <name>', 'only allocations with this function on their stack')
    .parse();
  const o = program.opts<{ per: number; top: number; under?: string }>();
  const profile = JSON.parse(readFileSync(program.args[0]!, 'utf8')) as { head: HeapNode };
  const rows = summarize(profile.head, o.under);
  const all = rows.find((r) => r.name === frameLabel(profile.head.callFrame))?.total ?? rows.reduce((a, r) => a + r.self, 0);
  const fmt = (b: number): string => (b / o.per).toFixed(o.per > 1 ? 0 : 0).padStart(10);
  process.stdout.write(`${o.per > 1 ? `bytes per operation (${o.per} operations)` : 'bytes'}${o.under === undefined ? '' : `, under ${o.under}`}: ${fmt(all).trim()} in all\n`);
  process.stdout.write(`${'self'.padStart(10)} ${'total'.padStart(10)}  function\n`);
  for (const r of rows.sort((a, b) => b.self - a.self).slice(0, o.top)) process.stdout.write(`${fmt(r.self)} ${fmt(r.total)}  ${r.name}\n`);
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) main();
